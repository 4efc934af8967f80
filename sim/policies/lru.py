"""LRU: evict the key whose last access is the oldest. Exact, not sampled.

The classic (Mattson, Gecsei, Slutz and Traiger, "Evaluation techniques for storage
hierarchies", IBM Systems Journal 1970, where it is the model stack algorithm). One
recency-ordered list: a hit moves the key to the most-recent end, the victim is taken
from the least-recent end. Here the list is an OrderedDict, whose move_to_end and
popitem(last=False) are O(1) C code, which is also how cachetools.LRUCache does it and
why the two agree exactly.

Properties. LRU is a stack algorithm: the contents of a cache of size C are always a
subset of those of size C + 1 on the same trace, so its misses never rise with capacity
(no Belady anomaly; on 1,2,3,4,1,2,5,1,2,3,4,5 it has 10 faults with 3 frames, 8 with 4).
It adapts to recency at once but cannot tell one hit from many, so a scan or a burst of
one-hit wonders flushes the whole cache; on Zipf it sits between FIFO and the
frequency-aware policies (ANCHORS §9). What it costs is the reason real systems
approximate it: every hit writes the list (a lock, cache-line traffic across cores), so
Redis samples 5 keys against a 24-bit clock, Linux keeps two lists and reference bits,
and CLOCK/SIEVE replace the move by setting one bit. This module is the yardstick those
approximations are measured against.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from memsim.sim.policies.base import Policy, register


@register("lru")
class LRU(Policy):
    def __init__(self, capacity: int):
        super().__init__(capacity)
        self._order: OrderedDict[Hashable, None] = OrderedDict()  # first = least recently used

    def insert(self, key: Hashable) -> None:
        if key in self._order:
            raise self._present(key)
        self._order[key] = None

    def hit(self, key: Hashable) -> None:
        self._order.move_to_end(key)

    def remove(self, key: Hashable) -> None:
        del self._order[key]

    def evict(self) -> Hashable:
        if not self._order:
            raise self._empty()
        return self._order.popitem(last=False)[0]

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key: object) -> bool:
        return key in self._order
