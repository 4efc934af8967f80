"""The command table: Redis's string commands, parsed the way Redis parses them, run on a Keyspace.

One entry per command, as in Redis's commands.def: the name, its arity (n = exactly n
arguments counting the name; -n = at least n), its handler, and, for a command that may need
memory, its `denyoom` (Redis's CMD_DENYOOM): what the write will add to used_memory (`growth`)
and the argument errors that refuse it for what it is before any OOM (`check`), both read from
the argument list. `Commands.execute` runs the check and then admission (evict.py's
Evictor.admit) before the handler of every denyoom entry, as Redis's processCommand() calls
performEvictions(): that is the one call of admission, and no handler or keyspace write admits
on its own. The parsing of the larger commands lives beside what they run: t_string.py parses
SET's options, expire.py EXPIRE's, config.py does CONFIG GET/SET. A handler gets the context
and the argument list and returns a reply of RESP's types, as plain Python values:

    None      nil               int    integer          bytes  bulk string
    str       status ("OK")     list   array of the above

Errors are SimErrors carrying Redis's text ("ERR syntax error", "ERR value is not an integer
or out of range", the OOM text) so that a client shows what redis-cli would; the server maps
their class to a gRPC status code. `execute` raises nothing else: an exception a handler did
not expect becomes a CommandFailed (INTERNAL), so a pipeline reports it in its slot and goes on.
Nothing here knows gRPC: `Commands.execute` is the whole interface, which is what the servicer,
the tests and the local benchmarks call.

Counting is Redis's: total_commands_processed counts every command that was executed,
failed or not (Redis counts a command once it is called); rejected_calls counts those
refused before running (unknown command, wrong arity, OOM).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from memsim.sim.cache.db import check_key
from memsim.sim.cache.evict import (
    LFU_POLICIES,
    OOMError,
    estimate_idle_ms,
    lfu_decr_and_return,
    lfu_minutes,
    lru_clock,
)
from memsim.sim.cache.expire import parse_expire
from memsim.sim.cache.glob import (
    MATCH_STEPS,
    MatchBudget,
)
from memsim.sim.cache.keyspace import Keyspace
from memsim.sim.cache.layout import K_COMMANDS, K_REJECTED
from memsim.sim.cache.scan import KEYS_REPLY_BYTES, keys, parse_scan, scan
from memsim.sim.cache.t_string import NO_SET_OPTIONS, SetOptions, check_value, parse_set_options
from memsim.sim.cache.util import E_SYNTAX, parse_int64
from memsim.sim.cache.util import upper as _upper
from memsim.sim.errors import FailedPrecondition, InvalidArgument, SimError

log = logging.getLogger("memsim.cache")

Reply = None | int | bytes | str | list
OK = "OK"

# A pipeline message runs all its commands under the core's mutex: their matching together may take
# this many steps (~0.4 s), four commands' worth, then KEYS and SCAN MATCH refuse or stop early.
PIPELINE_MATCH_STEPS = 4 * MATCH_STEPS

# Redis's own messages, worded once


class CommandFailed(SimError):
    """A command that failed with an exception no handler expected (a bug): still that command's
    own error reply, so that it cannot abort the pipeline or batch it came in, and logged."""

    code = 13


Handler = Callable[["Commands", list[bytes]], Reply]


def _first_key_missing(c: Commands, a: list[bytes]) -> bool:
    """A denyoom command's `creates` unless it says otherwise: its key (args[1]) does not exist yet."""
    return not c.ks.exists(a[1])


@dataclass(frozen=True)
class Denyoom:
    """A command flagged CMD_DENYOOM, with what admission needs of its argument list: `growth`, the
    bytes the write will add to used_memory (asked only under a maxmemory, outside any stripe lock),
    `check`, which raises the command's own argument errors first (a bad write is refused for what
    it is, not for memory), and `creates`, whether it will make a key (then, with the index full, a
    key is evicted for its entry; overwriting one needs none). Both growth and creates read the
    keyspace without holding a lock across the admission: a racy estimate, as Redis's own
    used_memory check before a command is."""

    growth: Callable[[Commands, list[bytes]], int]
    check: Callable[[Commands, list[bytes]], object] | None = None
    creates: Callable[[Commands, list[bytes]], bool] = _first_key_missing


@dataclass(frozen=True)
class CommandSpec:
    name: str
    arity: int
    denyoom: Denyoom | None
    handler: Handler


COMMANDS: dict[str, CommandSpec] = {}
# A command's name word as clients send it ("SET", "set") -> its entry: the decode, upper() and lower()
# of a known name once per spelling, not once per command. Only names in COMMANDS go in, and at most
# _BY_WORD_MAX spellings (a client cycling the case of every letter cannot grow it without bound).
_BY_WORD: dict[bytes, CommandSpec] = {}
_BY_WORD_MAX = 4096


def command(name: str, arity: int, denyoom: Denyoom | None = None) -> Callable[[Handler], Handler]:
    """Put a handler in the table under `name`."""

    def deco(fn: Handler) -> Handler:
        COMMANDS[name] = CommandSpec(name, arity, denyoom, fn)
        return fn

    return deco


def _int(arg: bytes) -> int:
    return parse_int64(bytes(arg))


class Monitor(Protocol):
    """What the dispatcher feeds a command to while someone captures (monitor.py's CommandMonitor)."""

    def command(self, name: str, args: list[bytes], reply: Reply) -> None: ...


class Commands:
    """The command interpreter one core runs over its Keyspace handle."""

    def __init__(self, ks: Keyspace, info: Callable[[list[str]], str] | None = None,
                 clock: Callable[[], int] | None = None, keys_reply_bytes: int = KEYS_REPLY_BYTES):
        self.ks = ks
        self.info = info  # INFO's text, built by the server (it knows the machine); None: INFO refused
        self.clock = clock or ks.clock
        self.stats = ks.stats
        self.keys_reply_bytes = keys_reply_bytes
        self.match_steps = MATCH_STEPS  # one KEYS or SCAN call's pattern matching (glob.py MatchBudget)
        self.batch_match: MatchBudget | None = None  # what a pipeline message's commands have left
        self.monitor: Monitor | None = None  # set while a capture runs (monitor.py): then fed every command

    @contextmanager
    def match_batch(self, steps: int = PIPELINE_MATCH_STEPS) -> Iterator[None]:
        """Commands run together under the core's mutex (a pipeline message) share `steps` of
        matching, so that many cheap-looking SCANs cannot add up to what one may not spend."""
        self.batch_match = MatchBudget(steps)
        try:
            yield
        finally:
            self.batch_match = None

    def match_budget(self) -> MatchBudget:
        """One command's budget: match_steps, or what its pipeline message has left if less."""
        batch = self.batch_match
        budget = MatchBudget(self.match_steps)
        if batch is not None and batch.left < budget.left:
            budget.left = max(batch.left, 0)
        budget.granted = budget.left
        return budget

    def pipeline_note(self) -> str:
        b = self.batch_match
        return "" if b is None else f", or the {b.limit}-step limit of one pipeline message, {max(b.left, 0)} left"

    def matched(self, budget: MatchBudget) -> None:
        """Charge what a command's matching took since it was last charged to its pipeline message."""
        if self.batch_match is not None:
            self.batch_match.left -= budget.granted - budget.left
        budget.granted = budget.left

    def execute(self, args: list[bytes]) -> Reply:
        """Run one command. Raises a SimError with Redis's message when it fails."""
        if not args:
            self.stats[K_REJECTED] += 1
            raise InvalidArgument("ERR empty command")
        word = args[0]
        spec = _BY_WORD.get(word) if type(word) is bytes else None  # exact bytes: a bytearray is unhashable
        if spec is None:
            spec = COMMANDS.get(_upper(word).lower())
            if spec is not None and type(word) is bytes and len(_BY_WORD) < _BY_WORD_MAX:
                _BY_WORD[word] = spec
        name = spec.name if spec is not None else ""
        if spec is None:
            self.stats[K_REJECTED] += 1
            start = " ".join(f"'{bytes(a).decode('utf-8', 'replace')[:64]}'" for a in args[1:4])
            raise InvalidArgument(f"ERR unknown command '{bytes(args[0]).decode('utf-8', 'replace')[:64]}', "
                                  f"with args beginning with: {start}")
        n = len(args)
        if (spec.arity >= 0 and n != spec.arity) or (spec.arity < 0 and n < -spec.arity):
            self.stats[K_REJECTED] += 1
            raise InvalidArgument(f"ERR wrong number of arguments for '{name}' command")
        self.stats[K_COMMANDS] += 1
        try:
            if spec.denyoom is not None:
                self._admit(spec.denyoom, args)
            reply = spec.handler(self, args)
            # read once: the capture's stream thread sets it to None at any moment (it takes no core mutex)
            if (monitor := self.monitor) is not None:
                monitor.command(name, args, reply)
            return reply
        except OOMError:  # refused by maxmemory before it ran: rejected, not processed (Redis's counting)
            self.stats[K_COMMANDS] -= 1
            self.stats[K_REJECTED] += 1
            raise
        except SimError:
            raise
        except Exception as e:  # one command's failure is its reply, never its caller's
            log.exception("command %r failed", name)
            raise CommandFailed(f"ERR internal error running '{name}': {type(e).__name__}: {e}"[:500]) from e

    def _admit(self, d: Denyoom, args: list[bytes]) -> None:
        """processCommand()'s performEvictions() for a denyoom command: its argument check, then room
        for its growth (Evictor.admit), before its handler runs and with no stripe lock held."""
        if d.check is not None:
            d.check(self, args)
        ev = self.ks.evictor
        if ev is not None and ev.needed():  # the partials only when admission has something to ask
            ev.admit(partial(d.growth, self, args), partial(d.creates, self, args))


# -- strings --------------------------------------------------------------------------------

@command("get", 2)
def _get(c: Commands, a: list[bytes]) -> Reply:
    return c.ks.get(a[1])


def _set_options(c: Commands, a: list[bytes]) -> SetOptions:
    """SET's options; a plain SET key value (the common case) has none to parse, nor a clock to read."""
    return parse_set_options(a[3:], c.clock()) if len(a) > 3 else NO_SET_OPTIONS


def _set_check(c: Commands, a: list[bytes]) -> None:
    _set_options(c, a)
    check_value(a[2])
    check_key(a[1])


def _set_writes(c: Commands, a: list[bytes]) -> tuple[bool, bool]:
    """(whether SET will write at all, whether the key exists): NX on a key that exists and XX on one
    that does not write nothing, and admit nothing."""
    o = _set_options(c, a)
    exists = c.ks.exists(a[1])
    return not ((o.nx and exists) or (o.xx and not exists)), exists


def _set_growth(c: Commands, a: list[bytes]) -> int:
    writes, _ = _set_writes(c, a)
    return c.ks.growth(a[1], len(a[2])) if writes else 0


def _set_creates(c: Commands, a: list[bytes]) -> bool:
    writes, exists = _set_writes(c, a)
    return writes and not exists


@command("set", -3, denyoom=Denyoom(_set_growth, check=_set_check, creates=_set_creates))
def _set(c: Commands, a: list[bytes]) -> Reply:
    o = _set_options(c, a)
    # _set_check ran first (the dispatcher's check of every denyoom command): the value and options are valid
    stored, old = c.ks.set_checked(a[1], a[2], expire_at_ms=o.expire_at_ms, nx=o.nx, xx=o.xx, keepttl=o.keepttl,
                                   get=o.get)
    if o.get:
        return old
    return OK if stored else None


@command("getdel", 2)
def _getdel(c: Commands, a: list[bytes]) -> Reply:
    return c.ks.getdel(a[1])


@command("mget", -2)
def _mget(c: Commands, a: list[bytes]) -> Reply:
    return c.ks.mget(a[1:])


def _mset_check(c: Commands, a: list[bytes]) -> None:
    if len(a) % 2 != 1:
        raise InvalidArgument("ERR wrong number of arguments for 'mset' command")
    for v in a[2::2]:
        check_value(v)
    for k in a[1::2]:
        check_key(k)


def _mset_growth(c: Commands, a: list[bytes]) -> int:
    last = {bytes(k): v for k, v in zip(a[1::2], a[2::2], strict=True)}  # a key given twice: its last value
    return sum(c.ks.growth(k, len(v)) for k, v in last.items())


@command("mset", -3, denyoom=Denyoom(_mset_growth, check=_mset_check,
                                     creates=lambda c, a: not all(c.ks.exists(k) for k in a[1::2])))
def _mset(c: Commands, a: list[bytes]) -> Reply:
    c.ks.mset(list(zip(a[1::2], a[2::2], strict=True)))
    return OK


def _decrby_delta(c: Commands, a: list[bytes]) -> int:
    n = _int(a[2])
    if n == -(1 << 63):
        raise InvalidArgument("ERR decrement would overflow")
    return -n


def _incr(c: Commands, a: list[bytes], delta: Callable[[Commands, list[bytes]], int]) -> Reply:
    return c.ks.incrby(a[1], delta(c, a))


# INCR/DECR/INCRBY/DECRBY: one handler, by how the delta is read (and checked, before admission);
# each may write a new value of up to 20 digits and a sign
_INCR_DELTAS: tuple[tuple[str, int, Callable[[Commands, list[bytes]], int]], ...] = (
    ("incr", 2, lambda c, a: 1), ("decr", 2, lambda c, a: -1), ("incrby", 3, lambda c, a: _int(a[2])),
    ("decrby", 3, _decrby_delta))
def _key_check(c: Commands, a: list[bytes]) -> None:
    check_key(a[1])


def _incr_check(c: Commands, a: list[bytes], delta: Callable[[Commands, list[bytes]], int]) -> None:
    delta(c, a)
    check_key(a[1])


for _name, _arity, _delta in _INCR_DELTAS:
    command(_name, _arity,
            denyoom=Denyoom(lambda c, a: c.ks.growth(a[1], 20), check=partial(_incr_check, delta=_delta)))(
        partial(_incr, delta=_delta))


@command("append", 3, denyoom=Denyoom(lambda c, a: c.ks.growth(a[1], c.ks.strlen(a[1]) + len(a[2])),
                                      check=_key_check))
def _append(c: Commands, a: list[bytes]) -> Reply:
    return c.ks.append(a[1], a[2])


@command("strlen", 2)
def _strlen(c: Commands, a: list[bytes]) -> Reply:
    return c.ks.strlen(a[1])


# -- keys -----------------------------------------------------------------------------------

@command("del", -2)
def _del(c: Commands, a: list[bytes]) -> Reply:
    return sum(c.ks.delete(k) for k in a[1:])


@command("unlink", -2)
def _unlink(c: Commands, a: list[bytes]) -> Reply:
    return _del(c, a)


@command("exists", -2)
def _exists(c: Commands, a: list[bytes]) -> Reply:
    return sum(c.ks.exists(k) for k in a[1:])


def _expire(c: Commands, a: list[bytes], unit_ms: int, absolute: bool) -> Reply:
    """EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT with Redis 7's NX/XX/GT/LT. A time in the past deletes the key."""
    x = parse_expire(a, unit_ms, absolute, c.clock())
    return int(c.ks.expire_at(x.key, x.when_ms, nx=x.nx, xx=x.xx, gt=x.gt, lt=x.lt))


# EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT: one handler, by unit and by whether the time is absolute
for _name, _unit_ms, _absolute in (("expire", 1000, False), ("pexpire", 1, False), ("expireat", 1000, True),
                                   ("pexpireat", 1, True)):
    command(_name, -3)(partial(_expire, unit_ms=_unit_ms, absolute=_absolute))


@command("ttl", 2)
def _ttl(c: Commands, a: list[bytes]) -> Reply:
    ms = c.ks.pttl(a[1])
    return ms if ms < 0 else (ms + 500) // 1000  # Redis rounds: (ttl+500)/1000


@command("pttl", 2)
def _pttl(c: Commands, a: list[bytes]) -> Reply:
    return c.ks.pttl(a[1])


@command("persist", 2)
def _persist(c: Commands, a: list[bytes]) -> Reply:
    return int(c.ks.persist(a[1]))


@command("type", 2)
def _type(c: Commands, a: list[bytes]) -> Reply:
    return "string" if c.ks.exists(a[1]) else "none"  # a status reply, as Redis sends it


@command("keys", 2)
def _keys(c: Commands, a: list[bytes]) -> Reply:
    """KEYS pattern: a whole SCAN in one call (as in Redis, slow on a big keyspace: use SCAN)."""
    return keys(c.ks, bytes(a[1]), c.match_budget(), c.keys_reply_bytes, c.pipeline_note, c.matched)


@command("dbsize", 1)
def _dbsize(c: Commands, a: list[bytes]) -> Reply:
    return c.ks.dbsize()


@command("flushall", -1)
def _flushall(c: Commands, a: list[bytes]) -> Reply:
    if len(a) > 2 or (len(a) == 2 and _upper(a[1]) not in ("SYNC", "ASYNC")):
        raise InvalidArgument(E_SYNTAX)
    c.ks.flushall()
    return OK


@command("flushdb", -1)
def _flushdb(c: Commands, a: list[bytes]) -> Reply:
    return _flushall(c, a)


@command("scan", -2)
def _scan(c: Commands, a: list[bytes]) -> Reply:
    cursor, count, pattern, strings = parse_scan(a)
    nxt, found = scan(c.ks, cursor, count, pattern, c.match_budget(), c.keys_reply_bytes, c.pipeline_note, c.matched)
    return [str(nxt).encode(), found if strings else []]


# -- server ---------------------------------------------------------------------------------

@command("ping", -1)
def _ping(c: Commands, a: list[bytes]) -> Reply:
    if len(a) > 2:
        raise InvalidArgument("ERR wrong number of arguments for 'ping' command")
    return bytes(a[1]) if len(a) == 2 else "PONG"


@command("echo", 2)
def _echo(c: Commands, a: list[bytes]) -> Reply:
    return bytes(a[1])


@command("time", 1)
def _time(c: Commands, a: list[bytes]) -> Reply:
    t = time.time_ns() // 1000
    return [str(t // 1_000_000).encode(), str(t % 1_000_000).encode()]


@command("info", -1)
def _info(c: Commands, a: list[bytes]) -> Reply:
    if c.info is None:
        raise FailedPrecondition("ERR INFO is not available here")
    return c.info([_upper(x).lower() for x in a[1:]]).encode()


@command("config", -2)
def _config(c: Commands, a: list[bytes]) -> Reply:
    sub = _upper(a[1])
    if sub == "GET" and len(a) >= 3:
        return c.ks.config_get([bytes(x) for x in a[2:]])
    if sub == "SET" and len(a) >= 4 and len(a) % 2 == 0:
        c.ks.config_set_pairs([(_upper(k).lower(), bytes(v)) for k, v in zip(a[2::2], a[3::2], strict=True)])
        return OK
    if sub == "RESETSTAT" and len(a) == 2:
        c.ks.reset_stats()
        return OK
    raise InvalidArgument(f"ERR unknown subcommand or wrong number of arguments for 'config|{sub.lower()}'")


@command("object", 3)
def _object(c: Commands, a: list[bytes]) -> Reply:
    sub = _upper(a[1])
    if sub not in ("FREQ", "IDLETIME"):
        raise InvalidArgument(f"ERR unknown subcommand or wrong number of arguments for 'object|{sub.lower()}'")
    field = c.ks.object_field(a[2])
    if field is None:
        return None
    lfu = c.ks.config.policy in LFU_POLICIES
    now = c.clock()
    if sub == "FREQ":
        if not lfu:
            raise FailedPrecondition("ERR An LFU maxmemory policy is not selected, access frequency not tracked. "
                                     "Please note that when switching between policies at runtime LRU and LFU data "
                                     "will take some time to adjust.")
        return lfu_decr_and_return(field, c.ks.config.lfu_decay_time, lfu_minutes(now / 1000.0))
    if lfu:
        raise FailedPrecondition("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that "
                                 "when switching between policies at runtime LRU and LFU data will take some time "
                                 "to adjust.")
    return estimate_idle_ms(field, lru_clock(now)) // 1000


@command("command", -1)
def _command(c: Commands, a: list[bytes]) -> Reply:
    if len(a) >= 2 and _upper(a[1]) == "COUNT":
        return len(COMMANDS)
    return [name.encode() for name in sorted(COMMANDS)]
