"""The inverted page table: one hashed table for the whole machine, one entry per frame.

Entry f describes pool frame f: which (space, vpn) it holds and that page's PTE flags. A
lookup hashes (space, vpn) into an anchor table and follows the chain of entries with that
hash, comparing keys (PowerPC's hashed page table and IA-64's VHPT descend from this: Jacob
and Mudge, "Virtual memory in contemporary microprocessors", IEEE Micro 18(4), 1998): the
table's size follows physical memory, not the address spaces, so a thousand sparse 64-bit
spaces cost nothing more. The walk is 1 (the anchor) + the chain steps read, which is
why such machines lean on their TLB.

The table lives in pool frames, laid out once for the whole machine the first time a space
asks for it: anchors (int32, a power of two >= frames), then per entry its key (space << 52 |
vpn, int64), its flags (the PTE without its frame number, uint64) and its chain link (int32).
Chains are shared by all spaces, so the table has its own lock, `vm/ipt`, taken inside the
caller's space lock (a leaf).

A page that is not resident has no frame and so no entry: its swap slot is kept in the swap
directory (the `sd_*` arrays, same hashing, one entry per swap slot, under `vm/swap`), which is
the OS's own software table for non-resident pages, not part of the hardware's walk.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.machine.memory import FRAME_PAGETABLE
from memsim.sim.vm import pte as P
from memsim.sim.vm.layout import M_IPT_BASE, M_IPT_FRAMES, M_POOL_FRAMES, VMArrays
from memsim.sim.vm.pagetable import NO_ENTRIES, NO_FRAMES, PageTable, SpaceShape, TableContext, frame_run

KEY_SHIFT = 52
ENTRY_BYTES = 20  # key 8 + flags 8 + next 4
EMPTY = -1


def ipt_key(space: int, vpn: int) -> int:
    return (space << KEY_SHIFT) | vpn


def ipt_hash(key: int, mask: int) -> int:
    """Knuth's multiplicative (Fibonacci) hash of a key into `mask + 1` anchors (a power of two):
    the product's TOP bits, the ones every bit of the key reaches. Bits from the middle of the
    product ignore the key's high bits, and those hold the space: the same page of every space
    would share one chain."""
    h = (key * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    return (h >> (64 - mask.bit_length())) & mask


def ipt_geometry(nframes: int, frame_size: int) -> tuple[int, int]:
    """(anchors, frames) of the machine's table for a pool of nframes frames."""
    anchors = 1 << max(4, (nframes - 1).bit_length())
    nbytes = anchors * 4 + nframes * 16 + nframes * 4 + 16
    return anchors, -(-nbytes // frame_size)


class InvertedTable(PageTable):
    default_bits = 48

    def __init__(self, ctx: TableContext):
        super().__init__(ctx)
        self.ipt_lock = ctx.locks.ipt
        self.swap_lock = ctx.locks.swap
        meta = self.a.vm_meta
        n = int(meta[M_POOL_FRAMES])
        self.n = n
        self.anchors, _ = ipt_geometry(n, ctx.frame_size)
        self.mask = self.anchors - 1
        start = int(meta[M_IPT_BASE]) * ctx.frame_size  # byte offset in the pool
        mem = ctx.pool.view(0, ctx.pool.nframes)
        self.anchor = mem[start:start + self.anchors * 4].view(np.int32)
        off = start + self.anchors * 4
        off += (-off) % 8
        self.keys = mem[off:off + n * 8].view(np.int64)
        self.flags = mem[off + n * 8:off + n * 16].view(np.uint64)  # NX is bit 63
        self.next = mem[off + n * 16:off + n * 20].view(np.int32)
        self.base = ctx.pool.base
        self.sd_anchor, self.sd_space, self.sd_vpn, self.sd_next = (
            self.a.sd_anchor, self.a.sd_space, self.a.sd_vpn, self.a.sd_next)

    @classmethod
    def create(cls, ctx: TableContext, shape: SpaceShape) -> None:
        """Lay the machine's table out on first use (the caller holds vm/spaces)."""
        meta = ctx.a.vm_meta
        with ctx.locks.ipt:
            if int(meta[M_IPT_FRAMES]):
                return
            _anchors, frames = ipt_geometry(int(meta[M_POOL_FRAMES]), ctx.frame_size)
            base = ctx.pool.take_run(frames, FRAME_PAGETABLE)
            ctx.pool.zero(base, frames)
            meta[M_IPT_BASE] = base
            meta[M_IPT_FRAMES] = frames
            t = InvertedTable(ctx)
            t.anchor[:] = EMPTY
            t.next[:] = EMPTY
            t.keys[:] = -1

    # -- the hardware table --------------------------------------------------------------------

    def _find(self, key: int) -> tuple[int, int, int]:
        """(entry or -1, previous entry or -1, chain steps read)."""
        prev, f, steps = -1, int(self.anchor[ipt_hash(key, self.mask)]), 0
        while f != EMPTY:
            steps += 1
            if int(self.keys[f]) == key:
                return f, prev, steps
            prev, f = f, int(self.next[f])
        return -1, prev, steps

    def _unlink(self, key: int) -> None:
        f, prev, _ = self._find(key)
        if f < 0:
            return
        if prev < 0:
            self.anchor[ipt_hash(key, self.mask)] = self.next[f]
        else:
            self.next[prev] = self.next[f]
        self.keys[f] = -1
        self.flags[f] = 0
        self.next[f] = EMPTY

    def _link(self, key: int, f: int, flags: int) -> None:
        h = ipt_hash(key, self.mask)
        self.keys[f] = key
        self.flags[f] = flags
        self.next[f] = self.anchor[h]
        self.anchor[h] = f

    # -- the swap directory --------------------------------------------------------------------

    def _sd_find(self, key: int) -> tuple[int, int]:
        sp, vpn = key >> KEY_SHIFT, key & ((1 << KEY_SHIFT) - 1)
        prev, s = -1, int(self.sd_anchor[ipt_hash(key, len(self.sd_anchor) - 1)])
        while s != EMPTY:
            if int(self.sd_space[s]) == sp and int(self.sd_vpn[s]) == vpn:
                return s, prev
            prev, s = s, int(self.sd_next[s])
        return -1, prev

    def _sd_unlink(self, key: int) -> None:
        s, prev = self._sd_find(key)
        if s < 0:
            return
        if prev < 0:
            self.sd_anchor[ipt_hash(key, len(self.sd_anchor) - 1)] = self.sd_next[s]
        else:
            self.sd_next[prev] = self.sd_next[s]
        self.sd_space[s] = -1
        self.sd_next[s] = EMPTY

    def _sd_link(self, key: int, slot: int) -> None:
        h = ipt_hash(key, len(self.sd_anchor) - 1)
        self.sd_space[slot] = key >> KEY_SHIFT
        self.sd_vpn[slot] = key & ((1 << KEY_SHIFT) - 1)
        self.sd_next[slot] = self.sd_anchor[h]
        self.sd_anchor[h] = slot

    # -- PageTable -------------------------------------------------------------------------------

    def walk(self, vpn: int) -> tuple[int, int]:
        key = ipt_key(self.sp, vpn)
        with self.ipt_lock:
            f, _, steps = self._find(key)
            if f >= 0:
                return int(self.flags[f]) | ((self.base + f) << P.PFN_SHIFT), 1 + steps
        with self.swap_lock:
            s, _ = self._sd_find(key)
        return (P.swap_entry(s) if s >= 0 else 0), 1 + steps

    def set(self, vpn: int, pte: int) -> None:
        key = ipt_key(self.sp, vpn)
        with self.ipt_lock:
            self._unlink(key)
            if pte & P.P:
                self._link(key, P.frame_of(pte) - self.base, pte & ~P.PFN_MASK)
        with self.swap_lock:
            self._sd_unlink(key)
            if P.is_swap(pte):
                self._sd_link(key, P.swap_slot(pte))

    def _mine(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """The entries (frames) and swap-directory slots of this space's vpns lo..hi-1: one NumPy pass
        over the frames and slots, whatever the range's length (the caller holds vm/ipt and vm/swap)."""
        keys = self.keys
        vpn = keys & ((1 << KEY_SHIFT) - 1)
        frames = np.flatnonzero((keys >= 0) & (keys >> KEY_SHIFT == self.sp) & (vpn >= lo) & (vpn < hi))
        slots = np.flatnonzero((self.sd_space == self.sp) & (self.sd_vpn >= lo) & (self.sd_vpn < hi))
        self.visited += int(frames.size + slots.size)
        return frames, slots

    def clear_range(self, lo: int, hi: int) -> None:
        sp = self.sp
        with self.ipt_lock, self.swap_lock:
            frames, slots = self._mine(lo, hi)
            for f in frames.tolist():
                self._unlink(int(self.keys[f]))
            for s in slots.tolist():
                self._sd_unlink(ipt_key(sp, int(self.sd_vpn[s])))

    def entries(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        with self.ipt_lock, self.swap_lock:
            frames, slots = self._mine(lo, hi)
            vpns = self.keys[frames] & ((1 << KEY_SHIFT) - 1)
            ptes = self.flags[frames] | ((frames.astype(np.uint64) + np.uint64(self.base)) << np.uint64(P.PFN_SHIFT))
            svpns = self.sd_vpn[slots]
            sptes = (slots.astype(np.uint64) << np.uint64(P.PFN_SHIFT)) | np.uint64(P.SW)
        if not frames.size and not slots.size:
            return NO_ENTRIES
        return np.concatenate([vpns, svpns]).astype(np.int64), np.concatenate([ptes.astype(np.uint64), sptes])

    def entries_used(self) -> int:
        keys = self.keys
        return int(((keys >> KEY_SHIFT == self.sp) & (keys >= 0)).sum())

    def frames(self) -> np.ndarray:
        return NO_FRAMES  # the machine's table is shared: its frames are machine_frames, reported in vm_meta

    def table_bytes(self) -> int:
        """The space's share of the machine's table: the entries its resident pages use."""
        return self.entries_used() * ENTRY_BYTES

    @classmethod
    def machine_frames(cls, a: VMArrays) -> np.ndarray:
        return frame_run(int(a.vm_meta[M_IPT_BASE]), int(a.vm_meta[M_IPT_FRAMES]))

    def destroy(self) -> None:
        self.clear_range(0, 1 << KEY_SHIFT)
