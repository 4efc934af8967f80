"""Helpers shared by the tests that start a real server (imported by those test modules)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from memsim.client.local import LocalServer


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
