"""The asyncio cache client: `Cache`'s commands as coroutines, pipelines on one stream.

    async with AsyncCache("127.0.0.1:50051") as r:
        await r.set("k", "v")
        await r.get("k")                           # b'v'
        p = r.pipeline(); p.incr("n").get("n")
        await p.execute()                          # [1, b'1']

The command methods are client/cache_commands.py's `CacheCommands`, and the constructor and the
pipeline client/cache.py's `CacheClient` and `PipelineCommands`, all shared with the sync client;
here `execute_command` and `execute` return coroutines (client/connection.py's `AsyncConnection`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from memsim.client.cache import CacheClient, PipelineCommands
from memsim.client.cache_commands import CacheCommands
from memsim.client.connection import AsyncConnection
from memsim.client.rpc import AsyncRunner, Op


class AsyncScanIterator(CacheCommands):
    """redis-py's asyncio scan_iter() (AsyncCache, client/sharded_aio.py's AsyncShardedCache)."""

    async def scan_iter(self, match: Any = None, count: int | None = None,
                        _type: str | None = None) -> AsyncIterator[Any]:
        cursor = None
        while cursor != 0:
            cursor, keys = await self.scan(cursor or 0, match=match, count=count, _type=_type)
            for k in keys:
                yield k


class AsyncCache(CacheClient, AsyncScanIterator, AsyncConnection):
    """The asyncio twin of `Cache`: same methods and arguments (the same redis-py ones accepted,
    ignored or refused: see `Cache`), awaited. Make it inside the event loop that uses it."""

    def pipeline(self, transaction: bool = False) -> AsyncPipeline:
        self._check_transaction(transaction)
        return AsyncPipeline(self)


class AsyncPipeline(PipelineCommands[AsyncCache], AsyncRunner):
    """Queued commands; `await p.execute()` sends them."""

    async def _perform(self, op: Op) -> Any:
        return await self.cache._perform(op)

    async def __aenter__(self) -> AsyncPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.reset()
