"""The heap of one isolate: V8's Heap (`src/heap/heap.cc`): allocation with its GC and retry, the
collections' entry point, and the sizes everything else reports.

`allocate_raw(size, pretenure)` is V8's Heap::AllocateRaw with its retry loop
(HeapAllocator::AllocateRawWithRetryOrFailSlowPath):

- above kMaxRegularHeapObjectSize (half a page) -> the large-object space;
- pretenured (V8's AllocationType::kOld) -> old space;
- otherwise new space; when it is full, a Scavenge runs ("allocation failure") and the
  allocation retries, twice (the second scavenge promotes what survived the first), then a
  last-resort Mark-Compact that compacts every fragmented page, then the heap is out of memory;
- an old-generation allocation that would pass the allocation limit (heap_controller.py) first
  runs a Mark-Compact; one that finds no room runs two, then the last resort, then fails.
- a scavenge whose promotions pass the limit is followed by a Mark-Compact ("allocation limit"),
  or, with iso_cfg C_INCREMENTAL, by the start of incremental marking where V8 starts it
  (StartIncrementalMarkingIfAllocationLimitIsReached; the pre-allocation check above likewise).
  While a cycle runs, allocate_raw first runs the step the allocation observers owe
  (incremental_marking.py) in phase MC_MARK_STEP, and a step that completes marking runs the
  Mark-Compact at once ("finalize incremental marking via stack guard"); an old or large object
  allocated during the cycle is black.

Out of memory raises RESOURCE_EXHAUSTED with Node's words ("Reached heap limit Allocation failed
- JavaScript heap out of memory"), naming the limit. Unlike Node, the isolate survives: the failed
request allocated nothing and smaller ones go on. No collection runs while an object is half
made: callers allocate first and only then create the handle that roots it, and a GC can only
happen inside `allocate_raw`, before the new address is returned.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from memsim.sim.errors import ResourceExhausted
from memsim.sim.v8 import (
    array_buffer_sweeper,
    concurrent_marking,
    free_list,
    incremental_marking,
    large_object_space,
    mark_compact,
    marking,
    new_space,
    old_space,
    scavenger,
    tracer_incremental,
)
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.gc_work import GcWork
from memsim.sim.v8.layout import (
    C_CREATED_NS,
    C_FORCE_COMPACTION,
    C_INCREMENTAL,
    C_MAX_OLD,
    C_VERIFY,
    CHUNK_HEADER,
    MC_MARK,
    MC_MARK_STEP,
    MUTATOR,
    OLD_SPACE,
    SCAVENGE,
    T_ALLOCATED,
    T_BARRIER_SLOW,
    T_LO_BYTES,
    T_NEW_USED,
    T_OLD_COMMITTED,
    T_OLD_LIMIT,
    T_OLD_LIMIT_BYTES,
    T_OLD_PAGES,
    T_OLD_TOP,
)
from memsim.sim.v8.objects import filler
from memsim.sim.v8.stats import HeapSizes, SpaceSize
from memsim.sim.v8.tracer import GcEvent
from memsim.sim.v8.verifier import verify

MB = 1 << 20
# A test hook, read from the environment of the process that collects (a worker of a test's server):
# a collection of this kind ("Scavenge" or "Mark-Compact", or KIND_MARKING_STEP for an incremental
# marking step) stops for PAUSE_SECONDS once its phase word is set, so a test can kill the core
# mid-collection. Never set outside tests.
PAUSE_ENV = "MEMSIM_TEST_V8_PAUSE_IN"
PAUSE_SECONDS = 60.0
KIND_SCAVENGE, KIND_MARK_COMPACT, KIND_MARKING_STEP = "Scavenge", "Mark-Compact", "Marking step"


def size_of_objects(h: HeapContext) -> int:
    """heapUsed: bytes of objects not yet reclaimed (V8's Heap::SizeOfObjects)."""
    return new_space.used(h) + old_space.size_of_objects(h)


def committed(h: HeapContext) -> int:
    """heapTotal: bytes of committed heap pages (V8's Heap::CommittedMemory)."""
    return 2 * h.bounds.semi + int(h.top[T_OLD_COMMITTED])


def sizes(h: HeapContext) -> HeapSizes:
    """Every space's committed, used, available and resident bytes (V8's HeapSpaceStatistics), and
    the heap's other figures, for stats.py's getHeapStatistics and process.memoryUsage."""
    old_committed = int(h.top[T_OLD_PAGES]) * h.g.page_size
    old_used = int(h.a.pg_allocated[h.iso].sum())
    lab = int(h.top[T_OLD_LIMIT]) - int(h.top[T_OLD_TOP])
    lo_committed = int(h.top[T_OLD_COMMITTED]) - old_committed
    new_committed = 2 * h.bounds.semi
    ext = array_buffer_sweeper.external_bytes(h)
    _, globals_ = h.handles.counts()
    per_isolate_rows = sum(int(v.nbytes) // h.g.isolates for v in vars(h.a).values()
                           if isinstance(v, np.ndarray) and v.shape[0] == h.g.isolates)  # V8's malloced_memory
    return HeapSizes(
        new_space=SpaceSize(new_committed, new_space.used(h), new_space.capacity(h) - new_space.used(h), new_committed),
        old_space=SpaceSize(old_committed, old_used, free_list.available(h) + max(0, lab), old_committed),
        large_object_space=SpaceSize(lo_committed, int(h.top[T_LO_BYTES]), 0, lo_committed),
        external=ext, array_buffers=ext, limit=int(h.cfg[C_MAX_OLD]) + 2 * h.bounds.semi,
        global_handles_used=globals_ * 8, global_handles_total=h.handles.capacity * 8,
        malloced=per_isolate_rows, peak_malloced=per_isolate_rows)


def oom(h: HeapContext, size: int, why: str = "") -> ResourceExhausted:
    old = old_space.size_of_objects(h)
    return ResourceExhausted(
        f"Reached heap limit Allocation failed - JavaScript heap out of memory (max_old_space_size="
        f"{int(h.cfg[C_MAX_OLD]) / MB:g} MB; requested {size:,} bytes; old generation {old / MB:.1f} MB){why}")


def _try(h: HeapContext, size: int, space: str) -> int:
    if space == "lo":
        return large_object_space.allocate(h, size)
    if space == "old":
        return old_space.allocate(h, size)
    return new_space.allocate(h, size)


def can_promote_all(h: HeapContext) -> bool:
    """V8's Heap::CanPromoteAllYoungObjects (CanExpandOldGeneration): old space could take every
    byte of new space, counting what it may still commit and its free blocks (so fragmentation
    counts against it, not just the bytes of objects)."""
    room = int(h.cfg[C_MAX_OLD]) - int(h.top[T_OLD_COMMITTED]) + free_list.available(h)
    return room + max(0, int(h.top[T_OLD_LIMIT]) - int(h.top[T_OLD_TOP])) >= new_space.used(h)


def unallocate(h: HeapContext, addr: int, size: int) -> None:
    """Give back an allocation whose object could not be completed: a filler over its bytes (the page
    stays iterable) and the counters as they were."""
    h.dmap.store(addr, filler(size))
    if new_space.contains(h, addr):
        h.top[T_NEW_USED] -= size
    elif int(h.a.pg_space[h.iso, h.bounds.slot(addr)]) == OLD_SPACE:
        h.a.pg_allocated[h.iso, h.bounds.slot(addr)] -= size
    h.top[T_ALLOCATED] -= size


def _collect_for(h: HeapContext, space: str) -> None:
    """V8's Heap::CollectGarbage for an allocation that failed in `space`, with the collector
    Heap::SelectGarbageCollector picks: a Scavenge for new space, unless old space could not take
    every survivor ("scavenge might not succeed"); a Mark-Compact for the old generation. A
    scavenge whose promotions pass the old generation's limit is followed by a Mark-Compact
    (where V8 would start incremental marking)."""
    if space != "new":
        collect_garbage(h, KIND_MARK_COMPACT, "allocation failure", collector_reason="GC in old space requested")
    elif not can_promote_all(h):
        collect_garbage(h, KIND_MARK_COMPACT, "allocation failure", collector_reason="scavenge might not succeed")
    else:
        collect_garbage(h, KIND_SCAVENGE, "allocation failure")
        if old_space.size_of_objects(h) > int(h.top[T_OLD_LIMIT_BYTES]):
            _limit_reached(h)


def _limit_reached(h: HeapContext) -> None:
    """The old generation passed its allocation limit: a Mark-Compact, or with C_INCREMENTAL the
    start of an incremental marking cycle (none if one runs: it ends in a Mark-Compact)."""
    if not h.cfg[C_INCREMENTAL] and concurrent_marking.tasks(h) < 2:
        collect_garbage(h, KIND_MARK_COMPACT, "allocation limit", collector_reason="GC in old space requested")
    elif not marking.active(h):
        incremental_marking.start(h, now_ms(h))


def _marking_step(h: HeapContext) -> None:
    """The step the allocation observers owe, in phase MC_MARK_STEP; the Mark-Compact when it
    completes marking. With concurrent marking alone (no C_INCREMENTAL) the main does not step: it
    hands helpers what it pushed and finalises once they have marked everything."""
    if not h.cfg[C_INCREMENTAL]:
        incremental_marking.rearm(h)
        if concurrent_marking.observe(h):
            collect_garbage(h, KIND_MARK_COMPACT, "finalize incremental marking via stack guard",
                            collector_reason="GC in old space requested")
        return
    h.a.iso_phase[h.iso] = MC_MARK_STEP
    _pause_hook(h, KIND_MARKING_STEP)
    done = incremental_marking.step(h, now_ms(h))
    h.a.iso_phase[h.iso] = MUTATOR
    if done:
        collect_garbage(h, KIND_MARK_COMPACT, "finalize incremental marking via stack guard",
                        collector_reason="GC in old space requested")


def _pause_hook(h: HeapContext, kind: str) -> None:
    if os.environ.get(PAUSE_ENV) == kind:
        print(f"isolate {h.iso}: paused in {kind} on core {h.core} (test hook {PAUSE_ENV})",
              file=sys.stderr, flush=True)
        time.sleep(PAUSE_SECONDS)


def allocate_raw(h: HeapContext, size: int, pretenure: bool = False) -> int:
    """The address of `size` fresh bytes (a multiple of 8), collecting garbage as V8 does
    (HeapAllocator::AllocateRawWithRetryOrFailSlowPath): two collections for the failing space,
    each followed by a retry, then CollectAllAvailableGarbage ("last resort", compacting every
    fragmented page), then out of memory. The caller writes the object's header at once."""
    h.handles.usable()
    if incremental_marking.step_due(h):
        _marking_step(h)
    space = "lo" if size > h.g.max_regular_object else "old" if pretenure else "new"
    if space == "new" and size > new_space.capacity(h) // 2:
        space = "old"  # cannot fit a semispace page twice over: V8 pretenures such objects
    if space != "new" and old_space.size_of_objects(h) + size > int(h.top[T_OLD_LIMIT_BYTES]):
        _limit_reached(h)
    addr = _try(h, size, space)
    for _ in range(2):
        if addr:
            break
        _collect_for(h, space)
        addr = _try(h, size, space)
    if not addr:
        collect_garbage(h, KIND_MARK_COMPACT, "last resort", force=True, collector_reason="GC in old space requested")
        addr = _try(h, size, space)
    if not addr:
        raise oom(h, size)
    h.top[T_ALLOCATED] += size
    if marking.active(h):
        if space != "new":
            marking.black_allocate(h, addr, size)
        incremental_marking.account(h, size, young=space == "new")
    return addr


def now_ms(h: HeapContext) -> float:
    """Milliseconds since the isolate was created (V8's time_millis_since_init), on the machine-wide
    monotonic clock, so any core reads the same timeline."""
    return (time.monotonic_ns() - int(h.cfg[C_CREATED_NS])) / 1e6


def collect_garbage(h: HeapContext, kind: str, reason: str, force: bool = False,
                    collector_reason: str = "") -> GcEvent:
    """One collection of `kind` (Scavenge or Mark-Compact), with the phase word set for recovery and
    the tracer's event around it (tracer.py); its event, with V8's trace lines."""
    h.handles.usable()
    work = GcWork(new_space_size_at_start=new_space.used(h), barrier_slow_paths=int(h.top[T_BARRIER_SLOW]),
                  allocated=int(h.top[T_ALLOCATED]))
    tracer = h.tracer
    tracer.start(kind, reason, size_of_objects(h), committed(h), now_ms(h), new_space_size=work.new_space_size_at_start,
                 collector_reason=collector_reason)
    concurrent_marking.pause(h)  # no helper core marks while a collection runs (ConcurrentMarking::Pause)
    old_space.give_back_lab(h)  # every page iterable before a collection (V8's FreeLinearAllocationArea)
    h.a.iso_phase[h.iso] = SCAVENGE if kind == KIND_SCAVENGE else MC_MARK
    _pause_hook(h, kind)
    if kind == KIND_SCAVENGE and marking.active(h):
        marks = incremental_marking.keep_buffer_marks(h)
        scavenger.scavenge(h, work)  # colours follow the copies (marking.after_scavenge)
        incremental_marking.restore_buffer_marks(h, marks)
        concurrent_marking.resume(h)
    elif kind == KIND_SCAVENGE:
        scavenger.scavenge(h, work)
    else:
        if marking.active(h):  # the cycle's steps go into this event (V8's incremental suffix)
            tracer_incremental.fill(tracer, h.a.tr_inc, now_ms(h))
        cpu0 = time.thread_time_ns()
        mark_compact.collect(h, work, force or bool(h.cfg[C_FORCE_COMPACTION]))
        if work.helpers:  # the pause's CPU is the main's; the helpers' (the cycle's, the pause's) adds to the total
            work.main_cpu_ms = (time.thread_time_ns() - cpu0) / 1e6
            work.total_cpu_ms = work.main_cpu_ms + work.helper_cpu_ms
    event = tracer.end(work, size_of_objects(h), committed(h), now_ms(h))
    h.a.iso_phase[h.iso] = MUTATOR
    h.a.iso_epoch[h.iso] += 1
    h.top[T_ALLOCATED] = h.top[T_BARRIER_SLOW] = 0
    if h.cfg[C_VERIFY]:
        verify(h)
    return event


def area(h: HeapContext) -> int:
    """Bytes of objects one page can hold."""
    return h.g.page_size - CHUNK_HEADER
