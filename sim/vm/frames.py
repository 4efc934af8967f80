"""The VM's frame pool: single frames for pages, contiguous runs for linear tables.

A byte per frame (`vm_free`) under the `vm/frames` lock, searched with NumPy: a single frame
is the first free one, a run of n is the first window of n free frames (first fit, as the
buddy allocator would find for a power of two, without its splitting and merging: runs are
rare here, taken when a linear or segment table is created). Frames handed out are zeroed by
their new owner, never here, so that a page read back from swap is not zeroed first.

Owns `vm_free` and the pool's cells of `vm_meta` (M_POOL_BASE, M_POOL_FRAMES, M_FREE), under
`vm/frames` (taken inside a space's lock, before vm/lru and vm/swap: layout.py's order).
Invariant: vm_meta[M_FREE] is the number of 1s in vm_free (recovery.py checks it).

Ownership is recorded in the machine's frame table (`frame_owner`: pagetable or user), so
`frames_by_owner` shows what the VM holds.

The pool's frames seen as 64-bit and 32-bit words (`words`, `words32`: how page tables read
their entries) are views made once per pool object, so they live exactly as long as the core's
VM view that owns the pool: nothing outlives a destroyed machine's mapping.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from memsim.sim.errors import ResourceExhausted
from memsim.sim.machine.locks import SharedLock
from memsim.sim.machine.memory import FRAME_FREE, PhysicalMemory
from memsim.sim.vm.layout import M_FREE, M_POOL_BASE, M_POOL_FRAMES


def window_sums(flags: np.ndarray, n: int) -> np.ndarray:
    """The sum of every window of n consecutive entries, from one prefix sum: O(len) whatever n is
    (np.convolve is O(len x n), minutes for a run of half a large pool)."""
    prefix = np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))
    return prefix[n:] - prefix[:-n]


class FramePool:
    def __init__(self, free: np.ndarray, meta: np.ndarray, mem: PhysicalMemory, lock: SharedLock):
        self.free_map = free
        self.meta = meta
        self.mem = mem
        self.lock = lock
        self.base = int(meta[M_POOL_BASE])
        self.nframes = int(meta[M_POOL_FRAMES])
        self.frame_size = mem.frame_size

    @staticmethod
    def initialise(free: np.ndarray, meta: np.ndarray, base: int, nframes: int) -> None:
        free[:] = 1
        meta[M_POOL_BASE] = base
        meta[M_POOL_FRAMES] = nframes
        meta[M_FREE] = nframes

    def free_frames(self) -> int:
        return int(self.meta[M_FREE])

    def take(self, owner: int) -> int | None:
        """One free frame (pool-relative), or None if there is none (the caller reclaims)."""
        with self.lock:
            if int(self.meta[M_FREE]) == 0:
                return None
            f = int(np.argmax(self.free_map))
            self.free_map[f] = 0
            self.meta[M_FREE] -= 1
            self.mem.frame_owner[self.base + f] = owner
            return f

    def take_outside(self, window: range, owner: int) -> int | None:
        """One free frame not in `window` (compaction's destination), or None."""
        with self.lock:
            free = np.flatnonzero(self.free_map)
            free = free[(free < window.start) | (free >= window.stop)]
            if not free.size:
                return None
            f = int(free[0])
            self.free_map[f] = 0
            self.meta[M_FREE] -= 1
            self.mem.frame_owner[self.base + f] = owner
            return f

    def take_run(self, n: int, owner: int) -> int:
        """n contiguous free frames (their first, pool-relative); RESOURCE_EXHAUSTED if no such run."""
        with self.lock:
            if n <= 0 or n > self.nframes:
                raise ResourceExhausted(f"a run of {n} frames does not fit the VM's {self.nframes}-frame pool")
            if n == 1:
                f = self.take(owner)
                if f is None:
                    raise ResourceExhausted("no free frame in the VM's pool")
                return f
            hits = np.flatnonzero(window_sums(self.free_map, n) == n)
            if not hits.size:
                raise ResourceExhausted(
                    f"no run of {n} free contiguous frames ({n * self.frame_size} bytes) in the VM's pool: "
                    f"{self.free_frames()} of {self.nframes} frames are free")
            f = int(hits[0])
            self.free_map[f:f + n] = 0
            self.meta[M_FREE] -= n
            self.mem.frame_owner[self.base + f:self.base + f + n] = owner
            return f

    def take_aligned(self, n: int, owner: int) -> int | None:
        """n free frames starting at a multiple of n (a huge page's run), or None if no window is free."""
        with self.lock:
            k = self.nframes // n
            if k == 0 or int(self.meta[M_FREE]) < n:
                return None
            windows = np.flatnonzero(self.free_map[:k * n].reshape(k, n).all(axis=1))
            if not windows.size:
                return None
            f = int(windows[0]) * n
            self.free_map[f:f + n] = 0
            self.meta[M_FREE] -= n
            self.mem.frame_owner[self.base + f:self.base + f + n] = owner
            return f

    def give(self, f: int, n: int = 1) -> None:
        with self.lock:
            if self.free_map[f:f + n].any():
                raise RuntimeError(f"frames {f}..{f + n - 1} freed twice")
            self.free_map[f:f + n] = 1
            self.meta[M_FREE] += n
            self.mem.frame_owner[self.base + f:self.base + f + n] = FRAME_FREE

    @cached_property
    def words(self) -> np.ndarray:
        """The whole pool as 64-bit words (64-bit page-table entries)."""
        return self.view(0, self.nframes).view(np.uint64)

    @cached_property
    def words32(self) -> np.ndarray:
        """The whole pool as 32-bit words (the entries of tables for spaces of 32 bits or fewer)."""
        return self.view(0, self.nframes).view(np.uint32)

    def view(self, f: int, n: int = 1) -> np.ndarray:
        """The bytes of pool frames f..f+n-1."""
        fs = self.frame_size
        start = (self.base + f) * fs
        return self.mem.data[start:start + n * fs]

    def zero(self, f: int, n: int = 1) -> None:
        self.view(f, n)[:] = 0
