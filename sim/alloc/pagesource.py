"""Where the heap's pages come from: Go's arena contract, narrowed to three calls, plus the
way the heap moves an object's bytes.

Go's runtime asks the OS for memory in three steps (runtime/mem_linux.go): sysReserve takes
address space without backing it, sysMap/sysUsed commits part of it so that touching it
is legal, and sysUnused/sysFree gives the backing back (MADV_DONTNEED) while keeping the
addresses. The heap sees only that contract (`PageSource`, which mypy checks both sources
against), so that an address space of `sim/vm` can be its source (sim/vm/heapsource.py,
`heap_in_vm`) without the allocator changing.

`FlatPhysicalSource` is the first source: the heap's arena *is* the machine's physical
memory, one-to-one, at Go's amd64 heap base 0xc000000000. Commit marks the frames as the
heap's in the frame table; release hands them back and zeroes them, as MADV_DONTNEED
does for anonymous memory, so a released page reads as zeros when committed again.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from memsim.sim.machine.memory import FRAME_FREE, FRAME_HEAP, PhysicalMemory

ARENA_BASE = 0xC000000000  # Go's first arena hint on linux/amd64


class PageSource(Protocol):
    """Everything the heap (heap.py, mheap.py; the scavenger through mheap) asks of its pages.

    The arena contract is reserve/commit/release. The heap moves object bytes one of two ways,
    chosen once by `paged`: a flat source has a fixed physical place for every committed address
    (`physical`), and the heap copies to and from physical memory itself; a paged source
    (sim/vm/heapsource.py) has none, and the heap moves bytes through read/write/zero. Every
    source implements both, so that either way is correct; `paged` says which one is cheap."""

    granule: int  # bytes: the smallest unit release() can give back
    paged: bool  # True: no fixed physical place; the heap calls read/write/zero instead of physical

    def reserve(self, nbytes: int) -> int:
        """Reserve `nbytes` of address space; return its base address."""
        ...

    def commit(self, addr: int, nbytes: int) -> None:
        """Back [addr, addr+nbytes) with memory."""
        ...

    def release(self, addr: int, nbytes: int) -> None:
        """Return the backing of [addr, addr+nbytes); the addresses stay reserved."""
        ...

    def physical(self, addr: int) -> int:
        """Physical byte offset of a committed heap address (-1 for a paged source: it has none)."""
        ...

    def read(self, addr: int, n: int) -> bytes:
        """n bytes at a committed heap address."""
        ...

    def write(self, addr: int, data: bytes) -> None:
        """Store data at a committed heap address."""
        ...

    def zero(self, addr: int, n: int) -> None:
        """Zero n bytes at a committed heap address."""
        ...


class FlatPhysicalSource:
    """The heap arena mapped 1:1 onto physical frames."""

    paged = False  # the heap slices physical memory at physical(addr) itself: read/write/zero are not its hot path

    def __init__(self, mem: PhysicalMemory, limit: int | None = None):
        self.mem = mem
        self.base = ARENA_BASE
        self.limit = mem.size if limit is None else limit  # the heap's share (virtual memory has the rest)
        self.granule = mem.frame_size

    def reserve(self, nbytes: int) -> int:
        if nbytes > self.limit:
            raise ValueError(f"cannot reserve {nbytes} bytes: the machine has {self.limit}")
        return self.base

    def _frames(self, addr: int, nbytes: int, whole_only: bool) -> range:
        fs = self.mem.frame_size
        lo, hi = addr - self.base, addr - self.base + nbytes
        if whole_only:
            return range((lo + fs - 1) // fs, hi // fs)
        return range(lo // fs, (hi + fs - 1) // fs)

    def commit(self, addr: int, nbytes: int) -> None:
        r = self._frames(addr, nbytes, whole_only=False)
        self.mem.set_frames(r.start, r.stop, FRAME_HEAP)

    def release(self, addr: int, nbytes: int) -> None:
        # Only frames wholly inside the range: a big frame may still back a live page.
        r = self._frames(addr, nbytes, whole_only=True)
        if r.stop > r.start:
            self.mem.zero_frames(r.start, r.stop)
            self.mem.set_frames(r.start, r.stop, FRAME_FREE)

    def physical(self, addr: int) -> int:
        return addr - self.base

    def read(self, addr: int, n: int) -> bytes:
        p = addr - self.base
        return self.mem.data[p:p + n].tobytes()

    def write(self, addr: int, data: bytes) -> None:
        p = addr - self.base
        self.mem.data[p:p + len(data)] = np.frombuffer(data, dtype=np.uint8)

    def zero(self, addr: int, n: int) -> None:
        p = addr - self.base
        self.mem.data[p:p + n] = 0
