"""memsim's client library: it imports grpc and the protos (memsim.v1), never the server or the simulator.

    from memsim.client import Client, AsyncClient     # the allocator (memsim.v1.Machine)
    from memsim.client import Cache, AsyncCache       # the Redis-like cache (memsim.v1.Cache)
    from memsim.client import VMClient, AsyncVMClient # virtual memory (memsim.v1.VM)
    from memsim.client import V8Client, AsyncV8Client # V8's managed heap (memsim.v1.V8)
    from memsim.client import ShardedCache, AsyncShardedCache  # one cache over several servers

Each service's methods are written once and serve its sync and its asyncio client: machine.py
(allocator), cache_commands.py and cache.py's CacheClient/PipelineCommands (cache), vm.py's
SpaceCommands/VMCommands (VM), isolate.py's IsolateCommands/V8Commands (the managed heap; its
records and batch builder in v8_types.py). rpc.py says how one method body runs blocking or awaited;
connection.py is the transport (channel, deadlines, close), stream.py the batch stream, cache_url.py
redis-py's Redis()/from_url arguments and URLs, session.py the client id and lease, errors.py the
typed exceptions, types.py the allocator's records and batch. sharded.py/sharded_aio.py shard the
cache over several servers (hashring.py: ketama and jump; sharding.py: routing and failover).
The public classes are in sync.py/aio.py, cache.py/cache_aio.py, vm.py/vm_aio.py,
isolate.py/isolate_aio.py.
"""

from memsim.client.aio import AsyncClient
from memsim.client.cache import Cache, Pipeline
from memsim.client.cache_aio import AsyncCache, AsyncPipeline
from memsim.client.errors import (
    ClientClosed,
    ConnectionError,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    MemsimError,
    NotFound,
    OutOfMemoryError,
    OutOfRange,
    ResourceExhausted,
    ResponseError,
    ServerDown,
    Unavailable,
)
from memsim.client.isolate import Isolate, Scope, V8Client
from memsim.client.isolate_aio import AsyncIsolate, AsyncV8Client
from memsim.client.sharded import ShardedCache, ShardedPipeline
from memsim.client.sharded_aio import AsyncShardedCache, AsyncShardedPipeline
from memsim.client.sharding import ServerStats, ShardStats
from memsim.client.sync import Client
from memsim.client.types import Allocation, Batch, BatchResult, Freed, OpResult, Ref
from memsim.client.v8_types import GcEvent, Handle, HeapStats, IsolateBatch, IsolateInfo, V8BatchResult
from memsim.client.vm import Space, Translation, VmBatch, VMClient
from memsim.client.vm_aio import AsyncSpace, AsyncVMClient

__all__ = [
    "Allocation",
    "AsyncCache",
    "AsyncClient",
    "AsyncIsolate",
    "AsyncPipeline",
    "AsyncShardedCache",
    "AsyncShardedPipeline",
    "AsyncSpace",
    "AsyncV8Client",
    "AsyncVMClient",
    "Batch",
    "BatchResult",
    "Cache",
    "Client",
    "ClientClosed",
    "ConnectionError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Freed",
    "GcEvent",
    "Handle",
    "HeapStats",
    "Internal",
    "InvalidArgument",
    "Isolate",
    "IsolateBatch",
    "IsolateInfo",
    "MemsimError",
    "NotFound",
    "OpResult",
    "OutOfMemoryError",
    "OutOfRange",
    "Pipeline",
    "Ref",
    "ResourceExhausted",
    "ResponseError",
    "Scope",
    "ServerDown",
    "ServerStats",
    "ShardStats",
    "ShardedCache",
    "ShardedPipeline",
    "Space",
    "Translation",
    "Unavailable",
    "V8BatchResult",
    "V8Client",
    "VMClient",
    "VmBatch",
]
