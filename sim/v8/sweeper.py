"""Sweeping and releasing after a Mark-Compact: V8's Sweeper (`src/heap/sweeper.cc`, RawSweep)
and the release half of MarkCompactCollector (ReleaseEvacuationCandidates, the large-object
space's FreeDeadObjects, ArrayBufferSweeper::RequestSweep).

`sweep` rebuilds old space's free list from scratch: every old page that was not evacuated is
walked object by object (mark_kernels.sweep_range), each run of unmarked objects, free blocks
and fillers between two marked objects becomes one FREE_SPACE block on its category (or a FILLER
when below the smallest), and the page's allocated bytes become its live bytes. A page with no
live object is released instead. Sweeping is eager, in the pause (V8 sweeps lazily and
concurrently; the result per page is the same).

`release` uncommits the evacuated candidates and the dead large objects (large objects never
move: a dead one's chunk goes whole), whitens every frame of the isolate (marking.clear), and
frees the backing stores of dead ArrayBuffers.

Invariants after `release`: every old page is iterable, its `pg_allocated` is exactly the bytes of
its reachable objects, the free list holds only blocks of surviving pages, and no mark bit of the
isolate is set.
"""

from __future__ import annotations

import time

import numpy as np

from memsim.sim.v8 import array_buffer_sweeper, free_list, large_object_space, marking, old_space, work_span
from memsim.sim.v8 import mark_kernels as mk
from memsim.sim.v8 import memory_chunk as mc
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.gc_work import GcWork
from memsim.sim.v8.layout import CHUNK_HEADER


def sweep(h: HeapContext, evacuated: set[int], work: GcWork) -> None:
    """Sweep every old page not in `evacuated` (page slots) into a fresh free list."""
    t0 = time.perf_counter()
    a, i, d, ps = h.a, h.iso, h.dmap, h.g.page_size
    free_list.reset(h)
    ctr = np.zeros(mk.NCTR, dtype=np.int64)
    base = marking.bitbase(h)
    for slot in old_space.pages(h):
        s = int(slot)
        if s in evacuated:
            continue
        if not a.pg_live[i, s]:
            old_space.release_page(h, s)
            work.pages_released += 1
            continue
        page = h.bounds.page(s)
        mk.sweep_range(d.words, d.dm, d.shift, d.wpf, a.v8_markbits, base, page + CHUNK_HEADER, page + ps,
                       a.iso_free[i], ctr)
        a.pg_allocated[i, s] = a.pg_live[i, s]
        mc.clear_flags(d, page, mc.EVACUATION_CANDIDATE)
        mc.set_flags(d, page, mc.SWEPT)
    work_span.serial(work, int(ctr[mk.K_SEEN]))  # the main's alone, in the pause (V8 sweeps concurrently)
    work.phase_ms["sweep"] = (time.perf_counter() - t0) * 1e3


def release(h: HeapContext, evacuated: set[int], work: GcWork) -> None:
    """Uncommit the evacuated candidates and the unmarked large objects; clear the marks; free
    the dead ArrayBuffers' backing stores."""
    t0 = time.perf_counter()
    for s in sorted(evacuated):
        old_space.release_page(h, s)
        work.pages_released += 1
    for slot, size in large_object_space.objects(h):
        if not marking.is_marked(h, h.bounds.page(slot) + CHUNK_HEADER):
            work.pages_released += large_object_space.chunk_bytes(h, size) // h.g.page_size
            large_object_space.release(h, slot)
    marking.clear(h)
    work.external_freed += array_buffer_sweeper.sweep_full(h)
    work.phase_ms["sweep"] = work.phase_ms.get("sweep", 0.0) + (time.perf_counter() - t0) * 1e3
