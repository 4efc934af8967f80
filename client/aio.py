"""The asyncio allocator client: the same calls as `Client`, as coroutines.

    async with AsyncClient("127.0.0.1:50051") as m:
        a = await m.alloc(100)
        await m.write(a.address, b"hi")
        b = m.batch(); r = b.alloc(16); b.read(r, 16)
        await m.execute(b)

Objects are released as `Client`'s are (client/sync.py): at close, or when the lease runs out.
The methods are client/machine.py's `MachineCommands`, shared with `Client`; this module adds only
the awaiting transport (client/connection.py's `AsyncConnection`). Make it inside the event loop
that uses it (grpc.aio binds a channel to its loop).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from memsim.client.connection import AsyncConnection
from memsim.client.machine import MachineCommands
from memsim.client.types import Batch, BatchResult


class AsyncClient(MachineCommands, AsyncConnection):
    """The asyncio twin of `Client`: same calls, awaited; `await client.batch().execute()`."""

    def batch(self) -> Batch[Coroutine[Any, Any, BatchResult]]:
        """A batch whose `await batch.execute()` runs on this client."""
        return Batch(self.execute)
