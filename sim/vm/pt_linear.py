"""The linear page table: one array of PTEs for the whole address space, indexed by vpn.

Allocated whole when the space is created, as one contiguous run of frames (the MMU's base
register points at it): 2^(bits - page shift) entries of 4 bytes for spaces of 32 bits or
fewer (i386 without PAE) and of 8 bytes above. That is the textbook cost, here paid in real
frames: a 32-bit space with 4 KiB pages takes 2^20 x 4 B = 4 MiB, touched or not, so 100
such spaces need 400 MiB of the pool. A walk is one read.

Touches: its run of frames and `sp_root` (the run's first frame), under the space's lock.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.errors import InvalidArgument, ResourceExhausted
from memsim.sim.vm.pagetable import PageTable, SpaceShape, TableContext, frame_run

MAX_TABLE_BYTES = 1 << 33


def linear_geometry(bits: int, page_shift: int, frame_size: int) -> tuple[int, int, int]:
    """(entries, bytes per entry, frames) of a linear table for a space of `bits` bits."""
    entries = 1 << (bits - page_shift)
    width = 4 if bits <= 32 else 8
    frames = -(-entries * width // frame_size)
    return entries, width, frames


class LinearTable(PageTable):
    default_bits = 32

    def __init__(self, ctx: TableContext):
        super().__init__(ctx)
        bits = int(self.a.sp_bits[self.sp])
        self.entries_count, self.width, self.nframes = linear_geometry(bits, ctx.page_shift, ctx.frame_size)
        self.base = int(self.a.sp_root[self.sp])
        self.table = ctx.pool.words32 if self.width == 4 else ctx.pool.words
        self.first = self.base * ctx.frame_size // self.width  # index of entry 0 in the pool's words

    @classmethod
    def create(cls, ctx: TableContext, shape: SpaceShape) -> None:
        bits = shape.bits
        entries, width, frames = linear_geometry(bits, ctx.page_shift, ctx.frame_size)
        if entries * width > MAX_TABLE_BYTES:
            raise InvalidArgument(
                f"a linear table for a {bits}-bit space needs {entries * width} bytes; use a multilevel or "
                f"inverted table for wide spaces")
        if frames > ctx.pool.nframes:
            raise ResourceExhausted(
                f"a linear table for a {bits}-bit space is {entries * width} bytes ({frames} frames), more than the "
                f"VM's whole pool of {ctx.pool.nframes} frames: give the machine more VM memory or use fewer bits")
        base = ctx.alloc(frames)
        ctx.pool.zero(base, frames)
        ctx.a.sp_root[ctx.space] = base

    def walk(self, vpn: int) -> tuple[int, int]:
        return int(self.table[self.first + vpn]), 1

    def set(self, vpn: int, pte: int) -> None:
        if self.width == 4 and pte >> 32:
            pte &= 0xFFFFFFFF  # a 32-bit entry has no NX bit: execute permission is the region's
        self.table[self.first + vpn] = pte

    def clear_range(self, lo: int, hi: int) -> None:
        self.array_clear(self.table, self.first, self.entries_count, lo, hi)

    def entries(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        return self.array_entries(self.table, self.first, self.entries_count, lo, hi)

    def frames(self) -> np.ndarray:
        return frame_run(self.base, self.nframes)

    def table_frames(self) -> int:
        return self.nframes

    def destroy(self) -> None:
        self.ctx.pool.give(self.base, self.nframes)
