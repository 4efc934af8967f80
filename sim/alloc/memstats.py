"""MemStats: the heap's figures under Go's runtime.MemStats names.

Go sums per-P counters to build MemStats (`consistentHeapStats`); so do we: each core writes
only its own row of `core_stats`/`core_mallocs`/`core_frees`, and a reader adds the rows up.
A read is not a stop-the-world snapshot, so two figures taken while other cores run can be
a few objects apart; at rest they are exact.

Definitions (as Go's):
    Alloc        = HeapAlloc
    Sys          HeapSys plus the bytes of shared metadata that describe the heap (Go counts
                 its span, bitmap and cache structures in Sys the same way)
    HeapSys      bytes of arena obtained from the page source (grown, released included)
    HeapInuse    bytes in spans in use (small spans and large objects)
    HeapIdle     HeapSys - HeapInuse
    HeapReleased bytes of idle pages returned to the machine by the scavenger
    HeapAlloc    bytes of allocated objects, counted at their size-class size (tiny blocks as
                 16 bytes, large objects as their pages); HeapInuse - HeapAlloc bounds
                 fragmentation
    Mallocs/Frees cumulative objects, tiny objects counted one by one (as Go does)
    BySize       per size class: Size, Mallocs, Frees (class 0, large, is not listed)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from memsim.sim.alloc import layout as L
from memsim.sim.alloc.sizeclasses import PAGE_SIZE, TINY_SIZE, table


@dataclass
class SizeClassStats:
    Size: int
    Mallocs: int
    Frees: int


@dataclass
class MemStats:
    Alloc: int = 0
    Sys: int = 0
    HeapAlloc: int = 0
    HeapSys: int = 0
    HeapIdle: int = 0
    HeapInuse: int = 0
    HeapReleased: int = 0
    HeapObjects: int = 0
    Mallocs: int = 0
    Frees: int = 0
    TotalAlloc: int = 0
    TinyAllocs: int = 0
    LargeAllocs: int = 0
    BySize: list[SizeClassStats] = field(default_factory=list)


@dataclass
class CoreCacheStats:
    core: int
    hits: int
    refills: int
    flushes: int
    central_direct: int
    tiny_allocs: int
    bad_frees: int


@dataclass
class CentralStats:
    size: int
    spans: int
    free_objects: int
    remove_range: int
    insert_range: int
    span_allocs: int
    span_frees: int


def read_memstats(a: L.HeapArrays, metadata_bytes: int = 0) -> MemStats:
    t = table()
    sizes = np.asarray(t.sizes, dtype=np.int64)
    mallocs = a.core_mallocs.sum(axis=0)[: len(sizes)]
    frees = a.core_frees.sum(axis=0)[: len(sizes)]
    cs = a.core_stats.sum(axis=0)
    g = a.heap_gauges
    live_small = int(((mallocs[1:] - frees[1:]) * sizes[1:]).sum())
    tiny_blocks = int(cs[L.S_TINY_BLOCK_ALLOCS] - cs[L.S_TINY_BLOCK_FREES])
    large = int(cs[L.S_LARGE_BYTES_ALLOC] - cs[L.S_LARGE_BYTES_FREED])
    sys_ = int(g[L.G_ARENA_PAGES]) * PAGE_SIZE
    inuse = int(g[L.G_INUSE_PAGES]) * PAGE_SIZE
    n_mallocs = int(mallocs.sum() + cs[L.S_TINY_ALLOCS])
    n_frees = int(frees.sum() + cs[L.S_TINY_FREES])
    by_size = [SizeClassStats(int(sizes[c]), int(mallocs[c]), int(frees[c])) for c in range(1, len(sizes))]
    heap_alloc = live_small + tiny_blocks * TINY_SIZE + large
    return MemStats(
        Alloc=heap_alloc,
        Sys=sys_ + metadata_bytes,
        HeapAlloc=heap_alloc,
        HeapSys=sys_,
        HeapIdle=sys_ - inuse,
        HeapInuse=inuse,
        HeapReleased=int(g[L.G_RELEASED_PAGES]) * PAGE_SIZE,
        HeapObjects=n_mallocs - n_frees,
        Mallocs=n_mallocs,
        Frees=n_frees,
        TotalAlloc=int((mallocs[1:] * sizes[1:]).sum() + cs[L.S_TINY_BLOCK_ALLOCS] * TINY_SIZE
                       + cs[L.S_LARGE_BYTES_ALLOC]),
        TinyAllocs=int(cs[L.S_TINY_ALLOCS]),
        LargeAllocs=int(cs[L.S_LARGE_ALLOCS]),
        BySize=by_size,
    )


def read_cache_stats(a: L.HeapArrays) -> list[CoreCacheStats]:
    return [CoreCacheStats(core=i, hits=int(r[L.S_CACHE_HITS]), refills=int(r[L.S_CACHE_REFILLS]),
                           flushes=int(r[L.S_CACHE_FLUSHES]), central_direct=int(r[L.S_CENTRAL_DIRECT]),
                           tiny_allocs=int(r[L.S_TINY_ALLOCS]), bad_frees=int(r[L.S_BAD_FREES]))
            for i, r in enumerate(a.core_stats)]


def read_central_stats(a: L.HeapArrays) -> list[CentralStats]:
    out = []
    for c in table().classes:
        r = a.central_stats[c.index]
        out.append(CentralStats(c.size, int(r[L.C_SPANS]), int(r[L.C_NFREE]), int(r[L.C_REMOVE_RANGE]),
                                int(r[L.C_INSERT_RANGE]), int(r[L.C_SPAN_ALLOCS]), int(r[L.C_SPAN_FREES])))
    return out
