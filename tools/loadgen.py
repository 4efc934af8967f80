"""`memsim bench alloc`: a Larson-style allocator load from many client processes.

Larson & Krishnan (ISMM '98), as mimalloc-bench runs it: each thread keeps an array of
live objects; each step frees a random victim and allocates a new object of random size
(8–1000 B) in its place. Here each *process* does that against the server, `batch`
steps' worth of ops per stream message (or one unary call per op with --batch 1), and a
fraction `cross_free` of the victims are not freed by their allocator but handed to the
next process, which frees them: the cross-core frees that make allocators interesting.

Processes are started by tools/harness.py with the `spawn` method (this process has
imported gRPC, which does not survive fork). Latency is measured per round trip (a batch
or a call) into an HdrHistogram per process; the parent merges them. Throughput counts
ops (an alloc or a free each). Ops, latencies and the server's lock and cache counters all cover exactly the
timed window: the processes fill their slots, meet at a barrier while the parent reads the
server's counters, run, meet again for the second reading, and only then free everything.
"""

from __future__ import annotations

import queue
import random
import sys
import time
from dataclasses import asdict, dataclass
from multiprocessing.queues import Queue
from typing import Any, TypeAlias

from memsim.client import Client, MemsimError
from memsim.tools import harness
from memsim.tools.harness import Lane
from memsim.tools.loads import AllocLoad
from memsim.v1 import machine_pb2 as pb

# A process's inbox: lists of addresses handed over to it to free, then None when its upstream is done.
Handoffs: TypeAlias = "Queue[list[int] | None]"


@dataclass
class ProcResult:
    ops: int
    errors: int
    error_samples: list[str]
    histogram: bytes  # HdrHistogram encoding
    elapsed: float


class _LoadProcess:
    """One client process of the load: Larson's loop against one connection."""

    def __init__(self, lane: Lane, load: AllocLoad, cores: int, inbox: Handoffs, outbox: Handoffs):
        self.lane = lane
        self.load = load
        self.core = (lane.index % cores) if load.pin else None
        self.inbox = inbox
        self.outbox = outbox
        self.rng = random.Random(load.seed * 1000 + lane.index)
        self.ops = 0
        self.errors = 0
        self.samples: list[str] = []
        self.live: list[int] = [0] * load.slots
        self.done_upstream = False
        self.measuring = False  # ops and latencies count only between the fill and the drain

    def note(self, e: BaseException) -> None:
        self.errors += 1
        if len(self.samples) < 5:
            self.samples.append(f"{type(e).__name__}: {e}")

    def _record(self, t0: float, nops: int) -> None:
        if self.measuring:
            self.lane.record(time.perf_counter() - t0)
            self.ops += nops

    def run_step(self, c: Client, frees: list[int], allocs: list[tuple[int, int]]) -> None:
        """Free `frees`, then allocate sizes into slots, as one batch or as unary calls."""
        if self.load.batch <= 1:
            for a in frees:
                t0 = time.perf_counter()
                try:
                    c.free(a)
                except MemsimError as e:
                    self.note(e)
                self._record(t0, 1)
            for slot, size in allocs:
                t0 = time.perf_counter()
                try:
                    self.live[slot] = c.alloc(size).address
                except MemsimError as e:
                    self.note(e)
                self._record(t0, 1)
            return
        b = c.batch()
        for a in frees:
            b.free(a)
        refs = [(slot, b.alloc(size)) for slot, size in allocs]
        t0 = time.perf_counter()
        try:
            res = b.execute()
        except (MemsimError, EOFError) as lost:
            # The core went away mid-batch (killed, restarting): what this batch allocated is
            # unknown, so it is lost to us; count it and carry on once the core is back.
            self.note(lost)
            time.sleep(0.2)
            return
        self._record(t0, len(b))
        for _, err in res.errors:
            self.note(err)
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

    def drive(self) -> float:
        load, rng = self.load, self.rng
        per_msg = max(1, load.batch // 2)  # a step is a free and an alloc
        # keep=True: objects handed to the next process must outlive this client (it frees its own).
        with Client(load.target, core=self.core, timeout=30.0, keep=True) as c:
            for lo in range(0, load.slots, per_msg * 2):
                self.run_step(c, [], [(s, rng.randint(load.min_size, load.max_size))
                                      for s in range(lo, min(load.slots, lo + per_msg * 2))])
            self.lane.meet()
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
                self.run_step(c, frees, allocs)
                self.lane.count(self.ops)
            elapsed = time.perf_counter() - t_start
            self.measuring = False
            self.lane.meet()
            # Drain: free what was handed to us until upstream says it is done, then free our
            # own live objects, so that the machine ends as empty as it began.
            self.outbox.put(None)
            give_up = time.monotonic() + 15
            while not self.done_upstream and time.monotonic() < give_up:
                frees = self.take_handoffs()
                if frees:
                    self.run_step(c, frees, [])
                else:
                    time.sleep(0.01)
            self.run_step(c, self.take_handoffs(), [])
            mine = [a for a in self.live if a]
            step = max(1, load.batch)
            for lo in range(0, len(mine), step):
                self.run_step(c, mine[lo:lo + step], [])
        return elapsed


def _worker(lane: Lane, load: AllocLoad, cores: int, inbox: Handoffs, outbox: Handoffs) -> ProcResult:
    # Never let this process's exit wait on a peer that stopped reading its queue.
    inbox.cancel_join_thread()
    outbox.cancel_join_thread()
    p = _LoadProcess(lane, load, cores, inbox, outbox)
    elapsed = 0.0
    try:
        elapsed = p.drive()
    except Exception as e:  # noqa: BLE001 - reported with the results, never dropped
        p.note(e)
        lane.abort()  # do not keep the others waiting for us
    return ProcResult(p.ops, p.errors, p.samples, lane.hist.encode(), elapsed)


def _counter_deltas(before: pb.Stats, after: pb.Stats) -> dict[str, list[dict[str, int | str]]]:
    locks_b = {lk.name: lk for lk in before.locks}
    locks: list[dict[str, int | str]] = []
    for lk in after.locks:
        b = locks_b.get(lk.name)
        acquisitions = lk.acquisitions - (b.acquisitions if b else 0)
        if acquisitions:
            locks.append({"name": lk.name, "acquisitions": acquisitions,
                          "contended": lk.contended - (b.contended if b else 0),
                          "wait_ns": lk.wait_ns - (b.wait_ns if b else 0),
                          "max_wait_ns_since_start": lk.max_wait_ns})  # a maximum cannot be differenced
    caches_b = {c.core: c for c in before.caches}
    caches: list[dict[str, int | str]] = []
    for c in after.caches:
        cb = caches_b[c.core]
        caches.append({"core": c.core, "hits": c.hits - cb.hits, "refills": c.refills - cb.refills,
                       "flushes": c.flushes - cb.flushes, "central_direct": c.central_direct - cb.central_direct,
                       "tiny_allocs": c.tiny_allocs - cb.tiny_allocs})
    return {"locks": locks, "caches": caches}


def _stats(target: str) -> pb.Stats:
    with Client(target, timeout=10.0) as c:
        return c.stats()


def run_alloc_load(load: AllocLoad) -> dict[str, Any]:
    """Run the load and return the report as a dict (also used by bench/)."""
    load.validate()
    with Client(load.target, timeout=10.0) as c:
        c.wait_ready(10.0)
        info = c.info()
    ctx = harness.context()
    # Process i hands the objects it does not free itself to process i+1, through i+1's inbox.
    inboxes = [ctx.Queue() for _ in range(load.processes)]
    args = [(load, info.cores, inboxes[i], inboxes[(i + 1) % load.processes]) for i in range(load.processes)]
    # tolerant: a process that fails still reports its counts, and the others still drain.
    w = harness.run(_worker, args, lambda: _stats(load.target), seconds=load.seconds, timeout=load.seconds + 120,
                    label="bench alloc", progress=load.progress, tolerant=True)
    outs: list[ProcResult] = w.results
    end = _stats(load.target)
    hist = harness.merge(o.histogram for o in outs)
    ops = sum(o.ops for o in outs)
    elapsed = max(o.elapsed for o in outs)
    deltas = _counter_deltas(w.before, w.after)
    hits = sum(int(c["hits"]) for c in deltas["caches"])
    refills = sum(int(c["refills"]) for c in deltas["caches"])
    central_acq = sum(int(lk["acquisitions"]) for lk in deltas["locks"]
                      if str(lk["name"]).startswith(("mcentral", "global")))
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
        "latency_us": {"per": per, **harness.latency(hist, ("p50", "p99", "p99.9", "max", "count"))},
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


def print_report(r: dict[str, Any]) -> None:
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
    try:
        r = run_alloc_load(load)
    except MemsimError as e:
        unavailable = e.code.name == "UNAVAILABLE"
        hint = "; is a server running there? point at it with --target HOST:PORT" if unavailable else ""
        print(f"memsim bench alloc: {load.target}: {e.code.name}: {e}{hint}", file=sys.stderr)
        return 1
    harness.emit(r, json_path, quiet, print_report)
    return 0
