"""Helpers shared by the tests that start a real server (imported by those test modules).

Such a test is marked `integration` (tests/conftest.py refuses to start a server from one that is not)."""

from __future__ import annotations

import fcntl
import os
import re
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

from prometheus_client.parser import text_string_to_metric_families

from memsim.tools.local import LocalServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


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


def metrics_url(srv: LocalServer) -> str:
    """The server's /metrics URL, from the line the supervisor prints before it is ready."""
    for line in srv.output:
        m = re.search(r"metrics on (http://\S+)", line)
        if m:
            return m.group(1)
    raise AssertionError("the server printed no metrics line:\n" + "".join(srv.output))


def scrape(url: str) -> tuple[str, str]:
    """(Content-Type, body) of one GET of a /metrics URL."""
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.headers.get("Content-Type", ""), r.read().decode()


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """(family name -> type, (sample name, sorted labels) -> value), through prometheus_client's parser."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for fam in text_string_to_metric_families(text):
        assert fam.name not in types, f"family {fam.name} twice"
        types[fam.name] = fam.type
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


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
