"""The old generation's allocation limit: V8's heap growing controller (src/heap/heap-controller.cc).

Owns: the growing factor F and the limit computed from it after a full GC. Touches no shared array:
these are pure functions of their arguments; the heap stores their result (its `iso_limits` row)
and feeds them the speeds the tracer measured (`GcTracer.speeds()`). Invariants: the factor lies in
[K_MIN_GROWING_FACTOR, max_factor] for every input; the limit lies in [live, max_old] whenever
live <= max_old.

V8 (`MemoryController<Trait>::DynamicGrowingFactor`) picks F so that, if the collector's speed and
the mutator's allocation rate stay as measured, the time from the end of this GC to the end of the
next one is spent 97 % in the mutator (kTargetMutatorUtilization). With R = gc_speed /
mutator_speed and MU = 0.97, F = R(1-MU) / (R(1-MU) - MU); the derivation is in heap-controller.cc
above that function. `MaxGrowingFactor` lets big heaps grow faster: 1.3 for a max heap of
V8HeapTrait::kMinSize (128 MB x kHeapLimitMultiplier) or less, 4.0 from kMaxSize (1024 MB x
kHeapLimitMultiplier) on, linear in between. kHeapLimitMultiplier is kSystemPointerSize / 4 = 2 on
x64 without pointer compression, which is the word this heap uses.
"""

from __future__ import annotations

from memsim.sim.errors import InvalidArgument

MB = 1 << 20

# src/heap/heap-controller.h, BaseControllerTrait.
K_MIN_GROWING_FACTOR = 1.1
K_MAX_GROWING_FACTOR = 4.0
K_CONSERVATIVE_GROWING_FACTOR = 1.3
K_TARGET_MUTATOR_UTILIZATION = 0.97
K_HEAP_LIMIT_MULTIPLIER = 2  # Heap::kHeapLimitMultiplier = kSystemPointerSize / 4 (x64, 8-byte words)
K_MIN_SIZE = 128 * K_HEAP_LIMIT_MULTIPLIER * MB
K_MAX_SIZE = 1024 * K_HEAP_LIMIT_MULTIPLIER * MB

# MemoryController::MaxGrowingFactor's constants.
K_MIN_SMALL_FACTOR = 1.3
K_MAX_SMALL_FACTOR = 2.0
K_HIGH_FACTOR = 4.0

# MemoryController::MinimumAllocationLimitGrowingStep counts steps of max(page, 1 MB): 8 normally,
# 2 in kConservative (low memory) mode. This heap's old generations are a few MB (8 MB by default),
# where V8's 8 MB step would put the limit at the maximum after the first GC; the limit here grows
# by at least this many PAGES instead, V8's low-memory count with the page as the unit.
MIN_GROWING_STEP_PAGES = 2


def heap_growing_factor(gc_speed: float, mutator_speed: float, max_factor: float) -> float:
    """V8's MemoryController::DynamicGrowingFactor: F = R(1-MU)/(R(1-MU)-MU), clamped to [1.1, max_factor].

    Speeds are bytes per ms (the tracer's mark-compact speed and allocation throughput). Either
    speed 0 (nothing measured yet) gives max_factor, as in V8. When R(1-MU) - MU is small or
    negative (the GC is too slow for the target), V8 tests `a < b * max_factor` before dividing,
    and takes max_factor otherwise; so does this.
    """
    if not K_MIN_GROWING_FACTOR <= max_factor <= K_MAX_GROWING_FACTOR:
        raise InvalidArgument(f"max_factor {max_factor} is outside V8's [{K_MIN_GROWING_FACTOR}, "
                              f"{K_MAX_GROWING_FACTOR}]")
    if gc_speed < 0 or mutator_speed < 0:
        raise InvalidArgument(f"speeds cannot be negative (gc {gc_speed}, mutator {mutator_speed} bytes/ms)")
    if gc_speed == 0 or mutator_speed == 0:
        return max_factor
    speed_ratio = gc_speed / mutator_speed
    a = speed_ratio * (1 - K_TARGET_MUTATOR_UTILIZATION)
    b = speed_ratio * (1 - K_TARGET_MUTATOR_UTILIZATION) - K_TARGET_MUTATOR_UTILIZATION
    factor = a / b if a < b * max_factor else max_factor
    return max(factor, K_MIN_GROWING_FACTOR)


def max_growing_factor(max_old_size: int) -> float:
    """V8's MemoryController::MaxGrowingFactor: 1.3 up to kMinSize (256 MB), 4.0 from kMaxSize (2 GB),
    linear in between (C + (D-C)(X-A)/(B-A))."""
    if max_old_size < 0:
        raise InvalidArgument(f"max_old_size {max_old_size} is negative")
    if max_old_size >= K_MAX_SIZE:
        return K_HIGH_FACTOR
    size = max(max_old_size, K_MIN_SIZE)
    return K_MIN_SMALL_FACTOR + (K_MAX_SMALL_FACTOR - K_MIN_SMALL_FACTOR) * (size - K_MIN_SIZE) / (
        K_MAX_SIZE - K_MIN_SIZE)


def old_generation_allocation_limit(live: int, factor: float, page_size: int, max_old: int) -> int:
    """The old generation's next limit after a full GC: clamp(live * F, live + 2 pages, max_old).

    V8's MemoryController::BoundAllocationLimit takes max(live * F, live + MinimumAllocationLimit-
    GrowingStep), adds the new space's capacity and caps the result halfway from live to the
    maximum ((live + max) / 2), so that a heap near its maximum approaches it in steps. Here the
    cap is the maximum itself and the step is MIN_GROWING_STEP_PAGES pages (see above): the heap
    decides at its limit whether a last-resort GC can still make room, and reports the OOM.
    """
    if live < 0 or page_size <= 0 or max_old < 0:
        raise InvalidArgument(f"live {live}, page_size {page_size} and max_old {max_old} must be "
                              "non-negative (page_size positive)")
    if factor < 1.0:
        raise InvalidArgument(f"growing factor {factor} is below 1: the limit would sit under the live bytes")
    limit = max(int(live * factor), live + MIN_GROWING_STEP_PAGES * page_size)
    return min(limit, max_old)
