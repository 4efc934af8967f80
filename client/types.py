"""The allocator client's records (frozen dataclasses built from the replies), the batch builder
shared by `Client` and `AsyncClient`, and the search that finds an object's size from its address.

Touches only the protos (memsim.v1.machine_pb2) and the typed errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgpack

from memsim.client.errors import InvalidArgument, MemsimError, from_code
from memsim.v1 import machine_pb2 as pb

R = TypeVar("R")  # what a bound batch's execute() returns: BatchResult, or a coroutine of one

LAYER_NAMES: dict[pb.Layer, str] = {pb.TINY: "tiny", pb.MCACHE: "mcache", pb.MCENTRAL: "mcentral", pb.MHEAP: "mheap",
               pb.LAYER_UNSPECIFIED: ""}


@dataclass(frozen=True)
class Allocation:
    address: int
    size: int
    usable_size: int
    size_class: int
    layer: str
    core: int
    lock_waits: list[tuple[str, int]] = field(default_factory=list)


def address_of(obj: Allocation | int) -> int:
    """The address of an object given as its Allocation or as the address itself."""
    return obj.address if isinstance(obj, Allocation) else obj


def decode_value(payload: bytes, address: int) -> Any:
    """A put_value object's value; InvalidArgument saying what was there if it is not msgpack."""
    try:
        return msgpack.unpackb(payload, raw=False)
    except (ValueError, msgpack.exceptions.UnpackException) as e:
        why = str(e) or type(e).__name__
        raise InvalidArgument(f"the {len(payload)}-byte object at {address:#x} does not hold one msgpack value, as "
                              f"put_value writes: it starts with {payload[:16].hex(' ')} ({why})") from None


class ObjectSize:
    """Find an object's requested size from its address alone, by reading one byte at chosen
    offsets (a read at offset o succeeds exactly when o < size): first at 2**k - 1, then a
    64-way search between the last offset that worked and the first that did not. An object
    of n bytes costs about 1 + log64(n) batches of at most 64 one-byte reads.

        search = ObjectSize(address)
        while (offsets := search.offsets()):
            search.learn(results of reading 1 byte at each offset, in one batch)
        search.size
    """

    WAYS = 64
    MAX_BITS = 40  # past any machine this simulator builds

    def __init__(self, address: int):
        self.address = address
        self.lo = 0  # size >= lo
        self.hi: int | None = None  # size < hi, once known
        self._asked: list[int] = []

    def offsets(self) -> list[int]:
        if self.hi is None:
            self._asked = [(1 << k) - 1 for k in range(self.MAX_BITS)]
        elif self.hi - self.lo > 1:
            step = max(1, (self.hi - self.lo) // self.WAYS)
            self._asked = list(range(self.lo, self.hi - 1, step))[:self.WAYS]
        else:
            self._asked = []
        return self._asked

    def learn(self, results: list[OpResult]) -> None:
        hi = self.hi if self.hi is not None else 1 << self.MAX_BITS
        for offset, r in zip(self._asked, results, strict=True):
            if r.ok:
                self.lo = max(self.lo, offset + 1)
            elif r.error is not None and r.error.code.name == "OUT_OF_RANGE" and offset > 0:
                hi = min(hi, offset + 1)
            else:  # no object there at all (NOT_FOUND, ...): say so as the server did
                raise r.error if r.error is not None else InvalidArgument(f"no object at {self.address:#x}")
        self.hi = hi

    @property
    def size(self) -> int:
        return self.lo


@dataclass(frozen=True)
class Freed:
    layer: str
    core: int
    lock_waits: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Ref:
    """What op `index` of the same batch will make: the address an allocator batch's alloc returns,
    the handle an isolate batch's op returns (client/v8_types.py). `batch` is the builder that made
    it (None for a Ref written by hand), so that a batch can refuse another batch's Ref."""

    index: int
    batch: object = field(default=None, compare=False, repr=False)


@dataclass
class OpResult:
    kind: str
    address: int = 0  # ALLOC: the new object
    layer: str = ""
    data: bytes | None = None  # READ
    error: MemsimError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class BatchResult:
    results: list[OpResult]
    core: int
    lock_wait_ns: int

    def __getitem__(self, i: int) -> OpResult:
        return self.results[i]

    def __len__(self) -> int:
        return len(self.results)

    @property
    def errors(self) -> list[tuple[int, MemsimError]]:
        return [(i, r.error) for i, r in enumerate(self.results) if r.error is not None]

    def raise_first(self) -> BatchResult:
        for _, e in self.errors:
            raise e
        return self


_KIND_NAMES: dict[pb.OpKind, str] = {pb.ALLOC: "alloc", pb.FREE: "free", pb.READ: "read", pb.WRITE: "write"}


class Batch(Generic[R]):
    """Operations to run in order on one core in one message. Build it, then `execute()`.

    An op may target the address a previous op of the same batch allocates: pass the `Ref`
    that `alloc()` returned.
    """

    def __init__(self, runner: Callable[[Batch[R]], R] | None = None):
        self._runner = runner
        self.kind: list[pb.OpKind] = []
        self.address: list[int] = []
        self.size: list[int] = []
        self.offset: list[int] = []
        self.ref: list[int] = []
        self.data: list[bytes] = []

    def __len__(self) -> int:
        return len(self.kind)

    def _add(self, kind: pb.OpKind, target: int | Ref = 0, size: int = 0, offset: int = 0) -> Ref:
        self.kind.append(kind)
        if isinstance(target, Ref):
            self.address.append(0)
            self.ref.append(target.index)
        else:
            self.address.append(target)
            self.ref.append(-1)
        self.size.append(size)
        self.offset.append(offset)
        return Ref(len(self.kind) - 1)

    def alloc(self, size: int) -> Ref:
        return self._add(pb.ALLOC, 0, size)

    def free(self, target: int | Ref) -> Ref:
        return self._add(pb.FREE, target)

    def read(self, target: int | Ref, length: int, offset: int = 0) -> Ref:
        return self._add(pb.READ, target, length, offset)

    def write(self, target: int | Ref, data: bytes, offset: int = 0) -> Ref:
        self.data.append(bytes(data))
        return self._add(pb.WRITE, target, 0, offset)

    def to_proto(self, seq: int) -> pb.OpBatch:
        refs = self.ref if any(r >= 0 for r in self.ref) else []
        try:
            return pb.OpBatch(seq=seq, kind=self.kind, address=self.address, size=self.size, offset=self.offset,
                              data=self.data, ref=refs)
        except (ValueError, TypeError) as e:  # e.g. a negative size: protobuf's uint64 cannot carry it
            raise InvalidArgument(f"bad batch: {e}") from None

    def decode(self, reply: pb.BatchReply) -> BatchResult:
        errors = {e.index: from_code(e.code, e.message) for e in reply.errors}
        reads = iter(reply.data)
        out = []
        for i, k in enumerate(self.kind):
            r = OpResult(kind=_KIND_NAMES.get(k, "?"), address=reply.address[i] if reply.address else 0,
                         layer=LAYER_NAMES.get(reply.layer[i], "") if reply.layer else "", error=errors.get(i))
            if k == pb.READ:
                r.data = next(reads, b"")
            out.append(r)
        return BatchResult(out, reply.core, reply.lock_wait_ns)

    def execute(self) -> R:
        """Run on the client that made this batch (with AsyncClient: `await batch.execute()`)."""
        if self._runner is None:
            raise RuntimeError("this batch is not bound to a client; use client.execute(batch)")
        return self._runner(self)
