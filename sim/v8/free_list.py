"""Old space's free list: V8's FreeListMany (`src/heap/free-list.h`, `free-list.cc`).

Free memory on old pages is threaded through FREE_SPACE objects (objects.py: a header whose
payload covers the block, word 1 the next block's address), so a page stays iterable and the list
costs no memory of its own. Blocks are kept on size categories (layout.py's
FREE_LIST_CATEGORIES, V8's categories_min); `iso_free[iso, c]` is category c's head. A block of
size s is on the largest category whose minimum is <= s, so every block of a category above the
request's fits at once; the request's own category is walked for a first fit, at most
MAX_WALK blocks (a bounded cost per allocation, as V8's FreeListMany::Allocate searches only
where a fit is likely).

The sweeper (sweeper.py) rebuilds the whole list after every mark-compact, so blocks never
need unlinking from the middle except by `allocate` and by mark-compact's eviction of its
evacuation candidates' blocks (mark_kernels.evict_free_list). Gaps below MIN_FREE_BLOCK bytes
become FILLERs, counted as wasted.
"""

from __future__ import annotations

from bisect import bisect_right

from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.layout import FREE_LIST_CATEGORIES, MIN_FREE_BLOCK
from memsim.sim.v8.objects import filler, free_space, payload_len_of

MAX_WALK = 16


def category(size: int) -> int:
    return bisect_right(FREE_LIST_CATEGORIES, size) - 1


def free(h: HeapContext, start: int, size: int) -> None:
    """Give [start, start + size) back: a FREE_SPACE block on its category, or a filler."""
    if size <= 0:
        return
    if size < MIN_FREE_BLOCK:
        h.dmap.store(start, filler(size))
        return
    c = category(size)
    h.dmap.store(start, free_space(size))
    h.dmap.store(start + 8, int(h.a.iso_free[h.iso, c]))
    h.a.iso_free[h.iso, c] = start


def allocate(h: HeapContext, size: int) -> tuple[int, int]:
    """A free block of at least `size` bytes, unlinked: (start, its size); (0, 0) if none."""
    heads = h.a.iso_free[h.iso]
    c = category(size) if size >= MIN_FREE_BLOCK else 0
    prev, node, walked = 0, int(heads[c]), 0
    while node and walked < MAX_WALK:  # the request's own category: first fit
        bsize = 8 + payload_len_of(h.dmap.load(node))
        nxt = h.dmap.load(node + 8)
        if bsize >= size:
            if prev:
                h.dmap.store(prev + 8, nxt)
            else:
                heads[c] = nxt
            return node, bsize
        prev, node, walked = node, nxt, walked + 1
    for k in range(c + 1, len(FREE_LIST_CATEGORIES)):
        node = int(heads[k])
        if node:
            heads[k] = h.dmap.load(node + 8)
            return node, 8 + payload_len_of(h.dmap.load(node))
    return 0, 0


def reset(h: HeapContext) -> None:
    h.a.iso_free[h.iso] = 0


def available(h: HeapContext) -> int:
    """Bytes on the free list (walks every block: for statistics, not for allocation)."""
    total = 0
    for head in h.a.iso_free[h.iso]:
        node = int(head)
        while node:
            total += 8 + payload_len_of(h.dmap.load(node))
            node = h.dmap.load(node + 8)
    return total
