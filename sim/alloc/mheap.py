"""mheap: the page heap, behind one global lock (Go's mheap_.lock).

It owns runs of 8 KiB pages. It hands a run to an mcentral as a span for small objects, or
straight to the caller for an object above 32 KiB, and takes empty spans back. When no free
run is long enough it grows the arena (Go grows the heap in 4 MiB chunks: runtime/mheap.go's grow) by
committing more pages through the page source; when memory runs out it says how much it
needed and what the machine has.

Free runs are found first-fit over the page→span map (`page_span`, -1 = free), which is the
flat form of Go's pageAlloc bitmap, through pageAlloc's index beside it (`pagealloc.py`: a
summary per 512-page chunk and searchAddr), so a span costs a scan of a chunk or two, not of
the arena.

Crash safety (a worker killed while holding this lock): allocation marks pages first and the
span record last, freeing clears the span record first and the pages last, so a torn update
can only leak pages, never hand the same page out twice; `recovery.recover()` reclaims pages
whose span record is not live.

Pages that stay free are returned to the machine by the scavenger (`scavenger.py`); a
released page is committed again, zeroed, when it is reused.
"""

from __future__ import annotations

import time

import numpy as np

from memsim.sim.alloc import layout as L
from memsim.sim.alloc import pagealloc
from memsim.sim.alloc.pagesource import PageSource
from memsim.sim.alloc.sizeclasses import PAGE_SIZE
from memsim.sim.errors import ResourceExhausted
from memsim.sim.machine.locks import SharedLock

DEFAULT_GROW_PAGES = 512  # 4 MiB: Go grows the heap in 4 MiB chunks


class MHeap:
    def __init__(self, a: L.HeapArrays, source: PageSource, lock: SharedLock, total_pages: int,
                 grow_pages: int = DEFAULT_GROW_PAGES):
        self.a = a
        self.source = source
        self.lock = lock
        self.total_pages = total_pages
        self.grow_pages = grow_pages
        self.base = source.reserve(total_pages * PAGE_SIZE)

    # -- page runs -------------------------------------------------------------------------

    def _grow(self, npages: int) -> None:
        """Extend the arena so that a run of npages exists at its end."""
        g = self.a.heap_gauges
        used = int(g[L.G_ARENA_PAGES])
        # Reuse a free tail of the arena: only the missing pages need committing. The tail is shorter
        # than npages (alloc_pages grows only when no run fits), so only the last npages pages are read.
        lo = max(0, used - npages)
        taken = np.flatnonzero(self.a.page_span[lo:used] >= 0)
        tail = used - lo - 1 - int(taken[-1]) if taken.size else used - lo
        need = npages - tail
        grow = max(need, min(self.grow_pages, self.total_pages - used))
        if used + need > self.total_pages:
            inuse = int(g[L.G_INUSE_PAGES]) * PAGE_SIZE
            raise ResourceExhausted(
                f"out of memory: allocating {npages * PAGE_SIZE} bytes ({npages} pages) needs more than the "
                f"machine's {self.total_pages * PAGE_SIZE} bytes of physical memory "
                f"({inuse} bytes in use by spans, largest free run too small)"
            )
        grow = min(grow, self.total_pages - used)
        self.source.commit(self.base + used * PAGE_SIZE, grow * PAGE_SIZE)
        self.a.page_freed_at[used:used + grow] = time.monotonic()  # idle from now, not from boot
        g[L.G_ARENA_PAGES] = used + grow
        g[L.G_GROWS] += 1
        pagealloc.update(self.a, used, used + grow)

    def alloc_pages(self, npages: int, cls: int, reqsize: int = 0) -> int:
        """Allocate a span of npages for class cls (0 = one large object). Caller holds the lock."""
        assert self.lock.held
        a = self.a
        start, first_free = pagealloc.find(a, npages)
        if start < 0:
            # A miss, about once per 4 MiB of growth: first rebuild the index from the page map, so that
            # no summary or searchAddr torn by a core killed under this lock hides a run (pagealloc.py).
            pagealloc.rebuild(a)
            start, first_free = pagealloc.find(a, npages)
        if start < 0:
            self._grow(npages)
            start, first_free = pagealloc.find(a, npages)
            if start < 0:
                raise ResourceExhausted(f"out of memory: no run of {npages} pages after the arena grew "
                                        f"(the page index disagrees with the page map)")
        end = start + npages
        scav = a.page_scav[start:end]
        nscav = int(scav.sum())
        if nscav:
            # Released pages come back zeroed from the source, as MADV_DONTNEED pages do.
            self.source.commit(self.base + start * PAGE_SIZE, npages * PAGE_SIZE)
            scav[:] = 0
            a.heap_gauges[L.G_RELEASED_PAGES] -= nscav
        a.page_span[start:end] = start  # pages first ...
        a.span_class[start] = cls
        a.span_npages[start] = npages
        a.span_reqsize[start] = reqsize
        a.span_nfree[start] = 0
        a.span_next[start] = -1
        a.span_prev[start] = -1
        a.span_state[start] = L.SPAN_LARGE if cls == 0 else L.SPAN_SMALL  # ... span record last
        a.heap_gauges[L.G_INUSE_PAGES] += npages
        pagealloc.allocated(a, start, npages, first_free)
        return start

    def free_pages(self, start: int) -> None:
        """Return the span based at `start` to the free pages. Caller holds the lock."""
        assert self.lock.held
        a = self.a
        npages = int(a.span_npages[start])
        a.span_state[start] = L.SPAN_FREE  # span record first ...
        a.page_freed_at[start:start + npages] = time.monotonic()
        a.page_span[start:start + npages] = -1  # ... pages last
        a.heap_gauges[L.G_INUSE_PAGES] -= npages
        pagealloc.freed(a, start, npages)

    # -- scavenging ------------------------------------------------------------------------

    def has_scavenge_work(self, idle_seconds: float) -> bool:
        """An unlocked look: is any free page idle long enough and not yet released?

        Racy by design (another core may be changing the arrays), and harmless: a wrong "no"
        only delays scavenging to the next pass, a wrong "yes" costs one lock acquisition.
        It keeps an idle machine's heap lock untouched, so the lock counters show the load.
        """
        used = int(self.a.heap_gauges[L.G_ARENA_PAGES])
        a = self.a
        cand = (a.page_span[:used] < 0) & (a.page_scav[:used] == 0)
        return bool(cand.any() and (a.page_freed_at[:used][cand] <= time.monotonic() - idle_seconds).any())

    def scavenge(self, idle_seconds: float, now: float | None = None) -> int:
        """Release free pages idle for at least idle_seconds. Caller holds the lock. Returns pages."""
        assert self.lock.held
        a = self.a
        used = int(a.heap_gauges[L.G_ARENA_PAGES])
        if used == 0:
            return 0
        now = time.monotonic() if now is None else now
        cand = (a.page_span[:used] < 0) & (a.page_scav[:used] == 0) & (a.page_freed_at[:used] <= now - idle_seconds)
        if not cand.any():
            return 0
        edges = np.diff(np.concatenate(([0], cand.view(np.int8), [0])))
        # The source gives memory back in whole granules (frames); with frames bigger than a
        # heap page only the granules a free run covers entirely can go.
        per = max(1, self.source.granule // PAGE_SIZE)
        released = 0
        for s, e in zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True):
            s, e = -(-s // per) * per, e // per * per
            if e <= s:
                continue
            self.source.release(self.base + s * PAGE_SIZE, (e - s) * PAGE_SIZE)
            a.page_scav[s:e] = 1
            released += e - s
        a.heap_gauges[L.G_RELEASED_PAGES] += released
        a.heap_gauges[L.G_SCAVENGED_TOTAL] += released
        return released
