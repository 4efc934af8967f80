"""The batch stream every client keeps (Machine.Batch, Cache.Pipeline, VM.Batch), sync and asyncio.

Owns: one bidirectional gRPC stream per client, opened on first use, its messages numbered by `seq`
and each reply checked against its request's number; a stream that failed, timed out or was
cancelled is dropped and the next round trip opens another (a failed stream is never reused).
Touches: the typed errors (client/errors.py). One round trip at a time per client (a lock): the
server answers a stream's messages in order, so request and reply pair up by position.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import grpc
import grpc.aio
from google.protobuf.message import Message

from memsim.client.errors import ClientClosed, DeadlineExceeded, Unavailable, from_rpc_error


class StreamCall(Protocol):
    """What a sync stub's stream-stream call returns (grpc's _MultiThreadedRendezvous): the replies, and cancel()."""

    def __iter__(self) -> Iterator[Any]: ...

    def cancel(self) -> bool: ...


class AsyncStreamCall(Protocol):
    """What an asyncio stub's stream-stream call returns (grpc.aio.StreamStreamCall)."""

    async def write(self, request: Any) -> None: ...

    async def read(self) -> Any: ...

    def cancel(self) -> bool: ...

    def done(self) -> bool: ...


# The end of an asyncio stream. grpc-stubs 1.53 declares its type (EOFType) but not grpc.aio.EOF
# itself, which grpc/aio/__init__.py exports: the stub is wrong, hence the ignore.
_EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]

OpenStream = Callable[[Iterable[Message]], StreamCall]
OpenAsyncStream = Callable[[], AsyncStreamCall]


class Stream:
    """One bidi stream of batches: requests through a queue, replies collected by a reader thread
    (gRPC's sync API reads a stream by iterating it), each checked against its request's seq."""

    def __init__(self, open_stream: OpenStream):
        self._requests: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._replies: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._call = open_stream(self._iter_requests())
        self._reader = threading.Thread(target=self._read, daemon=True, name="memsim-batch-reader")
        self._reader.start()

    def _iter_requests(self) -> Iterator[Message]:
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
        """Send `req` (a message with a `seq`) and wait at most `timeout` for its reply."""
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


class _Numbered:
    """A client's stream session, sync or asyncio: what its errors call it, its last seq, closed or not."""

    def __init__(self, what: str):
        self.what = what
        self._seq = 0
        self._closed = False

    def _refused(self) -> ClientClosed:
        return ClientClosed(f"this client is closed (its {self.what} stream went with it); make a new one to go on")


class StreamSession(_Numbered):
    """One client's batch stream, opened on first use, numbered, and replaced after any failure
    (a failed stream is not reused, and its threads must end). Shared by Client, Cache, VMClient."""

    def __init__(self, open_stream: OpenStream, what: str = "batch"):
        super().__init__(what)
        self._open = open_stream
        self._stream: Stream | None = None
        self._lock = threading.Lock()

    def roundtrip(self, make_request: Callable[[int], Message], timeout: float) -> Any:
        """Send make_request(seq) and return its reply."""
        with self._lock:
            if self._closed:
                raise self._refused()
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


class AsyncStreamSession(_Numbered):
    """One asyncio client's batch stream: opened on first use, replies checked by seq, replaced
    after a cancel, a timeout or a failure. Shared by AsyncClient, AsyncCache and AsyncVMClient."""

    def __init__(self, open_stream: OpenAsyncStream, what: str = "batch"):
        super().__init__(what)
        self._open = open_stream
        self._stream: AsyncStreamCall | None = None
        self._lock = asyncio.Lock()

    async def roundtrip(self, make_request: Callable[[int], Message], timeout: float) -> Any:
        """Send make_request(seq) and return its reply (a cancelled or timed-out wait drops the stream)."""
        async with self._lock:
            if self._closed:
                raise self._refused()
            if self._stream is not None and self._stream.done():  # ended while idle (serve --stream-idle-timeout)
                self._stream = None
            if self._stream is None:
                self._stream = self._open()
            self._seq += 1
            stream = self._stream
            try:
                await stream.write(make_request(self._seq))
                reply = await asyncio.wait_for(stream.read(), timeout)
                if reply is _EOF:
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
