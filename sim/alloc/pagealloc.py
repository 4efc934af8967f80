"""pageAlloc's index: where the page heap's first free run of n pages is, without scanning the arena.

mheap finds runs first-fit over the page map (`page_span`, -1 = free). Scanning the whole map
costs O(arena) per span: about 1.4 ms a large malloc on a 2 GiB machine against 75 µs on a
64 MiB one. Go's page allocator (runtime/mpagealloc.go) keeps two things beside its bitmap, and
this module keeps the same two, in the machine's shared arrays, written under the heap lock:

- **Summaries per chunk** (`chunk_sum`, one row per 512-page chunk: Go's pallocChunkPages and
  its leaf-level pallocSum): `start`, the free pages at the chunk's start; `max`, its longest free
  run; `end`, the free pages at its end. Pages past the arena's end count as in use. Go stacks
  four more levels of summaries above the leaves (a radix tree, for 48-bit address spaces); a
  machine here has at most some thousands of chunks, so one NumPy pass over the leaves answers
  "which chunk holds the first fit" in microseconds, and only that chunk's pages (and, for a run
  crossing chunks, the chunks it crosses) are scanned.
- **searchAddr** (`heap_gauges[G_SEARCH_PAGE]`): no free page of the arena lies below it. A
  search starts there; a free lowers it to the freed span's base; an allocation moves it to the
  first free page the search met (past the span just allocated, if that span began there). Go
  (mpagealloc.go's alloc and free) keeps it the same way, in offset address space.

First fit stays exact: a run of n pages starts in chunk c either within c (max[c] >= n) or at
c's trailing free pages and crosses on (end[c] + the full chunks after c + start of the next
non-full one >= n); the first chunk for which either holds is where the first fit starts. Only
the pages that can hold it are scanned: that chunk's if the run fits within it (its first run
of n is then the first fit: a crossing run starts at the chunk's last free run, no earlier),
else the chunk's trailing free pages and the n pages from their start.

Crash safety. The summaries and the hint are derived from `page_span`, which stays the truth;
a core killed under the heap lock can leave them stale (between its page-map write and its
summary write, between a summary and searchAddr, or between a grow's arena size and its
summaries) until recovery rebuilds them (`recovery.recover`; `recovery.check` verifies them).
Meanwhile: a summary showing a run no longer free is caught by the window's scan, which
rebuilds and scans the page map (`find`); a summary or a searchAddr hiding free runs makes
`find` miss, and every miss rebuilds the index and searches again before the arena grows
(`MHeap.alloc_pages`: a miss happens about once per 4 MiB of growth, so its O(arena) rebuild
costs little). Neither can hand out a page twice: a page is taken only where the page map says
free. The one cost: a searchAddr left too high can place a span past an earlier free run that
would also have fitted, until the next miss or recovery.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.alloc import layout as L
from memsim.sim.alloc.layout import CHUNK_PAGES  # Go's pallocChunkPages: 4 MiB of 8 KiB pages
from memsim.sim.machine import jit

SUM_START, SUM_MAX, SUM_END = range(3)


def chunks_for(npages: int) -> int:
    return -(-npages // CHUNK_PAGES)


@jit.njit_kernel
def summarize(page_span: np.ndarray, used: int, c0: int, c1: int, chunk_sum: np.ndarray) -> None:
    """chunk_sum's rows c0 .. c1-1 from the page map, pages from `used` on counted in use (pallocSum's
    start, max and end over one chunk's bitmap, mpallocbits.go's summarize). Compiled: a NumPy
    version took about 20 µs a chunk in calls alone, a quarter of a large malloc's cost."""
    for c in range(c0, c1):
        base = c * CHUNK_PAGES
        start, run, best = -1, 0, 0
        for i in range(CHUNK_PAGES):
            p = base + i
            if p < used and page_span[p] < 0:
                run += 1
                if run > best:
                    best = run
            else:
                if start < 0:
                    start = i
                run = 0
        chunk_sum[c, SUM_START] = CHUNK_PAGES if start < 0 else start
        chunk_sum[c, SUM_MAX] = best
        chunk_sum[c, SUM_END] = run


def update(a: L.HeapArrays, lo: int, hi: int) -> None:
    """Summarise again the chunks that pages [lo, hi) fall in. Caller holds the heap lock."""
    if hi > lo:
        summarize(a.page_span, int(a.heap_gauges[L.G_ARENA_PAGES]), lo // CHUNK_PAGES, chunks_for(hi), a.chunk_sum)


def rebuild(a: L.HeapArrays) -> None:
    """Every chunk's summary from the page map, and searchAddr back to 0 (recovery, first boot)."""
    update(a, 0, a.page_span.size)
    a.heap_gauges[L.G_SEARCH_PAGE] = 0


def check(a: L.HeapArrays) -> list[str]:
    """What disagrees with the page map: a chunk's summary, or a free page below searchAddr."""
    used = int(a.heap_gauges[L.G_ARENA_PAGES])
    truth = np.empty_like(a.chunk_sum)
    summarize(a.page_span, used, 0, truth.shape[0], truth)
    problems = [f"chunk {int(c)}'s summary (start, max, end) {a.chunk_sum[c].tolist()} disagrees with its "
                f"pages' {truth[c].tolist()}" for c in np.flatnonzero((truth != a.chunk_sum).any(axis=1))[:5]]
    hint = int(a.heap_gauges[L.G_SEARCH_PAGE])
    below = np.flatnonzero(a.page_span[:min(hint, used)] < 0)
    if below.size:
        problems.append(f"page {int(below[0])} is free below searchAddr {hint}")
    return problems


def warm() -> None:
    """Compile (or load from numba's cache) `summarize` before the supervisor forks its cores."""
    summarize(np.full(CHUNK_PAGES, -1, np.int32), 1, 0, 1, np.zeros((1, 3), np.int32))


def freed(a: L.HeapArrays, start: int, npages: int) -> None:
    """After pages [start, start+npages) went free: their summaries, and searchAddr down to start."""
    update(a, start, start + npages)
    if start < int(a.heap_gauges[L.G_SEARCH_PAGE]):
        a.heap_gauges[L.G_SEARCH_PAGE] = start


def allocated(a: L.HeapArrays, start: int, npages: int, first_free: int) -> None:
    """After pages [start, start+npages) were taken by the run `find` returned with `first_free`."""
    update(a, start, start + npages)
    a.heap_gauges[L.G_SEARCH_PAGE] = start + npages if first_free == start else first_free


def _first_fit(free: np.ndarray, npages: int) -> int:
    """The first index of a run of npages True in `free`, or -1."""
    if npages == 1:
        idx = np.flatnonzero(free)
        return int(idx[0]) if idx.size else -1
    edges = np.diff(np.concatenate(([0], free.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    fits = np.flatnonzero(np.flatnonzero(edges == -1) - starts >= npages)
    return int(starts[fits[0]]) if fits.size else -1


def scan(a: L.HeapArrays, npages: int, used: int) -> int:
    """First fit over the whole arena's page map, no index: the fallback, and the tests' oracle."""
    return _first_fit(a.page_span[:used] < 0, npages) if used else -1


def scan_find(a: L.HeapArrays, npages: int) -> tuple[int, int]:
    """`find`'s answer from the page map alone, no index: the whole-arena first fit and first free page."""
    used = int(a.heap_gauges[L.G_ARENA_PAGES])
    free = np.flatnonzero(a.page_span[:used] < 0)
    return scan(a, npages, used), int(free[0]) if free.size else used


def find(a: L.HeapArrays, npages: int) -> tuple[int, int]:
    """(first page of the arena's first free run of >= npages, or -1; the first free page at or
    after searchAddr, the hint for `allocated`). Caller holds the heap lock."""
    used = int(a.heap_gauges[L.G_ARENA_PAGES])
    hint = int(a.heap_gauges[L.G_SEARCH_PAGE])
    if hint >= used:
        return -1, used
    c0 = hint // CHUNK_PAGES
    if a.chunk_sum[c0, SUM_MAX] >= npages:
        # Go's fast path: the run fits in searchAddr's chunk. The first run within the chunk is the
        # first fit: one that crosses into the next chunk starts at the chunk's last run, no earlier.
        found = _window(a, hint, min(used, (c0 + 1) * CHUNK_PAGES), npages, hint)
    else:
        found = _search(a, c0, hint, used, npages)
    if found is None:  # a summary torn by a core killed under the lock: the page map decides
        rebuild(a)
        return scan_find(a, npages)
    return found


def _window(a: L.HeapArrays, lo: int, hi: int, npages: int, first_from: int) -> tuple[int, int] | None:
    """The first fit in pages [lo, hi), which the summaries say holds one, and the first free page
    at or after `first_from` (within the window); None if the page map disagrees."""
    free = a.page_span[lo:hi] < 0
    off = _first_fit(free, npages)
    nz = np.flatnonzero(free[first_from - lo:])
    if off < 0 or not nz.size:
        return None
    return lo + off, first_from + int(nz[0])


def _search(a: L.HeapArrays, c0: int, hint: int, used: int, npages: int) -> tuple[int, int] | None:
    """The slow path over the summaries from searchAddr's chunk on (see the header)."""
    s = a.chunk_sum[c0:chunks_for(used)]
    k = s.shape[0]
    st, mx, en = s[:, SUM_START], s[:, SUM_MAX], s[:, SUM_END]
    has_free = mx > 0
    if not has_free.any():
        return -1, used
    cf = c0 + int(has_free.argmax())  # the first chunk with a free page: searchAddr's next value is there
    lo = max(hint, cf * CHUNK_PAGES)
    nz = np.flatnonzero(a.page_span[lo:min(used, (cf + 1) * CHUNK_PAGES)] < 0)
    if not nz.size:
        return None
    first_free = lo + int(nz[0])
    nonfull = np.where(mx < CHUNK_PAGES, np.arange(k), k)
    nxt = np.append(np.minimum.accumulate(nonfull[::-1])[::-1][1:], k)  # the first non-full chunk after each
    crossing = en + CHUNK_PAGES * (nxt - np.arange(k) - 1) + np.where(nxt < k, st[np.minimum(nxt, k - 1)], 0)
    fit = (mx >= npages) | ((en > 0) & (crossing >= npages))
    if not fit.any():
        return -1, first_free
    i = int(fit.argmax())
    w0 = max(hint, (c0 + i) * CHUNK_PAGES)
    # Within chunk i if it fits there (the first run within the chunk is the first fit, as in the fast
    # path); else the run is chunk i's trailing free pages and what follows them, npages in all.
    chunk_end = (c0 + i + 1) * CHUNK_PAGES
    w1 = chunk_end if mx[i] >= npages else chunk_end - int(en[i]) + npages
    found = _window(a, w0, min(used, w1), npages, w0)
    return None if found is None else (found[0], first_free)
