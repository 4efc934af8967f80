"""Garbage collection through the wire, on a real server: a requested GC's record and trace line,
heapUsed falling by what died, an allocation failure's scavenge in the trace, the figures under
V8's and Node's names, GC ops in a batch, `memsim serve --trace-gc`, and the Employee example."""

from __future__ import annotations

import re
import runpy
import time
from pathlib import Path

import pytest

from memsim.client import GcEvent, V8Client
from tests.servers import running_server

pytestmark = pytest.mark.integration  # every test here starts a server

KiB, MiB = 1 << 10, 1 << 20
SMALL = {"semi_space_size": 256 * KiB, "max_old_space_size": 2 * MiB}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# V8's GCTracer::Print: [pid:0xheap] ms: Scavenge 4.1 (4.2) -> 3.5 (5.2) MB, 7.88 / 0.00 ms ... reason;
TRACE_LINE = re.compile(r"\[\d+:0x[0-9a-f]+\] +\d+ ms: (Scavenge|Mark-Compact) [\d.]+ \([\d.]+\) -> [\d.]+ "
                        r"\([\d.]+\) MB, [\d.]+ / [\d.]+ ms .*;")


@pytest.fixture(scope="module")
def server():
    with running_server(cores=2, memory="64MiB", extra=["--vm-memory", "32MiB", "--trace-gc"]) as srv:
        yield srv


def test_a_gc_through_the_wire_frees_what_died(server):
    with V8Client(server.target) as v8:
        iso = v8.create_isolate(**SMALL)
        kept = iso.make_persistent(iso.new_object([1, 2], payload=b"kept"))
        start = iso.memory_usage()["heapUsed"]
        with iso.scope():
            for i in range(100):
                iso.new_object([i], payload=b"x" * 24)  # 8 + 8 + 24 = 40 bytes each, dead when the scope closes
        assert iso.memory_usage()["heapUsed"] == start + 100 * 40
        minor = iso.gc(minor=True)
        assert isinstance(minor, GcEvent) and minor.kind == "Scavenge" and minor.reason == "testing"
        assert minor.freed == 100 * 40 and minor.nodes_died_in_new == 100 and TRACE_LINE.match(minor.line)
        assert iso.memory_usage()["heapUsed"] == start
        with iso.scope():
            for i in range(10):
                iso.new_object([i], payload=b"y" * 24, pretenure=True)  # old space: only a Mark-Compact frees it
        major = iso.gc()
        assert major.kind == "Mark-Compact" and major.seq == minor.seq + 1 and TRACE_LINE.match(major.line)
        assert major.freed == 10 * 40 and iso.memory_usage()["heapUsed"] == start
        assert iso.get_field(kept, 1) == 2 and iso.read_payload(kept) == b"kept"
        trace = iso.trace()
        assert [e.seq for e in trace][-2:] == [minor.seq, major.seq] and trace[-1].line == major.line
        assert iso.trace(after_seq=major.seq) == []
        assert [e.seq for e in iso.trace(after_seq=0, max_records=1)] == [trace[0].seq]


def test_promotion_on_the_second_survival_and_allocation_failures_scavenge(server):
    with V8Client(server.target) as v8:
        iso = v8.create_isolate(**SMALL)
        survivor = iso.make_persistent(iso.new_object([7]))
        iso.gc(minor=True)
        assert iso.describe(survivor).space == "new_space"  # survived once: copied within new space
        iso.gc(minor=True)
        assert iso.describe(survivor).space == "old_space"  # survived twice: promoted
        for _ in range(4):  # 4 x 2,500 x 64 B, each message's objects dead at its end: > a 256 KiB semispace
            b = iso.batch()
            b.open_scope()
            for _ in range(2500):
                b.new_object(payload=b"g" * 48)
            b.close_scope()
            assert len(b.execute().raise_first()) == 2502
        failures = [e for e in iso.trace() if e.reason == "allocation failure"]
        assert failures and all(e.kind == "Scavenge" for e in failures)
        assert iso.get_field(survivor, 0) == 7


def test_figures_in_v8s_and_nodes_names(server):
    with V8Client(server.target) as v8:
        iso = v8.create_isolate(**SMALL)
        ab = iso.new_array_buffer(1000)
        iso.gc(minor=True)
        iso.gc()
        st = iso.stats()
        use = st.memory_usage
        assert set(use) == {"rss", "heapTotal", "heapUsed", "external", "arrayBuffers"}
        assert use["external"] == use["arrayBuffers"] >= 1000 and use["heapTotal"] >= use["heapUsed"] > 0
        assert len(st.heap_statistics) == 14 and st.heap_statistics["used_heap_size"] == use["heapUsed"]
        assert st.heap_statistics["heap_size_limit"] >= 2 * MiB
        assert [s["space_name"] for s in st.spaces][:3] == ["read_only_space", "new_space", "old_space"]
        assert st.counters["gc_count.Scavenge"] == 1 and st.counters["gc_count.Mark-Compact"] == 1
        assert st.counters["pause_ms.Scavenge.max"] >= st.counters["pause_ms.Scavenge.p50"] >= 0
        assert iso.read_backing(ab, 0, 4) == b"\0" * 4


def test_gc_ops_in_a_batch_and_the_trace_gc_log(server):
    with V8Client(server.target) as v8:
        iso = v8.create_isolate(**SMALL)
        b = iso.batch()
        b.new_object([1])
        minor = b.gc(minor=True)
        major = b.gc()
        r = b.execute().raise_first()
        assert r[major] == r[minor] + 1
        lines = {e.seq: e.line for e in iso.trace()}
        deadline = time.monotonic() + 10
        while not all(any(lines[s] in out for out in server.output) for s in (r[minor], r[major])):
            assert time.monotonic() < deadline, "memsim serve --trace-gc did not print the GCs' lines"
            time.sleep(0.1)



def test_the_employee_example(server):
    main = runpy.run_path(str(EXAMPLES / "employee.py"), run_name="example")["main"]
    before, orphaned, after = main(server.target)
    # sales (3 fields) and emp (3 fields): 32 bytes each; "Ann": 8 + one word (objects.py's sizes)
    assert orphaned - before == 32 + 32 + 16 and after == before
