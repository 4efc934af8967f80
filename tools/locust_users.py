"""Locust User classes for memsim: load from Locust, on one machine or many (`--master`/`--worker`,
`--processes`), against the allocator, the cache and the virtual memory of a memsim server.

    # locustfile.py (examples/locustfile.py is one)
    from memsim.tools.locust_users import AllocatorUser, CacheUser, VMUser

    $ locust -f examples/locustfile.py --host 127.0.0.1:50051 --headless -u 8 -r 8 -t 30s

Owns the three User classes and how one call becomes one Locust request. Touches only the client
library (memsim.client); imported only by a locustfile, never by the `memsim` command or the package
(Locust and gevent are the optional `locust` extra; importing Locust monkey-patches the process).

How a call is reported: Locust's documented pattern for a custom client ("Testing other systems/
protocols" in its docs): time the call, then fire `environment.events.request` with request_type (the
service: Machine, Cache, VM), name (the operation), response_time (ms), response_length (bytes moved),
the exception if it failed (None otherwise) and the user's context. A wrong answer (a stamp that does
not read back, a value under the wrong key) is reported as that request's failure; it never stops the
user. `host` is a memsim target, HOST:PORT, as the clients take it.

gevent and gRPC: Locust runs each user as a greenlet after gevent's monkey-patching, and gRPC's sync
API blocks in C, outside gevent's hub: without help, one user's call would stall every greenlet of the
process. gRPC's own remedy, `grpc.experimental.gevent.init_gevent()` (grpc/experimental/gevent.py,
used by Locust's gRPC example), runs gRPC's I/O on gevent, so a greenlet blocked in a call lets the
others run; it must be called before the first channel exists, hence here, at import, in every
process that runs users (a `--worker` imports the locustfile itself; `--processes` children are forked
from a parent that has). The clients' own helper threads (the batch stream's reader, the lease
keepalive) are patched into greenlets by the same monkey-patching. Without init_gevent, measured here:
a 4-user, 5 s run made 72 requests, calls stalled up to 120 s (the stream idle limit), lease
keepalives could not run, so the server released the users' objects and spaces and 28 % of requests
failed; with it, thousands of requests and none failed, in one process and with `--processes 2`
(tests/tools/test_locust_users.py runs both, and checks that a call blocked on a silent server lets
the other greenlets run).

Content stamps: every allocation, cache value and VM page written carries bytes derived from where it
lives (an address and a sequence number, a key, a page), so that a read proves the memory it reads is
the memory that was written, across users, cores and processes.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import gevent
import grpc.experimental.gevent as grpc_gevent
from locust import User, constant, task

from memsim.client import Cache, Client, VMClient
from memsim.client.types import Allocation
from memsim.client.vm import Space

grpc_gevent.init_gevent()
# libev timers count from the loop's cached "now", last updated when the hub was made at Locust's import:
# after the seconds these imports can take on a busy machine, `--run-time` (a timer Locust starts soon
# after the locustfile is imported) would end the run that much early. Bring the clock up to date.
gevent.get_hub().loop.update_now()


class WrongAnswer(AssertionError):
    """The server answered, but not what was written: reported as the request's failure."""


@dataclass
class Measured:
    """What a timed call moved, filled in by the task (response_length)."""

    length: int = 0


def stamp(tag: int, size: int) -> bytes:
    """`size` bytes that only `tag` makes: its 8 bytes repeated."""
    word = struct.pack("<Q", tag & (2**64 - 1))
    return (word * (size // 8 + 1))[:size]


class MemsimUser(User):
    """A User whose calls are timed and fired as Locust requests (see the module header)."""

    abstract = True
    wait_time = constant(0)
    service: ClassVar[str] = ""

    def target(self) -> str:
        if not self.host:
            raise ValueError("a memsim User needs a host: --host HOST:PORT of a memsim server (or host = ...)")
        return self.host

    @contextmanager
    def call(self, name: str) -> Iterator[Measured]:
        measured = Measured()
        start = time.perf_counter()
        exc: BaseException | None = None
        try:
            yield measured
        except Exception as e:  # noqa: BLE001 - every failure is the request's, and the user goes on
            exc = e
        self.environment.events.request.fire(
            request_type=self.service, name=name, response_time=(time.perf_counter() - start) * 1000,
            response_length=measured.length, exception=exc, context=self.context())


class AllocatorUser(MemsimUser):
    """The allocator (memsim.v1.Machine): alloc, stamp and free objects of mixed sizes, read them back.

    Each user keeps at most `max_live` objects of its own, tiny, small (up to `max_size`) and large."""

    abstract = True
    service = "Machine"
    max_live: ClassVar[int] = 64
    max_size: ClassVar[int] = 4096

    def on_start(self) -> None:
        self.client = Client(self.target())
        self.live: list[tuple[Allocation, bytes]] = []
        self.seq = random.getrandbits(32) << 24

    def on_stop(self) -> None:
        self.client.close()  # frees what is left (the client's objects are its own)

    def _size(self) -> int:
        """Tiny objects, small ones, and one in 50 large (above Go's 32 KiB: whole pages from mheap)."""
        if random.random() < 0.02:
            return random.randint(32 * 1024 + 1, 64 * 1024)
        return random.randint(1, 16) if random.random() < 0.2 else random.randint(17, self.max_size)

    @task(4)
    def alloc_and_stamp(self) -> None:
        size = self._size()
        made: list[Allocation] = []
        with self.call("Alloc"):
            made.append(self.client.alloc(size))
        if not made:
            return
        obj = made[0]
        data = stamp(obj.address ^ self.seq, size)
        self.seq += 1
        with self.call("Write") as m:
            self.client.write(obj.address, data)
            m.length = size
        self.live.append((obj, data))
        while len(self.live) > self.max_live:
            self.free_one()

    @task(4)
    def read_back(self) -> None:
        if not self.live:
            return
        obj, data = random.choice(self.live)
        with self.call("Read") as m:
            got = self.client.read(obj.address, len(data))
            m.length = len(got)
            if got != data:
                raise WrongAnswer(f"object at {obj.address:#x} reads back {len(got)} bytes not written there")

    @task(3)
    def free_one(self) -> None:
        if not self.live:
            return
        obj, _ = self.live.pop(random.randrange(len(self.live)))
        with self.call("Free"):
            self.client.free(obj)


class CacheUser(MemsimUser):
    """The cache (memsim.v1.Cache), redis-py's API: GET and SET over `keys` keys shared by every user,
    and the odd MGET and pipeline. A value is stamped with its key, so any user can check any read."""

    abstract = True
    service = "Cache"
    keys: ClassVar[int] = 1000
    value_size: ClassVar[int] = 100
    prefix: ClassVar[str] = "locust:"

    def on_start(self) -> None:
        self.client = Cache(target=self.target())

    def on_stop(self) -> None:
        self.client.close()

    def _key(self) -> str:
        return f"{self.prefix}{random.randrange(self.keys)}"

    def _value(self, key: str) -> bytes:
        return (key.encode() + b"|") * (self.value_size // (len(key) + 1) + 1)

    def _check(self, key: str, value: Any) -> int:
        if value is None:
            return 0
        if value != self._value(key):
            raise WrongAnswer(f"{key!r} holds {len(value)} bytes that are not its value")
        return len(value)

    @task(1)
    def set(self) -> None:
        key = self._key()
        value = self._value(key)
        with self.call("SET") as m:
            self.client.set(key, value)
            m.length = len(value)

    @task(8)
    def get(self) -> None:
        key = self._key()
        with self.call("GET") as m:
            m.length = self._check(key, self.client.get(key))

    @task(1)
    def mget(self) -> None:
        keys = [self._key() for _ in range(10)]
        with self.call("MGET") as m:
            m.length = sum(self._check(k, v) for k, v in zip(keys, self.client.mget(keys), strict=True))

    @task(1)
    def pipeline(self) -> None:
        keys = [self._key() for _ in range(10)]
        with self.call("pipeline") as m:
            pipe = self.client.pipeline()
            for k in keys:
                pipe.set(k, self._value(k))
                pipe.get(k)
            replies = pipe.execute()
            m.length = sum(self._check(k, v) for k, v in zip(keys, replies[1::2], strict=True))


class VMUser(MemsimUser):
    """Virtual memory (memsim.v1.VM): each user maps a region of `pages` pages in a space of its own,
    then touches (stores a stamp into) and reads pages at random: faults, TLB hits and misses, and,
    when the users' pages outgrow the pool, reclaim and swap. A page read back must hold its stamp."""

    abstract = True
    service = "VM"
    pages: ClassVar[int] = 64

    def on_start(self) -> None:
        self.client = VMClient(self.target())
        self.space: Space | None = None
        with self.call("CreateSpace"):
            self.space = self.client.create_space(name="locust")
        self.page = 0
        self.base = 0
        if self.space is not None:
            with self.call("mmap"):
                self.page = int(self.client.vmstat()["page_size"])
                self.base = self.space.mmap(self.pages * self.page)
        self.written: dict[int, bytes] = {}

    def on_stop(self) -> None:
        self.client.close()  # destroys the space (it is the client's own)

    def _op(self, name: str, fn: Callable[[Space, int], int]) -> None:
        if self.space is None or not self.base:
            return
        vpn = random.randrange(self.pages)
        with self.call(name) as m:
            m.length = fn(self.space, vpn)

    def _touch(self, sp: Space, vpn: int) -> int:
        data = stamp((sp.id << 32) | vpn, 64)
        sp.store(self.base + vpn * self.page, data)
        self.written[vpn] = data
        return len(data)

    def _read(self, sp: Space, vpn: int) -> int:
        want = self.written.get(vpn, bytes(64))  # a page never written reads as zeros
        got = sp.load(self.base + vpn * self.page, 64)
        if got != want:
            raise WrongAnswer(f"page {vpn} of space {sp.id} does not hold what was stored there")
        return len(got)

    @task(1)
    def touch(self) -> None:
        self._op("store", self._touch)

    @task(2)
    def read(self) -> None:
        self._op("load", self._read)
