"""The asyncio sharded cache: `ShardedCache`'s methods as coroutines, each server's calls awaited together.

    async with AsyncShardedCache(["127.0.0.1:50051", "127.0.0.1:50061"], failover="remove") as r:
        await r.set("k", "v"); await r.mget("k", "x")
        p = r.pipeline(); p.incr("n").get("k"); await p.execute()

The routing, the bodies and the counters are client/sharded.py's `ShardedBase`, shared with the sync
client; here a body's calls to several servers go out with asyncio.gather, each server's through
its own `AsyncCache`. Make it inside the event loop that uses it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Self, TypeVar

from memsim.client.cache import first_error
from memsim.client.cache_aio import AsyncCache, AsyncScanIterator
from memsim.client.cache_commands import Callback
from memsim.client.sharded import At, Fanout, ShardedBase, ShardedPipelineCommands

T = TypeVar("T")


class AsyncShardedCache(ShardedBase[AsyncCache], AsyncScanIterator):
    """The asyncio twin of `ShardedCache`: the same arguments, methods and failover, awaited."""

    def _connect_one(self, server: str) -> AsyncCache:
        return AsyncCache(target=server, timeout=self.timeout)

    def execute_command(self, *args: Any, callback: Callback = None) -> Any:
        return self._drive(self._command_body(args, callback))

    async def _drive(self, body: Fanout[T]) -> T:
        try:
            calls = next(body)
            while True:
                outcomes = list(await asyncio.gather(*(self._call(c) for c in calls)))
                self._account(calls, outcomes)
                calls = body.send(outcomes)
        except StopIteration as stop:
            return stop.value

    async def _call(self, call: At) -> Any:
        try:
            if call.fresh:
                old, self._clients[call.server] = self._clients[call.server], self._connect_one(call.server)
                await old.close()
            return await self._clients[call.server]._perform(call.op)
        except Exception as e:  # noqa: BLE001 - the call's outcome, handed to its body
            return e

    def pipeline(self, transaction: bool = False) -> AsyncShardedPipeline:
        self._check_transaction(transaction)
        return AsyncShardedPipeline(self)

    async def close(self) -> None:
        for c in self._clients.values():
            await c.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncShardedPipeline(ShardedPipelineCommands):
    """Queued commands; `await p.execute()` sends one pipeline per server, together."""

    cache: AsyncShardedCache

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        out = await self.cache._drive(self.cache._pipeline_body(self._take()))
        if raise_on_error and (e := first_error(out)) is not None:
            raise e
        return out

    async def __aenter__(self) -> AsyncShardedPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.reset()
