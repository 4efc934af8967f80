"""FIFO: evict the key that entered first; hits change nothing.

The oldest policy there is (the first paging systems, and the baseline of Belady's 1966
study). One queue in insertion order; a hit costs nothing at all, not even a bit, which
is its whole appeal: no metadata update on the read path, so no lock and no shared
cache line, and flash- and log-structured caches that cannot reorder in place use it.

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

from collections import OrderedDict
from collections.abc import Hashable

from memsim.sim.policies.base import Policy, register


@register("fifo")
class FIFO(Policy):
    def __init__(self, capacity: int):
        super().__init__(capacity)
        self._queue: OrderedDict[Hashable, None] = OrderedDict()  # first = oldest insertion

    def insert(self, key: Hashable) -> None:
        if key in self._queue:
            raise self._present(key)
        self._queue[key] = None

    def hit(self, key: Hashable) -> None:
        if key not in self._queue:
            raise KeyError(key)

    def remove(self, key: Hashable) -> None:
        del self._queue[key]

    def evict(self) -> Hashable:
        if not self._queue:
            raise self._empty()
        return self._queue.popitem(last=False)[0]

    def __len__(self) -> int:
        return len(self._queue)

    def __contains__(self, key: object) -> bool:
        return key in self._queue
