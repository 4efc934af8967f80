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
The operations are compiled kernels over these arrays (base.Kernels; `lru_*` below), which the
methods and the trace replay loop (compiled.py) both call.

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

from memsim.sim.machine.jit import njit_kernel
from memsim.sim.machine.shm import ArraySpec
from memsim.sim.policies.base import SIZE, CompiledPolicy, Kernels, State, register
from memsim.sim.policies.lists import init_sentinels, walk

# The kernels (base.Kernels' statuses). State: (pol_prev, pol_next, pol_meta); the sentinel is the
# last index of the link arrays. FIFO (fifo.py) shares all but the hit.


@njit_kernel
def lru_insert(st: State, slot: int, fingerprint: int) -> int:
    prv, nxt, meta = st[0], st[1], st[2]
    if nxt[slot] >= 0:
        return 1
    h = len(nxt) - 1
    first = nxt[h]  # lists.push_head
    nxt[slot] = first
    prv[slot] = h
    prv[first] = slot
    nxt[h] = slot
    meta[SIZE] += 1
    return 0


@njit_kernel
def lru_hit(st: State, slot: int) -> int:
    prv, nxt = st[0], st[1]  # State: (pol_prev, pol_next)
    n = nxt[slot]
    if n < 0:
        return 1
    h = len(nxt) - 1
    p = prv[slot]
    if p == h:
        return 0  # already the most recent
    nxt[p] = n  # list_move to the head
    prv[n] = p
    first = nxt[h]
    nxt[slot] = first
    prv[slot] = h
    prv[first] = slot
    nxt[h] = slot
    return 0


@njit_kernel
def lru_remove(st: State, slot: int) -> int:
    prv, nxt, meta = st[0], st[1], st[2]
    n = nxt[slot]
    if n < 0:
        return 1
    p = prv[slot]  # lists.unlink
    nxt[p] = n
    prv[n] = p
    prv[slot] = nxt[slot] = -1
    meta[SIZE] -= 1
    return 0


@njit_kernel
def lru_evict(st: State) -> int:
    prv, nxt, meta = st[0], st[1], st[2]
    h = len(nxt) - 1
    victim = prv[h]  # lists.pop_tail
    if victim == h:
        return -1
    p = prv[victim]
    nxt[p] = h
    prv[h] = p
    prv[victim] = nxt[victim] = -1
    meta[SIZE] -= 1
    return victim


@register("lru")
class LRU(CompiledPolicy):
    kernels = Kernels(lru_insert, lru_hit, lru_remove, lru_evict, (0, 1))

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
