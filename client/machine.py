"""The allocator's client methods (memsim.v1.Machine), written once for `Client` and `AsyncClient`.

Owns: building each request, the keepalive's start before any call that may allocate, decoding
each reply into the records of client/types.py, the batch's deadline, and the calls made of several
RPCs (put_value, get_value, object_size). Each method is a `command` (client/rpc.py): `Client`
(client/sync.py) runs it now, `AsyncClient` (client/aio.py) returns a coroutine.
Touches: the protos, client/connection.py (the transport), client/session.py (the lease).
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgpack

from memsim.client.connection import DEFAULT_TIMEOUT, REPLY_GRACE, Endpoint, build_request
from memsim.client.errors import DeadlineExceeded
from memsim.client.rpc import Steps, command, roundtrip, unary
from memsim.client.session import (
    DEFAULT_LEASE,
    MAX_OBJECT_LEASE,
    ObjectListing,
    check_lease,
    decode_objects,
    new_client_id,
    session_metadata,
)
from memsim.client.types import (
    LAYER_NAMES,
    Allocation,
    Batch,
    BatchResult,
    Freed,
    ObjectSize,
    address_of,
    decode_value,
)
from memsim.v1 import machine_pb2 as pb
from memsim.v1 import machine_pb2_grpc


def with_deadline(request: pb.OpBatch, timeout: float) -> pb.OpBatch:
    """request with timeout_ms: the server undoes a batch's allocations if it ends later than
    that after arriving (server/servicer.py), and otherwise replies; as the caller waits
    REPLY_GRACE longer, a reply the server sends is never one the caller has given up on."""
    request.timeout_ms = max(1, min(int(timeout * 1000), (1 << 32) - 1))
    return request


def expired_batch(reply: pb.BatchReply, timeout: float) -> pb.BatchReply:
    if reply.expired:
        raise DeadlineExceeded(f"batch {reply.seq} did not finish within {timeout} s on core {reply.core}; "
                               f"the objects it allocated were freed again (its other ops took effect)")
    return reply


def lock_waits(reply: pb.AllocReply | pb.FreeReply) -> list[tuple[str, int]]:
    return [(w.lock, w.wait_ns) for w in reply.lock_waits]


class MachineCommands(Endpoint):
    """The allocator's calls. Every call raises the typed exceptions of client/errors.py and has a
    deadline of the client's `timeout` seconds (or the call's own `timeout=`)."""

    keep: bool
    client_id: str

    def __init__(self, target: str = "127.0.0.1:50051", *, core: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT, lease: float = DEFAULT_LEASE, keep: bool = False):
        lease = check_lease(lease, MAX_OBJECT_LEASE)
        self.keep = keep  # the default for alloc(); True also makes batch allocations nobody's
        self.client_id = new_client_id()
        metadata = session_metadata(self.client_id, lease)
        self._connect(target, core, timeout, machine_pb2_grpc.MachineStub, "Batch", metadata,
                      () if keep else metadata, lease)

    def _held(self, reply: pb.RenewReply) -> bool:
        return reply.objects

    # -- single operations -----------------------------------------------------------------

    @command
    def alloc(self, size: int, keep: bool | None = None, *, timeout: float | None = None) -> Steps[Allocation]:
        """A new object, freed when this client closes (or its lease runs out) unless keep=True."""
        keep = self.keep if keep is None else keep
        req = build_request(pb.AllocRequest, size=size, keep=keep)
        if not keep:
            self._start_keepalive()  # before the call: an object it makes is never without renewal
        r = yield from unary("Alloc", req, pb.AllocReply, timeout)
        return Allocation(r.address, r.size, r.usable_size, r.size_class, LAYER_NAMES[r.layer], r.core,
                          lock_waits(r))

    @command
    def free(self, obj: Allocation | int, *, timeout: float | None = None) -> Steps[Freed]:
        """Free an object, given as its Allocation or its address."""
        r = yield from unary("Free", build_request(pb.FreeRequest, address=address_of(obj)), pb.FreeReply, timeout)
        return Freed(LAYER_NAMES[r.layer], r.core, lock_waits(r))

    @command
    def read(self, address: int, length: int, offset: int = 0, *, timeout: float | None = None) -> Steps[bytes]:
        """`length` bytes from `offset` bytes into the object at `address`."""
        req = build_request(pb.ReadRequest, address=address, offset=offset, length=length)
        return (yield from unary("Read", req, pb.ReadReply, timeout)).data

    @command
    def write(self, address: int, data: bytes, offset: int = 0, *, timeout: float | None = None) -> Steps[None]:
        req = build_request(pb.WriteRequest, address=address, offset=offset, data=bytes(data))
        yield from unary("Write", req, pb.WriteReply, timeout)

    # -- structured values (msgpack) -----------------------------------------------------

    @command
    def put_value(self, value: Any, keep: bool | None = None) -> Steps[Allocation]:
        """Store a msgpack-encodable value in a new object; keep the Allocation to read it back."""
        payload = msgpack.packb(value, use_bin_type=True)
        a = yield from MachineCommands.alloc.steps(self, len(payload), keep=keep)
        try:
            yield from MachineCommands.write.steps(self, a.address, payload)
        except BaseException:
            with contextlib.suppress(Exception):  # nobody could name the object: give it back
                yield from MachineCommands.free.steps(self, a.address)
            raise
        return a

    @command
    def get_value(self, obj: Allocation | int) -> Steps[Any]:
        """The value put_value stored, given its Allocation or only its address (the object's size
        is then found with a few batches of one-byte reads, see ObjectSize)."""
        address = address_of(obj)
        if isinstance(obj, Allocation):
            size = obj.size
        else:
            size = yield from MachineCommands.object_size.steps(self, address)
        return decode_value((yield from MachineCommands.read.steps(self, address, size)), address)

    @command
    def object_size(self, address: int) -> Steps[int]:
        """The requested size of the object at `address`."""
        search = ObjectSize(address)
        while offsets := search.offsets():
            b: Batch[Any] = Batch()
            for o in offsets:
                b.read(address, 1, offset=o)
            search.learn((yield from MachineCommands.execute.steps(self, b)).results)
        return search.size

    # -- the machine -----------------------------------------------------------------------

    @command
    def info(self, *, timeout: float | None = None) -> Steps[pb.MachineInfo]:
        return (yield from unary("GetInfo", pb.InfoRequest(), pb.MachineInfo, timeout))

    @command
    def list_objects(self, core: int | None = None, client: str = "", mine: bool = False,
                     limit: int = 1000) -> Steps[ObjectListing]:
        """Live objects (those `core` allocated; those of `client`, a client id, or this client's with
        mine=True): up to `limit` of them, and how many match in all."""
        req = build_request(pb.ListObjectsRequest, core=core, client=client, mine=mine, limit=limit)
        return decode_objects((yield from unary("ListObjects", req, pb.ListObjectsReply)))

    @command
    def stats(self, check_heap: bool = False, *, timeout: float | None = None) -> Steps[pb.Stats]:
        """Heap figures, locks and caches; check_heap=True also verifies the heap's invariants."""
        return (yield from unary("GetStats", pb.StatsRequest(check_heap=check_heap), pb.Stats, timeout))

    # -- batches ---------------------------------------------------------------------------

    @command
    def execute(self, batch: Batch[Any]) -> Steps[BatchResult]:
        """Run a batch: its ops in order, on one core, in one stream message."""
        if pb.ALLOC in batch.kind and not self.keep:
            self._start_keepalive()
        reply = yield from roundtrip(lambda seq: with_deadline(batch.to_proto(seq), self.timeout), pb.BatchReply,
                                     self.timeout + REPLY_GRACE)
        return batch.decode(expired_batch(reply, self.timeout))
