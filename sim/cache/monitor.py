"""The cache's MONITOR: each command a core runs, as trace records (sim/trace/monitor.py's feed),
for `memsim trace capture --cache`. Redis's MONITOR streams every command as text
(replicationFeedMonitors, src/replication.c); a trace needs the keys a command touched, so this
records one request per key, with Redis's command table's notion of where the keys are (its
first-key/last-key/step, src/commands.def) written out for the commands memsim has.

Owns: which arguments of a command are keys, the op each key gets (sim/trace/chunk.py's Op), and
the size recorded (the value written or read, in bytes; 1 when the command moves no value).
Touches: its `Commands`' `monitor` attribute only, set while someone captures and None otherwise,
so the dispatcher pays one test for None per command when nobody does.
Invariants: a command is recorded after it ran without error, under the core's mutex, in the
order the core ran it; keys are sim/trace's ids (`key_id`: a decimal key is its number, any other
its 64-bit hash); a command not listed in `KEYS` (PING, INFO, KEYS, SCAN, FLUSHALL...) names no
key and is not recorded: a new keyed command gets a row here.
"""

from __future__ import annotations

from collections.abc import Callable

from memsim.sim.cache.commands import Commands, Reply
from memsim.sim.trace.chunk import Op, key_id
from memsim.sim.trace.monitor import DEFAULT_LIMIT, Feed, Subscriber

__all__ = ["KEYS", "CommandMonitor"]

Records = list[tuple[bytes, int, Op]]  # (key, size, op)


def _len(r: Reply) -> int:
    return len(r) if isinstance(r, bytes | str) else 1


def _one(op: Op, size: Callable[[list[bytes], Reply], int] = lambda a, r: 1, at: int = 1) -> \
        Callable[[list[bytes], Reply], Records]:
    return lambda a, r: [(a[at], size(a, r), op)]


def _each(op: Op) -> Callable[[list[bytes], Reply], Records]:
    return lambda a, r: [(k, 1, op) for k in a[1:]]


def _mget(a: list[bytes], r: Reply) -> Records:
    values = r if isinstance(r, list) else [None] * (len(a) - 1)
    return [(k, _len(v), Op.GET) for k, v in zip(a[1:], values, strict=False)]


def _mset(a: list[bytes], r: Reply) -> Records:
    return [(a[i], len(a[i + 1]), Op.SET) for i in range(1, len(a) - 1, 2)]


KEYS: dict[str, Callable[[list[bytes], Reply], Records]] = {
    "get": _one(Op.GET, lambda a, r: _len(r)),
    "set": _one(Op.SET, lambda a, r: len(a[2])),
    "getdel": _one(Op.DEL, lambda a, r: _len(r)),
    "mget": _mget,
    "mset": _mset,
    "append": _one(Op.SET, lambda a, r: r if isinstance(r, int) else 1),  # APPEND replies the new length
    "strlen": _one(Op.READ_META),
    "del": _each(Op.DEL),
    "unlink": _each(Op.DEL),
    "exists": _each(Op.READ_META),
    "ttl": _one(Op.READ_META),
    "pttl": _one(Op.READ_META),
    "type": _one(Op.READ_META),
    "persist": _one(Op.WRITE_META),
    "object": _one(Op.READ_META, at=2),  # OBJECT FREQ|ENCODING|IDLETIME|REFCOUNT key
}


class CommandMonitor:
    """One core's command monitor: subscribe for a capture; the dispatcher feeds it while any is open."""

    def __init__(self, cmds: Commands):
        self.cmds = cmds
        self.feed = Feed(self._switch)

    def _switch(self, active: bool) -> None:
        self.cmds.monitor = self if active else None

    def subscribe(self, limit: int = DEFAULT_LIMIT) -> Subscriber:
        return self.feed.subscribe(limit)

    def unsubscribe(self, s: Subscriber) -> None:
        self.feed.unsubscribe(s)

    def command(self, name: str, args: list[bytes], reply: Reply) -> None:
        keys = KEYS.get(name)
        if keys is None:
            return
        record = self.feed.record
        for key, size, op in keys(args, reply):
            record(key_id(key), size, op)
