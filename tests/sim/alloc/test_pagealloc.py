"""The page heap's index (sim/alloc/pagealloc.py): first fit stays exact, the summaries and
searchAddr stay true to the page map, and a torn index costs nothing but a rebuild.

- Property: random span allocations (1 page to 2.5 chunks, so runs cross chunk boundaries and span
  whole chunks) and frees on a 24 MiB machine (6 chunks): every span starts where the first fit
  over the whole page map (`pagealloc.scan`, the old mheap search) says, growing the arena only
  when no free run fits; after every step `pagealloc.check` finds nothing wrong.
- A summary that shows a run no longer free (a core killed between its page-map write and its
  summary write) makes `find` scan, rebuild and answer exactly.
- A summary that hides every free run, on a machine grown to its end, does not make a span fail
  with out-of-memory: the out-of-memory path rebuilds and searches again.
- Each way a core killed under the heap lock can leave the index behind the page map (a torn free,
  a torn searchAddr, a torn grow) hides no run from the next span.
- A small span behind a 1-page hole scans the pages that can hold it, not the free chunks after.
- The index at 1 GiB: a large object's span costs a chunk's scan, not the arena's (counted in
  pages scanned, not timed).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.sim.alloc import layout as L
from memsim.sim.alloc import pagealloc
from memsim.sim.alloc.layout import CHUNK_PAGES
from memsim.sim.alloc.mheap import MHeap
from memsim.sim.errors import ResourceExhausted
from memsim.sim.system import Machine, MachineConfig

MiB = 1 << 20


@pytest.fixture(scope="module")
def machine():
    m = Machine.create(MachineConfig(memory_bytes=24 * MiB, cores=1))
    try:
        yield m
    finally:
        m.destroy()


def _emptied(machine) -> MHeap:
    """The machine's page heap with every span of the previous test freed (the arena stays grown)."""
    mh = machine.heap(0).mheap
    a = mh.a
    with mh.lock:
        used = int(a.heap_gauges[L.G_ARENA_PAGES])
        for start in np.flatnonzero(a.span_state[:used] != L.SPAN_FREE).tolist():
            mh.free_pages(start)
    return mh


ops = st.lists(st.one_of(st.tuples(st.just("alloc"), st.integers(1, 1300)),
                         st.tuples(st.just("free"), st.integers(0, 10**6))), min_size=1, max_size=60)


@settings(max_examples=120, deadline=None)
@given(ops)
def test_every_span_starts_at_the_first_fit_and_the_index_stays_true(machine, steps):
    mh = _emptied(machine)
    a = mh.a
    live: list[int] = []
    with mh.lock:
        for op, n in steps:
            if op == "free":
                if live:
                    mh.free_pages(live.pop(n % len(live)))
            else:
                used = int(a.heap_gauges[L.G_ARENA_PAGES])
                want = pagealloc.scan(a, n, used)
                tail = int(np.argmax(a.page_span[:used][::-1] >= 0)) if (a.page_span[:used] >= 0).any() else used
                if want < 0 and used - tail + n > mh.total_pages:
                    with pytest.raises(ResourceExhausted, match="out of memory"):
                        mh.alloc_pages(n, 0)
                    continue
                start = mh.alloc_pages(n, 0)
                if want >= 0:
                    assert start == want, (n, start, want)
                else:  # grown: the run is the free tail and what was added after it
                    assert int(a.heap_gauges[L.G_ARENA_PAGES]) > used and start == used - tail, (start, used, tail)
                live.append(start)
            assert pagealloc.check(a) == []


def test_a_summary_showing_a_run_no_longer_free_is_rebuilt_and_the_answer_is_exact(machine):
    mh = _emptied(machine)
    a = mh.a
    with mh.lock:
        spans = [mh.alloc_pages(100, 0) for _ in range(20)]  # 2,000 pages: chunks 0-3 partly in use
        for s in spans[::2]:
            mh.free_pages(s)
        want = pagealloc.scan(a, 100, int(a.heap_gauges[L.G_ARENA_PAGES]))
        a.chunk_sum[0] = (CHUNK_PAGES, CHUNK_PAGES, CHUNK_PAGES)  # torn: chunk 0 shown all free
        a.heap_gauges[L.G_SEARCH_PAGE] = 0
        assert pagealloc.check(a) != []
        assert mh.alloc_pages(100, 0) == want
        assert pagealloc.check(a) == []


def test_a_summary_hiding_every_run_does_not_fail_a_span_on_a_full_arena(machine):
    mh = _emptied(machine)
    a = mh.a
    with mh.lock:
        spans = []
        while int(a.heap_gauges[L.G_ARENA_PAGES]) + 64 <= mh.total_pages or pagealloc.scan(
                a, 64, int(a.heap_gauges[L.G_ARENA_PAGES])) >= 0:
            spans.append(mh.alloc_pages(64, 0))
        assert int(a.heap_gauges[L.G_ARENA_PAGES]) + 64 > mh.total_pages  # grown to its end
        hole = spans[len(spans) // 2]
        mh.free_pages(hole)
        a.chunk_sum[:] = 0  # torn: nothing shown free
        assert mh.alloc_pages(64, 0) == hole
        assert pagealloc.check(a) == []


@pytest.mark.parametrize("tear", ["free", "hint", "grow"])
def test_an_index_torn_by_a_killed_core_hides_no_run_from_the_next_span(tear):
    """Each way a core killed under the heap lock leaves the index behind the page map (a review's
    fuzzing found them: each made alloc_pages fail its assertion); the next span that fits only in
    what the index hides gets it, and the index is true again afterwards.

    - free: free_pages killed after its page-map write, before pagealloc.freed (a machine of one
      chunk, grown to its end: no growth can make room);
    - hint: free_pages killed between pagealloc.freed's summary update and its searchAddr write;
    - grow: _grow killed after the arena's new size, before the new pages' summaries."""
    mib = {"free": 4, "hint": 24, "grow": 8}[tear]
    m = Machine.create(MachineConfig(memory_bytes=mib * MiB, cores=1))
    try:
        mh = m.heap(0).mheap
        a = mh.a
        with mh.lock:
            if tear == "free":
                mh.alloc_pages(256, 0)
                second = mh.alloc_pages(256, 0)
                a.span_state[second] = L.SPAN_FREE
                a.page_span[second:second + 256] = -1
                a.heap_gauges[L.G_INUSE_PAGES] -= 256
                n, want = 100, second
            elif tear == "hint":
                mh.alloc_pages(400, 0)
                second = mh.alloc_pages(112, 0)  # chunk 0 full, the arena's end
                hint = int(a.heap_gauges[L.G_SEARCH_PAGE])
                mh.free_pages(second)
                a.heap_gauges[L.G_SEARCH_PAGE] = hint
                n, want = 600, second  # its 112 pages and 488 of the growth
            else:
                mh.alloc_pages(512, 0)
                used = int(a.heap_gauges[L.G_ARENA_PAGES])
                mh.source.commit(mh.base + used * 8192, 512 * 8192)
                a.heap_gauges[L.G_ARENA_PAGES] = used + 512
                n, want = 10, used
            assert pagealloc.check(a) != []
            assert mh.alloc_pages(n, 0) == want
            assert pagealloc.check(a) == []
    finally:
        m.destroy()


def test_a_small_span_scans_the_pages_that_can_hold_it_not_the_free_chunks_after_them(monkeypatch):
    """searchAddr's chunk full but for a 1-page hole, a large free region after it: a 2-page span is
    looked for in the chunk's trailing free pages and the 2 pages from their start (the review's
    case: the window ran to the next non-full chunk, the whole arena, 99,488 pages a span)."""
    m = Machine.create(MachineConfig(memory_bytes=256 * MiB, cores=1))
    try:
        mh = m.heap(0).mheap
        seen: list[int] = []
        real = pagealloc._first_fit
        monkeypatch.setattr(pagealloc, "_first_fit", lambda free, n: (seen.append(free.size), real(free, n))[1])
        with mh.lock:
            mh.free_pages(mh.alloc_pages(30_000, 0))  # the arena grown, all free
            ones = [mh.alloc_pages(1, 0) for _ in range(CHUNK_PAGES)]  # chunk 0 full
            mh.free_pages(ones[10])
            seen.clear()
            spans = [mh.alloc_pages(2, 0) for _ in range(200)]
        assert spans[0] == CHUNK_PAGES and max(seen) <= CHUNK_PAGES, max(seen)
        assert pagealloc.check(mh.a) == []
    finally:
        m.destroy()


def test_at_1_gib_a_span_scans_a_chunk_not_the_arena(monkeypatch):
    """Counts the pages the window scans see (no clock): with the index, a fill and a refill of
    holes look at a few chunks' pages per span; the old search looked at the whole arena each time."""
    m = Machine.create(MachineConfig(memory_bytes=1024 * MiB, cores=1))
    try:
        mh = m.heap(0).mheap
        a = mh.a
        seen: list[int] = []
        real = pagealloc._first_fit
        monkeypatch.setattr(pagealloc, "_first_fit", lambda free, n: (seen.append(free.size), real(free, n))[1])
        with mh.lock:
            spans = [mh.alloc_pages(5, 0) for _ in range(20_000)]  # 100,000 of the 131,072 pages
            for s in spans[::2]:
                mh.free_pages(s)
            seen.clear()
            for _ in range(5_000):
                mh.alloc_pages(5, 0)
        used = int(a.heap_gauges[L.G_ARENA_PAGES])
        assert used >= 100_000 and len(seen) == 5_000
        assert max(seen) <= 2 * CHUNK_PAGES, max(seen)
        assert pagealloc.check(a) == []
    finally:
        m.destroy()
