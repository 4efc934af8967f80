"""The asyncio virtual-memory client: `VMClient`'s calls as coroutines.

    async with AsyncVMClient("127.0.0.1:50051") as vm:
        sp = await vm.create_space(page_table="inverted")
        a = await sp.mmap(65536, kind="heap")
        await sp.store(a, b"hi"); await sp.load(a, 2)
        b = sp.batch(); b.load(a, 2); await b.execute()

Spaces are released as `VMClient`'s are (client/vm.py): at close, or when the lease runs out.
The methods are client/vm.py's `SpaceCommands` and `VMCommands`, shared with the sync client; this
module adds only the awaiting transport (client/connection.py's `AsyncConnection`).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from memsim.client.connection import AsyncConnection
from memsim.client.rpc import AsyncRunner, Op
from memsim.client.vm import SpaceCommands, VmBatch, VmBatchResult, VMCommands
from memsim.v1 import vm_pb2 as pb


class AsyncSpace(SpaceCommands["AsyncVMClient"], AsyncRunner):
    """One address space, its calls awaited (all go through its AsyncVMClient)."""

    async def _perform(self, op: Op) -> Any:
        return await self.client._perform(op)

    def batch(self) -> VmBatch[Coroutine[Any, Any, VmBatchResult]]:
        return VmBatch(self.client.execute, self.id)


class AsyncVMClient(VMCommands[AsyncSpace], AsyncConnection):
    """The asyncio twin of `VMClient`: same calls, awaited."""

    def _space(self, stats: pb.SpaceStats) -> AsyncSpace:
        return AsyncSpace(self, stats)
