"""Incremental marking: V8's IncrementalMarking (`src/heap/incremental-marking.cc`) on the main
thread only: Start, the allocation observers' Step (AdvanceOnAllocation), the finalisation, and
what becomes of a cycle cut short.

A cycle (iso_marking's M_STATE = MARKING_ON) starts where a Mark-Compact for "allocation limit"
would run (heap.py, V8's StartIncrementalMarkingIfAllocationLimitIsReached) when the isolate's
iso_cfg C_INCREMENTAL is set:

- `start`: the roots grey (marking.start, MarkRoots), INCREMENTAL_MARKING on every committed
  page (SetOldSpacePageFlags / SetNewSpacePageFlags; pages committed during the cycle get it in
  old_space.commit_page and large_object_space.allocate), so the write barrier runs the marking
  barrier (marking_barrier.py); from then on old and large objects are allocated black
  (marking.black_allocate, StartBlackAllocation).
- steps: V8's allocation observers step every 64 KB of young allocation
  (kMajorGCYoungGenerationAllocationObserverStep) and every 256 KB of old
  (kMajorGCOldGenerationAllocationObserverStep); the old count here is the old generation's
  growth since the last step, so promotions count too (this heap has no marking task, V8's other
  source of steps, so marking must keep up with promotion as well). `account` counts young
  allocation down; the next allocate_raw, before it allocates, runs `step` under the locker in
  phase MC_MARK_STEP. A step's budget (`step_bytes`): iso_cfg C_STEP_BYTES exactly when set;
  else the larger of V8's EstimateMarkingStepSize for kMaxStepSizeOnTask (1 ms at the marking
  speed measured over the steps so far, kInitialConservativeMarkingSpeed = 100 KB/ms before any)
  and the bytes allocated since the last step (V8's StepSizeToKeepUpWithAllocations: marking
  keeps pace with the mutator, so the cycle ends before the heap reaches its limit).
- finalisation: a step that empties the worklist asks for the Mark-Compact ("finalize incremental
  marking via stack guard"); any Mark-Compact while a cycle runs finishes it: `finalize` re-scans
  the roots and drains what is left grey (marking.finish), then the flags go and the state is OFF.
- a scavenge in the middle (heap.collect_garbage, scavenger.py): copies keep their colour and the
  worklist follows them (marking.after_scavenge); the ArrayBuffer marks the cycle made are kept
  across the scavenge's own sweep (`keep_buffer_marks`).
- `abort`: a core died in a step, or in the mutator, while the cycle ran (isolate_table._recover):
  every mark, the worklist and the flags are dropped and the isolate goes on without the cycle;
  the next limit starts another. Nothing of the heap depends on the marks between collections.

No RecordSlot and no OLD_TO_OLD set: evacuation candidates are still chosen in the pause and
compaction's pointers are updated by walking the live objects (mark_compact.py's header), so the
marking barrier records no slots, and the barrier is only MarkValue.

Owns: iso_marking, the INCREMENTAL_MARKING page flags. Touches: through marking.py the bitmaps,
`pg_live` and the marking worklist; tracer_incremental.py's rows. Runs with the isolate's locker held.
"""

from __future__ import annotations

import time

import numpy as np

from memsim.sim.v8 import concurrent_marking, marking, old_space, tracer_incremental
from memsim.sim.v8 import memory_chunk as mc
from memsim.sim.v8.array_buffer_sweeper import EXT_FREE
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.gc_work import GcWork
from memsim.sim.v8.large_object_space import objects as large_objects
from memsim.sim.v8.layout import (
    C_STEP_BYTES,
    LO_SPACE,
    M_OLD_AT_STEP,
    M_STATE,
    M_YOUNG_LEFT,
    MARKING_OFF,
    MARKING_ON,
    NEW_SPACE,
    OLD_SPACE,
)

KB = 1 << 10
YOUNG_OBSERVER_STEP, OLD_OBSERVER_STEP = 64 * KB, 256 * KB  # incremental-marking.cc
MAX_STEP_MS = 1.0  # kMaxStepSizeOnTask
INITIAL_SPEED = 100 * KB  # kInitialConservativeMarkingSpeed, bytes per ms


def pages(h: HeapContext) -> list[int]:
    """The header address of every committed page: both semispaces, old pages, large objects' first."""
    row = h.a.pg_space[h.iso]
    slots = np.flatnonzero((row == NEW_SPACE) | (row == OLD_SPACE)).tolist()
    slots += [s for s, _ in large_objects(h)]
    assert all(int(row[s]) in (NEW_SPACE, OLD_SPACE, LO_SPACE) for s in slots)
    return [h.bounds.page(int(s)) for s in slots]


def start(h: HeapContext, now_ms: float) -> None:
    """IncrementalMarking::Start: roots grey, every page flagged, black allocation on."""
    if marking.active(h):
        return
    marking.start(h)
    for page in pages(h):
        mc.set_flags(h.dmap, page, mc.INCREMENTAL_MARKING)
    m = h.a.iso_marking[h.iso]
    m[M_STATE], m[M_YOUNG_LEFT], m[M_OLD_AT_STEP] = MARKING_ON, YOUNG_OBSERVER_STEP, old_space.size_of_objects(h)
    tracer_incremental.begin(h.a.tr_inc, h.iso, now_ms)
    concurrent_marking.resume(h)  # with C_CONCURRENT, helper cores mark from now on


def rearm(h: HeapContext) -> None:
    """The allocation observers count from here again."""
    m = h.a.iso_marking[h.iso]
    m[M_YOUNG_LEFT], m[M_OLD_AT_STEP] = YOUNG_OBSERVER_STEP, old_space.size_of_objects(h)


def account(h: HeapContext, size: int, young: bool) -> None:
    """An allocation of `size` bytes during the cycle, for the young observer's next step."""
    if young:
        h.a.iso_marking[h.iso, M_YOUNG_LEFT] -= size


def _allocated_since_step(h: HeapContext) -> tuple[int, int]:
    """(young bytes allocated, old generation growth) since the last step."""
    m = h.a.iso_marking[h.iso]
    return YOUNG_OBSERVER_STEP - int(m[M_YOUNG_LEFT]), old_space.size_of_objects(h) - int(m[M_OLD_AT_STEP])


def step_due(h: HeapContext) -> bool:
    if not marking.active(h):
        return False
    young, old = _allocated_since_step(h)
    return young >= YOUNG_OBSERVER_STEP or old >= OLD_OBSERVER_STEP


def step_bytes(h: HeapContext) -> int:
    """A step's budget: C_STEP_BYTES, else 1 ms at the measured marking speed (V8's
    EstimateMarkingStepSize) or what was allocated since the last step, whichever is more."""
    given = int(h.cfg[C_STEP_BYTES])
    if given > 0:
        return given
    by_time = int(MAX_STEP_MS * (tracer_incremental.speed(h.a.tr_inc, h.iso) or INITIAL_SPEED))
    return max(by_time, sum(max(0, n) for n in _allocated_since_step(h)))


def step(h: HeapContext, now_ms: float) -> bool:
    """One step (the caller set phase MC_MARK_STEP); True when the worklist is empty: marking is
    complete but for the finalisation's root re-scan."""
    budget = step_bytes(h)
    rearm(h)
    t0 = time.perf_counter()
    done, nbytes = marking.step(h, budget)
    tracer_incremental.record(h.a.tr_steps, h.a.tr_inc, h.iso, now_ms, (time.perf_counter() - t0) * 1e3, nbytes)
    concurrent_marking.kick(h)  # what the step pushed goes where helpers can steal it
    return done and concurrent_marking.observe(h)


def finalize(h: HeapContext, work: GcWork) -> None:
    """The Mark-Compact's marking: the rest of the cycle (roots again, then the worklist), or the
    whole marking when no cycle runs; then the cycle is over."""
    concurrent_marking.pause(h)  # the cycle's helpers leave; the pause's own job may call others
    marking.finish(h, work, lambda ctr: concurrent_marking.mark_in_pause(h, ctr))
    f = concurrent_marking.take_figures(h)  # the cycle's and the pause's helper work
    work.helper_cpu_ms, work.helpers, work.helper_objects = f.cpu_ms, f.cores, f.objects
    _stop(h)


def _stop(h: HeapContext) -> None:
    concurrent_marking.pause(h)
    if int(h.a.iso_marking[h.iso, M_STATE]) == MARKING_OFF:
        return
    old_space.give_back_lab(h)
    for page in pages(h):
        mc.clear_flags(h.dmap, page, mc.INCREMENTAL_MARKING)
    h.a.iso_marking[h.iso] = 0
    tracer_incremental.end(h.a.tr_inc, h.iso)


def abort(h: HeapContext) -> None:
    """Drop the cycle (its holder died): every object white, no live bytes, the worklist empty, no flags."""
    _stop(h)
    marking.clear(h)
    h.a.iso_marking[h.iso] = 0


def keep_buffer_marks(h: HeapContext) -> np.ndarray:
    """Before a scavenge while marking: the ArrayBuffer marks this cycle made, taken out of the way
    of the scavenge's (array_buffer_sweeper's young sweep reads and then clears them all)."""
    saved = h.a.ext_mark[h.iso].copy()
    h.a.ext_mark[h.iso] = 0
    return saved


def restore_buffer_marks(h: HeapContext, saved: np.ndarray) -> None:
    """After it: the cycle's marks back on every row still in use (a row freed died young)."""
    used = h.a.ext_state[h.iso] != EXT_FREE
    h.a.ext_mark[h.iso][used] = saved[used]

