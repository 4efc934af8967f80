"""One core's handle on virtual memory: Linux's mm_struct for every space at once, and what they share.

`MM` holds, for one core process, the views every other module of the VM works through: the
shared arrays (`VMArrays`), the locks (`VMLocks`), the frame pool, the swap file, the page
replacement lists (lru.py), this core's TLB and vmstat row, and this core's objects for the
spaces' page tables (`table(sp)`). All the VM's state but the TLB is in shared memory
(layout.py), so any core serves any space; the functions of mmap.py, memory.py, vmscan.py and
the others take an MM as Linux's take an mm_struct.

Touches: reads the space table (`sp_*`) to build table objects; writes nothing shared itself
but the vmstat row it is given (`stat`, this core's own, no lock).

Invariants:
- a table object is used only for the incarnation of its slot it was built for (`sp_serial`):
  it caches what its table was created with (a linear table's first frame, the geometry), so a
  slot destroyed and created again by another core is never reached through a stale object;
- page-table frames are taken through `alloc_table_frames`, which the VM (vm.py) binds to
  vmscan's allocator, so that a table that needs a frame may reclaim a page for it.
"""

from __future__ import annotations

import os
import signal

import numpy as np

from memsim.sim.errors import NotFound
from memsim.sim.machine.locks import LockTable
from memsim.sim.machine.memory import FRAME_PAGETABLE, PhysicalMemory
from memsim.sim.policies import Policy
from memsim.sim.trace.monitor import Feed
from memsim.sim.vm import kinds  # noqa: F401  (the built-in page-table kinds, registered)
from memsim.sim.vm.frames import FramePool
from memsim.sim.vm.layout import HUGE_FRAMES, MAX_SPACES, S, VMArrays, VMLocks
from memsim.sim.vm.lru import PageLRU
from memsim.sim.vm.pagetable import PageTable, TableContext, kind_of
from memsim.sim.vm.swap import Swap
from memsim.sim.vm.tlb import TLB


class MM:
    def __init__(self, arrays: VMArrays, mem: PhysicalMemory, locks: LockTable, swap_fd: int, core: int,
                 tlb_entries: int = 64, tlb_ways: int = 4):
        self.a = arrays
        self.mem = mem
        self.core = core
        self.fs = mem.frame_size
        self.shift = self.fs.bit_length() - 1
        self.locks = VMLocks.from_table(locks)
        self.pool = FramePool(arrays.vm_free, arrays.vm_meta, mem, self.locks.frames)
        self.swap = Swap(swap_fd, arrays.sw_used, arrays.vm_meta, self.locks.swap, self.fs)
        self.stat = arrays.vm_stat[core]
        self.lru = PageLRU(arrays, self.pool, self.locks.lru, HUGE_FRAMES)
        self.tlb = TLB(tlb_entries, tlb_ways, arrays.sp_tlbgen, huge_pages=HUGE_FRAMES)
        self._tables: dict[int, tuple[int, PageTable]] = {}  # slot -> (sp_serial it was built for, table)
        self.khugepaged_cursor = (0, 0)  # (space, vpn) where khugepaged's next scan starts (hugepage.py)
        self.crash_at: str | None = None  # tests: SIGKILL this process at the named step (recovery.py)
        self.monitor: Feed | None = None  # set while a space's accesses are captured on this core (monitor.py)

    @property
    def policy(self) -> Policy:
        """The replacement policy over the pool's frames (lru.py)."""
        return self.lru.policy

    def step(self, name: str) -> None:
        """A named point inside a multi-step change, where a test may kill the process (see recovery.py)."""
        if self.crash_at == name:
            os.kill(os.getpid(), signal.SIGKILL)

    # -- the spaces' page tables ---------------------------------------------------------------

    def alloc_table_frames(self, n: int) -> int:
        """n contiguous frames for a page table. Here without reclaim; the VM binds vmscan's, which reclaims."""
        return self.pool.take_run(n, FRAME_PAGETABLE)

    def ctx(self, sp: int) -> TableContext:
        return TableContext(self.pool, self.a, self.locks, sp, self.alloc_table_frames)

    def table(self, sp: int) -> PageTable:
        serial = int(self.a.sp_serial[sp])
        cached = self._tables.get(sp)
        if cached is not None and cached[0] == serial:
            return cached[1]
        t = kind_of(int(self.a.sp_kind[sp]))(self.ctx(sp))
        self._tables[sp] = (serial, t)
        return t

    def forget_table(self, sp: int) -> None:
        self._tables.pop(sp, None)

    def entries(self, sp: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """The non-zero entries of vpns lo..hi-1 (pagetable.py), counted in pagewalk_entries."""
        t = self.table(sp)
        out = t.entries(lo, hi)
        self.count_walk(t)
        return out

    def count_walk(self, t: PageTable) -> None:
        self.stat[S["pagewalk_entries"]] += t.visited
        t.visited = 0

    # -- the space table -----------------------------------------------------------------------

    def check_space(self, sp: int) -> None:
        if not isinstance(sp, int) or not 0 <= sp < MAX_SPACES or not int(self.a.sp_state[sp]):
            raise NotFound(f"address space {sp} does not exist (create one with create_space)")

    def bits(self, sp: int) -> int:
        return int(self.a.sp_bits[sp])

    def spaces(self, owner: int | None = None) -> list[int]:
        """Every space, or those held by `owner`."""
        live = self.a.sp_state != 0
        if owner is not None:
            live &= self.a.sp_owner == owner
        return [int(sp) for sp in np.flatnonzero(live)]


def space_name(raw: np.ndarray) -> str:
    """A name stored as NUL-padded UTF-8 bytes (sp_name, vma_name)."""
    return bytes(raw).rstrip(b"\0").decode("utf-8", "replace")


def store_name(row: np.ndarray, name: str) -> None:
    raw = name.encode()[:row.shape[-1]]
    row[:] = 0
    row[:len(raw)] = np.frombuffer(raw, dtype=np.uint8)
