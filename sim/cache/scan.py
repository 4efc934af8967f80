"""KEYS and SCAN: the keyspace walked against a glob pattern, as Redis's src/db.c keysCommand and
scanGenericCommand, each bounded in the reply it builds and in the matching it may do.

Owns: the two commands' argument parsing and their bounds. Touches: nothing shared but through
db.py's `scan` (which takes each stripe's lock in turn, never two).

Bounds. A pattern is matched without backtracking (glob.py), but a long key against a pattern with
long runs of `?` or `[...]` still costs steps, and one call must not hold the core for seconds: each
call gets a `MatchBudget` (the caller's, shrunk to what its pipeline message has left). KEYS has no
cursor to stop at, so when its budget is spent it refuses; SCAN stops at the cursor it reached and
returns fewer keys than COUNT, as Redis's SCAN may. KEYS builds its whole reply before the server
sees it, so it counts the bytes as it goes against one reply's payload limit and refuses past it
(the server sets that limit to server/limits.py's MAX_REPLY_BYTES); SCAN stops short of it instead.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol

from memsim.sim.cache.glob import GlobPattern, MatchBudget, MatchBudgetSpent, compile_glob
from memsim.sim.cache.util import E_SYNTAX, parse_int64, string2ll
from memsim.sim.cache.util import upper as _upper
from memsim.sim.errors import InvalidArgument, ResourceExhausted

# KEYS's reply limit when the interpreter runs without a server (the server passes its wire limit).
KEYS_REPLY_BYTES = 24 << 20
# SCAN's reply holds its cursor too: at most 20 digits
CURSOR_BYTES = 20


class Scannable(Protocol):
    def scan(self, cursor: int, count: int = 10, match: Callable[[bytes], bool] | None = None,
             max_bytes: int | None = None) -> tuple[int, list[bytes]]: ...


Charge = Callable[[MatchBudget], None]  # charges what a budget spent to the pipeline message (Commands.matched)
Note = Callable[[], str]  # what the refusal says of the pipeline message's own limit (Commands.pipeline_note)


def matcher(glob: GlobPattern | None, budget: MatchBudget) -> Callable[[bytes], bool] | None:
    """The keyspace's `match` for a pattern, charged to budget; None when every key matches."""
    if glob is None or glob.matches_all:
        return None
    return partial(glob.matches, budget=budget)


def keys(ks: Scannable, pattern: bytes, budget: MatchBudget, reply_bytes: int, note: Note, charge: Charge
         ) -> list[bytes]:
    """KEYS pattern: a whole SCAN in one call. Its matching has one budget for the whole keyspace;
    spent, KEYS refuses (SCAN goes on from its cursor instead)."""
    match = matcher(compile_glob(pattern), budget)
    out: list[bytes] = []
    size = 0
    cursor = 0
    while True:
        try:
            cursor, found = ks.scan(cursor, 1000, match, max_bytes=reply_bytes - size)
        except MatchBudgetSpent:
            raise _keys_over_budget(pattern, budget, note()) from None
        finally:
            charge(budget)
        if budget.spent:  # the scan stopped early at its cursor: KEYS has no cursor to give
            raise _keys_over_budget(pattern, budget, note())
        out += found
        size += sum(len(k) for k in found)
        if size > reply_bytes:  # counted as it is built: a big keyspace cannot make it grow without end
            raise ResourceExhausted(f"ERR KEYS {pattern[:64].decode('utf-8', 'replace')!r} matches more than "
                                    f"{reply_bytes} bytes of keys, over the one-reply limit; use SCAN")
        if cursor == 0:
            return out


def _keys_over_budget(pattern: bytes, budget: MatchBudget, note: str) -> ResourceExhausted:
    return ResourceExhausted(f"ERR KEYS {pattern[:64].decode('utf-8', 'replace')!r}: matching the keys against "
                             f"this pattern takes more than the {budget.limit}-step match limit (long keys and long "
                             f"runs of ? or [...]{note}); use SCAN, which stops at the limit and goes on from its "
                             f"cursor")


def parse_scan(a: list[bytes]) -> tuple[int, int, bytes | None, bool]:
    """SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]: (cursor, count, pattern, whether strings
    are asked for), with Redis's errors."""
    cursor = string2ll(a[1])  # Redis: string2ull; a cursor past the table is refused by the keyspace
    if cursor is None or cursor < 0:
        raise InvalidArgument("ERR invalid cursor")
    count, pattern, strings = 10, None, True
    i = 2
    while i < len(a):
        opt = _upper(a[i])
        if opt == "COUNT" and i + 1 < len(a):
            count = parse_int64(bytes(a[i + 1]))
            if count < 1:
                raise InvalidArgument(E_SYNTAX)
        elif opt == "MATCH" and i + 1 < len(a):
            pattern = a[i + 1]  # the last MATCH wins, as in Redis; only that one is compiled
        elif opt == "TYPE" and i + 1 < len(a):
            strings = _upper(a[i + 1]) == "STRING"  # only strings live here
        else:
            raise InvalidArgument(E_SYNTAX)
        i += 2
    return cursor, count, pattern, strings


def scan(ks: Scannable, cursor: int, count: int, pattern: bytes | None, budget: MatchBudget, reply_bytes: int,
         note: Note, charge: Charge) -> tuple[int, list[bytes]]:
    """One SCAN call: (next cursor, keys). Like KEYS, bounded by the one-reply limit, and its matching
    by the budget: either cuts the call short with the cursor where it stopped."""
    glob = compile_glob(bytes(pattern)) if pattern is not None else None
    try:
        return ks.scan(cursor, count, matcher(glob, budget), max_bytes=reply_bytes - CURSOR_BYTES)
    except MatchBudgetSpent:  # not one bucket's keys matched within a whole budget
        charge(budget)
        raise ResourceExhausted(f"ERR SCAN MATCH: matching the keys at cursor {cursor} against this pattern takes "
                                f"more than the {budget.limit}-step match limit (long keys and long runs of ? or "
                                f"[...]{note()}); use a shorter pattern") from None
    finally:
        charge(budget)  # charging twice is harmless: the second finds nothing new spent
