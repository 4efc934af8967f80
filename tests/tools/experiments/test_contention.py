"""`memsim experiment contention --quick`: three real servers (per-core caches, no caches, one global
lock), Larson's load from 1 and 2 client processes, and the qualitative result its checks state."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from memsim.tools.experiments import experiments
from memsim.tools.experiments.base import run_experiment

pytestmark = pytest.mark.integration


def test_caches_take_fewer_locks_and_the_global_lock_is_the_most_contended(tmp_path: Path) -> None:
    exp = experiments()["contention"]
    args = argparse.Namespace(processes=4, seconds=3.0, batch=100, seed=1, quick=True, out=str(tmp_path),
                              no_png=False, replot=None, quiet=True, scheduler=None, workers=None)
    assert run_experiment(exp, args) == 0
    doc = json.loads((tmp_path / "contention.json").read_text())
    data = doc["data"]
    assert data["processes"] == [1, 2] and set(data["designs"]) == {"per-core caches", "no caches", "global lock"}
    caches, bare, glob = (data["designs"][d] for d in ("per-core caches", "no caches", "global lock"))
    # Without a cache every op takes a central lock (a free and an alloc each take one); with caches
    # nearly none does; the one lock is the only allocator lock the global design takes.
    assert all(r["acquisitions_per_op"] >= 0.9 for r in bare) and all(r["acquisitions_per_op"] < 0.1 for r in caches)
    assert {lk["name"] for lk in glob[-1]["locks"]} == {"global"}
    assert all(r["ops"] > 0 for rows in data["designs"].values() for r in rows)
    assert [c["held"] for c in doc["checks"]] == [True, True, True], doc["checks"]
    assert (tmp_path / "contention.png").read_bytes()[:4] == b"\x89PNG"
