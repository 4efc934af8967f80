"""CLOCK: FIFO with a second chance, one reference bit per key and a hand.

Corbató's algorithm for Multics ("A paging experiment with the Multics system", 1968),
the textbook approximation of LRU that operating systems can afford: the hardware sets a
page's accessed bit (x86 PTE bit 5) on every access for free, and only the replacement
path reads and clears it. The keys sit on a circle in arrival order; to evict, the hand
looks at the key under it: referenced → clear the bit and move on (the key survives one
more revolution), unreferenced → that is the victim.

Here the circle is an OrderedDict whose first item is the key under the hand. Passing
over a referenced key is move_to_end; the new key is appended at the end, i.e. it takes
the slot just behind the hand and is the last one the hand will look at, exactly where a
ring buffer puts it (the freed slot, after which the hand advances). This is the same
policy as "FIFO-Reinsertion", and the one libCacheSim calls Clock (1-bit default).

Choices: a key enters with its bit CLEAR (it must be hit once to earn a second chance),
as in libCacheSim and in SIEVE's and S3-FIFO's papers. Setting it at insertion, as a
page fault's own access would in hardware, makes every resident key look referenced after
a fill and turns the next eviction into a full sweep; pass `referenced_on_insert=True`
for that variant. One bit only (libCacheSim's "Clock-2" etc. keep small counters).

Properties. A hit costs one bit write, no list surgery, so it scales like FIFO; misses
sit just below LRU's (ANCHORS §9: .5027 against .5144 on Zipf 1.0, 808 objects). The hand
is amortized O(1): each key it skips had its bit set by an earlier hit. Not a stack
algorithm. NOTE: the CLOCK of OSTEP's homework (paging-policy.py) is a different,
randomised policy: each access bumps a per-page counter capped at 2 and the eviction
probes random pages, decrementing, until it finds a zero (ANCHORS §8); its numbers will
not match these.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from memsim.sim.policies.base import Policy, register


@register("clock")
class Clock(Policy):
    def __init__(self, capacity: int, *, referenced_on_insert: bool = False):
        super().__init__(capacity)
        self._ring: OrderedDict[Hashable, bool] = OrderedDict()  # first = under the hand; value = reference bit
        self._bit_on_insert = referenced_on_insert

    def insert(self, key: Hashable) -> None:
        if key in self._ring:
            raise self._present(key)
        self._ring[key] = self._bit_on_insert

    def hit(self, key: Hashable) -> None:
        if key not in self._ring:
            raise KeyError(key)
        self._ring[key] = True

    def remove(self, key: Hashable) -> None:
        del self._ring[key]

    def evict(self) -> Hashable:
        ring = self._ring
        if not ring:
            raise self._empty()
        while True:
            key, referenced = ring.popitem(last=False)
            if not referenced:
                return key
            ring[key] = False  # second chance: back behind the hand, bit cleared

    def referenced(self, key: Hashable) -> bool:
        """The reference bit of a present key."""
        return self._ring[key]

    def __len__(self) -> int:
        return len(self._ring)

    def __contains__(self, key: object) -> bool:
        return key in self._ring
