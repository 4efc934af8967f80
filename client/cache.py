"""The cache client: redis-py's API for strings, over memsim.v1.Cache.

    from memsim.client import Cache
    r = Cache("127.0.0.1:50051")                  # or Cache(host="127.0.0.1", port=50051)
    r.set("user:1", "ada", ex=60)                 # True
    r.get("user:1")                               # b'ada' (bytes, as redis-py returns by default)
    r.incr("hits"); r.mset({"a": 1, "b": 2}); r.mget("a", "b")
    with r.pipeline() as p:                       # one stream message for all of them
        p.set("x", 1).incr("x").get("x")
        p.execute()                               # [True, 2, b'2']
    r.info()["used_memory"]; r.config_set("maxmemory-policy", "allkeys-lru")

Arguments are encoded as redis-py encodes them (str in `encoding`, UTF-8 by default, int and
float as their decimal text, bytes as they are) and replies come back as redis-py gives them
(bytes values, True for OK, ints, None for nil), or as str with `decode_responses=True`,
decoded with `encoding` and `encoding_errors` ("strict" by default: bytes that are not UTF-8
raise UnicodeDecodeError, as with redis-py; in a pipeline, in that command's slot). `codec="msgpack"` stores
structured values instead: set/mset/getset pack any msgpack-encodable value, get/mget/getdel
unpack it (counters still want plain decimal text, so INCR on such a value fails as it would
on any non-integer).

Errors are the typed exceptions of `memsim.client.errors`, carrying the server's Redis text
("ERR syntax error", "OOM command not allowed when used memory > 'maxmemory'.").

The command methods are client/cache_commands.py's `CacheCommands`, written once: each hands its
arguments and a reply callback to `execute_command`, which runs them now (Cache), queues them
(Pipeline) or returns a coroutine (client/cache_aio.py's AsyncCache). This module owns what the
sync and asyncio cache clients share beyond the commands (the constructor, one command's call,
the pipeline's stream messages: `CacheClient`, `PipelineCommands`), and the sync transport.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, Generic, Self, TypeVar

import msgpack

from memsim.client.cache_commands import CacheCommands, Callback, encode, parse_info
from memsim.client.cache_url import check_redis_args, parse_url, resolve_target
from memsim.client.connection import DEFAULT_TIMEOUT, Connection, Endpoint
from memsim.client.errors import InvalidArgument, from_code
from memsim.client.rpc import Op, Steps, SyncRunner, command, roundtrip, unary
from memsim.v1 import cache_pb2 as pb
from memsim.v1 import cache_pb2_grpc

MAX_PIPELINE = 10_000  # commands per stream message (the server's limit: server/limits.py)
Queued = list[tuple[tuple[Any, ...], Callback]]  # a pipeline's commands: encoded arguments, reply callback


# -- running them ------------------------------------------------------------------------------

def to_batch(commands: list[tuple[tuple[Any, ...], Callback]], seq: int) -> pb.CommandBatch:
    args: list[bytes] = []
    argc: list[int] = []
    for cmd, _ in commands:
        args += [a if isinstance(a, bytes) else encode(a) for a in cmd]
        argc.append(len(cmd))
    return pb.CommandBatch(seq=seq, args=args, argc=argc)


def decode_batch(commands: list[tuple[tuple[Any, ...], Callback]], reply: pb.ReplyBatch) -> list[Any]:
    """Each command's reply through its callback; a failed command's slot holds its exception,
    which says which command it was, as redis-py's does. A reply its callback cannot take (bytes
    that are not UTF-8 under decode_responses) leaves that exception in its slot, not the others'."""
    raw = msgpack.unpackb(reply.replies, raw=False)
    failed = {e.index: (e.code, e.message) for e in reply.errors}
    out: list[Any] = []
    for i, ((args, cb), r) in enumerate(zip(commands, raw, strict=True)):
        if i in failed:
            code, message = failed[i]
            shown = " ".join(a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a) for a in args)[:120]
            out.append(from_code(code, f"Command # {i + 1} ({shown}) of pipeline caused error: {message}"))
            continue
        try:
            out.append(cb(r) if cb is not None else r)
        except Exception as e:  # noqa: BLE001 - kept in the command's slot, raised by execute()
            out.append(e)
    return out


def first_error(replies: list[Any]) -> Exception | None:
    return next((r for r in replies if isinstance(r, Exception)), None)


class CacheClient(CacheCommands, Endpoint):
    """What Cache and AsyncCache share: the constructor (redis-py's arguments), one command's call,
    a pipeline's stream messages. `_drive` is the runner's (client/rpc.py)."""

    _drive: Callable[[Steps[Any]], Any]

    def __init__(self, host: str = "127.0.0.1", port: int = 50051, db: int = 0, password: str | None = None,
                 socket_timeout: float | None = None, *, target: str | None = None, core: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT, decode_responses: bool = False, codec: str | None = None,
                 encoding: str = "utf-8", encoding_errors: str = "strict", **redis_args: Any):
        check_redis_args(type(self).__name__, {"password": password, **redis_args}, encoding, encoding_errors)
        if codec not in (None, "msgpack"):
            raise InvalidArgument(f"codec {codec!r}: the choices are None (bytes) and 'msgpack'")
        self.decode_responses = decode_responses
        self.encoding, self.encoding_errors = encoding, encoding_errors
        self.codec = codec
        if socket_timeout is not None:
            timeout = socket_timeout
        self._connect(resolve_target(host, port, db, target), core, timeout, cache_pb2_grpc.CacheStub, "Pipeline",
                      what="pipeline")

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> Self:
        return cls(**parse_url(url), **kw)

    def execute_command(self, *args: Any, callback: Callback = None) -> Any:
        return self._drive(self._command_steps(args, callback))

    def _command_steps(self, args: tuple[Any, ...], callback: Callback) -> Steps[Any]:
        req = pb.CommandRequest(args=[self._encode(a) for a in args])
        reply = yield from unary("Command", req, pb.CommandReply)
        return self._finish(args, callback)(msgpack.unpackb(reply.reply, raw=False))

    @command
    def run_pipeline(self, commands: Queued) -> Steps[list[Any]]:
        """A pipeline's commands, MAX_PIPELINE to a stream message; their replies in order."""
        out: list[Any] = []
        for i in range(0, len(commands), MAX_PIPELINE):
            chunk = commands[i:i + MAX_PIPELINE]
            reply = yield from roundtrip(functools.partial(to_batch, chunk), pb.ReplyBatch, self.timeout)
            out += decode_batch(chunk, reply)
        return out


C = TypeVar("C", bound=CacheClient)


class CommandQueue(CacheCommands):
    """A pipeline's queue (this module's and client/sharded.py's): commands are encoded with the
    client's settings, queue with their reply callbacks and return the pipeline."""

    def __init__(self, client: CacheCommands):
        self.codec = client.codec
        self.decode_responses = client.decode_responses
        self.encoding, self.encoding_errors = client.encoding, client.encoding_errors
        self.commands: Queued = []

    def execute_command(self, *args: Any, callback: Callback = None) -> Self:
        self.commands.append((tuple(self._encode(a) for a in args), self._finish(args, callback)))
        return self

    def __len__(self) -> int:
        return len(self.commands)

    def reset(self) -> None:
        self.commands = []


class PipelineCommands(CommandQueue, Generic[C]):
    """redis-py's Pipeline (transaction=False), sync or asyncio: commands queue and return the
    pipeline; execute() sends them, one stream message per MAX_PIPELINE, and returns the replies."""

    def __init__(self, cache: C):
        super().__init__(cache)
        self.cache = cache

    @command
    def execute(self, raise_on_error: bool = True) -> Steps[list[Any]]:
        """Send everything queued; the replies in order. With raise_on_error (redis-py's default)
        the first failed command's exception is raised after all ran; otherwise it is in the list."""
        commands, self.commands = self.commands, []
        if not commands:
            return []
        out = yield from CacheClient.run_pipeline.steps(self.cache, commands)
        if raise_on_error and (e := first_error(out)) is not None:
            raise e
        return out


class ScanIterator(CacheCommands):
    """redis-py's scan_iter() for the blocking clients (Cache, client/sharded.py's ShardedCache)."""

    def scan_iter(self, match: Any = None, count: int | None = None, _type: str | None = None) -> Iterator[Any]:
        cursor = None
        while cursor != 0:
            cursor, keys = self.scan(cursor or 0, match=match, count=count, _type=_type)
            yield from keys


class Cache(CacheClient, ScanIterator, Connection):
    """A connection to a memsim server's cache (any core, or `core=N` for that core's own port).

    Takes redis-py's (host, port, db=0, socket_timeout=..., decode_responses=..., encoding=...,
    encoding_errors=...) or one "host:port" string. Of redis-py's other arguments, these are
    accepted and ignored, as they change nothing here: socket_connect_timeout, socket_keepalive,
    socket_keepalive_options, health_check_interval, max_connections, single_connection_client,
    client_name, lib_name, lib_version. The rest (password, username, unix_socket_path,
    connection_pool, ssl..., retry..., protocol=3, ...) are refused with InvalidArgument unless
    left unset (None, False, "", or protocol=2), and an unknown name is a TypeError."""

    def pipeline(self, transaction: bool = False) -> Pipeline:
        """Commands queued and sent in one stream message per 10,000 at execute().
        Not a MULTI/EXEC transaction: transaction=True is refused rather than silently ignored."""
        self._check_transaction(transaction)
        return Pipeline(self)


class Pipeline(PipelineCommands[Cache], SyncRunner):
    """Cache's pipeline: `with r.pipeline() as p: p.set("a", 1).incr("a"); p.execute()`."""

    def _perform(self, op: Op) -> Any:
        return self.cache._perform(op)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()


__all__ = ["Cache", "CacheClient", "CacheCommands", "CommandQueue", "Pipeline", "PipelineCommands", "ScanIterator",
           "check_redis_args", "encode",
           "parse_info"]
