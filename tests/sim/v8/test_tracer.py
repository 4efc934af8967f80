"""The GC tracer (sim/v8/tracer.py): V8's --trace-gc / --trace-gc-nvp lines rebuilt from the inputs of
real node 20 lines, mutator utilisation and survival statistics as V8 computes them, the shared trace
ring (seq order, wrap-around, bounds) and the pause histogram against numpy within its stated bound."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from memsim.sim.errors import FailedPrecondition, InvalidArgument
from memsim.sim.machine.shm import SharedRegion, new_token, segment_name
from memsim.sim.v8.gc_work import GcWork
from memsim.sim.v8.tracer import (
    HIST_BUCKETS,
    MAX_SPEED,
    MB,
    RING_COLS,
    GcEvent,
    GcTracer,
    TracerArrays,
    hist_percentile,
    pause_bucket,
    trace_line,
    trace_nvp,
    tracer_specs,
)

RING = 8
# node 20 (V8 11.3) with --trace-gc, as quoted from a real run.
NODE_SCAVENGE = ("[9850:0x3ef8fc00]      127 ms: Scavenge 4.1 (4.2) -> 3.5 (5.2) MB, 7.88 / 0.00 ms  "
                 "(average mu = 1.000, current mu = 1.000) allocation failure;")
NODE_MARK_COMPACT = ("[9850:0x3ef8fc00]      359 ms: Mark-Compact 16.2 (45.2) -> 12.8 (47.3) MB, 23.64 / 0.00 ms  "
                     "(+ 2.2 ms in 29 steps since start of marking, biggest step 0.1 ms, walltime since start of "
                     "marking 33 ms) (average mu = 1.000, current mu = 1.000) finalize incremental marking via "
                     "stack guard; GC in old space requested")


@pytest.fixture
def arrays():
    region = SharedRegion.create(segment_name(new_token(), "tracertest"), tracer_specs(3, ring=RING))
    try:
        yield TracerArrays.from_region(region.arrays)
    finally:
        region.close()
        region.unlink()


def mb(x: float) -> int:
    return round(x * MB)


def test_the_trace_line_is_node_20s_scavenge_line():
    ev = GcEvent(pid=9850, heap_base=0x3EF8FC00, end_ms=127.0, live_before=mb(4.1), committed_before=mb(4.2),
               live_after=mb(3.5), committed_after=mb(5.2), pause_ms=7.88, reason="allocation failure")
    assert trace_line(ev) == NODE_SCAVENGE


def test_the_trace_line_is_node_20s_mark_compact_line_with_incremental_marking():
    ev = GcEvent(kind="Mark-Compact", pid=9850, heap_base=0x3EF8FC00, end_ms=359.0, live_before=mb(16.2),
               committed_before=mb(45.2), live_after=mb(12.8), committed_after=mb(47.3), pause_ms=23.64,
               incremental_ms=2.2, incremental_steps=29, incremental_longest_ms=0.1, incremental_walltime_ms=33.0,
               reason="finalize incremental marking via stack guard", collector_reason="GC in old space requested")
    assert trace_line(ev) == NODE_MARK_COMPACT


def test_the_tracer_writes_node_20s_lines_for_equal_inputs(arrays):
    t = GcTracer(arrays, 0)
    t.reset(heap_base=0x3EF8FC00)
    t.start("Scavenge", "allocation failure", mb(4.1), mb(4.2), now=127 - 7.88, new_space_size=mb(1))
    ev = t.end({"promoted": 0, "new_space_survived": 1000}, mb(3.5), mb(5.2), now=127.0)
    assert ev.line == NODE_SCAVENGE.replace("[9850:", f"[{os.getpid()}:")
    # The first mark-compact only records its end time (node 20's RecordMutatorUtilization): mu stays 1.
    t.start("Mark-Compact", "finalize incremental marking via stack guard", mb(16.2), mb(45.2), now=359 - 23.64,
            collector_reason="GC in old space requested")
    ev = t.end({}, mb(12.8), mb(47.3), now=359.0)
    expected = NODE_MARK_COMPACT.replace("[9850:", f"[{os.getpid()}:")
    expected = expected.replace(" (+ 2.2 ms in 29 steps since start of marking, biggest step 0.1 ms, walltime since "
                                "start of marking 33 ms)", "")
    assert ev.line == expected
    assert ev.seq == 2 and [e.line for e in t.read()] == [NODE_SCAVENGE.replace("[9850:", f"[{os.getpid()}:"),
                                                          expected]


def test_nvp_line_names_and_formats():
    ev = GcEvent(pid=7, heap_base=0x10, end_ms=12.5, pause_ms=1.26, mutator_ms=10.04, scavenge_ms=1.234,
               scavenge_roots_ms=0.1, allocated=1048576, promoted=2048, new_space_survived=4096,
               nodes_died_in_new=90, nodes_copied_in_new=8, nodes_promoted=2, promotion_ratio=0.19531,
               average_survival_ratio=0.5859, promotion_rate=50.0, scavenge_throughput=832208.5,
               work_words=1536, span_words=900, serial_words=300)
    assert trace_nvp(ev) == (
        "[7:0x10]       12 ms: pause=1.3 mutator=10.0 gc=s scavenge=1.23 scavenge.roots=0.10 scavenge.parallel=0.00 "
        "mark=0.0 evacuate=0.0 sweep=0.0 allocated=1048576 promoted=2048 new_space_survived=4096 nodes_died_in_new=90 "
        "nodes_copied_in_new=8 nodes_promoted=2 promotion_ratio=0.2% average_survival_ratio=0.6% "
        "promotion_rate=50.0% scavenge_throughput=832208 compaction_speed=0 work=1536 span=900 serial=300")
    assert " gc=mc " in trace_nvp(GcEvent(kind="Mark-Compact"))
    assert trace_line(GcEvent()).startswith("[0:(nil)]")  # glibc's %p of a null pointer


def test_mutator_utilisation_follows_record_mutator_utilization(arrays):
    t = GcTracer(arrays, 1)
    mcs = [(100.0, 10.0), (300.0, 20.0), (400.0, 50.0), (1000.0, 5.0)]  # (end, pause) of four mark-compacts
    got = []
    for end, pause in mcs:
        t.start("Scavenge", "allocation failure", 1000, 2000, now=end - pause - 30, new_space_size=500)
        t.end({}, 900, 2000, now=end - pause - 29)  # scavenges never change mu
        t.start("Mark-Compact", "testing", 1000, 2000, now=end - pause)
        ev = t.end({}, 800, 2000, now=end)
        got.append((ev.average_mu, ev.current_mu))
    # By hand, V8's rule: intervals 200 (mc 20), 100 (mc 50), 600 (mc 5); averages (old + new) / 2.
    avg_mc, avg_mut = 20.0, 180.0
    exp = [(1.0, 1.0), (avg_mut / (avg_mc + avg_mut), 180 / 200)]
    avg_mc, avg_mut = (avg_mc + 50) / 2, (avg_mut + 50) / 2
    exp.append((avg_mut / (avg_mc + avg_mut), 50 / 100))
    avg_mc, avg_mut = (avg_mc + 5) / 2, (avg_mut + 595) / 2
    exp.append((avg_mut / (avg_mc + avg_mut), 595 / 600))
    assert [x for pair in got for x in pair] == pytest.approx([x for pair in exp for x in pair])
    assert t.counters()["average_mu"] == pytest.approx(exp[-1][0])


def test_survival_statistics_follow_update_survival_statistics(arrays):
    t = GcTracer(arrays, 0)
    ratios = []
    survived_before = 0
    rng = np.random.default_rng(3)
    for i in range(14):
        young = int(rng.integers(1000, 100_000))
        promoted, survived = int(young * rng.random() * 0.3), int(young * rng.random() * 0.3)
        t.start("Scavenge", "allocation failure", 10 * young, 20 * young, now=10.0 * i, new_space_size=young)
        ev = t.end({"promoted": promoted, "new_space_survived": survived}, 10 * young, 20 * young, now=10.0 * i + 1)
        assert ev.promotion_ratio == pytest.approx(promoted / young * 100)
        assert ev.new_space_survive_rate == pytest.approx(survived / young * 100)
        assert ev.promotion_rate == pytest.approx(promoted / survived_before * 100 if survived_before else 0.0)
        ratios.append(ev.promotion_ratio + ev.new_space_survive_rate)
        assert ev.average_survival_ratio == pytest.approx(np.mean(ratios[-10:]))  # V8's RingBuffer of 10
        survived_before = survived
    # An empty new space at the start: V8 returns early, the ratios keep their values.
    t.start("Mark-Compact", "testing", 100, 200, now=1000.0, new_space_size=0)
    ev = t.end({"promoted": 5}, 100, 200, now=1001.0)
    assert ev.promotion_ratio == pytest.approx(ratios[-1] - ev.new_space_survive_rate)
    assert ev.average_survival_ratio == pytest.approx(np.mean(ratios[-10:]))


def test_allocated_mutator_and_speeds(arrays):
    t = GcTracer(arrays, 0)
    t.start("Scavenge", "allocation failure", 5000, 8000, now=50.0, new_space_size=4000)
    ev = t.end({"new_space_survived": 400}, 1400, 8000, now=52.0)
    assert (ev.allocated, ev.mutator_ms, ev.scavenge_throughput) == (5000, 50.0, 2000.0)
    t.start("Scavenge", "allocation failure", 9400, 8000, now=60.0, new_space_size=8000)
    ev = t.end({}, 1400, 8000, now=62.0)
    assert ev.allocated == 8000 and ev.mutator_ms == 8.0
    assert ev.scavenge_throughput == pytest.approx(12000 / 4)  # sum of bytes over sum of ms, last 10
    sp = t.speeds()
    assert sp.allocation == pytest.approx(13000 / 58) and sp.mark_compact == 0.0
    t.start("Mark-Compact", "testing", 2000, 8000, now=70.0)
    t.add_phase("evacuate", 0.0)
    ev = t.end({"compacted": 10, "allocated": 7}, 1000, 8000, now=70.0)  # zero time: V8's maximum speed
    assert ev.allocated == 7 and ev.compaction_speed == MAX_SPEED and t.speeds().mark_compact == MAX_SPEED


def test_phases_accumulate(arrays):
    t = GcTracer(arrays, 0)
    t.start("Mark-Compact", "testing", 1, 1, now=0.0)
    t.add_phase("mark", 1.5)
    t.add_phase("mark", 2.0)
    with t.phase("sweep"):
        sum(range(10000))
    ev = t.end({}, 1, 1, now=5.0)
    assert ev.mark_ms == 3.5 and ev.sweep_ms > 0 and ev.evacuate_ms == 0
    assert "mark=3.5 evacuate=0.0" in ev.nvp


def test_ring_wraps_and_keeps_seq_order(arrays):
    t = GcTracer(arrays, 2)
    for i in range(1, 21):
        t.start("Scavenge" if i % 3 else "Mark-Compact", "testing", i, 2 * i, now=float(i))
        t.end({"promoted": i}, i, 2 * i, now=i + 0.5)
    got = t.read(0, RING)
    assert [e.seq for e in got] == list(range(13, 21))  # the ring holds the last 8
    assert all(e.promoted == e.seq and e.start_ms == e.seq for e in got)
    assert [e.seq for e in t.read(14, 3)] == [15, 16, 17]
    assert [e.seq for e in t.read(18)] == [19, 20] and t.read(20) == []
    assert got[-1].kind == "Scavenge" and t.read(17, 1)[0].kind == "Mark-Compact"
    with pytest.raises(InvalidArgument, match=r"1\.\.8"):
        t.read(0, RING + 1)
    with pytest.raises(InvalidArgument):
        t.read(0, 0)
    with pytest.raises(InvalidArgument):
        t.read(-1)
    assert GcTracer(arrays, 1).read() == []  # another isolate's rows are untouched


def test_any_core_continues_the_event_from_shared_arrays(arrays):
    """No Python state survives between calls: a fresh view (another core) ends what one started."""
    GcTracer(arrays, 0).start("Scavenge", "allocation failure", 10, 20, now=1.0, new_space_size=5)
    GcTracer(arrays, 0).add_phase("scavenge", 0.25)
    ev = GcTracer(arrays, 0).end({"new_space_survived": 3}, 7, 20, now=2.0)
    assert (ev.seq, ev.scavenge_ms, ev.new_space_survived, ev.live_before) == (1, 0.25, 3, 10)
    with pytest.raises(FailedPrecondition):
        GcTracer(arrays, 0).end({}, 1, 1, now=3.0)


def test_end_takes_the_collectors_record(arrays):
    """The heap hands end() its GcWork: the counters of the tracer's names, its phase times and its new-space
    size at the start count; the record's other fields (objects marked, pages released ...) do not."""
    t = GcTracer(arrays, 0)
    t.start("Scavenge", "allocation failure", 5000, 9000, now=10.0)
    work = GcWork(promoted=300, new_space_survived=700, nodes_copied_in_new=7, nodes_promoted=3, nodes_died_in_new=90,
                  new_space_size_at_start=4000, words_scanned=250, objects_marked=11, pages_released=2,
                  phase_ms={"scavenge": 1.25, "scavenge.roots": 0.25, "total": 1.5})
    ev = t.end(work, 4000, 9000, now=11.5)
    assert (ev.promoted, ev.new_space_survived, ev.nodes_died_in_new, ev.words_scanned) == (300, 700, 90, 250)
    assert (ev.scavenge_ms, ev.scavenge_roots_ms, ev.new_space_size_at_start) == (1.25, 0.25, 4000)
    assert ev.promotion_ratio == pytest.approx(7.5) and ev.new_space_survive_rate == pytest.approx(17.5)
    assert "scavenge=1.25 scavenge.roots=0.25" in ev.nvp and "nodes_died_in_new=90" in ev.nvp


def test_errors(arrays):
    t = GcTracer(arrays, 0)
    with pytest.raises(FailedPrecondition):
        t.add_phase("mark", 1.0)
    for bad in [dict(kind="Full"), dict(reason="because"), dict(live=-1), dict(now=float("nan"))]:
        args = {"kind": "Scavenge", "reason": "testing", "live": 1, "committed": 1, "now": 1.0, **bad}
        with pytest.raises(InvalidArgument):
            t.start(**args)
    t.start("Scavenge", "testing", 1, 1, now=5.0)
    with pytest.raises(InvalidArgument, match="unknown GC counters"):
        t.end({"bogus": 1}, 1, 1, now=6.0)
    with pytest.raises(InvalidArgument):
        t.end({"promoted": -1}, 1, 1, now=6.0)
    with pytest.raises(InvalidArgument):
        t.end({}, 1, 1, now=4.0)
    with pytest.raises(InvalidArgument):
        t.add_phase("compact", 1.0)
    t.end({}, 1, 1, now=6.0)
    with pytest.raises(InvalidArgument, match="before the previous GC"):
        t.start("Scavenge", "testing", 1, 1, now=5.5)
    with pytest.raises(InvalidArgument):
        GcTracer(arrays, 3)
    with pytest.raises(InvalidArgument):
        t.pause_percentile("Scavenge", 0)


def test_counters_and_reset(arrays):
    t = GcTracer(arrays, 1)
    pauses = {"Scavenge": [0.5, 1.5, 0.25], "Mark-Compact": [12.0, 30.0]}
    now = 0.0
    for kind, ps in pauses.items():
        for p in ps:
            t.start(kind, "testing", 100, 200, now=now, new_space_size=50)
            t.end({"allocated": 10, "promoted": 3, "new_space_survived": 4, "words_scanned": 7,
                   "barrier_slow_paths": 1}, 90, 200, now=now + p)
            now += 100
    c = t.counters()
    assert c["gc_count"] == {"Scavenge": 3, "Mark-Compact": 2} and c["last_seq"] == 5
    assert c["pause_ms"]["Mark-Compact"]["max"] == 30.0 and c["pause_ms"]["Scavenge"]["total_ms"] == 2.25
    assert c["totals"]["allocated"] == 50 and c["totals"]["copied"] == 20 and c["totals"]["promoted"] == 15
    assert c["totals"]["words_scanned"] == 35 and c["totals"]["barrier_slow_paths"] == 5
    bound = 2 ** (1 / 8) - 1
    assert abs(c["pause_ms"]["Scavenge"]["p50"] / 0.5 - 1) <= bound
    assert abs(c["pause_ms"]["Scavenge"]["p99"] / 1.5 - 1) <= bound
    t.reset(heap_base=0x1000)
    c = t.counters()
    assert c["gc_count"] == {"Scavenge": 0, "Mark-Compact": 0} and t.read() == []
    assert c["pause_ms"]["Scavenge"]["p50"] == 0.0 and c["current_mu"] == 1.0
    t.start("Scavenge", "testing", 1, 1, now=0.0)
    assert t.end({}, 1, 1, now=1.0).line.startswith(f"[{os.getpid()}:0x1000]")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histogram_percentiles_match_numpy_within_the_bound(seed):
    rng = np.random.default_rng(seed)
    pauses = np.exp(rng.uniform(math.log(0.01), math.log(20_000.0), 20_000))  # 10 us .. 20 s, log-uniform
    pauses = np.concatenate([pauses, rng.lognormal(1.0, 0.5, 5_000)])
    hist = np.zeros(HIST_BUCKETS, dtype=np.int64)
    np.add.at(hist, [pause_bucket(float(p)) for p in pauses], 1)
    bound = 2 ** (1 / 8) - 1
    for q in (1, 10, 50, 90, 99, 99.9, 100):
        true = float(np.percentile(pauses, q, method="inverted_cdf"))
        est = hist_percentile(hist, q, float(pauses.max()))
        assert abs(est / true - 1) <= bound + 1e-12, (q, true, est)


def test_histogram_edges():
    assert pause_bucket(0.0) == 0 and pause_bucket(0.0099) == 0 and pause_bucket(0.01) == 0
    assert pause_bucket(0.02) == 4 and pause_bucket(1e9) == HIST_BUCKETS - 1
    hist = np.zeros(HIST_BUCKETS, dtype=np.int64)
    hist[HIST_BUCKETS - 1] = 1
    assert hist_percentile(hist, 50, 5e6) == 5e6  # beyond the last bound: the exact max


def test_specs_size_for_sixteen_isolates():
    specs = tracer_specs(16)
    assert {s.name for s in specs} == {"tr_ring", "tr_cur", "tr_state", "iso_ctr"}
    assert specs[0].shape == (16, 128, len(RING_COLS))
    assert SharedRegion.size_of(specs) < 1 << 20
