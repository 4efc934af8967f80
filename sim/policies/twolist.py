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

Options (stored in the arrays; `preset="libcachesim"` sets libCacheSim's SLRU.c with n-seg=2, whose
miss counts it then equals on even capacities, tests/sim/policies/test_peers.py; with an odd one
libCacheSim's two ⌊capacity/2⌋ segments hold one object less than its cache). default / libcachesim:
- active_ratio 0.5 / 0.5: the active list's share (libCacheSim: capacity / n-seg per segment).
- warmup "inactive" / "fill": a new entry goes to the inactive list (Linux: lru_cache_add puts a
  new page on the inactive list), or, while the inactive list holds its share
  (capacity − max_active) and the active list has room, to the active list: SLRU_insert's
  "lowest segment with space", which only differs while the cache fills.

Arrays (base.py explains slots and storage; lists.py the list conventions): like the
lruvec's lists, the two lists share one pair of link arrays (a page is on one list at most).
    pol_prev, pol_next  int32[slots + 2]  both lists; index `slots` is the inactive list's
                        sentinel, `slots + 1` the active list's; next[sentinel] = head
                        (newest), prev[sentinel] = tail (oldest); -1 in both = not present
    pol_where           int8[slots]       0 absent, 1 on the inactive list, 2 on the active
                                          (Linux's PG_active)
    pol_ratio           float64[1]        active_ratio, fixed when the policy is created
    pol_meta            int64[5]          capacity, number of present slots, max_active
                                          (⌊active_ratio × capacity⌋), active list length,
                                          warmup (0 inactive, 1 fill)
The operations are compiled kernels over these arrays (base.Kernels; `twolist_*` below).
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

from memsim.sim.machine.jit import njit_kernel
from memsim.sim.machine.shm import ArraySpec
from memsim.sim.policies.base import SIZE, CompiledPolicy, Kernels, State, register
from memsim.sim.policies.lists import fill, init_sentinels, walk

MAX_ACTIVE = 2
ACTIVE_LEN = 3
WARMUP = 4

ABSENT, INACTIVE, ACTIVE = 0, 1, 2
WARMUPS = ("inactive", "fill")
PRESETS: dict[str, dict[str, Any]] = {"linux": {"active_ratio": 0.5, "warmup": "inactive"},
                                      "libcachesim": {"active_ratio": 0.5, "warmup": "fill"}}

# The kernels (base.Kernels' statuses). State: (pol_prev, pol_next, pol_where, pol_ratio, pol_meta);
# the inactive list's sentinel is len(pol_where), the active list's the next.


@njit_kernel
def _link_head(prv: Any, nxt: Any, head: int, slot: int) -> None:
    first = nxt[head]  # lists.push_head
    nxt[slot] = first
    prv[slot] = head
    prv[first] = slot
    nxt[head] = slot


@njit_kernel
def _unlink(prv: Any, nxt: Any, slot: int) -> None:
    p, n = prv[slot], nxt[slot]  # lists.unlink
    nxt[p] = n
    prv[n] = p
    prv[slot] = nxt[slot] = -1


@njit_kernel
def twolist_insert(st: State, slot: int, fingerprint: int) -> int:
    prv, nxt, where, meta = st[0], st[1], st[2], st[4]
    if where[slot]:
        return 1
    inactive = len(where)
    n_active = meta[ACTIVE_LEN]
    if (meta[WARMUP] and meta[SIZE] - n_active >= meta[0] - meta[MAX_ACTIVE]  # meta[0]: the capacity
            and n_active < meta[MAX_ACTIVE]):
        _link_head(prv, nxt, inactive + 1, slot)
        where[slot] = ACTIVE
        meta[ACTIVE_LEN] += 1
    else:
        _link_head(prv, nxt, inactive, slot)
        where[slot] = INACTIVE
    meta[SIZE] += 1
    return 0


@njit_kernel
def twolist_hit(st: State, slot: int) -> int:
    prv, nxt, where, meta = st[0], st[1], st[2], st[4]
    w = where[slot]
    if not w:
        return 1
    inactive = len(where)
    active = inactive + 1
    _unlink(prv, nxt, slot)
    _link_head(prv, nxt, active, slot)  # to the active head: refreshed, or promoted
    if w == ACTIVE:
        return 0
    where[slot] = ACTIVE
    n_active = meta[ACTIVE_LEN] + 1
    while n_active > meta[MAX_ACTIVE]:  # demote the active tail to the inactive head
        demoted = prv[active]
        _unlink(prv, nxt, demoted)
        _link_head(prv, nxt, inactive, demoted)
        where[demoted] = INACTIVE
        n_active -= 1
    meta[ACTIVE_LEN] = n_active
    return 0


@njit_kernel
def twolist_remove(st: State, slot: int) -> int:
    where, meta = st[2], st[4]
    w = where[slot]
    if not w:
        return 1
    _unlink(st[0], st[1], slot)
    where[slot] = ABSENT
    if w == ACTIVE:
        meta[ACTIVE_LEN] -= 1
    meta[SIZE] -= 1
    return 0


@njit_kernel
def twolist_evict(st: State) -> int:
    prv, where = st[0], st[2]
    inactive = len(where)
    victim = prv[inactive]  # the inactive tail
    if victim == inactive:
        # the inactive list is empty: refill it from the active tail first, as Linux does
        victim = prv[inactive + 1]
        if victim == inactive + 1:
            return -1
    twolist_remove(st, victim)
    return victim


@register("twolist")
class TwoList(CompiledPolicy):
    kernels = Kernels(twolist_insert, twolist_hit, twolist_remove, twolist_evict, (0, 1, 2, 3, 4))

    def __init__(
        self,
        capacity: int,
        *,
        slots: int | None = None,
        arrays: Mapping[str, Any] | None = None,
        init: bool = True,
        preset: str | None = None,
        active_ratio: float | None = None,
        warmup: str | None = None,
    ):
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"unknown two-list preset {preset!r}; known: {', '.join(PRESETS)}")
        opts = dict(PRESETS[preset or "linux"])
        given = {"active_ratio": active_ratio, "warmup": warmup}
        opts.update({k: v for k, v in given.items() if v is not None})
        if not 0.0 <= opts["active_ratio"] <= 1.0:
            raise ValueError(f"active_ratio must be in [0, 1], got {opts['active_ratio']}")
        if opts["warmup"] not in WARMUPS:
            raise ValueError(f"warmup must be one of {WARMUPS}, got {opts['warmup']!r}")
        self._options = opts
        super().__init__(capacity, slots=slots, arrays=arrays, init=init)
        stored = {"active_ratio": self.active_ratio, "warmup": WARMUPS[int(self._meta[WARMUP])]}
        for k, v in given.items():
            if (v is not None or preset) and opts[k] != stored[k]:
                raise ValueError(f"{k}={opts[k]!r} but the attached policy has {stored[k]!r}")

    @classmethod
    def array_specs(cls, slots: int) -> list[ArraySpec]:
        return [
            ArraySpec("pol_prev", "int32", (slots + 2,)),
            ArraySpec("pol_next", "int32", (slots + 2,)),
            ArraySpec("pol_where", "int8", (slots,)),
            ArraySpec("pol_ratio", "float64", (1,)),
            ArraySpec("pol_meta", "int64", (5,)),
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
        self._ratio[0] = self._options["active_ratio"]
        self._meta[ACTIVE_LEN] = 0
        self._meta[WARMUP] = WARMUPS.index(self._options["warmup"])

    def _resized(self, capacity: int) -> None:
        self._meta[MAX_ACTIVE] = int(self._ratio[0] * capacity)

    @property
    def active_ratio(self) -> float:
        return float(self._ratio[0])

    @property
    def max_active(self) -> int:
        return int(self._meta[MAX_ACTIVE])

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
