"""`memsim bench gc` and `memsim gc` as a user runs them, against real servers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from memsim.client import V8Client
from tests.servers import running_server

MEMSIM = [sys.executable, "-m", "memsim.tools"]
MiB = 1 << 20

pytestmark = pytest.mark.integration  # every test here runs the memsim program


def run(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(MEMSIM + args, capture_output=True, text=True, timeout=timeout)


def test_bench_gc_quick_runs_every_workload_on_its_own_server(tmp_path):
    report, png = tmp_path / "gc.json", tmp_path / "gc.png"
    out = run(["bench", "gc", "--quick", "--workload", "all", "--clients", "2", "--no-progress",
               "--json", str(report), "--png", str(png)])
    assert out.returncode == 0, out.stdout + out.stderr
    r = json.loads(report.read_text())
    assert r["own_server"] and r["load"]["seconds"] == 1.5
    assert set(r["workloads"]) == {"gcbench", "splay", "handler"}
    for name, w in r["workloads"].items():
        assert w["client"]["ops"] > 0 and len(w["lanes"]) == 2, name
        assert set(w["figures"]["mmu"]) == {"10ms", "50ms", "100ms"}
    for name in ("gcbench", "handler"):  # both allocate megabytes a second: scavenges in any 1.5 s
        w = r["workloads"][name]
        assert w["events"] and all(e["pause_ms"] > 0 for e in w["events"]), name
        assert w["figures"]["gc_counts"]["Scavenge"] > 0 and w["figures"]["pauses"]["Scavenge"]["p99_ms"] > 0
        assert w["figures"]["allocated_bytes"] > 0 and w["figures"]["survival"]["new_space_scavenged"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for word in ("gc gcbench", "gc splay", "gc handler", "pauses by kind", "MMU 10 / 50 / 100 ms"):
        assert word in out.stdout, word


def test_memsim_gc_prints_each_isolate_as_node_names_it():
    with running_server(cores=2, memory="96MiB", extra=["--vm-memory", "32MiB", "--swap", "0"]) as srv, \
            V8Client(srv.target) as v8:
        iso = v8.create_isolate(semi_space_size=1 * MiB, max_old_space_size=8 * MiB)
        with iso.scope():
            b = iso.batch()
            root = b.new_object([0, 0])
            for _ in range(200):
                b.set_field(root, 0, b.new_object([b.new_string(b"x" * 100)]))
            b.make_persistent(root)  # the root and the last object it points at outlive the scope
            b.execute().raise_first()
            iso.gc(minor=True)
        iso.gc()
        out = run(["gc", "--target", srv.target], timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        for word in (f"isolate {iso.id}", "process.memoryUsage()", "heapUsed", "arrayBuffers",
                     "v8.getHeapStatistics()", "total_heap_size", "heap_size_limit", "v8.getHeapSpaceStatistics()",
                     "new_space", "old_space", "large_object_space", "Scavenge", "Mark-Compact", "ms: "):
            assert word in out.stdout, word
        out = run(["gc", "--target", srv.target, "--isolate", str(iso.id), "--json"], timeout=120)
        assert out.returncode == 0, out.stderr
        (one,) = json.loads(out.stdout)["isolates"]
        assert one["memory_usage"]["heapUsed"] > 0 and len(one["trace"]) == 2
        assert one["trace"][0].split("ms: ")[1].startswith("Scavenge")
        out = run(["gc", "--target", srv.target, "--isolate", "15"], timeout=120)
        assert out.returncode == 1 and "no isolate 15" in out.stderr
        iso.memory_usage()  # `memsim gc` looked at the isolate and left it alone


def test_memsim_gc_on_a_dead_port_is_a_clear_error():
    out = run(["gc", "--target", "127.0.0.1:1", "--timeout", "2"], timeout=60)
    assert out.returncode == 1 and "UNAVAILABLE" in out.stderr and "--target" in out.stderr
