"""A cache sharded over several memsim servers by the client, as memcached and twemproxy clients shard.

    from memsim.client import ShardedCache
    r = ShardedCache(["10.0.0.1:50051", "10.0.0.2:50051", "10.0.0.3:50051"])   # ketama, failover="strict"
    r.set("user:1", "ada"); r.get("user:1")            # b'ada', from the server the ring names for user:1
    r.mset({"a": 1, "b": 2}); r.mget("a", "b", "c")    # one MSET/MGET per server, the replies in your order
    with r.pipeline() as p:
        p.set("x", 1).incr("x").get("y"); p.execute()  # one stream message per server
    r.stats().moved                                     # keys served elsewhere while their server was down

The command methods are client/cache_commands.py's `CacheCommands`, the same as `Cache`'s: each hands
its arguments and reply callback to `execute_command`, which here plans the command over the servers
(client/sharding.py's `plan_command`: one key's server; MGET/MSET/DEL/EXISTS/UNLINK split per server;
KEYS, DBSIZE, FLUSHALL, PING, INFO, CONFIG on every server; SCAN one server after another; TIME
refused), sends the parts through each server's own `Cache` and merges the replies. Pipelines are
split the same way, one stream message per server.

Owns: the bodies that send the parts (written once, as client/rpc.py's are, for the blocking
`ShardedCache` and client/sharded_aio.py's `AsyncShardedCache`), failover when a call fails (the
failure is counted; in remove mode the parts of a server that just went down go at once to the keys'
new server), the retries of down servers, the sync transport. A body yields a list of `At` calls, one
per server it needs now; they go out together (a thread each here, asyncio.gather in the asyncio
client) and the body is sent each call's reply or exception. Touches: client/cache.py (each server's
client, its one-command and pipeline bodies), client/sharding.py (routing and state).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

from memsim.client.cache import Cache, CacheClient, CommandQueue, Queued, ScanIterator, first_error
from memsim.client.cache_commands import CacheCommands, Callback
from memsim.client.connection import DEFAULT_TIMEOUT
from memsim.client.errors import InvalidArgument, MemsimError, ResponseError, from_code
from memsim.client.rpc import Done, Op, Steps, resume, unary
from memsim.client.sharding import Part, Plan, Shards, ShardStats, is_failure, plan_command
from memsim.v1 import cache_pb2 as pb

T = TypeVar("T")
C = TypeVar("C", bound=CacheClient)
DROPPED = object()  # a server-wide part whose server left the ring: the other servers answer
PROBE_TIMEOUT = 1.0  # a down server's retry (PING) waits at most this long


@dataclass(frozen=True)
class At:
    """One call of a server's own client. `fresh`: on a new channel (the retry of a down server)."""

    server: str
    op: Op
    fresh: bool = False


Fanout = Generator[list[At], list[Any], T]  # a body: yields calls to go out together, is sent their outcomes


def _raw(reply: Any) -> Any:
    """The servers' replies come back unconverted; the sharded client merges them, then converts."""
    return reply


def side_by_side(bodies: list[tuple[str, Steps[Any]]], fresh: bool = False) -> Fanout[list[Any]]:
    """Run each server's body (client/rpc.py's Steps) to its end, their calls going out together round
    by round; each body's return value, or the exception it ended with, in order."""
    out: list[Any] = [None] * len(bodies)
    pending: dict[int, Op] = {}

    def advance(i: int, reply: Any = None, error: BaseException | None = None) -> None:
        try:
            step = resume(bodies[i][1], reply, error)
        except Exception as e:  # noqa: BLE001 - this body's outcome; the others go on
            out[i] = e
            return
        if isinstance(step, Done):
            out[i] = step.value
        else:
            pending[i] = step

    for i in range(len(bodies)):
        advance(i)
    while pending:
        now = list(pending.items())
        pending.clear()
        outcomes = yield [At(bodies[i][0], op, fresh) for i, op in now]
        for (i, _), o in zip(now, outcomes, strict=True):
            if isinstance(o, BaseException):
                advance(i, error=o)
            else:
                advance(i, o)
    return out


def _renumber(e: Exception, index: int) -> Exception:
    """A server's pipeline names a failed command by its place in that server's part of the pipeline:
    name the caller's place instead (the command it shows is the part that server was sent)."""
    if not isinstance(e, MemsimError):
        return e
    return from_code(e.code, re.sub(r"^Command # \d+", f"Command # {index + 1}", str(e)))


class ShardedBase(CacheCommands, Generic[C]):
    """What ShardedCache and AsyncShardedCache share: the constructor, the bodies, the counters.
    `_drive` (run a body) and `_connect_one` (a server's client) are the transport's."""

    _drive: Callable[[Fanout[Any]], Any]

    def __init__(self, servers: list[str], hashing: str = "ketama", failover: str = "strict", max_failures: int = 2,
                 retry_timeout: float = 30.0, *, timeout: float = DEFAULT_TIMEOUT, decode_responses: bool = False,
                 codec: str | None = None, encoding: str = "utf-8", encoding_errors: str = "strict",
                 clock: Callable[[], float] = time.monotonic):
        if isinstance(servers, str):
            raise InvalidArgument("servers: a list of 'host:port' strings, e.g. ['127.0.0.1:50051', ...]")
        if codec not in (None, "msgpack"):
            raise InvalidArgument(f"codec {codec!r}: the choices are None (bytes) and 'msgpack'")
        self.shards = Shards(servers, hashing, failover, max_failures, retry_timeout, clock)
        self.timeout = timeout
        self.decode_responses, self.codec = decode_responses, codec
        self.encoding, self.encoding_errors = encoding, encoding_errors
        self._clients: dict[str, C] = {s: self._connect_one(s) for s in self.shards.servers}

    def _connect_one(self, server: str) -> C:
        raise NotImplementedError

    @property
    def servers(self) -> list[str]:
        return list(self.shards.servers)

    def client(self, server: str) -> C:
        """The server's own client (for what one server alone should answer, e.g. TIME)."""
        return self._clients[server]

    def get_node(self, key: Any) -> str:
        """The server that serves `key` now (strict mode: ServerDown if it is down). Counts no move."""
        return self.shards.route(self._encode(key), count=False)

    def stats(self) -> ShardStats:
        """failures, downs, readds, moved, the servers down now, and each server's counters."""
        return self.shards.stats()

    def _account(self, calls: list[At], outcomes: list[Any]) -> None:
        for call, o in zip(calls, outcomes, strict=True):
            if isinstance(o, BaseException) and is_failure(o):
                self.shards.failed(call.server, o)
            elif not isinstance(o, BaseException) or isinstance(o, ResponseError):
                self.shards.answered(call.server)

    # -- bodies -------------------------------------------------------------------------------

    def _retries(self) -> Fanout[None]:
        """A PING to each down server whose retry_timeout has passed; one that answers is back in."""
        due = self.shards.due()
        if due:
            ping = pb.CommandRequest(args=[b"PING"])
            probe_timeout = min(self.timeout, PROBE_TIMEOUT)
            yield from side_by_side([(s, unary("Command", ping, pb.CommandReply, probe_timeout)) for s in due],
                                    fresh=True)

    def _command_body(self, args: tuple[Any, ...], callback: Callback) -> Fanout[Any]:
        yield from self._retries()
        finish = self._finish(args, callback)
        plan = plan_command(tuple(self._encode(a) for a in args), self.shards)
        outs = yield from side_by_side([(p.server, self._clients[p.server]._command_steps(p.args, _raw))
                                        for p in plan.parts])
        parts, replies = yield from self._settle_all(plan, outs)
        return self._reply(plan, parts, replies, finish)

    def _settle_all(self, plan: Plan, outs: list[Any]) -> Fanout[tuple[list[Part], list[Any]]]:
        """The parts that answered and their replies; the first failure raised, and so is the failure of
        a command whose every part was dropped (no server answered: DBSIZE is not 0, ECHO not empty)."""
        kept: list[Part] = []
        replies: list[Any] = []
        dropped: Exception | None = None
        for part, out in zip(plan.parts, outs, strict=True):
            settled = yield from self._settle(part, out)
            if settled is DROPPED:
                dropped = dropped or out
                continue
            if isinstance(settled, BaseException):
                raise settled
            kept.append(part)
            replies.append(settled)
        if dropped is not None and not kept and not plan.merges_none:
            raise dropped
        return kept, replies

    def _settle(self, part: Part, out: Any) -> Fanout[Any]:
        """A part's outcome. If its server just went down in remove mode: a keyed part goes again to
        its keys' new server (planned afresh), a server-wide part is DROPPED."""
        if not (isinstance(out, Exception) and is_failure(out) and self.shards.failover == "remove"
                and self.shards.is_down(part.server)):
            return out
        if not part.keyed:
            return DROPPED
        try:
            plan = plan_command(part.args, self.shards)
            outs = yield from side_by_side([(p.server, self._clients[p.server]._command_steps(p.args, _raw))
                                            for p in plan.parts])
            parts, replies = yield from self._settle_all(plan, outs)
            return plan.merge(parts, replies)
        except Exception as e:  # noqa: BLE001 - the part's outcome
            return e

    @staticmethod
    def _reply(plan: Plan, parts: list[Part], replies: list[Any], finish: Callable[[Any], Any]) -> Any:
        if plan.per_server:
            return {p.server: finish(r) for p, r in zip(parts, replies, strict=True)}
        return finish(plan.merge(parts, replies))

    def _pipeline_body(self, commands: Queued) -> Fanout[list[Any]]:
        """A pipeline's commands split per server, one pipeline per server sent together; each
        command's reply (or its exception) in the caller's order."""
        yield from self._retries()
        plans: list[Plan | Exception] = []
        for args, _ in commands:
            try:
                plans.append(plan_command(args, self.shards))
            except Exception as e:  # noqa: BLE001 - that command's slot (ServerDown, a command not routed)
                plans.append(e)
        slots: dict[str, list[tuple[int, Part]]] = {}
        for ci, plan in enumerate(plans):
            if not isinstance(plan, Exception):
                for part in plan.parts:
                    slots.setdefault(part.server, []).append((ci, part))
        servers = list(slots)
        outs = yield from side_by_side([
            (s, CacheClient.run_pipeline.steps(self._clients[s], [(part.args, _raw) for _, part in slots[s]]))
            for s in servers])
        got: dict[int, list[tuple[Part, Any]]] = {}
        dropped: dict[int, Exception] = {}  # a command's first part dropped: its failure, if no part answered
        for s, out in zip(servers, outs, strict=True):
            for k, (ci, part) in enumerate(slots[s]):
                if isinstance(out, Exception):
                    reply = yield from self._settle(part, out)
                else:
                    reply = _renumber(out[k], ci) if isinstance(out[k], Exception) else out[k]
                if reply is not DROPPED:
                    got.setdefault(ci, []).append((part, reply))
                else:
                    dropped.setdefault(ci, out)
        replies: list[Any] = []
        for ci, ((_, callback), plan) in enumerate(zip(commands, plans, strict=True)):
            if isinstance(plan, Exception):
                replies.append(plan)
                continue
            answered = sorted(got.get(ci, []), key=lambda pr: plan.parts.index(pr[0]))
            if ci in dropped and not answered and not plan.merges_none:
                replies.append(dropped[ci])
                continue
            error = first_error([r for _, r in answered])
            if error is not None:
                replies.append(error)
                continue
            try:
                replies.append(self._reply(plan, [p for p, _ in answered], [r for _, r in answered],
                                           callback if callback is not None else _raw))
            except Exception as e:  # noqa: BLE001 - kept in the command's slot, as Cache's pipeline does
                replies.append(e)
        return replies


class ShardedPipelineCommands(CommandQueue):
    """A sharded pipeline's queue; execute() (the transport's) sends one pipeline per server."""

    def __init__(self, cache: ShardedBase[Any]):
        super().__init__(cache)
        self.cache = cache

    def _take(self) -> Queued:
        commands, self.commands = self.commands, []
        return commands


def drive(body: Fanout[T], perform: Callable[[list[At]], list[Any]]) -> T:
    """Run a body to its end, blocking: `perform` makes each round's calls and returns their outcomes."""
    try:
        calls = next(body)
        while True:
            calls = body.send(perform(calls))
    except StopIteration as stop:
        return stop.value


class ShardedCache(ShardedBase[Cache], ScanIterator):
    """A cache over several servers, each key on the server its hash names.

    servers: "host:port" of each server (each server's shared port). hashing: "ketama" (the default:
    libketama's continuum, as memcached clients and twemproxy place keys; a server that leaves moves
    only its own keys) or "jump" (Lamping & Veach's jump hash: no table, for a fixed set of servers;
    a server that leaves re-hashes the keys of every server after it). failover: "strict" (a down
    server's keys raise ServerDown) or "remove" (they go to the ring's next server until it is back).
    max_failures: failed calls in a row (UNAVAILABLE, DEADLINE_EXCEEDED) that mark a server down;
    retry_timeout: seconds before a down server is tried again. timeout, decode_responses, codec,
    encoding, encoding_errors: as Cache's, for every server. `stats()`: the counters."""

    _pool: ThreadPoolExecutor | None = None
    _closed = False

    def _connect_one(self, server: str) -> Cache:
        return Cache(target=server, timeout=self.timeout)

    def execute_command(self, *args: Any, callback: Callback = None) -> Any:
        return self._drive(self._command_body(args, callback))

    def _drive(self, body: Fanout[T]) -> T:
        return drive(body, self._perform_all)

    def _perform_all(self, calls: list[At]) -> list[Any]:
        if len(calls) == 1 or self._closed:  # closed: each server's client refuses at once (ClientClosed)
            outcomes = [self._call(c) for c in calls]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(len(self.shards.servers), thread_name_prefix="memsim-shard")
            outcomes = list(self._pool.map(self._call, calls))
        self._account(calls, outcomes)
        return outcomes

    def _call(self, call: At) -> Any:
        try:
            if call.fresh:
                old, self._clients[call.server] = self._clients[call.server], self._connect_one(call.server)
                old.close()
            return self._clients[call.server]._perform(call.op)
        except Exception as e:  # noqa: BLE001 - the call's outcome, handed to its body
            return e

    def pipeline(self, transaction: bool = False) -> ShardedPipeline:
        """Commands queued; execute() sends one pipeline per server, together. No MULTI/EXEC."""
        self._check_transaction(transaction)
        return ShardedPipeline(self)

    def close(self) -> None:
        self._closed = True
        for c in self._clients.values():
            c.close()
        if self._pool is not None:
            self._pool.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ShardedPipeline(ShardedPipelineCommands):
    """ShardedCache's pipeline: `with r.pipeline() as p: p.set("a", 1).get("b"); p.execute()`."""

    cache: ShardedCache

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send everything queued; the replies in order. With raise_on_error the first failed
        command's exception is raised after all ran; otherwise it is in the list."""
        out = self.cache._drive(self.cache._pipeline_body(self._take()))
        if raise_on_error and (e := first_error(out)) is not None:
            raise e
        return out

    def __enter__(self) -> ShardedPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()
