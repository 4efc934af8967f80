"""`memsim experiment gc --quick`: GCBench, Splay and the request handler on a real server (one
client process each), the JSON that redraws the figure, and the qualitative result its checks state."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from memsim.tools.cli import build_parser
from memsim.tools.experiments import experiments
from memsim.tools.experiments.base import run_experiment
from memsim.tools.experiments.gc import QUICK_PROBE_MESSAGES, QUICK_SECONDS, lane_runs
from memsim.tools.gcbench import own_server
from memsim.tools.gcheap import PAGE, completes
from memsim.tools.loads import QUICK_SCALE, QUICK_SEMI_SPACE, GcLoad

pytestmark = pytest.mark.integration


def test_the_handler_returns_to_near_zero_and_splay_needs_mark_compact(tmp_path: Path) -> None:
    # The two workloads the checks are about (GCBench runs the same code and adds only seconds).
    # A 1 MiB old space (V8 starts its limit at half of it) puts Splay's first Mark-Compact early in the
    # window, however slowly a busy host runs it.
    args = build_parser().parse_args(["experiment", "gc", "--quick", "--quiet", "--workloads", "splay,handler",
                                      "--max-old-space", "1MiB", "--out", str(tmp_path)])
    assert args.modes == ["serial"]
    assert run_experiment(experiments()["gc"], args) == 0
    doc = json.loads((tmp_path / "gc.json").read_text())
    ws = doc["data"]["modes"]["serial"]
    assert set(ws) == {"splay", "handler"} and doc["data"]["seconds"] == 3.0
    for w in ws.values():
        runs = lane_runs(w)  # the JSON holds each lane's whole window: the figure redraws from it alone
        assert runs and all(run.in_window() for run in runs)
        widths = [p[0] for p in w["mmu_curve"]]
        assert widths == sorted(widths) and all(0 <= p[1] <= 1 for p in w["mmu_curve"])
    assert ws["splay"]["figures"]["gc_counts"]["Mark-Compact"] >= 1
    assert [c["held"] for c in doc["checks"]] == [True] * 4, doc["checks"]
    assert build_parser().parse_args(["experiment", "gc"]).workloads == ["gcbench", "splay", "handler"]
    png = tmp_path / "gc.png"
    png.unlink()
    replot = argparse.Namespace(**{**vars(args), "replot": str(tmp_path / "gc.json")})
    assert run_experiment(experiments()["gc"], replot) == 0 and png.read_bytes()[:4] == b"\x89PNG"


def test_modes_and_workloads_are_checked_names() -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["experiment", "gc", "--modes", "bogus"])
    assert parser.parse_args(["experiment", "gc", "--workloads", "splay,handler"]).workloads == ["splay", "handler"]


def test_heaps_are_multiples_of_a_smallest_heap_that_is_one(tmp_path: Path) -> None:
    # --heaps: the smallest heap is found by bisection on a server of its own, then every mode runs at
    # each multiple of it. The answer is checked against the workload itself: it completes at the
    # smallest heap and runs out of memory one page below (--max-old-space 1 MiB keeps the search short).
    args = build_parser().parse_args(["experiment", "gc", "--quick", "--quiet", "--workloads", "splay",
                                      "--max-old-space", "1MiB", "--heaps", "1,2", "--out", str(tmp_path)])
    assert run_experiment(experiments()["gc"], args) == 0
    data = json.loads((tmp_path / "gc.json").read_text())["data"]
    least = data["min_heap"]["splay"]
    assert least["bytes"] % PAGE == 0 and least["failed_below"] == least["bytes"] - PAGE
    assert data["cells"] == {"serial 1×": {"mode": "serial", "heap_factor": 1.0},
                             "serial 2×": {"mode": "serial", "heap_factor": 2.0}}
    assert [data["modes"][c]["splay"]["max_old_space"] for c in data["cells"]] == [least["bytes"], 2 * least["bytes"]]
    assert (tmp_path / "gc.png").read_bytes()[:4] == b"\x89PNG"
    load = GcLoad(clients=1, scale=data["scale"], semi_space=data["semi_space"], max_old_space=1 << 20)
    with own_server(load) as srv:
        assert completes(srv.target, load, "splay", least["bytes"], QUICK_PROBE_MESSAGES)
        if least["failed_below"]:
            assert not completes(srv.target, load, "splay", least["failed_below"], QUICK_PROBE_MESSAGES)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["experiment", "gc", "--heaps", "0.5"])


def _cycles(tmp_path: Path, mode: str, enough: Callable[[list], bool] = bool) -> tuple[dict, list]:
    """A quick-sized Splay run in `mode`, in a 1 MiB old space (its first marking cycle early in the
    window): its JSON and the Mark-Compacts that ended a marking cycle, once `enough` of them holds.
    The window starts at --quick's 3 s and grows (8 s, 20 s) while it does not: on a host loaded by
    other tests, 3 s of a starved client can end no cycle (met under pytest -n 3)."""
    w: dict = {}
    ended: list = []
    for seconds in (QUICK_SECONDS, 8, 20):
        out = tmp_path / f"{seconds:g}s"
        args = build_parser().parse_args([
            "experiment", "gc", "--quiet", "--modes", mode, "--workloads", "splay", "--max-old-space", "1MiB",
            "--clients", "1", "--seconds", f"{seconds:g}", "--scale", f"{QUICK_SCALE!r}",
            "--semi-space", str(QUICK_SEMI_SPACE), "--out", str(out), "--no-png"])
        assert run_experiment(experiments()["gc"], args) == 0
        w = json.loads((out / "gc.json").read_text())["data"]["modes"][mode]["splay"]
        ended = [e for run in lane_runs(w) for e in run.events if e.kind == "Mark-Compact" and e.steps]
        if ended and enough(ended):
            break
    assert ended, "no Mark-Compact ended a marking cycle"
    return w, ended


def test_the_incremental_mode_marks_in_steps_that_count_as_pauses(tmp_path: Path) -> None:
    w, _ = _cycles(tmp_path, "incremental")
    assert w["figures"]["pauses"]["Marking step"]["count"] >= 1


def test_the_concurrent_mode_has_a_helper_core_mark_the_cycles(tmp_path: Path) -> None:
    _, ended = _cycles(tmp_path, "concurrent", lambda ended: sum(e.helper_objects for e in ended) > 0)
    assert sum(e.helper_objects for e in ended) > 0, "the helper core marked nothing"
    assert all(e.total_cpu_ms >= e.main_cpu_ms for e in ended)


def test_work_span_cells_compare_span_per_collection_with_serial() -> None:
    from memsim.tools.experiments.gc import _serial_label, _work_span_cells

    serial = {"work_words": 4000, "span_words": 4000, "scavenges": 4}
    helpers = {"work_words": 4200, "span_words": 1400, "scavenges": 2}  # fewer, larger scavenges in the window
    assert _work_span_cells(helpers, serial, "scavenges") == ("3.00", "0.70×")  # 700 a scavenge against 1000
    assert _work_span_cells({"scavenges": 3}, serial, "scavenges") == ("-", "-")  # JSON from before the counters
    data = {"cells": {"serial 2×": {"mode": "serial", "heap_factor": 2.0}, "helpers1 2×": {"mode": "helpers1",
                                                                                          "heap_factor": 2.0},
                      "helpers1 3×": {"mode": "helpers1", "heap_factor": 3.0}}}
    assert _serial_label(data, "helpers1 2×") == "serial 2×" and _serial_label(data, "helpers1 3×") is None


def test_a_run_of_both_comparisons_draws_a_picture_for_each() -> None:
    from memsim.tools.experiments.gc import views

    def cell(mode: str) -> dict:
        return {"mode": mode, "heap_factor": 2.0}

    data = {"cells": {f"{m} 2×": cell(m) for m in ("serial", "helpers1", "incremental", "concurrent")},
            "modes": {f"{m} 2×": {"m": m} for m in ("serial", "helpers1", "incremental", "concurrent")}}
    got = dict(views(data))
    assert set(got) == {"parallel", "marking"}
    assert list(got["parallel"]["cells"]) == ["serial 2×", "helpers1 2×"]
    assert list(got["marking"]["modes"]) == ["serial 2×", "incremental 2×", "concurrent 2×"]
    assert got["marking"]["cells"]["concurrent 2×"] == cell("concurrent")
    one = {"cells": {k: v for k, v in data["cells"].items() if "helpers" in k or "serial" in k}, "modes": {}}
    assert views(one) == []  # one comparison: the run's own picture is it
