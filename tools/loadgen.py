"""`memsim bench alloc`: a Larson-style allocator load from many client processes.

Larson & Krishnan (ISMM '98), as mimalloc-bench runs it: each thread keeps an array of
live objects; each step frees a random victim and allocates a new object of random size
(8–1000 B) in its place. Here each *process* does that against the server, `batch`
steps' worth of ops per stream message (or one unary call per op with --batch 1), and a
fraction `cross_free` of the victims are not freed by their allocator but handed to the
next process, which frees them: the cross-core frees that make allocators interesting.

Processes are started with the `spawn` method (this process has imported gRPC, which does
not survive fork). Latency is measured per round trip (a batch or a call) into an
HdrHistogram per process; the parent merges them. Throughput counts ops (an alloc or a
free each). Ops, latencies and the server's lock and cache counters all cover exactly the
timed window: the processes fill their slots, meet at a barrier while the parent reads the
server's counters, run, meet again for the second reading, and only then free everything.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import queue
import random
import sys
import threading
import time
from dataclasses import asdict, dataclass

from hdrh.histogram import HdrHistogram

MAX_LATENCY_US = 60_000_000


@dataclass
class AllocLoad:
    target: str = "127.0.0.1:50051"
    processes: int = 4
    seconds: float = 10.0
    batch: int = 100  # ops per message; 1 = unary calls
    slots: int = 1000
    min_size: int = 8
    max_size: int = 1000
    pin: bool = False
    cross_free: float = 0.1
    seed: int = 4141
    progress: bool = True

    def validate(self) -> None:
        """ValueError naming the first bad field, before any process starts or any call is made."""
        if self.processes < 1 or self.slots < 1 or self.batch < 1:
            raise ValueError("processes, slots and batch must be at least 1")
        if not self.seconds > 0:
            raise ValueError(f"seconds {self.seconds} must be above 0")
        if not 1 <= self.min_size <= self.max_size:
            raise ValueError(f"--min-size {self.min_size} and --max-size {self.max_size}: give 1 <= min <= max")
        if not 0 <= self.cross_free <= 1:
            raise ValueError(f"--cross-free {self.cross_free} is a fraction between 0 and 1")


@dataclass
class ProcResult:
    index: int
    ops: int
    errors: int
    error_samples: list[str]
    histogram: bytes  # HdrHistogram encoding
    elapsed: float


class _LoadProcess:
    """One client process of the load: Larson's loop against one connection."""

    def __init__(self, i: int, load: AllocLoad, cores: int, counts, inbox, outbox, phases=None):
        self.i = i
        self.load = load
        self.core = (i % cores) if load.pin else None
        self.counts = counts
        self.inbox = inbox
        self.outbox = outbox
        self.rng = random.Random(load.seed * 1000 + i)
        self.hist = HdrHistogram(1, MAX_LATENCY_US, 3)
        self.ops = 0
        self.errors = 0
        self.samples: list[str] = []
        self.live: list[int] = [0] * load.slots
        self.done_upstream = False
        self.client = None
        self.measuring = False  # ops and latencies count only between the fill and the drain
        self.phases = phases  # (filled, go, measured, drain): the parent snapshots the server between

    def note(self, e: BaseException) -> None:
        self.errors += 1
        if len(self.samples) < 5:
            self.samples.append(f"{type(e).__name__}: {e}")

    def _timed(self, fn) -> None:
        t0 = time.perf_counter()
        try:
            fn()
        finally:
            self._record(t0, 1)

    def _record(self, t0: float, nops: int) -> None:
        if self.measuring:
            self.hist.record_value(max(1, int((time.perf_counter() - t0) * 1e6)))
            self.ops += nops

    def run_step(self, frees: list[int], allocs: list[tuple[int, int]]) -> None:
        """Free `frees`, then allocate sizes into slots, as one batch or as unary calls."""
        from memsim.client import MemsimError

        c = self.client
        if self.load.batch <= 1:
            for a in frees:
                try:
                    self._timed(lambda a=a: c.free(a))
                except MemsimError as e:
                    self.note(e)
            for slot, size in allocs:
                try:
                    self._timed(lambda slot=slot, size=size: self.live.__setitem__(slot, c.alloc(size).address))
                except MemsimError as e:
                    self.note(e)
            return
        b = c.batch()
        for a in frees:
            b.free(a)
        refs = [(slot, b.alloc(size)) for slot, size in allocs]
        t0 = time.perf_counter()
        try:
            res = b.execute()
        except (MemsimError, EOFError) as e:
            # The core went away mid-batch (killed, restarting): what this batch allocated is
            # unknown, so it is lost to us; count it and carry on once the core is back.
            self.note(e)
            time.sleep(0.2)
            return
        self._record(t0, len(b))
        for _, e in res.errors:
            self.note(e)
        for slot, ref in refs:
            self.live[slot] = res[ref.index].address

    def take_handoffs(self) -> list[int]:
        got: list[int] = []
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return got
            if item is None:
                self.done_upstream = True
            else:
                got.extend(item)

    def _phase(self, first: int) -> None:
        """Meet the other processes and the parent at a barrier, then wait for its go-ahead."""
        if self.phases is None:
            return
        barrier, event = self.phases[first], self.phases[first + 1]
        try:
            barrier.wait(timeout=self.load.seconds + 120)
        except threading.BrokenBarrierError:
            return  # a peer died: carry on without the exact window
        event.wait(timeout=60)

    def drive(self) -> float:
        from memsim.client import Client

        load, rng = self.load, self.rng
        per_msg = max(1, load.batch // 2)  # a step is a free and an alloc
        # keep=True: objects handed to the next process must outlive this client (it frees its own).
        with Client(load.target, core=self.core, timeout=30.0, keep=True) as self.client:
            for lo in range(0, load.slots, per_msg * 2):
                self.run_step([], [(s, rng.randint(load.min_size, load.max_size))
                                   for s in range(lo, min(load.slots, lo + per_msg * 2))])
            self._phase(0)
            t_start = time.perf_counter()
            deadline = t_start + load.seconds
            self.measuring = True
            while time.perf_counter() < deadline:
                frees = self.take_handoffs()
                allocs: list[tuple[int, int]] = []
                handoff: list[int] = []
                chosen: set[int] = set()
                for _ in range(per_msg):
                    slot = rng.randrange(load.slots)
                    if slot in chosen:  # one pending alloc per slot, or the first one would leak
                        continue
                    chosen.add(slot)
                    victim = self.live[slot]
                    if victim:
                        (handoff if rng.random() < load.cross_free else frees).append(victim)
                    allocs.append((slot, rng.randint(load.min_size, load.max_size)))
                    self.live[slot] = 0
                if handoff:
                    self.outbox.put(handoff)
                self.run_step(frees, allocs)
                self.counts[self.i] = self.ops
            elapsed = time.perf_counter() - t_start
            self.measuring = False
            self._phase(2)
            # Drain: free what was handed to us until upstream says it is done, then free our
            # own live objects, so that the machine ends as empty as it began.
            self.outbox.put(None)
            give_up = time.monotonic() + 15
            while not self.done_upstream and time.monotonic() < give_up:
                frees = self.take_handoffs()
                if frees:
                    self.run_step(frees, [])
                else:
                    time.sleep(0.01)
            self.run_step(self.take_handoffs(), [])
            mine = [a for a in self.live if a]
            step = max(1, load.batch)
            for lo in range(0, len(mine), step):
                self.run_step(mine[lo:lo + step], [])
        return elapsed


def _worker(i: int, load: AllocLoad, cores: int, counts, inbox, outbox, results, phases) -> None:
    # Never let this process's exit wait on a peer that stopped reading its queue.
    inbox.cancel_join_thread()
    outbox.cancel_join_thread()
    p = _LoadProcess(i, load, cores, counts, inbox, outbox, phases)
    elapsed = 0.0
    try:
        elapsed = p.drive()
    except Exception as e:  # noqa: BLE001 - reported with the results, never dropped
        p.note(e)
        for barrier in phases[0::2]:  # do not keep the others waiting for us
            barrier.abort()
    results.put(ProcResult(i, p.ops, p.errors, p.samples, p.hist.encode(), elapsed))


def _counter_deltas(before, after) -> dict:
    locks_b = {lk.name: lk for lk in before.locks}
    locks = []
    for lk in after.locks:
        b = locks_b.get(lk.name)
        d = {"name": lk.name, "acquisitions": lk.acquisitions - (b.acquisitions if b else 0),
             "contended": lk.contended - (b.contended if b else 0),
             "wait_ns": lk.wait_ns - (b.wait_ns if b else 0),
             "max_wait_ns_since_start": lk.max_wait_ns}  # a maximum cannot be differenced
        if d["acquisitions"]:
            locks.append(d)
    caches_b = {c.core: c for c in before.caches}
    caches = []
    for c in after.caches:
        b = caches_b[c.core]
        caches.append({"core": c.core, "hits": c.hits - b.hits, "refills": c.refills - b.refills,
                       "flushes": c.flushes - b.flushes, "central_direct": c.central_direct - b.central_direct,
                       "tiny_allocs": c.tiny_allocs - b.tiny_allocs})
    return {"locks": locks, "caches": caches}


def run_alloc_load(load: AllocLoad) -> dict:
    """Run the load and return the report as a dict (also used by bench/)."""
    from memsim.client import Client

    load.validate()
    with Client(load.target, timeout=10.0) as c:
        c.wait_ready(10.0)
        info = c.info()
    ctx = mp.get_context("spawn")
    # The server's counters are read exactly around the timed phase: every process fills its
    # slots, meets the others at `filled`, waits for `go` (the parent has read the counters),
    # runs, meets at `measured`, and frees everything only after `drain`.
    phases = (ctx.Barrier(load.processes + 1), ctx.Event(), ctx.Barrier(load.processes + 1), ctx.Event())
    counts = ctx.Array("q", load.processes, lock=False)
    inboxes = [ctx.Queue() for _ in range(load.processes)]
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(i, load, info.cores, counts, inboxes[i],
                                               inboxes[(i + 1) % load.processes], results, phases), daemon=True)
             for i in range(load.processes)]
    for p in procs:
        p.start()
    try:
        before = _snapshot_at(load, phases[0], phases[1])
        _watch(load, procs, counts)
        after = _snapshot_at(load, phases[2], phases[3])
        outs: list[ProcResult] = []
        deadline = time.monotonic() + load.seconds + 120
        while len(outs) < load.processes and time.monotonic() < deadline:
            try:
                outs.append(results.get(timeout=1.0))
            except queue.Empty:
                if not any(p.is_alive() for p in procs) and results.empty():
                    break
        for p in procs:
            p.join(timeout=10)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    if len(outs) < load.processes:
        raise RuntimeError(f"only {len(outs)} of {load.processes} load processes reported")
    with Client(load.target, timeout=10.0) as c:
        end = c.stats()
    hist = HdrHistogram(1, MAX_LATENCY_US, 3)
    for o in outs:
        hist.decode_and_add(o.histogram)
    ops = sum(o.ops for o in outs)
    elapsed = max(o.elapsed for o in outs)
    deltas = _counter_deltas(before, after)
    hits = sum(c["hits"] for c in deltas["caches"])
    refills = sum(c["refills"] for c in deltas["caches"])
    central_acq = sum(lk["acquisitions"] for lk in deltas["locks"] if lk["name"].startswith(("mcentral", "global")))
    per = "call" if load.batch <= 1 else f"batch of {load.batch}"
    return {
        "load": asdict(load),
        "machine": {"cores": info.cores, "memory_bytes": info.memory_bytes, "per_core_caches": info.per_core_caches,
                    "global_lock": info.global_lock},
        "ops": ops,
        "seconds": elapsed,
        "ops_per_s": ops / elapsed if elapsed else 0.0,
        "errors": sum(o.errors for o in outs),
        "error_samples": [s for o in outs for s in o.error_samples][:5],
        "latency_us": {"per": per, "p50": hist.get_value_at_percentile(50),
                       "p99": hist.get_value_at_percentile(99), "p99.9": hist.get_value_at_percentile(99.9),
                       "max": hist.get_max_value(), "count": hist.get_total_count()},
        "central_lock_acquisitions_per_op": central_acq / ops if ops else 0.0,
        "mcache_hits": hits,
        # Of the allocations that reached a per-core cache, the share it served without a lock
        # (each refill is one allocation that missed). Tiny objects packed into a block are not counted.
        "mcache_hit_rate": hits / (hits + refills) if hits + refills else 0.0,
        "per_core_mcache_hits": [c["hits"] for c in deltas["caches"]],
        "locks": deltas["locks"],
        "caches": deltas["caches"],
        "heap_after": {f: getattr(end.memstats, f) for f in ("HeapAlloc", "HeapInuse", "HeapSys", "HeapObjects")},
    }


def _snapshot_at(load: AllocLoad, barrier, event):
    """Meet the load processes at `barrier`, read the server's counters, release them."""
    from memsim.client import Client

    with contextlib.suppress(threading.BrokenBarrierError):  # a process failed: figures are approximate
        barrier.wait(timeout=load.seconds + 120)
    try:
        with Client(load.target, timeout=10.0) as c:
            return c.stats()
    finally:
        event.set()


def _watch(load: AllocLoad, procs, counts) -> None:
    """Show progress until the load's time is up and the processes are draining."""
    t0 = time.monotonic()
    if not load.progress:
        while time.monotonic() - t0 < load.seconds and any(p.is_alive() for p in procs):
            time.sleep(0.2)
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("bench alloc"), BarColumn(), TextColumn("{task.fields[ops]} ops"),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("run", total=load.seconds, ops=0)
        while (el := time.monotonic() - t0) < load.seconds and any(p.is_alive() for p in procs):
            bar.update(task, completed=el, ops=sum(counts))
            time.sleep(0.2)
        bar.update(task, completed=load.seconds, ops=sum(counts))


def print_report(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    lo = r["load"]
    m = r["machine"]
    mode = "unary calls" if lo["batch"] <= 1 else f"{lo['batch']} ops per batch"
    con.print(f"[bold]bench alloc[/bold]: {lo['processes']} processes × {lo['seconds']} s, {mode}, "
              f"sizes {lo['min_size']}–{lo['max_size']} B, cross-process frees {lo['cross_free']:.0%}, "
              f"{'pinned' if lo['pin'] else 'shared port'}; machine: {m['cores']} cores, caches "
              f"{'on' if m['per_core_caches'] else 'off'}, {'global lock' if m['global_lock'] else 'per-class locks'}")
    t = Table(show_header=True)
    for col in ("ops", "ops/s", "errors", f"p50 µs ({r['latency_us']['per']})", "p99 µs", "p99.9 µs",
                "central locks/op", "mcache hits"):
        t.add_column(col, justify="right")
    lat = r["latency_us"]
    t.add_row(str(r["ops"]), f"{r['ops_per_s']:,.0f}", str(r["errors"]), str(lat["p50"]), str(lat["p99"]),
              str(lat["p99.9"]), f"{r['central_lock_acquisitions_per_op']:.4f}", str(r["mcache_hits"]))
    con.print(t)
    lk = Table(title="busiest locks during the timed run")
    for col in ("lock", "acq", "contended", "wait ms"):
        lk.add_column(col, justify="right")
    for x in sorted(r["locks"], key=lambda x: -x["acquisitions"])[:8]:
        lk.add_row(x["name"], str(x["acquisitions"]), str(x["contended"]), f"{x['wait_ns'] / 1e6:.2f}")
    con.print(lk)
    per_core = r["per_core_mcache_hits"]
    con.print(f"mcache hit rate (allocations served without a lock): {r['mcache_hit_rate']:.2%}; "
              f"hits per core: {per_core}")
    idle = [i for i, n in enumerate(per_core) if n == 0]
    if idle and lo["processes"] >= len(per_core):
        con.print(f"[yellow]cores {idle} served nothing: SO_REUSEPORT balances connections, not calls; "
                  f"use --pin to spread processes over cores[/yellow]")
    for s in r["error_samples"]:
        con.print(f"[yellow]error sample[/yellow]: {s}")


def run_alloc_bench(load: AllocLoad, json_path: str | None = None, quiet: bool = False) -> int:
    from memsim.client import MemsimError

    try:
        r = run_alloc_load(load)
    except MemsimError as e:
        unavailable = e.code.name == "UNAVAILABLE"
        hint = "; is a server running there? point at it with --target HOST:PORT" if unavailable else ""
        print(f"memsim bench alloc: {load.target}: {e.code.name}: {e}{hint}", file=sys.stderr)
        return 1
    if not quiet:
        print_report(r)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(r, f, indent=2)
    return 0
