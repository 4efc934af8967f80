"""The GC tracer: one event per collection, V8's --trace-gc and --trace-gc-nvp lines, the isolate's
monotonic counters and pause histogram (V8's GCTracer, src/heap/gc-tracer.cc).

Owns four shared arrays (`tracer_specs`), guarded by the isolate's locker (v8::Locker): the heap calls
the tracer only while it holds it, so no lock is taken here.

    tr_ring   (I, ring, N_RING) f64  the last `ring` events, row (seq-1) % ring; columns: GcEvent's fields
    tr_cur    (I, N_RING) f64        the open event, from start() to end() (kind, reasons: table indices)
    tr_state  (I, N_STATE) f64       the previous event's end, the running figures V8 keeps (mutator
                                     utilisation, survival ratios, 10-sample speed rings), the heap base
    iso_ctr   (I, N_CTR) i64         monotonic totals: seq, GCs per kind, bytes and work counters; per kind
                                     a pause histogram with an exact sum and max (float64 bits in int64)

Invariants: seq grows by one per event and iso_ctr[.., seq] names the last event written; a ring row is
whole before seq moves; nothing a later call needs lives in a Python object (any core may run any
isolate), so a tracer is a cheap view over its isolate's rows. A core that dies inside end() leaves the
ring whole, but the GC redone after it may add its totals and averages a second time.

Pause histogram: bucket 0 holds pauses below 10 us * 2^(1/4), bucket b >= 1 [10 us * 2^(b/4),
10 us * 2^((b+1)/4)): four per octave, the last one open-ended. A percentile is the bucket of the
nearest-rank sample (numpy's method="inverted_cdf"), reported as the bucket's geometric midpoint
clamped to the exact max. Error bound: for a true percentile from 10 us to the last bucket,
|estimate / true - 1| <= 2^(1/8) - 1 (9.05 %); below 10 us the error is under 12 us; in the last
bucket (above 140 s) the estimate is the max.

Times are the caller's: `now` is ms since the isolate was created (V8's time_millis_since_init), so
tests are deterministic; without an end time, end() measures the pause on CLOCK_MONOTONIC.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import NamedTuple, TypedDict

import numpy as np

from memsim.sim.errors import FailedPrecondition, InvalidArgument
from memsim.sim.machine.shm import ArraySpec
from memsim.sim.v8.tracer_parallel import PARALLEL_KEYS, ParallelCounters, cpu_ms, scavenge_nvp, work_span_nvp

MB = 1 << 20
KINDS = ("Scavenge", "Mark-Compact")  # GCTracer's ToString(type, false)
KIND_SHORT = ("s", "mc")  # ToString(type, true): the nvp line's gc=
SCAVENGE, MARK_COMPACT = 0, 1
# V8's ToString(GarbageCollectionReason), formerly Heap::GarbageCollectionReasonToString (heap.cc).
REASONS = ("unknown", "allocation failure", "allocation limit", "context disposal", "counters extension",
           "debugger", "deserialize", "external memory pressure", "finalize incremental marking via stack guard",
           "finalize incremental marking via task", "full hash-table", "heap profiler", "task", "last resort",
           "low memory notification", "make heap iterable", "memory pressure", "memory reducer", "runtime",
           "sampling profiler", "snapshot creator", "testing")
# Heap::SelectGarbageCollector's collector reasons (the text after "; " in the line).
COLLECTOR_REASONS = ("", "GC in old space requested", "GC in old space forced by flags", "scavenge might not succeed")
PHASES = ("scavenge", "scavenge.roots", "scavenge.parallel", "mark", "evacuate", "sweep")  # GCTracer scopes

HIST_BUCKETS = 96
HIST_BASE_MS = 0.010
SPEED_RING = 10  # base::RingBuffer's kSize: V8 averages speeds and survival over the last 10 GCs
MAX_SPEED = float(1 << 30)  # BoundedAverageSpeed: kMaxSpeedInBytesPerMs = GB, kMinNonEmptySpeed = 1

# What the collector counts and hands to end(); all default to 0 ("allocated" to V8's estimate).
COUNTER_KEYS = ("allocated", "promoted", "new_space_survived", "nodes_copied_in_new", "nodes_died_in_new",
                "nodes_promoted", "compacted", "objects_scanned", "words_scanned", "words_copied",
                "slots_visited", "barrier_slow_paths", *PARALLEL_KEYS)
_SPEEDS = ("scavenge", "mark_compact", "compaction", "allocation")
_RING10 = tuple(f"{c}{i}" for c in "bd" for i in range(SPEED_RING))
STATE_COLS = ("open", "cur_mono_ms", "prev_end_ms", "prev_end_live", "heap_base", "avg_mc_ms", "avg_mutator_ms",
              "current_mu", "current_mu_set", "prev_mc_end_ms", "prev_mc_set", "promotion_ratio", "promotion_rate",
              "new_space_survive_rate", "last_survived", *(f"{s}.{c}" for s in ("surv", *_SPEEDS)
                                                           for c in ("pos", "n", *_RING10)))
N_STATE = len(STATE_COLS)
S = {n: i for i, n in enumerate(STATE_COLS)}

TOTALS = ("allocated", "copied", "promoted", "compacted", "nodes_copied_in_new", "nodes_died_in_new",
          "nodes_promoted", "objects_scanned", "words_scanned", "words_copied", "slots_visited",
          "barrier_slow_paths")
CTR_COLS = ("seq", *TOTALS, *(f"{c}.{k}" for k in KIND_SHORT for c in ("count", "pause_sum", "pause_max")))
HIST0 = len(CTR_COLS)  # then HIST_BUCKETS columns per kind
N_CTR = HIST0 + HIST_BUCKETS * len(KINDS)
C = {n: i for i, n in enumerate(CTR_COLS)}


@dataclass
class GcEvent(ParallelCounters):
    """One collection: a row of tr_ring, by field name; `line` and `nvp` are V8's two formats of it."""

    seq: int = 0
    kind: str = "Scavenge"
    reason: str = "unknown"
    collector_reason: str = ""
    pid: int = 0
    heap_base: int = 0
    start_ms: float = 0.0
    end_ms: float = 0.0
    live_before: int = 0
    committed_before: int = 0
    live_after: int = 0
    committed_after: int = 0
    pause_ms: float = 0.0
    main_cpu_ms: float = 0.0
    total_cpu_ms: float = 0.0
    scavenge_ms: float = 0.0
    scavenge_roots_ms: float = 0.0
    mark_ms: float = 0.0
    evacuate_ms: float = 0.0
    sweep_ms: float = 0.0
    incremental_ms: float = 0.0
    incremental_steps: int = 0
    incremental_longest_ms: float = 0.0
    incremental_walltime_ms: float = 0.0
    allocated: int = 0
    promoted: int = 0
    new_space_survived: int = 0
    nodes_copied_in_new: int = 0
    nodes_died_in_new: int = 0
    nodes_promoted: int = 0
    new_space_size_at_start: int = 0
    compacted: int = 0
    objects_scanned: int = 0
    words_scanned: int = 0
    words_copied: int = 0
    slots_visited: int = 0
    barrier_slow_paths: int = 0
    mutator_ms: float = 0.0
    average_mu: float = 1.0  # V8's initial mutator utilisation
    current_mu: float = 1.0
    promotion_ratio: float = 0.0
    average_survival_ratio: float = 0.0
    promotion_rate: float = 0.0
    new_space_survive_rate: float = 0.0
    scavenge_throughput: float = 0.0
    compaction_speed: float = 0.0
    marking_step_start_ms: tuple[float, ...] = ()  # the cycle's steps, not in tr_ring (tracer_incremental.attach)
    marking_step_ms: tuple[float, ...] = ()
    line: str = ""
    nvp: str = ""

    @classmethod
    def from_row(cls, row: np.ndarray) -> GcEvent:
        ev = cls()
        for i, name in enumerate(RING_COLS):
            setattr(ev, name, int(row[i]) if name in _INT_COLS else float(row[i]))
        for name, table in (("kind", KINDS), ("reason", REASONS), ("collector_reason", COLLECTOR_REASONS)):
            setattr(ev, name, table[int(row[R[name]])])
        ev.line, ev.nvp = trace_line(ev), trace_nvp(ev)
        return ev


_OFF_RING = ("line", "nvp", "marking_step_start_ms", "marking_step_ms")
RING_COLS = tuple(f.name for f in fields(GcEvent) if f.name not in _OFF_RING)  # tr_ring's columns
N_RING = len(RING_COLS)
R = {n: i for i, n in enumerate(RING_COLS)}
_INT_COLS = frozenset(f.name for f in fields(GcEvent) if f.type == "int")
_PHASE_COL = {p: p.replace(".", "_") + "_ms" for p in PHASES}  # scavenge.roots -> scavenge_roots_ms


def tracer_specs(isolates: int, ring: int = 128) -> list[ArraySpec]:
    return [ArraySpec("tr_ring", "float64", (isolates, ring, N_RING)),
            ArraySpec("tr_cur", "float64", (isolates, N_RING)),
            ArraySpec("tr_state", "float64", (isolates, N_STATE)),
            ArraySpec("iso_ctr", "int64", (isolates, N_CTR))]


@dataclass
class TracerArrays:
    """Typed handles on the tracer's arrays (views into the machine's meta segment)."""

    tr_ring: np.ndarray
    tr_cur: np.ndarray
    tr_state: np.ndarray
    iso_ctr: np.ndarray

    @classmethod
    def from_region(cls, region: Mapping[str, np.ndarray]) -> TracerArrays:
        return cls(**{f.name: region[f.name] for f in fields(cls)})


def _prefix(ev: GcEvent) -> str:
    # Isolate::PrintWithTimestamp: "[%d:%p] %8.0f ms: " (pid, isolate, time_millis_since_init); glibc's
    # %p writes 0x and lowercase hex, "(nil)" for a null pointer.
    return f"[{ev.pid}:{f'0x{ev.heap_base:x}' if ev.heap_base else '(nil)'}] {ev.end_ms:8.0f} ms: "


def trace_line(ev: GcEvent) -> str:
    """GCTracer::Print (V8 11.3, node 20): "%s %.1f (%.1f) -> %.1f (%.1f) MB, %.2f / %.2f ms %s (average mu
    = %.3f, current mu = %.3f) %s; %s": live (committed) MB before -> after, the pause / the time in
    embedder callbacks (none here: 0.00), the incremental-marking suffix (only when marking took steps,
    hence two spaces before "(average" otherwise), mutator utilisation, reason; collector reason. V8
    leaves a blank at the end when the collector reason is empty; this record strips it, as node's
    lines do when users quote them."""
    incremental = ""
    if ev.incremental_steps > 0:
        incremental = (f" (+ {ev.incremental_ms:.1f} ms in {ev.incremental_steps} steps since start of marking, "
                       f"biggest step {ev.incremental_longest_ms:.1f} ms, walltime since start of marking "
                       f"{ev.incremental_walltime_ms:.0f} ms)")
    return (f"{_prefix(ev)}{ev.kind} {ev.live_before / MB:.1f} ({ev.committed_before / MB:.1f}) -> "
            f"{ev.live_after / MB:.1f} ({ev.committed_after / MB:.1f}) MB, {ev.pause_ms:.2f} / 0.00 ms "
            f"{incremental} (average mu = {ev.average_mu:.3f}, current mu = {ev.current_mu:.3f}) "
            f"{ev.reason}; {ev.collector_reason}").rstrip()


def trace_nvp(ev: GcEvent) -> str:
    """GCTracer::PrintNVP's name=value line, the fields this heap has, each in V8's format: phase times of
    the scavenger %.2f and of the mark-compactor %.1f, sizes %zu, ratios %.1f%%, speeds %.f."""
    return (f"{_prefix(ev)}pause={ev.pause_ms:.1f} mutator={ev.mutator_ms:.1f} gc={KIND_SHORT[KINDS.index(ev.kind)]} "
            f"{scavenge_nvp(ev)} mark={ev.mark_ms:.1f} "
            f"evacuate={ev.evacuate_ms:.1f} sweep={ev.sweep_ms:.1f} allocated={ev.allocated} "
            f"promoted={ev.promoted} new_space_survived={ev.new_space_survived} "
            f"nodes_died_in_new={ev.nodes_died_in_new} nodes_copied_in_new={ev.nodes_copied_in_new} "
            f"nodes_promoted={ev.nodes_promoted} promotion_ratio={ev.promotion_ratio:.1f}% "
            f"average_survival_ratio={ev.average_survival_ratio:.1f}% promotion_rate={ev.promotion_rate:.1f}% "
            f"scavenge_throughput={ev.scavenge_throughput:.0f} compaction_speed={ev.compaction_speed:.0f}"
            f"{work_span_nvp(ev)}")


def pause_bucket(pause_ms: float) -> int:
    return 0 if pause_ms < HIST_BASE_MS else min(HIST_BUCKETS - 1, math.floor(4 * math.log2(pause_ms / HIST_BASE_MS)))


def hist_percentile(hist: np.ndarray, q: float, max_ms: float) -> float:
    """The nearest-rank q-th percentile (0 < q <= 100) of the pauses counted in `hist`; 0 when empty."""
    n = int(hist.sum())
    if n == 0:
        return 0.0
    rank = max(1, math.ceil(q * n / 100 - 1e-9))  # the epsilon: q = 99, n = 100 is rank 99, not 100
    b = int(np.searchsorted(np.cumsum(hist), rank))
    return max_ms if b == HIST_BUCKETS - 1 else min(HIST_BASE_MS * 2 ** ((b + 0.5) / 4), max_ms)  # mid-bucket


class PauseStats(TypedDict):
    count: int
    total_ms: float
    p50: float
    p99: float
    max: float


class TracerCounters(TypedDict):
    gc_count: dict[str, int]  # by kind
    pause_ms: dict[str, PauseStats]  # by kind
    totals: dict[str, int]  # TOTALS: bytes allocated, copied, promoted, compacted; nodes; work counters
    last_seq: int
    average_mu: float
    current_mu: float
    average_survival_ratio: float


class Speeds(NamedTuple):
    """Bytes per ms, each the bounded average of the last 10 GCs (GCTracer::BoundedAverageSpeed). V8 feeds
    the growing factor its old generation's allocation rate; here `allocation` counts every byte."""

    scavenge: float  # ScavengeSpeedInBytesPerMillisecond: new-space bytes at start / pause
    mark_compact: float  # MarkCompactSpeedInBytesPerMillisecond: live after / pause
    compaction: float  # CompactionSpeedInBytesPerMillisecond: bytes compacted / evacuate time
    allocation: float  # AllocationThroughputInBytesPerMillisecond: bytes allocated / mutator time


class GcTracer:
    """One isolate's tracer: a view over its rows of the four arrays."""

    def __init__(self, arrays: TracerArrays, iso: int):
        if not 0 <= iso < arrays.tr_state.shape[0]:
            raise InvalidArgument(f"isolate {iso} is outside the tracer's {arrays.tr_state.shape[0]} rows")
        self.arrays = arrays
        self.iso = iso
        self.ring_size = arrays.tr_ring.shape[1]

    def _st(self, name: str) -> float:
        return float(self.arrays.tr_state[self.iso, S[name]])

    def _set(self, name: str, value: float) -> None:
        self.arrays.tr_state[self.iso, S[name]] = value

    def _cur(self, name: str) -> float:
        return float(self.arrays.tr_cur[self.iso, R[name]])

    def reset(self, iso: int | None = None, heap_base: int = 0) -> None:
        """Zero the isolate's rows (after re-targeting the view to `iso`, if given); heap_base is the
        address the lines print after the pid (V8 prints the Isolate's)."""
        if iso is not None:
            self.iso = GcTracer(self.arrays, iso).iso
        for a in (self.arrays.tr_ring, self.arrays.tr_cur, self.arrays.tr_state, self.arrays.iso_ctr):
            a[self.iso] = 0
        self._set("heap_base", heap_base)

    def start(self, kind: str, reason: str, live: int, committed: int, now: float, *, new_space_size: int = 0,
              collector_reason: str = "") -> None:
        """GCTracer::StartCycle + StartInSafepoint: the heap's size before, at `now` (ms since creation).
        A start() while an event is open discards it (a collection redone after its core died)."""
        for value, table in ((kind, KINDS), (reason, REASONS), (collector_reason, COLLECTOR_REASONS)):
            if value not in table:
                raise InvalidArgument(f"{value!r} is not one of {table}")
        if min(live, committed, new_space_size) < 0:
            raise InvalidArgument(f"negative size: live {live}, committed {committed}, new space {new_space_size}")
        if not math.isfinite(now) or now < self._st("prev_end_ms"):
            raise InvalidArgument(f"GC start {now} ms is before the previous GC's end "
                                  f"({self._st('prev_end_ms')} ms since the isolate was created)")
        cur = self.arrays.tr_cur[self.iso]
        cur[:] = 0
        cur[[R[n] for n in ("kind", "reason", "collector_reason", "start_ms", "live_before", "committed_before",
                            "new_space_size_at_start")]] = (KINDS.index(kind), REASONS.index(reason),
                                                            COLLECTOR_REASONS.index(collector_reason), now, live,
                                                            committed, new_space_size)
        self._set("cur_mono_ms", time.monotonic() * 1000)
        self._set("open", 1)

    def _open(self) -> None:
        if not self._st("open"):
            raise FailedPrecondition(f"isolate {self.iso} has no GC in progress (start() was not called)")

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:  # a GCTracer::Scope, one of PHASES
        self.add_phase(name, 0.0)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add_phase(name, (time.perf_counter() - t0) * 1000)

    def add_phase(self, name: str, ms: float) -> None:
        if name not in PHASES or not ms >= 0:
            raise InvalidArgument(f"phase {name!r} / {ms} ms: a phase is one of {PHASES}, its time >= 0")
        self._open()
        self.arrays.tr_cur[self.iso, R[_PHASE_COL[name]]] += ms

    def end(self, counters: Mapping[str, int] | object, live_after: int, committed_after: int,
            now: float | None = None) -> GcEvent:
        """GCTracer::StopObservablePause + Heap::UpdateSurvivalStatistics: append the event to the ring, add
        it to the counters, and return it with its lines. `counters`: a mapping of COUNTER_KEYS, or a
        record (gc_work.GcWork) whose fields of those names count, with its phase_ms added to the
        phases and its new_space_size_at_start; missing counters are 0, "allocated" V8's estimate.
        `now` is the end time (ms since creation); without it, the pause since start() is measured."""
        self._open()
        if isinstance(counters, Mapping):
            if bad := set(counters) - set(COUNTER_KEYS):
                raise InvalidArgument(f"unknown GC counters {sorted(bad)}; known: {COUNTER_KEYS}")
            given = dict(counters)
        else:
            given = {k: getattr(counters, k) for k in COUNTER_KEYS if hasattr(counters, k)}
            for name, ms in getattr(counters, "phase_ms", {}).items():
                if name in PHASES:
                    self.add_phase(name, ms)
            self.arrays.tr_cur[self.iso, R["new_space_size_at_start"]] = getattr(
                counters, "new_space_size_at_start", self._cur("new_space_size_at_start"))
        cnt = {k: int(given.get(k, 0)) for k in COUNTER_KEYS}
        if min(*cnt.values(), live_after, committed_after) < 0:
            raise InvalidArgument(f"GC counters and sizes cannot be negative: {cnt}")
        start_ms = self._cur("start_ms")
        if now is None:
            now = start_ms + max(0.0, time.monotonic() * 1000 - self._st("cur_mono_ms"))
        if not math.isfinite(now) or now < start_ms:
            raise InvalidArgument(f"GC end {now} ms is before its start {start_ms} ms")
        kind, pause, young = int(self._cur("kind")), now - start_ms, int(self._cur("new_space_size_at_start"))
        if "allocated" not in given:  # PrintNVP: current start_object_size - previous end_object_size
            cnt["allocated"] = max(0, int(self._cur("live_before")) - int(self._st("prev_end_live")))
        mutator = start_ms - self._st("prev_end_ms")
        self._survival(young, cnt["promoted"], cnt["new_space_survived"])
        if kind == SCAVENGE:
            self._push("scavenge", young, pause)
        else:
            self._push("mark_compact", live_after, pause)
            if cnt["compacted"]:  # GCTracer::AddCompactionEvent
                self._push("compaction", cnt["compacted"], self._cur("evacuate_ms"))
            self._mutator_utilization(now, pause + self._cur("incremental_ms"))
        if mutator > 0:  # GCTracer::AddAllocation
            self._push("allocation", cnt["allocated"], mutator)
        seq = int(self.arrays.iso_ctr[self.iso, C["seq"]]) + 1
        row = self.arrays.tr_cur[self.iso]
        for name, v in {**cnt, "seq": seq, "pid": os.getpid(), "heap_base": self._st("heap_base"), "end_ms": now,
                        "live_after": live_after, "committed_after": committed_after, "pause_ms": pause,
                        **cpu_ms(counters, pause), "mutator_ms": mutator,
                        "average_mu": self.average_mu(), "current_mu": self.current_mu(),
                        "promotion_ratio": self._st("promotion_ratio"), "promotion_rate": self._st("promotion_rate"),
                        "new_space_survive_rate": self._st("new_space_survive_rate"),
                        "average_survival_ratio": self.average_survival_ratio(),
                        "scavenge_throughput": self._speed("scavenge"),
                        "compaction_speed": self._speed("compaction")}.items():
            row[R[name]] = v
        self.arrays.tr_ring[self.iso, (seq - 1) % self.ring_size] = row
        self._count(kind, pause, cnt)
        self.arrays.iso_ctr[self.iso, C["seq"]] = seq  # last: the row above is whole before it is visible
        self._set("prev_end_ms", now)
        self._set("prev_end_live", live_after)
        self._set("open", 0)
        return GcEvent.from_row(row)

    def _survival(self, start_new_space_size: int, promoted: int, survived: int) -> None:
        """Heap::UpdateSurvivalStatistics (the prologue kept the last GC's survivors as `previous`); with an
        empty new space at the start V8 returns early and the ratios keep their previous values."""
        previous = self._st("last_survived")
        self._set("last_survived", survived)
        if start_new_space_size == 0:
            return
        promotion_ratio = promoted / start_new_space_size * 100
        self._set("promotion_ratio", promotion_ratio)
        self._set("promotion_rate", promoted / previous * 100 if previous > 0 else 0.0)
        survive_rate = survived / start_new_space_size * 100
        self._set("new_space_survive_rate", survive_rate)
        self._push("surv", promotion_ratio + survive_rate)  # tracer()->AddSurvivalRatio: a ring of 10

    def average_survival_ratio(self) -> float:
        """GCTracer::AverageSurvivalRatio: the mean of the last (up to) 10 survival ratios, percent."""
        n = int(self._st("surv.n"))
        return self._ring_sum("surv", "b") / n if n else 0.0

    def _mutator_utilization(self, end_ms: float, mc_ms: float) -> None:
        """GCTracer::RecordMutatorUtilization as node 20's V8 (11.3) has it: the first mark-compact only records
        its end; later ones average, (old + new) / 2, the mark-compact and mutator times between two."""
        if not self._st("prev_mc_set"):
            self._set("prev_mc_end_ms", end_ms)
            self._set("prev_mc_set", 1)
            return
        total = end_ms - self._st("prev_mc_end_ms")
        mutator = total - mc_ms
        avg_mc, avg_mut = self._st("avg_mc_ms"), self._st("avg_mutator_ms")
        if avg_mc == 0 and avg_mut == 0:
            avg_mc, avg_mut = mc_ms, mutator
        else:
            avg_mc, avg_mut = (avg_mc + mc_ms) / 2, (avg_mut + mutator) / 2
        self._set("avg_mc_ms", avg_mc)
        self._set("avg_mutator_ms", avg_mut)
        self._set("current_mu", mutator / total if total else 0.0)
        self._set("current_mu_set", 1)
        self._set("prev_mc_end_ms", end_ms)

    def average_mu(self) -> float:
        """GCTracer::AverageMarkCompactMutatorUtilization (1.0 before two mark-compacts)."""
        total = self._st("avg_mc_ms") + self._st("avg_mutator_ms")
        return self._st("avg_mutator_ms") / total if total else 1.0

    def current_mu(self) -> float:
        """GCTracer::CurrentMarkCompactMutatorUtilization (initialised to 1.0 in V8's constructor)."""
        return self._st("current_mu") if self._st("current_mu_set") else 1.0

    def _push(self, ring: str, nbytes: float, ms: float = 0.0) -> None:
        pos = int(self._st(f"{ring}.pos"))
        self._set(f"{ring}.b{pos}", nbytes)
        self._set(f"{ring}.d{pos}", ms)
        self._set(f"{ring}.pos", (pos + 1) % SPEED_RING)
        self._set(f"{ring}.n", min(SPEED_RING, self._st(f"{ring}.n") + 1))

    def _ring_sum(self, ring: str, column: str) -> float:
        return sum(self._st(f"{ring}.{column}{i}") for i in range(int(self._st(f"{ring}.n"))))

    def _speed(self, ring: str) -> float:
        """GCTracer::BoundedAverageSpeed (heap::base::AverageSpeed): the ring's bytes over its ms, 0 with no
        bytes, else clamped to [1, 1 GB] per ms (a zero duration gives the maximum)."""
        nbytes, ms = self._ring_sum(ring, "b"), self._ring_sum(ring, "d")
        if nbytes == 0:
            return 0.0
        return MAX_SPEED if ms <= 0 else max(1.0, min(nbytes / ms, MAX_SPEED))

    def speeds(self) -> Speeds:
        """For heap_controller.heap_growing_factor: gc_speed = mark_compact, mutator_speed = allocation."""
        return Speeds(*(self._speed(s) for s in _SPEEDS))

    def _count(self, kind: int, pause: float, cnt: Mapping[str, int]) -> None:
        ctr = self.arrays.iso_ctr[self.iso]
        floats = ctr.view(np.float64)
        k = KIND_SHORT[kind]
        ctr[C[f"count.{k}"]] += 1
        floats[C[f"pause_sum.{k}"]] += pause
        floats[C[f"pause_max.{k}"]] = max(float(floats[C[f"pause_max.{k}"]]), pause)
        ctr[HIST0 + kind * HIST_BUCKETS + pause_bucket(pause)] += 1
        for name in TOTALS:
            ctr[C[name]] += cnt["new_space_survived" if name == "copied" else name]

    def pause_percentile(self, kind: str, q: float) -> float:
        """The q-th percentile (0 < q <= 100) of this kind's pauses, ms, within the module header's bound."""
        if kind not in KINDS or not 0 < q <= 100:
            raise InvalidArgument(f"percentile {q} of {kind!r}: q in (0, 100], kind one of {KINDS}")
        k, ctr = KINDS.index(kind), self.arrays.iso_ctr[self.iso]
        return hist_percentile(ctr[HIST0 + k * HIST_BUCKETS:HIST0 + (k + 1) * HIST_BUCKETS], q,
                               float(ctr.view(np.float64)[C[f"pause_max.{KIND_SHORT[k]}"]]))

    def counters(self) -> TracerCounters:
        ctr = self.arrays.iso_ctr[self.iso]
        floats = ctr.view(np.float64)
        pauses: dict[str, PauseStats] = {}
        for kind, k in zip(KINDS, KIND_SHORT, strict=True):
            pauses[kind] = PauseStats(count=int(ctr[C[f"count.{k}"]]), total_ms=float(floats[C[f"pause_sum.{k}"]]),
                                      p50=self.pause_percentile(kind, 50), p99=self.pause_percentile(kind, 99),
                                      max=float(floats[C[f"pause_max.{k}"]]))
        return TracerCounters(gc_count={kind: pauses[kind]["count"] for kind in KINDS}, pause_ms=pauses,
                              totals={name: int(ctr[C[name]]) for name in TOTALS}, last_seq=int(ctr[C["seq"]]),
                              average_mu=self.average_mu(), current_mu=self.current_mu(),
                              average_survival_ratio=self.average_survival_ratio())

    def read(self, after_seq: int = 0, max_records: int | None = None) -> list[GcEvent]:
        """The events after `after_seq`, oldest first, at most max_records (1 .. the ring's size, default all).
        Events the ring has overwritten are skipped: the first one returned may have a seq > after_seq + 1."""
        max_records = self.ring_size if max_records is None else max_records
        if not 1 <= max_records <= self.ring_size or after_seq < 0:
            raise InvalidArgument(f"max_records {max_records} must be in 1..{self.ring_size} (the trace ring's size), "
                                  f"after_seq ({after_seq}) >= 0")
        last = int(self.arrays.iso_ctr[self.iso, C["seq"]])
        first = max(after_seq + 1, last - self.ring_size + 1, 1)
        rows = self.arrays.tr_ring[self.iso]
        return [GcEvent.from_row(rows[(s - 1) % self.ring_size].copy())
                for s in range(first, min(last, first + max_records - 1) + 1)]
