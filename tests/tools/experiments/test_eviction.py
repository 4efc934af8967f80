"""`memsim experiment eviction`: how its OPT reads the lru-test's sequence, and `--quick` on live
servers with the qualitative result its checks state."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from memsim.sim.policies.simulate import belady
from memsim.tools.cli import build_parser
from memsim.tools.experiments import experiments
from memsim.tools.experiments.base import run_experiment
from memsim.tools.experiments.eviction import belady_bypass_hits, older_half_share, opt_hit_ratio, versions


def test_versions_make_a_set_a_new_object_and_a_get_the_current_one() -> None:
    ops = [(1, True), (1, False), (2, False), (1, True), (1, False), (1, True), (2, True)]
    assert versions(ops) == [0, 1, 2, 1, 3, 3, 2]


def best_hits(trace: list[int], capacity: int, may_skip: bool) -> int:
    """Every choice tried: the most hits of a cache that stores each miss (evicting any key), or
    with may_skip may also leave a miss out."""
    def go(i: int, cached: frozenset[int]) -> int:
        if i == len(trace):
            return 0
        k = trace[i]
        if k in cached:
            return 1 + go(i + 1, cached)
        options = [cached | {k}] if len(cached) < capacity else [(cached - {v}) | {k} for v in cached]
        if may_skip:
            options.append(cached)
        return max(go(i + 1, c) for c in options)
    return go(0, frozenset())


def best_live_read_hits(ops: list[tuple[int, bool]], capacity: int) -> int:
    """Every choice tried for the live lru-test's cache: each SET stored, a GET's miss never."""
    def go(i: int, cached: frozenset[int]) -> int:
        if i == len(ops):
            return 0
        k, is_read = ops[i]
        if is_read:
            return (k in cached) + go(i + 1, cached)
        if k in cached or len(cached) < capacity:
            return go(i + 1, cached | {k})
        return max(go(i + 1, (cached - {v}) | {k}) for v in cached)
    return go(0, frozenset())


def test_belady_with_bypass_is_the_optimum_and_bounds_the_live_lru_test_cache() -> None:
    rng = random.Random(7)
    for _ in range(300):
        n, keys, cap = rng.randint(4, 11), rng.randint(2, 5), rng.randint(1, 3)
        trace = [rng.randrange(keys) for _ in range(n)]
        assert belady_bypass_hits(trace, cap) == best_hits(trace, cap, may_skip=True), (trace, cap)
        assert belady(trace, cap).hits == best_hits(trace, cap, may_skip=False), (trace, cap)
        ops = [(rng.randrange(keys), rng.random() < 0.5) for _ in range(n)]
        reads = sum(1 for _, r in ops if r)
        if reads:
            assert opt_hit_ratio("lru-test", ops, cap) * reads >= best_live_read_hits(ops, cap) - 1e-9, (ops, cap)


def test_opt_counts_gets() -> None:
    # Two SETs then GETs of both with room for one key: OPT keeps the key read twice.
    ops = [(1, False), (2, False), (2, True), (1, True), (2, True)]
    assert opt_hit_ratio("lru-test", ops, 1) == pytest.approx(2 / 3)
    assert opt_hit_ratio("zipf", [(1, True), (2, True), (1, True)], 1) == 0.0  # cache-aside stores every miss
    assert opt_hit_ratio("zipf", [(1, True), (1, True), (2, True)], 1) == pytest.approx(1 / 3)


def test_older_half_share() -> None:
    assert older_half_share([0, 0, 1, 1]) == 1.0 and older_half_share([1, 0, 1, 0]) == 0.5
    assert older_half_share([1, 1, 1, 1]) == 0.0


@pytest.mark.integration
def test_quick_run_on_live_servers(tmp_path: Path) -> None:
    args = build_parser().parse_args(["experiment", "eviction", "--quick", "--quiet", "--out", str(tmp_path)])
    assert run_experiment(experiments()["eviction"], args) == 0
    doc = json.loads((tmp_path / "eviction.json").read_text())
    data = doc["data"]
    for w in ("lru-test", "zipf"):
        rows = data["hit_ratio"][w]
        assert list(rows) == ["random", "LRU, 3 samples", "LRU, 5 samples", "LRU, 10 samples", "exact LRU",
                              "OPT (offline)"]
        for label, got in rows.items():
            assert [r["capacity"] for r in got] == data["capacities"]
            if label != "OPT (offline)":  # maxmemory held exactly the planned number of keys
                assert all(r["keys_at_end"] == r["capacity"] and r["evicted"] > 0 for r in got), (label, got)
    exact = data["order"]["exact LRU"]
    assert exact == [0] * (len(exact) // 2) + [1] * (len(exact) - len(exact) // 2)  # exactly the older half went
    assert [c["held"] for c in doc["checks"]] == [True] * 5, doc["checks"]
    assert (tmp_path / "eviction.png").read_bytes()[:4] == b"\x89PNG"


def test_sizes_are_fractions() -> None:
    parser = build_parser()
    for bad in ("0.5,2", "0", "a,b"):
        with pytest.raises(SystemExit):
            parser.parse_args(["experiment", "eviction", "--sizes", bad])
    assert parser.parse_args(["experiment", "eviction", "--sizes", "0.4,0.1"]).sizes == [0.1, 0.4]
