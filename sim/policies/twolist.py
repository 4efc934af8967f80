"""Two lists: Linux's active/inactive LRU (mm/vmscan.c, mm/swap.c, mm/workingset.c).

Linux does not keep one LRU of pages; it keeps two, so that a page touched once (a
streamed file, a one-off scan) cannot push out the working set. A new page enters the
INACTIVE list; a second access while it is there promotes it to the ACTIVE list
(mark_page_accessed → folio_activate); reclaim takes victims from the tail of the
inactive list only; and when the active list grows too large relative to the inactive
one (inactive_is_low), its tail is demoted to the head of the inactive list
(shrink_active_list), where a page gets one more chance to be re-referenced before it is
reclaimed. The inactive list is thus a probation queue and the active list a protected
segment, the same idea as 2Q (Johnson and Shasha, VLDB 1994) and SLRU.

Model, and what it simplifies:
- insert → inactive head. hit on an inactive key → active head (the insertion counts as
  the first access, so the first hit is the "second access" that activates). hit on an
  active key → active head (the list is kept in recency order; Linux approximates that
  with the accessed bits it samples during reclaim, this model is exact).
- The active list holds at most `active_ratio` × capacity keys (default 0.5: "at most
  half"). Whenever a promotion makes it larger, its tail is demoted to the inactive head.
  Linux compares the two lists' current sizes instead (inactive × ratio < active, the
  ratio growing with √memory); at the default half and a full cache the rules coincide.
- evict() takes the inactive tail; if the inactive list is empty (tiny caches, or an owner
  that removed keys), the active tail is demoted first, as Linux refills inactive.
- No shadow entries: Linux's workingset.c records a shadow for each evicted page to
  measure its refault distance and activate it directly on a quick refault; this model
  forgets evicted keys, as LRU does (S3-FIFO's ghost queue is that idea).
- One list pair, not Linux's four (anon/file × active/inactive) nor MGLRU's generations.

Properties. Scan resistant where LRU is not: a burst of one-hit keys cycles through the
inactive list and never touches the active half. The price is the new key's short life:
it must be hit again within one inactive-list residence (about half the cache) or it is
gone. On a stationary Zipf trace it behaves like a segmented LRU: on ANCHORS §9's Zipf 1.0
trace with 808 objects it misses .4557, between LRU (.5144) and 2Q (.4351), and .2585 with
8081 (LRU .2871, 2Q .2518). Every operation is O(1): two OrderedDicts.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from memsim.sim.policies.base import Policy, register


@register("twolist")
class TwoList(Policy):
    def __init__(self, capacity: int, *, active_ratio: float = 0.5):
        super().__init__(capacity)
        if not 0.0 <= active_ratio <= 1.0:
            raise ValueError(f"active_ratio must be in [0, 1], got {active_ratio}")
        self.active_ratio = active_ratio
        self.max_active = int(active_ratio * capacity)
        # first item = tail (oldest), last item = head (newest), in both lists
        self._inactive: OrderedDict[Hashable, None] = OrderedDict()
        self._active: OrderedDict[Hashable, None] = OrderedDict()

    def insert(self, key: Hashable) -> None:
        if key in self._inactive or key in self._active:
            raise self._present(key)
        self._inactive[key] = None

    def hit(self, key: Hashable) -> None:
        if key in self._active:
            self._active.move_to_end(key)
            return
        del self._inactive[key]  # KeyError if absent from both
        active = self._active
        active[key] = None
        while len(active) > self.max_active:
            demoted = active.popitem(last=False)[0]
            self._inactive[demoted] = None

    def remove(self, key: Hashable) -> None:
        if key in self._active:
            del self._active[key]
        else:
            del self._inactive[key]

    def evict(self) -> Hashable:
        if not self._inactive:
            if not self._active:
                raise self._empty()
            self._inactive[self._active.popitem(last=False)[0]] = None
        return self._inactive.popitem(last=False)[0]

    def is_active(self, key: Hashable) -> bool:
        """Whether a present key is on the active list (KeyError if absent)."""
        if key in self._active:
            return True
        if key in self._inactive:
            return False
        raise KeyError(key)

    def __len__(self) -> int:
        return len(self._inactive) + len(self._active)

    def __contains__(self, key: object) -> bool:
        return key in self._inactive or key in self._active
