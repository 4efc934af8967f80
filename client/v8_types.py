"""The managed heap client's records and its batch builder, shared by `Isolate` and `AsyncIsolate`.

Owns: `Handle` (an object's opaque id: objects move, so a client never holds an address), how a
value goes on the wire (a Smi, a handle, or a `Ref` to an earlier op of the same batch), the
records built from the replies (`GcEvent`, `IsolateInfo`, `Description`, `HeapStats`), and
`IsolateBatch`, which puts many ops in one V8.Batch message: an op that makes or reads an object
returns a `Ref`, and later ops of the same batch may use it as an object or a field value (the
server resolves it: promise pipelining), so a whole object graph costs one round trip.
Touches only the protos (memsim.v1.v8_pb2) and the typed errors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from memsim.client.errors import InvalidArgument, MemsimError, OutOfRange, from_code
from memsim.client.types import Ref
from memsim.v1 import v8_pb2 as pb

R = TypeVar("R")  # what a bound batch's execute() returns: V8BatchResult, or a coroutine of one
WORD = (1 << 64) - 1  # a batch word; as a READ's length: to the end
INT64 = range(-(1 << 63), 1 << 63)


@dataclass(frozen=True)
class Handle:
    """An object of an isolate, as V8's Local<Object> or Global<Object> names it: an id, never an
    address. A reference read from a field (get_field) comes back as a new Handle each time, so two
    Handles with different ids may name one object."""

    id: int

    def __repr__(self) -> str:
        return f"Handle({self.id:#x})"


Value = int | Handle  # a field's value: a Smi (int32) or a reference
Operand = int | Handle | Ref  # in a batch, a value may also be a Ref to an earlier op's result


def value_pb(v: Value) -> pb.Value:
    """A unary call's Value: a Smi (the server checks the int32 range) or a handle."""
    if isinstance(v, Handle):
        return pb.Value(handle=v.id)
    if isinstance(v, int):
        if v not in INT64:
            raise OutOfRange(f"{v} is not a Smi: a field holds an int32 or a reference")
        return pb.Value(smi=v)
    raise InvalidArgument(f"a field holds an int (a Smi) or a Handle, not {type(v).__name__}")


def value_of(v: pb.Value) -> Value:
    which = v.WhichOneof("value")
    if which == "handle":
        return Handle(v.handle)
    return v.smi if which == "smi" else 0


def word(v: Operand) -> tuple[int, pb.ValueTag]:
    """A batch operand as its word and tag."""
    if isinstance(v, Ref):
        return v.index, pb.VALUE_REF
    if isinstance(v, Handle):
        return v.id, pb.VALUE_HANDLE
    if isinstance(v, int):
        if v not in INT64:
            raise OutOfRange(f"{v} is not a Smi: a field holds an int32 or a reference")
        return v & WORD, pb.VALUE_SMI
    raise InvalidArgument(f"a batch operand is an int (a Smi), a Handle or a Ref, not {type(v).__name__}")


def value_from_word(w: int, tag: int) -> Value | None:
    if tag == pb.VALUE_HANDLE:
        return Handle(w)
    if tag == pb.VALUE_SMI:
        return w - (1 << 64) if w >= 1 << 63 else w
    return None


def check_nfields(nfields: int | None, given: int) -> None:
    """nfields, when given, covers the fields given (on the wire 0 means "as many as given")."""
    if nfields is not None and not given <= nfields:
        raise InvalidArgument(f"nfields {nfields} is less than the {given} fields given")


@dataclass(frozen=True)
class GcEvent:
    """One GC, as V8's GCTracer records it (v8.proto's GcEvent): times in ms, sizes in bytes;
    `line` is its --trace-gc line, `nvp` its --trace-gc-nvp line."""

    seq: int
    kind: str
    reason: str
    start_ms: float
    end_ms: float
    live_before: int
    committed_before: int
    live_after: int
    committed_after: int
    pause_ms: float
    main_cpu_ms: float
    total_cpu_ms: float
    scavenge_ms: float
    scavenge_roots_ms: float
    mark_ms: float
    evacuate_ms: float
    sweep_ms: float
    allocated: int
    promoted: int
    new_space_survived: int
    nodes_copied_in_new: int
    nodes_died_in_new: int
    nodes_promoted: int
    new_space_size_at_start: int
    objects_scanned: int
    words_scanned: int
    words_copied: int
    slots_visited: int
    barrier_slow_paths: int
    line: str
    nvp: str
    collector_reason: str
    pid: int
    heap_base: int
    compacted: int
    mutator_ms: float
    average_mu: float
    current_mu: float
    promotion_ratio: float
    average_survival_ratio: float
    promotion_rate: float
    new_space_survive_rate: float
    scavenge_throughput: float
    compaction_speed: float
    incremental_ms: float
    incremental_steps: int
    incremental_longest_ms: float
    incremental_walltime_ms: float
    helpers: int  # helper cores that joined (a parallel scavenge)
    helper_objects: int  # objects the helpers copied or promoted
    segments_stolen: int
    cas_failures: int
    marking_step_start_ms: tuple[float, ...] = ()  # the incremental cycle's steps (a Mark-Compact that ended one)
    marking_step_ms: tuple[float, ...] = ()
    work_words: int = 0  # the pause's work and span in words (v8.proto; work / span: its parallelism)
    span_words: int = 0
    serial_words: int = 0  # the part of both outside any parallel job

    @property
    def freed(self) -> int:
        """Bytes of objects the GC reclaimed (heapUsed before less after)."""
        return self.live_before - self.live_after

    @classmethod
    def from_pb(cls, e: pb.GcEvent) -> GcEvent:
        return cls(**{f.name: getattr(e, f.name) for f in fields(cls) if f.name not in _REPEATED},
                   marking_step_start_ms=tuple(e.marking_step_start_ms), marking_step_ms=tuple(e.marking_step_ms))


_REPEATED = frozenset(f.name for f in pb.GcEvent.DESCRIPTOR.fields if f.is_repeated)


@dataclass(frozen=True)
class IsolateInfo:
    isolate: int
    state: str  # live | lost
    space: int  # its VM address space
    semi_space_size: int
    max_old_space_size: int
    owner: str  # the holder's client id (hex); "" if kept
    keep: bool
    holder: int  # the core running its mutator now, or -1
    home: int  # the core that created it
    gc_helpers: int = 0  # scavenge helper cores (0 serial, -1 V8's rule, n at most n)
    incremental_marking: bool = False  # its major GCs mark incrementally
    concurrent_marking: bool = False  # helper cores mark its cycles concurrently

    @classmethod
    def from_pb(cls, i: pb.IsolateInfo) -> IsolateInfo:
        return cls(i.isolate, i.state, i.space, i.semi_space_size, i.max_old_space_size, i.owner, i.keep, i.holder,
                   i.home, i.gc_helpers, i.incremental_marking, i.concurrent_marking)


@dataclass(frozen=True)
class Description:
    nfields: int
    payload_len: int
    type: str  # object | string | array_buffer
    space: str  # new_space | old_space | large_object_space
    byte_length: int  # an ArrayBuffer's backing store


@dataclass(frozen=True)
class HeapStats:
    """One HeapStatistics reply: Node's process.memoryUsage(), v8.getHeapStatistics(),
    v8.getHeapSpaceStatistics(), and the GC counters (a nested figure named by its path)."""

    memory_usage: dict[str, int]
    heap_statistics: dict[str, int]
    spaces: list[dict[str, Any]]
    counters: dict[str, float]

    @classmethod
    def from_pb(cls, r: pb.HeapStatisticsReply) -> HeapStats:
        return cls(message_dict(r.memory_usage), message_dict(r.heap_statistics),
                   [message_dict(s) for s in r.spaces], dict(sorted(r.counters.items())))


def message_dict(m: Any) -> dict[str, Any]:
    """A flat message's fields by name, zeros included (MessageToDict would drop them)."""
    return {f.name: getattr(m, f.name) for f in m.DESCRIPTOR.fields}


@dataclass
class V8BatchResult:
    """Per op: a Handle (a new object, a global, an escaped handle, or a reference read), an int (a
    Smi read, a scope depth, a GC's seq), bytes (a read), None, or the op's exception."""

    results: list[Any]
    errors: list[tuple[int, MemsimError]] = field(default_factory=list)
    core: int = 0

    def __getitem__(self, i: int | Ref) -> Any:
        return self.results[i.index if isinstance(i, Ref) else i]

    def __len__(self) -> int:
        return len(self.results)

    def raise_first(self) -> V8BatchResult:
        if self.errors:
            raise self.errors[0][1]
        return self


class IsolateBatch(Generic[R]):
    """Ops for one V8.Batch message on one isolate. Each method returns the op's `Ref`; build,
    then `execute()` (with an AsyncIsolate: `await b.execute()`).

        b = iso.batch()
        emp = b.new_object([0, 0], nfields=3)
        b.set_field(emp, 0, b.new_string(b"Ann"))     # a Ref as a field value
        b.get_field(emp, 0)
        r = b.execute().raise_first(); r[emp]          # -> Handle
    """

    def __init__(self, run: Callable[[IsolateBatch[R]], R], isolate: int):
        self._run = run
        self.isolate = isolate
        self.op: list[pb.V8Op] = []
        self.a: list[int] = []
        self.a_tag: list[pb.ValueTag] = []
        self.b: list[int] = []
        self.c: list[int] = []
        self.nfields: list[int] = []
        self.nvalues: list[int] = []
        self.fields: list[int] = []
        self.field_tags: list[pb.ValueTag] = []
        self.data: list[bytes] = []

    def __len__(self) -> int:
        return len(self.op)

    def _add(self, op: pb.V8Op, target: Handle | Ref | None = None, b: int = 0, c: int = 0,
             values: Sequence[Operand] = (), nfields: int = 0, data: bytes | None = None) -> Ref:
        if target is not None and not isinstance(target, Handle | Ref):
            raise InvalidArgument(f"{pb.V8Op.Name(op)}: the object is a Handle or a Ref, not {type(target).__name__}")
        for v in (target, *values):
            if isinstance(v, Ref) and v.batch is not None and v.batch is not self:
                raise InvalidArgument(f"{pb.V8Op.Name(op)}: Ref({v.index}) was made by another batch; a Ref names "
                                      f"an op of its own batch (use the Handle that batch's result holds)")
        words = [word(v) for v in values]  # (a bad value refuses the op before it is added)
        self.op.append(op)
        w, tag = (0, pb.VALUE_NONE) if target is None else word(target)
        self.a.append(w)
        self.a_tag.append(tag)
        self.b.append(b)
        self.c.append(c)
        self.nfields.append(nfields)
        self.nvalues.append(len(values) if op == pb.V8_NEW_OBJECT else 0)
        for w, tag in words:
            self.fields.append(w)
            self.field_tags.append(tag)
        if data is not None:
            self.data.append(bytes(data))
        return Ref(len(self.op) - 1, batch=self)

    def new_object(self, fields: Sequence[Operand] = (), payload: bytes = b"", nfields: int | None = None,
                   pretenure: bool = False) -> Ref:
        check_nfields(nfields, len(fields))
        return self._add(pb.V8_NEW_OBJECT, c=int(pretenure), values=fields, nfields=nfields or 0, data=payload)

    def new_string(self, data: bytes, pretenure: bool = False) -> Ref:
        return self._add(pb.V8_NEW_STRING, c=int(pretenure), data=data)

    def new_array_buffer(self, byte_length: int) -> Ref:
        return self._add(pb.V8_NEW_ARRAY_BUFFER, b=byte_length)

    def set_field(self, target: Handle | Ref, index: int, value: Operand) -> Ref:
        return self._add(pb.V8_SET_FIELD, target, b=index, values=(value,))

    def get_field(self, target: Handle | Ref, index: int) -> Ref:
        return self._add(pb.V8_GET_FIELD, target, b=index)

    def read_payload(self, target: Handle | Ref, offset: int = 0, length: int | None = None) -> Ref:
        return self._add(pb.V8_READ_PAYLOAD, target, b=offset, c=WORD if length is None else length)

    def write_payload(self, target: Handle | Ref, offset: int, data: bytes) -> Ref:
        return self._add(pb.V8_WRITE_PAYLOAD, target, b=offset, data=data)

    def read_backing(self, target: Handle | Ref, offset: int = 0, length: int | None = None) -> Ref:
        return self._add(pb.V8_READ_BACKING, target, b=offset, c=WORD if length is None else length)

    def write_backing(self, target: Handle | Ref, offset: int, data: bytes) -> Ref:
        return self._add(pb.V8_WRITE_BACKING, target, b=offset, data=data)

    def open_scope(self) -> Ref:
        return self._add(pb.V8_OPEN_SCOPE)

    def close_scope(self, escape: Handle | Ref | None = None) -> Ref:
        return self._add(pb.V8_CLOSE_SCOPE, escape)

    def make_persistent(self, target: Handle | Ref) -> Ref:
        return self._add(pb.V8_MAKE_PERSISTENT, target)

    def drop(self, target: Handle | Ref) -> Ref:
        return self._add(pb.V8_DROP, target)

    def gc(self, minor: bool = False) -> Ref:
        return self._add(pb.V8_GC, b=int(minor))

    def to_proto(self, seq: int) -> pb.V8Batch:
        try:
            return pb.V8Batch(seq=seq, isolate=self.isolate, op=self.op, a=self.a, a_tag=self.a_tag, b=self.b,
                              c=self.c, data=self.data, nfields=self.nfields, nvalues=self.nvalues,
                              fields=self.fields, field_tags=self.field_tags)
        except (ValueError, TypeError) as e:  # e.g. a negative index: protobuf's uint64 cannot carry it
            raise InvalidArgument(f"bad batch: {e}") from None

    def decode(self, reply: pb.V8BatchReply) -> V8BatchResult:
        errors = {e.index: from_code(e.code, e.message) for e in reply.errors}
        reads = iter(reply.data)
        out: list[Any] = []
        for i, op in enumerate(self.op):
            data = next(reads, b"") if op in (pb.V8_READ_PAYLOAD, pb.V8_READ_BACKING) else None
            if i in errors:
                out.append(errors[i])
            elif data is not None:
                out.append(data)
            else:
                out.append(value_from_word(reply.value[i], reply.value_tag[i]) if i < len(reply.value) else None)
        return V8BatchResult(out, sorted(errors.items()), reply.core)

    def execute(self) -> R:
        return self._run(self)
