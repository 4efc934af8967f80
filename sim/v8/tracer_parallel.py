"""What a parallel collection adds to the GC tracer's record (tracer.py's GcEvent): how many helper
cores took part and what they did, and the CPU time the collection cost across every core beside
the main thread's pause (V8's GCTracer keeps the same split: the main thread's scopes, and the
background scopes its helpers report through GCTracer::AddScopeSampleBackground).

`ParallelCounters` is the base of tracer.GcEvent (its fields are ring columns like any other);
`collect(h, n)` reads the job's task rows (gc_job.py's TK_CPU_NS, scavenge_kernels.py's counters)
into a collection's GcWork; `cpu_ms` gives tracer.end the main's and the total CPU time (the pause
when nothing was measured, as before); `scavenge_nvp` is --trace-gc-nvp's scavenger part with V8's
`scavenge.parallel` scope (GCTracer::Scope::SCAVENGER_SCAVENGE_PARALLEL); `work_span_nvp` the line's
`work=`, `span=` and `serial=` (work_span.py's words: memsim's, V8 prints no such field), after V8's fields.

Owns no shared array; reads gc_task rows after the job has ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

PARALLEL_KEYS = ("helpers", "helper_objects", "segments_stolen", "cas_failures", "work_words",
                 "span_words", "serial_words")  # counters tracer.end takes


@dataclass
class ParallelCounters:
    helpers: int = 0  # helper cores that joined the collection's job
    helper_objects: int = 0  # objects the helpers copied or promoted
    segments_stolen: int = 0  # worklist segments taken from the global pool, every task
    cas_failures: int = 0  # forwarding CASes lost to another task, every task
    scavenge_parallel_ms: float = 0.0  # the parallel phase of a scavenge (after the main's roots)
    work_words: int = 0  # the collection's work and span in words (work_span.py: Blumofe & Leiserson)
    span_words: int = 0
    serial_words: int = 0  # the part of both the main did outside any job


class _HasCpu(Protocol):
    main_cpu_ms: float
    total_cpu_ms: float


def cpu_ms(counters: object, pause: float) -> dict[str, float]:
    """main_cpu_ms and total_cpu_ms for tracer.end: measured (a GcWork that carries them), or the pause."""
    main = float(getattr(counters, "main_cpu_ms", 0.0))
    if main <= 0:
        return {"main_cpu_ms": pause, "total_cpu_ms": pause}
    return {"main_cpu_ms": main, "total_cpu_ms": max(main, float(getattr(counters, "total_cpu_ms", main)))}


def task_figures(gc_task: np.ndarray, n: int, copied: int, promoted: int, steals: int, cas_fail: int,
                 cpu_ns: int, joined: list[int]) -> dict[str, float]:
    """The figures of tasks 0..n-1 of one job from their rows (the column numbers given by the
    caller, which owns them): main and total CPU ms, helpers, their objects, steals, CAS failures."""
    rows = gc_task[:n]
    helpers = [t for t in joined if 0 < t < n]
    return {"main_cpu_ms": float(rows[0, cpu_ns]) / 1e6, "total_cpu_ms": float(rows[:, cpu_ns].sum()) / 1e6,
            "helpers": len(helpers),
            "helper_objects": int(sum(int(rows[t, copied] + rows[t, promoted]) for t in helpers)),
            "segments_stolen": int(rows[:, steals].sum()), "cas_failures": int(rows[:, cas_fail].sum())}


class _ScavengeTimes(Protocol):
    scavenge_ms: float
    scavenge_roots_ms: float
    scavenge_parallel_ms: float


def scavenge_nvp(ev: _ScavengeTimes) -> str:
    """PrintNVP's scavenger scopes, %.2f each: scavenge, scavenge.roots, scavenge.parallel."""
    return (f"scavenge={ev.scavenge_ms:.2f} scavenge.roots={ev.scavenge_roots_ms:.2f} "
            f"scavenge.parallel={ev.scavenge_parallel_ms:.2f}")


class _WorkSpan(Protocol):
    work_words: int
    span_words: int
    serial_words: int


def work_span_nvp(ev: _WorkSpan) -> str:
    """The nvp line's tail: the collection's work, span and serial part in words (work_span.py)."""
    return f" work={ev.work_words} span={ev.span_words} serial={ev.serial_words}"
