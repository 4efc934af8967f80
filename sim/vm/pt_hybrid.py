"""The hybrid table: segmentation plus paging (OSTEP ch. 20; the 80386's segments over pages).

The top 2 bits of a virtual address pick one of four segments (0 code, 1 data and heap,
2 anonymous maps, 3 stack, by convention). Each segment has a base (the first frame of its
own linear page table) and a bound (how many pages that table covers, from the segment's
start): a page past the bound has no entry, so a table only as long as the segment's highest
mapped page is paid for, where a linear table pays for the whole space. The cost is the
segment's unused middle: a heap mapped at the start of its segment and a little data near
its end still need the whole stretch between.

The stack segment (3) grows down, as OSTEP's stack segment does: its bound counts pages down
from the segment's top, so a stack at the top of the space costs only its own pages' entries.

A segment's table grows when a region is mapped past its bound (a new run, the entries
copied, the old run freed: realloc for page tables) and stays put otherwise. A walk is one
read after the segment is picked: levels = 1.

Touches: its segments' runs of frames and `sp_seg_base/frames/bound`, under the space's lock.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.errors import ResourceExhausted
from memsim.sim.vm.pagetable import NO_ENTRIES, NO_FRAMES, PageTable, SpaceShape, TableContext, frame_run

SEGMENTS = 4
GROWS_DOWN = 3  # the stack segment
SEGMENT_OF = {"code": 0, "data": 1, "heap": 1, "anon": 2, "stack": 3, "guard": 3}  # region kind -> its segment


class HybridTable(PageTable):
    default_bits = 32

    def __init__(self, ctx: TableContext):
        super().__init__(ctx)
        self.bits = int(self.a.sp_bits[self.sp])
        self.page_shift = ctx.page_shift
        self.seg_shift = self.bits - 2 - self.page_shift  # vpn bits inside a segment
        self.width = 4 if self.bits <= 32 else 8
        self.table = ctx.pool.words32 if self.width == 4 else ctx.pool.words

    @classmethod
    def create(cls, ctx: TableContext, shape: SpaceShape) -> None:
        ctx.a.sp_seg_base[ctx.space] = -1
        ctx.a.sp_seg_frames[ctx.space] = 0
        ctx.a.sp_seg_bound[ctx.space] = 0

    def region_window(self, kind: str, bits: int, margin: int) -> tuple[int, int]:
        """Each region kind has its segment: the top 2 bits of its addresses (page 0 stays free)."""
        seg = SEGMENT_OF[kind]
        lo, hi = seg << (bits - 2), (seg + 1) << (bits - 2)
        return (max(lo, margin) if seg == 0 else lo), hi

    def _split(self, vpn: int) -> tuple[int, int]:
        """(segment, index into its table): from the segment's start, or from its top for the stack."""
        seg, off = vpn >> self.seg_shift, vpn & ((1 << self.seg_shift) - 1)
        return seg, ((1 << self.seg_shift) - 1 - off) if seg == GROWS_DOWN else off

    def _index(self, seg: int, off: int) -> int:
        base = int(self.a.sp_seg_base[self.sp, seg])
        return base * self.ctx.frame_size // self.width + off

    def walk(self, vpn: int) -> tuple[int, int]:
        seg, off = self._split(vpn)
        if off >= int(self.a.sp_seg_bound[self.sp, seg]):
            return 0, 1  # past the bound: no entry (the region check has refused it before)
        return int(self.table[self._index(seg, off)]), 1

    def prepare(self, lo: int, hi: int) -> None:
        needs = []
        for seg in range(lo >> self.seg_shift, ((hi - 1) >> self.seg_shift) + 1):
            first = max(lo, seg << self.seg_shift)
            last = min(hi, (seg + 1) << self.seg_shift) - 1
            needs.append((seg, max(self._split(first)[1], self._split(last)[1]) + 1))
        for seg, pages in needs:  # every segment checked before any grows
            self._check_fits(seg, pages)
        for seg, pages in needs:
            self._grow(seg, pages)

    def _check_fits(self, seg: int, pages: int) -> None:
        frames = -(-pages * self.width // self.ctx.frame_size)
        if frames > self.ctx.pool.nframes:  # (a vast region in a wide hybrid space)
            raise ResourceExhausted(
                f"segment {seg}'s page table would need {pages} entries ({frames} frames) to cover this region, "
                f"more than the VM's whole pool of {self.ctx.pool.nframes} frames: map a smaller region, or use "
                f"a multilevel or inverted table for sparse wide spaces")

    def _grow(self, seg: int, pages: int) -> None:
        a, sp = self.a, self.sp
        bound = int(a.sp_seg_bound[sp, seg])
        if pages <= bound:
            return
        frames = -(-pages * self.width // self.ctx.frame_size)
        pool = self.ctx.pool
        self._check_fits(seg, pages)
        new = self.ctx.alloc(frames)
        pool.zero(new, frames)
        old, old_frames = int(a.sp_seg_base[sp, seg]), int(a.sp_seg_frames[sp, seg])
        per = self.ctx.frame_size // self.width
        if old >= 0 and bound:
            self.table[new * per:new * per + bound] = self.table[old * per:old * per + bound]
            pool.give(old, old_frames)
        a.sp_seg_base[sp, seg] = new
        a.sp_seg_frames[sp, seg] = frames
        a.sp_seg_bound[sp, seg] = frames * per  # the run's whole length is usable

    def set(self, vpn: int, pte: int) -> None:
        seg, off = self._split(vpn)
        if off >= int(self.a.sp_seg_bound[self.sp, seg]):
            if pte == 0:
                return
            self._grow(seg, off + 1)
        if self.width == 4:
            pte &= 0xFFFFFFFF
        self.table[self._index(seg, off)] = pte

    def _segment_slices(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """(segment, first index, last index + 1) of each segment's entries that vpns lo..hi-1 cover,
        within the segment's bound: the entries that exist."""
        out: list[tuple[int, int, int]] = []
        lo, hi = max(0, lo), min(hi, SEGMENTS << self.seg_shift)
        if lo >= hi:
            return out
        for seg in range(lo >> self.seg_shift, ((hi - 1) >> self.seg_shift) + 1):
            bound = int(self.a.sp_seg_bound[self.sp, seg])
            first = max(lo, seg << self.seg_shift)
            last = min(hi, (seg + 1) << self.seg_shift) - 1
            i_a, i_b = sorted((self._split(first)[1], self._split(last)[1]))
            i_b = min(i_b, bound - 1)
            if i_b >= i_a:
                out.append((seg, i_a, i_b + 1))
        return out

    def clear_range(self, lo: int, hi: int) -> None:
        for seg, i_a, i_b in self._segment_slices(lo, hi):
            i = self._index(seg, 0)
            self.table[i + i_a:i + i_b] = 0

    def entries(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        vs, es = [], []
        for seg, i_a, i_b in self._segment_slices(lo, hi):
            i = self._index(seg, 0)
            words = self.table[i + i_a:i + i_b]
            nz = np.flatnonzero(words)
            idx = (i_a + nz).astype(np.int64)
            off = ((1 << self.seg_shift) - 1 - idx) if seg == GROWS_DOWN else idx
            vs.append((seg << self.seg_shift) | off)
            es.append(words[nz].astype(np.uint64))
            self.visited += int(nz.size)
        if not vs:
            return NO_ENTRIES
        return np.concatenate(vs), np.concatenate(es)

    def frames(self) -> np.ndarray:
        runs = [frame_run(int(base), int(n)) for base, n in zip(self.a.sp_seg_base[self.sp].tolist(),
                                                                 self.a.sp_seg_frames[self.sp].tolist(), strict=True)
                if base >= 0 and n]
        return np.concatenate(runs) if runs else NO_FRAMES

    def table_frames(self) -> int:
        return int(self.a.sp_seg_frames[self.sp].sum())

    def destroy(self) -> None:
        a, sp = self.a, self.sp
        for seg in range(SEGMENTS):
            if int(a.sp_seg_base[sp, seg]) >= 0 and int(a.sp_seg_frames[sp, seg]):
                self.ctx.pool.give(int(a.sp_seg_base[sp, seg]), int(a.sp_seg_frames[sp, seg]))
        a.sp_seg_base[sp] = -1
        a.sp_seg_frames[sp] = 0
        a.sp_seg_bound[sp] = 0
