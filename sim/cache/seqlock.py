"""A stripe's seqlock (Linux's seqlock_t, include/linux/seqlock.h): the lock-free GET's reason to trust what it read.

Owns: one stripe's sequence count (ks_seq[i]), bumped only by the holder of the stripe's lock
(`keyspace/<i>`). Invariant: the count is odd exactly while a writer holds the stripe (the
outermost hold: the lock is re-entrant), so a reader that saw the same even count before and
after its reads saw no change (db.py says which changes happen under the stripe lock).
"""

from __future__ import annotations

import platform

from memsim.sim.machine.locks import SharedLock

# Optimistic reads rely on x86-64's ordering (TSO: loads are not reordered with older loads,
# stores not with older stores), as Linux's seqcount does with its barriers compiled away
# there; Python has no portable fence, so elsewhere every read takes its stripe lock.
OPTIMISTIC_READS = platform.machine() in ("x86_64", "AMD64")


class SeqStripe:
    """A stripe's lock plus its sequence count: Linux's seqlock_t (a lock and a seqcount).

    Writers (anything under the stripe lock) make the count odd on the outermost acquire and
    even again on the outermost release. A GET reads without the lock: it notes the count
    (odd: a writer is inside, take the lock instead), walks the chain and copies the value,
    and keeps the result only if the count is still the same; otherwise it takes the lock.
    Every change to a chain, an entry on it or its value object happens under the stripe's
    lock, and an entry or object is freed only by such a change, so an unchanged count means
    nothing the reader looked at changed. What the reader saw in between may be garbage (a
    freed entry, reused memory): it is bounded (chain steps, heap bounds) and thrown away."""

    __slots__ = ("depth", "i", "lock", "seq")

    def __init__(self, lock: SharedLock, seq: memoryview, i: int):
        self.lock, self.seq, self.i = lock, seq, i
        self.depth = 0

    def __enter__(self) -> SeqStripe:
        self.lock.acquire()
        self.depth += 1
        if self.depth == 1:
            self.seq[self.i] += 1
        return self

    def __exit__(self, *exc: object) -> None:
        if self.depth == 1:
            self.seq[self.i] += 1
        self.depth -= 1
        self.lock.release()

    @property
    def held(self) -> bool:
        return self.depth > 0

    @property
    def name(self) -> str:
        return self.lock.name
