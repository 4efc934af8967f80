"""memsim's client library: importable without the server or the simulator.

    from memsim.client import Client, AsyncClient
"""

from memsim.client.aio import AsyncClient
from memsim.client.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    MemsimError,
    NotFound,
    OutOfRange,
    ResourceExhausted,
    Unavailable,
)
from memsim.client.sync import Client
from memsim.client.types import Allocation, Batch, BatchResult, Freed, OpResult, Ref

__all__ = [
    "Allocation", "AsyncClient", "Batch", "BatchResult", "Client", "DeadlineExceeded", "FailedPrecondition",
    "Freed", "Internal", "InvalidArgument", "MemsimError", "NotFound", "OpResult", "OutOfRange", "Ref",
    "ResourceExhausted", "Unavailable",
]
