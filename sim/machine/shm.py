"""Shared-memory regions: one POSIX segment holding many named NumPy arrays.

Every structure two cores can touch lives in a `SharedRegion`. The region is laid out once,
from a list of `ArraySpec`s, by the process that creates it (the supervisor); workers are
forked from that process and inherit the mapping, so nobody ever attaches by name and
Python's resource tracker has exactly one registration per segment (cpython gh-82300:
an attaching process would unlink the segment when it exits).

Pitfalls this module exists to contain:
- views are made with `np.frombuffer`, never `np.ndarray(buffer=...)`, which does not pin
  the buffer and segfaults after `close()` (numpy#22190);
- `close()` raises BufferError while any view is alive, so the region drops its own views
  first and callers must not keep arrays beyond the region's life;
- each array starts on a 64-byte boundary so per-core rows never share a cache line.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import secrets
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Protocol, cast

import numpy as np

CACHE_LINE = 64
SEGMENT_PREFIX = "memsim"


@dataclass(frozen=True)
class ArraySpec:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        n = np.dtype(self.dtype).itemsize
        for d in self.shape:
            n *= d
        return n


def _align(n: int, a: int = CACHE_LINE) -> int:
    return (n + a - 1) // a * a


def segment_name(token: str, what: str) -> str:
    return f"{SEGMENT_PREFIX}-{token}-{what}"


def new_token() -> str:
    return secrets.token_hex(4)


class SharedRegion:
    """A segment and the named arrays laid out in it."""

    def __init__(self, shm: shared_memory.SharedMemory, specs: list[ArraySpec], owner: bool):
        self._shm = shm
        self.owner = owner
        self.arrays: dict[str, np.ndarray] = {}
        off = 0
        for s in specs:
            off = _align(off)
            count = s.nbytes // np.dtype(s.dtype).itemsize
            arr = np.frombuffer(_buffer(shm), dtype=s.dtype, count=count, offset=off)
            self.arrays[s.name] = arr.reshape(s.shape)
            off += s.nbytes

    @staticmethod
    def size_of(specs: list[ArraySpec]) -> int:
        off = 0
        for s in specs:
            off = _align(off) + s.nbytes
        return max(_align(off), CACHE_LINE)

    @classmethod
    def create(cls, name: str, specs: list[ArraySpec]) -> SharedRegion:
        shm = _create(name, cls.size_of(specs))
        # A fresh POSIX segment is zero-filled by the kernel; nothing to initialise.
        return cls(shm, specs, owner=True)

    @property
    def name(self) -> str:
        return self._shm.name

    @property
    def size(self) -> int:
        return self._shm.size

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def close(self) -> None:
        """Drop our views, then unmap. If a caller still holds a view, detach instead."""
        self.arrays.clear()
        _close(self._shm)

    def unlink(self) -> None:
        if self.owner:
            with contextlib.suppress(FileNotFoundError):
                self._shm.unlink()


class SharedBytes:
    """A segment used as raw bytes (the machine's physical memory)."""

    def __init__(self, name: str, size: int):
        self._shm = _create(name, size)
        self.data: np.ndarray = np.frombuffer(_buffer(self._shm), dtype=np.uint8, count=size)

    @property
    def name(self) -> str:
        return self._shm.name

    def close(self) -> None:
        del self.data
        _close(self._shm)

    def unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._shm.unlink()


class _Internals(Protocol):
    """The private attributes of CPython's SharedMemory (Lib/multiprocessing/shared_memory.py)
    that this module relies on: the segment's descriptor, its mmap and the memoryview over it."""

    _fd: int
    _mmap: mmap.mmap | None
    _buf: memoryview | None


def _internals(shm: shared_memory.SharedMemory) -> _Internals:
    return cast(_Internals, shm)


def _buffer(shm: shared_memory.SharedMemory) -> memoryview:
    buf = shm.buf
    if buf is None:  # only after close()
        raise ValueError(f"shared memory segment {shm.name} is closed")
    return buf


class SharedMemoryFull(OSError):
    """/dev/shm cannot hold the segment (containers often give it only 64 MiB)."""


def _create(name: str, size: int) -> shared_memory.SharedMemory:
    """Create a segment and reserve its pages now.

    SharedMemory only ftruncates, so a segment bigger than what /dev/shm has left is created
    happily and the process that first touches a missing page dies of SIGBUS, much later.
    posix_fallocate makes that failure happen here, with a message.
    """
    shm = shared_memory.SharedMemory(name=name, create=True, size=size)
    try:
        os.posix_fallocate(_internals(shm)._fd, 0, size)
    except OSError as e:
        shm.close()
        shm.unlink()
        raise SharedMemoryFull(
            e.errno, f"cannot reserve {size} bytes of shared memory for {name}: {e.strerror} "
            f"(/dev/shm has {_shm_free()} bytes free; give the machine less --memory or the container "
            f"a bigger /dev/shm)"
        ) from None
    return shm


def _shm_free() -> int:
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return -1
    return st.f_bavail * st.f_frsize


def _close(shm: shared_memory.SharedMemory) -> None:
    """Close a segment; if views are still exported, leave the mapping to them.

    The mapping then lives exactly as long as the last NumPy view and is unmapped by the
    garbage collector; the name can still be unlinked. This avoids the BufferError that
    SharedMemory.__del__ would otherwise print at exit.
    """
    try:
        shm.close()
    except BufferError:
        raw = _internals(shm)
        raw._buf = None
        raw._mmap = None
        if raw._fd >= 0:
            os.close(raw._fd)
            raw._fd = -1
