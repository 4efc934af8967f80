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
    logged LABs, a marking task's words of work

Protocol (every shared word written by atomics, sim/machine/atomics.py):
- post: items and constants first, then J_GEN += 1, J_STATE = RUNNING last.
  J_JOINED is one word, (generation << 32) | (used << 16) | joined: a CAS against it fails once the
  job has been posted again, so a helper of an earlier job never takes a bit of the next one; `used`
  keeps every task number handed out in this generation, so a number is never given twice in one
  job (its task row holds a LAB and counters that a second `enter` would wipe). J_ACTIVE is one word
  too, (generation << 32) | count: a helper counts itself in and out of its own generation only, so
  a helper of an earlier job, between its +1 and its -1 when the job is posted again, never moves
  the next job's count. `post` first waits (bounded, else the collection fails) for the count to
  reach 0, and writes both words by atomics.
- join (a helper): take `v8/gc/<core>` (held while joined: the kernel frees it if the process
  dies, so a slow core is never taken for dead), claim the task's row (CAS TK_CLAIM 0 -> its core
  and pid: a set bit always names a lock to probe), CAS the never-used task bit into J_JOINED (same
  generation), J_ACTIVE += 1, then re-read J_STATE/J_GEN and the isolate's state: a job that is no
  longer RUNNING, or an isolate that is not LIVE, is left at once.
- leave: publish, close LABs, clear the bit, J_ACTIVE -= 1, release `v8/gc/<core>`, ring the main.
  Whoever clears a task's bit uncounts it (the helper, or the main's repair).
- failure: a helper whose visit raises gives its work back (items, the object it was scanning) and
  sets J_FAILED; the main then fails the collection (the isolate is LOST, as a serial scavenge that
  raised leaves it).
- end (the main): no work of its own, the pool empty, J_ACTIVE == 0 -> J_STATE = ENDING, wait for
  J_ACTIVE == 0 again (a helper that joined meanwhile finds nothing and leaves), DONE.
- repair: the main CASes RUNNING -> REPAIR, re-checks that every helper still counted is dead,
  takes over their work, and CASes back to RUNNING; a helper that joins meanwhile fails its re-check
  of J_STATE and leaves, so nothing live races the repair.
- death: a joined bit whose core's `v8/gc/<core>` is free *and still set when re-read* (a live helper
  clears its bit before it releases the lock) is a dead helper (scavenger.py repairs its work);
  a helper that finds the main's `v8/gc/<core>` free leaves (the main died: the isolate is LOST, and
  isolate_table's teardown, whatever its cause, waits for every joined helper before it unmaps the
  heap). The main's pid is recorded (J_MAIN_PID), so a restarted process of the main's core holding
  the same lock for a later job is not taken for the job's main.

Owns gc_job, gc_item, the TK_* columns of gc_task. Touches nothing else.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from memsim.sim.errors import ResourceExhausted
from memsim.sim.machine import atomics
from memsim.sim.machine.doorbell import MAIN
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.layout import C_HELPERS, C_MAX_OLD, C_SEMI, LIVE, NITEM, NJOB, T_OLD_COMMITTED
from memsim.sim.v8.worklist import MAX_TASKS

MiB = 1 << 20
(J_KIND, J_GEN, J_STATE, J_TASKS, J_JOINED, J_ACTIVE, J_MAIN_CORE, J_ITEMS, J_CURSOR, J_MAIN_IDLE, J_OVERFLOW,
 J_HELPERS_SEEN, J_IDLE, J_MAIN_PID, J_FAILED) = range(15)
GEN_SHIFT, USED_SHIFT, TASK_BITS = 32, 16, (1 << 16) - 1  # J_JOINED: gen << 32 | used << 16 | joined
GEN_MASK, COUNT_MASK = (1 << 31) - 1, (1 << 32) - 1  # J_ACTIVE: gen << 32 | count
P_BASE = 16  # the job's kernel constants (scavenge_kernels.py's p) from this column on
NONE, RUNNING, ENDING, DONE, REPAIR = range(5)  # REPAIR: the main takes over dead helpers' work
KIND_SCAVENGE = 1
KIND_MARK = 2  # concurrent marking (concurrent_marking.py): no items, the marking worklist is the work
KIND_EVACUATE, KIND_UPDATE = 4, 5  # mark-compact's parallel phases (compaction_job.py)
I_CLAIM, I_KIND, I_LO, I_HI = range(4)
ITEM_DONE = -1
# gc_task columns owned here (scavenge_kernels.py uses 0..35)
# TK_WORK: a marking task's words of work (work_span.py), written as it leaves
TK_CORE, TK_PID, TK_CPU_NS, TK_NLABS, TK_LABLOG_FULL, TK_JOINED_GEN, TK_CLAIM, TK_WORK = range(40, 48)
CLAIM_SHIFT = 32  # TK_CLAIM: (core + 1) << 32 | pid, CASed from 0 by a joining helper before its bit
# objects a task scans between two looks around (publish for an idle task, is the main alive): half a
# worklist segment, so that an idle helper is fed before the main's own segment fills (V8's tasks check
# for yield every kObjectsUntilInterruptCheck = 1000 objects; they are threads, a segment away)
SLICE_OBJECTS = 128
# test hooks (server/gc_helper.py, scavenge_job.py): a helper parks after its first won CAS of an object
# with a field naming from-space, before the push (the window a killed helper leaves a forwarded object
# in no worklist); the main skips the rescan of a dead helper's LABs (the repair's can-fail control)
HELPER_PAUSE_ENV = "MEMSIM_TEST_V8_HELPER_PAUSE"
# test hook: the main waits (at most AWAIT_HELPER_S) for a helper to join before it drains, so that
# a test on a loaded host always has a helper with work
MAIN_AWAITS_HELPER_ENV = "MEMSIM_TEST_V8_MAIN_AWAITS_HELPER"
AWAIT_HELPER_S = 5.0
NO_LABLOG_RESCAN_ENV = "MEMSIM_TEST_V8_NO_LABLOG_RESCAN"
PARK_SECONDS = 60.0
# test hook: a path; only the helper that creates it parks, so a core forked again after the kill (it
# inherits the hook) does not park its next collection for PARK_SECONDS with no one left to kill it
PARK_ONCE_ENV = "MEMSIM_TEST_V8_PARK_ONCE"
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


def _word(gen: int, used: int, joined: int) -> int:
    return (gen & GEN_MASK) << GEN_SHIFT | used << USED_SHIFT | joined


def joined_mask(word: int) -> int:
    """The task bits of a J_JOINED word joined now."""
    return word & TASK_BITS


def used_mask(word: int) -> int:
    """The task bits of a J_JOINED word handed out in its generation."""
    return word >> USED_SHIFT & TASK_BITS


def _store(job: np.ndarray, col: int, value: int) -> None:
    """An atomic store by CAS (helpers update the same word by atomics)."""
    while (old := int(atomics.load(job, col))) != value and atomics.compare_exchange(job, col, old, value) != old:
        pass


def reset(a_gc_job: np.ndarray, iso: int) -> None:
    """A new isolate's job row: no job, no task joined or counted, a new generation (a helper that
    joined the row's previous isolate fails its CAS and uncounts only itself)."""
    job = a_gc_job[iso]
    gen = int(atomics.fetch_add(job, J_GEN, 1)) + 1
    _store(job, J_JOINED, _word(gen, 0, 0))
    _store(job, J_STATE, NONE)
    _store(job, J_ACTIVE, _word(gen, 0, 0))
    job[J_ITEMS] = job[J_FAILED] = job[J_MAIN_PID] = 0


def post(h: HeapContext, kind: int, tasks: int, items: list[tuple[int, int, int]], p: np.ndarray,
         wait_s: float = 5.0) -> None:
    """Publish a job of `tasks` tasks (the caller is task 0) over `items`; ring the other cores. A
    helper of the previous job still counted after `wait_s` fails the collection (ResourceExhausted)."""
    assert len(items) <= NITEM and P_BASE + len(p) <= NJOB
    job, it = _row(h), h.a.gc_item[h.iso]
    deadline = time.monotonic() + wait_s
    while int(atomics.load(job, J_ACTIVE)) & COUNT_MASK:
        if time.monotonic() > deadline:
            raise ResourceExhausted(f"isolate {h.iso}: a helper of the previous parallel job is still active after "
                                    f"{wait_s} s: the next job cannot be posted")
        time.sleep(0.0005)
    gen = int(atomics.fetch_add(job, J_GEN, 1)) + 1  # J_STATE is not RUNNING: a joiner re-checks it
    _store(job, J_JOINED, _word(gen, 1, 1))
    _store(job, J_ACTIVE, _word(gen, 0, 0))
    # the previous job's claims go with its generation (its helpers are all uncounted, above): a kind
    # that does not zero its task rows before posting (concurrent marking re-posts every scavenge)
    # would otherwise find every row claimed and never be joined
    h.a.gc_task[h.iso, 1:, TK_CLAIM] = 0
    it[:len(items), I_CLAIM] = 0
    it[:len(items), I_KIND:] = np.array(items, dtype=np.int64).reshape(-1, 3)
    job[P_BASE:P_BASE + len(p)] = p
    job[J_KIND], job[J_TASKS], job[J_MAIN_PID] = kind, tasks, os.getpid()
    job[J_MAIN_CORE], job[J_ITEMS], job[J_CURSOR], job[J_MAIN_IDLE], job[J_OVERFLOW] = h.core, len(items), 0, 0, 0
    job[J_HELPERS_SEEN] = job[J_IDLE] = job[J_FAILED] = 0
    enter(h, 0, gen)
    h.a.gc_lablog[h.iso, :, :, :] = 0
    atomics.compare_exchange(job, J_STATE, int(job[J_STATE]), RUNNING)
    bells = h.jobs.doorbells
    if tasks > 1 and bells is not None:
        for c in range(bells.cores):
            if c != h.core:
                bells.ring(c)


def enter(h: HeapContext, task: int, gen: int = -1) -> None:
    """Record the calling core as `task` of generation `gen` (its core, pid, CPU clock, empty LAB log)."""
    row = h.a.gc_task[h.iso, task]
    row[TK_CORE], row[TK_PID], row[TK_CPU_NS] = h.core, os.getpid(), 0
    row[TK_NLABS] = row[TK_LABLOG_FULL] = row[TK_WORK] = 0
    row[TK_JOINED_GEN] = gen if gen >= 0 else int(_row(h)[J_GEN])


def park_wait_seconds() -> float:
    """How long a helper that reached the park hook waits to be killed: PARK_SECONDS, or 0 when
    PARK_ONCE_ENV names a file another process created first."""
    path = os.environ.get(PARK_ONCE_ENV)
    if not path:
        return PARK_SECONDS
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return 0.0
    return PARK_SECONDS


def await_helper(h: HeapContext) -> None:
    """The MAIN_AWAITS_HELPER_ENV test hook: wait (at most AWAIT_HELPER_S) until a helper has joined."""
    if not os.environ.get(MAIN_AWAITS_HELPER_ENV):
        return
    deadline = time.monotonic() + AWAIT_HELPER_S
    while not int(atomics.load(_row(h), J_HELPERS_SEEN)) and time.monotonic() < deadline:
        time.sleep(0.001)


def params(h: HeapContext, n: int) -> np.ndarray:
    """The posted job's kernel constants (a helper's copy)."""
    return np.array(_row(h)[P_BASE:P_BASE + n], dtype=np.int64)


def posted(a_gc_job: np.ndarray, core: int) -> list[int]:
    """Isolates with a RUNNING job of another core that still has a free task (a helper's scan)."""
    rows = np.flatnonzero((a_gc_job[:, J_STATE] == RUNNING) & (a_gc_job[:, J_MAIN_CORE] != core))
    return [int(i) for i in rows
            if used_mask(int(a_gc_job[i, J_JOINED])) != (1 << int(a_gc_job[i, J_TASKS])) - 1]


def join(h: HeapContext, kind: int) -> int:
    """Join the isolate's running job of `kind` as a helper: its task number, or -1 (nothing to
    join). On success the core holds `v8/gc/<core>` until `leave`."""
    return join_gen(h, kind)[0]


def join_gen(h: HeapContext, kind: int) -> tuple[int, int]:
    """`join`, and the job's generation (the helper keeps it for `leave` and `main_alive`: its task
    row may be a later generation's once its job has been posted again). The kind is read after the
    generation (post writes it before the generation), so a job of another kind posted since the
    helper looked is never joined by the wrong code."""
    job, env = _row(h), h.jobs
    if h.core >= len(env.gc_locks):
        return -1, -1
    lock = env.gc_locks[h.core]
    gen, tasks = int(atomics.load(job, J_GEN)), int(job[J_TASKS])
    if int(atomics.load(job, J_KIND)) != kind or int(job[J_STATE]) != RUNNING or not lock.try_acquire():
        return -1, -1
    claim = (h.core + 1) << CLAIM_SHIFT | os.getpid()
    while True:
        word = int(atomics.load(job, J_JOINED))
        taken = used_mask(word) | joined_mask(word)
        free = [t for t in range(1, tasks) if not taken & (1 << t)]
        if word >> GEN_SHIFT != gen & GEN_MASK:
            break
        t = next((t for t in free if atomics.compare_exchange(h.a.gc_task[h.iso, t], TK_CLAIM, 0, claim) == 0), -1)
        if t < 0:
            break
        bit = 1 << t
        if atomics.compare_exchange(job, J_JOINED, word, word | bit << USED_SHIFT | bit) != word:
            atomics.compare_exchange(h.a.gc_task[h.iso, t], TK_CLAIM, claim, 0)
            continue
        _count(job, gen, 1)
        if (int(atomics.load(job, J_STATE)) == RUNNING and int(atomics.load(job, J_GEN)) == gen
                and int(h.a.iso_state[h.iso]) == LIVE):
            enter(h, t, gen)
            atomics.fetch_add(job, J_HELPERS_SEEN, 1)
            return t, gen
        _unjoin(h, t, gen)
        atomics.compare_exchange(h.a.gc_task[h.iso, t], TK_CLAIM, claim, 0)
        break
    lock.release()
    return -1, -1


def _count(job: np.ndarray, gen: int, delta: int) -> bool:
    """Add `delta` to J_ACTIVE's count if it is still generation `gen`'s (never below 0: a task that
    died before counting itself in is uncounted once by the repair)."""
    while True:
        word = int(atomics.load(job, J_ACTIVE))
        if word >> GEN_SHIFT != gen & GEN_MASK or (word & COUNT_MASK) + delta < 0:
            return False
        if atomics.compare_exchange(job, J_ACTIVE, word, word + delta) == word:
            return True


def _unjoin(h: HeapContext, task: int, gen: int) -> bool:
    """Clear `task`'s bit of generation `gen` and uncount it, if it is still set. False if the job was
    posted again since (the generation's bits and count went with it) or someone else (the main's
    repair) cleared the bit, and so uncounted it."""
    job, bit = _row(h), 1 << task
    while True:
        word = int(atomics.load(job, J_JOINED))
        if word >> GEN_SHIFT != gen & GEN_MASK or not word & bit:
            return False
        if atomics.compare_exchange(job, J_JOINED, word, word & ~bit) == word:
            _count(job, gen, -1)
            return True


def leave(h: HeapContext, task: int, gen: int = -1) -> None:
    """The helper's last step (its work published, its LABs closed by the caller); `gen` the job's
    generation it joined (join_gen; by default its task row's)."""
    _unjoin(h, task, gen if gen >= 0 else int(h.a.gc_task[h.iso, task, TK_JOINED_GEN]))
    h.jobs.gc_locks[h.core].release()
    bells = h.jobs.doorbells
    if bells is not None:
        bells.ring(int(_row(h)[J_MAIN_CORE]), MAIN)


def begin_main(h: HeapContext) -> None:
    if h.core < len(h.jobs.gc_locks):
        h.jobs.gc_locks[h.core].acquire()


def end_main(h: HeapContext, timeout: float = 30.0) -> None:
    """End the job (the main has no work left, the pool is empty, no helper is active): helpers that
    join from now on leave at once; wait for them, then DONE. A helper still active after `timeout`
    fails the collection: the job stays ENDING, so the isolate's teardown waits for the helper."""
    job, lock = _row(h), h.jobs.gc_locks[h.core] if h.core < len(h.jobs.gc_locks) else None
    state = int(job[J_STATE])
    if state == DONE or (state == ENDING and lock is not None and not lock.held):
        if state == DONE and lock is not None and lock.held:
            lock.release()  # the post failed (the previous job's helper still counted)
        return  # over, or given up on already (the isolate's teardown waits for the helper)
    atomics.compare_exchange(job, J_STATE, RUNNING, ENDING)
    deadline = time.monotonic() + timeout
    # gone = the count seen at 0 once: a helper that joins from now on counts itself in and, finding the
    # job no longer RUNNING, out again, so a second read could catch that passing +1 and abandon a
    # collection that is over
    while not (gone := not active(h)) and time.monotonic() < deadline:
        os.sched_yield()
    if gone:
        _store(job, J_STATE, DONE)
    if lock is not None:
        lock.release()
    if not gone:
        raise ResourceExhausted(f"isolate {h.iso}: a scavenge helper is still active {timeout} s after the "
                                f"work ran out: the collection is abandoned")


def fail(h: HeapContext) -> None:
    """A helper's visit raised: the main fails the collection (its work was given back)."""
    _store(_row(h), J_FAILED, 1)


def failed(h: HeapContext) -> bool:
    return bool(atomics.load(_row(h), J_FAILED))


def begin_repair(h: HeapContext) -> bool:
    """The main stops helpers from joining while it takes over dead helpers' work (see the header)."""
    return int(atomics.compare_exchange(_row(h), J_STATE, RUNNING, REPAIR)) == RUNNING


def end_repair(h: HeapContext) -> None:
    atomics.compare_exchange(_row(h), J_STATE, REPAIR, RUNNING)


def running(h: HeapContext) -> bool:
    return int(atomics.load(_row(h), J_STATE)) == RUNNING


def active(h: HeapContext) -> int:
    return int(atomics.load(_row(h), J_ACTIVE)) & COUNT_MASK


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


def task_core(h: HeapContext, task: int) -> int:
    """The core that claimed `task`'s row (join), -1 if none did."""
    return (int(atomics.load(h.a.gc_task[h.iso, task], TK_CLAIM)) >> CLAIM_SHIFT) - 1


def dead_tasks(h: HeapContext, unentered: set[int] | None = None) -> list[int]:
    """Joined helpers whose core's `v8/gc/<core>` is free: they died while joined (a helper claims its
    row, naming its core, before it sets its bit). A task whose bit is set but whose row names no
    core goes into `unentered` (no joiner leaves that: the caller's timeout is a backstop)."""
    job, env = _row(h), h.jobs
    out = []
    joined = joined_mask(int(atomics.load(job, J_JOINED)))
    for t in range(1, int(job[J_TASKS])):
        if not joined & (1 << t):
            continue
        core = task_core(h, t)
        if not 0 <= core < len(env.gc_locks):
            if unentered is not None:
                unentered.add(t)
            continue
        lock = env.gc_locks[core]
        if env.locks is not None and env.locks.probe_free(lock.index) and joined_mask(
                int(atomics.load(job, J_JOINED))) & (1 << t):
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
    _unjoin(h, task, int(atomics.load(_row(h), J_GEN)))


def main_alive(h: HeapContext, task: int = 0, gen: int = -1) -> bool:
    """The job's main is alive: its `v8/gc/<core>` is held, task 0 is still the process that posted
    the job (J_MAIN_PID) and, for a helper's `task`, the job is still the generation it joined (a
    restarted process of the main's core, or a new isolate in the row, is not its main); `gen` the
    generation it joined (join_gen; by default its task row's)."""
    env, job = h.jobs, _row(h)
    if int(h.a.gc_task[h.iso, 0, TK_PID]) != int(job[J_MAIN_PID]):
        return False
    if gen < 0 and task:
        gen = int(h.a.gc_task[h.iso, task, TK_JOINED_GEN])
    if gen >= 0 and gen != int(atomics.load(job, J_GEN)):
        return False
    lock = env.gc_locks[int(job[J_MAIN_CORE])]
    return env.locks is None or not env.locks.probe_free(lock.index)


def wait_helpers_gone(h: HeapContext, warn_s: float = 10.0) -> None:
    """Before an isolate's heap is torn down (its main dead, or the isolate destroyed or released):
    every joined helper has left (or died). A live helper leaves within a slice of seeing the job
    ENDING, so this waits as long as it takes, and says so after `warn_s`."""
    job, env = _row(h), h.jobs
    if int(job[J_STATE]) not in (RUNNING, ENDING, REPAIR):
        return
    atomics.compare_exchange(job, J_STATE, int(job[J_STATE]), ENDING)
    t0, warned = time.monotonic(), False
    while True:
        joined = joined_mask(int(atomics.load(job, J_JOINED))) & ~1
        cores = [task_core(h, t) for t in range(1, MAX_TASKS) if joined & (1 << t)]
        if env.locks is None or not [c for c in cores if 0 <= c < len(env.gc_locks)  # no lock table: one process
                                     and not env.locks.probe_free(env.gc_locks[c].index)]:
            break
        if not warned and time.monotonic() - t0 > warn_s:
            warned = True
            print(f"isolate {h.iso}: teardown waits for scavenge helpers {joined:#x} to leave", file=sys.stderr,
                  flush=True)
        time.sleep(0.001)
    _store(job, J_STATE, DONE)


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
    """The main, with no work while helpers are active: block on its core's MAIN doorbell (helpers
    ring it when they leave; the core's GC helper thread waits on the other) rather than spin."""
    bells = h.jobs.doorbells
    if bells is not None:
        bells.wait(h.core, timeout, MAIN)
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
