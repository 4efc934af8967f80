"""`memsim bench gc`'s report, table and PNG, and `memsim gc`'s rendering, on synthetic lanes and
isolates; and the two commands' flags as the parser reads them."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from memsim.tools import gcplot, gcreport, harness
from memsim.tools.cli import build_parser
from memsim.tools.cli_bench import _load
from memsim.tools.gcreport import LaneResult
from memsim.tools.gcstats import GcRecord, LaneRun
from memsim.tools.loads import QUICK_SCALE, QUICK_SECONDS, QUICK_SEMI_SPACE, GcLoad

MiB = 1 << 20


def lane(i: int, workload: str, extra: dict) -> LaneResult:
    events = [GcRecord(seq=k + 1, kind="Scavenge", reason="allocation failure", start_ms=100.0 + 40 * k, pause_ms=2.0,
                       live_before=(2 + k) * MiB, committed_before=4 * MiB, live_after=(1 + k) * MiB,
                       committed_after=4 * MiB, new_space_size_at_start=MiB, promoted=MiB // 8,
                       new_space_survived=MiB // 4, nodes_copied_in_new=1000, nodes_promoted=200, words_copied=40_000)
              for k in range(20)]
    events.append(GcRecord(seq=21, kind="Mark-Compact", reason="allocation failure", start_ms=950.0, pause_ms=12.5,
                           live_before=22 * MiB, committed_before=24 * MiB, live_after=6 * MiB,
                           committed_after=12 * MiB))
    hist = harness.histogram()
    for us in (900, 1100, 5000):
        hist.record_value(us)
    run = LaneRun(lane=i, workload=workload, t0_ms=50.0, t1_ms=1050.0, used_start=MiB, used_end=8 * MiB,
                  total_start=4 * MiB, total_end=12 * MiB, events=events)
    return LaneResult(run, hist.encode(), messages=300, ops=30_000, workload=extra, counters={"scavenges": 20})


EXTRA = {"gcbench": {"passes": 1, "trees": 500, "stretch_depth": 14, "long_lived_depth": 12, "max_depth": 12,
                     "array_size": 31250},
         "splay": {"runs": 2, "run_ms": [30.0, 40.0], "tree_size": 500},
         "handler": {"requests": 4000, "cached": 40, "cache_entries": 256}}


@pytest.fixture
def report() -> dict:
    load = GcLoad(target="127.0.0.1:1", workload="all", clients=2, seconds=1.0)
    return {"load": vars(load), "own_server": False,
            "workloads": {w: gcreport.assemble(w, [lane(0, w, e), lane(1, w, e)]) for w, e in EXTRA.items()}}


def test_the_report_has_the_figures_the_issue_names(report):
    g = report["workloads"]["gcbench"]
    f = g["figures"]
    assert f["gc_counts"] == {"Scavenge": 40, "Mark-Compact": 2}
    assert f["pauses"]["Scavenge"]["p99_ms"] == 2.0 and f["pauses"]["Mark-Compact"]["max_ms"] == 12.5
    assert f["survival"]["survival_ratio"] == 37.5 and f["survival"]["promotion_ratio"] == 12.5
    assert set(f["mmu"]) == {"10ms", "50ms", "100ms"} and f["mmu"]["10ms"] == 0.0
    assert f["pauses"]["Scavenge"]["objects_per_s"] == 1200 / 0.002
    assert f["allocation_mib_s"] > 0 and g["client"]["latency_us"]["p50"] > 0
    assert len(g["events"]) == 42 and {e["kind"] for e in g["events"]} == {"Scavenge", "Mark-Compact"}
    assert g["heap"][0]["series"][0] == [0.0, MiB, 4 * MiB]
    s = report["workloads"]["splay"]["workload"]
    assert s["runs"] == 4 and s["rms_run_ms"] == round((2 * 30.0**2 + 2 * 40.0**2) ** 0.5 / 2, 3)
    assert report["workloads"]["handler"]["workload"]["requests_per_s"] == 8000.0
    for w in report["workloads"].values():
        w.pop("_runs")
    json.dumps(report)  # JSON-ready


def test_the_table_and_the_png(report, tmp_path):
    png = tmp_path / "gc.png"
    gcplot.write_png(str(png), [(w, r["_runs"]) for w, r in report["workloads"].items()])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    con = Console(record=True, width=140)
    gcreport.print_bench(report, con)
    text = con.export_text()
    for word in ("gc gcbench", "gc splay", "gc handler", "Scavenge", "Mark-Compact", "p99 ms", "GC throughput",
                 "survival / promotion", "SplayLatency", "requests", "allocation", "MMU 10 / 50 / 100 ms"):
        assert word in text, word


def test_memsim_gc_renders_nodes_names():
    data = {"isolates": [{
        "info": {"isolate": 3, "state": "live", "holder": -1, "owner": "ab12", "semi_space_size": MiB,
                 "max_old_space_size": 16 * MiB},
        "memory_usage": {"rss": 5 * MiB, "heapTotal": 4 * MiB, "heapUsed": 3 * MiB, "external": 2048,
                         "arrayBuffers": 2048},
        "heap_statistics": {"total_heap_size": 4 * MiB, "used_heap_size": 3 * MiB, "heap_size_limit": 18 * MiB,
                            "number_of_native_contexts": 0, "does_zap_garbage": 0},
        "heap_space_statistics": [{"space_name": n, "space_size": MiB, "space_used_size": 1000,
                                   "space_available_size": 10, "physical_space_size": MiB}
                                  for n in ("new_space", "old_space", "large_object_space")],
        "counters": {"gc_count.Scavenge": 7, "pause_ms.Scavenge.count": 7, "pause_ms.Scavenge.p50": 1.5,
                     "pause_ms.Scavenge.p99": 3.0, "pause_ms.Scavenge.max": 3.5, "pause_ms.Mark-Compact.count": 1,
                     "pause_ms.Mark-Compact.max": 9.25, "totals": {"bytes_promoted": 123456}, "last_seq": 8},
        "trace": ["[1:0x3ef8fc00]      127 ms: Scavenge 4.1 (4.2) -> 3.5 (5.2) MB, 7.88 / 0.00 ms  "
                  "(average mu = 1.000, current mu = 1.000) allocation failure;"]}]}
    con = Console(record=True, width=160)
    gcreport.render_isolates(data, con)
    text = con.export_text()
    for word in ("isolate 3", "process.memoryUsage()", "heapUsed", "3,145,728", "arrayBuffers",
                 "v8.getHeapStatistics()", "heap_size_limit", "v8.getHeapSpaceStatistics()", "large_object_space",
                 "space_available_size", "GCs by kind", "9.25", "totals.bytes_promoted", "123,456",
                 "Scavenge 4.1 (4.2) -> 3.5 (5.2) MB"):
        assert word in text, word
    con = Console(record=True)
    gcreport.render_isolates({"isolates": []}, con)
    assert "no isolates" in con.export_text()
    con = Console(record=True, width=160)
    gcreport.render_isolates({"isolates": [{"info": {**data["isolates"][0]["info"], "state": "lost"},
                                            "error": "isolate 3 is LOST"}]}, con)
    text = con.export_text()
    assert "isolate 3: lost" in text and "no figures: isolate 3 is LOST" in text


def test_bench_gc_flags_make_the_load():
    args = build_parser().parse_args(["bench", "gc", "--workload", "splay", "--clients", "3", "--semi-space", "2MiB",
                                      "--max-old-space", "32MiB", "--scale", "0.25", "--quick", "--json", "r.json",
                                      "--png", "r.png"])
    load = _load(GcLoad, args, target=args.target or "")
    assert (load.workload, load.clients, load.semi_space, load.max_old_space, load.scale, load.quick) == \
        ("splay", 3, 2 * MiB, 32 * MiB, 0.25, True)
    assert load.target == "" and args.json == "r.json" and args.png == "r.png"
    q = load.effective()
    assert q.seconds == QUICK_SECONDS and q.scale == QUICK_SCALE and q.workloads() == ("splay",)
    assert q.semi_space == QUICK_SEMI_SPACE and q.max_old_space == 32 * MiB
    assert GcLoad(workload="all").workloads() == ("gcbench", "splay", "handler")
    args = build_parser().parse_args(["gc", "--isolate", "2", "--target", "127.0.0.1:7000"])
    assert (args.isolate, args.target, args.json) == (2, "127.0.0.1:7000", False)


@pytest.mark.parametrize("argv", [["bench", "gc", "--workload", "octane"], ["bench", "gc", "--scale", "0"],
                                  ["bench", "gc", "--scale", "2"], ["bench", "gc", "--semi-space", "lots"],
                                  ["bench", "gc", "--clients", "0"], ["gc", "--isolate", "-1"]])
def test_bad_flags_are_one_line_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2 and "--help" in capsys.readouterr().err


def test_the_load_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="workload"):
        GcLoad(workload="x").validate()
    with pytest.raises(ValueError, match="scale"):
        GcLoad(scale=1.5).validate()
