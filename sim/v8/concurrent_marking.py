"""Concurrent marking: V8's ConcurrentMarking (`src/heap/concurrent-marking.cc`): helper cores mark
an incremental cycle's objects while the isolate's mutator runs, over gc_job.py's job protocol
(job kind KIND_MARK) and the shared marking worklist (worklist.py's `wm_*` pool, marking.py).

- `resume(h)` (ScheduleJob / RescheduleJobIfNeeded): when a cycle starts (incremental_marking.start)
  and after a scavenge inside it, if iso_cfg C_CONCURRENT is set, the main publishes its marking
  segment (the roots, the barrier's pushes) and posts the job; the doorbells wake the other cores.
  The main is not a task of it: it goes on with the mutator, and steps (C_INCREMENTAL) or not.
- `help(h)` (ConcurrentMarking::RunMajor), a helper core's visit (server/gc_helper.py): join, take
  two segments of its own (`Worklist.attach`), drain in slices of SLICE_WORDS (64 KB,
  kBytesUntilInterruptCheck) checking between slices that the job still runs, steal when its
  segments are empty, and leave after VISIT_S (a visit holds its core's `core_lock` throughout:
  docs/design/orinoco.md §3) or when no grey object is left; leaving publishes its segments
  (`detach`) and adds its CPU time and objects to the cycle's iso_marking columns. The visiting
  kernel is mark_kernels.drain, the main's own: white->grey and black are atomic `lock or`s and
  `pg_live` an atomic add, so two tasks never count an object twice.
- `pause(h)` (ConcurrentMarking::Pause + Join): before any collection touches the heap (a scavenge
  moves young objects and rewrites the worklist, the finalising Mark-Compact finishes the marking)
  the main ends the job and waits until every joined helper has left; a joined helper whose
  `v8/gc/<core>` is free died: its segments are adopted into the pool and the cycle is flagged
  overflowed, so the finalisation's rescan finds the object it was visiting (still grey: black is
  set last).
- `observe(h)`: with C_CONCURRENT and not C_INCREMENTAL the main never steps; at its allocation
  observers' points it publishes what the barrier pushed, rings helpers if work waits, and reports
  marking complete when the pool is empty and no helper is in the job (then the Mark-Compact
  finalises: "finalize incremental marking via stack guard").

Racing reads are safe for the reasons V8's are: the mutator's 8-byte aligned stores are atomic on
x86; an object is reachable only after allocate_raw's caller wrote its header; a page is
uncommitted or an object moved only inside a collection, after `pause`. Helper cores: iso_cfg
C_HELPERS if > 0, else every other core (V8's concurrent marking uses all worker threads), at most
worklist.MAX_TASKS - 1; none without libatomic (its fallback is atomic within one process only).

Test hook: MEMSIM_TEST_V8_HELPER_STEP=n: a helper visits n objects one at a time, then parks in
the job until it is paused (a deterministic interleaving of helper and mutator across processes).

Owns the KIND_MARK job's life and iso_marking's M_HELPER_* columns; touches the marking pool, the
bitmaps and `pg_live` through mark_kernels, and gc_job's rows.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from memsim.sim.machine import atomics
from memsim.sim.v8 import gc_job, marking, work_span
from memsim.sim.v8 import mark_kernels as mk
from memsim.sim.v8 import worklist as wl
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.layout import (
    C_CONCURRENT,
    C_HELPERS,
    M_HELPER_CORES,
    M_HELPER_CPU_NS,
    M_HELPER_OBJECTS,
    M_OVERFLOWED,
)

SLICE_WORDS = 64 * 1024 // 8  # kBytesUntilInterruptCheck, in words
VISIT_S = 0.005  # a visit's longest run before its core takes its own requests again
STEP_ENV = "MEMSIM_TEST_V8_HELPER_STEP"
UNENTERED_S = 1.0  # a joined bit whose task names no process after this long: the helper died joining
NOT_JOINED, DONE, AGAIN = range(3)  # help's results


@dataclass
class HelperFigures:
    cpu_ms: float  # the helpers' CPU time over the cycle
    objects: int  # objects they blackened
    cores: int  # distinct helper cores


def tasks(h: HeapContext) -> int:
    """A concurrent job's tasks (the main's row 0 and the helpers'), 1 when no helper may join."""
    return pause_tasks(h) if h.cfg[C_CONCURRENT] else 1


def pause_tasks(h: HeapContext, rule: bool = True) -> int:
    """The tasks that mark: C_HELPERS helper cores if > 0, else (with `rule`) every other core; 1 when
    serial (C_HELPERS 0 and not `rule`), on one core, or without libatomic."""
    cores, n = h.jobs.cores, int(h.cfg[C_HELPERS])
    if cores < 2 or atomics.backend() != "libatomic" or (n == 0 and not rule):
        return 1
    return 1 + min(n if n > 0 else cores - 1, cores - 1, wl.MAX_TASKS - 1)


def _pool(h: HeapContext) -> wl.Worklist:
    return wl.Worklist(h.a.marking, h.iso, h.worklist.lock)


def _job(h: HeapContext) -> np.ndarray:
    return h.a.gc_job[h.iso]


def _mine(h: HeapContext) -> bool:
    """The isolate's job row holds a concurrent marking job not yet ended."""
    job = _job(h)
    return int(job[gc_job.J_KIND]) == gc_job.KIND_MARK and int(job[gc_job.J_STATE]) in (gc_job.RUNNING,
                                                                                     gc_job.ENDING)


def _publish_main(h: HeapContext, pool: wl.Worklist) -> None:
    if not pool.publish(marking.TASK, wl.WL_MARKING):
        h.a.iso_marking[h.iso, M_OVERFLOWED] = 1


def resume(h: HeapContext) -> None:
    """Post the marking job for the running cycle (see the header); nothing without helpers."""
    n = tasks(h)
    if n < 2 or not marking.active(h):
        return
    _publish_main(h, _pool(h))
    gc_job.post(h, gc_job.KIND_MARK, n, [], np.zeros(0, dtype=np.int64))


def pause(h: HeapContext, timeout: float = 30.0) -> None:
    """End the job and wait for every joined helper to leave, repairing dead ones (see the header)."""
    if not _mine(h):
        return
    job = _job(h)
    atomics.compare_exchange(job, gc_job.J_STATE, gc_job.RUNNING, gc_job.ENDING)
    job[gc_job.J_MAIN_CORE] = h.core  # leaving helpers ring this core
    unentered: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while gc_job.active(h) > 0 and time.monotonic() < deadline:
        if not _reap_dead(h, unentered):
            gc_job.wait_main(h, 0.002)
    job[gc_job.J_STATE] = gc_job.DONE


def _reap_dead(h: HeapContext, unentered: dict[int, float]) -> bool:
    """Repair every joined helper that died (see `_repair`); `unentered`: when each bit without a
    process was first seen, kept by the caller. Whether any was."""
    seen: set[int] = set()
    dead = gc_job.dead_tasks(h, seen)
    now = time.monotonic()
    unentered.update({t: unentered.get(t, now) for t in seen})
    for t in [t for t in unentered if t not in seen]:
        del unentered[t]
    dead += [t for t, since in unentered.items() if now - since > UNENTERED_S]
    for t in dead:
        _repair(h, t)
    return bool(dead)


def mark_in_pause(h: HeapContext, ctr: np.ndarray) -> int:
    """The atomic pause's marking shared with helper cores (V8's parallel marking in
    MarkCompactCollector::MarkLiveObjects; docs/design/orinoco.md S7): the main, as task 0, posts
    the job and drains its segments in slices beside the helpers, publishing its push segment when
    helpers are in and the pool is empty; with nothing left to steal it waits for them (repairing
    the dead) and ends the job. What is left (an overflow's rescan) the caller's drain does alone.
    The job's tasks (1: no job), each one's words of work in its row's TK_WORK (work_span.py)."""
    n = pause_tasks(h, rule=False)
    if n < 2:
        return 1
    pool = _pool(h)
    _publish_main(h, pool)
    h.a.gc_task[h.iso, :n, gc_job.TK_WORK] = 0  # a row no helper enters this time keeps no older figure
    gc_job.post(h, gc_job.KIND_MARK, n, [], np.zeros(0, dtype=np.int64))
    unentered: dict[int, float] = {}
    try:
        while True:
            code = _slice(h, pool, marking.TASK, ctr, SLICE_WORDS)
            if code != mk.M_EMPTY:
                if gc_job.active(h) and not pool.global_size(wl.WL_MARKING):
                    _publish_main(h, pool)  # helpers wait: share the main's segment
                continue
            if gc_job.active(h) == 0:
                break
            if not _reap_dead(h, unentered):
                gc_job.set_main_idle(h, True)  # helpers with nothing to steal leave at once
                gc_job.wait_main(h, 0.0005)
                gc_job.set_main_idle(h, False)
    finally:
        pause(h)
    h.a.gc_task[h.iso, 0, gc_job.TK_WORK] = work_span.marking_words(ctr)
    return n


def take_figures(h: HeapContext) -> HelperFigures:
    """`figures`, and the columns zeroed for the next collection."""
    f = figures(h)
    h.a.iso_marking[h.iso, [M_HELPER_CPU_NS, M_HELPER_OBJECTS, M_HELPER_CORES]] = 0
    return f


def _repair(h: HeapContext, task: int) -> None:
    """A helper died in the job: its segments go to the pool; the object it was visiting is grey off
    every list, so the cycle is flagged for the rescan (marking.py's overflow path)."""
    if h.a.gc_task[h.iso, task, gc_job.TK_PID]:
        _pool(h).adopt(task)
    h.a.iso_marking[h.iso, M_OVERFLOWED] = 1
    print(f"isolate {h.iso}: concurrent marking task {task} (core {int(h.a.gc_task[h.iso, task, gc_job.TK_CORE])}) "
          f"died; its segments are adopted and grey objects will be rescanned", file=sys.stderr, flush=True)
    gc_job.forget(h, task)


def kick(h: HeapContext) -> None:
    """The main's look at the job between its own work: publish what it pushed, and ring helpers if
    work waits and none is in the job (a helper that left for lack of work comes back)."""
    if not _mine(h) or not gc_job.running(h):
        return
    pool = _pool(h)
    _publish_main(h, pool)
    bells = h.jobs.doorbells
    if bells is not None and pool.global_size(wl.WL_MARKING) and gc_job.active(h) == 0:
        for c in range(bells.cores):
            if c != h.core:
                bells.ring(c)


def observe(h: HeapContext) -> bool:
    """The allocation observers' point when only helpers mark: True when marking is complete."""
    kick(h)
    pool = _pool(h)
    return (not pool.global_size(wl.WL_MARKING) and pool.local_empty(marking.TASK)
            and (not _mine(h) or gc_job.active(h) == 0))


def figures(h: HeapContext) -> HelperFigures:
    """What the cycle's helpers did (after `pause`)."""
    m = h.a.iso_marking[h.iso]
    cores = bin(int(m[M_HELPER_CORES])).count("1")
    return HelperFigures(int(m[M_HELPER_CPU_NS]) / 1e6, int(m[M_HELPER_OBJECTS]), cores)


def _running(job: np.ndarray, gen: int) -> bool:
    return int(atomics.load(job, gc_job.J_STATE)) == gc_job.RUNNING and int(atomics.load(job, gc_job.J_GEN)) == gen


def help(h: HeapContext) -> int:
    """A helper core's visit (see the header): NOT_JOINED, DONE (no grey object left, or the job
    ended), or AGAIN (its time was up with work left: the caller comes back)."""
    task = gc_job.join(h, gc_job.KIND_MARK)
    if task < 0:
        return NOT_JOINED
    cpu0 = time.thread_time_ns()
    job = _job(h)
    gen = int(job[gc_job.J_GEN])
    pool = _pool(h)
    a = h.a
    ctr = np.zeros(mk.NCTR, dtype=np.int64)
    steps = int(os.environ.get(STEP_ENV, "0") or 0)
    end = time.monotonic() + VISIT_S
    result = DONE
    attached = pool.attach(task)
    try:
        while attached and _running(job, gen):
            code = _slice(h, pool, task, ctr, 1 if steps else SLICE_WORDS)
            if code == mk.M_EMPTY and not _wait_for_work(h, pool, job, gen):
                break
            if steps and code == mk.M_BUDGET:
                steps -= 1
                if not steps:
                    _park(h, task, job, gen)
                    break
            if not steps and time.monotonic() > end:
                result = AGAIN
                break
    finally:
        if attached:
            pool.detach(task)
        m = a.iso_marking[h.iso]
        atomics.fetch_add(m, M_HELPER_CPU_NS, time.thread_time_ns() - cpu0)
        atomics.fetch_add(m, M_HELPER_OBJECTS, int(ctr[mk.K_MARKED]))
        atomics.fetch_or(m, M_HELPER_CORES, 1 << h.core)
        a.gc_task[h.iso, task, gc_job.TK_WORK] = work_span.marking_words(ctr)
        gc_job.leave(h, task)
    return result


def _slice(h: HeapContext, pool: wl.Worklist, task: int, ctr: np.ndarray, words: int) -> int:
    """Visit grey objects until `words` more are visited (M_BUDGET), the task's segments are empty
    and nothing could be stolen (M_EMPTY), or its push segment was published (M_FULL)."""
    a, d = h.a, h.dmap
    code = mk.drain(d.words, d.dm, d.shift, d.wpf, a.v8_markbits, a.v8_blackbits, marking.bitbase(h), h.g.page_shift,
                    pool.seg, pool.meta, pool.local(task), a.pg_live[h.iso], a.ext_mark[h.iso], ctr, words)
    if ctr[mk.K_OVERFLOW]:
        a.iso_marking[h.iso, M_OVERFLOWED] = 1
        ctr[mk.K_OVERFLOW] = 0
    if code == mk.M_FULL and not pool.publish(task, wl.WL_MARKING):
        a.iso_marking[h.iso, M_OVERFLOWED] = 1
    if code == mk.M_EMPTY and pool.steal(task, wl.WL_MARKING):
        return mk.M_FULL  # not empty: a stolen segment to visit
    return code


def turn(h: HeapContext, task: int, words: int) -> int:
    """A helper task's slice driven in this process, between the mutator's operations (the tests'
    interleaving of helper and mutator by turns, as the scavenger's are; no job, no other core):
    the main's segment published (as `resume` and `kick` do), then take segments, visit up to
    `words`, give the segments back. The objects it blackened."""
    pool = _pool(h)
    if not marking.active(h):
        return 0
    _publish_main(h, pool)
    if not pool.attach(task):
        return 0
    ctr = np.zeros(mk.NCTR, dtype=np.int64)
    try:
        while words > 0:
            before = int(ctr[mk.K_WORDS])
            if _slice(h, pool, task, ctr, words) == mk.M_EMPTY:
                break
            words -= int(ctr[mk.K_WORDS]) - before  # a steal or a publish visits nothing: go on
    finally:
        pool.detach(task)
    return int(ctr[mk.K_MARKED])


def _wait_for_work(h: HeapContext, pool: wl.Worklist, job: np.ndarray, gen: int) -> bool:
    """Nothing to steal: wait up to gc_job.IDLE_WAIT_S for a segment (the main may publish one);
    True if one appeared."""
    deadline = time.monotonic() + gc_job.IDLE_WAIT_S
    while time.monotonic() < deadline and _running(job, gen):
        if pool.global_size(wl.WL_MARKING):
            return True
        if gc_job.main_idle(h):  # a pause's main waits for the helpers to leave: none has work left
            return False
        os.sched_yield()
    return False


def _park(h: HeapContext, task: int, job: np.ndarray, gen: int) -> None:
    print(f"isolate {h.iso}: concurrent marking helper task {task} parked on core {h.core} (pid {os.getpid()}, "
          f"test hook {STEP_ENV})", file=sys.stderr, flush=True)
    while _running(job, gen):
        time.sleep(0.005)
