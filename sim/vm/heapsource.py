"""The allocator's heap inside an address space: Go's arena contract on top of sim/vm.

Go's runtime reserves its arena (sysReserve), commits parts of it (sysMap/sysUsed) and gives
backing back while keeping the addresses (sysUnused: MADV_DONTNEED). On a machine started
with `heap_in_vm`, those three calls land on an address space of the VM (space 0, "go heap",
a 48-bit multilevel table) instead of on physical frames one-to-one:

    reserve(n)   the arena is a heap region of that space at Go's base 0xc000000000, mapped at boot
    commit       nothing: pages fault in on first touch (demand paging), zero-filled
    release      discard: the pages' frames and swap slots go back, the region stays; the next
                 touch zero-fills again (what MADV_DONTNEED does to anonymous memory)

Every byte the heap reads or writes then goes through the MMU of the core doing it (its TLB,
the walk, faults), so the heap can be larger than the physical pool, pages in and out of swap
with its objects' contents intact, and its space's rss differs from HeapSys as a real
process's RSS differs from its heap. The heap's metadata (spans, slot states, free lists) stays
in shared arrays outside simulated memory, as before: only object bytes are paged.
"""

from __future__ import annotations

from memsim.sim.alloc.pagesource import ARENA_BASE
from memsim.sim.errors import FailedPrecondition
from memsim.sim.vm.vm import VM

HEAP_SPACE = 0  # laid out first at boot, so it is space 0


class SpacePageSource:
    paged = True  # the heap calls read/write/zero below instead of slicing physical memory

    def __init__(self, vm: VM, space: int = HEAP_SPACE):
        self.vm = vm
        self.space = space
        self.granule = vm.fs
        self.base = ARENA_BASE

    def reserve(self, nbytes: int) -> int:
        region = self.vm.region_at(self.space, ARENA_BASE)
        if region is None or region.end - region.start < nbytes:
            raise FailedPrecondition(f"the heap's space {self.space} has no {nbytes}-byte arena at {ARENA_BASE:#x}")
        return ARENA_BASE

    def commit(self, addr: int, nbytes: int) -> None:
        """Demand paging: nothing to do until a page is touched."""

    def release(self, addr: int, nbytes: int) -> None:
        fs = self.granule
        lo = -(-addr // fs) * fs
        hi = (addr + nbytes) // fs * fs
        if hi > lo:
            self.vm.discard(self.space, lo, hi - lo)

    def physical(self, addr: int) -> int:
        return -1  # no fixed physical place: the heap (paged) moves bytes through read/write/zero instead

    def read(self, addr: int, n: int) -> bytes:
        return self.vm.load(self.space, addr, n)

    def write(self, addr: int, data: bytes) -> None:
        self.vm.store(self.space, addr, bytes(data))

    def zero(self, addr: int, n: int) -> None:
        self.vm.store(self.space, addr, bytes(n))
