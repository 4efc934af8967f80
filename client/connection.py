"""A client's connection: its gRPC channel, stub, batch stream and session, sync or asyncio.

Owns: the per-core target, the channel options, the deadline every call carries, the mapping of a
failed call to its typed error, and a client's lifecycle (open, `close()`, `with` / `async with`).
`Connection` blocks (grpc's sync API); `AsyncConnection` awaits (grpc.aio). Both carry out the calls
that the command bodies yield (client/rpc.py), so each command is written once for both.
Touches: client/stream.py (the batch stream), client/session.py (the client id, the lease's
keepalive, Release at close), the protos. Never the server or the simulator.

Invariants: a closed client refuses every call with ClientClosed; `close()` is idempotent; every
unary call has a deadline (the client's `timeout`, or the call's own).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, Self, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from memsim.client.errors import (
    DeadlineExceeded,
    InvalidArgument,
    MemsimError,
    Unavailable,
    client_closed,
    from_rpc_error,
)
from memsim.client.rpc import AsyncRunner, Op, Roundtrip, Steps, SyncRunner, Unary, command, unary
from memsim.client.session import (
    AsyncKeepalive,
    Keepalive,
    Metadata,
    close_session,
    close_session_async,
)
from memsim.client.stream import AsyncStreamSession, OpenAsyncStream, OpenStream, StreamSession
from memsim.v1 import machine_pb2 as mpb

DEFAULT_TIMEOUT = 10.0
REPLY_GRACE = 1.0  # a batch's reply may arrive this long after its timeout_ms (machine.with_deadline, isolate.execute)
MAX_MESSAGE = 32 << 20  # gRPC's send and receive limit; the server's is the same (server/limits.py)
_channel_ids = iter(range(1 << 62))
M = TypeVar("M", bound=Message)


def core_target(target: str, core: int | None) -> str:
    """The shared port (any core, SO_REUSEPORT picks one), or core N's own port: port + 1 + N."""
    if core is None:
        return target
    host, _, port = target.rpartition(":")
    return f"{host}:{int(port) + 1 + core}"


def channel_options() -> list[tuple[str, Any]]:
    # A distinct arg per channel so that channels do not share one connection (gRPC pools
    # channels with equal args) and SO_REUSEPORT can spread them over cores.
    return [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE),
            ("memsim.channel_id", next(_channel_ids))]


def build_request(cls: type[M], **fields: Any) -> M:
    """A request message, or InvalidArgument for a field protobuf cannot carry (e.g. size=-1)."""
    try:
        return cls(**fields)
    except (ValueError, TypeError):
        bad = {k: v for k, v in fields.items() if not isinstance(v, bytes | bytearray)}
        raise InvalidArgument(f"bad arguments {bad}: sizes, addresses and offsets are non-negative "
                              f"integers below 2**64") from None


class Endpoint:
    """What a connection is, sync or asyncio alike: where it points, its deadline, its stub, and, for
    the clients that own what they create (Client, VMClient), its session: `client_id`, `lease`."""

    target: str
    core: int | None
    timeout: float
    lease: float | None = None  # set by the clients that hold a lease (Client, VMClient); the cache holds none
    _metadata: Metadata = ()
    _stub: Any  # a generated stub (memsim.v1.*_pb2_grpc); the generated code is untyped
    _keepalive: Keepalive | AsyncKeepalive | None = None
    _closed = False

    _channel: grpc.Channel | grpc.aio.Channel
    _batches: StreamSession | AsyncStreamSession

    def _connect(self, target: str, core: int | None, timeout: float, stub: Callable[[Any], Any], stream: str,
                 metadata: Metadata = (), stream_metadata: Metadata = (), lease: float | None = None,
                 what: str = "batch") -> None:
        """Open the channel to `target` (core's own port with `core`) and the stub; `stream` names the
        stub's batch stream, `what` what its errors call it. With a lease, also the keepalive that
        renews it while the client holds anything."""
        self.target, self.core, self.timeout, self._metadata = core_target(target, core), core, timeout, metadata
        self._channel = self._open_channel(self.target)
        self._stub = stub(self._channel)
        self._batches = self._open_batches(functools.partial(getattr(self._stub, stream), metadata=stream_metadata),
                                           what)
        if lease is not None:
            self.lease = lease
            self._keepalive = self._new_keepalive(lease)

    def _open_channel(self, target: str) -> grpc.Channel | grpc.aio.Channel:
        raise NotImplementedError

    def _open_batches(self, open_stream: Any, what: str) -> StreamSession | AsyncStreamSession:
        """The batch stream's session; `open_stream` is a method of the (untyped) generated stub."""
        raise NotImplementedError

    def _new_keepalive(self, lease: float) -> Keepalive | AsyncKeepalive:
        raise NotImplementedError

    def _start_keepalive(self) -> None:
        """Before any call that may create something: what it creates is never without renewal."""
        if self._keepalive is not None:
            self._keepalive.start()

    def _held(self, reply: mpb.RenewReply) -> bool:
        """Whether a Renew reply says this client still holds anything (a session's service says)."""
        raise NotImplementedError

    @command
    def _renew(self) -> Steps[bool]:
        """Renew this client's lease; whether it still holds anything."""
        if self.lease is None:
            raise TypeError(f"{type(self).__name__} holds no lease to renew")
        reply = yield from unary("Renew", mpb.RenewRequest(), mpb.RenewReply, min(self.timeout, self.lease / 2))
        return self._held(reply)

    def _release(self, **kwargs: Any) -> Any:
        """Send Release (close() does, once, if the client made anything)."""
        return self._stub.Release(mpb.ReleaseRequest(), **kwargs)

    def _unary(self, op: Unary) -> tuple[Callable[..., Any], dict[str, Any]]:
        """The stub method a unary call goes to, and its keyword arguments."""
        timeout = self.timeout if op.timeout is None else op.timeout
        return getattr(self._stub, op.method), {"timeout": timeout, "metadata": self._metadata}

    def _error(self, e: grpc.RpcError) -> MemsimError:
        err = from_rpc_error(e)
        if isinstance(err, Unavailable) and self.core is not None:
            err = Unavailable(f"{err} (core {self.core} listens on the shared port + {1 + self.core}; "
                              f"does the machine have that many cores?)")
        return err


class Connection(Endpoint, SyncRunner):
    """A blocking connection (grpc's sync API); batches on a stream read by a thread."""

    _keepalive: Keepalive | None = None
    _channel: grpc.Channel
    _batches: StreamSession

    def _open_channel(self, target: str) -> grpc.Channel:
        return grpc.insecure_channel(target, options=channel_options())

    def _open_batches(self, open_stream: OpenStream, what: str) -> StreamSession:
        return StreamSession(open_stream, what)

    def _new_keepalive(self, lease: float) -> Keepalive:
        return Keepalive(self._renew, lease)

    def _perform(self, op: Op) -> Any:
        if isinstance(op, Roundtrip):  # the stream session refuses itself once closed (stream.py)
            return self._batches.roundtrip(op.make_request, op.timeout)
        if self._closed:
            raise client_closed(self)
        method, kwargs = self._unary(op)
        try:
            return method(op.request, **kwargs)
        except grpc.RpcError as e:
            raise self._error(e) from None

    def close(self) -> None:
        """Close the connection, releasing what this client made (but not what it kept)."""
        if self._closed:
            return
        self._closed = True
        close_session(self._keepalive, self._batches, self._release, self.timeout, self._metadata,
                      self._channel)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout: float = 10.0) -> None:
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise DeadlineExceeded(f"server at {self.target} not ready within {timeout} s") from None


class AsyncConnection(Endpoint, AsyncRunner):
    """An asyncio connection (grpc.aio): made inside the event loop it is used in."""

    _keepalive: AsyncKeepalive | None = None
    _channel: grpc.aio.Channel
    _batches: AsyncStreamSession

    def _open_channel(self, target: str) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(target, options=channel_options())

    def _open_batches(self, open_stream: OpenAsyncStream, what: str) -> AsyncStreamSession:
        return AsyncStreamSession(open_stream, what)

    def _new_keepalive(self, lease: float) -> AsyncKeepalive:
        return AsyncKeepalive(self._renew, lease)

    async def _perform(self, op: Op) -> Any:
        if isinstance(op, Roundtrip):  # the stream session refuses itself once closed (stream.py)
            return await self._batches.roundtrip(op.make_request, op.timeout)
        if self._closed:
            raise client_closed(self)
        method, kwargs = self._unary(op)
        try:
            return await method(op.request, **kwargs)
        except grpc.RpcError as e:
            raise self._error(e) from None

    async def close(self) -> None:
        """Close the connection, releasing what this client made (but not what it kept)."""
        if self._closed:
            return
        self._closed = True
        await close_session_async(self._keepalive, self._batches, self._release, self.timeout,
                                  self._metadata, self._channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_ready(self, timeout: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except TimeoutError:
            raise DeadlineExceeded(f"server at {self.target} not ready within {timeout} s") from None
