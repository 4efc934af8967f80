"""The benchmarks' one multi-process harness: spawn N load processes, measure one window, merge.

Owns the protocol every load (`memsim bench alloc|cache|vm`, and bench/*.py through them) runs:

1. the parent starts `processes` children with the `spawn` method (it has imported gRPC, whose
   threads do not survive fork: grpc/grpc's doc/fork_support.md);
2. each child sets up (fills, warms up, touches its pages), then calls `Lane.meet()`; the parent
   meets them at the same barrier, reads the server (`snapshot`), and only then releases them;
3. the children run their timed loop for `seconds`, recording each round trip's latency into their
   own HdrHistogram (`Lane.record`) and publishing their op count (`Lane.count`, for the progress bar);
4. they meet again, the parent reads the server a second time, and releases them to tear down;
5. each child returns a picklable result holding `hist.encode()`; the parent merges the encodings
   (HdrHistogram's `decode_and_add`: the merged percentiles are those of all samples together).

So the server's counters (locks, INFO, vmstat) are read exactly around the timed window, not
around the set-up or the teardown. A meeting is two waits of one barrier of N+1 parties: the
first says everyone arrived, the second that the parent has read the server.

A child that raises breaks the barrier, so nobody waits for it, and reports its error; the parent
then raises RuntimeError naming it. A load that prefers to carry on past a peer's failure (the
allocator load counts errors and still frees what it allocated) catches its own exceptions, calls
`Lane.abort()` and passes `tolerant=True`, so meetings become best-effort.

May touch: nothing of the server but through `snapshot`; imports no gRPC itself.
"""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing as mp
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from hdrh.histogram import HdrHistogram

MAX_LATENCY_US = 60_000_000  # one minute: a round trip slower than that is recorded as one minute
SIGNIFICANT_DIGITS = 3

S = TypeVar("S")  # what `snapshot` returns
R = TypeVar("R")  # what a load process returns

# The percentile figures a report may ask for, by the names the JSON reports use.
FIGURES: dict[str, Callable[[HdrHistogram], int]] = {
    "p50": lambda h: h.get_value_at_percentile(50),
    "p99": lambda h: h.get_value_at_percentile(99),
    "p99.9": lambda h: h.get_value_at_percentile(99.9),
    "max": lambda h: h.get_max_value(),
    "count": lambda h: h.get_total_count(),
}


def histogram() -> HdrHistogram:
    """An empty latency histogram in microseconds, 1 µs to MAX_LATENCY_US, 3 significant digits."""
    return HdrHistogram(1, MAX_LATENCY_US, SIGNIFICANT_DIGITS)


def merge(encoded: Iterable[bytes]) -> HdrHistogram:
    """The load processes' histograms (their `encode()`s) as one."""
    hist = histogram()
    for enc in encoded:
        if enc:
            hist.decode_and_add(enc)
    return hist


def latency(hist: HdrHistogram, figures: Sequence[str] = ("p50", "p99", "p99.9", "max")) -> dict[str, int]:
    """The named figures of a histogram, e.g. {"p50": 120, "p99": 900}."""
    return {name: FIGURES[name](hist) for name in figures}


class Counts(Protocol):
    """The shared op counts, one slot per process (a ctypes array in shared memory)."""

    def __setitem__(self, index: int, value: int, /) -> None: ...
    def __getitem__(self, index: slice, /) -> list[int]: ...


class Lane:
    """A load process's side of the harness: its index, the meetings, its histogram and op count."""

    def __init__(self, index: int, barrier: threading.Barrier, counts: Counts, timeout: float,
                 tolerant: bool):
        self.index = index
        self.barrier = barrier
        self.counts = counts
        self.timeout = timeout
        self.tolerant = tolerant

    @functools.cached_property
    def hist(self) -> HdrHistogram:
        """This process's latencies (made in the child: a Lane is pickled to it without one)."""
        return histogram()

    def meet(self) -> None:
        """Meet the others and the parent, and wait until the parent has read the server."""
        try:
            self.barrier.wait(self.timeout)
            self.barrier.wait(self.timeout)
        except threading.BrokenBarrierError:
            if not self.tolerant:
                raise  # a peer failed: the window is gone, and the parent reports why

    def abort(self) -> None:
        """Do not keep the others waiting for this process."""
        self.barrier.abort()

    def record(self, seconds: float) -> None:
        """One round trip's latency."""
        self.hist.record_value(max(1, min(MAX_LATENCY_US, int(seconds * 1e6))))

    def count(self, ops: int) -> None:
        """This process's ops so far in the window (the parent's progress bar sums them)."""
        self.counts[self.index] = ops


@dataclass
class Window(Generic[S, R]):
    """One run: the server read before and after the timed window, and each process's result."""

    before: S
    after: S
    results: list[R]


@dataclass
class _Failed:
    index: int
    error: str


def _child(body: Callable[..., R], lane: Lane, args: tuple[Any, ...], results: Queue[tuple[int, R | _Failed]]
           ) -> None:
    try:
        out: R | _Failed = body(lane, *args)
    except Exception as e:  # noqa: BLE001 - reported to the parent instead of a silent hang
        lane.abort()
        out = _Failed(lane.index, f"{type(e).__name__}: {e}")
    results.put((lane.index, out))


def context() -> SpawnContext:
    """The start method of every load process (make any extra queues a load needs from it)."""
    return mp.get_context("spawn")


def run(body: Callable[..., R], args: Sequence[tuple[Any, ...]], snapshot: Callable[[], S], *, seconds: float,
        timeout: float, label: str = "", progress: bool = False, tolerant: bool = False) -> Window[S, R]:
    """Run `body(lane, *args[i])` in one spawned process per entry of `args` (see the module doc).

    body must be a module-level function (spawn pickles it by name) that meets twice and returns
    a picklable result. `timeout` bounds each meeting; `label` names the progress bar."""
    ctx = context()
    n = len(args)
    barrier = ctx.Barrier(n + 1)
    counts = ctx.Array("q", n, lock=False)
    results: Queue[tuple[int, R | _Failed]] = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(body, Lane(i, barrier, counts, timeout, tolerant), args[i], results),
                         daemon=True) for i in range(n)]
    got: dict[int, R | _Failed] = {}
    try:
        for p in procs:
            p.start()
        try:
            before = _meet(barrier, snapshot, timeout, tolerant)
            _watch(seconds, procs, counts, label, progress)
            after = _meet(barrier, snapshot, timeout, tolerant)
        except threading.BrokenBarrierError:
            _collect(results, procs, got, time.monotonic() + 30)
            raise RuntimeError(f"a load process failed: {_first_failure(got) or 'it died'}") from None
        _collect(results, procs, got, time.monotonic() + timeout)
        for p in procs:
            p.join(timeout=10)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            if p.pid is not None:  # started
                p.join()
    failure = _first_failure(got)
    if failure:
        raise RuntimeError(f"load process failed: {failure}")
    if len(got) < n:
        raise RuntimeError(f"only {len(got)} of {n} load processes reported")
    return Window(before, after, [r for _, r in sorted(got.items()) if not isinstance(r, _Failed)])


def _meet(barrier: threading.Barrier, snapshot: Callable[[], S], timeout: float, tolerant: bool) -> S:
    """The parent's side of a meeting: all arrived, read the server, release them."""
    try:
        barrier.wait(timeout)
    except threading.BrokenBarrierError:
        if not tolerant:
            raise
    try:
        return snapshot()
    except BaseException:
        barrier.abort()
        raise
    finally:
        with contextlib.suppress(threading.BrokenBarrierError):
            if not barrier.broken:
                barrier.wait(timeout)


def _collect(results: Queue[tuple[int, R | _Failed]], procs: list[SpawnProcess], got: dict[int, R | _Failed],
             deadline: float) -> None:
    while len(got) < len(procs) and time.monotonic() < deadline:
        try:
            i, out = results.get(timeout=1.0)
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and results.empty():
                return
            continue
        got[i] = out


def _first_failure(got: dict[int, Any]) -> str:
    """The failure to report: a process's own error before a peer's broken barrier, which only
    says that some other process failed first."""
    failed = [r.error for _, r in sorted(got.items()) if isinstance(r, _Failed)]
    return next((e for e in failed if not e.startswith("BrokenBarrierError")), failed[0] if failed else "")


def _watch(seconds: float, procs: list[SpawnProcess], counts: Counts, label: str,
           progress: bool) -> None:
    """Wait out the timed window (or until every process is gone), with a progress bar if asked."""
    t0 = time.monotonic()
    if not progress:
        while time.monotonic() - t0 < seconds and any(p.is_alive() for p in procs):
            time.sleep(0.2)
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), TextColumn("{task.fields[ops]:,} ops"), TimeRemainingColumn(),
                  transient=True) as bar:
        task = bar.add_task("run", total=seconds, ops=0)
        while (el := time.monotonic() - t0) < seconds and any(p.is_alive() for p in procs):
            bar.update(task, completed=el, ops=sum(counts[:]))
            time.sleep(0.2)
        bar.update(task, completed=seconds, ops=sum(counts[:]))


def emit(report: dict[str, Any], json_path: str | None, quiet: bool, printer: Callable[[dict[str, Any]], None]
         ) -> None:
    """A finished report: printed (unless quiet) and written as JSON (if a path is given)."""
    if not quiet:
        printer(report)
    if json_path:
        write_json(json_path, report)


def write_json(path: str, report: dict[str, Any]) -> None:
    """A report as indented JSON (the benches' one format), its folder made if it is missing."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
