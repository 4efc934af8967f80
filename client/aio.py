"""The asyncio client: the same calls as `Client`, as coroutines.

    async with AsyncClient("127.0.0.1:50051") as m:
        a = await m.alloc(100)
        await m.write(a.address, b"hi")
        b = m.batch(); r = b.alloc(16); b.read(r, 16)
        await m.execute(b)

Objects are released as `Client`'s are (client/sync.py): at close, or when the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

import grpc
import msgpack

from memsim.client.errors import ClientClosed, DeadlineExceeded, Unavailable, client_closed, from_rpc_error
from memsim.client.session import (
    DEFAULT_LEASE,
    MAX_OBJECT_LEASE,
    AsyncKeepalive,
    ObjectListing,
    check_lease,
    close_session_async,
    decode_objects,
    new_client_id,
    session_metadata,
)
from memsim.client.sync import (
    DEFAULT_TIMEOUT,
    REPLY_GRACE,
    build_request,
    channel_options,
    core_target,
    expired_batch,
    with_deadline,
)
from memsim.client.types import LAYER_NAMES, Allocation, Batch, BatchResult, Freed, ObjectSize, address_of, decode_value
from memsim.v1 import machine_pb2 as pb
from memsim.v1 import machine_pb2_grpc


class AsyncStreamSession:
    """One asyncio client's batch stream: opened on first use, replies checked by seq, replaced
    after a cancel, a timeout or a failure. Shared by AsyncClient, AsyncCache and AsyncVMClient."""

    def __init__(self, open_stream, what: str = "batch"):
        self._open = open_stream
        self.what = what
        self._stream = None
        self._lock = asyncio.Lock()
        self._seq = 0
        self._closed = False

    async def roundtrip(self, make_request, timeout: float) -> Any:
        async with self._lock:
            if self._closed:
                raise ClientClosed(f"this client is closed (its {self.what} stream went with it); "
                                   f"make a new one to go on")
            if self._stream is not None and self._stream.done():  # ended while idle (serve --stream-idle-timeout)
                self._stream = None
            if self._stream is None:
                self._stream = self._open()
            self._seq += 1
            stream = self._stream
            try:
                await stream.write(make_request(self._seq))
                reply = await asyncio.wait_for(stream.read(), timeout)
                if reply is grpc.aio.EOF:
                    raise Unavailable(f"the server closed the {self.what} stream")
                if reply.seq != self._seq:
                    raise Unavailable(f"{self.what} stream out of step: sent {self._seq}, got {reply.seq}")
                return reply
            except BaseException as e:
                # Cancelled, timed out or failed: this stream is finished; the next call opens a new one.
                stream.cancel()
                self._stream = None
                if isinstance(e, TimeoutError):
                    raise DeadlineExceeded(f"no reply to {self.what} {self._seq} within {timeout} s") from None
                if isinstance(e, grpc.RpcError):
                    raise from_rpc_error(e) from None
                if isinstance(e, asyncio.InvalidStateError):
                    raise Unavailable(f"{self.what} stream unusable: {e}") from None
                raise

    def cancel(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None

    def close(self) -> None:
        """The client is closing: end the stream, and refuse every later round trip."""
        self._closed = True
        self.cancel()


class AsyncClient:
    """The asyncio twin of `Client`: same calls, awaited; `await client.batch().execute()`."""

    def __init__(self, target: str = "127.0.0.1:50051", *, core: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT, lease: float = DEFAULT_LEASE, keep: bool = False):
        self.target = core_target(target, core)
        self.keep = keep  # the default for alloc(); True also makes batch allocations nobody's
        self.timeout = timeout
        self.lease = check_lease(lease, MAX_OBJECT_LEASE)
        self.client_id = new_client_id()
        self._metadata = session_metadata(self.client_id, self.lease)
        self._channel = grpc.aio.insecure_channel(self.target, options=channel_options())
        self._stub = machine_pb2_grpc.MachineStub(self._channel)
        self._batches = AsyncStreamSession(functools.partial(self._stub.Batch, metadata=() if keep else self._metadata))
        self._keepalive = AsyncKeepalive(self._renew, self.lease)

    async def close(self) -> None:
        """Close the connection, freeing the objects this client allocated (but not those it kept)."""
        if self._closed:
            return
        self._closed = True
        await close_session_async(self._keepalive, self._batches,
                                  functools.partial(self._stub.Release, pb.ReleaseRequest()), self.timeout,
                                  self._metadata, self._channel)

    _closed = False

    async def _renew(self) -> bool:
        reply = await self._stub.Renew(pb.RenewRequest(), timeout=min(self.timeout, self.lease / 2),
                                       metadata=self._metadata)
        return reply.objects

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method, request, timeout: float | None = None):
        if self._closed:
            raise client_closed(self)
        try:
            return await method(request, timeout=self.timeout if timeout is None else timeout,
                                metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def alloc(self, size: int, keep: bool | None = None, *, timeout: float | None = None) -> Allocation:
        keep = self.keep if keep is None else keep
        req = build_request(pb.AllocRequest, size=size, keep=keep)
        if not keep:
            self._keepalive.start()
        r = await self._call(self._stub.Alloc, req, timeout)
        return Allocation(r.address, r.size, r.usable_size, r.size_class, LAYER_NAMES[r.layer], r.core,
                          [(w.lock, w.wait_ns) for w in r.lock_waits])

    async def free(self, obj: Allocation | int, *, timeout: float | None = None) -> Freed:
        r = await self._call(self._stub.Free, build_request(pb.FreeRequest, address=address_of(obj)), timeout)
        return Freed(LAYER_NAMES[r.layer], r.core, [(w.lock, w.wait_ns) for w in r.lock_waits])

    async def read(self, address: int, length: int, offset: int = 0, *, timeout: float | None = None) -> bytes:
        r = await self._call(self._stub.Read, build_request(pb.ReadRequest, address=address, offset=offset,
                                                             length=length), timeout)
        return r.data

    async def write(self, address: int, data: bytes, offset: int = 0, *, timeout: float | None = None) -> None:
        await self._call(self._stub.Write, build_request(pb.WriteRequest, address=address, offset=offset,
                                                         data=bytes(data)), timeout)

    async def put_value(self, value: Any, keep: bool | None = None) -> Allocation:
        payload = msgpack.packb(value, use_bin_type=True)
        a = await self.alloc(len(payload), keep=keep)
        try:
            await self.write(a.address, payload)
        except BaseException:
            with contextlib.suppress(Exception):  # nobody could name the object: give it back
                await self.free(a.address)
            raise
        return a

    async def get_value(self, obj: Allocation | int) -> Any:
        address = address_of(obj)
        size = obj.size if isinstance(obj, Allocation) else await self.object_size(address)
        return decode_value(await self.read(address, size), address)

    async def object_size(self, address: int) -> int:
        search = ObjectSize(address)
        while offsets := search.offsets():
            b = self.batch()
            for o in offsets:
                b.read(address, 1, offset=o)
            search.learn((await self.execute(b)).results)
        return search.size

    async def info(self, *, timeout: float | None = None) -> pb.MachineInfo:
        return await self._call(self._stub.GetInfo, pb.InfoRequest(), timeout)

    async def list_objects(self, core: int | None = None, client: str = "", mine: bool = False,
                           limit: int = 1000) -> ObjectListing:
        req = build_request(pb.ListObjectsRequest, core=core, client=client, mine=mine, limit=limit)
        return decode_objects(await self._call(self._stub.ListObjects, req))

    async def stats(self, check_heap: bool = False, *, timeout: float | None = None) -> pb.Stats:
        return await self._call(self._stub.GetStats, pb.StatsRequest(check_heap=check_heap), timeout)

    async def wait_ready(self, timeout: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except TimeoutError:
            raise DeadlineExceeded(f"server at {self.target} not ready within {timeout} s") from None

    def batch(self) -> Batch:
        """A batch whose `await batch.execute()` runs on this client."""
        return Batch(self.execute)

    async def execute(self, batch: Batch) -> BatchResult:
        if pb.ALLOC in batch.kind and not self.keep:
            self._keepalive.start()
        reply = await self._batches.roundtrip(lambda seq: with_deadline(batch.to_proto(seq), self.timeout),
                                              self.timeout + REPLY_GRACE)
        return batch.decode(expired_batch(reply, self.timeout))

