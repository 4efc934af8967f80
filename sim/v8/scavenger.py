"""The scavenger, V8's minor GC (`src/heap/scavenger.cc`, `scavenger-inl.h`): a copying collector
over the semispaces driven by segmented worklists (worklist.py), with V8's age mark deciding
promotion. Its task runs V8's ScavengerCollector code with one task, what `--no-parallel-scavenge`
runs: the same kernel a parallel scavenge runs on every task.

`scavenge(h, work)` runs inside heap.collect_garbage (phase SCAVENGE set, old space's LAB given
back, so every old page is iterable):

1. Prologue: the semispaces flip (T_TO_SPACE: the old to-space becomes from-space, its objects
   the candidates), the page flags follow (FROM_PAGE / TO_PAGE, keeping V8's
   kCopyOnFlipFlagsMask bits), allocation restarts at the new to-space's first page, and the
   remembered OLD_TO_NEW slots are collected from every page whose `pg_slots` count is non-zero.
2. Roots (timed as "scavenge.roots"): local handles `hs_slot[:hs_top]`, used globals, then the
   OLD_TO_NEW slots, each updated in place; a remembered slot that no longer points into new
   space afterwards is dropped (V8's REMOVE_SLOT), one still pointing young stays.
3. The drain (Scavenger::Process): every copy was pushed on the copied list, every promoted
   object on the promotion list; the task pops and scans them, stealing published segments from
   the global pool, until both are empty; a promoted object is an old host, so its fields still
   pointing young are recorded in OLD_TO_NEW. If the pool overflowed (worklist.py), the objects
   copied so far are scanned again by walking to-space and this scavenge's promotion LABs.
4. Epilogue: the age mark is set to top (the survivors of this scavenge are promoted by the
   next: promotion on the second survival); from-space is walked once more, counting the
   objects that were not forwarded (nodes_died_in_new), and zapped (zeros under one FILLER per
   page, so a stale word never looks like an object or a forwarding address); young
   ArrayBuffer extensions are swept, and the work counters go into `work`.

The copying itself is scavenge_kernels.run; it comes back here only to get a new promotion LAB
(old_space.refill: a free-list block or a new page, within max_old_space_size) and, if old space
has no room, lets the kernel copy the object within new space instead (V8's fallback), and to move
whole segments between the task and the worklists' global pool (under its lock).

Owns: the semispaces' contents and flags during a scavenge, T_TO_SPACE, T_NEW_TOP/LIMIT,
T_AGE_MARK, T_NEW_USED. Touches: old space's LAB (T_OLD_TOP/LIMIT, pg_allocated), the OLD_TO_NEW
remembered set, handles' slots, ext_mark, the worklists (reset at the start). The isolate's locker
is held throughout.
"""

from __future__ import annotations

import time

import numpy as np

from memsim.sim.errors import ResourceExhausted
from memsim.sim.v8 import array_buffer_sweeper, new_space, old_space
from memsim.sim.v8 import memory_chunk as mc
from memsim.sim.v8 import scavenge_kernels as k
from memsim.sim.v8 import worklist as wl
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.gc_work import GcWork
from memsim.sim.v8.layout import (
    CHUNK_HEADER,
    OLD_TO_NEW,
    T_AGE_MARK,
    T_NEW_LIMIT,
    T_NEW_TOP,
    T_NEW_USED,
    T_OLD_TOP,
    T_TO_SPACE,
)


def _flip(h: HeapContext) -> tuple[int, int]:
    """Make to-space from-space and the other semispace the (empty) to-space; (from-space's
    base, its allocation top)."""
    from_base, from_top = new_space.to_space(h), int(h.top[T_NEW_TOP])
    h.top[T_TO_SPACE] = 1 - int(h.top[T_TO_SPACE])
    age_mark = int(h.top[T_AGE_MARK])
    new_space.reset_to_space(h, age_mark=age_mark)  # the old age mark stays until the epilogue
    ps = h.g.page_size
    for base, to in ((from_base, False), (new_space.to_space(h), True)):
        for page in range(base, base + h.bounds.semi, ps):
            mc.clear_flags(h.dmap, page, mc.FROM_PAGE | mc.TO_PAGE | mc.NEW_SPACE_BELOW_AGE_MARK)
            mc.set_flags(h.dmap, page, mc.TO_PAGE if to else mc.FROM_PAGE)
    return from_base, from_top


def _remembered_slots(h: HeapContext) -> np.ndarray:
    """Every recorded OLD_TO_NEW slot, page by page (old and large-object pages with a count)."""
    ps = h.g.page_size
    pages = np.flatnonzero(h.a.pg_slots[h.iso, :, OLD_TO_NEW] > 0)
    parts = [h.rset.slots(OLD_TO_NEW, h.bounds.page(int(s)), ps) for s in pages]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _params(h: HeapContext, from_base: int, age_mark: int) -> np.ndarray:
    g = h.g
    p = np.zeros(k.NP, dtype=np.int64)
    p[k.P_SHIFT], p[k.P_WPF], p[k.P_POOL0] = g.frame_shift, g.words_per_frame, g.pool_base * g.words_per_frame
    p[k.P_PAGE], p[k.P_PAGE_SHIFT] = g.page_size, g.page_shift
    to_base = new_space.to_space(h)
    p[k.P_FROM_LO], p[k.P_FROM_HI] = from_base, from_base + h.bounds.semi
    p[k.P_TO_LO], p[k.P_TO_HI] = to_base, to_base + h.bounds.semi
    p[k.P_AGE_MARK] = age_mark
    return p


class _Run:
    """One task's scavenge: the kernel's arguments, so that `advance` can re-enter the kernel, and
    what the task needs from Python (LABs, segments)."""

    def __init__(self, h: HeapContext, p: np.ndarray, rs: np.ndarray, task: int = 0):
        a, i = h.a, h.iso
        self.h, self.task, self.p = h, task, p
        self.wl = h.worklist
        self.local = self.wl.local(task)
        self.heap_args = (h.dmap.words, a.v8_dm[i], a.v8_slots[OLD_TO_NEW], a.pg_slots[i], a.pg_allocated[i],
                          a.ext_mark[i])
        self.roots = (a.hs_slot[i, :int(a.hs_top[i])], a.gh_slot[i], a.gh_used[i], rs)
        self.lists = (h.top, self.wl.seg, self.wl.meta, self.local)
        self.st = np.zeros(k.NST, dtype=np.int64)
        self.ctr = np.zeros(k.NCTR, dtype=np.int64)
        self.overflowed = False
        self.labs: list[tuple[int, int]] = []  # this scavenge's promotion LABs, closed: (start, end)
        self.lab_start = 0

    def advance(self, stop: int) -> None:
        """Run the task to phase `stop`, refilling the promotion LAB and exchanging segments
        whenever it asks; at PH_DONE every list is drained."""
        while True:
            code = k.run(*self.heap_args, *self.roots, *self.lists, self.p, self.st, self.ctr, stop)
            if code in (k.DONE, k.PAUSED):
                return
            if code == k.LOCAL_EMPTY:
                if not self._refill_work():
                    self.st[k.S_PHASE] = k.PH_DONE
                    return
                continue
            self._unblock(code)

    def _refill_work(self) -> bool:
        """The task's segments are empty: a stolen segment, or, if the pool ever overflowed, the
        objects whose entries were dropped, found by rescanning; False when there is no work left."""
        if self.wl.steal(self.task, wl.WL_COPIED) or self.wl.steal(self.task, wl.WL_PROMOTED):
            return True
        if not self.overflowed:
            return False
        self.overflowed = False
        ranges = np.array([(self.p[k.P_TO_LO] + CHUNK_HEADER, -1), *self.labs, *self._open_lab()],
                          dtype=np.int64).reshape(-1, 2)
        st = np.zeros(k.NST, dtype=np.int64)
        st[k.S_OLD_FULL] = self.st[k.S_OLD_FULL]
        while (code := k.rescan(*self.heap_args, *self.lists, self.p, ranges, st, self.ctr)) != k.DONE:
            self.st[k.S_NEED], self.st[k.S_FULL] = st[k.S_NEED], st[k.S_FULL]
            self._unblock(code)
            st[k.S_NEED] = st[k.S_FULL] = 0
            st[k.S_OLD_FULL] = self.st[k.S_OLD_FULL]
        return True

    def _open_lab(self) -> list[tuple[int, int]]:
        return [(self.lab_start, int(self.h.top[T_OLD_TOP]))] if self.lab_start else []

    def _unblock(self, code: int) -> None:
        """Do what the kernel stopped for, so that it can retry the same slot."""
        if code == k.TO_SPACE_FULL:
            # V8 dies here too (FatalProcessOutOfMemory "Scavenger: semi-space copy"): the heap
            # is half copied, so the isolate is not trusted again (isolate_table's recovery)
            raise ResourceExhausted("Scavenger: semi-space copy failed: to-space and old space are both "
                                    "full - JavaScript heap out of memory")
        if code == k.LOCAL_FULL:
            lst = int(self.st[k.S_FULL]) - 1
            self.st[k.S_FULL] = 0
            if not self.wl.publish(self.task, lst):
                self.overflowed = True
            return
        size = int(self.st[k.S_NEED])
        self.st[k.S_NEED] = 0
        self.labs += self._open_lab()
        try:
            ok = old_space.refill(self.h, size)
        except ResourceExhausted:  # the machine's frame pool cannot give a page
            ok = False
        self.lab_start = int(self.h.top[T_OLD_TOP]) if ok else 0
        if not ok:
            self.st[k.S_OLD_FULL] = 1  # promotion fails from now on: copy within new space


def _mark_below_age_mark(h: HeapContext, age_mark: int) -> None:
    base, ps = new_space.to_space(h), h.g.page_size
    for page in range(base, base + h.bounds.semi, ps):
        if page + CHUNK_HEADER < age_mark:
            mc.set_flags(h.dmap, page, mc.NEW_SPACE_BELOW_AGE_MARK)


def scavenge(h: HeapContext, work: GcWork) -> None:
    """One scavenge of the isolate's new space; its figures are added to `work`."""
    t0 = time.perf_counter()
    old_age_mark = int(h.top[T_AGE_MARK])
    old_current = int(h.top[T_NEW_LIMIT]) - h.g.page_size
    from_base, from_top = _flip(h)
    p = _params(h, from_base, old_age_mark)
    h.worklist.reset(tasks=1)
    r = _Run(h, p, _remembered_slots(h))
    r.advance(k.PH_DRAIN)
    t_roots = time.perf_counter()
    r.advance(k.PH_DONE)

    top = int(h.top[T_NEW_TOP])
    h.top[T_AGE_MARK] = top
    c = r.ctr
    h.top[T_NEW_USED] = int(c[k.K_COPIED_BYTES])
    _mark_below_age_mark(h, top)
    died = int(k.zap(h.dmap.words, h.a.v8_dm[h.iso], p, from_base, from_top, old_current))
    work.external_freed += array_buffer_sweeper.sweep_young(h)

    work.promoted += int(c[k.K_PROMOTED_BYTES])
    work.new_space_survived += int(c[k.K_COPIED_BYTES])
    work.nodes_copied_in_new += int(c[k.K_COPIED])
    work.nodes_promoted += int(c[k.K_PROMOTED])
    work.nodes_died_in_new += died
    work.objects_scanned += int(c[k.K_OBJECTS_SCANNED])
    work.words_scanned += int(c[k.K_WORDS_SCANNED])
    work.words_copied += int(c[k.K_WORDS_COPIED])
    work.slots_visited += int(c[k.K_SLOTS_VISITED])
    work.phase_ms["scavenge.roots"] = (t_roots - t0) * 1e3
    work.phase_ms["scavenge"] = (time.perf_counter() - t0) * 1e3


def compile_overflow_rescan(h: HeapContext) -> None:
    """Compile the pool's overflow rescan with the argument types a scavenge passes it, over no range
    (warmup.py): it runs only when more copies wait than the pool holds, which a warm-up never has."""
    p = _params(h, new_space.to_space(h), int(h.top[T_AGE_MARK]))
    h.worklist.reset(tasks=1)
    r = _Run(h, p, np.zeros(0, dtype=np.int64))
    k.rescan(*r.heap_args, *r.lists, p, np.zeros((0, 2), dtype=np.int64), r.st, r.ctr)
