"""New space: V8's SemiSpaceNewSpace (`src/heap/new-spaces.h`): two semispaces, bump-pointer
allocation in to-space, the age mark.

Both semispaces are committed when the isolate is created and stay committed. Allocation bumps
`T_NEW_TOP` within the current to-space page up to `T_NEW_LIMIT` (the page's end: no object
straddles a page); a request that does not fit fills the page's tail with a FILLER and moves to the
next page; with no page left it fails and the caller scavenges ("allocation failure").

The age mark (`T_AGE_MARK`) is the top at the end of the last scavenge: objects below it in
to-space have survived one scavenge already, so the scavenger promotes them (V8's
`SemiSpaceNewSpace::ShouldBePromoted`, IsAddressBelowAgeMark) and copies the others. That is how
an object is promoted on its *second* survival without age bits in its header.

To-space is iterable: each page from its area start to its end (or to top, on the current page)
is objects and fillers.
"""

from __future__ import annotations

from memsim.sim.v8 import memory_chunk as mc
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.layout import CHUNK_HEADER, NEW_SPACE, T_AGE_MARK, T_NEW_LIMIT, T_NEW_TOP, T_NEW_USED, T_TO_SPACE
from memsim.sim.v8.objects import filler

NEW_FLAGS = mc.POINTERS_TO_HERE_ARE_INTERESTING


def to_space(h: HeapContext) -> int:
    return h.bounds.semispace(int(h.top[T_TO_SPACE]))


def from_space(h: HeapContext) -> int:
    return h.bounds.semispace(1 - int(h.top[T_TO_SPACE]))


def reset_to_space(h: HeapContext, age_mark: int | None = None) -> None:
    """Point allocation at to-space's first page (an empty to-space: a new isolate, or a flip
    whose caller then moves top past the survivors)."""
    base = to_space(h)
    h.top[T_NEW_TOP] = base + CHUNK_HEADER
    h.top[T_NEW_LIMIT] = base + h.g.page_size
    h.top[T_AGE_MARK] = base + CHUNK_HEADER if age_mark is None else age_mark


def init_pages(h: HeapContext, base: int, to: bool) -> None:
    """Write the chunk headers of one semispace (committed)."""
    flags = NEW_FLAGS | (mc.TO_PAGE if to else mc.FROM_PAGE)
    for page in range(base, base + h.bounds.semi, h.g.page_size):
        mc.init_chunk(h.dmap, h.iso, h.bounds.slot(page), page, NEW_SPACE, flags, page + h.g.page_size)
        h.a.pg_space[h.iso, h.bounds.slot(page)] = NEW_SPACE


def allocate(h: HeapContext, size: int) -> int:
    """Bump-allocate `size` bytes in to-space; 0 when to-space is full."""
    top, limit = int(h.top[T_NEW_TOP]), int(h.top[T_NEW_LIMIT])
    while top + size > limit:
        nxt = limit  # the next page's start
        if nxt >= to_space(h) + h.bounds.semi:
            return 0
        if limit > top:
            h.dmap.store(top, filler(limit - top))
        top, limit = nxt + CHUNK_HEADER, nxt + h.g.page_size
        h.top[T_NEW_TOP], h.top[T_NEW_LIMIT] = top, limit
    h.top[T_NEW_TOP] = top + size
    h.top[T_NEW_USED] += size
    return top


def ranges(h: HeapContext) -> list[tuple[int, int]]:
    """[area start, end) of every to-space page in use: full pages to their end, the current one to top."""
    ps, top = h.g.page_size, int(h.top[T_NEW_TOP])
    current = int(h.top[T_NEW_LIMIT]) - ps
    return [(p + CHUNK_HEADER, top if p == current else p + ps) for p in range(to_space(h), current + 1, ps)]


def used(h: HeapContext) -> int:
    return int(h.top[T_NEW_USED])


def capacity(h: HeapContext) -> int:
    """Bytes one semispace can hold in objects (V8's Capacity: its pages' areas)."""
    return (h.bounds.semi // h.g.page_size) * (h.g.page_size - CHUNK_HEADER)


def contains(h: HeapContext, addr: int) -> bool:
    return h.bounds.in_new(addr)


def in_to_space(h: HeapContext, addr: int) -> bool:
    base = to_space(h)
    return base <= addr < base + h.bounds.semi


def below_age_mark(h: HeapContext, addr: int) -> bool:
    """V8's ShouldBePromoted for a from-space object during a scavenge: the age mark lies in the
    same semispace (it was to-space until this scavenge's flip), and an object below it was
    allocated before the previous scavenge ended, so this is its second survival."""
    return addr < int(h.top[T_AGE_MARK])
