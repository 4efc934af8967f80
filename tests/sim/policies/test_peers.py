"""Exact miss counts against libCacheSim, the reference cache simulator (1a1a11a/libCacheSim, through
its Python package `libcachesim`, a test-only oracle: GPL, never imported by memsim).

memsim writes a seeded Zipf trace as an oracleGeneral file (sim/trace's write_trace, which computes
each request's next access), libCacheSim reads it back with its own reader and replays it in its C
loop (process_trace); the miss counts must be EQUAL, request for request in total, for LRU, FIFO,
LFU, Clock, SIEVE and Belady's OPT with the defaults, and for S3-FIFO and the two-list policy with
their `libcachesim` presets (libCacheSim's S3FIFO.c and SLRU.c with n-seg=2). A policy whose order,
tie-break, queue sizing or option differs by one step fails it; so does a trace file libCacheSim
reads differently than memsim wrote it. cachetools, the other oracle, is test_policies.py's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memsim.sim.policies.simulate import belady, simulate, zipf_trace
from memsim.sim.trace import TraceChunk, write_trace

lcs = pytest.importorskip("libcachesim", reason="libCacheSim's Python package is the `test` extra's oracle")

SLRU_TWO_SEGMENTS = "n-seg=2"  # SLRU.c's parameter: two segments of capacity/2, the two-list policy's shape


def slru(capacity: int) -> object:
    """libCacheSim's SLRU with two segments: its Python class takes no parameters, its init does."""
    from libcachesim.cache import _create_common_params
    from libcachesim.libcachesim_python import SLRU_init

    params = _create_common_params(capacity, 86400 * 300, 24, False, None)
    return lcs.CacheBase(_cache=SLRU_init(params, SLRU_TWO_SEGMENTS))


# memsim's policy and options -> libCacheSim's cache
PEERS = {
    "lru": ({}, lambda c: lcs.LRU(c)),
    "fifo": ({}, lambda c: lcs.FIFO(c)),
    "lfu": ({}, lambda c: lcs.LFU(c)),
    "clock": ({}, lambda c: lcs.Clock(c)),
    "sieve": ({}, lambda c: lcs.Sieve(c)),
    "s3fifo": ({"preset": "libcachesim"}, lambda c: lcs.S3FIFO(c)),
    "twolist": ({"preset": "libcachesim"}, slru),
}


@pytest.fixture(scope="module")
def zipf_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    trace = zipf_trace(60_000, 6_000, 0.9, seed=42)
    path = tmp_path_factory.mktemp("peers") / "zipf.oracleGeneral"
    assert write_trace(path, [TraceChunk.of(np.asarray(trace, np.int64))], "oracleGeneral") == len(trace)
    return path, trace


def libcachesim_misses(cache: object, path: Path, n: int) -> int:
    reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)
    miss_ratio, _ = cache.process_trace(reader)  # type: ignore[attr-defined]
    return round(miss_ratio * n)


@pytest.mark.parametrize("capacity", [20, 100, 600, 2_000])  # even, and >= 20: see S3FIFO's and SLRU's notes
@pytest.mark.parametrize("name", sorted(PEERS))
def test_miss_counts_equal_libcachesim(zipf_file, name, capacity):
    path, trace = zipf_file
    options, peer = PEERS[name]
    ours = simulate(name, trace, capacity, **options).misses
    assert ours == libcachesim_misses(peer(capacity), path, len(trace)), (name, capacity)


@pytest.mark.parametrize("capacity", [20, 600])
def test_opt_equals_libcachesim_belady_on_the_file_it_read(zipf_file, capacity):
    path, trace = zipf_file
    assert belady(trace, capacity).misses == libcachesim_misses(lcs.Belady(capacity), path, len(trace))


def test_the_defaults_are_other_points_than_libcachesim():
    """The presets are what makes the counts equal: with memsim's defaults (the paper's and Linux's
    choices) S3-FIFO and two-list differ from libCacheSim's, so the test above is not vacuous."""
    trace = zipf_trace(60_000, 6_000, 0.9, seed=42)
    for name in ("s3fifo", "twolist"):
        assert simulate(name, trace, 600).misses != simulate(name, trace, 600, preset="libcachesim").misses
