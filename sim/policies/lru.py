"""LRU: evict the entry whose last access is the oldest. Exact, not sampled.

The classic (Mattson, Gecsei, Slutz and Traiger, "Evaluation techniques for storage
hierarchies", IBM Systems Journal 1970, where it is the model stack algorithm). One
recency-ordered list: a hit moves the slot to the most-recent end (list_move, as Linux's
lru_cache_add/activate do), the victim is taken from the least-recent end. Same order as
cachetools.LRUCache, which it equals exactly (tests/sim/policies/test_policies.py checks it).

Arrays (base.py explains slots and storage; lists.py the list conventions):
    pol_prev, pol_next  int32[slots + 1]  the recency list; index `slots` is its sentinel,
                        next[sentinel] = most recent, prev[sentinel] = least recent (victim);
                        -1 in both = slot not present
    pol_meta            int64[2]          capacity, number of present slots
Invariants: the list holds exactly the present slots, each once; its length is pol_meta[SIZE].

Properties. LRU is a stack algorithm: the contents of a cache of size C are always a
subset of those of size C + 1 on the same trace, so its misses never rise with capacity
(no Belady anomaly; on 1,2,3,4,1,2,5,1,2,3,4,5 it has 10 faults with 3 frames, 8 with 4).
It adapts to recency at once but cannot tell one hit from many, so a scan or a burst of
one-hit wonders flushes the whole cache; on Zipf it sits between FIFO and the
frequency-aware policies (with 808 of 100k Zipf 1.0 objects cached, libCacheSim: FIFO .556,
LRU .514, LFU .425, S3-FIFO .419). What it costs is the reason real systems
approximate it: every hit writes the list (a lock, cache-line traffic across cores), so
Redis samples 5 keys against a 24-bit clock, Linux keeps two lists and reference bits,
and CLOCK/SIEVE replace the move by setting one bit. This module is the yardstick those
approximations are measured against.
"""

from __future__ import annotations

from typing import Any

from memsim.sim.machine.shm import ArraySpec
from memsim.sim.policies.base import SIZE, Policy, register
from memsim.sim.policies.lists import init_sentinels, unlink, walk


@register("lru")
class LRU(Policy):
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
        # list_move to the head, inlined: this is the simulator's hottest path
        nxt = self._next
        if not 0 <= slot < self.slots:
            raise self._out_of_range(slot)
        n = nxt[slot]
        if n < 0:
            raise KeyError(slot)
        prv = self._prev
        p = prv[slot]
        h = self._head
        if p == h:
            return  # already the most recent
        nxt[p] = n
        prv[n] = p
        first = nxt[h]
        nxt[slot] = first
        prv[slot] = h
        prv[first] = slot
        nxt[h] = slot

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
        """Present slots from most to least recently used (for tests and explanations)."""
        return walk(self._prev, self._next, self._head, self.slots)[0]

    def __contains__(self, slot: object) -> bool:
        i = self._index(slot)
        return i >= 0 and bool(self._next[i] >= 0)

    def check(self) -> list[str]:
        members, problems = walk(self._prev, self._next, self._head, self.slots)
        problems += self._check_size(len(members))
        linked = sum(1 for s in range(self.slots) if self._next[s] >= 0)
        if linked != len(members):
            problems.append(f"{linked} slots have links but {len(members)} are on the list")
        return problems
