"""A parallel collection's job in shared memory: V8's JobTask / JobDelegate (`include/v8-platform.h`,
`src/libplatform/default-job.cc`) and its work items (`src/heap/parallel-work-item.h`,
ParallelWorkItem::TryAcquire), across cores instead of threads.

The core that collects (the main thread, holding the isolate's locker) posts a job in its isolate's
`gc_job` row, rings the other cores' doorbells (sim/machine/doorbell.py) and runs as task 0. A
core whose helper thread is free (server/gc_helper.py) joins as task 1..tasks-1, does slices of
work, and leaves; the main ends the job once the work is gone and no helper is active. Helpers
never take the isolate's locker: they work through kernels and the leaf locks (`worklist`,
`gcalloc`), so a main waiting for them cannot deadlock with them.

    gc_job row (layout.py's NJOB int64 columns, J_* below; P_BASE.. the scavenge's kernel constants)
    gc_item (NITEM, 4): I_CLAIM (0 free, task + 1 claimed, DONE), I_KIND, I_LO, I_HI
    gc_task columns TK_* (beside scavenge_kernels.py's ctr/lab/st): the task's core, pid, CPU time,
    logged LABs

Protocol (every shared word written by atomics, sim/machine/atomics.py):
- post: items and constants first, then J_GEN += 1, J_STATE = RUNNING last.
- join (a helper): take `v8/gc/<core>` (held while joined: the kernel frees it if the process
  dies, so a slow core is never taken for dead), CAS a free task bit into J_JOINED, J_ACTIVE += 1,
  then re-read J_STATE/J_GEN: a job that is no longer RUNNING is left at once.
- leave: publish, close LABs, clear the bit, J_ACTIVE -= 1, release `v8/gc/<core>`, ring the main.
- end (the main): no work of its own, the pool empty, J_ACTIVE == 0 -> J_STATE = ENDING, wait for
  J_ACTIVE == 0 again (a helper that joined meanwhile finds nothing and leaves), DONE.
- death: a joined bit whose core's `v8/gc/<core>` is free *and still set when re-read* (a live helper
  clears its bit before it releases the lock) is a dead helper (scavenger.py repairs its work);
  a helper that finds the main's `v8/gc/<core>` free leaves (the main died: the isolate is LOST, and
  isolate_table's recovery waits for every joined helper before it tears the heap down).

Owns gc_job, gc_item, the TK_* columns of gc_task. Touches nothing else.
"""

from __future__ import annotations

import os
import time

import numpy as np

from memsim.sim.machine import atomics
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.layout import C_HELPERS, C_MAX_OLD, C_SEMI, NITEM, NJOB, T_OLD_COMMITTED
from memsim.sim.v8.worklist import MAX_TASKS

MiB = 1 << 20
(J_KIND, J_GEN, J_STATE, J_TASKS, J_JOINED, J_ACTIVE, J_MAIN_CORE, J_ITEMS, J_CURSOR, J_MAIN_IDLE, J_OVERFLOW,
 J_HELPERS_SEEN, J_IDLE) = range(13)
P_BASE = 16  # the job's kernel constants (scavenge_kernels.py's p) from this column on
NONE, RUNNING, ENDING, DONE = range(4)
KIND_SCAVENGE = 1
KIND_MARK = 2  # concurrent marking (concurrent_marking.py): no items, the marking worklist is the work
KIND_EVACUATE, KIND_UPDATE = 4, 5  # mark-compact's parallel phases (compaction_job.py)
I_CLAIM, I_KIND, I_LO, I_HI = range(4)
ITEM_DONE = -1
# gc_task columns owned here (scavenge_kernels.py uses 0..35)
TK_CORE, TK_PID, TK_CPU_NS, TK_NLABS, TK_LABLOG_FULL, TK_JOINED_GEN = range(40, 46)
# objects a task scans between two looks around (publish for an idle task, is the main alive): half a
# worklist segment, so that an idle helper is fed before the main's own segment fills (V8's tasks check
# for yield every kObjectsUntilInterruptCheck = 1000 objects; they are threads, a segment away)
SLICE_OBJECTS = 128
# test hooks (server/gc_helper.py, scavenge_job.py): a helper parks after its first won CAS of an object
# with fields, before the push (the window a killed helper leaves a forwarded object in no worklist);
# the main skips the rescan of a dead helper's LABs (the repair's can-fail control)
HELPER_PAUSE_ENV = "MEMSIM_TEST_V8_HELPER_PAUSE"
NO_LABLOG_RESCAN_ENV = "MEMSIM_TEST_V8_NO_LABLOG_RESCAN"
PARK_SECONDS = 60.0
# a helper with nothing to do waits this long for published work before it leaves (it may join while the
# main still scans roots or commits an old page, before anything is published)
IDLE_WAIT_S = 0.005


def tasks_for(h: HeapContext, cores: int) -> int:
    """ScavengerCollector::NumberOfScavengeTasks under the isolate's C_HELPERS switch: 1 when serial
    (0, the default); V8's max(1, min(new-space MiB + 1, kMaxScavengerTasks, cores)) for -1; at most
    n + 1 for n; and 1 if old space cannot take a page per task (CanPromoteYoungAndExpandOldGeneration)."""
    helpers = int(h.cfg[C_HELPERS])
    if helpers == 0 or cores < 2 or atomics.backend() != "libatomic":  # without libatomic: atomic in-process only
        return 1
    rule = max(1, min(int(h.cfg[C_SEMI]) // MiB + 1, MAX_TASKS, cores))  # new space's capacity: one semispace
    tasks = rule if helpers < 0 else min(helpers + 1, MAX_TASKS, cores)
    if int(h.cfg[C_MAX_OLD]) - int(h.top[T_OLD_COMMITTED]) < tasks * h.g.page_size:
        return 1
    return tasks


def _row(h: HeapContext) -> np.ndarray:
    return h.a.gc_job[h.iso]


def post(h: HeapContext, kind: int, tasks: int, items: list[tuple[int, int, int]], p: np.ndarray) -> None:
    """Publish a job of `tasks` tasks (the caller is task 0) over `items`; ring the other cores."""
    assert len(items) <= NITEM and P_BASE + len(p) <= NJOB
    job, it = _row(h), h.a.gc_item[h.iso]
    it[:len(items), I_CLAIM] = 0
    it[:len(items), I_KIND:] = np.array(items, dtype=np.int64).reshape(-1, 3)
    job[P_BASE:P_BASE + len(p)] = p
    job[J_KIND], job[J_TASKS], job[J_JOINED], job[J_ACTIVE] = kind, tasks, 1, 0
    job[J_MAIN_CORE], job[J_ITEMS], job[J_CURSOR], job[J_MAIN_IDLE], job[J_OVERFLOW] = h.core, len(items), 0, 0, 0
    job[J_HELPERS_SEEN] = job[J_IDLE] = 0
    enter(h, 0)
    h.a.gc_lablog[h.iso, :, :, :] = 0
    atomics.fetch_add(job, J_GEN, 1)
    atomics.compare_exchange(job, J_STATE, int(job[J_STATE]), RUNNING)
    bells = h.jobs.doorbells
    if tasks > 1 and bells is not None:
        for c in range(bells.cores):
            if c != h.core:
                bells.ring(c)


def enter(h: HeapContext, task: int) -> None:
    """Record the calling core as `task` (its core, pid, CPU clock, empty LAB log)."""
    row = h.a.gc_task[h.iso, task]
    row[TK_CORE], row[TK_PID], row[TK_CPU_NS] = h.core, os.getpid(), 0
    row[TK_NLABS] = row[TK_LABLOG_FULL] = 0
    row[TK_JOINED_GEN] = _row(h)[J_GEN]


def params(h: HeapContext, n: int) -> np.ndarray:
    """The posted job's kernel constants (a helper's copy)."""
    return np.array(_row(h)[P_BASE:P_BASE + n], dtype=np.int64)


def posted(a_gc_job: np.ndarray, core: int) -> list[int]:
    """Isolates with a RUNNING job of another core that still has a free task (a helper's scan)."""
    rows = np.flatnonzero((a_gc_job[:, J_STATE] == RUNNING) & (a_gc_job[:, J_MAIN_CORE] != core))
    return [int(i) for i in rows if int(a_gc_job[i, J_JOINED]) != (1 << int(a_gc_job[i, J_TASKS])) - 1]


def join(h: HeapContext, kind: int) -> int:
    """Join the isolate's running job of `kind` as a helper: its task number, or -1 (nothing to
    join). On success the core holds `v8/gc/<core>` until `leave`. The kind is read after the
    generation (post writes it before the generation), so a job of another kind posted since the
    helper looked is never joined by the wrong code."""
    job, env = _row(h), h.jobs
    if h.core >= len(env.gc_locks):
        return -1
    lock = env.gc_locks[h.core]
    gen = int(atomics.load(job, J_GEN))
    tasks = int(job[J_TASKS])
    if int(atomics.load(job, J_KIND)) != kind or int(job[J_STATE]) != RUNNING or not lock.try_acquire():
        return -1
    for t in range(1, tasks):
        joined = int(atomics.load(job, J_JOINED))
        bit = 1 << t
        if joined & bit:
            continue
        if atomics.compare_exchange(job, J_JOINED, joined, joined | bit) != joined:
            continue
        atomics.fetch_add(job, J_ACTIVE, 1)
        if int(atomics.load(job, J_STATE)) == RUNNING and int(atomics.load(job, J_GEN)) == gen:
            enter(h, t)
            atomics.fetch_add(job, J_HELPERS_SEEN, 1)
            return t
        _unjoin(h, t)
        break
    lock.release()
    return -1


def _unjoin(h: HeapContext, task: int) -> None:
    job = _row(h)
    atomics.fetch_and(job, J_JOINED, ~(1 << task))
    atomics.fetch_add(job, J_ACTIVE, -1)


def leave(h: HeapContext, task: int) -> None:
    """The helper's last step (its work published, its LABs closed by the caller)."""
    _unjoin(h, task)
    h.jobs.gc_locks[h.core].release()
    bells = h.jobs.doorbells
    if bells is not None:
        bells.ring(int(_row(h)[J_MAIN_CORE]))


def begin_main(h: HeapContext) -> None:
    if h.core < len(h.jobs.gc_locks):
        h.jobs.gc_locks[h.core].acquire()


def end_main(h: HeapContext, timeout: float = 30.0) -> None:
    """End the job (the main has no work left, the pool is empty, no helper is active): helpers that
    join from now on leave at once; wait for them, then DONE."""
    job = _row(h)
    if int(job[J_STATE]) == DONE:
        return
    atomics.compare_exchange(job, J_STATE, RUNNING, ENDING)
    deadline = time.monotonic() + timeout
    while int(atomics.load(job, J_ACTIVE)) > 0 and time.monotonic() < deadline:
        os.sched_yield()
    job[J_STATE] = DONE
    if h.core < len(h.jobs.gc_locks):
        h.jobs.gc_locks[h.core].release()


def running(h: HeapContext) -> bool:
    return int(atomics.load(_row(h), J_STATE)) == RUNNING


def active(h: HeapContext) -> int:
    return int(atomics.load(_row(h), J_ACTIVE))


def claim(h: HeapContext, task: int) -> int:
    """TryAcquire the next free item for `task` (its index), or -1 when every item is taken."""
    job, it = _row(h), h.a.gc_item[h.iso]
    n = int(job[J_ITEMS])
    while True:
        i = int(atomics.fetch_add(job, J_CURSOR, 1))
        if i >= n:
            break
        if atomics.compare_exchange(it[:, I_CLAIM], i, 0, task + 1) == 0:
            return i
    for free in np.flatnonzero(it[:n, I_CLAIM] == 0):  # items given back by a dead helper's repair
        if atomics.compare_exchange(it[:, I_CLAIM], int(free), 0, task + 1) == 0:
            return int(free)
    return -1


def item(h: HeapContext, i: int) -> tuple[int, int, int]:
    r = h.a.gc_item[h.iso, i]
    return int(r[I_KIND]), int(r[I_LO]), int(r[I_HI])


def finish(h: HeapContext, i: int) -> None:
    h.a.gc_item[h.iso, i, I_CLAIM] = ITEM_DONE


def release_items(h: HeapContext, task: int) -> int:
    """A dead task's claimed items become free again (their slot updates are idempotent)."""
    it = h.a.gc_item[h.iso]
    mine = np.flatnonzero(it[:int(_row(h)[J_ITEMS]), I_CLAIM] == task + 1)
    it[mine, I_CLAIM] = 0
    return len(mine)


def dead_tasks(h: HeapContext, unentered: set[int] | None = None) -> list[int]:
    """Joined helpers whose core's `v8/gc/<core>` is free: they died while joined. A task whose bit is
    set but whose row names no process yet (between its CAS and `enter`) goes into `unentered`: the
    caller decides how long that may last."""
    job, env = _row(h), h.jobs
    out = []
    joined = int(atomics.load(job, J_JOINED))
    for t in range(1, int(job[J_TASKS])):
        if not joined & (1 << t):
            continue
        if not h.a.gc_task[h.iso, t, TK_PID]:
            if unentered is not None:
                unentered.add(t)
            continue
        lock = env.gc_locks[int(h.a.gc_task[h.iso, t, TK_CORE])]
        if env.locks is not None and env.locks.probe_free(lock.index) and int(atomics.load(job, J_JOINED)) & (1 << t):
            out.append(t)
    return out


def dead_or_unentered(h: HeapContext, unentered: dict[int, float], late_s: float) -> list[int]:
    """dead_tasks, plus the tasks whose bit has been set without a process for `late_s` seconds (they
    died between their CAS and `enter`); `unentered` (task -> first seen) is the caller's memory."""
    seen: set[int] = set()
    dead = dead_tasks(h, seen)
    now = time.monotonic()
    fresh = {t: unentered.get(t, now) for t in seen}
    unentered.clear()
    unentered.update(fresh)
    return dead + [t for t, since in fresh.items() if now - since > late_s]


def forget(h: HeapContext, task: int) -> None:
    """The main took over a dead task's work: its bit and its count go."""
    _unjoin(h, task)


def main_alive(h: HeapContext) -> bool:
    """The job's main still holds its `v8/gc/<core>` (a helper checks between slices)."""
    env = h.jobs
    lock = env.gc_locks[int(_row(h)[J_MAIN_CORE])]
    return env.locks is None or not env.locks.probe_free(lock.index)


def wait_helpers_gone(h: HeapContext, timeout: float = 10.0) -> None:
    """Before a dead main's heap is torn down: every joined helper has left (or died)."""
    job, env = _row(h), h.jobs
    if int(job[J_STATE]) not in (RUNNING, ENDING):
        return
    atomics.compare_exchange(job, J_STATE, int(job[J_STATE]), ENDING)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        joined = int(atomics.load(job, J_JOINED)) & ~1
        if not joined or not [t for t in range(1, MAX_TASKS) if joined & (1 << t)
                              if env.locks is None or not env.locks.probe_free(
                                  env.gc_locks[int(h.a.gc_task[h.iso, t, TK_CORE])].index)]:
            break
        time.sleep(0.001)
    job[J_STATE] = DONE


def log_lab(h: HeapContext, task: int, lo: int, closed_top: int) -> None:
    """Log a new promotion LAB of the task starting at `lo` (its end open: the task's published top),
    closing the one before at `closed_top`."""
    row = h.a.gc_task[h.iso, task]
    log = h.a.gc_lablog[h.iso, task]
    n = int(row[TK_NLABS])
    if n and log[n - 1, 1] == 0:
        log[n - 1, 1] = closed_top
    if n >= log.shape[0]:
        row[TK_LABLOG_FULL] = 1
        return
    log[n] = (lo, 0)
    row[TK_NLABS] = n + 1


def lab_ranges(h: HeapContext, task: int, open_top: int) -> np.ndarray | None:
    """The task's logged promotion LABs (the open one up to `open_top`), or None if its log overflowed."""
    row = h.a.gc_task[h.iso, task]
    if row[TK_LABLOG_FULL]:
        return None
    r = np.array(h.a.gc_lablog[h.iso, task, :int(row[TK_NLABS])], dtype=np.int64)
    r[r[:, 1] == 0, 1] = open_top
    return r[r[:, 1] > r[:, 0]]


def cpu_add(h: HeapContext, task: int, ns: int) -> None:
    h.a.gc_task[h.iso, task, TK_CPU_NS] += ns


def idle_helpers(h: HeapContext) -> int:
    return int(_row(h)[J_IDLE])


def add_idle(h: HeapContext, n: int) -> None:
    atomics.fetch_add(_row(h), J_IDLE, n)


def set_main_idle(h: HeapContext, idle: bool) -> None:
    _row(h)[J_MAIN_IDLE] = int(idle)


def main_idle(h: HeapContext) -> bool:
    return bool(_row(h)[J_MAIN_IDLE])


def flag_overflow(h: HeapContext) -> None:
    _row(h)[J_OVERFLOW] = 1


def overflowed(h: HeapContext) -> bool:
    return bool(_row(h)[J_OVERFLOW])


def wait_main(h: HeapContext, timeout: float = 0.0005) -> None:
    """The main, with no work while helpers are active: block on its doorbell (helpers ring it when
    they leave) rather than spin on a 2-CPU host."""
    bells = h.jobs.doorbells
    if bells is not None:
        bells.wait(h.core, timeout)
    else:
        os.sched_yield()


def idle_main(h: HeapContext) -> None:
    """The main has nothing to do but wait for active helpers: say so (helpers then stop waiting for
    it) and wait on its doorbell."""
    set_main_idle(h, True)
    wait_main(h)
    set_main_idle(h, False)


def close(h: HeapContext) -> None:
    """A one-task job is over (nobody joined it)."""
    _row(h)[J_STATE] = DONE
