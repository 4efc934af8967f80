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
- insert → inactive head. hit on an inactive slot → active head (the insertion counts as
  the first access, so the first hit is the "second access" that activates). hit on an
  active slot → active head (the list is kept in recency order; Linux approximates that
  with the accessed bits it samples during reclaim, this model is exact).
- The active list holds at most `active_ratio` × capacity entries (default 0.5: "at most
  half"). Whenever a promotion makes it larger, its tail is demoted to the inactive head.
  Linux compares the two lists' current sizes instead (inactive × ratio < active, the
  ratio growing with √memory); at the default half and a full cache the rules coincide.
  After set_capacity() shrinks the share, the next promotion demotes the excess.
- evict() takes the inactive tail; if the inactive list is empty (tiny caches, or an owner
  that removed entries), the active tail is demoted first, as Linux refills inactive.
- No shadow entries: Linux's workingset.c records a shadow for each evicted page to
  measure its refault distance and activate it directly on a quick refault; this model
  forgets evicted entries, as LRU does (S3-FIFO's ghost queue is that idea).
- One list pair, not Linux's four (anon/file × active/inactive) nor MGLRU's generations.

Arrays (base.py explains slots and storage; lists.py the list conventions): like the
lruvec's lists, the two lists share one pair of link arrays (a page is on one list at most).
    pol_prev, pol_next  int32[slots + 2]  both lists; index `slots` is the inactive list's
                        sentinel, `slots + 1` the active list's; next[sentinel] = head
                        (newest), prev[sentinel] = tail (oldest); -1 in both = not present
    pol_where           int8[slots]       0 absent, 1 on the inactive list, 2 on the active
                                          (Linux's PG_active)
    pol_ratio           float64[1]        active_ratio, fixed when the policy is created
    pol_meta            int64[4]          capacity, number of present slots, max_active
                                          (⌊active_ratio × capacity⌋), active list length
Invariants: each present slot is on exactly the list pol_where names; the lists' lengths
add up to pol_meta[SIZE], the active one's is pol_meta[ACTIVE_LEN].

Properties. Scan resistant where LRU is not: a burst of one-hit entries cycles through the
inactive list and never touches the active half. The price is the new entry's short life:
it must be hit again within one inactive-list residence (about half the cache) or it is gone.
On a stationary Zipf trace it behaves like a segmented LRU: on a 1M-request Zipf 1.0 trace of
100k objects (seed 42) replayed by libCacheSim 0.3.5, with 808 objects cached it misses .4557,
between LRU (.5144) and 2Q (.4351), and .2585 with 8081 (LRU .2871, 2Q .2518; LRU's and 2Q's
figures are libCacheSim's). Every operation is O(1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memsim.sim.machine.shm import ArraySpec
from memsim.sim.policies.base import SIZE, Policy, register
from memsim.sim.policies.lists import fill, init_sentinels, move_after, pop_tail, push_head, unlink, walk

MAX_ACTIVE = 2
ACTIVE_LEN = 3

ABSENT, INACTIVE, ACTIVE = 0, 1, 2


@register("twolist")
class TwoList(Policy):
    def __init__(
        self,
        capacity: int,
        *,
        slots: int | None = None,
        arrays: Mapping[str, Any] | None = None,
        init: bool = True,
        active_ratio: float | None = None,
    ):
        if active_ratio is not None and not 0.0 <= active_ratio <= 1.0:
            raise ValueError(f"active_ratio must be in [0, 1], got {active_ratio}")
        self._option = 0.5 if active_ratio is None else float(active_ratio)
        super().__init__(capacity, slots=slots, arrays=arrays, init=init)
        if active_ratio is not None and active_ratio != self.active_ratio:
            raise ValueError(f"active_ratio={active_ratio} but the attached policy has {self.active_ratio}")

    @classmethod
    def array_specs(cls, slots: int) -> list[ArraySpec]:
        return [
            ArraySpec("pol_prev", "int32", (slots + 2,)),
            ArraySpec("pol_next", "int32", (slots + 2,)),
            ArraySpec("pol_where", "int8", (slots,)),
            ArraySpec("pol_ratio", "float64", (1,)),
            ArraySpec("pol_meta", "int64", (4,)),
        ]

    def _bind(self, arrays: dict[str, Any]) -> None:
        self._prev = arrays["pol_prev"]
        self._next = arrays["pol_next"]
        self._where = arrays["pol_where"]
        self._ratio = arrays["pol_ratio"]
        self._inactive = self.slots  # the sentinels
        self._active = self.slots + 1

    def _reset(self) -> None:
        init_sentinels(self._prev, self._next, self.slots, 2)
        fill(self._where, ABSENT)
        self._ratio[0] = self._option
        self._meta[ACTIVE_LEN] = 0

    def _resized(self, capacity: int) -> None:
        self._meta[MAX_ACTIVE] = int(self._ratio[0] * capacity)

    @property
    def active_ratio(self) -> float:
        return float(self._ratio[0])

    @property
    def max_active(self) -> int:
        return int(self._meta[MAX_ACTIVE])

    def insert(self, slot: int, fingerprint: int = 0) -> None:
        if not 0 <= slot < self.slots:
            raise self._out_of_range(slot)
        if self._where[slot]:
            raise self._present(slot)
        push_head(self._prev, self._next, self._inactive, slot)
        self._where[slot] = INACTIVE
        self._meta[SIZE] += 1

    def hit(self, slot: int) -> None:
        if not 0 <= slot < self.slots:
            raise self._out_of_range(slot)
        where = self._where
        w = where[slot]
        prv, nxt, active = self._prev, self._next, self._active
        if w == ACTIVE:
            move_after(prv, nxt, active, slot)
            return
        if not w:
            raise KeyError(slot)
        move_after(prv, nxt, active, slot)  # promote: inactive → active head
        where[slot] = ACTIVE
        meta = self._meta
        n_active = meta[ACTIVE_LEN] + 1
        inactive, max_active = self._inactive, meta[MAX_ACTIVE]
        while n_active > max_active:
            demoted = pop_tail(prv, nxt, active)
            push_head(prv, nxt, inactive, demoted)
            where[demoted] = INACTIVE
            n_active -= 1
        meta[ACTIVE_LEN] = n_active

    def remove(self, slot: int) -> None:
        if not 0 <= slot < self.slots:
            raise self._out_of_range(slot)
        w = self._where[slot]
        if not w:
            raise KeyError(slot)
        unlink(self._prev, self._next, slot)
        self._where[slot] = ABSENT
        if w == ACTIVE:
            self._meta[ACTIVE_LEN] -= 1
        self._meta[SIZE] -= 1

    def evict(self) -> int:
        prv, nxt, meta = self._prev, self._next, self._meta
        victim = pop_tail(prv, nxt, self._inactive)
        if victim < 0:
            # the inactive list is empty: refill it from the active tail first, as Linux does
            demoted = pop_tail(prv, nxt, self._active)
            if demoted < 0:
                raise self._empty()
            meta[ACTIVE_LEN] -= 1
            victim = demoted
        self._where[victim] = ABSENT
        meta[SIZE] -= 1
        return victim

    def is_active(self, slot: int) -> bool:
        """Whether a present slot is on the active list (KeyError if absent)."""
        if slot not in self:
            raise KeyError(slot)
        return self._where[slot] == ACTIVE

    def lists(self) -> tuple[list[int], list[int]]:
        """(active, inactive), each from head (newest) to tail (oldest); for tests and explanations."""
        return (walk(self._prev, self._next, self._active, self.slots)[0],
                walk(self._prev, self._next, self._inactive, self.slots)[0])

    def __contains__(self, slot: object) -> bool:
        i = self._index(slot)
        return i >= 0 and bool(self._where[i])

    def check(self) -> list[str]:
        inactive, problems = walk(self._prev, self._next, self._inactive, self.slots)
        active, more = walk(self._prev, self._next, self._active, self.slots)
        problems += more
        problems += self._check_size(len(inactive) + len(active))
        if len(active) != self._meta[ACTIVE_LEN]:
            problems.append(f"pol_meta says the active list holds {int(self._meta[ACTIVE_LEN])}, "
                            f"it holds {len(active)}")
        want = {s: INACTIVE for s in inactive} | {s: ACTIVE for s in active}
        if len(want) != len(inactive) + len(active):
            problems.append("a slot is on both lists")
        for s in range(self.slots):
            if self._where[s] != want.get(s, ABSENT):
                problems.append(f"slot {s}: pol_where = {int(self._where[s])}, lists say {want.get(s, ABSENT)}")
        return problems
