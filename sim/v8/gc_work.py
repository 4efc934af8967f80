"""What one garbage collection did: the counters a collector fills and the tracer reports.

Times in Python are noisy, so beside them every collection counts its work in host-independent
units (objects and words scanned and copied, slots visited), as GC papers report them; the
names of the first group are V8's `--trace-gc-nvp` fields (`gc-tracer.cc`, PrintNVP).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GcWork:
    allocated: int = 0  # bytes allocated since the previous GC
    promoted: int = 0  # bytes moved from new to old space
    new_space_survived: int = 0  # bytes copied within new space
    nodes_copied_in_new: int = 0
    nodes_died_in_new: int = 0
    nodes_promoted: int = 0
    new_space_size_at_start: int = 0  # bytes of objects in new space when the GC began
    objects_scanned: int = 0
    words_scanned: int = 0
    words_copied: int = 0
    slots_visited: int = 0
    barrier_slow_paths: int = 0  # write-barrier slow paths since the previous GC
    objects_marked: int = 0
    objects_evacuated: int = 0  # moved out of evacuation candidates by mark-compact
    compacted: int = 0  # bytes moved out of evacuation candidates (GCTracer::AddCompactionEvent)
    pages_evacuated: int = 0
    pages_released: int = 0
    external_freed: int = 0  # backing-store bytes freed
    main_cpu_ms: float = 0.0  # the main thread's CPU time in the collection (0: not measured, the pause stands in)
    total_cpu_ms: float = 0.0  # the main's and every helper core's (tracer_parallel.py)
    helper_cpu_ms: float = 0.0  # helper cores' CPU time for this collection's marking (concurrent_marking.py)
    helpers: int = 0
    helper_objects: int = 0
    segments_stolen: int = 0
    cas_failures: int = 0
    work_words: int = 0  # work and span in words, and the part of both outside any job (work_span.py)
    span_words: int = 0
    serial_words: int = 0
    phase_ms: dict[str, float] = field(default_factory=dict)  # scavenge(.roots, .parallel), mark, evacuate, sweep
