"""Swap: a real file of page-sized slots, and the slot map.

The supervisor creates the file (in $MEMSIM_SWAP_DIR, else the system's temp dir), sizes it
with ftruncate (sparse: only written slots take disk) and unlinks its name at once, as the
lock file is: every worker inherits the descriptor, the data lives until the last process
closes it, and a killed machine leaves nothing behind on disk. Pages move with os.pwrite and
os.pread at slot * page size, so a swapped page really leaves memory and really comes back.

Slots are a byte map (`sw_used`) under the `vm/swap` lock (the last in layout.py's order), first
free slot first; the count in use is vm_meta[M_SWAP_USED] (Linux's SwapTotal - SwapFree).
Invariant: a slot is in use iff one PTE (a swap entry) or one frame's swap cache
(`vm_frame_swap`) names it (recovery.py recomputes the map from them).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from memsim.sim.errors import ResourceExhausted
from memsim.sim.machine.locks import SharedLock
from memsim.sim.vm.layout import M_SWAP_SLOTS, M_SWAP_USED


def make_swap_file(slots: int, page_size: int) -> int:
    """An anonymous (already unlinked) file of slots * page_size bytes; returns its descriptor."""
    directory = os.environ.get("MEMSIM_SWAP_DIR") or tempfile.gettempdir()
    fd, path = tempfile.mkstemp(prefix="memsim-swap-", dir=directory)
    os.unlink(path)
    os.ftruncate(fd, max(1, slots) * page_size)
    return fd


class Swap:
    def __init__(self, fd: int, used: np.ndarray, meta: np.ndarray, lock: SharedLock, page_size: int):
        self.fd = fd
        self.used = used
        self.meta = meta
        self.lock = lock
        self.page_size = page_size
        self.slots = int(meta[M_SWAP_SLOTS])

    def take(self) -> int:
        with self.lock:
            if self.slots == 0 or int(self.meta[M_SWAP_USED]) >= self.slots:
                raise ResourceExhausted(
                    f"out of memory: every frame of the VM's pool is in use and swap is full "
                    f"({self.slots} slots of {self.page_size} bytes)")
            s = int(np.argmin(self.used))
            self.used[s] = 1
            self.meta[M_SWAP_USED] += 1
            return s

    def give(self, slot: int) -> None:
        with self.lock:
            if not self.used[slot]:
                raise RuntimeError(f"swap slot {slot} freed twice")
            self.used[slot] = 0
            self.meta[M_SWAP_USED] -= 1

    def write(self, slot: int, page: np.ndarray) -> None:
        n = os.pwrite(self.fd, page.tobytes(), slot * self.page_size)
        if n != self.page_size:
            raise OSError(f"short write to swap slot {slot}: {n} of {self.page_size} bytes")

    def read_page(self, slot: int) -> np.ndarray:
        """A copy of the page in slot (a swap-in reads it before the slot may be reused)."""
        page = np.empty(self.page_size, dtype=np.uint8)
        self.read(slot, page)
        return page

    def read(self, slot: int, into: np.ndarray) -> None:
        data = os.pread(self.fd, self.page_size, slot * self.page_size)
        if len(data) != self.page_size:
            raise OSError(f"short read from swap slot {slot}: {len(data)} of {self.page_size} bytes")
        into[:] = np.frombuffer(data, dtype=np.uint8)
