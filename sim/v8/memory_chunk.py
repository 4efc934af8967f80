"""Heap pages: V8's MemoryChunk (`src/heap/memory-chunk.h`) header and its flags.

Every committed page starts with a 64-byte header, written through the direct map:

    w0  flags (V8's MemoryChunk::Flag bits below, plus memsim's SWEPT and
        FORCE_EVACUATION_CANDIDATE_FOR_TESTING)
    w1  isolate << 32 | page slot
    w2  area_start (page + 64)          w3  area_end (for a large object: its end, rounded to a word)
    w4  the owning space (layout.py's NEW_SPACE, OLD_SPACE, LO_SPACE)
    w5  the magic `V8CHUNK\\0`, which the verifier checks

Objects live in [area_start, area_end); no object straddles a page. Flags live only in the
header, so the write barrier finds them as V8's does: from any object address, `addr & ~(page - 1)`
is its page (a large object's start is on its first page). The mutable per-page figures
(allocated and live bytes, slot counts) are the shared `pg_*` rows instead (layout.py), so that
statistics and candidate selection read one array, not every page.

The barrier's flags follow V8's `incremental-marking.cc` (SetOldSpacePageFlags,
SetNewSpacePageFlags): an old or large page always has POINTERS_FROM_HERE_ARE_INTERESTING (a
store into it may create an old-to-new pointer), a new page always has
POINTERS_TO_HERE_ARE_INTERESTING (a pointer to it from old space must be remembered).
"""

from __future__ import annotations

from memsim.sim.v8.direct_map import DirectMap
from memsim.sim.v8.layout import CHUNK_HEADER

# MemoryChunk::Flag (src/heap/memory-chunk.h)
POINTERS_TO_HERE_ARE_INTERESTING = 1 << 1
POINTERS_FROM_HERE_ARE_INTERESTING = 1 << 2
FROM_PAGE = 1 << 3
TO_PAGE = 1 << 4
INCREMENTAL_MARKING = 1 << 5
BLACK_ALLOCATED = 1 << 6
LARGE_PAGE = 1 << 7
EVACUATION_CANDIDATE = 1 << 8
NEW_SPACE_BELOW_AGE_MARK = 1 << 9
SWEPT = 1 << 16
FORCE_EVACUATION_CANDIDATE_FOR_TESTING = 1 << 17
COPY_ON_FLIP_FLAGS = POINTERS_TO_HERE_ARE_INTERESTING | POINTERS_FROM_HERE_ARE_INTERESTING | INCREMENTAL_MARKING

MAGIC = int.from_bytes(b"V8CHUNK\0", "little")
W_FLAGS, W_OWNER, W_AREA_START, W_AREA_END, W_SPACE, W_MAGIC = range(6)


def init_chunk(dmap: DirectMap, iso: int, slot: int, page: int, space: int, flags: int, area_end: int) -> None:
    dmap.store(page + 8 * W_FLAGS, flags)
    dmap.store(page + 8 * W_OWNER, iso << 32 | slot)
    dmap.store(page + 8 * W_AREA_START, page + CHUNK_HEADER)
    dmap.store(page + 8 * W_AREA_END, area_end)
    dmap.store(page + 8 * W_SPACE, space)
    dmap.store(page + 8 * W_MAGIC, MAGIC)


def chunk_of(addr: int, page_size: int) -> int:
    return addr & ~(page_size - 1)


def flags(dmap: DirectMap, page: int) -> int:
    return dmap.load(page + 8 * W_FLAGS)


def set_flags(dmap: DirectMap, page: int, bits: int) -> None:
    dmap.store(page + 8 * W_FLAGS, flags(dmap, page) | bits)


def clear_flags(dmap: DirectMap, page: int, bits: int) -> None:
    dmap.store(page + 8 * W_FLAGS, flags(dmap, page) & ~bits)


def area_end(dmap: DirectMap, page: int) -> int:
    return dmap.load(page + 8 * W_AREA_END)
