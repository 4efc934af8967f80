"""bench/micro_pageheap.py, small: both searches run on the same spans and the baseline really is the
whole-arena scan (speed is never asserted: the counts of pages each search looks at are)."""

from __future__ import annotations

from bench.micro_pageheap import best, full_scan
from memsim.sim.alloc import pagealloc


def test_micro_pageheap_runs_both_searches(monkeypatch):
    seen: list[int] = []
    real = pagealloc._first_fit
    monkeypatch.setattr(pagealloc, "_first_fit", lambda free, n: (seen.append(free.size), real(free, n))[1])
    indexed = best(64, 5, 1)
    index_max = max(seen)
    seen.clear()
    with full_scan():
        scanned = best(64, 5, 1)
    assert pagealloc.find.__name__ == "find"  # put back
    assert indexed["spans"] == scanned["spans"] > 1000
    assert index_max <= 2 * 512 < max(seen)  # a chunk or two against the arena
