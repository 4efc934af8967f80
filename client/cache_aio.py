"""The asyncio cache client: `Cache`'s commands as coroutines, pipelines on one stream.

    async with AsyncCache("127.0.0.1:50051") as r:
        await r.set("k", "v")
        await r.get("k")                           # b'v'
        p = r.pipeline(); p.incr("n").get("n")
        await p.execute()                          # [1, b'1']

The command methods are `cache.CacheCommands`, shared with the sync client; here
`execute_command` returns a coroutine, so every method is awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import msgpack

from memsim.client.aio import AsyncStreamSession
from memsim.client.cache import (
    MAX_PIPELINE,
    CacheCommands,
    Callback,
    check_redis_args,
    decode_batch,
    first_error,
    parse_url,
    resolve_target,
    to_batch,
)
from memsim.client.errors import DeadlineExceeded, InvalidArgument, client_closed, from_rpc_error
from memsim.client.sync import DEFAULT_TIMEOUT, channel_options, core_target
from memsim.v1 import cache_pb2 as pb
from memsim.v1 import cache_pb2_grpc


class AsyncCache(CacheCommands):
    """The asyncio twin of `Cache`: same methods and arguments (the same redis-py ones accepted,
    ignored or refused: see `Cache`), awaited."""

    def __init__(self, host: str = "127.0.0.1", port: int = 50051, db: int = 0, password: str | None = None,
                 socket_timeout: float | None = None, *, target: str | None = None, core: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT, decode_responses: bool = False, codec: str | None = None,
                 encoding: str = "utf-8", encoding_errors: str = "strict", **redis_args: Any):
        check_redis_args("AsyncCache", {"password": password, **redis_args}, encoding, encoding_errors)
        if codec not in (None, "msgpack"):
            raise InvalidArgument(f"codec {codec!r}: the choices are None (bytes) and 'msgpack'")
        if socket_timeout is not None:
            timeout = socket_timeout
        self.target = core_target(resolve_target(host, port, db, target), core)
        self.timeout = timeout
        self.decode_responses = decode_responses
        self.encoding, self.encoding_errors = encoding, encoding_errors
        self.codec = codec
        self._closed = False
        self._channel = grpc.aio.insecure_channel(self.target, options=channel_options())
        self._stub = cache_pb2_grpc.CacheStub(self._channel)
        self._pipelines = AsyncStreamSession(self._stub.Pipeline, "pipeline")

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> AsyncCache:
        return cls(**parse_url(url), **kw)

    async def close(self) -> None:
        self._closed = True
        self._pipelines.close()
        await self._channel.close()

    _closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise client_closed(self)

    async def __aenter__(self) -> AsyncCache:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_ready(self, timeout: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except TimeoutError:
            raise DeadlineExceeded(f"server at {self.target} not ready within {timeout} s") from None

    def execute_command(self, *args: Any, callback: Callback = None) -> Any:
        return self._command(args, callback)

    async def _command(self, args: tuple[Any, ...], callback: Callback) -> Any:
        self._check_open()
        req = pb.CommandRequest(args=[self._encode(a) for a in args])
        try:
            reply = await self._stub.Command(req, timeout=self.timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return self._finish(args, callback)(msgpack.unpackb(reply.reply, raw=False))

    def pipeline(self, transaction: bool = False) -> AsyncPipeline:
        if transaction:
            raise InvalidArgument("transactions (MULTI/EXEC) are not supported; use pipeline(transaction=False)")
        return AsyncPipeline(self)

    async def run_pipeline(self, commands: list[tuple[tuple[Any, ...], Callback]]) -> list[Any]:
        self._check_open()
        out: list[Any] = []
        for i in range(0, len(commands), MAX_PIPELINE):
            chunk = commands[i:i + MAX_PIPELINE]
            out += decode_batch(chunk, await self._roundtrip(chunk))
        return out

    async def _roundtrip(self, chunk: list[tuple[tuple[Any, ...], Callback]]) -> pb.ReplyBatch:
        return await self._pipelines.roundtrip(lambda seq: to_batch(chunk, seq), self.timeout)

    async def scan_iter(self, match: Any = None, count: int | None = None,
                        _type: str | None = None) -> AsyncIterator[Any]:
        cursor = None
        while cursor != 0:
            cursor, keys = await self.scan(cursor or 0, match=match, count=count, _type=_type)
            for k in keys:
                yield k


class AsyncPipeline(CacheCommands):
    """Queued commands; `await p.execute()` sends them."""

    def __init__(self, cache: AsyncCache):
        self.cache = cache
        self.codec = cache.codec
        self.decode_responses = cache.decode_responses
        self.encoding, self.encoding_errors = cache.encoding, cache.encoding_errors
        self.commands: list[tuple[tuple[Any, ...], Callback]] = []

    def execute_command(self, *args: Any, callback: Callback = None) -> AsyncPipeline:
        self.commands.append((tuple(self._encode(a) for a in args), self._finish(args, callback)))
        return self

    def __len__(self) -> int:
        return len(self.commands)

    async def __aenter__(self) -> AsyncPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.commands = []

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        commands, self.commands = self.commands, []
        if not commands:
            return []
        out = await self.cache.run_pipeline(commands)
        if raise_on_error and (e := first_error(out)) is not None:
            raise e
        return out
