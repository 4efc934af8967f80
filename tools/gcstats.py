"""The figures of a garbage-collection run, computed from its GC events: pure functions, no I/O.

Owns: `GcRecord` (the fields of one GC that the bench keeps, as V8's GCTracer names them:
src/heap/gc-tracer.cc), `LaneRun` (one client's isolate over the measured window) and the
figures `memsim bench gc` reports: pause percentiles by kind, minimum mutator utilisation,
allocation rate, survival and promotion ratios, bytes copied, GC throughput, heap over time.
Touches nothing: every function takes records and returns numbers, so each is unit-tested on
synthetic events (tests/tools/test_gcstats.py).

Times are milliseconds on one isolate's clock (its GcEvent `start_ms` counts from the isolate's
creation); a lane's window `[t0_ms, t1_ms]` is on that same clock. Isolates are separate
mutators, so utilisation is computed per lane and the headline figure is the worst lane's.

Invariants: percentiles are nearest-rank (a pause that actually happened, as HdrHistogram and
the tracer's own histogram report); MMU follows Cheng & Blelloch, "A parallel, real-time garbage
collector" (PLDI 2001): for a window width w, the minimum over every window [t, t+w] inside the
run of the fraction of it not spent in GC pauses.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypedDict

MMU_WINDOWS_MS = (10, 50, 100)  # the widths the bench reports
KINDS = ("Scavenge", "Mark-Compact")  # V8's trace names for the minor and the major GC
MARKING_STEP = "Marking step"  # an incremental marking step: a pause of the mutator too (not in "all")
WORD = 8  # bytes per tagged word (x64 without pointer compression)


class GcEventLike(Protocol):
    """What the analysis reads of a GC event (the client's GcEvent, or the simulator's)."""

    @property
    def main_cpu_ms(self) -> float: ...
    @property
    def total_cpu_ms(self) -> float: ...
    @property
    def helpers(self) -> int: ...
    @property
    def helper_objects(self) -> int: ...
    @property
    def segments_stolen(self) -> int: ...
    @property
    def cas_failures(self) -> int: ...
    @property
    def work_words(self) -> int: ...
    @property
    def span_words(self) -> int: ...
    @property
    def serial_words(self) -> int: ...

    @property
    def seq(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def start_ms(self) -> float: ...
    @property
    def pause_ms(self) -> float: ...
    @property
    def live_before(self) -> int: ...
    @property
    def committed_before(self) -> int: ...
    @property
    def live_after(self) -> int: ...
    @property
    def committed_after(self) -> int: ...
    @property
    def allocated(self) -> int: ...
    @property
    def promoted(self) -> int: ...
    @property
    def new_space_survived(self) -> int: ...
    @property
    def nodes_copied_in_new(self) -> int: ...
    @property
    def nodes_died_in_new(self) -> int: ...
    @property
    def nodes_promoted(self) -> int: ...
    @property
    def new_space_size_at_start(self) -> int: ...
    @property
    def objects_scanned(self) -> int: ...
    @property
    def words_scanned(self) -> int: ...
    @property
    def words_copied(self) -> int: ...
    @property
    def slots_visited(self) -> int: ...
    @property
    def barrier_slow_paths(self) -> int: ...
    @property
    def marking_step_start_ms(self) -> Sequence[float]: ...
    @property
    def marking_step_ms(self) -> Sequence[float]: ...


@dataclass(frozen=True)
class GcRecord:
    """One GC as the bench keeps it (picklable, so a load process can hand it to the parent)."""

    seq: int
    kind: str
    reason: str
    start_ms: float
    pause_ms: float
    live_before: int = 0  # heapUsed before / after (bytes)
    committed_before: int = 0  # heapTotal before / after (bytes)
    live_after: int = 0
    committed_after: int = 0
    allocated: int = 0  # bytes allocated since the previous GC
    promoted: int = 0  # bytes moved to old space
    new_space_survived: int = 0  # bytes copied within new space
    nodes_copied_in_new: int = 0
    nodes_died_in_new: int = 0
    nodes_promoted: int = 0
    new_space_size_at_start: int = 0  # bytes in use in new space when the GC began
    objects_scanned: int = 0
    words_scanned: int = 0
    words_copied: int = 0
    slots_visited: int = 0
    barrier_slow_paths: int = 0
    main_cpu_ms: float = 0.0  # the main thread's CPU time; total: every core's (a parallel scavenge's helpers)
    total_cpu_ms: float = 0.0
    helpers: int = 0  # helper cores that joined, what they copied, segments stolen, forwarding CASes lost
    helper_objects: int = 0
    segments_stolen: int = 0
    cas_failures: int = 0
    work_words: int = 0  # the pause's work and span in words (sim/v8/work_span.py): work / span = parallelism
    span_words: int = 0
    serial_words: int = 0  # the part of both outside any parallel job (Amdahl's serial part)
    steps: Sequence[Sequence[float]] = ()  # (start, ms) of the incremental marking steps a Mark-Compact ended

    @property
    def end_ms(self) -> float:
        return self.start_ms + self.pause_ms

    @staticmethod
    def of(e: GcEventLike) -> GcRecord:
        return GcRecord(seq=e.seq, kind=e.kind, reason=e.reason, start_ms=e.start_ms, pause_ms=e.pause_ms,
                        live_before=e.live_before, committed_before=e.committed_before, live_after=e.live_after,
                        committed_after=e.committed_after, allocated=e.allocated, promoted=e.promoted,
                        new_space_survived=e.new_space_survived, nodes_copied_in_new=e.nodes_copied_in_new,
                        nodes_died_in_new=e.nodes_died_in_new, nodes_promoted=e.nodes_promoted,
                        new_space_size_at_start=e.new_space_size_at_start, objects_scanned=e.objects_scanned,
                        words_scanned=e.words_scanned, words_copied=e.words_copied, slots_visited=e.slots_visited,
                        barrier_slow_paths=e.barrier_slow_paths, main_cpu_ms=e.main_cpu_ms,
                        total_cpu_ms=e.total_cpu_ms, helpers=e.helpers, helper_objects=e.helper_objects,
                        segments_stolen=e.segments_stolen, cas_failures=e.cas_failures,
                        work_words=e.work_words, span_words=e.span_words, serial_words=e.serial_words,
                        steps=tuple(zip(e.marking_step_start_ms, e.marking_step_ms, strict=True)))


@dataclass
class LaneRun:
    """One load process's isolate over the measured window: its GCs and its heap at both ends."""

    lane: int
    workload: str
    t0_ms: float  # the window on the isolate's clock
    t1_ms: float
    used_start: int  # memoryUsage().heapUsed at t0 and t1
    used_end: int
    total_start: int = 0  # memoryUsage().heapTotal at t0 and t1
    total_end: int = 0
    events: list[GcRecord] = field(default_factory=list)  # every GC the lane saw, window or not
    lost_events: int = 0  # GCs that left the trace ring before the lane read them

    @property
    def seconds(self) -> float:
        return max(0.0, self.t1_ms - self.t0_ms) / 1000.0

    def in_window(self) -> list[GcRecord]:
        """The GCs that began inside the window, in order."""
        return sorted((e for e in self.events if self.t0_ms <= e.start_ms <= self.t1_ms), key=lambda e: e.start_ms)


# -- pauses ---------------------------------------------------------------------------------------

def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p % of the values at or below it."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def pause_figures(pauses: Sequence[float]) -> dict[str, float]:
    """count, total, mean, p50, p95, p99 and max of pause times (ms)."""
    n = len(pauses)
    return {"count": n, "total_ms": round(sum(pauses), 3), "mean_ms": round(sum(pauses) / n, 3) if n else 0.0,
            "p50_ms": round(percentile(pauses, 50), 3), "p95_ms": round(percentile(pauses, 95), 3),
            "p99_ms": round(percentile(pauses, 99), 3), "max_ms": round(max(pauses, default=0.0), 3)}


def rms(values: Sequence[float]) -> float:
    """Root mean square: Octane's SplayLatency score (splay.js SplayRMS) over its samples."""
    return math.sqrt(sum(v * v for v in values) / len(values)) if values else 0.0


def throughput(records: Sequence[GcRecord]) -> dict[str, float]:
    """GC work per second of pause: objects moved ((nodes_copied_in_new + nodes_promoted)) and bytes
    copied (words_copied x 8), each over the summed pause time."""
    pause_s = sum(r.pause_ms for r in records) / 1000.0
    objects = sum(r.nodes_copied_in_new + r.nodes_promoted for r in records)
    copied = sum(r.words_copied for r in records) * WORD
    return {"objects_moved": objects, "bytes_copied": copied,
            "objects_per_s": round(objects / pause_s, 1) if pause_s else 0.0,
            "bytes_per_s": round(copied / pause_s, 1) if pause_s else 0.0}


def by_kind(records: Sequence[GcRecord]) -> dict[str, dict[str, float]]:
    """Pause figures and throughput for each GC kind present (V8's order first), and "all"."""
    kinds = [k for k in KINDS if any(r.kind == k for r in records)]
    kinds += sorted({r.kind for r in records} - set(kinds))
    out: dict[str, dict[str, float]] = {}
    steps = [float(ms) for r in records for _, ms in r.steps]  # incremental marking's steps: pauses of their own
    for k in [*kinds, MARKING_STEP, "all"]:
        mine = [r for r in records if k in ("all", r.kind)]
        own = steps if k in (MARKING_STEP, "all") else []  # a step is the main thread's (until concurrent marking)
        if mine or own or k == "all":
            out[k] = {**pause_figures([r.pause_ms for r in mine] + own), **throughput(mine),
                      "main_cpu_ms": round(sum(r.main_cpu_ms for r in mine) + sum(own), 3),
                      "total_cpu_ms": round(sum(r.total_cpu_ms for r in mine) + sum(own), 3),
                      **work_span(mine)}
    return out


def work_span(records: Sequence[GcRecord]) -> dict[str, float]:
    """The collections' work and span in words summed (sim/v8/work_span.py: Blumofe & Leiserson's work T1
    and span T-inf of each pause), their count, the parallelism work / span (the speedup a machine with
    enough cores would give the pauses, whatever this host's cores did), and the serial fraction: the share
    of the work the main did outside any job (Amdahl's bound on that speedup is its inverse)."""
    w, s = sum(r.work_words for r in records), sum(r.span_words for r in records)
    serial = sum(r.serial_words for r in records)
    return {"collections": len(records), "work_words": w, "span_words": s, "serial_words": serial,
            "parallelism": round(w / s, 3) if s else 0.0, "serial_fraction": round(serial / w, 4) if w else 0.0}


# -- minimum mutator utilisation ---------------------------------------------------------------------

def _merged(pauses: Iterable[tuple[float, float]], t0: float, t1: float) -> list[tuple[float, float]]:
    """Pauses as disjoint [start, end] intervals clipped to [t0, t1], in order."""
    out: list[tuple[float, float]] = []
    for s, d in sorted(pauses):
        a, b = max(s, t0), min(s + d, t1)
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def mmu(pauses: Iterable[tuple[float, float]], t0: float, t1: float, width: float) -> float | None:
    """Minimum mutator utilisation for windows of `width` inside [t0, t1], from (start, duration)
    pauses; None when the run is shorter than one window.

    GC time in [t, t+width] is piecewise linear in t with breakpoints where either end of the window
    meets a pause boundary, so its maximum is at one of those t (or at an end of the run)."""
    if width <= 0 or t1 - t0 < width:
        return None
    iv = _merged(pauses, t0, t1)
    starts = [a for a, _ in iv]
    prefix = [0.0]
    for a, b in iv:
        prefix.append(prefix[-1] + (b - a))

    def gc_until(x: float) -> float:
        k = bisect.bisect_right(starts, x) - 1
        if k < 0:
            return 0.0
        a, b = iv[k]
        return prefix[k] + min(x, b) - a

    hi = t1 - width
    candidates = {t0, hi}
    for a, b in iv:
        candidates.update((a, b, a - width, b - width))
    worst = max(gc_until(t + width) - gc_until(t) for t in candidates if t0 <= t <= hi)
    return max(0.0, 1.0 - worst / width)


def lane_mmu(run: LaneRun, windows: Sequence[float] = MMU_WINDOWS_MS) -> dict[str, float | None]:
    """MMU of one lane: its GC pauses and its incremental marking steps both take the mutator's time."""
    pauses = [(r.start_ms, r.pause_ms) for r in run.events]
    pauses += [(float(s), float(ms)) for r in run.events for s, ms in r.steps]
    out: dict[str, float | None] = {}
    for w in windows:
        u = mmu(pauses, run.t0_ms, run.t1_ms, w)
        out[f"{w:g}ms"] = None if u is None else round(u, 4)
    return out


def worst_mmu(runs: Sequence[LaneRun], windows: Sequence[float] = MMU_WINDOWS_MS) -> dict[str, float | None]:
    """For each window width, the lowest utilisation any lane had (None if no lane ran that long)."""
    per = [lane_mmu(r, windows) for r in runs]
    out: dict[str, float | None] = {}
    for w in windows:
        got = [u for p in per if (u := p[f"{w:g}ms"]) is not None]
        out[f"{w:g}ms"] = min(got) if got else None
    return out


# -- allocation, survival, promotion ----------------------------------------------------------------

def allocated_in_window(run: LaneRun) -> int:
    """Bytes the mutator allocated in the window: heapUsed only grows by allocation and only falls
    by what a GC reclaims, so allocated = (used_end - used_start) + sum(live_before - live_after)."""
    freed = sum(r.live_before - r.live_after for r in run.in_window())
    return max(0, run.used_end - run.used_start + freed)


def survival(records: Sequence[GcRecord]) -> dict[str, float]:
    """Over the scavenges: V8's survival ratio ((promoted + new_space_survived) over the new-space
    bytes in use at the start, Heap::UpdateSurvivalStatistics), its promotion ratio (promoted
    over the same), and the bytes behind them."""
    sc = [r for r in records if r.kind == "Scavenge"]
    start = sum(r.new_space_size_at_start for r in sc)
    promoted = sum(r.promoted for r in sc)
    survived = sum(r.new_space_survived for r in sc)
    return {"survival_ratio": round(100.0 * (promoted + survived) / start, 2) if start else 0.0,
            "promotion_ratio": round(100.0 * promoted / start, 2) if start else 0.0,
            "new_space_scavenged": start, "promoted": promoted, "new_space_survived": survived,
            "nodes_died_in_new": sum(r.nodes_died_in_new for r in sc)}


WORK_COUNTERS = ("objects_scanned", "words_scanned", "words_copied", "slots_visited", "barrier_slow_paths")


def work(records: Sequence[GcRecord]) -> dict[str, int]:
    """The host-independent work counters, summed."""
    return {name: sum(int(getattr(r, name)) for r in records) for name in WORK_COUNTERS}


def heap_series(run: LaneRun) -> list[tuple[float, int, int]]:
    """(seconds into the window, heapUsed, heapTotal): the window's ends and each GC's before and
    after, the sawtooth of allocation and reclamation."""
    pts = [(0.0, run.used_start, run.total_start)]
    for r in run.in_window():
        pts.append(((r.start_ms - run.t0_ms) / 1000.0, r.live_before, r.committed_before))
        pts.append(((r.end_ms - run.t0_ms) / 1000.0, r.live_after, r.committed_after))
    pts.append((run.seconds, run.used_end, run.total_end))
    return pts


class Figures(TypedDict):
    """One workload's figures over all its lanes (the JSON report's `figures`)."""

    lanes: int
    seconds: float
    allocated_bytes: int
    allocation_mib_s: float
    gc_counts: dict[str, int]
    gc_time_share: float  # summed pauses over summed lane time
    pauses: dict[str, dict[str, float]]
    survival: dict[str, float]
    mmu: dict[str, float | None]
    work: dict[str, int]
    lost_events: int


def summarise(runs: Sequence[LaneRun]) -> Figures:
    """The figures of one workload over all its lanes."""
    records = [r for run in runs for r in run.in_window()]
    seconds = max((run.seconds for run in runs), default=0.0)
    allocated = sum(allocated_in_window(run) for run in runs)
    counts = dict.fromkeys(KINDS, 0)
    for r in records:
        counts[r.kind] = counts.get(r.kind, 0) + 1
    gc_ms = sum(r.pause_ms for r in records)
    lane_ms = sum(run.seconds for run in runs) * 1000.0
    return Figures(
        lanes=len(runs), seconds=round(seconds, 3), allocated_bytes=allocated,
        allocation_mib_s=round(allocated / (1 << 20) / seconds, 3) if seconds else 0.0,
        gc_counts=counts, gc_time_share=round(gc_ms / lane_ms, 4) if lane_ms else 0.0,
        pauses=by_kind(records), survival=survival(records), mmu=worst_mmu(runs), work=work(records),
        lost_events=sum(run.lost_events for run in runs))
