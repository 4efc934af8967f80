"""The GC bench's figures (tools/gcstats.py) on synthetic GC events whose answers are known."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.sim.v8.tracer import GcEvent as SimGcEvent
from memsim.tools import gcstats
from memsim.tools.gcstats import GcRecord, LaneRun, by_kind, lane_mmu


def scav(seq: int, start: float, pause: float, **kw) -> GcRecord:
    return GcRecord(seq=seq, kind="Scavenge", reason="allocation failure", start_ms=start, pause_ms=pause, **kw)


def mc(seq: int, start: float, pause: float, **kw) -> GcRecord:
    return GcRecord(seq=seq, kind="Mark-Compact", reason="testing", start_ms=start, pause_ms=pause, **kw)


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(100, 0, -1)]
    assert gcstats.percentile(values, 50) == 50
    assert gcstats.percentile(values, 95) == 95
    assert gcstats.percentile(values, 99) == 99
    assert gcstats.percentile(values, 100) == 100
    assert gcstats.percentile([7.0], 99) == 7.0
    assert gcstats.percentile([], 50) == 0.0
    f = gcstats.pause_figures([1.0, 2.0, 3.0, 10.0])
    assert f == {"count": 4, "total_ms": 16.0, "mean_ms": 4.0, "p50_ms": 2.0, "p95_ms": 10.0, "p99_ms": 10.0,
                 "max_ms": 10.0}


def test_mmu_of_known_timelines():
    assert gcstats.mmu([], 0, 100, 10) == 1.0
    one = [(40.0, 5.0)]
    assert gcstats.mmu(one, 0, 100, 10) == 0.5
    assert gcstats.mmu(one, 0, 100, 50) == 0.9
    assert gcstats.mmu(one, 0, 100, 100) == 0.95
    assert gcstats.mmu(one, 0, 100, 4) == 0.0  # a window inside the pause
    two = [(10.0, 3.0), (15.0, 3.0)]  # [10, 20] holds both: 6 ms of GC
    assert math.isclose(gcstats.mmu(two, 0, 100, 10), 0.4)
    assert gcstats.mmu(two, 0, 5, 10) is None  # the run is shorter than one window
    assert math.isclose(gcstats.mmu([(-5.0, 10.0)], 0, 100, 10), 0.5)  # clipped to the run


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(1, 20)), max_size=12), st.integers(1, 120))
def test_mmu_matches_brute_force_over_every_window(raw, width):
    """With integer pause boundaries the worst window starts at an integer: try them all."""
    t0, t1 = 0, 220
    pauses = [(float(s), float(d)) for s, d in raw]
    busy = [False] * (t1 - t0)
    for s, d in raw:
        for t in range(s, min(s + d, t1)):
            busy[t] = True
    want = min(1 - sum(busy[t:t + width]) / width for t in range(0, t1 - width + 1))
    assert math.isclose(gcstats.mmu(pauses, t0, t1, width), want, abs_tol=1e-9)


def test_by_kind_and_throughput():
    rs = [scav(1, 0, 2.0, nodes_copied_in_new=300, nodes_promoted=100, words_copied=1000),
          scav(2, 10, 2.0, nodes_copied_in_new=100, words_copied=500), mc(3, 20, 6.0, words_copied=250)]
    k = gcstats.by_kind(rs)
    assert list(k) == ["Scavenge", "Mark-Compact", "all"]
    assert k["Scavenge"]["count"] == 2 and k["Scavenge"]["max_ms"] == 2.0
    assert k["Scavenge"]["objects_per_s"] == 500 / 0.004
    assert k["Scavenge"]["bytes_per_s"] == 1500 * 8 / 0.004
    assert k["all"]["count"] == 3 and k["all"]["bytes_copied"] == 1750 * 8 and k["all"]["total_ms"] == 10.0
    assert k["Mark-Compact"]["objects_per_s"] == 0.0


def test_survival_and_promotion_ratios_follow_v8():
    rs = [scav(1, 0, 1, new_space_size_at_start=1000, new_space_survived=200, promoted=100, nodes_died_in_new=9),
          scav(2, 5, 1, new_space_size_at_start=1000, new_space_survived=100, promoted=0), mc(3, 9, 1, promoted=77)]
    s = gcstats.survival(rs)
    assert s["survival_ratio"] == 20.0 and s["promotion_ratio"] == 5.0
    assert s["promoted"] == 100 and s["new_space_survived"] == 300 and s["nodes_died_in_new"] == 9
    assert gcstats.survival([])["survival_ratio"] == 0.0


def test_allocation_is_growth_plus_what_gcs_reclaimed():
    run = LaneRun(lane=0, workload="x", t0_ms=100, t1_ms=1100, used_start=100, used_end=200,
                  events=[scav(1, 50, 1, live_before=999, live_after=1),  # before the window: not counted
                          scav(2, 500, 1, live_before=300, live_after=120)])
    assert gcstats.allocated_in_window(run) == 100 + 180
    assert run.seconds == 1.0 and [e.seq for e in run.in_window()] == [2]


def test_heap_series_is_the_sawtooth():
    run = LaneRun(lane=0, workload="x", t0_ms=1000, t1_ms=3000, used_start=10, used_end=50, total_start=100,
                  total_end=200, events=[scav(1, 1500, 10, live_before=90, committed_before=100, live_after=20,
                                              committed_after=150)])
    assert gcstats.heap_series(run) == [(0.0, 10, 100), (0.5, 90, 100), (0.51, 20, 150), (2.0, 50, 200)]


def test_summarise_one_workload():
    a = LaneRun(lane=0, workload="w", t0_ms=0, t1_ms=1000, used_start=0, used_end=0,
                events=[scav(1, 100, 5, live_before=1 << 20, live_after=0, new_space_size_at_start=1 << 20,
                             promoted=1 << 18, words_copied=100), mc(2, 600, 20)])
    b = LaneRun(lane=1, workload="w", t0_ms=50, t1_ms=1050, used_start=0, used_end=1 << 20, lost_events=1)
    f = gcstats.summarise([a, b])
    assert f["lanes"] == 2 and f["seconds"] == 1.0
    assert f["gc_counts"] == {"Scavenge": 1, "Mark-Compact": 1}
    assert f["allocated_bytes"] == 2 << 20 and f["allocation_mib_s"] == 2.0
    assert f["gc_time_share"] == 25 / 2000
    assert f["survival"]["promotion_ratio"] == 25.0
    assert f["mmu"] == {"10ms": 0.0, "50ms": 0.6, "100ms": 0.8}  # lane a's, the worse
    assert f["work"]["words_copied"] == 100 and f["lost_events"] == 1
    assert f["pauses"]["all"]["max_ms"] == 20


def test_rms_is_octanes_splay_score():
    assert gcstats.rms([3.0, 4.0]) == math.sqrt(12.5)
    assert gcstats.rms([]) == 0.0


def test_a_record_reads_the_simulators_gc_event():
    """GcRecord.of takes any event with the tracer's field names: the simulator's GcEvent here (the
    client's GcEvent has the same names: v8.proto's)."""
    e = SimGcEvent(seq=4, kind="Mark-Compact", reason="testing", start_ms=12.5, pause_ms=3.25, live_before=900,
                   live_after=300, promoted=7, nodes_promoted=2, words_copied=11, barrier_slow_paths=5)
    r = GcRecord.of(e)
    assert (r.seq, r.kind, r.reason, r.start_ms, r.pause_ms, r.end_ms) == (4, "Mark-Compact", "testing", 12.5, 3.25,
                                                                           15.75)
    assert (r.live_before, r.live_after, r.promoted, r.nodes_promoted, r.words_copied, r.barrier_slow_paths) == \
        (900, 300, 7, 2, 11, 5)


def test_incremental_marking_steps_are_pauses_of_their_own_and_count_in_the_mmu():
    mc = GcRecord(seq=1, kind="Mark-Compact", reason="finalize incremental marking via stack guard", start_ms=80.0,
                  pause_ms=2.0, steps=((10.0, 5.0), (40.0, 1.0)))
    run = LaneRun(lane=0, workload="splay", t0_ms=0.0, t1_ms=100.0, used_start=0, used_end=0, events=[mc])
    assert lane_mmu(run, (10,)) == {"10ms": 0.5}  # the 5 ms step, not the 2 ms pause, is the worst window
    figures = by_kind([mc])
    assert figures["Marking step"]["count"] == 2 and figures["Marking step"]["max_ms"] == 5.0
    # "all" holds every pause of the main thread, the steps too: a mode that marks in steps is compared
    # with one that marks in the pause by the same pauses
    assert figures["all"]["count"] == 3 and figures["all"]["max_ms"] == 5.0
    assert figures["Marking step"]["main_cpu_ms"] == figures["Marking step"]["total_cpu_ms"] == 6.0
    assert by_kind([])["all"]["count"] == 0  # always there, if empty


def test_work_span_sums_words_per_kind_and_parallelism_is_their_ratio():
    records = [scav(1, 0.0, 1.0, work_words=1000, span_words=600), scav(2, 5.0, 1.0, work_words=3000, span_words=1400),
               mc(3, 10.0, 4.0, work_words=5000, span_words=5000, serial_words=1000)]
    figures = by_kind(records)
    assert figures["Scavenge"]["work_words"] == 4000 and figures["Scavenge"]["span_words"] == 2000
    assert figures["Scavenge"]["parallelism"] == 2.0 and figures["Scavenge"]["collections"] == 2
    assert figures["Mark-Compact"]["parallelism"] == 1.0  # a serial pause: its span is its work
    assert figures["Mark-Compact"]["serial_fraction"] == 0.2 and figures["Scavenge"]["serial_fraction"] == 0.0
    assert figures["all"]["work_words"] == 9000 and figures["all"]["collections"] == 3
    assert gcstats.work_span([])["parallelism"] == 0.0  # no collection: no ratio
    assert GcRecord.of(SimGcEvent(work_words=7, span_words=5)).span_words == 5
