"""bench/micro_marking.py, small: the same program with atomic and with incremental marking; the
report holds both runs' Mark-Compacts and the incremental run's steps (speed is never asserted)."""

from __future__ import annotations

from bench.micro_marking import measure


def test_micro_marking_reports_both_modes():
    atomic = measure(False, nodes=2000, iterations=20000, max_old=1 << 20)
    incremental = measure(True, nodes=2000, iterations=20000, max_old=1 << 20)
    assert atomic["mark_compacts"]["n"] >= 1 and atomic["steps"]["n"] == 0
    assert incremental["mark_compacts"]["n"] >= 1 and incremental["steps"]["n"] >= 1
    assert incremental["steps"]["n"] == incremental["steps_counted"]
