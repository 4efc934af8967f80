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
   ArrayBuffer extensions are swept, and the work counters go into `work` (with the work and span
   in words, work_span.py: the roots and the drain are one parallel phase).

Tasks. The scavenge is written for several tasks (V8's Scavenger, one per task, with its own LABs
and worklist segments; scavenge_kernels.py says what makes the kernel safe for that): `_Task` is
a task's Python side, `_run_tasks` runs them. The isolate runs one task (what V8 runs with
--no-parallel-scavenge); the test hooks C_TEST_TASKS / C_TEST_RACE / C_TEST_NO_CAS run several in
this process by turns, racing on every copy, or (without the race hook) sharing the drain through
the pool as a job's tasks do. At the end every to-space LAB is closed (its tail
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

from memsim.sim.v8 import (
    array_buffer_sweeper,
    gc_job,
    marking,
    new_space,
    old_space,
    scavenge_job,
    tracer_parallel,
    work_span,
)
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
    T_AGE_MARK,
    T_NEW_LIMIT,
    T_NEW_TOP,
    T_NEW_USED,
    T_OLD_LIMIT,
    T_OLD_TOP,
    T_TO_SPACE,
)
from memsim.sim.v8.scavenge_tasks import Shared, Task, root_items, run_tasks


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


def _end_labs(sh: Shared, n: int) -> None:
    """Every task's to-space LAB closed, allocation resumes at the frontier; task 0's promotion LAB
    becomes the isolate's LAB (as one task's always was), the others' tails go back to the free list
    (read from their gc_task rows: a helper's too)."""
    h = sh.h
    labs = [k.task_row(h.a.gc_task, h.iso, t)[1] for t in range(n)]
    for lab in labs:
        k.close_new_lab(sh.heap_args[0], sh.heap_args[1], h.top, lab, sh.p)
    top = int(h.top[T_NEW_TOP])
    h.top[T_NEW_LIMIT] = ((top - 1) | (h.g.page_size - 1)) + 1
    for t in reversed(range(n)):
        h.top[T_OLD_TOP], h.top[T_OLD_LIMIT] = labs[t][k.L_OLD_TOP], labs[t][k.L_OLD_LIMIT]
        if t:
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
    cpu0 = time.thread_time_ns()
    from_base, from_top = _flip(h)
    turns = int(h.cfg[C_TEST_TASKS]) > 1  # the in-process test: tasks take turns
    n = min(int(h.cfg[C_TEST_TASKS]), wl.MAX_TASKS) if turns else gc_job.tasks_for(h, h.jobs.cores)
    p = _params(h, from_base, old_age_mark, n)
    h.worklist.reset(tasks=n)
    h.a.gc_task[h.iso, :n, :] = 0
    sh = Shared(h, p, every_item=turns and bool(h.cfg[C_TEST_RACE]))
    items = root_items(h)
    if n > 1:  # several tasks drain in slices, sharing work between them
        p[k.P_SLICE] = gc_job.SLICE_OBJECTS
    if n > 1 and not turns:  # a job: helper cores join as tasks 1..n-1 (scavenge_job.py)
        gc_job.begin_main(h)
        try:
            gc_job.post(h, gc_job.KIND_SCAVENGE, n, items, p)
            main = Task(sh, 0)
            gc_job.await_helper(h)  # a test hook (off: returns at once)
            main.step(k.PH_DRAIN)
            t_roots = time.perf_counter()
            scavenge_job.run_main(h, sh, main, n)
            work.phase_ms["scavenge.parallel"] = (time.perf_counter() - t_roots) * 1e3
        finally:
            gc_job.end_main(h)
    else:
        gc_job.post(h, gc_job.KIND_SCAVENGE, 1, items, p)  # no helper joins a one-task job
        tasks = [Task(sh, t) for t in range(n)]
        run_tasks(sh, tasks, k.PH_DRAIN)
        t_roots = time.perf_counter()
        run_tasks(sh, tasks, k.PH_DONE)
        gc_job.close(h)
    _end_labs(sh, n)

    top = int(h.top[T_NEW_TOP])
    h.top[T_AGE_MARK] = top
    gc_job.cpu_add(h, 0, time.thread_time_ns() - cpu0)
    c = np.sum([k.task_row(h.a.gc_task, h.iso, t)[0] for t in range(n)], axis=0)
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
    work_span.job(work, h, n)  # roots and drain: one parallel phase (any task claims any root item)
    rows = h.a.gc_task[h.iso]
    joined = [t for t in range(1, n) if rows[t, gc_job.TK_PID]]
    figures = tracer_parallel.task_figures(rows, n, k.K_COPIED, k.K_PROMOTED, k.K_STEALS, k.K_CAS_FAIL,
                                           gc_job.TK_CPU_NS, joined)
    for name, v in figures.items():
        setattr(work, name, getattr(work, name) + v)
    work.phase_ms["scavenge.roots"] = (t_roots - t0) * 1e3
    work.phase_ms["scavenge"] = (time.perf_counter() - t0) * 1e3


def compile_overflow_rescan(h: HeapContext) -> None:
    """Compile the pool's overflow rescan with the argument types a scavenge passes it, over no range
    (warmup.py): it runs only when more copies wait than the pool holds, which a warm-up never has."""
    p = _params(h, new_space.to_space(h), int(h.top[T_AGE_MARK]), 1)
    h.worklist.reset(tasks=1)
    Task(Shared(h, p), 0).rescan(np.zeros((0, 2), dtype=np.int64))
