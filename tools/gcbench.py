"""`memsim bench gc`: the GC workloads (tools/gcloads.py, tools/splay.py) from several client
processes, each with an isolate of its own, and the collector's figures from their GC traces.

Each harness lane (tools/harness.py) creates an isolate with the load's --semi-space and
--max-old-space, runs the workload's set-up (Splay's tree), meets the others, runs the workload
for `seconds`, meets again, reads the rest of its trace and destroys the isolate. A lane sends
each message as one batch on the V8 stream (`send`, the one place that speaks the client's
batch API), records each round trip's latency, and reads the isolate's GC trace (`GcTrace`) at
least every TRACE_PERIOD, so no event leaves the ring (128 GCs) unread; any that did would be
counted as lost.

The window is known on the isolate's own clock (GcEvent.start_ms counts from its creation): before
the window each lane asks for a mark-compact and a scavenge (which also compile the collectors'
loops, so the window does not time a compiler) and takes the moment the scavenge's reply arrives
as its end_ms, an
error of the reply's transit alone (a round trip's midpoint would be off by half a create_isolate,
which commits and pins the new space). The figures (tools/gcstats.py) cover the GCs that began
inside the window; the PNG (tools/gcplot.py) draws the window. "all" runs the three workloads
one after the other, each with its own processes and isolates.

Without --target the bench starts a server of its own (tools/local.py) with room in its VM pool
for every lane's heap (committed heap pages are pinned frames, and the machine pins at most a
quarter of its pool) and stops it after.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from memsim.client import Handle, Isolate, IsolateBatch, MemsimError, V8BatchResult, V8Client
from memsim.client import Ref as ClientRef
from memsim.tools import gcplot, harness
from memsim.tools.gcloads import GcBench, GcBenchShape, Handler, Held, Msg, Op, Program, Ref, Result, Send, Value
from memsim.tools.gcreport import LaneResult, assemble
from memsim.tools.gcstats import GcRecord, LaneRun
from memsim.tools.harness import Lane
from memsim.tools.loads import GcLoad
from memsim.tools.local import LocalServer
from memsim.tools.splay import Splay

MiB = 1 << 20
TRACE_BATCH = 128  # records per GcTrace call (the wire's MAX_TRACE_RECORDS)
TRACE_PERIOD = 0.1  # seconds between trace reads: the ring holds 128 GCs, far more than a tenth of a second makes


class Mutator(Protocol):
    """What the driver needs of a workload: its set-up, its endless run, and its own figures."""

    def setup(self) -> Program: ...
    def run(self) -> Program: ...
    def figures(self, t0: float, t1: float) -> dict[str, Any]: ...


def mutator(name: str, send: Send, load: GcLoad, lane: int) -> Mutator:
    """The workload `name` (loads.GC_WORKLOADS) for one lane, seeded apart from the other lanes."""
    seed = load.seed * 1000 + lane
    if name == "splay":
        return Splay(send, load.scale, seed)
    if name == "handler":
        return Handler(send, load.scale, seed)
    return GcBench(send, GcBenchShape.scaled(load.scale))


Batch = IsolateBatch[V8BatchResult]
Operand = int | Handle | ClientRef


def operand(v: Value, refs: list[ClientRef]) -> Operand:
    """A message's operand as the client's batch takes it: a Smi, a Handle, or a Ref to an earlier op."""
    if isinstance(v, Ref):
        return refs[v.index]
    if isinstance(v, Held):
        return Handle(v.id)
    return v


def target(v: Value, refs: list[ClientRef]) -> Handle | ClientRef:
    t = operand(v, refs)
    if isinstance(t, int):
        raise TypeError(f"an op's object must be a handle, not the Smi {t}")
    return t


def add(b: Batch, op: Op, refs: list[ClientRef]) -> ClientRef:
    """One op of a message onto the client's batch (tools/gcloads.py's Op: the wire's columns)."""
    code = op.code
    if code == "new_object":
        return b.new_object([operand(f, refs) for f in op.fields], payload=op.data, nfields=op.nfields)
    if code == "new_string":
        return b.new_string(op.data)
    if code == "new_array_buffer":
        return b.new_array_buffer(op.b)
    if code == "set_field":
        return b.set_field(target(op.a, refs), op.b, operand(op.c, refs))
    if code == "get_field":
        return b.get_field(target(op.a, refs), op.b)
    if code == "read_payload":
        return b.read_payload(target(op.a, refs), op.b, op.nfields)
    if code == "open_scope":
        return b.open_scope()
    if code == "close_scope":
        return b.close_scope(None if op.a == 0 else target(op.a, refs))
    if code == "make_persistent":
        return b.make_persistent(target(op.a, refs))
    if code == "drop":
        return b.drop(target(op.a, refs))
    raise ValueError(f"unknown op {code!r}")


def result(r: object) -> Result:
    """An op's result as the workloads read it (a Handle becomes a Held)."""
    if isinstance(r, Handle):
        return Held(r.id)
    if r is None or isinstance(r, int | bytes):
        return r
    raise TypeError(f"unexpected batch result {r!r}")


def batch_of(iso: Isolate, m: Msg) -> Batch:
    """One message as one batch for the isolate's V8 stream, ready to execute."""
    b = iso.batch()
    refs: list[ClientRef] = []
    for op in m.ops:
        refs.append(add(b, op, refs))
    return b


@dataclass
class Wire:
    """One lane's connection to its isolate: sends messages, times them, reads the GC trace."""

    iso: Isolate
    lane: Lane
    measuring: bool = False
    messages: int = 0
    ops: int = 0
    seen: int = 0  # the last GC seq read
    read_at: float = 0.0  # when the trace was last read (monotonic)
    lost: int = 0
    events: list[GcRecord] = field(default_factory=list)

    def send(self, m: Msg) -> list[Result]:
        b = batch_of(self.iso, m)
        start = time.perf_counter()
        res = b.execute()
        if self.measuring:
            self.lane.record(time.perf_counter() - start)
            self.messages += 1
            self.ops += len(m)
            self.lane.count(self.ops)
        res.raise_first()
        if time.monotonic() - self.read_at >= TRACE_PERIOD:
            self.read_trace()
        return [result(r) for r in res.results]

    def read_trace(self) -> None:
        self.read_at = time.monotonic()
        while True:
            got = self.iso.trace(after_seq=self.seen, max_records=TRACE_BATCH)
            if not got:
                return
            self.lost += max(0, got[0].seq - self.seen - 1)
            self.events += [GcRecord.of(e) for e in got]
            self.seen = got[-1].seq
            if len(got) < TRACE_BATCH:
                return


def _worker(lane: Lane, load: GcLoad, workload: str) -> LaneResult:
    with V8Client(load.target, timeout=120) as v8:
        iso = v8.create_isolate(semi_space_size=load.semi_space, max_old_space_size=load.max_old_space,
                                gc_helpers=load.gc_helpers, incremental_marking=load.incremental_marking,
                                concurrent_marking=load.concurrent_marking)
        try:
            wire = Wire(iso, lane)
            w = mutator(workload, wire.send, load, lane.index)
            for _ in w.setup():
                pass
            # Warm-up and clock: a GC of each kind compiles the collectors' loops before the window opens,
            # and the scavenge's end on the isolate's clock happened just before its reply came back.
            iso.gc()
            warm = iso.gc(minor=True)
            zero = time.monotonic() - warm.end_ms / 1000  # the isolate's 0 on this process's clock
            lane.meet()  # the parent notes the start
            t0 = time.monotonic()
            u0 = iso.memory_usage()
            wire.measuring = True
            end = t0 + load.seconds
            for _ in w.run():
                if time.monotonic() >= end:
                    break
            wire.measuring = False
            t1 = time.monotonic()
            u1 = iso.memory_usage()
            wire.read_trace()
            counters = iso.counters()
            lane.meet()
            run = LaneRun(lane=lane.index, workload=workload, t0_ms=(t0 - zero) * 1000, t1_ms=(t1 - zero) * 1000,
                          used_start=u0["heapUsed"], used_end=u1["heapUsed"], total_start=u0["heapTotal"],
                          total_end=u1["heapTotal"], events=wire.events, lost_events=wire.lost)
            return LaneResult(run, lane.hist.encode(), wire.messages, wire.ops, w.figures(t0, t1), counters)
        finally:
            with contextlib.suppress(MemsimError):  # the server may be gone: closing the client is enough then
                iso.destroy()


def run_workload(load: GcLoad, workload: str) -> dict[str, Any]:
    """One workload from `clients` processes: its figures, lanes, pauses and heap series."""
    w = harness.run(_worker, [(load, workload)] * load.clients, time.monotonic, seconds=load.seconds,
                    timeout=load.seconds + 600, label=f"gc {workload}", progress=load.progress)
    return assemble(workload, w.results)



PIN_SHARE = 4  # the machine pins at most a quarter of the VM pool (sim/vm's pin limit, Linux's RLIMIT_MEMLOCK)


def own_server(load: GcLoad) -> LocalServer:
    """A server whose VM pool can pin every lane's whole heap: both semi-spaces and the old
    generation up to its limit (committed heap pages are long-term pins, at most a quarter of the pool)."""
    per_lane = 2 * load.semi_space + load.max_old_space + 2 * MiB
    vm = PIN_SHARE * load.clients * per_lane + 16 * MiB
    cores = max(1, min(load.clients, os.cpu_count() or 1)) + max(0, load.gc_helpers)  # a core per helper, idle
    return LocalServer(cores=cores, memory=f"{vm + 64 * MiB}B", extra=["--vm-memory", f"{vm}B", "--swap", "0"])


def run_gc_load(load: GcLoad, png_path: str | None = None) -> dict[str, Any]:
    load = load.effective()
    load.validate()
    srv = None
    if not load.target:
        srv = own_server(load).start(timeout=300)
        load.target = srv.target
    try:
        results = {name: run_workload(load, name) for name in load.workloads()}
    finally:
        if srv is not None:
            srv.stop()
    if png_path:
        gcplot.write_png(png_path, [(name, r["_runs"]) for name, r in results.items()])
    for r in results.values():
        del r["_runs"]
    return {"load": asdict(load), "own_server": srv is not None, "workloads": results}


def run_gc_bench(load: GcLoad, json_path: str | None = None, png_path: str | None = None,
                 quiet: bool = False) -> int:
    from memsim.tools.gcreport import print_bench

    r = run_gc_load(load, png_path)
    harness.emit(r, json_path, quiet, print_bench)
    return 0 if all(w["client"]["ops"] for w in r["workloads"].values()) else 1
