"""The direct map: heap addresses to machine frames without the MMU (Linux's direct map, the
kernel's linear mapping of all physical memory, is the model).

A garbage collector touches every word of every live object; through `vm.load`/`vm.store` each
8-byte access costs a page-table walk, a TLB lookup and the space's lock (about 9 us here), which
would hold a scavenge to some ten thousand objects a second. So a heap page is *committed* by
pinning its frames (sim/vm/gup.py, long-term pins: FOLL_LONGTERM, owned by the space and not by a
core, so any core that takes the isolate next, and recovery, find them valid) and recording them
in `v8_dm[iso, vpn]`; from then on the heap reads and writes its words as
`words[dm[(va - HEAP_BASE) >> frame_shift] * words_per_frame + (va & (frame_size - 1)) / 8]`.
A heap page is `v8_page_size` (64 frames of 4 KiB by default) and its frames are *not*
physically contiguous, so nothing may assume two frames of a page are adjacent: byte copies go
frame by frame.

The price, which Node's heap does not pay: committed pages are always resident, never swapped
or reclaimed (pinned pages are parked off the replacement policy), and they count against the
machine's pin limit (a quarter of the VM pool). A page is *uncommitted* by clearing its entries,
unpinning it and discarding it (MADV_DONTNEED), which gives its frames back to the pool.

Owns: `v8_dm`'s row of one isolate. Touches: the phys segment through it; the VM (pin, unpin,
discard) under the VM's own locks, inside the isolate's locker.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.errors import ResourceExhausted
from memsim.sim.v8.layout import HEAP_BASE, V8Geometry
from memsim.sim.vm.vm import VM


class DirectMap:
    """One isolate's direct map, as one process sees it."""

    def __init__(self, words: np.ndarray, data: np.ndarray, dm: np.ndarray, g: V8Geometry,
                 bitmaps: list[np.ndarray]):
        self.bitmaps = bitmaps  # the pool-wide bit rows indexed by frame (marking, slot sets): cleared on uncommit
        self.words = words  # the phys segment as int64 words (objects.py: words are signed)
        self.data = data  # the same bytes as uint8
        self.dm = dm  # int32 row: heap vpn -> machine frame (-1: not committed)
        self.shift = g.frame_shift
        self.fs = g.frame_size
        self.wpf = g.words_per_frame
        self.g = g

    def index(self, va: int) -> int:
        """The word index in `words` of heap address va (8-aligned, committed)."""
        return int(self.dm[(va - HEAP_BASE) >> self.shift]) * self.wpf + ((va & (self.fs - 1)) >> 3)

    def load(self, va: int) -> int:
        return int(self.words[self.index(va)])

    def store(self, va: int, word: int) -> None:
        self.words[self.index(va)] = word

    def _pieces(self, va: int, n: int) -> list[tuple[int, int]]:
        """(byte offset in phys, length) of each frame's part of [va, va + n)."""
        out = []
        while n > 0:
            off = va & (self.fs - 1)
            take = min(n, self.fs - off)
            out.append((int(self.dm[(va - HEAP_BASE) >> self.shift]) * self.fs + off, take))
            va += take
            n -= take
        return out

    def read(self, va: int, n: int) -> bytes:
        return b"".join(self.data[p:p + k].tobytes() for p, k in self._pieces(va, n))

    def write(self, va: int, payload: bytes | memoryview) -> None:
        src = np.frombuffer(payload, dtype=np.uint8)
        at = 0
        for p, k in self._pieces(va, len(src)):
            self.data[p:p + k] = src[at:at + k]
            at += k

    def fill(self, va: int, n: int) -> None:
        """Zero [va, va + n)."""
        for p, k in self._pieces(va, n):
            self.data[p:p + k] = 0

    def commit(self, vm: VM, sp: int, va: int, nbytes: int) -> None:
        """Pin [va, va + nbytes) (long-term: the space's, not this core's) and map it here. A pool
        that cannot give the frames is the heap's OOM, reported by the caller."""
        n = nbytes >> self.shift
        try:
            frames = vm.pin_user_pages(sp, va, n, write=True, longterm=True)
        except ResourceExhausted as e:
            raise ResourceExhausted(f"the machine's VM frame pool is exhausted ({e})") from e
        lo = (va - HEAP_BASE) >> self.shift
        self.dm[lo:lo + n] = frames
        self.fill(va, nbytes)

    def uncommit(self, vm: VM, sp: int, va: int, nbytes: int) -> None:
        """Forget, unpin and discard [va, va + nbytes): its frames go back to the VM's pool."""
        n = nbytes >> self.shift
        lo = (va - HEAP_BASE) >> self.shift
        frames = [int(f) for f in self.dm[lo:lo + n]]
        self.dm[lo:lo + n] = -1
        self.clear_bits(np.asarray(frames, dtype=np.int64))
        vm.unpin_user_pages(sp, frames, longterm=True)
        vm.discard(sp, va, nbytes)

    def clear_bits(self, frames: np.ndarray) -> None:
        """Clear every pool-wide bit of these frames, so the frames' next owner starts clean."""
        per = self.wpf // 64
        cols = ((frames - self.g.pool_base) * per)[:, None] + np.arange(per)
        for row in self.bitmaps:
            row[cols.ravel()] = 0

    def frames(self, va: int, nbytes: int) -> np.ndarray:
        lo = (va - HEAP_BASE) >> self.shift
        return self.dm[lo:lo + (nbytes >> self.shift)]
