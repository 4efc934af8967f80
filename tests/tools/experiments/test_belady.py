"""`memsim experiment belady --quick`: Belady's anomaly on the machine, the machine equal to the offline
simulator, and the finder's shortest anomaly replayed on the machine."""

from __future__ import annotations

from pathlib import Path

from tests.tools.experiments.quick import run_quick


def test_quick_run_shows_the_anomaly_on_the_machine(tmp_path: Path) -> None:
    doc = run_quick("belady", tmp_path, length=0, pages=0, search=0)
    d = doc["data"]
    classic = d["curves"]["classic"]
    assert classic["machine"]["fifo"][2:4] == [9, 10] and classic["machine"]["lru"][2:4] == [10, 8]
    assert classic["offline"]["opt"][2:4] == [7, 6] and "opt" not in classic["machine"]
    shortest = d["finder"]["shortest"]
    a, b = shortest["frames"]
    assert b == a + 1 and shortest["machine"][1] > shortest["machine"][0]
    assert shortest["offline"][a - 1:b] == shortest["machine"]
