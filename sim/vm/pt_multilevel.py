"""The multi-level page table: x86-64's radix tree (default 4 levels of 9 bits over 4 KiB pages).

A vpn is cut into `levels` indices of `level_bits` bits each (the top level takes what is
left); each level is a table of 2^bits 8-byte entries in its own frame(s), and a present
non-leaf entry holds the frame of the next level's table, as PML4 -> PUD -> PMD -> PT do.
Only the tables on the path to a mapped page exist: a sparse space (a little code at the
bottom, a stack at the top) costs one table per level per used stretch, a few KiB, where a
linear table for the same 48 bits would need 512 GiB. A walk reads one entry per level and
stops early at a missing table (levels = reads taken). When unmapping leaves a table with no
entry it is freed and its parent's entry cleared (Linux's free_pgtables), so that the table's
cost follows the mappings down as well as up.

Huge pages (hugepage.py): an entry of the next-to-last level (x86-64's PMD) with the PS bit
is a leaf mapping 2^(last level's bits) pages (512 x 4 KiB = 2 MiB) of contiguous frames, and
the walk ends there, one level early. Such an entry is written and split only by hugepage.py;
`set` of a single page under one is refused (split first).

Touches: its tables' frames, `sp_root` and the space's page-table frame count
(`sp_stats[SP_PT_FRAMES]`), under the space's lock. Invariant: that count is the frames of the
tables reachable from the root plus the tables huge pages keep in reserve (hugepage.py).
"""

from __future__ import annotations

import numpy as np

from memsim.sim.errors import InvalidArgument
from memsim.sim.vm import pte as P
from memsim.sim.vm.layout import SP_PT_FRAMES
from memsim.sim.vm.pagetable import NO_ENTRIES, PageTable, SpaceShape, TableContext, frame_run

NONLEAF = P.P | P.RW | P.US


def level_shifts(bits: int, page_shift: int, levels: int, level_bits: int) -> list[tuple[int, int]]:
    """(shift, width) of each level's index in the vpn, top level first."""
    vbits = bits - page_shift
    widths = [level_bits] * levels
    widths[0] = vbits - level_bits * (levels - 1)
    out, shift = [], vbits
    for w in widths:
        shift -= w
        out.append((shift, w))
    return out


class MultiLevelTable(PageTable):
    default_bits = 48

    def __init__(self, ctx: TableContext):
        super().__init__(ctx)
        a = self.a
        self.page_shift = ctx.page_shift
        self.levels = int(a.sp_levels[self.sp])
        self.level_bits = int(a.sp_level_bits[self.sp])
        self.shifts = level_shifts(int(a.sp_bits[self.sp]), self.page_shift, self.levels, self.level_bits)
        self.words = ctx.pool.words
        self.per_frame = ctx.frame_size // 8
        self.table_span = [max(1, -(-(1 << w) * 8 // ctx.frame_size)) for _, w in self.shifts]  # frames/table
        self.huge_pages = 1 << self.shifts[-1][1]  # pages one PMD entry maps
        self.pmd_depth = len(self.shifts) - 2  # -1 for a one-level table: no huge pages

    @classmethod
    def shape(cls, bits: int, levels: int | None, level_bits: int | None, page_shift: int) -> SpaceShape:
        """levels and level_bits describe the radix tree (x86-64: 4 levels of 9 bits); the space table
        stores them as int16, hence the bounds."""
        if level_bits is None:
            level_bits = 9
        if not 1 <= level_bits <= 16:
            raise InvalidArgument(f"level_bits is {level_bits}: it must be between 1 and 16 (0 = 9, as x86-64)")
        if levels is not None and not 1 <= levels <= 8:
            raise InvalidArgument(f"levels is {levels}: it must be between 1 and 8 (0 = as many as bits needs)")
        vbits = bits - page_shift
        levels = levels or -(-vbits // level_bits)
        if not 1 <= levels <= 8 or vbits - level_bits * (levels - 1) < 1 or vbits > level_bits * levels:
            raise InvalidArgument(f"{levels} levels of {level_bits} bits do not cover a {bits}-bit space "
                                  f"with {1 << page_shift}-byte pages ({vbits} bits of page number)")
        return SpaceShape(bits, levels, level_bits)

    @classmethod
    def create(cls, ctx: TableContext, shape: SpaceShape) -> None:
        shifts = level_shifts(shape.bits, ctx.page_shift, shape.levels, shape.level_bits)
        n = max(1, -(-(1 << shifts[0][1]) * 8 // ctx.frame_size))
        root = ctx.alloc(n)
        ctx.pool.zero(root, n)
        ctx.a.sp_root[ctx.space] = root
        ctx.a.sp_stats[ctx.space, SP_PT_FRAMES] = n

    def walk(self, vpn: int) -> tuple[int, int]:
        table = int(self.a.sp_root[self.sp])
        words = self.words
        base = self.ctx.pool.base
        for depth, (shift, w) in enumerate(self.shifts):
            e = int(words[table * self.per_frame + ((vpn >> shift) & ((1 << w) - 1))])
            if depth == len(self.shifts) - 1:
                return e, depth + 1
            if not e & P.P:
                return 0, depth + 1
            if e & P.PS:  # a huge page: this page's own frame inside the run
                return (e & ~P.PFN_MASK) | ((P.frame_of(e) + (vpn & (self.huge_pages - 1))) << P.PFN_SHIFT), depth + 1
            table = P.frame_of(e) - base
        raise AssertionError("unreachable")

    def _new_table(self, i: int, depth: int) -> int:
        """Allocate a zeroed table for level `depth` and link it from word i; returns the new entry."""
        span = self.table_span[depth]
        child = self.ctx.alloc(span)
        self.ctx.pool.zero(child, span)
        self.a.sp_stats[self.sp, SP_PT_FRAMES] += span
        e = ((self.ctx.pool.base + child) << P.PFN_SHIFT) | NONLEAF
        self.words[i] = e
        return e

    def pmd_index(self, vpn: int, create: bool) -> int | None:
        """The word of the PMD entry covering vpn (creating the tables above it if asked), or None."""
        if self.pmd_depth < 0:
            return None
        table = int(self.a.sp_root[self.sp])
        words = self.words
        base = self.ctx.pool.base
        for depth, (shift, w) in enumerate(self.shifts[:self.pmd_depth + 1]):
            i = table * self.per_frame + ((vpn >> shift) & ((1 << w) - 1))
            if depth == self.pmd_depth:
                return i
            e = int(words[i])
            if not e & P.P:
                if not create:
                    return None
                e = self._new_table(i, depth + 1)
            table = P.frame_of(e) - base
        return None

    def set(self, vpn: int, pte: int) -> None:
        table = int(self.a.sp_root[self.sp])
        words = self.words
        base = self.ctx.pool.base
        last = len(self.shifts) - 1
        for depth, (shift, w) in enumerate(self.shifts):
            i = table * self.per_frame + ((vpn >> shift) & ((1 << w) - 1))
            if depth == last:
                words[i] = pte
                return
            e = int(words[i])
            if e & P.PS:  # under a huge page: only its flags may change here
                if not pte & P.P or P.frame_of(pte) - (vpn & (self.huge_pages - 1)) != P.frame_of(e):
                    raise RuntimeError(f"vpn {vpn:#x} is inside a huge page: split it first")
                words[i] = (pte & ~P.PFN_MASK) | P.PS | (P.frame_of(e) << P.PFN_SHIFT)
                return
            if not e & P.P:
                if pte == 0:
                    return  # clearing something never mapped
                e = self._new_table(i, depth + 1)
            table = P.frame_of(e) - base

    def clear_range(self, lo: int, hi: int) -> None:
        self._clear(int(self.a.sp_root[self.sp]), 0, 0, lo, hi)

    def _present(self, table: int, depth: int, prefix: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(indices, entries) of the non-zero entries of this table that vpns lo..hi-1 reach, and the
        vpns one entry spans: empty entries are skipped in one NumPy pass (mm/pagewalk.c's pmd_none)."""
        shift, w = self.shifts[depth]
        span = 1 << shift  # vpns per entry at this level
        i_lo = max(0, (lo - prefix) // span)
        i_hi = min(1 << w, -(-(hi - prefix) // span))
        first = table * self.per_frame
        words = self.words[first + i_lo:first + max(i_lo, i_hi)]
        nz = np.flatnonzero(words)
        self.visited += int(nz.size)
        return i_lo + nz, words[nz], span

    def _clear(self, table: int, depth: int, prefix: int, lo: int, hi: int) -> bool:
        """Clear vpns lo..hi-1 under this table; True if the table is now empty."""
        first = table * self.per_frame
        idx, ents, span = self._present(table, depth, prefix, lo, hi)
        base = self.ctx.pool.base
        leaf = depth == len(self.shifts) - 1
        for i, e in zip(idx.tolist(), ents.tolist(), strict=True):
            if leaf or e & P.PS:  # a page, or a huge page wholly in range (split_range split the others)
                self.words[first + i] = 0
                continue
            child_prefix = prefix + i * span
            child = P.frame_of(e) - base
            if self._clear(child, depth + 1, child_prefix, max(lo, child_prefix), min(hi, child_prefix + span)):
                frames = self.table_span[depth + 1]
                self.ctx.pool.give(child, frames)
                self.a.sp_stats[self.sp, SP_PT_FRAMES] -= frames
                self.words[first + i] = 0
        return not np.any(self.words[first:first + (1 << self.shifts[depth][1])])

    def entries(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """A huge page gives one entry per page it maps (its frame, its PMD's flags), so that every
        caller sees small pages; the walk still costs what is present."""
        vs: list[np.ndarray] = []
        es: list[np.ndarray] = []
        if lo < hi:
            self._collect(int(self.a.sp_root[self.sp]), 0, 0, lo, hi, vs, es)
        if not vs:
            return NO_ENTRIES
        return np.concatenate(vs).astype(np.int64), np.concatenate(es).astype(np.uint64)

    def _collect(self, table: int, depth: int, prefix: int, lo: int, hi: int, vs: list[np.ndarray],
                 es: list[np.ndarray]) -> None:
        idx, ents, span = self._present(table, depth, prefix, lo, hi)
        if depth == len(self.shifts) - 1:
            vs.append(prefix + idx.astype(np.int64))
            es.append(ents.astype(np.uint64))
            return
        base = self.ctx.pool.base
        for i, e in zip(idx.tolist(), ents.tolist(), strict=True):
            child_prefix = prefix + i * span
            if e & P.PS:  # a huge page: one PTE per page it maps, clipped to the range
                k = np.arange(max(lo, child_prefix), min(hi, child_prefix + span), dtype=np.int64)
                self.visited += int(k.size)
                vs.append(k)
                frames = np.uint64(P.frame_of(e)) + (k - child_prefix).astype(np.uint64)
                es.append(np.uint64(e & ~P.PFN_MASK) | (frames << np.uint64(P.PFN_SHIFT)))
            else:
                self._collect(P.frame_of(e) - base, depth + 1, child_prefix, max(lo, child_prefix),
                              min(hi, child_prefix + span), vs, es)

    def pmd_tables(self, lo: int, hi: int) -> list[int]:
        """The first vpn of each PMD entry in lo..hi-1 that links a page table (not empty, not a huge page),
        by address: what khugepaged can collapse, found without visiting empty ranges."""
        out: list[int] = []
        if self.pmd_depth >= 0 and lo < hi:
            self._pmd_tables(int(self.a.sp_root[self.sp]), 0, 0, lo, hi, out)
        return out

    def _pmd_tables(self, table: int, depth: int, prefix: int, lo: int, hi: int, out: list[int]) -> None:
        idx, ents, span = self._present(table, depth, prefix, lo, hi)
        for i, e in zip(idx.tolist(), ents.tolist(), strict=True):
            if e & P.PS:
                continue
            child_prefix = prefix + i * span
            if depth == self.pmd_depth:
                out.append(child_prefix)
            else:
                self._pmd_tables(P.frame_of(e) - self.ctx.pool.base, depth + 1, child_prefix,
                                 max(lo, child_prefix), min(hi, child_prefix + span), out)

    def frames(self) -> np.ndarray:
        """Every table reachable from the root (a huge page's frames are not a table)."""
        out: list[np.ndarray] = []
        stack = [(int(self.a.sp_root[self.sp]), 0)]
        base = self.ctx.pool.base
        while stack:
            table, depth = stack.pop()
            out.append(frame_run(table, self.table_span[depth]))
            if depth < len(self.shifts) - 1:
                first = table * self.per_frame
                entries = self.words[first:first + (1 << self.shifts[depth][1])]
                stack += [(P.frame_of(e) - base, depth + 1) for e in entries[entries != 0].tolist() if not e & P.PS]
        return np.concatenate(out)

    def table_frames(self) -> int:
        return int(self.a.sp_stats[self.sp, SP_PT_FRAMES])

    def destroy(self) -> None:
        root = int(self.a.sp_root[self.sp])
        self._free_all(root, 0)
        self.a.sp_stats[self.sp, SP_PT_FRAMES] = 0

    def _free_all(self, table: int, depth: int) -> None:
        if depth < len(self.shifts) - 1:
            _, w = self.shifts[depth]
            first = table * self.per_frame
            entries = self.words[first:first + (1 << w)]
            base = self.ctx.pool.base
            for e in entries[entries != 0].tolist():
                if not int(e) & P.PS:  # a huge page's frames are not a table
                    self._free_all(P.frame_of(int(e)) - base, depth + 1)
        self.ctx.pool.give(table, self.table_span[depth])
