"""The allocator's shared-memory arrays: what each one means and who may write it.

Everything here lives in the machine's metadata segment (`sim/machine/shm.py`), outside
the simulated physical memory: a client writing past an object can therefore never damage
a free list, which is what makes "bad input never corrupts the heap" provable.

Indexing. Heap pages are Go's 8 KiB pages, numbered from the arena base. A span is named
by its base page. Every span holds at most 1024 objects (an 8 KiB page of 8-byte objects),
so object `i` of the span based at page `b` has the *slot* `b * 1024 + i`: one slot index
space covers every object the heap can ever hold, with no per-span allocation.

Slot states (`slot_state`, uint8):
    0            FREE     free and in its span's central free list
    1 + core     CACHED   free, held in that core's mcache (only that core touches it)
    255          ALLOCATED handed to a client
`obj_size` (uint16) is the requested size of an allocated small object (0 when free), or a
tiny-block marker. `obj_owner` (uint32) says who allocated the object in a slot (for a large
object, the slot of its span's first object): (core + 1) << 24 | the client's entry in
`client_id` (0: no client: the cache, a kept object, a caller without an id; owners.py).
Freeing is decided by a CAS of `obj_size` from its value to 0: exactly one
of two concurrent frees wins, so nothing is ever handed out twice. A tiny block is the
exception: who frees it is decided by a CAS of its `tiny_marks` word (tiny.py explains why a
CAS of `obj_size` alone could free a reused block).

Writers:
    page_*, span_*, heap_gauges      only under the heap lock
    chunk_sum                        only under the heap lock (pagealloc.py: derived from page_span)
    central_*, span_nfree/next/prev  only under that class's central lock
    slot_state 0 <-> CACHED           under the class lock (refill/flush)
    slot_state CACHED <-> ALLOCATED   by the caching core only (lock-free fast path)
    obj_size, tiny_marks              CAS, or the single owner of the slot
    obj_owner                         the core that allocates the object, before publishing it
    client_*                          claimed and retired under the heap lock (owners.py)
    core_stats[core]                  by that core only (Go's per-P stats)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memsim.sim.alloc.sizeclasses import MAX_OBJECTS_PER_SPAN, PAGE_SIZE, table
from memsim.sim.machine.shm import ArraySpec

FREE = 0
ALLOCATED = 255
MAX_CORES = 254
MAX_CLIENTS = 4096  # clients holding objects at once; entry 0 means "no client"
OWNER_CORE_SHIFT = 24

# obj_size markers for tiny blocks (sizes never exceed 0x8000)
TINY_RETIRED = 0xBFFF
TINY_HELD = 0xC000  # | core

# span_state
SPAN_FREE, SPAN_SMALL, SPAN_LARGE = 0, 1, 2

CHUNK_PAGES = 512  # a chunk_sum row's pages: Go's pallocChunkPages (pagealloc.py)

# heap_gauges columns
G_ARENA_PAGES, G_INUSE_PAGES, G_RELEASED_PAGES, G_GROWS, G_SCAVENGED_TOTAL, G_RECOVERIES = range(6)
G_SEARCH_PAGE = 6  # Go's pageAlloc.searchAddr, in pages: no free page of the arena lies below it (pagealloc.py)

# central_stats columns
C_SPANS, C_NFREE, C_REMOVE_RANGE, C_INSERT_RANGE, C_SPAN_ALLOCS, C_SPAN_FREES = range(6)

# core_stats columns (per core row); by-size mallocs/frees live in core_mallocs/core_frees
(S_CACHE_HITS, S_CACHE_REFILLS, S_CACHE_FLUSHES, S_TINY_ALLOCS, S_TINY_FREES, S_LARGE_ALLOCS,
 S_LARGE_FREES, S_LARGE_BYTES_ALLOC, S_LARGE_BYTES_FREED, S_BAD_FREES, S_CENTRAL_DIRECT,
 S_TINY_BLOCK_ALLOCS, S_TINY_BLOCK_FREES) = range(13)
# 1 + the slot this core is moving between ALLOCATED-with-no-size and live (malloc) or cached
# (free), 0 = none: the only state recovery cannot otherwise attribute to a dead core.
S_INFLIGHT = 13
# Flags on S_INFLIGHT. Without FREE the slot is being handed out; TINY_BLOCK says the slot is
# a tiny block (counted in S_TINY_BLOCK_*, not in core_mallocs/core_frees); COUNTED says the
# operation's counter has already been bumped. Recovery reads them to keep MemStats exact.
INFLIGHT_FREE = 1 << 40
INFLIGHT_TINY_BLOCK = 1 << 41
INFLIGHT_COUNTED = 1 << 42
INFLIGHT_SLOT = (1 << 40) - 1
CORE_STAT_COLUMNS = 16


def heap_specs(memory_bytes: int, ncores: int) -> list[ArraySpec]:
    npages = memory_bytes // PAGE_SIZE
    nclasses = len(table())
    padded = -(-nclasses // 8) * 8  # per-core by-size rows end on a cache line
    nslots = npages * MAX_OBJECTS_PER_SPAN
    return [
        ArraySpec("page_span", "int32", (npages,)),
        ArraySpec("page_scav", "uint8", (npages,)),
        ArraySpec("page_freed_at", "float64", (npages,)),
        ArraySpec("chunk_sum", "int32", (-(-npages // CHUNK_PAGES), 3)),
        ArraySpec("span_state", "uint8", (npages,)),
        ArraySpec("span_class", "int16", (npages,)),
        ArraySpec("span_npages", "int32", (npages,)),
        ArraySpec("span_nfree", "int32", (npages,)),
        ArraySpec("span_next", "int32", (npages,)),
        ArraySpec("span_prev", "int32", (npages,)),
        ArraySpec("span_reqsize", "int64", (npages,)),
        ArraySpec("central_head", "int32", (nclasses,)),
        ArraySpec("central_stats", "int64", (nclasses, 8)),
        ArraySpec("heap_gauges", "int64", (16,)),
        ArraySpec("slot_state", "uint8", (nslots,)),
        ArraySpec("obj_size", "uint16", (nslots,)),
        ArraySpec("obj_owner", "uint32", (nslots,)),
        ArraySpec("client_id", "int64", (MAX_CLIENTS,)),
        ArraySpec("client_lease", "float64", (MAX_CLIENTS,)),
        ArraySpec("client_expiry", "float64", (MAX_CLIENTS,)),
        ArraySpec("tiny_marks", "uint32", (memory_bytes // 16,)),
        ArraySpec("core_stats", "int64", (ncores, CORE_STAT_COLUMNS)),
        ArraySpec("core_mallocs", "int64", (ncores, padded)),
        ArraySpec("core_frees", "int64", (ncores, padded)),
    ]


@dataclass
class HeapArrays:
    """Typed handles on the arrays above (views into the shared segment)."""

    page_span: np.ndarray
    page_scav: np.ndarray
    page_freed_at: np.ndarray
    chunk_sum: np.ndarray
    span_state: np.ndarray
    span_class: np.ndarray
    span_npages: np.ndarray
    span_nfree: np.ndarray
    span_next: np.ndarray
    span_prev: np.ndarray
    span_reqsize: np.ndarray
    central_head: np.ndarray
    central_stats: np.ndarray
    heap_gauges: np.ndarray
    slot_state: np.ndarray
    obj_size: np.ndarray
    obj_owner: np.ndarray
    client_id: np.ndarray
    client_lease: np.ndarray
    client_expiry: np.ndarray
    tiny_marks: np.ndarray
    core_stats: np.ndarray
    core_mallocs: np.ndarray
    core_frees: np.ndarray

    @classmethod
    def from_region(cls, region: dict[str, np.ndarray]) -> HeapArrays:
        return cls(**{f: region[f] for f in cls.__dataclass_fields__})

    def initialise(self) -> None:
        """First boot: every page free, every list empty (the segment starts zeroed)."""
        self.page_span.fill(-1)
        self.span_next.fill(-1)
        self.span_prev.fill(-1)
        self.central_head.fill(-1)
