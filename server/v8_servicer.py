"""memsim.v1.V8 on one core: gRPC to the managed heap's API (memsim.sim.v8) and back.

Owns: the V8 service's unary calls, its batch stream (the executor is server/v8_batch.py), the
isolates' leases on the wire, and `--trace-gc` (each GC this core runs, printed as V8's
GCTracer::Print line to stderr). Touches: the core's mutex, then one isolate's locker
(`V8.enter`, V8's v8::Locker) around every call into an isolate, in that order, as every
servicer takes the core's mutex around its simulator work; the isolate table's own lock is the
sim's, inside. A SimError becomes its status code in wire.py (dead or foreign handle and a lost
isolate: FAILED_PRECONDITION; a field, payload or Smi out of range: OUT_OF_RANGE; the heap limit:
RESOURCE_EXHAUSTED with Node's text); anything else becomes INTERNAL without taking the worker down.

Every request is checked against limits.py before the isolate is entered, so that a request over
a limit changes nothing; a read's reply is charged to the reply's budget before it copies. An
isolate is held by the client that created it, on a lease (server/sessions.py), as a VM space is.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator, Mapping

import grpc

from memsim.server.limits import (
    MAX_FIELDS,
    MAX_GC_HELPERS,
    MAX_TRACE_RECORDS,
    MAX_V8_PAYLOAD,
    PendingReplies,
    ReplyBudget,
)
from memsim.server.sessions import caller_gone, caller_id, client_id, creator
from memsim.server.v8_batch import budgeted_read, plan, run_batch
from memsim.server.wire import DeadlineExceeded, batch_stream, call_budget
from memsim.sim.errors import InvalidArgument, NotFound
from memsim.sim.v8 import V8, Handle, Isolate, IsolateInfo, Value
from memsim.sim.v8.isolate_table import DEFAULT_MAX_OLD_SPACE, DEFAULT_SEMI_SPACE
from memsim.sim.v8.tracer import GcEvent
from memsim.v1 import machine_pb2 as mpb
from memsim.v1 import v8_pb2 as pb
from memsim.v1 import v8_pb2_grpc

GC_EVENT_FIELDS = tuple(f.name for f in pb.GcEvent.DESCRIPTOR.fields)


def value_in(v: pb.Value) -> Value:
    """A unary call's Value for the sim: a Smi (the sim checks its range) or a handle; absent: Smi 0."""
    which = v.WhichOneof("value")
    if which == "handle":
        return Handle(v.handle)
    return v.smi if which == "smi" else 0


def value_out(v: Value) -> pb.Value:
    return pb.Value(handle=v.id) if isinstance(v, Handle) else pb.Value(smi=v)


def gc_event(e: GcEvent) -> pb.GcEvent:
    """The tracer's record on the wire, read field by field by the proto's names: a name the
    record lacks fails loudly, a field the proto lacks stays home."""
    return pb.GcEvent(**{name: getattr(e, name) for name in GC_EVENT_FIELDS})


def flatten(d: Mapping[str, object], prefix: str = "") -> dict[str, float]:
    """Nested counters as one map, a nested figure named by its path ("pause_ms.Scavenge.p99")."""
    out: dict[str, float] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, name + "."))
        elif isinstance(v, bool | int | float):
            out[name] = float(v)
    return out


def isolate_info(i: IsolateInfo, core: int) -> pb.IsolateInfo:
    return pb.IsolateInfo(isolate=i.id, state=i.state, space=i.space, semi_space_size=i.semi_space_size,
                          max_old_space_size=i.max_old_space_size, owner=f"{i.owner:x}" if i.owner else "",
                          keep=not i.owner, holder=i.holder, core=core, home=i.home, gc_helpers=i.gc_helpers,
                          incremental_marking=i.incremental_marking, concurrent_marking=i.concurrent_marking)


def space_statistics(s: Mapping[str, int | str]) -> pb.HeapSpaceStatistics:
    """One row of v8.getHeapSpaceStatistics() on the wire."""
    return pb.HeapSpaceStatistics(space_name=str(s["space_name"]), space_size=int(s["space_size"]),
                                  space_used_size=int(s["space_used_size"]),
                                  space_available_size=int(s["space_available_size"]),
                                  physical_space_size=int(s["physical_space_size"]))


def last_gc(iso: Isolate) -> int:
    """The seq of the isolate's latest GC (0: none yet), from its tracer's counters."""
    return int(iso.counters()["last_seq"])


def check_bytes(n: int, what: str) -> None:
    if n > MAX_V8_PAYLOAD:
        raise InvalidArgument(f"{what} of {n} bytes is more than the {MAX_V8_PAYLOAD}-byte limit")


class V8Servicer(v8_pb2_grpc.V8Servicer):
    def __init__(self, v8: V8, core: int, core_lock: threading.Lock, replies: PendingReplies | None = None,
                 trace_gc: bool = False):
        self.v8 = v8
        self.core = core
        self.core_lock = core_lock
        self.replies = replies or PendingReplies(core)  # the core's reply bytes not yet sent (limits.py)
        self.trace_gc = trace_gc

    # -- entering an isolate ----------------------------------------------------------------

    @contextlib.contextmanager
    def _locker(self, isolate: int) -> Iterator[Isolate]:
        """The isolate's locker (the caller holds the core's mutex); with --trace-gc, the line of
        every GC run meanwhile (an allocation's, or a requested one) is printed as it is let go."""
        with self.v8.enter(isolate) as iso:
            before = last_gc(iso) if self.trace_gc else 0
            try:
                yield iso
            finally:
                if self.trace_gc:
                    self._print_trace(iso, before)

    @contextlib.contextmanager
    def _enter(self, isolate: int) -> Iterator[Isolate]:
        """The core's mutex, then the isolate's locker: the order every call takes them in."""
        with self.core_lock, self._locker(isolate) as iso:
            yield iso

    def _print_trace(self, iso: Isolate, before: int) -> None:
        """Every GC the call ran, as --trace-gc prints them, page by page; GCs the trace ring no longer
        holds (more than its size in one call) are counted in one line instead."""
        last = last_gc(iso)
        while before < last:
            events = iso.trace(after_seq=before, max_records=MAX_TRACE_RECORDS)
            if not events:
                break
            if events[0].seq > before + 1:
                print(f"[{events[0].pid}:{events[0].heap_base:#x}] {events[0].seq - before - 1} GCs not traced "
                      f"(the trace ring holds the last {MAX_TRACE_RECORDS})", file=sys.stderr, flush=True)
            for e in events:
                print(e.line, file=sys.stderr, flush=True)
            before = events[-1].seq

    # -- isolates and leases ----------------------------------------------------------------

    def _info(self, isolate: int) -> IsolateInfo:
        for info in self.v8.list_isolates():
            if info.id == isolate:
                return info
        raise NotFound(f"no isolate {isolate}")

    def CreateIsolate(self, request: pb.CreateIsolateRequest, context: grpc.ServicerContext) -> pb.IsolateInfo:
        v8 = self.v8
        semi = request.semi_space_size or DEFAULT_SEMI_SPACE  # 0: the defaults (v8.proto)
        max_old = request.max_old_space_size or DEFAULT_MAX_OLD_SPACE

        def create() -> IsolateInfo:
            owner, lease = creator(context, request.keep, request.lease_seconds)  # (v8.proto: leases)
            now = time.monotonic()
            v8.reap(now)  # what dead clients left goes back before a new isolate needs room
            iso = v8.create_isolate(semi_space_size=semi, max_old_space_size=max_old,
                                    growing_factor=request.growing_factor, owner=owner,
                                    lease=lease, now=now, gc_helpers=min(request.gc_helpers, MAX_GC_HELPERS),
                                    incremental_marking=request.incremental_marking,
                                    concurrent_marking=request.concurrent_marking)
            if owner:
                v8.renew(owner, now)  # creating is renewing: the client's other isolates live on too
            return self._info(iso)

        with self.core_lock:
            info = create()
        if caller_gone(context):  # nobody can name this isolate: undo it (server/sessions.py)
            with self.core_lock:
                v8.destroy_isolate(info.id)
            raise DeadlineExceeded(f"the deadline passed (or was too close to reply) before isolate {info.id} "
                                   f"was made; it was destroyed again")
        return isolate_info(info, self.core)

    def DestroyIsolate(self, request: pb.IsolateRequest, context: grpc.ServicerContext) -> pb.IsolateInfo:
        with self.core_lock:
            info = self._info(request.isolate)
            self.v8.destroy_isolate(request.isolate)
        return isolate_info(info, self.core)

    def ListIsolates(self, request: pb.ListIsolatesRequest, context: grpc.ServicerContext) -> pb.ListIsolatesReply:
        owner = client_id(context) if request.mine else None
        with self.core_lock:
            infos = self.v8.list_isolates()
        if owner is not None:  # mine: a caller with no id holds nothing (kept isolates are nobody's)
            infos = [i for i in infos if owner and i.owner == owner]
        return pb.ListIsolatesReply(isolates=[isolate_info(i, self.core) for i in infos])

    def Renew(self, request: mpb.RenewRequest, context: grpc.ServicerContext) -> mpb.RenewReply:
        # Without the core's mutex (wire.CONTROL_METHODS): a keepalive must not wait behind a long
        # call on this core until its lease runs out.
        n = self.v8.renew(caller_id(context, "Renew", "isolates"), time.monotonic())
        return mpb.RenewReply(isolates=n)

    def Release(self, request: mpb.ReleaseRequest, context: grpc.ServicerContext) -> mpb.ReleaseReply:
        owner = caller_id(context, "Release", "isolates")
        with self.core_lock:
            return mpb.ReleaseReply(isolates=self.v8.release(owner))

    def expired(self, now: float) -> list[int]:
        return self.v8.expired(now)

    def reap(self, now: float) -> list[str]:
        """Destroy the isolates whose lease ran out before `now` (LeaseReaper)."""
        with self.core_lock:
            return [f"isolate {i}" for i in self.v8.reap(now)]

    # -- objects ------------------------------------------------------------------------------

    def NewObject(self, request: pb.NewObjectRequest, context: grpc.ServicerContext) -> pb.HandleReply:
        given = len(request.fields)
        if max(given, request.nfields) > MAX_FIELDS:
            raise InvalidArgument(f"an object of {max(given, request.nfields)} fields is more than the "
                                  f"{MAX_FIELDS}-field limit")
        check_bytes(len(request.payload), "a payload")
        fields = [value_in(v) for v in request.fields]
        with self._enter(request.isolate) as iso:
            h = iso.new_object(fields, payload=request.payload, nfields=request.nfields or None,
                               pretenure=request.pretenure)
        return pb.HandleReply(handle=h.id, core=self.core)

    def NewString(self, request: pb.NewStringRequest, context: grpc.ServicerContext) -> pb.HandleReply:
        check_bytes(len(request.data), "a string")
        with self._enter(request.isolate) as iso:
            h = iso.new_string(request.data, pretenure=request.pretenure)
        return pb.HandleReply(handle=h.id, core=self.core)

    def NewArrayBuffer(self, request: pb.NewArrayBufferRequest, context: grpc.ServicerContext) -> pb.HandleReply:
        check_bytes(request.byte_length, "an ArrayBuffer")
        with self._enter(request.isolate) as iso:
            h = iso.new_array_buffer(request.byte_length)
        return pb.HandleReply(handle=h.id, core=self.core)

    def SetField(self, request: pb.SetFieldRequest, context: grpc.ServicerContext) -> pb.SetFieldReply:
        value = value_in(request.value)
        with self._enter(request.isolate) as iso:
            iso.set_field(Handle(request.handle), request.index, value)
        return pb.SetFieldReply()

    def GetField(self, request: pb.GetFieldRequest, context: grpc.ServicerContext) -> pb.GetFieldReply:
        with self._enter(request.isolate) as iso:
            v = iso.get_field(Handle(request.handle), request.index)
        return pb.GetFieldReply(value=value_out(v))

    def _read(self, request: pb.V8ReadRequest, context: grpc.ServicerContext, backing: bool) -> pb.V8ReadReply:
        length = request.length if request.HasField("length") else None
        if length is not None:
            check_bytes(length, "a read")
        budget = call_budget(self.replies, context)
        what = "a backing-store read" if backing else "a payload read"
        with self._enter(request.isolate) as iso:
            data = budgeted_read(iso, budget, Handle(request.handle), request.offset, length, backing, what)
        return pb.V8ReadReply(data=data)

    def ReadPayload(self, request: pb.V8ReadRequest, context: grpc.ServicerContext) -> pb.V8ReadReply:
        return self._read(request, context, backing=False)

    def ReadBacking(self, request: pb.V8ReadRequest, context: grpc.ServicerContext) -> pb.V8ReadReply:
        return self._read(request, context, backing=True)

    def WritePayload(self, request: pb.V8WriteRequest, context: grpc.ServicerContext) -> pb.V8WriteReply:
        check_bytes(len(request.data), "a write")
        with self._enter(request.isolate) as iso:
            iso.write_payload(Handle(request.handle), request.offset, request.data)
        return pb.V8WriteReply()

    def WriteBacking(self, request: pb.V8WriteRequest, context: grpc.ServicerContext) -> pb.V8WriteReply:
        check_bytes(len(request.data), "a write")
        with self._enter(request.isolate) as iso:
            iso.write_backing(Handle(request.handle), request.offset, request.data)
        return pb.V8WriteReply()

    def Describe(self, request: pb.HandleRequest, context: grpc.ServicerContext) -> pb.Description:
        h = Handle(request.handle)
        with self._enter(request.isolate) as iso:
            kind = iso.type_of(h)
            return pb.Description(nfields=iso.nfields(h), payload_len=iso.payload_len(h), type=kind,
                                  space=iso.space_of(h),
                                  byte_length=iso.byte_length(h) if kind == "array_buffer" else 0)

    # -- handles and scopes -------------------------------------------------------------------

    def OpenScope(self, request: pb.IsolateRequest, context: grpc.ServicerContext) -> pb.ScopeReply:
        with self._enter(request.isolate) as iso:
            return pb.ScopeReply(depth=iso.open_scope())

    def CloseScope(self, request: pb.CloseScopeRequest, context: grpc.ServicerContext) -> pb.CloseScopeReply:
        escape = Handle(request.escape) if request.HasField("escape") else None
        with self._enter(request.isolate) as iso:
            escaped = iso.close_scope(escape)
        return pb.CloseScopeReply() if escaped is None else pb.CloseScopeReply(escaped=escaped.id)

    def MakePersistent(self, request: pb.HandleRequest, context: grpc.ServicerContext) -> pb.HandleReply:
        with self._enter(request.isolate) as iso:
            g = iso.make_persistent(Handle(request.handle))
        return pb.HandleReply(handle=g.id, core=self.core)

    def Drop(self, request: pb.HandleRequest, context: grpc.ServicerContext) -> pb.DropReply:
        with self._enter(request.isolate) as iso:
            iso.drop(Handle(request.handle))
        return pb.DropReply()

    # -- GC and figures -------------------------------------------------------------------------

    def RequestGC(self, request: pb.RequestGCRequest, context: grpc.ServicerContext) -> pb.GcEvent:
        with self._enter(request.isolate) as iso:
            e = iso.gc(minor=request.minor)
        return gc_event(e)

    def HeapStatistics(self, request: pb.IsolateRequest, context: grpc.ServicerContext) -> pb.HeapStatisticsReply:
        with self._enter(request.isolate) as iso:
            usage, stats = iso.memory_usage(), iso.heap_statistics()
            spaces, counters = iso.heap_space_statistics(), iso.counters()
        return pb.HeapStatisticsReply(memory_usage=pb.NodeMemoryUsage(**usage),
                                      heap_statistics=pb.HeapStatistics(**stats),
                                      spaces=[space_statistics(s) for s in spaces],
                                      counters=flatten(counters), core=self.core)

    def GcTrace(self, request: pb.GcTraceRequest, context: grpc.ServicerContext) -> pb.GcTraceReply:
        most = request.max_records or MAX_TRACE_RECORDS
        if most > MAX_TRACE_RECORDS:
            raise InvalidArgument(f"max_records {most} is over the limit of {MAX_TRACE_RECORDS} records per reply; "
                                  f"page with after_seq")
        with self._enter(request.isolate) as iso:
            events = iso.trace(after_seq=request.after_seq, max_records=most)
        return pb.GcTraceReply(events=[gc_event(e) for e in events])

    # -- the batch stream -----------------------------------------------------------------------

    def Batch(self, request_iterator: Iterator[pb.V8Batch],
              context: grpc.ServicerContext) -> Iterator[pb.V8BatchReply]:
        def execute(req: pb.V8Batch, budget: ReplyBudget, arrived: float) -> pb.V8BatchReply:
            checked = plan(req)  # the whole message, before the isolate is entered
            with self._locker(req.isolate) as iso:  # (batch_stream holds the core's mutex)
                return run_batch(iso, req, self.core, budget, checked, arrived)

        yield from batch_stream(request_iterator, self.replies, self.core_lock, execute)
