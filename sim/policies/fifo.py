"""FIFO: evict the entry that entered first; hits change nothing.

The oldest policy there is (the first paging systems, and the baseline of Belady's 1966
study). One queue in insertion order; a hit costs nothing at all, not even a bit, which
is its whole appeal: no metadata update on the read path, so no lock and no shared
cache line, and flash- and log-structured caches that cannot reorder in place use it.

Arrays (base.py explains slots and storage; lists.py the list conventions):
    pol_prev, pol_next  int32[slots + 1]  the queue; index `slots` is its sentinel,
                        next[sentinel] = newest, prev[sentinel] = oldest (the victim);
                        -1 in both = slot not present
    pol_meta            int64[2]          capacity, number of present slots
Invariants: the queue holds exactly the present slots, each once, in insertion order; its
length is pol_meta[1].

Properties. FIFO is not a stack algorithm and shows Belady's anomaly: on
1,2,3,4,1,2,5,1,2,3,4,5 it has 9 faults with 3 frames and 10 with 4 (Belady, Nelson and
Shedler, CACM 1969). It ignores popularity entirely, so it is the worst of the usual
policies on skewed traces (ANCHORS §9: Zipf 1.0, 0.8 % of the objects cached, .556
misses against LRU's .514). The modern FIFO-based policies keep its cheap hit and fix its
blindness with one or two bits: CLOCK (reinsert if referenced), SIEVE (keep referenced
objects in place, a hand that does not reset) and S3-FIFO (a small probationary FIFO that
filters one-hit wonders). Same order as cachetools.FIFOCache, which it equals exactly.
"""

from __future__ import annotations

from typing import Any

from memsim.sim.machine.shm import ArraySpec
from memsim.sim.policies.base import SIZE, Policy, register
from memsim.sim.policies.lists import init_sentinels, unlink, walk


@register("fifo")
class FIFO(Policy):
    @classmethod
    def array_specs(cls, slots: int) -> list[ArraySpec]:
        return [
            ArraySpec("pol_prev", "int32", (slots + 1,)),
            ArraySpec("pol_next", "int32", (slots + 1,)),
            ArraySpec("pol_meta", "int64", (2,)),
        ]

    def _bind(self, arrays: dict[str, Any]) -> None:
        self._prev = arrays["pol_prev"]
        self._next = arrays["pol_next"]
        self._head = self.slots  # the sentinel

    def _reset(self) -> None:
        init_sentinels(self._prev, self._next, self._head, 1)

    def insert(self, slot: int, fingerprint: int = 0) -> None:
        nxt = self._next
        if not 0 <= slot < self.slots:
            raise self._out_of_range(slot)
        if nxt[slot] >= 0:
            raise self._present(slot)
        prv, h = self._prev, self._head
        first = nxt[h]  # lists.push_head, inlined: once per miss of the trace simulator
        nxt[slot] = first
        prv[slot] = h
        prv[first] = slot
        nxt[h] = slot
        self._meta[SIZE] += 1

    def hit(self, slot: int) -> None:
        if not 0 <= slot < self.slots:
            raise self._out_of_range(slot)
        if self._next[slot] < 0:
            raise KeyError(slot)

    def remove(self, slot: int) -> None:
        if not 0 <= slot < self.slots:
            raise self._out_of_range(slot)
        if self._next[slot] < 0:
            raise KeyError(slot)
        unlink(self._prev, self._next, slot)
        self._meta[SIZE] -= 1

    def evict(self) -> int:
        prv, h = self._prev, self._head
        victim = prv[h]  # lists.pop_tail, inlined: once per miss of the trace simulator
        if victim == h:
            raise self._empty()
        nxt = self._next
        p = prv[victim]
        nxt[p] = h
        prv[h] = p
        prv[victim] = nxt[victim] = -1
        self._meta[SIZE] -= 1
        return int(victim)

    def order(self) -> list[int]:
        """Present slots from newest to oldest (for tests and explanations)."""
        return walk(self._prev, self._next, self._head, self.slots)[0]

    def __contains__(self, slot: object) -> bool:
        try:
            return bool(0 <= slot < self.slots and self._next[slot] >= 0)  # type: ignore[operator]
        except TypeError:  # not a slot number at all
            return False

    def check(self) -> list[str]:
        members, problems = walk(self._prev, self._next, self._head, self.slots)
        problems += self._check_size(len(members))
        linked = sum(1 for s in range(self.slots) if self._next[s] >= 0)
        if linked != len(members):
            problems.append(f"{linked} slots have links but {len(members)} are on the list")
        return problems
