"""A client's identity and its lease on what it creates (the server's side: server/sessions.py).

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

CLIENT_ID_KEY = "memsim-client-id"
LEASE_KEY = "memsim-lease-seconds"
DEFAULT_LEASE = 30.0
RELEASE_TIMEOUT = 5.0  # close() waits at most this long for the server to release what we made


def new_client_id() -> str:
    return f"{secrets.randbits(63) or 1:x}"


def session_metadata(client_id: str, lease: float) -> tuple[tuple[str, str], ...]:
    return ((CLIENT_ID_KEY, client_id), (LEASE_KEY, repr(lease)))


@dataclass(frozen=True)
class LiveObject:
    """One live object of ListObjects: where, how big, which core allocated it, whose it is."""

    address: int
    size: int
    core: int
    client: str  # the owner's client id (hex); "" if nobody's (kept, the cache's, tiny, no id)
    kind: str  # small, large or tiny


@dataclass(frozen=True)
class ObjectListing:
    objects: list[LiveObject]
    total: int  # every match; objects holds at most `limit` of them


def decode_objects(reply) -> ObjectListing:
    return ObjectListing([LiveObject(o.address, o.size, o.core, o.client, o.kind) for o in reply.objects],
                         reply.total)


def check_lease(lease: float) -> float:
    from memsim.client.errors import InvalidArgument

    if not (isinstance(lease, int | float) and 0 < lease <= 86_400):
        raise InvalidArgument(f"lease {lease!r} must be a number of seconds above 0 and at most 86400")
    return float(lease)


class Keepalive:
    """Calls renew() every lease/3 seconds on a daemon thread, from start() until stop()."""

    def __init__(self, renew: Callable[[], object], lease: float):
        self._renew = renew
        self.period = lease / 3
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, daemon=True, name="memsim-keepalive")
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            with contextlib.suppress(Exception):  # a missed renewal is retried; the lease has two more periods
                self._renew()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.period + 1)


class AsyncKeepalive:
    """The same as an asyncio task in the loop that starts it."""

    def __init__(self, renew: Callable[[], Awaitable[object]], lease: float):
        self._renew = renew
        self.period = lease / 3
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="memsim-keepalive")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            with contextlib.suppress(Exception):  # a missed renewal is retried; the lease has two more periods
                await self._renew()

    @property
    def started(self) -> bool:
        return self._task is not None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # it is being stopped
                await self._task
