"""The asyncio managed-heap client: `V8Client`'s calls as coroutines.

    async with AsyncV8Client("127.0.0.1:50051") as v8:
        iso = await v8.create_isolate()
        async with iso.scope():
            h = await iso.new_object([1, 2])
            await iso.get_field(h, 0)
        await iso.gc(minor=True)
        b = iso.batch(); r = b.new_object([1]); b.get_field(r, 0); await b.execute()

Isolates are released as `V8Client`'s are (client/isolate.py): at close, or when the lease runs
out. The methods are client/isolate.py's `IsolateCommands` and `V8Commands`, shared with the sync
client; this module adds only the awaiting transport (client/connection.py's `AsyncConnection`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from memsim.client.connection import AsyncConnection
from memsim.client.isolate import IsolateCommands, Scope, V8Commands
from memsim.client.rpc import AsyncRunner, Op
from memsim.client.v8_types import IsolateBatch, V8BatchResult
from memsim.v1 import v8_pb2 as pb


class AsyncIsolate(IsolateCommands["AsyncV8Client"], AsyncRunner):
    """One isolate, its calls awaited (all go through its AsyncV8Client)."""

    async def _perform(self, op: Op) -> Any:
        return await self.client._perform(op)

    def batch(self) -> IsolateBatch[Coroutine[Any, Any, V8BatchResult]]:
        return IsolateBatch(self.client.execute, self.id)

    @asynccontextmanager
    async def scope(self) -> AsyncIterator[Scope]:
        """`async with iso.scope() as s:` as Isolate.scope()."""
        s = Scope(await self.open_scope())
        try:
            yield s
        finally:
            s.escaped = await self.close_scope(s.escaping)


class AsyncV8Client(V8Commands[AsyncIsolate], AsyncConnection):
    """The asyncio twin of `V8Client`: same calls, awaited."""

    def _isolate(self, info: pb.IsolateInfo) -> AsyncIsolate:
        return AsyncIsolate(self, info)
