"""Old space: V8's OldSpace, a PagedSpace (`src/heap/paged-spaces.h`): pages committed on demand,
a linear allocation area (LAB) refilled from the free list (free_list.py).

Allocation bumps `T_OLD_TOP` up to `T_OLD_LIMIT`. When the LAB cannot hold a request, its tail
goes back to the free list (so pages stay iterable) and the LAB is refilled with a free block
that fits; with none, a new page is committed if the old generation stays within
max_old_space_size (`T_OLD_COMMITTED` counts old and large-object pages); otherwise allocation
fails and the caller collects garbage. `pg_allocated[iso, slot]` counts the bytes of objects on
each page (V8's allocated_bytes), which the sweeper resets to the live bytes; their sum plus the
large objects is the old generation's SizeOfObjects.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.v8 import free_list
from memsim.sim.v8 import memory_chunk as mc
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.layout import (
    C_MAX_OLD,
    CHUNK_HEADER,
    M_STATE,
    MARKING_ON,
    NO_SPACE,
    OLD_SPACE,
    T_LO_BYTES,
    T_OLD_COMMITTED,
    T_OLD_LIMIT,
    T_OLD_PAGES,
    T_OLD_TOP,
)

OLD_FLAGS = mc.POINTERS_FROM_HERE_ARE_INTERESTING


def give_back_lab(h: HeapContext) -> None:
    """Return the LAB's unused tail to the free list (or make it a filler) and empty the LAB."""
    top, limit = int(h.top[T_OLD_TOP]), int(h.top[T_OLD_LIMIT])
    if limit > top:
        free_list.free(h, top, limit - top)
    h.top[T_OLD_TOP] = h.top[T_OLD_LIMIT] = 0


def can_expand(h: HeapContext, nbytes: int) -> bool:
    return int(h.top[T_OLD_COMMITTED]) + nbytes <= int(h.cfg[C_MAX_OLD])


def commit_page(h: HeapContext) -> int:
    """Commit a new old page (the caller checked can_expand); its address. The whole area is the
    caller's to use (it becomes the LAB)."""
    slots = h.bounds.slot_range(h.bounds.old_base, h.bounds.old_region)
    free = np.flatnonzero(h.a.pg_space[h.iso, slots.start:slots.stop] == NO_SPACE)
    if not free.size:
        return 0
    slot = slots.start + int(free[0])
    page = h.bounds.page(slot)
    h.dmap.commit(h.vm, h.space, page, h.g.page_size)
    marking = mc.INCREMENTAL_MARKING if h.a.iso_marking[h.iso, M_STATE] == MARKING_ON else 0  # a cycle runs
    mc.init_chunk(h.dmap, h.iso, slot, page, OLD_SPACE, OLD_FLAGS | marking, page + h.g.page_size)
    h.a.pg_space[h.iso, slot] = OLD_SPACE
    h.a.pg_allocated[h.iso, slot] = 0
    h.a.pg_live[h.iso, slot] = 0
    h.top[T_OLD_PAGES] += 1
    h.top[T_OLD_COMMITTED] += h.g.page_size
    return page


def refill(h: HeapContext, size: int, gc: bool = False) -> bool:
    """A new LAB that holds `size` bytes: a free block, else a new page. False if neither. A
    collection's evacuation (`gc`) may commit pages into the old region's slack beyond
    max_old_space_size (layout.OLD_SLACK): it commits its targets before it releases its sources."""
    give_back_lab(h)
    start, bsize = free_list.allocate(h, size)
    if not start:
        if not gc and not can_expand(h, h.g.page_size):
            return False
        page = commit_page(h)
        if not page:
            return False
        start, bsize = page + CHUNK_HEADER, h.g.page_size - CHUNK_HEADER
    h.top[T_OLD_TOP], h.top[T_OLD_LIMIT] = start, start + bsize
    return True


def allocate(h: HeapContext, size: int, gc: bool = False) -> int:
    """`size` bytes in old space; 0 if the free list and the limit (with `gc`: the region) leave no room."""
    top = int(h.top[T_OLD_TOP])
    if top + size > int(h.top[T_OLD_LIMIT]) or not top:
        if not refill(h, size, gc):
            return 0
        top = int(h.top[T_OLD_TOP])
    h.top[T_OLD_TOP] = top + size
    h.a.pg_allocated[h.iso, h.bounds.slot(top)] += size
    return top


def release_page(h: HeapContext, slot: int) -> None:
    """Uncommit an old page (an empty page after sweeping, or an evacuated candidate)."""
    page = h.bounds.page(slot)
    for kind in (0, 1):
        h.rset.clear(kind, page, h.g.page_size)
    h.dmap.uncommit(h.vm, h.space, page, h.g.page_size)
    h.a.pg_space[h.iso, slot] = NO_SPACE
    h.a.pg_allocated[h.iso, slot] = h.a.pg_live[h.iso, slot] = 0
    h.top[T_OLD_PAGES] -= 1
    h.top[T_OLD_COMMITTED] -= h.g.page_size


def pages(h: HeapContext) -> np.ndarray:
    """Slots of the committed old pages, ascending."""
    return np.flatnonzero(h.a.pg_space[h.iso] == OLD_SPACE)


def size_of_objects(h: HeapContext) -> int:
    """The old generation's SizeOfObjects: old pages' objects plus large objects."""
    return int(h.a.pg_allocated[h.iso].sum()) + int(h.top[T_LO_BYTES])
