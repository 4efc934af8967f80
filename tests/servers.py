"""Helpers shared by the tests that start a real server (imported by those test modules).

Such a test is marked `integration` (tests/conftest.py refuses to start a server from one that is not)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

from memsim.tools.local import LocalServer


def memsim_segments() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith("memsim")}


@contextmanager
def running_server(**kw) -> Iterator[LocalServer]:
    """A real server on loopback; on exit it must stop cleanly and unlink what it made."""
    srv = LocalServer(**kw).start()
    assert len(srv.segments) == 2 and not set(srv.segments) - memsim_segments()
    try:
        yield srv
    finally:
        code = srv.stop()
        left = srv.segments_left()
        log = "".join(srv.output)
        assert code == 0, f"server exited with {code!r}:\n{log}"
        assert not left, f"segments left behind: {left}"
        assert not srv.alive_workers(), f"workers still alive: {srv.alive_workers()}"


@contextmanager
def running_servers(count: int, **kw) -> Iterator[list[LocalServer]]:
    """`count` servers as running_server makes them, started side by side (each takes a second or two)."""
    with ExitStack() as stack, ThreadPoolExecutor(count) as pool:
        yield list(pool.map(lambda _: stack.enter_context(running_server(**kw)), range(count)))


def lock_file_of(pid: int) -> str:
    """The machine's anonymous lock file, reopened through a worker's descriptor table."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if "memsim-locks-" in os.readlink(f"/proc/{pid}/fd/{fd}"):
            return f"/proc/{pid}/fd/{fd}"
    raise AssertionError(f"worker {pid} has no lock file open")


def lock_waiters() -> set[int]:
    """PIDs blocked on a record lock (the "->" lines of /proc/locks)."""
    with open("/proc/locks") as f:
        return {int(line.split()[5]) for line in f if "->" in line}


@contextmanager
def page_heap_locked(worker: int) -> Iterator[None]:
    """Hold the page heap's lock ('mheap', byte 0 of the lock file) from this process, so that a
    call needing it (a large alloc) waits inside the worker for as long as the test likes."""
    fd = os.open(lock_file_of(worker), os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0, os.SEEK_SET)
        yield
    finally:
        os.close(fd)  # releases the lock
