"""`memsim experiment belady --quick`: Belady's anomaly on the machine, the machine equal to the offline
simulator, and the finder's shortest anomaly replayed on the machine."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from memsim.tools.experiments import experiments
from memsim.tools.experiments.base import run_experiment


def test_quick_run_shows_the_anomaly_on_the_machine(tmp_path: Path) -> None:
    exp = experiments()["belady"]
    args = argparse.Namespace(seed=1, quick=True, out=str(tmp_path), no_png=False, replot=None, quiet=True,
                              scheduler=None, workers=2, length=0, pages=0, search=0)
    assert run_experiment(exp, args) == 0
    doc = json.loads((tmp_path / "belady.json").read_text())
    assert [c["claim"] for c in doc["checks"] if not c["held"]] == []
    d = doc["data"]
    classic = d["curves"]["classic"]
    assert classic["machine"]["fifo"][2:4] == [9, 10] and classic["machine"]["lru"][2:4] == [10, 8]
    assert classic["offline"]["opt"][2:4] == [7, 6] and "opt" not in classic["machine"]
    shortest = d["finder"]["shortest"]
    a, b = shortest["frames"]
    assert b == a + 1 and shortest["machine"][1] > shortest["machine"][0]
    assert shortest["offline"][a - 1:b] == shortest["machine"]
    assert (tmp_path / "belady.png").read_bytes()[:4] == b"\x89PNG"
