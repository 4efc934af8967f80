"""A parallel scavenge across cores: V8's ScavengerCollector::JobTask (`src/heap/scavenger.cc`) run by
the main thread as task 0 and by helper cores (server/gc_helper.py) as the others, over the job
protocol of gc_job.py.

- `run_main(h, sh, main)`: after its share of the root items, the main drains in slices (P_SLICE
  objects, then YIELD): between slices it publishes its copied list's push segment, full or not,
  when a helper waits idle and the pool is empty (V8's Local::Publish when others wait); with no
  work of its own it steals, and with nothing to steal it waits on its doorbell while helpers are
  active. Once they are gone (none active, the pool empty) the job ends; an overflow of the pool
  (worklist.py) is then rescanned by the main alone, through every task's logged LABs.
- `help(h)`: a helper's whole visit: join, slices of the same task loop, leave (publish, close its
  to-space LAB, count its CPU time). It leaves when the job ends, the main dies (its `v8/gc/<core>`
  is free), or it has waited IDLE_WAIT_S with nothing to steal and the main idle.
- Repair (the main, once every live helper has left, the job in gc_job's REPAIR state so that none
  joins meanwhile): a joined helper whose `v8/gc/<core>` is free died. Its claimed items are given
  back and redone; its private segments are adopted into the pool, and the object it was scanning
  is pushed again; its to-space LAB is closed at its published top; and, once every dead helper's
  LABs are closed, every object they may have forwarded without pushing is scanned again, in one
  rescan: to-space and the promotion LABs in their gc_lablogs. A log that overflowed
  cannot be rescanned: the scavenge fails and the isolate is LOST, as any collection cut short is.

Owns nothing beyond its tasks; touches what scavenge_tasks.py touches, plus gc_job's rows.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from memsim.sim.errors import ResourceExhausted
from memsim.sim.v8 import gc_job
from memsim.sim.v8 import scavenge_kernels as k
from memsim.sim.v8 import worklist as wl
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.layout import CHUNK_HEADER
from memsim.sim.v8.scavenge_tasks import Shared, Task

UNENTERED_S = 1.0  # a joined bit whose row names no core after this long (a backstop: join claims it first)


def _pool_empty(h: HeapContext) -> bool:
    return not (h.worklist.global_size(wl.WL_COPIED) or h.worklist.global_size(wl.WL_PROMOTED))


def _ranges(sh: Shared, extra: list[tuple[int, int]]) -> np.ndarray:
    return np.array([(sh.p[k.P_TO_LO] + CHUNK_HEADER, -1), *extra], dtype=np.int64).reshape(-1, 2)


def _helper_labs(h: HeapContext, task: int) -> list[tuple[int, int]]:
    r = gc_job.lab_ranges(h, task, int(k.task_row(h.a.gc_task, h.iso, task)[1][k.L_OLD_TOP]))
    if r is None:
        raise ResourceExhausted(f"Scavenger: task {task}'s promotion LAB log overflowed ({r}): its objects "
                                f"cannot be rescanned")
    return [(int(lo), int(hi)) for lo, hi in r]


def _repair(h: HeapContext, sh: Shared, main: Task, dead: list[int]) -> None:
    """Take over dead tasks' work (see the header)."""
    labs: list[tuple[int, int]] = []
    for d in dead:
        if gc_job.release_items(h, d):
            main.st[k.S_PHASE], main.item = k.PH_LOCALS, -1  # the main claims them again
        h.worklist.adopt(d)
        obj = int(k.task_row(h.a.gc_task, h.iso, d)[2][k.S_OBJ])
        if obj:  # the object it was scanning (popped, in no worklist): scanned again from its first field
            main.push(obj)
        k.close_new_lab(sh.heap_args[0], sh.heap_args[1], h.top, k.task_row(h.a.gc_task, h.iso, d)[1], sh.p)
        mine = _helper_labs(h, d)
        labs += mine
        print(f"isolate {h.iso}: scavenge task {d} (core {gc_job.task_core(h, d)}) died; "
              f"the main takes over its items, segments and {len(mine)} promotion LABs", file=sys.stderr, flush=True)
    if not os.environ.get(gc_job.NO_LABLOG_RESCAN_ENV):  # every dead task's to-space LAB closed: one rescan
        main.rescan(_ranges(sh, labs))
    for d in dead:
        gc_job.forget(h, d)


def run_main(h: HeapContext, sh: Shared, main: Task, tasks: int) -> None:
    """The main's part after its roots: drain, share, wait, repair, end (see the header)."""
    unentered: dict[int, float] = {}  # task -> when its bit was first seen without a process
    while True:
        code = main.step(k.PH_DONE)
        if code == k.YIELD:
            if gc_job.idle_helpers(h) and _pool_empty(h):
                main.publish_for_idle()
            continue
        if not _pool_empty(h):
            continue
        seen: set[int] = set()
        dead = gc_job.dead_tasks(h, seen)
        now = time.monotonic()
        unentered = {t: unentered.get(t, now) for t in seen}
        dead += [t for t, since in unentered.items() if now - since > UNENTERED_S]  # died between CAS and enter
        if dead and gc_job.active(h) == len(dead) and gc_job.begin_repair(h):
            try:
                if gc_job.active(h) == len(dead):  # every live helper has left, and none can join: nothing races
                    _repair(h, sh, main, dead)
            finally:  # a repair that raises (an overflowed LAB log) leaves the job RUNNING for end_main
                gc_job.end_repair(h)
            continue
        if gc_job.active(h) == 0:
            break
        gc_job.set_main_idle(h, True)
        gc_job.wait_main(h)
        gc_job.set_main_idle(h, False)
    gc_job.end_main(h)
    if gc_job.failed(h):  # a helper raised: its work was given back, but what it met may be the heap's state
        raise ResourceExhausted(f"Scavenger: a helper task of isolate {h.iso} failed (see its core's log): the "
                                f"scavenge is abandoned")
    if sh.overflowed or gc_job.overflowed(h):  # every task's LABs are closed or logged: rescan alone
        sh.overflowed = False
        k.close_new_lab(sh.heap_args[0], sh.heap_args[1], h.top, main.lab, sh.p)
        main.rescan(_ranges(sh, main.promotion_labs() + [r for t in range(1, tasks) for r in _helper_labs(h, t)]))
        sh.p[k.P_SLICE] = 0
        while main.step(k.PH_DONE) != k.LOCAL_EMPTY or not _pool_empty(h):
            if sh.overflowed:
                raise ResourceExhausted("Scavenger: the worklists' pool overflowed twice in one scavenge")
    main.st[k.S_PHASE] = k.PH_DONE


def _give_back(h: HeapContext, t: Task) -> None:
    """A helper whose visit raised: its claimed items are free again, the object it was scanning is
    pushed again (scanned from its first field: the updates are idempotent), and J_FAILED is set."""
    gc_job.fail(h)
    gc_job.release_items(h, t.task)
    obj, t.st[k.S_OBJ] = int(t.st[k.S_OBJ]), 0
    if obj:
        t.push(obj)


def help(h: HeapContext) -> int:
    """Join the isolate's posted scavenge as a helper, work until there is nothing left to do, leave;
    the task number it ran as, or -1 if it could not join."""
    task, gen = gc_job.join_gen(h, gc_job.KIND_SCAVENGE)
    if task < 0:
        return -1
    cpu0 = time.thread_time_ns()
    sh = Shared(h, gc_job.params(h, k.NP))
    if os.environ.get(gc_job.HELPER_PAUSE_ENV) == "after-cas":
        sh.p[k.P_PARK] = 1
    t = Task(sh, task)
    t.gen = gen
    idle_since = 0.0
    try:
        while gc_job.running(h) and gc_job.main_alive(h, task, gen):
            code = t.step(k.PH_DONE)
            if code == k.PARKED:
                wait = gc_job.park_wait_seconds()
                if wait:
                    print(f"isolate {h.iso}: scavenge helper task {task} parked after a won CAS on core {h.core} "
                          f"(pid {os.getpid()}, test hook {gc_job.HELPER_PAUSE_ENV})", file=sys.stderr, flush=True)
                t.park(wait)
                continue
            if code == k.YIELD:
                if (gc_job.main_idle(h) or gc_job.idle_helpers(h)) and _pool_empty(h):
                    t.publish_for_idle()
                continue
            if not _pool_empty(h):
                continue
            if gc_job.main_idle(h):
                break  # no one has work but the pool's, and it is empty
            now = time.monotonic()
            if not idle_since:
                idle_since = now
                gc_job.add_idle(h, 1)
            elif now - idle_since > gc_job.IDLE_WAIT_S:
                break
            os.sched_yield()
    except BaseException:  # its work goes back to the main, and the main fails the scavenge
        _give_back(h, t)
        raise
    finally:
        if idle_since:
            gc_job.add_idle(h, -1)
        if sh.overflowed:
            gc_job.flag_overflow(h)
        for lst in range(wl.NLIST):
            if not t.wl.publish(task, lst):
                gc_job.flag_overflow(h)
        k.close_new_lab(sh.heap_args[0], sh.heap_args[1], h.top, t.lab, sh.p)
        gc_job.cpu_add(h, task, time.thread_time_ns() - cpu0)
        gc_job.leave(h, task, gen)
    return task
