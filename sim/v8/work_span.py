"""Work and span of one collection, in heap words: what a parallel collection could gain, counted in
a unit that does not depend on the host (Blumofe & Leiserson, "Scheduling multithreaded computations
by work stealing", J. ACM 46(5), 1999: work T1, span T-infinity, parallelism T1 / T-infinity; with
Brent's bound a greedy schedule on p cores takes at most T1 / p + T-infinity). V8 has no such
counter (its GCTracer times scopes); pause times on a host whose helper cores are time-shared with
the main measure the sharing, these words do not.

The unit, one definition for every collector: a word of collector work is
- a word copied (a scavenge's copy or promotion, an evacuation, a Mark-Compact's young promotion),
  the copies a task gave back after losing the forwarding CAS included (K_WORDS_LOST);
- a slot visited: a root, a remembered OLD_TO_NEW slot, a tagged field of an object the task
  scans, marks or updates;
- an object's map word, once per object a task visits or walks (V8's visitors start with
  VisitMapPointer; a page walk reads it for the object's size): scanned by the scavenger, marked,
  walked on an evacuation candidate, walked by the pointer updater or the sweeper.
The kernels count these in their counter rows (one add per object or per run of slots); this module
only sums the rows.

Per collection:
    work_words = serial + sum over the parallel phases of the sum over its tasks
    span_words = serial + sum over the parallel phases of the max over its cores
Phases in sequence add; the tasks of one phase run side by side, so a phase lasts as long as its
busiest core (a core that left a job and joined it again under another task number ran its tasks one
after the other: they add). `serial` is what the main does outside any job: the roots of the marking
and of the pointer update, a Mark-Compact's young promotion, what is left after a marking job (the
overflow's rescan), and sweeping (eager in memsim's pause; V8 sweeps concurrently, after it). A
serial collector (helpers 0) runs each phase as one task, so its span is its work.

Not counted: per-page work (flags, free-list eviction, releases), the scavenge's from-space zap and
TransferColor walk (memsim's own passes: V8 releases from-space pages and transfers colours inside
MigrateObject), marking done before the pause (incremental steps, concurrent helpers: the cycle's
work, outside the pause), a visit of an object that another task blackened first, and an overflow
rescan by a scavenge's main after its job (counted in task 0's row: the pool overflows rarely).

The span is that of the division of work that ran: on an oversubscribed host a helper time-shared
with the main takes fewer items and leaves the main more, so there span overstates what a machine
with a core per task would see (it still never counts waiting).

Owns the definition and the sums; reads gc_task rows after a job has ended (gc_job.py's TK_CORE,
TK_PID, TK_WORK; scavenge_kernels.py's counters), writes GcWork's work_words, span_words, serial_words.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.v8 import gc_job
from memsim.sim.v8 import mark_kernels as mk
from memsim.sim.v8 import scavenge_kernels as sk
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.gc_work import GcWork


def task_words(ctr: np.ndarray) -> np.ndarray:
    """The words of each scavenge, evacuation or update task from its counters (scavenge_kernels.py's
    columns, rows of tasks or one row)."""
    c = np.asarray(ctr, dtype=np.int64)
    return (c[..., sk.K_WORDS_COPIED] + c[..., sk.K_WORDS_LOST] + c[..., sk.K_SLOTS_VISITED]
            + c[..., sk.K_OBJECTS_SCANNED])


def marking_words(ctr: np.ndarray) -> int:
    """The words of a marking task from mark_kernels.py's counters: the objects it blackened (their
    map words) and their fields."""
    return int(ctr[mk.K_MARKED] + ctr[mk.K_SLOTS])


def serial(work: GcWork, words: int) -> None:
    """Work the main does outside any job: on the critical path whole."""
    work.work_words += words
    work.span_words += words
    work.serial_words += words


def phase(work: GcWork, words: np.ndarray, cores: np.ndarray) -> None:
    """One parallel phase: `words[t]` done by task t on core key `cores[t]`; the work adds, the
    phase's span is its busiest core's."""
    words = np.asarray(words, dtype=np.int64)
    if not words.size:
        return
    per_core: dict[int, int] = {}
    for w, c in zip(words.tolist(), np.asarray(cores).tolist(), strict=True):
        per_core[c] = per_core.get(c, 0) + w
    work.work_words += int(words.sum())
    work.span_words += max(per_core.values())


def core_keys(h: HeapContext, n: int) -> np.ndarray:
    """Who ran tasks 0..n-1 of the job that just ended: its core and process (gc_job.enter); a row
    no process entered (the in-process test's tasks, taking turns) is a task of its own."""
    rows = h.a.gc_task[h.iso, :n]
    pid, core = rows[:, gc_job.TK_PID], rows[:, gc_job.TK_CORE]
    return np.where(pid != 0, (core << 32) | pid, -1 - np.arange(n))


def job(work: GcWork, h: HeapContext, n: int) -> None:
    """The phase run by the job whose n task rows hold scavenge_kernels.py's counters."""
    phase(work, task_words(h.a.gc_task[h.iso, :n, sk.ROW_CTR:sk.ROW_CTR + sk.NCTR]), core_keys(h, n))


def marking_job(work: GcWork, h: HeapContext, n: int) -> None:
    """The phase run by a marking job: each task's words in its row's TK_WORK (set as it left)."""
    phase(work, h.a.gc_task[h.iso, :n, gc_job.TK_WORK], core_keys(h, n))
