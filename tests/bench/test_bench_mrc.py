"""bench/bench_mrc.py, small: every method's miss counts agree at every size (the bench refuses to
report otherwise), and the report holds each timing and ratio (speed itself is never asserted)."""

from __future__ import annotations

import json

import pytest

from bench.bench_mrc import main, run


def test_bench_mrc_agrees_with_itself_and_reports_ratios():
    r = run(requests=5000, objects=400, n_sizes=8, rounds=1, peer=False)
    assert len(r["sizes"]) == 8 and len(r["misses"]) == 8
    assert r["memsim_simulator"]["runs"] == 8 and r["speedup_vs_memsim_simulator"] > 0
    assert 0 <= r["memsim_shards"]["mae"] <= 1


def test_bench_mrc_against_libcachesim_writes_json(tmp_path, monkeypatch):
    pytest.importorskip("libcachesim")  # the test/bench-only peer
    out = tmp_path / "mrc.json"
    monkeypatch.setattr("sys.argv", ["bench_mrc.py", "--quick", "--no-own", "--out", str(out)])
    main()
    r = json.loads(out.read_text())
    assert r["libcachesim"]["runs"] == len(r["sizes"]) == 10
    assert r["speedup_vs_libcachesim"] > 0
