"""The compiled replay loop (sim/policies/compiled.py) against the Python one, and compiled against
interpreted kernels.

- The compiled loop and Keyed's Python loop (simulate.run/replay: the policy's methods, one call at
  a time) give the same hits, misses and victims, in the same order, for every compiled policy and
  option: both drive the same kernels, so a slot handed out in another order, or a loop that calls
  them differently, fails it.
- NUMBA_DISABLE_JIT=1 (the kernels interpreted as plain Python over NumPy) gives byte-identical
  results in a subprocess: a kernel whose compiled meaning differs from its Python one (integer
  overflow, a NumPy scalar's type) fails it.
- Belady's OPT compiled equals simulate.belady's heap over any keys, on random traces.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.sim.policies import Keyed
from memsim.sim.policies.compiled import belady_compiled, compiled, dense_ids, replay_compiled
from memsim.sim.policies.simulate import belady, make, replay, zipf_trace

ROOT = Path(__file__).resolve().parents[3]

CASES = [("lru", {}), ("fifo", {}), ("lfu", {}), ("clock", {}), ("clock", {"referenced_on_insert": True}),
         ("sieve", {}), ("s3fifo", {}), ("s3fifo", {"preset": "libcachesim"}),
         ("s3fifo", {"move_to_main": 2, "warmup": "main"}),
         ("twolist", {}), ("twolist", {"preset": "libcachesim"})]


def python_victims(name: str, trace: list[int], capacity: int, options: dict[str, object]) -> tuple[int, list[object]]:
    """(misses, victim keys in eviction order) by the Python loop over Keyed."""
    steps = replay(Keyed(make(name, capacity, **options).policy), trace, capacity)
    return sum(not s.hit for s in steps), [s.victim for s in steps if s.victim is not None]


def compiled_victims(name: str, trace: np.ndarray, capacity: int,
                     options: dict[str, object]) -> tuple[int, list[object]]:
    victims = np.full(len(trace), -1, np.int64)
    misses = replay_compiled(name, trace, capacity, victims=victims, **options)[1]
    return misses, victims[victims >= 0].tolist()


@pytest.mark.parametrize(("name", "options"), CASES)
def test_compiled_loop_equals_the_python_loop_victim_for_victim(name, options):
    assert compiled(name)
    trace = zipf_trace(6_000, 800, 0.9, seed=5)
    for capacity in (1, 7, 64, 300):
        ours = compiled_victims(name, np.asarray(trace, np.int64), capacity, options)
        assert ours == python_victims(name, trace, capacity, options), (name, options, capacity)


def test_sparse_ids_are_renumbered_and_replay_alike():
    trace = np.asarray(zipf_trace(3_000, 500, 1.0, seed=2), np.int64)
    sparse = trace * 1_000_003 - (1 << 40)  # negative and far apart: the table cannot index them
    ids, k = dense_ids(sparse)
    assert k == len(np.unique(trace)) and ids.max() == k - 1
    for name, options in CASES:
        assert replay_compiled(name, ids, 50, **options) == replay_compiled(name, dense_ids(trace)[0], 50, **options)


@settings(max_examples=60, deadline=None)
@given(trace=st.lists(st.integers(0, 12), max_size=200), capacity=st.integers(1, 6))
def test_compiled_opt_equals_the_heap_over_keys(trace, capacity):
    keyed = belady([("k", x) for x in trace], capacity)  # tuples: simulate.belady's own loop
    assert belady_compiled(np.asarray(trace, np.int64), capacity) == (keyed.hits, keyed.misses, keyed.evictions)


def digest() -> str:
    """Misses and victims of every case on a Zipf trace, hashed (run compiled and interpreted)."""
    trace = np.asarray(zipf_trace(4_000, 600, 1.0, seed=9), np.int64)
    h = hashlib.sha256()
    for name, options in CASES:
        for capacity in (5, 120):
            misses, victims = compiled_victims(name, trace, capacity, options)
            h.update(f"{name}{sorted(options.items())}{capacity}:{misses}:{victims}".encode())
    h.update(str(belady_compiled(trace, 120)).encode())
    return h.hexdigest()


def test_jit_and_interpreted_kernels_give_identical_misses_and_victims():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", "from tests.sim.policies.test_compiled import digest; print(digest())"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == digest()


def test_a_capacity_far_past_the_footprint_replays_without_sizing_arrays_to_it():
    """A cache that holds every key never evicts: a capacity of 10^12 objects gives the same result as one
    of the footprint, without the policy's arrays sized to 10^12 (a MemoryError before)."""
    ids = np.array([0, 1, 0, 2, 1, 0], np.int64)
    for name in (n for n in ("lru", "fifo", "clock", "sieve", "s3fifo", "twolist", "lfu") if compiled(n)):
        assert replay_compiled(name, ids, 10**12) == replay_compiled(name, ids, 3) == (3, 3, 0), name
