"""A client's identity and its lease on what it creates (the server's side: server/sessions.py).

Owns: the client id and lease metadata, the lease limits checked at construction, the keepalive
(sync and asyncio), Release at close, and the ListObjects records.

Each client object picks a random 63-bit id when it is made and sends it as `memsim-client-id`
metadata on every call. What it creates without `keep=True` is the server's to release when the
client closes (Release) or, if the process dies without closing, when its lease runs out: while
it holds anything, a keepalive (a daemon thread, or an asyncio task for the asyncio clients)
sends Renew every third of the lease, so a client that is alive but idle keeps what it made.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import grpc.aio

from memsim.client.errors import InvalidArgument
from memsim.client.stream import AsyncStreamSession, StreamSession
from memsim.v1 import machine_pb2 as mpb

Metadata = tuple[tuple[str, str], ...]

CLIENT_ID_KEY = "memsim-client-id"
LEASE_KEY = "memsim-lease-seconds"
DEFAULT_LEASE = 30.0
RELEASE_TIMEOUT = 5.0  # close() waits at most this long for the server to release what we made


def new_client_id() -> str:
    return f"{secrets.randbits(63) or 1:x}"


def session_metadata(client_id: str, lease: float) -> Metadata:
    return ((CLIENT_ID_KEY, client_id), (LEASE_KEY, repr(lease)))


@dataclass(frozen=True)
class LiveObject:
    """One live object of ListObjects: where, how big, which core allocated it, whose it is."""

    address: int
    size: int
    core: int
    client: str  # the owner's client id (hex); "" if nobody's (kept, the cache's, a caller without an id)
    kind: str  # small, large or tiny


@dataclass(frozen=True)
class ObjectListing:
    objects: list[LiveObject]
    total: int  # every match; objects holds at most `limit` of them


def decode_objects(reply: mpb.ListObjectsReply) -> ObjectListing:
    return ObjectListing([LiveObject(o.address, o.size, o.core, o.client, o.kind) for o in reply.objects],
                         reply.total)


def release(call: Callable[..., object], timeout: float, metadata: Metadata) -> None:
    """Send Release at close. A core at its stream limit answers RESOURCE_EXHAUSTED until it has
    seen our own stream end, so that is retried for up to `timeout`; any other failure (server
    gone) is left to the lease, which, no longer renewed, releases the same things."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            call(timeout=left, metadata=metadata)
            return
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                return
        time.sleep(0.05)


async def release_async(call: Callable[..., Awaitable[object]], timeout: float, metadata: Metadata) -> None:
    """release() for the asyncio clients."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            await call(timeout=left, metadata=metadata)
            return
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                return
        await asyncio.sleep(0.05)


# The longest leases the server grants (server/sessions.py: MAX_LEASE_S for address spaces,
# MAX_OBJECT_LEASE_S for allocator objects, whose client table a long lease would hold), checked
# here too so that a client refuses a lease at construction rather than at its first call.
MAX_SPACE_LEASE = 86_400.0
MAX_OBJECT_LEASE = 3_600.0


def check_lease(lease: float, most: float = MAX_SPACE_LEASE) -> float:
    if not (isinstance(lease, int | float) and 0 < lease <= most):
        raise InvalidArgument(f"lease {lease!r} must be a number of seconds above 0 and at most {most:g}")
    return float(lease)


class Keepalive:
    """Calls renew() every lease/3 seconds on a daemon thread while the client holds anything.

    renew() returns whether the server says the client still holds something. The thread ends
    once, for a whole lease, the client has held nothing (all freed or destroyed by hand) or
    renewals have failed (the server is gone, and has released everything or will): a client
    left unclosed does not keep a thread calling a dead server for ever. start() (before every call
    that may create something) brings it back; `used` says whether close() has anything to release.
    """

    def __init__(self, renew: Callable[[], bool], lease: float):
        self._renew = renew
        self.lease = lease
        self.period = lease / 3
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._starts = 0  # bumped by every start(): a create under way keeps the thread alive
        self.used = False

    def start(self) -> None:
        with self._lock:
            self._starts += 1
            self.used = True
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, daemon=True, name="memsim-keepalive")
                self._thread.start()

    def _run(self) -> None:
        idle_since: float | None = None  # since when renewals found nothing held, or failed
        while not self._stop.wait(self.period):
            with self._lock:
                starts = self._starts
            try:
                held = bool(self._renew())
            except Exception:  # noqa: BLE001 - a missed renewal is retried; the lease has two more periods
                held = False
            idle_since = None if held else idle_since or time.monotonic()
            if idle_since is None or time.monotonic() - idle_since < self.lease:
                continue  # (a create slower than one renewal must not find its keepalive gone)
            with self._lock:
                if self._starts == starts:  # nothing created since that renewal: done until the next start()
                    self._thread = None
                    return

    def needs_release(self) -> bool:
        """True once after anything was created: close() releases, and a second close() does not."""
        used, self.used = self.used, False
        return used

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.lease / 2 + 1)  # a renewal under way ends within its timeout


class AsyncKeepalive:
    """The same as an asyncio task in the loop that starts it."""

    def __init__(self, renew: Callable[[], Awaitable[bool]], lease: float):
        self._renew = renew
        self.lease = lease
        self.period = lease / 3
        self._task: asyncio.Task[None] | None = None
        self._starts = 0
        self.used = False

    def start(self) -> None:
        self._starts += 1
        self.used = True
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="memsim-keepalive")

    async def _run(self) -> None:
        idle_since: float | None = None  # since when renewals found nothing held, or failed
        while True:
            await asyncio.sleep(self.period)
            starts = self._starts
            try:
                held = bool(await self._renew())
            except Exception:  # noqa: BLE001 - a missed renewal is retried; the lease has two more periods
                held = False
            idle_since = None if held else idle_since or time.monotonic()
            if idle_since is None or time.monotonic() - idle_since < self.lease:
                continue  # (a create slower than one renewal must not find its keepalive gone)
            if self._starts == starts:  # one event loop: no start() can come between this test and the end
                self._task = None
                return

    def needs_release(self) -> bool:
        """True once after anything was created: close() releases, and a second close() does not."""
        used, self.used = self.used, False
        return used

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # it is being stopped
                await task


def close_session(keepalive: Keepalive | None, batches: StreamSession, release_call: Callable[..., object],
                  timeout: float, metadata: Metadata, channel: grpc.Channel) -> None:
    """A client's close(): stop renewing, end the batch stream first (a core at its stream limit then
    has room for Release), release what the client holds if it made anything (waiting for that at
    least RELEASE_TIMEOUT, whatever the client's own timeout), close the channel. A client without a
    lease (the cache's) has no keepalive and releases nothing."""
    if keepalive is not None:
        keepalive.stop()
    batches.close()
    if keepalive is not None and keepalive.needs_release():
        release(release_call, max(timeout, RELEASE_TIMEOUT), metadata)
    channel.close()


async def close_session_async(keepalive: AsyncKeepalive | None, batches: AsyncStreamSession,
                              release_call: Callable[..., Awaitable[object]], timeout: float, metadata: Metadata,
                              channel: grpc.aio.Channel) -> None:
    """close_session() for the asyncio clients."""
    if keepalive is not None:
        await keepalive.stop()
    batches.close()
    if keepalive is not None and keepalive.needs_release():
        await release_async(release_call, max(timeout, RELEASE_TIMEOUT), metadata)
    await channel.close(None)  # no grace: calls still running are cancelled, as a sync channel's close() does
