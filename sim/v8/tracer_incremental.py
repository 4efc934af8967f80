"""The GC tracer's part for incremental marking: each step's record and the cycle's sums, which the
Mark-Compact that ends the cycle reports (V8's GCTracer::AddIncrementalMarkingStep and the
incremental_marking_* figures GCTracer::Print appends to the Mark-Compact's line).

Owns two shared arrays (`step_specs`), guarded by the isolate's locker like tracer.py's:

    tr_steps  (I, ring, 2) f64   the last `ring` steps of the isolate: start (ms since the isolate was
                                 created) and duration (ms); step seq s is row (s - 1) % ring
    tr_inc    (I, NINC) f64      I_* below: the open cycle's start, steps, their total and longest
                                 time; the steps ever taken (seq); the bytes and ms of every step,
                                 the marking speed a step's budget is derived from

Touches: tracer.py's open event (`tr_cur`), after its start(), so that end() feeds the steps'
time to the mutator utilisation (GcTracer._mutator_utilization counts incremental_ms) and
trace_line prints V8's suffix. Imports nothing of the heap (layout.py imports this module).
Invariants: I_SEQ only grows and names the last step written, whose row is whole before it moves;
the cycle's columns are zero outside a cycle.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.machine.shm import ArraySpec
from memsim.sim.v8.tracer import GcEvent, GcTracer, R

STEP_RING = 256
I_START_MS, I_STEPS, I_MS, I_LONGEST, I_SEQ, I_BYTES_ALL, I_MS_ALL = range(7)
NINC = 8


def step_specs(isolates: int, ring: int = STEP_RING) -> list[ArraySpec]:
    return [ArraySpec("tr_steps", "float64", (isolates, ring, 2)),
            ArraySpec("tr_inc", "float64", (isolates, NINC))]


def begin(tr_inc: np.ndarray, iso: int, now_ms: float) -> None:
    """A cycle starts at `now_ms` (IncrementalMarking::Start)."""
    tr_inc[iso, [I_STEPS, I_MS, I_LONGEST]] = 0
    tr_inc[iso, I_START_MS] = now_ms


def record(tr_steps: np.ndarray, tr_inc: np.ndarray, iso: int, start_ms: float, ms: float, nbytes: int) -> None:
    """One step of `ms` from `start_ms` that made `nbytes` black."""
    row = tr_inc[iso]
    seq = int(row[I_SEQ]) + 1
    tr_steps[iso, (seq - 1) % tr_steps.shape[1]] = (start_ms, ms)
    row[I_SEQ] = seq
    row[I_STEPS] += 1
    row[I_MS] += ms
    row[I_LONGEST] = max(float(row[I_LONGEST]), ms)
    row[I_BYTES_ALL] += nbytes
    row[I_MS_ALL] += ms


def speed(tr_inc: np.ndarray, iso: int) -> float:
    """Bytes marked per ms over every step so far (IncrementalMarkingSpeedInBytesPerMillisecond);
    0 before any step was timed."""
    ms = float(tr_inc[iso, I_MS_ALL])
    return float(tr_inc[iso, I_BYTES_ALL]) / ms if ms > 0 else 0.0


def fill(tracer: GcTracer, tr_inc: np.ndarray, now_ms: float) -> None:
    """Put the cycle's figures in the Mark-Compact's open event (after tracer.start) and close the cycle."""
    row, cur = tr_inc[tracer.iso], tracer.arrays.tr_cur[tracer.iso]
    cur[R["incremental_ms"]] = row[I_MS]
    cur[R["incremental_steps"]] = row[I_STEPS]
    cur[R["incremental_longest_ms"]] = row[I_LONGEST]
    cur[R["incremental_walltime_ms"]] = max(0.0, now_ms - float(row[I_START_MS]))
    end(tr_inc, tracer.iso)


def end(tr_inc: np.ndarray, iso: int) -> None:
    """The cycle is over (finished or aborted): its columns zero, the step ring and speed kept."""
    tr_inc[iso, [I_START_MS, I_STEPS, I_MS, I_LONGEST]] = 0


def steps(tr_steps: np.ndarray, tr_inc: np.ndarray, iso: int, after_seq: int = 0) -> list[tuple[int, float, float]]:
    """(seq, start ms, ms) of the steps after `after_seq` still in the ring, oldest first."""
    last = int(tr_inc[iso, I_SEQ])
    ring = tr_steps.shape[1]
    return [(s, float(tr_steps[iso, (s - 1) % ring, 0]), float(tr_steps[iso, (s - 1) % ring, 1]))
            for s in range(max(after_seq + 1, last - ring + 1, 1), last + 1)]


def attach(events: list[GcEvent], tr_steps: np.ndarray, tr_inc: np.ndarray, iso: int) -> list[GcEvent]:
    """Each Mark-Compact that ended an incremental cycle gets that cycle's steps still in the ring
    (those that began between the cycle's start and the Mark-Compact's)."""
    if not any(e.incremental_steps for e in events):
        return events
    ring = steps(tr_steps, tr_inc, iso)
    for e in events:
        if e.incremental_steps:
            lo = e.start_ms - e.incremental_walltime_ms
            mine = [(s, ms) for _, s, ms in ring if lo <= s <= e.start_ms]
            e.marking_step_start_ms = tuple(s for s, _ in mine)
            e.marking_step_ms = tuple(ms for _, ms in mine)
    return events
