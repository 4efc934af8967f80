"""The managed heap's client: isolates (V8's generational heap) on the machine, their objects,
handle scopes, GCs and figures.

    from memsim.client import V8Client
    with V8Client("127.0.0.1:50051") as v8:
        iso = v8.create_isolate(semi_space_size=1 << 20, max_old_space_size=8 << 20)
        with iso.scope():                                   # a HandleScope: its handles are roots until it closes
            name = iso.new_string(b"Ann")
            emp = iso.new_object([name, 5000], nfields=3)   # fields: Smis (int32) or Handles
            iso.set_field(emp, 2, 7)
            iso.get_field(emp, 0)                           # -> Handle (a new one, in the current scope)
        iso.gc()                                            # -> GcEvent: kind, pause_ms, line (--trace-gc) ...
        iso.memory_usage()                                  # {'rss': ..., 'heapTotal': ..., 'heapUsed': ..., ...}
        b = iso.batch(); r = b.new_object([1]); b.new_object([r]); b.execute()   # one round trip
        iso.destroy()                                       # or leave it: closing the client destroys it

Objects move, so a client holds `Handle`s, never addresses: a handle made in a scope dies with
the scope (using it then is FailedPrecondition), unless the scope escapes it (`s.escape(h)` inside
`with iso.scope() as s:`, then `s.escaped`) or `make_persistent` made a global of it (until
`drop`). An isolate belongs to the client that created it: `close()` destroys it, and if the
process dies without closing, the server does once the lease (`lease=`, 30 s) runs out
(client/session.py); `keep=True` makes one that outlives its client (`v8.isolate(id)` reaches it).

Errors are memsim.client.errors' typed exceptions: FailedPrecondition (a dead handle, another
isolate's handle, a lost or destroyed isolate), OutOfRange (a field index, a payload range, an int
outside the Smi range), InvalidArgument (a malformed request or one over a limit),
ResourceExhausted (the heap limit: "JavaScript heap out of memory", as Node says it).

The methods are written once, in `IsolateCommands` and `V8Commands` (client/rpc.py's `command`):
`Isolate` and `V8Client` here run them now; client/isolate_aio.py's `AsyncIsolate` and
`AsyncV8Client` return coroutines. The records and the batch builder are client/v8_types.py's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from memsim.client.connection import DEFAULT_TIMEOUT, REPLY_GRACE, Connection, Endpoint, build_request
from memsim.client.errors import FailedPrecondition, NotFound
from memsim.client.rpc import Op, Steps, SyncRunner, command, roundtrip, unary
from memsim.client.session import CLIENT_ID_KEY, DEFAULT_LEASE, check_lease, new_client_id
from memsim.client.v8_types import (
    Description,
    GcEvent,
    Handle,
    HeapStats,
    IsolateBatch,
    IsolateInfo,
    V8BatchResult,
    Value,
    check_nfields,
    value_of,
    value_pb,
)
from memsim.v1 import machine_pb2 as mpb
from memsim.v1 import v8_pb2 as pb
from memsim.v1 import v8_pb2_grpc

C = TypeVar("C")  # the client an isolate's calls go through
IsoT = TypeVar("IsoT")  # the isolate handle a client makes: Isolate, or AsyncIsolate


class Scope:
    """An open handle scope (`with iso.scope() as s:`): its depth, and the one handle it may escape
    to the parent scope when it closes (V8's EscapableHandleScope); `escaped` is that handle's new
    id, once the scope has closed."""

    def __init__(self, depth: int):
        self.depth = depth
        self.escaping: Handle | None = None
        self.escaped: Handle | None = None

    def escape(self, h: Handle) -> None:
        self.escaping = h


class IsolateCommands(Generic[C]):
    """One isolate's calls (a handle on it: each call goes through the client that made it)."""

    def __init__(self, client: C, info: pb.IsolateInfo):
        self.client = client
        self.id = info.isolate
        self.info = IsolateInfo.from_pb(info)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} semi-space {self.info.semi_space_size} B, " \
               f"max old space {self.info.max_old_space_size} B>"

    def _handle(self, h: Handle) -> pb.HandleRequest:
        return build_request(pb.HandleRequest, isolate=self.id, handle=h.id)

    # -- objects ----------------------------------------------------------------------------

    @command
    def new_object(self, fields: Sequence[Value] = (), payload: bytes = b"", nfields: int | None = None,
                   pretenure: bool = False) -> Steps[Handle]:
        """An object of `nfields` tagged fields (default: as many as given; the rest are Smi 0) and a
        raw payload, in new space (old space with pretenure=True, as V8's AllocationType::kOld)."""
        check_nfields(nfields, len(fields))
        req = build_request(pb.NewObjectRequest, isolate=self.id, fields=[value_pb(v) for v in fields],
                            nfields=nfields or 0, payload=bytes(payload), pretenure=pretenure)
        return Handle((yield from unary("NewObject", req, pb.HandleReply)).handle)

    @command
    def new_string(self, data: bytes, pretenure: bool = False) -> Steps[Handle]:
        req = build_request(pb.NewStringRequest, isolate=self.id, data=bytes(data), pretenure=pretenure)
        return Handle((yield from unary("NewString", req, pb.HandleReply)).handle)

    @command
    def new_array_buffer(self, byte_length: int) -> Steps[Handle]:
        """An ArrayBuffer: its backing store lives outside the heap (Node's `external`, `arrayBuffers`)."""
        req = build_request(pb.NewArrayBufferRequest, isolate=self.id, byte_length=byte_length)
        return Handle((yield from unary("NewArrayBuffer", req, pb.HandleReply)).handle)

    @command
    def set_field(self, h: Handle, index: int, value: Value) -> Steps[None]:
        req = build_request(pb.SetFieldRequest, isolate=self.id, handle=h.id, index=index, value=value_pb(value))
        yield from unary("SetField", req, pb.SetFieldReply)

    @command
    def get_field(self, h: Handle, index: int) -> Steps[Value]:
        """A Smi as an int, a reference as a new Handle in the current scope."""
        req = build_request(pb.GetFieldRequest, isolate=self.id, handle=h.id, index=index)
        return value_of((yield from unary("GetField", req, pb.GetFieldReply)).value)

    def _read(self, method: str, h: Handle, offset: int, length: int | None) -> Steps[bytes]:
        req = build_request(pb.V8ReadRequest, isolate=self.id, handle=h.id, offset=offset, length=length)
        return (yield from unary(method, req, pb.V8ReadReply)).data

    def _write(self, method: str, h: Handle, offset: int, data: bytes) -> Steps[None]:
        req = build_request(pb.V8WriteRequest, isolate=self.id, handle=h.id, offset=offset, data=bytes(data))
        yield from unary(method, req, pb.V8WriteReply)

    @command
    def read_payload(self, h: Handle, offset: int = 0, length: int | None = None) -> Steps[bytes]:
        """Bytes of an object's payload or a string's (length None: to the end)."""
        return (yield from self._read("ReadPayload", h, offset, length))

    @command
    def write_payload(self, h: Handle, offset: int, data: bytes) -> Steps[None]:
        yield from self._write("WritePayload", h, offset, data)

    @command
    def read_backing(self, h: Handle, offset: int = 0, length: int | None = None) -> Steps[bytes]:
        """Bytes of an ArrayBuffer's backing store (length None: to the end)."""
        return (yield from self._read("ReadBacking", h, offset, length))

    @command
    def write_backing(self, h: Handle, offset: int, data: bytes) -> Steps[None]:
        yield from self._write("WriteBacking", h, offset, data)

    @command
    def describe(self, h: Handle) -> Steps[Description]:
        """The object's fields, payload length, type and space (objects move between spaces)."""
        d = yield from unary("Describe", self._handle(h), pb.Description)
        return Description(d.nfields, d.payload_len, d.type, d.space, d.byte_length)

    # -- handles and scopes -------------------------------------------------------------------

    @command
    def open_scope(self) -> Steps[int]:
        """Open a handle scope (V8's HandleScope); the new depth. `scope()` opens and closes one."""
        req = build_request(pb.IsolateRequest, isolate=self.id)
        return (yield from unary("OpenScope", req, pb.ScopeReply)).depth

    @command
    def close_scope(self, escape: Handle | None = None) -> Steps[Handle | None]:
        """Close the innermost scope: its handles stop being roots. `escape` lives on in the parent
        scope, under the id this returns."""
        req = build_request(pb.CloseScopeRequest, isolate=self.id, escape=None if escape is None else escape.id)
        reply = yield from unary("CloseScope", req, pb.CloseScopeReply)
        return Handle(reply.escaped) if reply.HasField("escaped") else None

    @command
    def make_persistent(self, h: Handle) -> Steps[Handle]:
        """A global handle (v8::Global) to h's object: a root until `drop`."""
        return Handle((yield from unary("MakePersistent", self._handle(h), pb.HandleReply)).handle)

    @command
    def drop(self, g: Handle) -> Steps[None]:
        yield from unary("Drop", self._handle(g), pb.DropReply)

    # -- GC and figures -----------------------------------------------------------------------

    @command
    def gc(self, minor: bool = False, *, timeout: float | None = None) -> Steps[GcEvent]:
        """A GC now, as global.gc() under node --expose-gc: a Scavenge if minor, else a Mark-Compact."""
        req = build_request(pb.RequestGCRequest, isolate=self.id, minor=minor)
        return GcEvent.from_pb((yield from unary("RequestGC", req, pb.GcEvent, timeout)))

    @command
    def stats(self) -> Steps[HeapStats]:
        """memory_usage, heap_statistics, heap_space_statistics and counters in one call."""
        req = build_request(pb.IsolateRequest, isolate=self.id)
        return HeapStats.from_pb((yield from unary("HeapStatistics", req, pb.HeapStatisticsReply)))

    @command
    def memory_usage(self) -> Steps[dict[str, int]]:
        """Node's process.memoryUsage(): rss, heapTotal, heapUsed, external, arrayBuffers."""
        return (yield from IsolateCommands.stats.steps(self)).memory_usage

    @command
    def heap_statistics(self) -> Steps[dict[str, int]]:
        """v8.getHeapStatistics(), under V8's names."""
        return (yield from IsolateCommands.stats.steps(self)).heap_statistics

    @command
    def heap_space_statistics(self) -> Steps[list[dict[str, Any]]]:
        """v8.getHeapSpaceStatistics(): node's spaces, in node's order."""
        return (yield from IsolateCommands.stats.steps(self)).spaces

    @command
    def counters(self) -> Steps[dict[str, float]]:
        """GC counts by kind, bytes allocated, copied and promoted, work counters, pause percentiles."""
        return (yield from IsolateCommands.stats.steps(self)).counters

    @command
    def trace(self, after_seq: int = 0, max_records: int = 128) -> Steps[list[GcEvent]]:
        """The GCs after `after_seq` the isolate's ring still holds, oldest first (at most 128 a call)."""
        req = build_request(pb.GcTraceRequest, isolate=self.id, after_seq=after_seq, max_records=max_records)
        return [GcEvent.from_pb(e) for e in (yield from unary("GcTrace", req, pb.GcTraceReply)).events]

    @command
    def destroy(self) -> Steps[None]:
        yield from unary("DestroyIsolate", build_request(pb.IsolateRequest, isolate=self.id), pb.IsolateInfo)


class V8Commands(Endpoint, Generic[IsoT]):
    """The V8 service's calls on a client; `_isolate` makes the client's kind of isolate handle."""

    client_id: str

    def __init__(self, target: str = "127.0.0.1:50051", *, core: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT, lease: float = DEFAULT_LEASE):
        lease = check_lease(lease)
        self.client_id = new_client_id()
        # The lease rides in CreateIsolateRequest.lease_seconds, so the metadata names only the client.
        self._connect(target, core, timeout, v8_pb2_grpc.V8Stub, "Batch", ((CLIENT_ID_KEY, self.client_id),),
                      lease=lease, what="V8 batch")

    def _isolate(self, info: pb.IsolateInfo) -> IsoT:
        raise NotImplementedError

    def _held(self, reply: mpb.RenewReply) -> bool:
        return reply.isolates > 0

    @command
    def create_isolate(self, semi_space_size: int = 0, max_old_space_size: int = 0, growing_factor: float = 0.0,
                       keep: bool = False, *, gc_helpers: int = 0, incremental_marking: bool = False,
                       concurrent_marking: bool = False, timeout: float | None = None) -> Steps[IsoT]:
        """A new isolate (sizes in bytes; 0: the server's defaults, 1 MiB semi-spaces and an 8 MiB
        max_old_space_size), destroyed when this client closes (or its lease runs out) unless keep=True.
        gc_helpers: other cores that join its scavenges (0 serial, -1 V8's rule, n at most n, capped at 7);
        incremental_marking: its major GCs mark in steps between its operations (V8's default)
        instead of all in the pause; concurrent_marking: helper cores mark its cycles while it runs
        (gc_helpers of them if > 0, else every other core)."""
        req = build_request(pb.CreateIsolateRequest, semi_space_size=semi_space_size,
                            max_old_space_size=max_old_space_size, growing_factor=growing_factor, keep=keep,
                            lease_seconds=self.lease, gc_helpers=gc_helpers, incremental_marking=incremental_marking,
                            concurrent_marking=concurrent_marking)
        if not keep:
            self._start_keepalive()  # before the call: an isolate it creates is never without renewal
        return self._isolate((yield from unary("CreateIsolate", req, pb.IsolateInfo, timeout)))

    @command
    def isolates(self, mine_only: bool = False) -> Steps[list[IsolateInfo]]:
        """Every isolate on the machine (with its owner and state), or this client's."""
        reply = yield from unary("ListIsolates", pb.ListIsolatesRequest(mine=mine_only), pb.ListIsolatesReply)
        return [IsolateInfo.from_pb(i) for i in reply.isolates]

    @command
    def isolate(self, isolate_id: int) -> Steps[IsoT]:
        """A handle on an existing isolate (any client's)."""
        reply = yield from unary("ListIsolates", pb.ListIsolatesRequest(), pb.ListIsolatesReply)
        for info in reply.isolates:
            if info.isolate == isolate_id:
                return self._isolate(info)
        raise NotFound(f"no isolate {isolate_id}")

    @command
    def execute(self, batch: IsolateBatch[Any]) -> Steps[V8BatchResult]:
        """One message; the server starts no op after this client's timeout (timeout_ms), and the
        reply is awaited REPLY_GRACE longer, so a reply the server sends is one the caller still wants."""
        def message(seq: int) -> pb.V8Batch:
            m = batch.to_proto(seq)
            m.timeout_ms = max(1, min(int(self.timeout * 1000), (1 << 32) - 1))
            return m
        return batch.decode((yield from roundtrip(message, pb.V8BatchReply, self.timeout + REPLY_GRACE)))


class Isolate(IsolateCommands["V8Client"], SyncRunner):
    """One isolate: a handle with its calls (all go through its V8Client)."""

    def _perform(self, op: Op) -> Any:
        return self.client._perform(op)

    def batch(self) -> IsolateBatch[V8BatchResult]:
        return IsolateBatch(self.client.execute, self.id)

    @contextmanager
    def scope(self) -> Iterator[Scope]:
        """A handle scope for the block: opened now, closed at the end (an exception too), escaping
        what `s.escape(h)` named into `s.escaped`."""
        s = Scope(self.open_scope())
        try:
            yield s
        finally:
            try:
                s.escaped = self.close_scope(s.escaping)
            except FailedPrecondition:
                if s.escaping is None:
                    raise
                self.close_scope()  # the handle to escape was dead: the scope still closes, then the error
                raise


class V8Client(V8Commands[Isolate], Connection):
    """A connection to a memsim server's managed heap (any core, or `core=N` for that core's port)."""

    def _isolate(self, info: pb.IsolateInfo) -> Isolate:
        return Isolate(self, info)
