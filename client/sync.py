"""The synchronous client.

    from memsim.client import Client
    with Client("127.0.0.1:50051") as m:          # any core (SO_REUSEPORT picks one)
        a = m.alloc(100)
        m.write(a.address, b"hello")
        m.read(a.address, 5)                       # b'hello'
        m.free(a.address)
        b = m.batch()                              # many ops, one message, one core
        r = b.alloc(64); b.write(r, b"x" * 64); b.read(r, 64); b.free(r)
        b.execute()

`core=N` connects to that core's own port (port + 1 + N) instead of the shared one. Every
unary call carries a deadline (the client's `timeout`, 10 s by default, or the call's own
`timeout=`); a batch waits for its reply at most as long. Batches ride one long-lived bidirectional stream per client.

What a client allocates is its own: `close()` frees it, and if the process dies without
closing, the server does once the client's lease (`lease=`, 30 s) runs out (client/session.py).
`alloc(size, keep=True)` makes an object nobody's, to outlive the client; `Client(keep=True)`
makes all of them so (for clients that hand objects to others to free). `list_objects()`
shows what is live, by core and by client, to find leaks.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import msgpack

from memsim.client.errors import (
    ClientClosed,
    DeadlineExceeded,
    InvalidArgument,
    Unavailable,
    client_closed,
    from_rpc_error,
)
from memsim.client.session import (
    DEFAULT_LEASE,
    MAX_OBJECT_LEASE,
    Keepalive,
    ObjectListing,
    check_lease,
    close_session,
    decode_objects,
    new_client_id,
    session_metadata,
)
from memsim.client.types import LAYER_NAMES, Allocation, Batch, BatchResult, Freed, ObjectSize, address_of, decode_value
from memsim.v1 import machine_pb2 as pb
from memsim.v1 import machine_pb2_grpc

DEFAULT_TIMEOUT = 10.0
REPLY_GRACE = 1.0  # a batch's reply may arrive this long after its timeout (see with_deadline)
MAX_MESSAGE = 32 << 20
_channel_ids = iter(range(1 << 62))


def core_target(target: str, core: int | None) -> str:
    if core is None:
        return target
    host, _, port = target.rpartition(":")
    return f"{host}:{int(port) + 1 + core}"


def channel_options() -> list[tuple[str, object]]:
    # A distinct arg per channel so that channels do not share one connection (gRPC pools
    # channels with equal args) and SO_REUSEPORT can spread them over cores.
    return [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE),
            ("memsim.channel_id", next(_channel_ids))]


def build_request(cls, **fields):
    """A request message, or InvalidArgument for a field protobuf cannot carry (e.g. size=-1)."""
    try:
        return cls(**fields)
    except (ValueError, TypeError):
        bad = {k: v for k, v in fields.items() if not isinstance(v, bytes | bytearray)}
        raise InvalidArgument(f"bad arguments {bad}: sizes, addresses and offsets are non-negative "
                              f"integers below 2**64") from None


def with_deadline(request: Any, timeout: float) -> Any:
    """request with timeout_ms: the server undoes a batch's allocations if it ends later than
    that after arriving (server/servicer.py), and otherwise replies; as the caller waits
    REPLY_GRACE longer, a reply the server sends is never one the caller has given up on."""
    request.timeout_ms = max(1, min(int(timeout * 1000), (1 << 32) - 1))
    return request


def expired_batch(reply: Any, timeout: float) -> Any:
    if reply.expired:
        raise DeadlineExceeded(f"batch {reply.seq} did not finish within {timeout} s on core {reply.core}; "
                               f"the objects it allocated were freed again (its other ops took effect)")
    return reply


class Stream:
    """One bidi stream of batches (Machine.Batch, Cache.Pipeline): requests through a queue,
    replies collected by a reader thread, each checked against its request's seq."""

    def __init__(self, open_stream):
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._replies: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._call = open_stream(self._iter_requests())
        self._reader = threading.Thread(target=self._read, daemon=True, name="memsim-batch-reader")
        self._reader.start()

    def _iter_requests(self) -> Iterator[Any]:
        while True:
            item = self._requests.get()
            if item is None:
                return
            yield item

    def _read(self) -> None:
        try:
            for reply in self._call:
                self._replies.put(reply)
            self._replies.put(EOFError("the server closed the batch stream"))
        except BaseException as e:  # noqa: BLE001 - handed to the waiting caller
            self._replies.put(e)

    def roundtrip(self, req: Any, timeout: float) -> Any:
        self._requests.put(req)
        try:
            item = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise DeadlineExceeded(f"no reply to batch {req.seq} within {timeout} s") from None
        if isinstance(item, grpc.RpcError):
            raise from_rpc_error(item) from None
        if isinstance(item, BaseException):
            raise item
        if item.seq != req.seq:
            self.close()
            raise Unavailable(f"batch stream out of step: sent batch {req.seq}, got the reply to {item.seq}")
        return item

    @property
    def ended(self) -> bool:
        """The server ended the stream while no batch was outstanding (an idle stream is ended
        after `memsim serve --stream-idle-timeout`): anything waiting now is its end, not a reply."""
        return not self._replies.empty() or not self._reader.is_alive()

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()


class StreamSession:
    """One client's batch stream, opened on first use, numbered, and replaced after any failure
    (a failed stream is not reused, and its threads must end). Shared by Client, Cache, VMClient."""

    def __init__(self, open_stream):
        self._open = open_stream
        self._stream: Stream | None = None
        self._lock = threading.Lock()
        self._seq = 0
        self._closed = False

    def roundtrip(self, make_request, timeout: float) -> Any:
        """Send make_request(seq) and return its reply."""
        with self._lock:
            if self._closed:
                raise ClientClosed("this client is closed (its batch stream went with it); make a new one to go on")
            if self._stream is not None and self._stream.ended:  # nothing was sent on it: open another
                self._stream.close()
                self._stream = None
            if self._stream is None:
                self._stream = Stream(self._open)
            self._seq += 1
            try:
                return self._stream.roundtrip(make_request(self._seq), timeout)
            except BaseException:
                self._stream.close()
                self._stream = None
                raise

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._stream is not None:
                self._stream.close()
                self._stream = None


class Client:
    """A connection to a memsim server (any core, or `core=N` for that core's own port).

    Calls raise the typed exceptions of `memsim.client.errors`; each has a deadline of
    `timeout` seconds. `batch()` builds many operations for one round trip on a stream.
    """

    def __init__(self, target: str = "127.0.0.1:50051", *, core: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT, lease: float = DEFAULT_LEASE, keep: bool = False):
        self.target = core_target(target, core)
        self.keep = keep  # the default for alloc(); True also makes batch allocations nobody's
        self.core = core
        self.timeout = timeout
        self.lease = check_lease(lease, MAX_OBJECT_LEASE)
        self.client_id = new_client_id()
        self._metadata = session_metadata(self.client_id, self.lease)
        self._channel = grpc.insecure_channel(self.target, options=channel_options())
        self._stub = machine_pb2_grpc.MachineStub(self._channel)
        self._batches = StreamSession(functools.partial(self._stub.Batch, metadata=() if keep else self._metadata))
        self._keepalive = Keepalive(self._renew, self.lease)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection, freeing the objects this client allocated (but not those it kept)."""
        if self._closed:
            return
        self._closed = True
        close_session(self._keepalive, self._batches, functools.partial(self._stub.Release, pb.ReleaseRequest()),
                      self.timeout, self._metadata, self._channel)

    _closed = False

    def _renew(self) -> bool:
        """Renew this client's lease; whether it still holds any object."""
        return self._stub.Renew(pb.RenewRequest(), timeout=min(self.timeout, self.lease / 2),
                                metadata=self._metadata).objects

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout: float = 10.0) -> None:
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise DeadlineExceeded(f"server at {self.target} not ready within {timeout} s") from None

    def _call(self, method, request, timeout: float | None = None):
        if self._closed:
            raise client_closed(self)
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            err = from_rpc_error(e)
            if isinstance(err, Unavailable) and self.core is not None:
                err = Unavailable(f"{err} (core {self.core} listens on the shared port + {1 + self.core}; "
                                  f"does the machine have that many cores?)")
            raise err from None

    def _request(self, cls, **fields):
        return build_request(cls, **fields)

    # -- single operations -----------------------------------------------------------------

    def alloc(self, size: int, keep: bool | None = None, *, timeout: float | None = None) -> Allocation:
        """A new object, freed when this client closes (or its lease runs out) unless keep=True."""
        keep = self.keep if keep is None else keep
        req = self._request(pb.AllocRequest, size=size, keep=keep)
        if not keep:
            self._keepalive.start()  # before the call: an object it makes is never without renewal
        r = self._call(self._stub.Alloc, req, timeout)
        return Allocation(r.address, r.size, r.usable_size, r.size_class, LAYER_NAMES[r.layer], r.core,
                          [(w.lock, w.wait_ns) for w in r.lock_waits])

    def free(self, obj: Allocation | int, *, timeout: float | None = None) -> Freed:
        """Free an object, given as its Allocation or its address."""
        r = self._call(self._stub.Free, self._request(pb.FreeRequest, address=address_of(obj)), timeout)
        return Freed(LAYER_NAMES[r.layer], r.core, [(w.lock, w.wait_ns) for w in r.lock_waits])

    def read(self, address: int, length: int, offset: int = 0, *, timeout: float | None = None) -> bytes:
        """`length` bytes from `offset` bytes into the object at `address`."""
        return self._call(self._stub.Read, self._request(pb.ReadRequest, address=address, offset=offset,
                                                         length=length), timeout).data

    def write(self, address: int, data: bytes, offset: int = 0, *, timeout: float | None = None) -> None:
        self._call(self._stub.Write, self._request(pb.WriteRequest, address=address, offset=offset, data=bytes(data)),
                   timeout)

    # -- structured values (msgpack) -----------------------------------------------------

    def put_value(self, value: Any, keep: bool | None = None) -> Allocation:
        """Store a msgpack-encodable value in a new object; keep the Allocation to read it back."""
        payload = msgpack.packb(value, use_bin_type=True)
        a = self.alloc(len(payload), keep=keep)
        try:
            self.write(a.address, payload)
        except BaseException:
            with contextlib.suppress(Exception):  # nobody could name the object: give it back
                self.free(a.address)
            raise
        return a

    def get_value(self, obj: Allocation | int) -> Any:
        """The value put_value stored, given its Allocation or only its address (the object's size
        is then found with a few batches of one-byte reads, see ObjectSize)."""
        address = address_of(obj)
        size = obj.size if isinstance(obj, Allocation) else self.object_size(address)
        return decode_value(self.read(address, size), address)

    def object_size(self, address: int) -> int:
        """The requested size of the object at `address`."""
        search = ObjectSize(address)
        while offsets := search.offsets():
            b = self.batch()
            for o in offsets:
                b.read(address, 1, offset=o)
            search.learn(self.execute(b).results)
        return search.size

    def info(self, *, timeout: float | None = None) -> pb.MachineInfo:
        return self._call(self._stub.GetInfo, pb.InfoRequest(), timeout)

    def list_objects(self, core: int | None = None, client: str = "", mine: bool = False,
                     limit: int = 1000) -> ObjectListing:
        """Live objects (those `core` allocated; those of `client`, a client id, or this client's with
        mine=True): up to `limit` of them, and how many match in all."""
        req = self._request(pb.ListObjectsRequest, core=core, client=client, mine=mine, limit=limit)
        return decode_objects(self._call(self._stub.ListObjects, req))

    def stats(self, check_heap: bool = False, *, timeout: float | None = None) -> pb.Stats:
        """Heap figures, locks and caches; check_heap=True also verifies the heap's invariants."""
        return self._call(self._stub.GetStats, pb.StatsRequest(check_heap=check_heap), timeout)

    # -- batches ---------------------------------------------------------------------------

    def batch(self) -> Batch:
        return Batch(self.execute)

    def execute(self, batch: Batch) -> BatchResult:
        if pb.ALLOC in batch.kind and not self.keep:
            self._keepalive.start()
        reply = self._batches.roundtrip(lambda seq: with_deadline(batch.to_proto(seq), self.timeout),
                                        self.timeout + REPLY_GRACE)
        return batch.decode(expired_batch(reply, self.timeout))
