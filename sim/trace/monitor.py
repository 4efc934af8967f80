"""A core's monitors: what the core records while someone captures, for Redis's MONITOR-like
stream of the cache's commands (sim/cache/monitor.py) and a VM space's page accesses
(sim/vm/memory.py). Redis keeps its monitors in a list and, for each command, feeds every one
(replicationFeedMonitors in src/replication.c); a monitor that reads too slowly is disconnected by
client-output-buffer-limit (src/networking.c, checkClientOutputBufferLimits). Here a slow reader
is not disconnected: it loses the records that do not fit its buffer, and is told how many.

Owns: `Feed` (one core's subscribers, one per open capture) and `Subscriber` (a bounded buffer of
records: time, key, size, op). Touches nothing else; whoever records turns the feed on and off
through `on_change`, so that with nobody subscribed the recording path costs its caller one test
of an attribute for None.
Invariants: a core's subscribers' limits add up to at most `MAX_LIMIT` (one subscriber past it is
refused before its buffers are allocated: ResourceExhausted), so a core's captures hold at most two
buffer sets of MAX_LIMIT records however many are opened; a subscriber holds at most `limit`
records; a record that finds it full is counted in `lost` instead; once `close`d it takes no record,
so the records drained after `close` are all it will ever have. The buffers are two preallocated
column sets, swapped on each drain. Records are taken under the core's mutex by the thread running
the command or the access; drains run in the capture's stream thread; the subscriber's own lock
orders the two.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from memsim.sim.errors import ResourceExhausted
from memsim.sim.trace.chunk import TraceChunk

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Feed", "Subscriber"]

DEFAULT_LIMIT = 1 << 16  # records a subscriber buffers between drains (about 1.6 MiB per buffer set)
MAX_LIMIT = 1 << 22  # records one subscriber, and one core's subscribers together, may buffer (~200 MiB)


class _Columns:
    def __init__(self, n: int):
        self.time = np.empty(n, np.int64)
        self.key = np.empty(n, np.int64)
        self.size = np.empty(n, np.int64)
        self.op = np.empty(n, np.int8)


class Subscriber:
    """One capture's buffer on one core. `tag` filters: None takes every record, else only records
    of that tag (a VM space's number)."""

    def __init__(self, limit: int = DEFAULT_LIMIT, tag: int | None = None):
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"a monitor buffers 1 to {MAX_LIMIT} records, not {limit}")
        self.limit = limit
        self.tag = tag
        self._lock = threading.Lock()
        self._cols = _Columns(limit)
        self._spare = _Columns(limit)
        self._n = 0
        self._lost = 0
        self.recorded = 0  # records kept, over the subscriber's life
        self.lost_total = 0
        self.closed = False
        self._ready = threading.Event()

    def add(self, t: int, key: int, size: int, op: int) -> None:
        with self._lock:
            if self.closed:
                return
            n = self._n
            if n >= self.limit:
                self._lost += 1
                self.lost_total += 1
                return
            c = self._cols
            c.time[n] = t
            c.key[n] = key
            c.size[n] = size
            c.op[n] = op
            self._n = n + 1
            self.recorded += 1
        if n == 0:
            self._ready.set()

    def wait(self, timeout: float) -> bool:
        """Until a record arrives (True) or timeout seconds pass."""
        return self._ready.wait(timeout)

    def pending(self) -> int:
        return self._n

    def drain(self) -> tuple[TraceChunk, int]:
        """The records since the last drain, in the order taken, and how many were lost meanwhile."""
        with self._lock:
            c, n, lost = self._cols, self._n, self._lost
            self._cols, self._spare = self._spare, c
            self._n = self._lost = 0
            self._ready.clear()
        chunk = TraceChunk(time=c.time[:n].copy(), key=c.key[:n].copy(), size=c.size[:n].copy(), op=c.op[:n].copy(),
                           next_access=np.full(n, -1, np.int64))
        return chunk, lost

    def close(self) -> None:
        with self._lock:
            self.closed = True
        self._ready.set()


class Feed:
    """One core's subscribers. `on_change(active)` is called when the first one arrives and when
    the last one leaves: the recorder attaches itself to its command or access path then."""

    def __init__(self, on_change: Callable[[bool], None]):
        self._subs: tuple[Subscriber, ...] = ()  # replaced, never mutated: `record` reads it without a lock
        self._lock = threading.Lock()
        self._on_change = on_change

    @property
    def active(self) -> bool:
        return bool(self._subs)

    def subscribe(self, limit: int = DEFAULT_LIMIT, tag: int | None = None) -> Subscriber:
        with self._lock:  # checked before the buffers exist: 64 streams of MAX_LIMIT would be ~13 GiB
            taken = sum(x.limit for x in self._subs)
            if taken + limit > MAX_LIMIT:
                raise ResourceExhausted(f"this core's monitors buffer at most {MAX_LIMIT} records in all: "
                                        f"{taken} are taken, {limit} more asked")
            s = Subscriber(limit, tag)
            was = bool(self._subs)
            self._subs = (*self._subs, s)
            if not was:
                self._on_change(True)
        return s

    def unsubscribe(self, s: Subscriber) -> None:
        s.close()
        with self._lock:
            self._subs = tuple(x for x in self._subs if x is not s)
            if not self._subs:
                self._on_change(False)

    def record(self, key: int, size: int, op: int, tag: int | None = None) -> None:
        """One record to every subscriber that takes it, stamped with CLOCK_MONOTONIC (one clock for
        every process of the machine, so that cores' records merge by time)."""
        t = time.monotonic_ns()
        for s in self._subs:
            if s.tag is None or s.tag == tag:
                s.add(t, key, size, op)
