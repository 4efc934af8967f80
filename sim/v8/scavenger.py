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

Tasks. The scavenge is written for several tasks (V8's Scavenger, one per task, with its own LABs
and worklist segments; scavenge_kernels.py says what makes the kernel safe for that): `_Task` is
a task's Python side, `_run_tasks` runs them. The isolate runs one task (what V8 runs with
--no-parallel-scavenge); the test hooks C_TEST_TASKS / C_TEST_RACE / C_TEST_NO_CAS run several in
this process by turns, racing on every copy. At the end every to-space LAB is closed (its tail
given back to the frontier or made a filler) and task 0's promotion LAB becomes the isolate's.

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
from memsim.sim.v8 import array_buffer_sweeper, marking, new_space, old_space
from memsim.sim.v8 import memory_chunk as mc
from memsim.sim.v8 import scavenge_kernels as k
from memsim.sim.v8 import worklist as wl
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.gc_work import GcWork
from memsim.sim.v8.layout import (
    C_TEST_NO_CAS,
    C_TEST_RACE,
    C_TEST_TASKS,
    CHUNK_HEADER,
    OLD_TO_NEW,
    T_AGE_MARK,
    T_NEW_LIMIT,
    T_NEW_TOP,
    T_NEW_USED,
    T_OLD_LIMIT,
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


def _params(h: HeapContext, from_base: int, age_mark: int, tasks: int) -> np.ndarray:
    g = h.g
    p = np.zeros(k.NP, dtype=np.int64)
    p[k.P_SHIFT], p[k.P_WPF], p[k.P_POOL0] = g.frame_shift, g.words_per_frame, g.pool_base * g.words_per_frame
    p[k.P_PAGE], p[k.P_PAGE_SHIFT] = g.page_size, g.page_shift
    to_base = new_space.to_space(h)
    p[k.P_FROM_LO], p[k.P_FROM_HI] = from_base, from_base + h.bounds.semi
    p[k.P_TO_LO], p[k.P_TO_HI] = to_base, to_base + h.bounds.semi
    p[k.P_AGE_MARK] = age_mark
    p[k.P_LAB] = g.page_size if tasks == 1 else k.LAB_SIZE  # one task: the serial layout, page after page
    p[k.P_RACE], p[k.P_NO_CAS] = h.cfg[C_TEST_RACE], h.cfg[C_TEST_NO_CAS]
    return p


class _Shared:
    """What a scavenge's tasks share in Python: the constants, the roots, and whether the pool ever
    dropped a segment (worklist.py's overflow)."""

    def __init__(self, h: HeapContext, p: np.ndarray, rs: np.ndarray):
        a, i = h.a, h.iso
        self.h, self.p = h, p
        self.heap_args = (h.dmap.words, a.v8_dm[i], a.v8_slots[OLD_TO_NEW], a.pg_slots[i].reshape(-1),
                          a.pg_allocated[i], a.ext_mark[i])
        self.roots = (a.hs_slot[i, :int(a.hs_top[i])], a.gh_slot[i], a.gh_used[i], rs)
        self.overflowed = False


class _Task:
    """One task of a scavenge (V8's Scavenger: one per task, its own LABs and worklist segments),
    its kernel state in its gc_task row; the Python side of its kernel: LAB refills, segment
    exchange, stealing."""

    def __init__(self, shared: _Shared, task: int):
        h = shared.h
        self.sh, self.h, self.task = shared, h, task
        self.wl = h.worklist
        self.ctr, self.lab, self.st = k.task_row(h.a.gc_task, h.iso, task)
        self.ctr[:] = self.lab[:] = self.st[:] = 0
        self.lists = (h.top, self.lab, self.wl.seg, self.wl.meta, self.wl.local(task))
        self.labs: list[tuple[int, int]] = []  # the task's promotion LABs, closed: (start, end)
        self.lab_start = 0

    def step(self, stop: int) -> int:
        """Run the task to phase `stop` (DONE, PAUSED), until its segments are empty and there is
        nothing to steal (LOCAL_EMPTY), or to the race hook's stop (RACE_PAUSE)."""
        sh = self.sh
        while True:
            code = k.run(*sh.heap_args, *sh.roots, *self.lists, sh.p, self.st, self.ctr, stop)
            if code in (k.DONE, k.PAUSED, k.RACE_PAUSE):
                return code
            if code == k.LOCAL_EMPTY:
                if not (self.wl.steal(self.task, wl.WL_COPIED) or self.wl.steal(self.task, wl.WL_PROMOTED)):
                    return code
                self.ctr[k.K_STEALS] += 1
                continue
            self._unblock(code)

    def rescan(self, ranges: np.ndarray) -> None:
        """The overflow rescan of `ranges` (scavenge_kernels.rescan), run by this task alone."""
        st = np.zeros(k.NST, dtype=np.int64)
        while (code := k.rescan(*self.sh.heap_args, *self.lists, self.sh.p, ranges, st, self.ctr)) != k.DONE:
            if code == k.RACE_PAUSE:
                continue
            self.st[k.S_NEED], self.st[k.S_FULL] = st[k.S_NEED], st[k.S_FULL]
            st[k.S_NEED] = st[k.S_FULL] = 0
            st[k.S_OLD_FULL] = self.st[k.S_OLD_FULL]
            self._unblock(code)
            st[k.S_OLD_FULL] = self.st[k.S_OLD_FULL]

    def promotion_labs(self) -> list[tuple[int, int]]:
        """Every promotion LAB of this scavenge, the open one up to its top."""
        return self.labs + ([(self.lab_start, int(self.lab[k.L_OLD_TOP]))] if self.lab_start else [])

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
                self.sh.overflowed = True
            return
        size = int(self.st[k.S_NEED])
        self.st[k.S_NEED] = 0
        self.labs = self.promotion_labs()
        h, lab = self.h, self.lab
        h.top[T_OLD_TOP], h.top[T_OLD_LIMIT] = lab[k.L_OLD_TOP], lab[k.L_OLD_LIMIT]  # old_space works on iso_top's
        try:
            ok = old_space.refill(h, size)  # gives the task's LAB back, takes a new one
        except ResourceExhausted:  # the machine's frame pool cannot give a page
            ok = False
        lab[k.L_OLD_TOP], lab[k.L_OLD_LIMIT] = h.top[T_OLD_TOP], h.top[T_OLD_LIMIT]
        h.top[T_OLD_TOP] = h.top[T_OLD_LIMIT] = 0
        self.lab_start = int(lab[k.L_OLD_TOP]) if ok else 0
        if not ok:
            self.st[k.S_OLD_FULL] = 1  # promotion fails from now on: copy within new space


def _run_tasks(sh: _Shared, tasks: list[_Task], stop: int) -> None:
    """Take turns until every task reached phase `stop`; for PH_DONE, until no task has work, the
    pool is empty, and any overflow has been rescanned. One task is V8's --no-parallel-scavenge;
    several in one process, each running until its next stop, are the parallel kernel's test (the
    race hook stops every copy before its CAS, so the next task races it; the order of turns flips
    every round, so that each task wins some races)."""
    turn = 0
    while True:
        turn += 1
        codes = [t.step(stop) for t in (tasks if turn % 2 else tasks[::-1])]
        if k.RACE_PAUSE in codes:
            continue
        if stop < k.PH_DONE:
            return
        w = tasks[0].wl
        if w.global_size(wl.WL_COPIED) or w.global_size(wl.WL_PROMOTED):
            continue  # published after its finder went idle
        if not sh.overflowed:
            break
        sh.overflowed = False
        _close_new_labs(sh, tasks)  # to-space walkable: every LAB's tail a filler or given back
        tasks[0].rescan(np.array([(sh.p[k.P_TO_LO] + CHUNK_HEADER, -1)]
                                 + [r for t in tasks for r in t.promotion_labs()], dtype=np.int64).reshape(-1, 2))
    for t in tasks:
        t.st[k.S_PHASE] = k.PH_DONE


def _close_new_labs(sh: _Shared, tasks: list[_Task]) -> None:
    for t in tasks:
        k.close_new_lab(sh.heap_args[0], sh.heap_args[1], sh.h.top, t.lab, sh.p)


def _end_labs(sh: _Shared, tasks: list[_Task]) -> None:
    """Every to-space LAB closed, allocation resumes at the frontier; task 0's promotion LAB becomes
    the isolate's LAB (as one task's always was), the others' tails go back to the free list."""
    h = sh.h
    _close_new_labs(sh, tasks)
    top = int(h.top[T_NEW_TOP])
    h.top[T_NEW_LIMIT] = ((top - 1) | (h.g.page_size - 1)) + 1
    for t in reversed(tasks):
        h.top[T_OLD_TOP], h.top[T_OLD_LIMIT] = t.lab[k.L_OLD_TOP], t.lab[k.L_OLD_LIMIT]
        if t.task:
            old_space.give_back_lab(h)


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
    n = max(1, min(int(h.cfg[C_TEST_TASKS]), wl.MAX_TASKS))
    p = _params(h, from_base, old_age_mark, n)
    h.worklist.reset(tasks=n)
    sh = _Shared(h, p, _remembered_slots(h))
    tasks = [_Task(sh, t) for t in range(n)]
    _run_tasks(sh, tasks, k.PH_DRAIN)
    t_roots = time.perf_counter()
    _run_tasks(sh, tasks, k.PH_DONE)
    _end_labs(sh, tasks)

    top = int(h.top[T_NEW_TOP])
    h.top[T_AGE_MARK] = top
    c = np.sum([t.ctr for t in tasks], axis=0)
    h.top[T_NEW_USED] = int(c[k.K_COPIED_BYTES])
    _mark_below_age_mark(h, top)
    if marking.active(h):  # a scavenge inside an incremental marking cycle: TransferColor (marking.py)
        marking.after_scavenge(h, from_base, from_top, old_current)
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
    p = _params(h, new_space.to_space(h), int(h.top[T_AGE_MARK]), 1)
    h.worklist.reset(tasks=1)
    _Task(_Shared(h, p, np.zeros(0, dtype=np.int64)), 0).rescan(np.zeros((0, 2), dtype=np.int64))
