"""`memsim experiment thrashing --quick`: client processes against its own server with a small pool and
swap; the knee found in the data where the working sets stop fitting the frames for pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from memsim.tools.experiments.thrashing import find_knee
from tests.tools.experiments.quick import run_quick

pytestmark = pytest.mark.integration


def test_quick_run_finds_the_knee(tmp_path: Path) -> None:
    doc = run_quick("thrashing", tmp_path, processes=0, frames=0, seconds=0.0, policy="twolist")
    d = doc["data"]
    assert d["processes"] == 2 and d["pool_frames"] == 128 and 0 < d["table_frames"] < 16
    fits, thrash = d["points"][0], d["points"][-1]
    assert fits["pswpin"] == 0 and thrash["pswpout"] > 0 and thrash["accesses"] > 0


def test_the_knee_is_where_the_fault_rate_first_passes_one_percent() -> None:
    def point(ws: int, faults: float, rate: float) -> dict:
        return {"working_set": ws, "faults_per_1000": faults, "accesses_per_s": rate}

    pts = [point(50, 0.0, 900), point(100, 2.0, 880), point(150, 300.0, 200), point(200, 700.0, 90)]
    assert find_knee(pts) == {"last_fit": 100, "first_thrash": 150, "fit_per_s": 900, "thrash_per_s": 90}
    assert find_knee(pts[:2]) is None and find_knee(pts[2:]) is None  # never fits, or never thrashes
