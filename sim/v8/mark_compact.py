"""The major GC: V8's MarkCompactCollector (`src/heap/mark-compact.cc`), atomic (the mutator
stopped for the whole pause, as V8 without incremental or concurrent marking).

`collect(h, work, force)` runs the phases, each announced in `iso_phase` for recovery (a core
that dies inside any of them leaves the isolate LOST, isolate_table.py):

1. MC_MARK (set by heap.collect_garbage): marking.finish (through incremental_marking.finalize),
   tri-colour from the handles, over every space: the whole marking, or the rest of an
   incremental cycle; `pg_live` gets each page's live bytes.
2. MC_EVACUATE. Evacuation candidates are chosen from those exact live bytes as
   ComputeEvacuationHeuristics does: old pages with at least 70 % of their area free, fewest
   live bytes first, at most 4 MB moved in all, and none at all if moving them would not free a
   page (V8 chooses before marking, from the bytes allocated since the last sweep; this pause
   knows the exact live bytes). `force` (the testing flag FORCE_EVACUATION_CANDIDATE_FOR_TESTING,
   or the last resort before out-of-memory, where V8 reduces memory) makes every old page with
   live objects that is not full a candidate. Pages without live objects are left to
   the sweeper, which releases them. The candidates' blocks leave the free list
   (EvictFreeListItems), so nothing lands on a page that is being emptied. Then:
   (a) new space: V8's --always_promote_young_mc (default true): every marked young object is
       promoted into old space; new space is left empty (to-space reset, age mark at its start) and
       no old-to-new slot remains. Should old space be full even with its slack, the remaining
       survivors are copied into the other semispace instead (V8's evacuation into to-space),
       which becomes to-space with its age mark at its top.
   (b) compaction (compaction_job.py, V8's PageEvacuationJob): each candidate page is a work item;
       a task (the main, and helper cores when C_HELPERS allows) moves its page's marked objects
       into its own compaction LAB (free blocks of other pages, or new pages), copying the body,
       then forwarding by CAS (evacuation_kernels.py). During a GC old space may commit pages into
       its region's slack beyond max_old_space_size (layout.OLD_SLACK); a task that finds even that
       full aborts its page only (V8's ReportAbortedEvacuationCandidate): the part already moved
       is unmarked, so the sweeper frees it, and the page keeps the rest. New-space promotion (a)
       and its to-space fallback stay on the main.
   Large objects never move.
3. MC_UPDATE: every root (the main) and every field of every live object (compaction_job.py's
   update items: kept old pages, marked large objects, to-space ranges, split across tasks as
   V8's PointersUpdatingJob) is rewritten if it points at a forwarded object. V8 finds the slots
   to update through OLD_TO_OLD and OLD_TO_NEW remembered sets recorded while marking; here the
   live objects of every surviving page are walked
   instead (mark_kernels.update_range), which costs a pass over the old generation's live objects
   but needs no slot recording in the marking loop. The same pass rebuilds OLD_TO_NEW for the
   rare survivors left in new space.
4. MC_SWEEP and 5. MC_RELEASE: sweeper.py.

Work and span (work_span.py): marking's roots, the young promotion, the update's roots and sweeping
are the main's alone (serial); marking, evacuation and pointer updating are parallel phases.

Afterwards heapUsed (heap.size_of_objects) is exactly the bytes of the reachable objects, and the
old generation's allocation limit is recomputed from its live size (V8's heap controller).

Owns: the order of the phases, the choice of candidates and the evacuation. Touches, with the
isolate's locker held (heap.collect_garbage): the spaces through their modules (allocation,
flip, release), the LABs in `iso_top`, the page flags, `pg_live`, the OLD_TO_NEW rows of the
isolate's frames (cleared and rebuilt while updating), and the handles' slots.
"""

from __future__ import annotations

import time

import numpy as np

from memsim.sim.errors import ResourceExhausted
from memsim.sim.v8 import (
    compaction_job,
    gc_job,
    heap_controller,
    incremental_marking,
    marking,
    new_space,
    old_space,
    sweeper,
    work_span,
)
from memsim.sim.v8 import mark_kernels as mk
from memsim.sim.v8 import memory_chunk as mc
from memsim.sim.v8 import scavenge_kernels as sk
from memsim.sim.v8.array_buffer_sweeper import MARK_NEW, MARK_OLD
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.gc_work import GcWork
from memsim.sim.v8.large_object_space import objects as large_objects
from memsim.sim.v8.layout import (
    C_GROWING,
    C_MAX_OLD,
    C_TEST_ABORT,
    CHUNK_HEADER,
    MC_EVACUATE,
    MC_RELEASE,
    MC_SWEEP,
    MC_UPDATE,
    OLD_TO_NEW,
    T_AGE_MARK,
    T_NEW_LIMIT,
    T_NEW_TOP,
    T_NEW_USED,
    T_OLD_LIMIT,
    T_OLD_LIMIT_BYTES,
    T_OLD_TOP,
    T_TO_SPACE,
)
from memsim.sim.v8.objects import size_of

MB = 1 << 20
# ComputeEvacuationHeuristics (mark-compact.cc): kTargetFragmentationPercent, kMaxEvacuatedBytes
TARGET_FRAGMENTATION_PERCENT, MAX_EVACUATED_BYTES = 70, 4 * MB


def collect(h: HeapContext, work: GcWork, force: bool) -> None:
    a, i = h.a, h.iso
    incremental_marking.finalize(h, work)  # the rest of an incremental cycle, or the whole marking
    t0 = time.perf_counter()
    a.iso_phase[i] = MC_EVACUATE
    candidates = select_candidates(h, force)
    evict_free_list(h, candidates)
    ev = Evacuator(h)
    ev.promote_young()
    evacuated, compacted = compact(h, candidates, work)
    old_space.give_back_lab(h)  # every destination page iterable again
    ev.report(work)
    work.pages_evacuated += len(evacuated)
    t1 = time.perf_counter()
    a.iso_phase[i] = MC_UPDATE
    update_pointers(h, evacuated, ev.to_new, ev.moved() or compacted, work)
    t2 = time.perf_counter()
    work.phase_ms["evacuate"] = (t2 - t0) * 1e3
    work.phase_ms["evacuate.update_pointers"] = (t2 - t1) * 1e3
    a.iso_phase[i] = MC_SWEEP
    sweeper.sweep(h, evacuated, work)
    a.iso_phase[i] = MC_RELEASE
    sweeper.release(h, evacuated, work)
    h.top[T_OLD_LIMIT_BYTES] = old_generation_limit(h)


def select_candidates(h: HeapContext, force: bool) -> list[int]:
    """The old pages to evacuate (page slots, fewest live bytes first), flagged EVACUATION_CANDIDATE."""
    area = h.g.page_size - CHUNK_HEADER
    slots = old_space.pages(h)
    live = h.a.pg_live[h.iso, slots]
    order = np.argsort(live, kind="stable")
    slots, live = slots[order], live[order]
    if force:
        chosen = slots[(live > 0) & (live < area)]
    else:
        pct, cap = TARGET_FRAGMENTATION_PERCENT, MAX_EVACUATED_BYTES
        ok = (live > 0) & (area - live >= pct * area // 100)
        slots, live = slots[ok], live[ok]
        n = int(np.searchsorted(np.cumsum(live), cap, side="right"))
        moved = int(live[:n].sum())
        # do not evacuate if it would not free a page (estimated_released_pages == 0)
        chosen = slots[:n] if n - -(-moved // area) > 0 else slots[:0]
    out = [int(s) for s in chosen]
    for s in out:
        mc.set_flags(h.dmap, h.bounds.page(s), mc.EVACUATION_CANDIDATE)
    return out


def evict_free_list(h: HeapContext, candidates: list[int]) -> None:
    """Unlink the free blocks that lie on candidates (V8's EvictFreeListItems), so that nothing
    is evacuated onto a page being emptied; they stay FREE_SPACE objects (the pages stay iterable)."""
    if candidates:
        evict = np.zeros(h.a.pg_space.shape[1], dtype=np.uint8)
        evict[candidates] = 1
        d = h.dmap
        mk.evict_free_list(d.words, d.dm, d.shift, d.wpf, h.a.iso_free[h.iso], h.g.page_shift, evict)


class Evacuator:
    """Moves marked young objects through the LAB of old space (or, as a fallback, of new space) with
    mark_kernels.evacuate_range; refills the LAB in Python when it stops. The main thread's alone."""

    def __init__(self, h: HeapContext):
        self.h = h
        self.base = marking.bitbase(h)
        self.to_new = False  # young survivors go to the other semispace (old space is full)
        self.ctr_old = np.zeros(mk.NCTR, dtype=np.int64)  # moves into old space
        self.ctr_new = np.zeros(mk.NCTR, dtype=np.int64)  # moves within new space
        self.young_seen = self.young_promoted = self.promoted_bytes = 0

    def _dest(self, young: bool) -> tuple[int, int, int, int, np.ndarray]:
        if young and self.to_new:
            return T_NEW_TOP, T_NEW_LIMIT, T_NEW_USED, MARK_NEW, self.ctr_new
        return T_OLD_TOP, T_OLD_LIMIT, -1, MARK_OLD, self.ctr_old

    def _flip(self) -> None:
        """Make the other semispace to-space, empty, for the survivors old space cannot take."""
        h = self.h
        h.top[T_TO_SPACE] = 1 - int(h.top[T_TO_SPACE])
        new_space.init_pages(h, new_space.to_space(h), to=True)
        new_space.init_pages(h, new_space.from_space(h), to=False)
        new_space.reset_to_space(h)
        h.top[T_NEW_USED] = 0
        self.to_new = True

    def _old(self, size: int) -> int:
        """Room in old space (its slack included); 0 when the region or the machine's frame pool
        (the pin limit) has none: a collection must not fail half way, so that only stops moving."""
        try:
            return old_space.allocate(self.h, size, gc=True)
        except ResourceExhausted:
            return 0

    def evacuate(self, start: int, end: int, young: bool) -> int:
        """Move the marked objects of [start, end); `end`, or where old space ran out (candidates only)."""
        h, d, a = self.h, self.h.dmap, self.h.a
        at = start
        while True:
            top_col, limit_col, used_col, ext_val, ctr = self._dest(young)
            at = mk.evacuate_range(d.words, d.dm, d.shift, d.wpf, a.v8_markbits, self.base, h.g.page_shift, at, end,
                                   h.top, top_col, limit_col, used_col, a.pg_live[h.iso], a.ext_mark[h.iso],
                                   ext_val, ctr)
            if at >= end:
                return end
            size = size_of(d.load(at))
            dst = 0 if young and self.to_new else self._old(size)
            if not dst and not young:
                return at
            if not dst:
                if not self.to_new:
                    self._flip()
                dst = new_space.allocate(h, size)
                if not dst:  # the survivors came from one semispace and fit in the other
                    raise RuntimeError(f"isolate {h.iso}: no room for a {size}-byte survivor in either semispace")
            _, _, _, ext_val, ctr = self._dest(young)
            mk.migrate(d.words, d.dm, d.shift, d.wpf, a.v8_markbits, self.base, h.g.page_shift, at, dst, size,
                       a.pg_live[h.iso], a.ext_mark[h.iso], ext_val, ctr)
            at += size

    def promote_young(self) -> None:
        """Evacuate every marked young object (it runs first: the counters are the young ones)."""
        h = self.h
        for start, end in new_space.ranges(h):
            self.evacuate(start, end, young=True)
        self.young_promoted = int(self.ctr_old[mk.K_MOVED])
        self.young_seen = int(self.ctr_old[mk.K_SEEN] + self.ctr_new[mk.K_SEEN])
        self.promoted_bytes = int(self.ctr_old[mk.K_COPIED]) * 8
        if self.to_new:
            h.top[T_AGE_MARK] = h.top[T_NEW_TOP]  # they survived once: the next scavenge promotes them
        else:
            new_space.reset_to_space(h)
            h.top[T_NEW_USED] = 0

    def moved(self) -> bool:
        return bool(self.ctr_old[mk.K_MOVED] or self.ctr_new[mk.K_MOVED])

    def report(self, work: GcWork) -> None:
        old, new = self.ctr_old, self.ctr_new
        work.nodes_promoted += self.young_promoted
        work.promoted += self.promoted_bytes
        work.nodes_copied_in_new += int(new[mk.K_MOVED])
        work.new_space_survived += int(new[mk.K_COPIED]) * 8
        work.nodes_died_in_new += self.young_seen - self.young_promoted - int(new[mk.K_MOVED])
        work.objects_evacuated += int(old[mk.K_MOVED]) - self.young_promoted
        work.compacted += int(old[mk.K_COPIED]) * 8 - self.promoted_bytes
        work.words_copied += int(old[mk.K_COPIED] + new[mk.K_COPIED])
        work_span.serial(work, int(old[mk.K_COPIED] + new[mk.K_COPIED] + old[mk.K_SEEN] + new[mk.K_SEEN]))


def compact(h: HeapContext, candidates: list[int], work: GcWork) -> tuple[set[int], bool]:
    """Evacuate the candidates in parallel (compaction_job.py: a page per item, a LAB per task, old
    space's LAB continued by task 0); the slots emptied (an aborted page stays) and whether any object moved."""
    if not candidates:
        return set(), False
    abort_after = int(h.cfg[C_TEST_ABORT]) - 1  # the testing hook: the middle candidate aborts after that many moves
    abort = (len(candidates) // 2, abort_after) if abort_after >= 0 else (-1, 0)
    lab = (int(h.top[T_OLD_TOP]), int(h.top[T_OLD_LIMIT]))
    h.top[T_OLD_TOP] = h.top[T_OLD_LIMIT] = 0
    n, h.top[T_OLD_TOP], h.top[T_OLD_LIMIT] = compaction_job.run(
        h, gc_job.KIND_EVACUATE, [(compaction_job.IT_CANDIDATE, s, 0) for s in candidates], lab, abort)
    c = compaction_job.figures(h, n, work)
    work.objects_evacuated += int(c[sk.K_PROMOTED])
    work.compacted += int(c[sk.K_PROMOTED_BYTES])
    work.words_copied += int(c[sk.K_WORDS_COPIED])
    flagged = [s for s in candidates if mc.flags(h.dmap, h.bounds.page(s)) & mc.EVACUATION_CANDIDATE]
    return set(flagged), bool(c[sk.K_PROMOTED])


def update_pointers(h: HeapContext, evacuated: set[int], young_left: bool, moved: bool, work: GcWork) -> None:
    """Rewrite every root and every live object's field that points at a forwarded object (when
    any object `moved`; else only the remembered old-to-new slots, all stale now, are dropped). The
    roots here; the heap in parallel (compaction_job.py: an item per kept old page, per marked large
    object, per to-space range with survivors)."""
    a, i, d = h.a, h.iso, h.dmap
    mk.update_roots(d.words, d.dm, d.shift, d.wpf, a.hs_slot[i, :int(a.hs_top[i])])
    used = np.flatnonzero(a.gh_used[i] == 1)
    work_span.serial(work, int(a.hs_top[i]) + len(used))  # the roots: the main's alone
    globals_ = a.gh_slot[i, used]
    mk.update_roots(d.words, d.dm, d.shift, d.wpf, globals_)
    a.gh_slot[i, used] = globals_
    a.v8_slots[OLD_TO_NEW][marking.frame_rows(h)] = 0  # OLD_TO_NEW is rebuilt below (empty when new space is)
    a.pg_slots[i, :, OLD_TO_NEW] = 0
    if not moved:
        return
    items = [(compaction_job.IT_OLD_PAGE, int(s), 0) for s in old_space.pages(h) if int(s) not in evacuated]
    items += [(compaction_job.IT_LARGE, slot, size) for slot, size in large_objects(h)
              if marking.is_marked(h, h.bounds.page(slot) + CHUNK_HEADER)]
    if young_left:
        items += [(compaction_job.IT_RANGE, start, end) for start, end in new_space.ranges(h)]
    n, _, _ = compaction_job.run(h, gc_job.KIND_UPDATE, items, (0, 0))
    work.slots_visited += int(compaction_job.figures(h, n, work)[sk.K_SLOTS_VISITED])


def old_generation_limit(h: HeapContext) -> int:
    """V8's Heap::RecomputeLimits after a full GC (heap_controller.py): the old generation's live
    bytes grown by the isolate's fixed growing factor, or by V8's dynamic one from the speeds the
    tracer measured over the previous collections (as V8 does: the current one is not recorded yet)."""
    max_old = int(h.cfg[C_MAX_OLD])
    factor = int(h.cfg[C_GROWING]) / 1000
    if not factor:
        speeds = h.tracer.speeds()
        factor = heap_controller.heap_growing_factor(speeds.mark_compact, speeds.allocation,
                                                     heap_controller.max_growing_factor(max_old))
    return heap_controller.old_generation_allocation_limit(old_space.size_of_objects(h), factor, h.g.page_size,
                                                           max_old)
