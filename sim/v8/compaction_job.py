"""Mark-compact's parallel phases across cores: V8's PageEvacuationJob (EvacuatePagesInParallel) and
PointersUpdatingJob (`src/heap/mark-compact.cc`), over gc_job.py's job protocol (job kinds
KIND_EVACUATE and KIND_UPDATE), run by the main thread as task 0 and by helper cores
(server/gc_helper.py) as the others.

- Evacuation: one item per evacuation candidate page (IT_CANDIDATE). A task claims a page and moves
  its marked objects into its own compaction LAB (its gc_task row's old LAB, refilled through
  old_space.refill under the isolate's `gcalloc` lock, iso_top's LAB as scratch, as the scavenge's
  tasks do), forwarding by CAS (evacuation_kernels.py). A task that cannot get old space for an
  object aborts that page only (ReportAbortedEvacuationCandidateDueToOOM): the page keeps the
  objects not moved yet, the mark bits of the part already moved are cleared (so the sweeper frees
  it) and its EVACUATION_CANDIDATE flag goes; the pointers to its moved objects are fixed by the
  update pass like any other. Other tasks go on with their pages. The testing hook (`abort_item`,
  `abort_after`: V8's COMPACTION_WAS_ABORTED_FOR_TESTING) aborts one page after that many moves.
- Pointer updating: one item per kept old page (IT_OLD_PAGE: not evacuated, the aborted ones
  included), per marked large object (IT_LARGE) and per to-space range still holding young
  survivors (IT_RANGE), V8's RememberedSetUpdatingItem / ToSpaceUpdatingItem; each runs
  mark_kernels.update_range, whose OLD_TO_NEW bit and page count are atomic.
- Serial is the same code with one task (helpers 0, the default); the in-process test hooks
  (C_TEST_TASKS, C_TEST_RACE, C_TEST_NO_CAS, as the scavenge's) let several tasks take turns here,
  the race hook making every task take every item and stop every copy before its CAS.
- A helper that dies: its claimed items are given back and the main does them again (an evacuated
  object is skipped, its copy's mark made sure of; an update is idempotent); its LAB is closed at its
  published top with the others'; a copy it made but did not forward is unmarked, so the sweeper
  frees it. The park hook (PARK_HOOK) stops a helper mid-page, to be killed there.

Owns nothing beyond its tasks; touches the candidates' objects, old space's free list and pages
(under gcalloc), `pg_live`, the mark bits of copies, OLD_TO_NEW (through the kernels) and gc_job's rows.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from memsim.sim.errors import ResourceExhausted
from memsim.sim.machine import atomics
from memsim.sim.v8 import evacuation_kernels as ek
from memsim.sim.v8 import gc_job, marking, old_space, tracer_parallel, work_span
from memsim.sim.v8 import mark_kernels as mk
from memsim.sim.v8 import memory_chunk as mc
from memsim.sim.v8 import scavenge_kernels as k
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.gc_work import GcWork
from memsim.sim.v8.layout import (
    C_HELPERS,
    C_MAX_OLD,
    C_TEST_NO_CAS,
    C_TEST_RACE,
    C_TEST_TASKS,
    CHUNK_HEADER,
    OLD_TO_NEW,
    T_OLD_COMMITTED,
    T_OLD_LIMIT,
    T_OLD_TOP,
)
from memsim.sim.v8.worklist import MAX_TASKS

IT_CANDIDATE, IT_OLD_PAGE, IT_LARGE, IT_RANGE = range(4)  # gc_item kinds: (kind, page slot | start, 0 | size | end)
P_ABORT_ITEM, P_ABORT_AFTER = range(2)  # the job's constants: the testing hook's page and moves (-1: off)
NP = 2
# test hook (gc_job.HELPER_PAUSE_ENV = PARK_HOOK): a helper parks on its first candidate page after
# PARK_AFTER objects moved, to be killed with the page half evacuated
PARK_HOOK, PARK_AFTER = "mid-page", 5
NO_REDO_ENV = "MEMSIM_TEST_V8_NO_PAGE_REDO"  # the control: the main does not redo a dead helper's items
UNENTERED_S = 1.0  # a joined bit whose task names no process after this long: the helper died joining


def compaction_tasks(h: HeapContext, cores: int, items: int) -> int:
    """Tasks for a compaction job: V8's NumberOfParallelCompactionTasks, a task per core (worker
    threads + 1) and no more than there are pages, 1 if old space cannot take a page per task
    (CanPromoteYoungAndExpandOldGeneration); the isolate's C_HELPERS caps it as the scavenge's (0:
    serial, n: at most n + 1); 1 without libatomic (atomic within one process only)."""
    helpers = int(h.cfg[C_HELPERS])
    if helpers == 0 or cores < 2 or items < 2 or atomics.backend() != "libatomic":
        return 1
    tasks = min(cores, MAX_TASKS, items) if helpers < 0 else min(helpers + 1, cores, MAX_TASKS, items)
    if int(h.cfg[C_MAX_OLD]) - int(h.top[T_OLD_COMMITTED]) < tasks * h.g.page_size:
        return 1
    return tasks


class Task:
    """One task of an evacuation or update job, its LAB, counters and kernel state in its gc_task row
    (scavenge_kernels.task_row's views: the same row a scavenge task uses)."""

    def __init__(self, h: HeapContext, task: int, p: np.ndarray, race: bool = False, no_cas: bool = False):
        self.h, self.task, self.p = h, task, p
        self.ctr, self.lab, self.st = k.task_row(h.a.gc_task, h.iso, task)
        self.race, self.no_cas, self.every_item = race, no_cas, race
        self.base = marking.bitbase(h)
        self.item = -1
        self.next_item = 0  # with every_item: this task's own cursor
        self.aborted: list[int] = []  # page slots this task aborted
        self.park = False  # test hook (help): stop once mid-page, to be killed there

    def _claim(self) -> bool:
        if self.every_item:
            n = int(self.h.a.gc_job[self.h.iso, gc_job.J_ITEMS])
            self.item = self.next_item if self.next_item < n else -1
            self.next_item += 1
        else:
            self.item = gc_job.claim(self.h, self.task)
        if self.item < 0:
            return False
        kind, lo, _ = gc_job.item(self.h, self.item)
        if kind == IT_CANDIDATE:
            page = self.h.bounds.page(lo)
            self.st[ek.E_AT], self.st[ek.E_END] = page + CHUNK_HEADER, page + self.h.g.page_size
            hooked = self.item == int(self.p[P_ABORT_ITEM])
            self.st[ek.E_LEFT] = int(self.p[P_ABORT_AFTER]) + 1 if hooked else PARK_AFTER + 1 if self.park else 0
        return True

    def turn(self) -> bool:
        """Work on the task's item until it is done or the race hook pauses it; False when no item is left."""
        if self.item < 0 and not self._claim():
            return False
        kind, lo, hi = gc_job.item(self.h, self.item)
        if kind == IT_CANDIDATE:
            if not self._evacuate(lo):
                return True
        else:
            self._update(kind, lo, hi)
        if not self.every_item:
            gc_job.finish(self.h, self.item)
        self.item = -1
        return True

    def _evacuate(self, slot: int) -> bool:
        """Move the candidate's marked objects; False at a race pause (the item goes on next turn)."""
        h, d, a = self.h, self.h.dmap, self.h.a
        while True:
            code = ek.evacuate_page(d.words, d.dm, d.shift, d.wpf, a.v8_markbits, self.base, h.g.page_shift, self.lab,
                                    a.pg_live[h.iso], a.ext_mark[h.iso], self.ctr, self.st, self.race, self.no_cas)
            if code == ek.DONE:
                return True
            if code == ek.RACE_PAUSE:
                return False
            if code == ek.NEED_OLD and self._refill(int(self.st[ek.E_NEED])):
                continue
            if code == ek.ABORT and self.park:
                self._park()
                continue
            self._abort(slot)
            return True

    def _refill(self, size: int) -> bool:
        """A new compaction LAB for `size` bytes (old space's slack included); False if there is none."""
        h, lab = self.h, self.lab
        self.st[ek.E_NEED] = 0
        assert h.jobs.gcalloc is not None
        with h.jobs.gcalloc:  # tasks on other cores refill too: old space's free list and pages are shared
            h.top[T_OLD_TOP], h.top[T_OLD_LIMIT] = lab[k.L_OLD_TOP], lab[k.L_OLD_LIMIT]  # old_space works there
            try:
                ok = old_space.refill(h, size, gc=True)  # gives the task's LAB back, takes a new one
            except ResourceExhausted:  # the machine's frame pool cannot give a page
                ok = False
            lab[k.L_OLD_TOP], lab[k.L_OLD_LIMIT] = h.top[T_OLD_TOP], h.top[T_OLD_LIMIT]
            h.top[T_OLD_TOP] = h.top[T_OLD_LIMIT] = 0
        return ok

    def _abort(self, slot: int) -> None:
        """ReportAbortedEvacuationCandidate: this page keeps its objects from st[E_AT] on (see the header)."""
        h, d, a = self.h, self.h.dmap, self.h.a
        page = h.bounds.page(slot)
        a.pg_live[h.iso, slot] -= mk.unmark_range(d.words, d.dm, d.shift, d.wpf, a.v8_markbits, self.base,
                                                  page + CHUNK_HEADER, int(self.st[ek.E_AT]))
        mc.clear_flags(d, page, mc.EVACUATION_CANDIDATE)
        self.aborted.append(slot)

    def _park(self) -> None:
        """The park hook: wait mid-page (some objects forwarded, the rest not) to be killed; a main
        that dies meanwhile ends the wait; then the page goes on."""
        h = self.h
        wait = gc_job.park_wait_seconds()
        if wait:
            print(f"isolate {h.iso}: compaction helper task {self.task} parked mid-page on core {h.core} "
                  f"(pid {os.getpid()}, test hook {gc_job.HELPER_PAUSE_ENV})", file=sys.stderr, flush=True)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and gc_job.main_alive(h):
            time.sleep(0.01)
        self.park = False
        self.st[ek.E_LEFT] = 0

    def _update(self, kind: int, lo: int, hi: int) -> None:
        h, d, a, i = self.h, self.h.dmap, self.h.a, self.h.iso
        if kind == IT_OLD_PAGE:
            page = h.bounds.page(lo)
            start, end, check = page + CHUNK_HEADER, page + h.g.page_size, True
        elif kind == IT_LARGE:
            start = h.bounds.page(lo) + CHUNK_HEADER
            end, check = start + ((hi + 7) & ~7), True
        else:
            start, end, check = lo, hi, False
        ctr = np.zeros(mk.NCTR, dtype=np.int64)
        mk.update_range(d.words, d.dm, d.shift, d.wpf, a.v8_markbits, self.base, h.g.page_shift, start, end, check,
                        h.bounds.new_base, h.bounds.old_base, a.v8_slots[OLD_TO_NEW], a.pg_slots[i].reshape(-1), ctr)
        self.ctr[k.K_SLOTS_VISITED] += ctr[mk.K_SLOTS]
        self.ctr[k.K_SLOTS_RECORDED] += ctr[mk.K_RECORDED]
        self.ctr[k.K_OBJECTS_SCANNED] += ctr[mk.K_SEEN]  # objects walked (work_span.py's map words)


def _run_main(h: HeapContext, main: Task) -> None:
    """The main's part: its items, then a dead helper's (given back), until no helper is active."""
    unentered: dict[int, float] = {}  # task -> when its bit was first seen without a process
    while True:
        while main.turn():
            pass
        dead = gc_job.dead_or_unentered(h, unentered, UNENTERED_S)
        for t in dead:
            n = 0 if os.environ.get(NO_REDO_ENV) else gc_job.release_items(h, t)
            print(f"isolate {h.iso}: compaction task {t} (core {int(h.a.gc_task[h.iso, t, gc_job.TK_CORE])}) "
                  f"died; the main does its {n} claimed items again", file=sys.stderr, flush=True)
            gc_job.forget(h, t)
        if dead:
            continue
        if gc_job.active(h) == 0:
            return
        gc_job.idle_main(h)


def run(h: HeapContext, kind: int, items: list[tuple[int, int, int]], lab: tuple[int, int],
        abort: tuple[int, int] = (-1, 0)) -> tuple[int, int, int]:
    """Run one evacuation or update job over `items`, task 0's LAB starting as `lab`: how many tasks
    there were and task 0's LAB (top, limit) at the end (the others' tails are given back)."""
    turns = int(h.cfg[C_TEST_TASKS]) > 1  # the in-process test: tasks take turns
    n = min(int(h.cfg[C_TEST_TASKS]), MAX_TASKS) if turns else compaction_tasks(h, h.jobs.cores, len(items))
    p = np.array(abort, dtype=np.int64)
    h.a.gc_task[h.iso, :n, :] = 0
    k.task_row(h.a.gc_task, h.iso, 0)[1][k.L_OLD_TOP:k.L_OLD_LIMIT + 1] = lab
    cpu0 = time.thread_time_ns()
    if n > 1 and not turns:  # a job: helper cores join as tasks 1..n-1 (help below)
        gc_job.begin_main(h)
        try:
            gc_job.post(h, kind, n, items, p)
            _run_main(h, Task(h, 0, p))
        finally:
            gc_job.end_main(h)
    else:
        gc_job.post(h, kind, 1, items, p)  # no helper joins a one-task job
        race, no_cas = turns and bool(h.cfg[C_TEST_RACE]), turns and bool(h.cfg[C_TEST_NO_CAS])
        tasks = [Task(h, t, p, race, no_cas) for t in range(n)]
        turn = 0
        while True:  # turns, the order flipped every round so that each task wins some races
            turn += 1
            if True not in [t.turn() for t in (tasks if turn % 2 else tasks[::-1])]:
                break
        gc_job.close(h)
    gc_job.cpu_add(h, 0, time.thread_time_ns() - cpu0)
    labs = [k.task_row(h.a.gc_task, h.iso, t)[1] for t in range(n)]
    for t in range(1, n):
        if labs[t][k.L_OLD_TOP]:
            h.top[T_OLD_TOP], h.top[T_OLD_LIMIT] = labs[t][k.L_OLD_TOP], labs[t][k.L_OLD_LIMIT]
            old_space.give_back_lab(h)
    return n, int(labs[0][k.L_OLD_TOP]), int(labs[0][k.L_OLD_LIMIT])


def figures(h: HeapContext, n: int, work: GcWork) -> np.ndarray:
    """Add one job's figures to the collection's: helpers (the most in any job), the objects they
    moved, CAS failures, the helpers' CPU time (helper_cpu_ms: heap.py adds it to the main's for the
    total), its work and span (work_span.py); the tasks' counters summed."""
    rows = h.a.gc_task[h.iso]
    joined = [t for t in range(1, n) if rows[t, gc_job.TK_PID]]
    f = tracer_parallel.task_figures(rows, n, k.K_COPIED, k.K_PROMOTED, k.K_STEALS, k.K_CAS_FAIL,
                                     gc_job.TK_CPU_NS, joined)
    work.helpers = max(work.helpers, int(f["helpers"]))
    work.helper_objects += int(f["helper_objects"])
    work.cas_failures += int(f["cas_failures"])
    work.helper_cpu_ms += f["total_cpu_ms"] - f["main_cpu_ms"]
    work_span.job(work, h, n)  # the job is one parallel phase
    return np.sum([k.task_row(h.a.gc_task, h.iso, t)[0] for t in range(n)], axis=0)


def help(h: HeapContext, kind: int) -> int:
    """Join the isolate's posted evacuation or update job (`kind`, as the helper saw it posted) as a
    helper, take items until none is left, leave; the task number it ran as, or -1 if it could not
    join. Its row is not reset: a task number left by one helper and taken by the next keeps its LAB."""
    task = gc_job.join(h, kind)
    if task < 0:
        return -1
    cpu0 = time.thread_time_ns()
    t = Task(h, task, gc_job.params(h, NP))
    t.park = os.environ.get(gc_job.HELPER_PAUSE_ENV) == PARK_HOOK
    try:
        while gc_job.running(h) and gc_job.main_alive(h) and t.turn():
            pass
    finally:
        gc_job.cpu_add(h, task, time.thread_time_ns() - cpu0)
        gc_job.leave(h, task)
    return task
