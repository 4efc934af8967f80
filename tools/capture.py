"""`memsim trace capture`: a live server's trace, written in sim/trace's formats.

Owns: turning client/monitor.py's merged records into a trace file, and the command's summary.
Touches: the server (through the client) and the output file.
Invariants: the trace's time column is microseconds since the capture's first record (the
server's CLOCK_MONOTONIC; a capture lasts at most limits.MAX_MONITOR_SECONDS, an hour, which
fits oracleGeneral's uint32); rows are in the merged order, one per key (cache) or per page
(VM); the key of a VM record is its virtual page number.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from memsim.client.monitor import Capture, Records, Service
from memsim.sim.trace.chunk import TraceChunk
from memsim.sim.trace.io import SUFFIXES, write_trace

DEFAULT_FORMAT = "csv"


def format_for(path: str, fmt: str | None) -> str:
    """The format asked for, else the output's suffix's, else CSV."""
    if fmt:
        return fmt
    name = path.lower()
    return next((f for suffix, f in SUFFIXES.items() if name.endswith(suffix)), DEFAULT_FORMAT)


def to_chunk(rec: Records) -> TraceChunk:
    t0 = int(rec.time_ns[0]) if len(rec) else 0
    return TraceChunk(time=(rec.time_ns - t0) // 1000, key=rec.key, size=rec.size, op=rec.op,
                      next_access=np.full(len(rec), -1, np.int64))


@dataclass(frozen=True)
class CaptureSummary:
    path: str
    fmt: str
    records: int
    per_core: dict[int, int]
    lost: dict[int, int]

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "format": self.fmt, "records": self.records,
                "per_core": {str(k): v for k, v in self.per_core.items()},
                "lost": {str(k): v for k, v in self.lost.items()}}

    def text(self) -> str:
        cores = ", ".join(f"core {c}: {n:,}" for c, n in sorted(self.per_core.items()))
        lost = sum(self.lost.values())
        warn = f"; {lost:,} records LOST (the reader fell behind: raise --limit)" if lost else ""
        return f"wrote {self.records:,} records to {self.path} ({self.fmt}): {cores}{warn}"


def write_capture(rec: Records, path: str, fmt: str) -> CaptureSummary:
    write_trace(path, [to_chunk(rec)], fmt)
    return CaptureSummary(os.fspath(path), fmt, len(rec), rec.per_core, rec.lost)


def capture(target: str, service: Service, seconds: float, path: str, fmt: str | None = None, *,
            space: int = 0, limit: int = 0, timeout: float = 10.0) -> CaptureSummary:
    """Record `seconds` of the server's cache commands (service "cache") or of a space's page
    accesses ("vm") from every core, and write them to path."""
    with Capture(target, service, seconds=seconds, space=space, limit=limit, timeout=timeout) as cap:
        rec = cap.result()
    return write_capture(rec, path, format_for(path, fmt))
