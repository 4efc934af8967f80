"""The large-object space: V8's LargeObjectSpace (`src/heap/large-spaces.h`).

An object above kMaxRegularHeapObjectSize (half a page) gets a chunk of its own: a run of page
slots in the large-object region, committed whole, with the object right after the chunk header.
Large objects never move: the scavenger and mark-compact mark them in place, and a dead one's
chunk is uncommitted whole. `pg_lo_size` holds the object's size on the chunk's first slot (the
others of the run are marked LO_SPACE with size 0); the chunk counts in the old generation.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.v8 import memory_chunk as mc
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.layout import CHUNK_HEADER, LO_SPACE, M_STATE, MARKING_ON, NO_SPACE, T_LO_BYTES, T_OLD_COMMITTED
from memsim.sim.v8.old_space import can_expand

LO_FLAGS = mc.POINTERS_FROM_HERE_ARE_INTERESTING | mc.LARGE_PAGE


def chunk_bytes(h: HeapContext, size: int) -> int:
    return -(-(CHUNK_HEADER + size) // h.g.page_size) * h.g.page_size


def allocate(h: HeapContext, size: int) -> int:
    """A chunk for one object of `size` bytes; its address, or 0 if the limit or the region is full."""
    nbytes = chunk_bytes(h, size)
    if not can_expand(h, nbytes):
        return 0
    npages = nbytes // h.g.page_size
    slots = h.bounds.slot_range(h.bounds.lo_base, h.bounds.lo_region)
    free = (h.a.pg_space[h.iso, slots.start:slots.stop] == NO_SPACE).astype(np.int64)  # int8 sums would wrap
    runs = np.convolve(free, np.ones(npages, dtype=np.int64), mode="valid") == npages
    fits = np.flatnonzero(runs)
    if not fits.size:
        return 0
    slot = slots.start + int(fits[0])
    page = h.bounds.page(slot)
    h.dmap.commit(h.vm, h.space, page, nbytes)
    obj = page + CHUNK_HEADER
    marking = mc.INCREMENTAL_MARKING if h.a.iso_marking[h.iso, M_STATE] == MARKING_ON else 0  # a cycle runs
    mc.init_chunk(h.dmap, h.iso, slot, page, LO_SPACE, LO_FLAGS | marking, obj + ((size + 7) & ~7))
    h.a.pg_space[h.iso, slot:slot + npages] = LO_SPACE
    h.a.pg_lo_size[h.iso, slot:slot + npages] = 0
    h.a.pg_lo_size[h.iso, slot] = size
    h.top[T_LO_BYTES] += size
    h.top[T_OLD_COMMITTED] += nbytes
    return obj


def objects(h: HeapContext) -> list[tuple[int, int]]:
    """(first slot, object size) of every large object."""
    row = h.a.pg_lo_size[h.iso]
    return [(int(s), int(row[s])) for s in np.flatnonzero((h.a.pg_space[h.iso] == LO_SPACE) & (row > 0))]


def release(h: HeapContext, slot: int) -> None:
    """Uncommit a dead large object's chunk."""
    size = int(h.a.pg_lo_size[h.iso, slot])
    nbytes = chunk_bytes(h, size)
    page = h.bounds.page(slot)
    for kind in (0, 1):
        h.rset.clear(kind, page, nbytes)
    h.dmap.uncommit(h.vm, h.space, page, nbytes)
    n = nbytes // h.g.page_size
    h.a.pg_space[h.iso, slot:slot + n] = NO_SPACE
    h.a.pg_lo_size[h.iso, slot:slot + n] = 0
    h.a.pg_live[h.iso, slot:slot + n] = 0
    h.top[T_LO_BYTES] -= size
    h.top[T_OLD_COMMITTED] -= nbytes
