"""The allocator's fast path in compiled code: a small object from this core's mcache, as Heap._malloc_small takes it.

Owns no state. `mcache_alloc` pops the calling core's own mcache stack (mcache.py's `slots`/`count`,
process-private: no lock) and writes the slot's shared words exactly as Heap._malloc_small does, in
the same order, so that a core dying half-way is recovered the same way (recovery.py reads
S_INFLIGHT: set before the slot is claimed, flagged COUNTED once `mallocs` has it, cleared once
`obj_size` publishes the object). What it leaves to Python is what Go's mallocgc leaves to its slow
path (runtime/malloc.go: nextFreeFast, else mcache.nextFree -> refill): an empty stack returns -1,
and the caller falls back to Heap.malloc, which refills a batch from mcentral under its lock.
Callers are compiled paths that must allocate per request (db_kernels.py's SET of a new key); the
object's bytes are theirs to write, all `size_of(cls)` of them (Heap zeroes the class's size).

`class_of` is SizeClassTable.class_of over the same two lookups (Go's size_to_class8 and
size_to_class128), passed in as arrays (`size_lookups`).
"""

from __future__ import annotations

import numpy as np

from memsim.sim.alloc.layout import ALLOCATED, INFLIGHT_COUNTED, S_CACHE_HITS, S_INFLIGHT
from memsim.sim.alloc.sizeclasses import LARGE_SIZE_DIV, MAX_SMALL_SIZE, SizeClassTable
from memsim.sim.machine import jit


def size_lookups(t: SizeClassTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(small lookup by 8 bytes up to 1 KiB, large lookup by LARGE_SIZE_DIV up to MAX_SMALL_SIZE, the
    classes' object sizes by class index) as arrays for class_of and the callers' address arithmetic."""
    return (np.asarray(t.small_lookup, np.int64), np.asarray(t.large_lookup, np.int64),
            np.asarray(t.sizes, np.int64))


@jit.njit_kernel
def class_of(size: int, small: np.ndarray, large: np.ndarray) -> int:
    """SizeClassTable.class_of: the class of a request of `size` bytes, 0 for a large object."""
    if size <= 1024:
        return small[(size + 7) >> 3]
    if size <= MAX_SMALL_SIZE:
        return large[(size + LARGE_SIZE_DIV - 1) // LARGE_SIZE_DIV]
    return 0


@jit.njit_kernel
def mcache_alloc(cls: int, size: int, owner: int, slots: np.ndarray, count: np.ndarray, owed: np.ndarray,
                 slot_state: np.ndarray, obj_owner: np.ndarray, obj_size: np.ndarray, stats: np.ndarray,
                 mallocs: np.ndarray) -> int:
    """A slot of class `cls` for a request of `size` bytes owned by `owner` (Heap.malloc's owner word), from
    the mcache's stack, or -1 if the stack is empty. `stats` and `mallocs` are this core's rows; `owed` is
    MCache.owed (the first pop after a refill counts as that refill's miss, not a hit)."""
    n = count[cls]
    if n == 0:
        return -1
    n -= 1
    count[cls] = n
    slot = slots[cls, n]
    if owed[cls]:
        owed[cls] = 0
    else:
        stats[S_CACHE_HITS] += 1
    stats[S_INFLIGHT] = slot + 1  # if we die before publishing, recovery frees the slot
    slot_state[slot] = ALLOCATED
    mallocs[cls] += 1
    stats[S_INFLIGHT] = (slot + 1) | INFLIGHT_COUNTED
    obj_owner[slot] = owner
    obj_size[slot] = size  # publishes the object
    stats[S_INFLIGHT] = 0
    return slot
