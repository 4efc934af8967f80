"""A sharded cache's routing: which server each key of a command goes to, which servers are down, and
how the replies of a command split over several servers are put back together.

Owns: `Shards` (the servers, the full ring and the ring of the servers that are in, each server's
failure count and state, the counters `stats()` reports) and `plan_command`, the key-extraction
table: a command becomes a `Plan`, its `Part`s (a whole command for one server each) and the merge
that turns their replies into the one reply the caller gets. Touches: client/hashring.py (the
rings), the typed errors. No I/O: client/sharded.py sends the parts.

Failover, as twemproxy's server pools do it (`server_failure_limit`, `server_retry_timeout`,
`auto_eject_hosts`: nc_server.c's server_failure()/server_pool_update()): a call that fails with
UNAVAILABLE or DEADLINE_EXCEEDED (or a batch stream the server ended) counts against its server, and
a reply, even an error reply, resets the count. After `max_failures` failures in a row the server is
marked down for `retry_timeout` seconds. With failover="strict" its keys then raise ServerDown
without a call; with "remove" it leaves the ring and its keys go to the ring's next server (twemproxy's
auto_eject_hosts). Once `retry_timeout` has passed, the next command first sends the server a PING (on
a new channel: gRPC's reconnect backoff would keep a restarted server waiting) and the server is back
in, its keys with it, when it answers. Every key served by another server than the full ring names
counts in `moved`.

Invariants: the full ring never changes; the live ring holds exactly the servers not marked down
(remove mode; in strict mode nothing is removed); counters only grow. One lock guards the state, so a
client may be shared by threads.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from memsim.client.errors import ClientClosed, DeadlineExceeded, InvalidArgument, ServerDown, Unavailable
from memsim.client.hashring import make_ring

FAILOVERS = ("strict", "remove")


def is_failure(e: BaseException) -> bool:
    """A server that did not answer: UNAVAILABLE, DEADLINE_EXCEEDED, or its batch stream ended.
    Not a closed client (the caller's doing), not an error reply (the server answered)."""
    return isinstance(e, Unavailable | DeadlineExceeded | EOFError) and not isinstance(e, ClientClosed)


@dataclass
class _Server:
    name: str
    failures: int = 0
    in_a_row: int = 0
    downs: int = 0
    readds: int = 0
    moved_away: int = 0
    down: bool = False
    retry_at: float = 0.0
    last_error: str = ""


@dataclass(frozen=True)
class ServerStats:
    """One server's counters: calls that failed, times marked down and re-added, keys of its served elsewhere."""

    server: str
    up: bool
    failures: int
    in_a_row: int
    downs: int
    readds: int
    moved_away: int
    retry_in: float | None  # seconds to its next retry while down
    last_error: str


@dataclass(frozen=True)
class ShardStats:
    """The sharded client's counters, summed over its servers, and each server's."""

    failures: int
    downs: int
    readds: int
    moved: int  # keys served by another server than the full ring names (each time one is routed)
    down: tuple[str, ...]
    servers: tuple[ServerStats, ...]


class Shards:
    """The servers, the rings and the failover state of one sharded client."""

    def __init__(self, servers: Iterable[str], hashing: str = "ketama", failover: str = "strict",
                 max_failures: int = 2, retry_timeout: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.servers = list(servers)
        if not self.servers:
            raise InvalidArgument("a sharded cache needs at least one server")
        if len(set(self.servers)) != len(self.servers):
            raise InvalidArgument(f"servers {self.servers}: each server once")
        if failover not in FAILOVERS:
            raise InvalidArgument(f"failover={failover!r}: the choices are {FAILOVERS}")
        if max_failures < 1 or retry_timeout < 0:
            raise InvalidArgument(f"max_failures={max_failures} must be >= 1, retry_timeout={retry_timeout} >= 0")
        try:
            self._full = make_ring(hashing, self.servers)
            self._live = make_ring(hashing, self.servers)
        except ValueError as e:
            raise InvalidArgument(str(e)) from None
        self.hashing, self.failover = hashing, failover
        self.max_failures, self.retry_timeout = max_failures, retry_timeout
        self._clock = clock
        self._state = {s: _Server(s) for s in self.servers}
        self._down = 0
        self._lock = threading.Lock()

    # -- where keys go --------------------------------------------------------------------------

    def home(self, key: bytes) -> str:
        """The server the full ring names for `key` (where it lives while every server is up)."""
        return self._full.node(key)

    def route(self, key: bytes, count: bool = True) -> str:
        """The server that serves `key` now; ServerDown if that is its home, down, in strict mode.
        A key served elsewhere counts in `moved` (unless `count` is False: a question, not a command)."""
        home = self._full.node(key)
        if not self._down:
            return home
        with self._lock:
            if self.failover == "strict":
                if self._state[home].down:
                    raise self._down_error(home)
                return home
            if self._down == len(self.servers):
                raise self._down_error(home, every=True)
            there = self._live.node(key)
            if there != home and count:
                self._state[home].moved_away += 1
            return there

    def serving(self) -> list[str]:
        """The servers a command over every server goes to: all of them (strict: ServerDown if one is
        down, as the answer would be partial), or those that are up (remove)."""
        with self._lock:
            down = [s for s in self.servers if self._state[s].down]
            if down and self.failover == "strict":
                raise self._down_error(down[0])
            if len(down) == len(self.servers):
                raise self._down_error(down[0], every=True)
            return [s for s in self.servers if not self._state[s].down]

    def any_up(self) -> str:
        """One server that is up (the first), for a command every server answers alike."""
        with self._lock:
            up = next((s for s in self.servers if not self._state[s].down), None)
            if up is None:
                raise self._down_error(self.servers[0], every=True)
            return up

    def is_down(self, server: str) -> bool:
        return self._state[server].down

    def skips(self, server: str) -> bool:
        """Whether a walk over the servers (SCAN) passes `server` by: down in remove mode.
        Down in strict mode: ServerDown."""
        with self._lock:
            if not self._state[server].down:
                return False
            if self.failover == "strict":
                raise self._down_error(server)
            return True

    def _down_error(self, server: str, every: bool = False) -> ServerDown:
        st = self._state[server]
        retry = max(0.0, st.retry_at - self._clock())
        if every:
            return ServerDown(f"every server of this sharded cache is down ({', '.join(self.servers)}); the next "
                              f"retry of {server} is in {retry:.1f} s", server)
        return ServerDown(f"server {server} is down ({st.in_a_row} failed calls in a row, the last: {st.last_error}); "
                          f"failover='strict' serves its keys nowhere else; it is retried in {retry:.1f} s", server)

    # -- failures and retries -------------------------------------------------------------------

    def failed(self, server: str, error: BaseException) -> None:
        """A call to `server` failed (is_failure): count it; mark the server down after max_failures in a
        row; a down server's failed retry waits retry_timeout again."""
        with self._lock:
            st = self._state[server]
            st.failures += 1
            st.last_error = f"{type(error).__name__}: {error}"[:200]
            if st.down:
                st.retry_at = self._clock() + self.retry_timeout
                return
            st.in_a_row += 1
            if st.in_a_row >= self.max_failures:
                st.down = True
                st.downs += 1
                st.retry_at = self._clock() + self.retry_timeout
                self._down += 1
                if self.failover == "remove":
                    self._live.remove(server)

    def answered(self, server: str) -> None:
        """`server` answered a call: its failures in a row are over; a down server is back in."""
        with self._lock:
            st = self._state[server]
            st.in_a_row = 0
            if st.down:
                st.down = False
                st.readds += 1
                self._down -= 1
                if self.failover == "remove":
                    self._live.add(server)

    def due(self) -> list[str]:
        """The down servers whose retry_timeout has passed: the caller sends each a retry now (the
        next is due retry_timeout later unless this one answers)."""
        if not self._down:
            return []
        with self._lock:
            now = self._clock()
            out = [s for s in self.servers if self._state[s].down and self._state[s].retry_at <= now]
            for s in out:
                self._state[s].retry_at = now + self.retry_timeout
            return out

    def stats(self) -> ShardStats:
        with self._lock:
            now = self._clock()
            per = tuple(ServerStats(s.name, not s.down, s.failures, s.in_a_row, s.downs, s.readds, s.moved_away,
                                    max(0.0, s.retry_at - now) if s.down else None, s.last_error)
                        for s in self._state.values())
        return ShardStats(failures=sum(p.failures for p in per), downs=sum(p.downs for p in per),
                          readds=sum(p.readds for p in per), moved=sum(p.moved_away for p in per),
                          down=tuple(p.server for p in per if not p.up), servers=per)


# -- commands over servers --------------------------------------------------------------------------

@dataclass(frozen=True)
class Part:
    """A whole command for one server. `positions`: which of the caller's keys it carries (MGET's
    order); `keyed`: False for a server-wide part (KEYS, DBSIZE ...), which a server that leaves the
    ring simply stops contributing to, where a keyed part is sent again to the keys' new server."""

    server: str
    args: tuple[bytes, ...]
    positions: tuple[int, ...] = ()
    keyed: bool = True


Merge = Callable[[list[Part], list[Any]], Any]  # the parts that answered and their replies -> the reply


@dataclass(frozen=True)
class Plan:
    """A command's parts and the merge of their replies. `per_server`: the reply is {server: reply}
    with each server's reply through the command's callback (INFO, CONFIG GET). `merges_none`: the
    merge means something when every part's server left the ring during the call (SCAN goes on with
    the next server); for any other command that is a failure, not an empty answer (DBSIZE 0)."""

    parts: list[Part]
    merge: Merge
    per_server: bool = False
    merges_none: bool = False


def first(parts: list[Part], replies: list[Any]) -> Any:
    """Every server said the same (OK, PONG, the echo): its reply."""
    return replies[0]


def total(parts: list[Part], replies: list[Any]) -> Any:
    return sum(replies)


def concat(parts: list[Part], replies: list[Any]) -> Any:
    return list(itertools.chain.from_iterable(replies))


def in_order(parts: list[Part], replies: list[Any]) -> Any:
    """MGET: each server's values back in the caller's key order."""
    out: list[Any] = [None] * sum(len(p.positions) for p in parts)
    for part, values in zip(parts, replies, strict=True):
        for pos, v in zip(part.positions, values, strict=True):
            out[pos] = v
    return out


def by_server(parts: list[Part], replies: list[Any]) -> Any:
    return {p.server: r for p, r in zip(parts, replies, strict=True)}


# The key's position for the commands of one key (client/cache_commands.py's and the server's table).
KEY_AT = {**dict.fromkeys(("GET", "SET", "GETDEL", "INCR", "DECR", "INCRBY", "DECRBY", "APPEND", "STRLEN", "EXPIRE",
                           "PEXPIRE", "EXPIREAT", "PEXPIREAT", "TTL", "PTTL", "PERSIST", "TYPE"), 1),
          "OBJECT": 2}
# Commands of many keys from argument 1 on: (arguments per key, merge). Split per server.
MANY_KEYS: dict[str, tuple[int, Merge]] = {"MGET": (1, in_order), "DEL": (1, total), "UNLINK": (1, total),
                                           "EXISTS": (1, total), "MSET": (2, first)}
# Commands without keys, sent to every server and merged.
EVERY_SERVER: dict[str, Merge] = {"KEYS": concat, "DBSIZE": total, "FLUSHALL": first, "FLUSHDB": first,
                                  "PING": first, "INFO": by_server}
ONE_SERVER = ("ECHO", "COMMAND")  # every server answers alike: one that is up answers
REFUSED = {"TIME": "TIME: each server has its own clock, and no merge of them means anything; ask one server: "
                   "sharded.client(server).time()"}


def plan_command(args: tuple[bytes, ...], shards: Shards) -> Plan:
    """Where a command's keys go and how its replies merge. A command whose arguments are too few for
    its keys goes whole to one server, whose arity error the caller then gets."""
    name = args[0].decode("ascii", "replace").upper()
    if name in KEY_AT:
        at = KEY_AT[name]
        if len(args) > at:
            return Plan([Part(shards.route(args[at]), args, (0,))], first)
    elif name in MANY_KEYS:
        step, merge = MANY_KEYS[name]
        rest = args[1:]
        if rest and len(rest) % step == 0:
            return _split(args[0], rest, step, merge, shards)
    elif name == "SCAN" and len(args) > 1 and args[1].isdigit():
        return _scan(args, shards)
    elif name in EVERY_SERVER:
        return _everywhere(args, shards, EVERY_SERVER[name], per_server=name == "INFO")
    elif name == "CONFIG" and len(args) > 1:
        get = args[1].upper() == b"GET"
        return _everywhere(args, shards, by_server if get else first, per_server=get)
    elif name in REFUSED:
        raise InvalidArgument(REFUSED[name])
    elif name not in ONE_SERVER and name != "SCAN":
        routed = sorted([*KEY_AT, *MANY_KEYS, *EVERY_SERVER, *ONE_SERVER, "SCAN", "CONFIG"])
        raise InvalidArgument(f"{name}: a sharded cache does not know which server holds its keys; it routes "
                              f"{', '.join(routed)}")
    return Plan([Part(shards.any_up(), args, keyed=False)], first)


def _split(cmd: bytes, rest: tuple[bytes, ...], step: int, merge: Merge, shards: Shards) -> Plan:
    groups: dict[str, tuple[list[int], list[bytes]]] = {}
    for pos, i in enumerate(range(0, len(rest), step)):
        positions, args = groups.setdefault(shards.route(rest[i]), ([], []))
        positions.append(pos)
        args += rest[i:i + step]
    return Plan([Part(server, (cmd, *args), tuple(positions)) for server, (positions, args) in groups.items()], merge)


def _everywhere(args: tuple[bytes, ...], shards: Shards, merge: Merge, per_server: bool) -> Plan:
    return Plan([Part(s, args, keyed=False) for s in shards.serving()], merge, per_server)


def _scan(args: tuple[bytes, ...], shards: Shards) -> Plan:
    """SCAN over the servers one after the other. The caller's cursor is the server's cursor times the
    number of servers plus the server's index, so it is 0 only at the start and at the end of the
    last server, as a Redis cursor is; a server that is down is passed by (remove) or raises (strict)."""
    n = len(shards.servers)
    cursor = int(args[1])
    index, theirs = cursor % n, cursor // n
    while index < n and shards.skips(shards.servers[index]):
        index, theirs = index + 1, 0
    if index == n:
        return Plan([], lambda parts, replies: [b"0", []])

    def merge(parts: list[Part], replies: list[Any]) -> Any:
        if not replies:  # the server left the ring during the call: go on with the next one
            return [str(index + 1 if index + 1 < n else 0).encode(), []]
        nxt, keys = int(replies[0][0]), replies[0][1]
        if nxt == 0:
            return [str(index + 1 if index + 1 < n else 0).encode(), keys]
        return [str(nxt * n + index).encode(), keys]

    return Plan([Part(shards.servers[index], (args[0], str(theirs).encode(), *args[2:]), keyed=False)], merge,
                merges_none=True)
