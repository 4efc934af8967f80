"""The `memsim` command as a user runs it: demo, sizeclasses, stats, bench alloc."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.servers import running_server

MEMSIM = [sys.executable, "-m", "memsim.tools"]


def run(args: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(MEMSIM + args, capture_output=True, text=True, timeout=timeout)


pytestmark = pytest.mark.integration  # every test here runs the memsim program


def test_demo_runs_and_leaves_nothing_behind():
    out = run(["demo", "--cores", "2", "--memory", "16MiB", "--clients", "2", "--seconds", "1"])
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "hello, machine" in text
    assert "FAILED_PRECONDITION" in text and "OUT_OF_RANGE" in text and "INVALID_ARGUMENT" in text
    assert "HeapAlloc" in text and "mcentral/" in text
    assert "calculateBonus() -> 770" in text and "allocation failure;" in text and "Mark-Compact" in text
    assert "left behind: none" in text


def test_sizeclasses_prints_go_table():
    out = run(["sizeclasses"])
    assert out.returncode == 0
    rows = [ln.split() for ln in out.stdout.splitlines()]
    lines = [ln for ln, r in zip(out.stdout.splitlines(), rows, strict=True) if len(r) == 7 and r[0].isdigit()]
    assert len(lines) == 67
    assert lines[-1].split()[:4] == ["67", "32768", "32768", "1"]
    assert "68 classes" in out.stdout and "5.19%" in out.stdout


def test_stats_and_bench_alloc_against_a_server(tmp_path):
    with running_server(cores=2, memory="16MiB") as srv:
        report = tmp_path / "bench.json"
        out = run(["bench", "alloc", "--target", srv.target, "-p", "2", "-t", "1.5", "--pin", "--no-progress",
                   "--json", str(report)])
        assert out.returncode == 0, out.stdout + out.stderr
        r = json.loads(report.read_text())
        assert r["ops"] > 0 and r["errors"] == 0 and r["ops_per_s"] > 0
        assert set(r["latency_us"]) >= {"p50", "p99", "p99.9"}
        assert r["central_lock_acquisitions_per_op"] < 0.1  # batching through the caches
        assert 0.9 < r["mcache_hit_rate"] <= 1.0 and sum(r["per_core_mcache_hits"]) == r["mcache_hits"]
        assert r["heap_after"]["HeapObjects"] <= 2  # the load freed what it allocated (tiny blocks aside)
        assert "ops/s" in out.stdout and "busiest locks" in out.stdout

        unary = run(["bench", "alloc", "--target", srv.target, "-p", "1", "-t", "1", "--batch", "1",
                     "--no-progress", "--json", str(report)])
        assert unary.returncode == 0, unary.stdout + unary.stderr
        assert json.loads(report.read_text())["latency_us"]["per"] == "call"

        st = run(["stats", "--target", srv.target, "--check"])
        assert st.returncode == 0, st.stdout + st.stderr
        assert "HeapAlloc" in st.stdout and "locks" in st.stdout and "heap check: ok" in st.stdout
        js = json.loads(run(["stats", "--target", srv.target, "--json"]).stdout)
        assert js["memstats"]["Mallocs"] >= r["ops"] // 2
        assert js["machine"]["cores"] == 2


def test_stats_on_a_dead_port_is_a_clear_error():
    out = run(["stats", "--target", "127.0.0.1:1", "--timeout", "2"])
    assert out.returncode == 1
    assert "UNAVAILABLE" in out.stderr
