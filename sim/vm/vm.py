"""Virtual memory as one core sees it: address spaces, regions, the MMU path, faults, reclaim.

One `VM` object per core process (like Heap and Keyspace); all its state but the TLB is in
shared memory (layout.py), so any core serves any space.

An access (load, store, translate) of space s, under s's lock (`vm/space/<s>`):
  1. the core's TLB (tlb.py): a hit gives the frame at once;
  2. a miss walks s's page table (pagetable.py and its four kinds), counting the levels read;
  3. a present PTE fills the TLB; otherwise the region (VMA) decides: no region is the
     machine's segmentation fault (OUT_OF_RANGE), a region without the permission is a
     protection fault (FAILED_PRECONDITION, the stack's guard page included); a PTE of 0 is a
     minor fault (a zeroed frame), a swap entry a major fault (the page read back from swap);
  4. the replacement policy hears of the access (policy.hit: the simulator can tell it every
     access, where hardware only sets the PTE's accessed bit), and A/D bits are set in the PTE.

A fault that finds no free frame reclaims one (Linux's shrink_page_list, one page at a time):
the policy (`sim/policies`, over pool frames, under `vm/lru`) names a victim; its space is
locked with a try-lock (see layout.py for why), the victim re-validated (the frame may have
been freed or reused meanwhile), and the page is written to swap if it is dirty or has no
copy there (a clean page read back from swap keeps its slot, Linux's swap cache, and is just
dropped; a never-written zero page is dropped and zero-filled again on its next touch). Its
PTE becomes a swap entry, its space's TLB generation is bumped (the shootdown), and the frame
is handed to the faulting space.

Leases. A space belongs to the client that created it (`sp_owner`, a random 63-bit id the
client chose) for as long as that client renews its lease (`sp_expiry`, CLOCK_MONOTONIC, which
every process of the host reads alike); `release(owner)` destroys what a closing client made,
and `reap(now)` what a client that died without closing left behind. Owner 0 is a kept space:
nobody's, never reaped (the user destroys it). Renewal is a plain store of a later expiry,
without vm/spaces, so a client's keepalive never waits behind a destroy; a reaper re-checks
owner and expiry under vm/spaces and the space's lock before it destroys anything, so at worst
a renewal that races the very moment of expiry loses, as a lease past its end should.

Counters are Linux's (/proc/vmstat): pgfault, pgmajfault, pswpin, pswpout, pgscan, pgsteal,
per core in `vm_stat`; per space in `sp_stats` (rss and swap in pages, minflt, majflt).
"""

from __future__ import annotations

import os
import signal

import numpy as np

from memsim.sim.errors import FailedPrecondition, InvalidArgument, NotFound, OutOfRange, ResourceExhausted
from memsim.sim.machine.locks import LockTable
from memsim.sim.machine.memory import FRAME_PAGETABLE, FRAME_USER, PhysicalMemory
from memsim.sim.policies import POLICIES, Policy
from memsim.sim.vm import hugepage
from memsim.sim.vm import pte as P
from memsim.sim.vm.frames import FramePool
from memsim.sim.vm.layout import (
    HUGE_HEAD,
    HUGE_TAIL,
    HUGETLB_HEAD,
    HUGETLB_TAIL,
    M_IPT_FRAMES,
    M_POLICY,
    M_SWAP_USED,
    M_THP,
    MAX_REGIONS,
    MAX_SPACES,
    NAME_BYTES,
    SP_ACCESSES,
    SP_MAJFLT,
    SP_MINFLT,
    SP_PT_FRAMES,
    SP_RSS,
    SP_SWAP,
    SP_TLB_HIT,
    SP_TLB_MISS,
    S,
)
from memsim.sim.vm.pagetable import PageTable, TableContext
from memsim.sim.vm.pt_hybrid import HybridTable
from memsim.sim.vm.pt_inverted import InvertedTable
from memsim.sim.vm.pt_linear import LinearTable
from memsim.sim.vm.pt_multilevel import MultiLevelTable
from memsim.sim.vm.swap import Swap
from memsim.sim.vm.tlb import TLB, TLBEntry

KINDS = ("linear", "hybrid", "multilevel", "inverted")
R, W, X = 1, 2, 4
REGION_KINDS = ("code", "data", "heap", "stack", "anon", "guard")
HYBRID_SEGMENT = {"code": 0, "data": 1, "heap": 1, "anon": 2, "stack": 3, "guard": 3}
RECLAIM_TRIES = 64


def prot_text(prot: int) -> str:
    return ("r" if prot & R else "-") + ("w" if prot & W else "-") + ("x" if prot & X else "-")


def huge_count(a: dict, sp: int, v_lo: int, v_hi: int) -> int:
    heads = np.flatnonzero((a["vm_huge"] == HUGE_HEAD) & (a["vm_rmap_space"] == sp))
    vpns = a["vm_rmap_vpn"][heads]
    return int(((vpns >= v_lo) & (vpns < v_hi)).sum())


def _name(raw: np.ndarray) -> str:
    return bytes(raw).rstrip(b"\0").decode("utf-8", "replace")


class VM:
    def __init__(self, arrays: dict[str, np.ndarray], mem: PhysicalMemory, locks: LockTable, swap_fd: int,
                 core: int, tlb_entries: int = 64, tlb_ways: int = 4):
        self.a = arrays
        self.mem = mem
        self.core = core
        self.fs = mem.frame_size
        self.shift = self.fs.bit_length() - 1
        self.pool = FramePool(arrays["vm_free"], arrays["vm_meta"], mem, locks["vm/frames"])
        self.swap = Swap(swap_fd, arrays["sw_used"], arrays["vm_meta"], locks["vm/swap"], self.fs)
        self.spaces_lock = locks["vm/spaces"]
        self.lru_lock = locks["vm/lru"]
        self.ipt_lock = locks["vm/ipt"]
        self.swap_lock = locks["vm/swap"]
        self.space_locks = [locks[f"vm/space/{i}"] for i in range(MAX_SPACES)]
        self.stat = arrays["vm_stat"][core]
        self.policy = self._attach_policy()
        self.tlb = TLB(tlb_entries, tlb_ways, arrays["sp_tlbgen"], huge_pages=512)
        self._tables: dict[tuple[int, int], PageTable] = {}
        self.crash_at: str | None = None  # tests: SIGKILL this process at the named step (recovery.py)

    def _step(self, name: str) -> None:
        """A named point inside a multi-step change, where a test may kill the process (see recovery.py)."""
        if self.crash_at == name:
            os.kill(os.getpid(), signal.SIGKILL)

    # -- setup ---------------------------------------------------------------------------------

    @staticmethod
    def policy_name(arrays: dict[str, np.ndarray]) -> str:
        return sorted(POLICIES)[int(arrays["vm_meta"][M_POLICY])]

    def _attach_policy(self) -> Policy:
        cls = POLICIES[self.policy_name(self.a)]
        views = {s.name: self.a["vm" + s.name] for s in cls.array_specs(self.pool.nframes)}
        return cls(1, slots=self.pool.nframes, arrays=views, init=False)

    # -- spaces ----------------------------------------------------------------------------------

    def _ctx(self, sp: int) -> TableContext:
        return TableContext(self.pool, self.a, sp, self.fs, self._alloc_table_frames)

    def table(self, sp: int) -> PageTable:
        kind = int(self.a["sp_kind"][sp])
        t = self._tables.get((sp, kind))
        if t is None:
            ctx = self._ctx(sp)
            if kind == 0:
                t = LinearTable(ctx)
            elif kind == 1:
                t = HybridTable(ctx)
            elif kind == 2:
                t = MultiLevelTable(ctx)
            else:
                t = InvertedTable(ctx, self.ipt_lock, self.swap_lock)
            self._tables[(sp, kind)] = t
        return t

    def _check_space(self, sp: int) -> None:
        if not isinstance(sp, int) or not 0 <= sp < MAX_SPACES or not int(self.a["sp_state"][sp]):
            raise NotFound(f"address space {sp} does not exist (create one with create_space)")

    def create_space(self, page_table: str = "multilevel", bits: int | None = None, levels: int | None = None,
                     level_bits: int = 9, name: str = "", owner: int = 0, lease: float = 0.0,
                     now: float = 0.0) -> int:
        """A new space; owner != 0 holds it on a lease of `lease` seconds from `now` (see leases above)."""
        if not 0 <= owner < 1 << 63 or (owner and not 0 < lease < float("inf")):
            raise InvalidArgument(f"owner {owner} needs a positive, finite lease (got {lease})")
        if page_table not in KINDS:
            raise InvalidArgument(f"page table {page_table!r} is not one of {', '.join(KINDS)}")
        if bits is None:
            bits = 32 if page_table in ("linear", "hybrid") else 48
        if not self.shift + 2 <= bits <= 57:
            raise InvalidArgument(f"address width {bits} bits must be between {self.shift + 2} and 57")
        if page_table == "multilevel":
            if not 1 <= level_bits <= 16:
                raise InvalidArgument(f"level_bits {level_bits} must be between 1 and 16")
            vbits = bits - self.shift
            levels = levels or -(-vbits // level_bits)
            if not 1 <= levels <= 8 or vbits - level_bits * (levels - 1) < 1 or vbits > level_bits * levels:
                raise InvalidArgument(f"{levels} levels of {level_bits} bits do not cover a {bits}-bit space "
                                      f"with {self.fs}-byte pages ({vbits} bits of page number)")
        a = self.a
        with self.spaces_lock:
            free = np.flatnonzero(a["sp_state"] == 0)
            if not free.size:
                raise ResourceExhausted(f"all {MAX_SPACES} address spaces are in use")
            sp = int(free[0])
            with self.space_locks[sp]:
                a["sp_kind"][sp] = KINDS.index(page_table)
                a["sp_bits"][sp] = bits
                a["sp_levels"][sp] = levels or 1
                a["sp_level_bits"][sp] = level_bits
                a["sp_stats"][sp] = 0
                a["vma_count"][sp] = 0
                a["sp_name"][sp] = 0
                raw = name.encode()[:NAME_BYTES]
                a["sp_name"][sp, :len(raw)] = np.frombuffer(raw, dtype=np.uint8)
                a["sp_owner"][sp], a["sp_lease"][sp], a["sp_expiry"][sp] = owner, lease, now + lease
                a["sp_tlbgen"][sp] += 1
                ctx = self._ctx(sp)
                if page_table == "linear":
                    LinearTable.create(ctx, bits)
                elif page_table == "hybrid":
                    HybridTable.create(ctx)
                elif page_table == "multilevel":
                    MultiLevelTable.create(ctx, levels, level_bits)
                else:
                    InvertedTable.create(ctx, self.ipt_lock)
                self._tables.pop((sp, KINDS.index(page_table)), None)
                a["sp_state"][sp] = 1
            return sp

    def destroy_space(self, sp: int) -> None:
        self._check_space(sp)
        with self.spaces_lock, self.space_locks[sp]:
            self._check_space(sp)  # again, under the lock: another destroy may have come first
            self._destroy_locked(sp)

    def _destroy_locked(self, sp: int) -> None:
        """Tear down space sp (vm/spaces and its lock held)."""
        a = self.a
        for r in range(int(a["vma_count"][sp])):
            self._drop_pages(sp, int(a["vma_start"][sp, r]) >> self.shift, int(a["vma_end"][sp, r]) >> self.shift)
        self.table(sp).destroy()
        a["vma_count"][sp] = 0
        a["sp_state"][sp] = 0
        a["sp_owner"][sp] = 0
        a["sp_tlbgen"][sp] += 1
        self._tables = {k: v for k, v in self._tables.items() if k[0] != sp}

    def spaces(self, owner: int | None = None) -> list[int]:
        """Every space, or those held by `owner`."""
        live = self.a["sp_state"] != 0
        if owner is not None:
            live &= self.a["sp_owner"] == owner
        return np.flatnonzero(live).tolist()

    # -- leases (see the module header) ------------------------------------------------------------

    def renew(self, owner: int, now: float) -> int:
        """Extend every lease `owner` holds to `now` + its length; returns how many spaces it holds."""
        a = self.a
        mine = (a["sp_state"] != 0) & (a["sp_owner"] == owner) if owner else np.zeros(MAX_SPACES, dtype=bool)
        a["sp_expiry"][mine] = now + a["sp_lease"][mine]
        return int(mine.sum())

    def destroy_if_held(self, sp: int, owner: int, expired_at: float | None = None) -> bool:
        """Destroy sp if `owner` still holds it (and, with expired_at, its lease ended before then)."""
        with self.spaces_lock, self.space_locks[sp]:
            a = self.a
            if not a["sp_state"][sp] or int(a["sp_owner"][sp]) != owner:
                return False  # destroyed, or reused by someone else, meanwhile
            if expired_at is not None and float(a["sp_expiry"][sp]) >= expired_at:
                return False  # renewed meanwhile
            self._destroy_locked(sp)
            return True

    def release(self, owner: int) -> list[int]:
        """Destroy every space `owner` holds (its client is closing); returns their ids. Kept ones stay."""
        if not owner:
            return []
        return [sp for sp in self.spaces(owner) if self.destroy_if_held(sp, owner, None)]

    def expired(self, now: float) -> list[int]:
        a = self.a
        return np.flatnonzero((a["sp_state"] != 0) & (a["sp_owner"] != 0) & (a["sp_expiry"] < now)).tolist()

    def reap(self, now: float) -> list[int]:
        """Destroy every space whose lease ran out before `now` (its client died without closing)."""
        return [sp for sp in self.expired(now) if self.destroy_if_held(sp, int(self.a["sp_owner"][sp]), now)]

    # -- regions ---------------------------------------------------------------------------------

    def regions(self, sp: int) -> list[tuple[int, int, int, str, str]]:
        """(start, end, prot, kind, name) of each region, by address."""
        a = self.a
        return [(int(a["vma_start"][sp, r]), int(a["vma_end"][sp, r]), int(a["vma_prot"][sp, r]),
                 REGION_KINDS[int(a["vma_kind"][sp, r])], _name(a["vma_name"][sp, r]))
                for r in range(int(a["vma_count"][sp]))]

    def _set_regions(self, sp: int, regs: list[tuple[int, int, int, str, str]]) -> None:
        if len(regs) > MAX_REGIONS:
            raise ResourceExhausted(f"space {sp} would have {len(regs)} regions, more than {MAX_REGIONS}")
        a = self.a
        regs = sorted(regs)
        for r, (lo, hi, prot, kind, name) in enumerate(regs):
            a["vma_start"][sp, r], a["vma_end"][sp, r] = lo, hi
            a["vma_prot"][sp, r] = prot
            a["vma_kind"][sp, r] = REGION_KINDS.index(kind)
            a["vma_name"][sp, r] = 0
            raw = name.encode()[:NAME_BYTES]
            a["vma_name"][sp, r, :len(raw)] = np.frombuffer(raw, dtype=np.uint8)
        a["vma_count"][sp] = len(regs)

    def region_at(self, sp: int, addr: int) -> tuple[int, int, int, str, str] | None:
        a = self.a
        n = int(a["vma_count"][sp])
        starts = a["vma_start"][sp, :n]
        i = int(np.searchsorted(starts, addr, side="right")) - 1
        if i >= 0 and addr < int(a["vma_end"][sp, i]):
            return self.regions(sp)[i]
        return None

    def _page_range(self, addr: int, length: int, sp: int) -> tuple[int, int]:
        bits = int(self.a["sp_bits"][sp])
        if length <= 0:
            raise InvalidArgument(f"length {length} must be positive")
        if addr % self.fs:
            raise InvalidArgument(f"address {addr:#x} is not aligned to the {self.fs}-byte page")
        hi = addr + -(-length // self.fs) * self.fs
        if addr < 0 or hi > 1 << bits:
            raise OutOfRange(f"range {addr:#x}..{hi:#x} is outside space {sp}'s {bits}-bit addresses")
        return addr, hi

    def _find_gap(self, sp: int, size: int, kind: str) -> int:
        bits = int(self.a["sp_bits"][sp])
        regs = self.regions(sp)
        margin = self.fs * (16 if bits > 24 else 1)  # page 0 (and a little more) stays unmapped: NULL faults
        if int(self.a["sp_kind"][sp]) == 1:  # hybrid: each kind has its segment
            seg = HYBRID_SEGMENT[kind]
            lo_lim, hi_lim = seg << (bits - 2), (seg + 1) << (bits - 2)
            lo_lim = max(lo_lim, margin if seg == 0 else lo_lim)
        else:
            lo_lim, hi_lim = margin, 1 << bits
        taken = sorted((lo, hi) for lo, hi, *_ in regs if hi > lo_lim and lo < hi_lim)
        if kind in ("stack", "guard"):  # top down, as stacks grow
            top = hi_lim - margin
            for lo, hi in reversed(taken):
                if hi <= top - size:
                    break
                top = min(top, lo)
            start = (top - size) // self.fs * self.fs
            if start >= lo_lim and all(not (lo < start + size and start < hi) for lo, hi in taken):
                return start
        else:
            start = lo_lim
            for lo, hi in taken:
                if start + size <= lo:
                    break
                start = max(start, hi)
            if start + size <= hi_lim:
                return start
        raise ResourceExhausted(f"no free range of {size} bytes for a region of kind {kind} in space {sp}")

    def mmap(self, sp: int, length: int, prot: int = R | W, kind: str = "anon", name: str = "",
             addr: int | None = None, guard: bool = True, huge: bool = False, hugetlb: bool = False) -> int:
        """Map a region; returns its start. A stack gets a guard page below it (its own region).
        huge=True is madvise(MADV_HUGEPAGE): the region may get transparent huge pages (hugepage.py);
        hugetlb=True is MAP_HUGETLB: whole huge pages from the boot-time reservation, never swapped."""
        if not isinstance(prot, int) or not 0 <= prot <= 7:
            raise InvalidArgument(f"prot {prot} must combine R=1, W=2, X=4")
        if hugetlb:
            return self._mmap_hugetlb(sp, length, prot, name, addr)
        return self._mmap(sp, length, prot, kind, name, addr, guard, hugepage.MADV_HUGEPAGE if huge else 0)

    def _mmap(self, sp: int, length: int, prot: int, kind: str, name: str, addr: int | None, guard: bool,
              flags: int) -> int:
        """mmap with the region flags (MADV_HUGEPAGE, MAP_HUGETLB) beside R/W/X."""
        self._check_space(sp)
        if kind not in REGION_KINDS or kind == "guard":
            raise InvalidArgument(f"region kind {kind!r} is not one of code, data, heap, stack, anon")
        if length <= 0:
            raise InvalidArgument(f"length {length} must be positive")
        if prot & (W | X):
            prot |= R  # as on x86: a page that can be written or run can be read
        size = -(-length // self.fs) * self.fs
        with self.space_locks[sp]:
            self._check_space(sp)  # again: a destroy may have come first
            with_guard = kind == "stack" and guard
            total = size + (self.fs if with_guard else 0)
            if addr is None:
                start = self._find_gap(sp, total, kind) + (self.fs if with_guard else 0)
            else:
                start, _ = self._page_range(addr, length, sp)
                if with_guard:
                    self._page_range(start - self.fs, self.fs, sp)
            lo = start - (self.fs if with_guard else 0)
            regs = self.regions(sp)
            for rlo, rhi, _, rkind, rname in regs:
                if rlo < start + size and lo < rhi:
                    raise FailedPrecondition(f"{lo:#x}..{start + size:#x} overlaps region {rname or rkind} "
                                             f"{rlo:#x}..{rhi:#x} in space {sp}")
            new = [(start, start + size, prot | flags, kind, name or kind)]
            if with_guard:
                new.append((lo, start, 0, "guard", f"{name or 'stack'} guard"))
            self._set_regions(sp, regs + new)
            try:
                self.table(sp).prepare(lo >> self.shift, (start + size) >> self.shift)
            except BaseException:
                self._set_regions(sp, regs)  # a table that could not grow: the region was never mapped
                raise
            return start

    def _mmap_hugetlb(self, sp: int, length: int, prot: int, name: str, addr: int | None) -> int:
        self._check_space(sp)
        t = self.table(sp)
        if not isinstance(t, MultiLevelTable) or t.pmd_depth < 0:
            raise InvalidArgument("hugetlb mappings need a multilevel page table (their pages are PMD entries)")
        hsize = t.huge_pages * self.fs
        if length <= 0 or length % hsize:
            raise InvalidArgument(f"a hugetlb mapping is whole huge pages: {length} is not a multiple of {hsize}")
        if addr is not None and addr % hsize:
            raise InvalidArgument(f"a hugetlb mapping starts on a huge page: {addr:#x} is not aligned to {hsize}")
        with self.space_locks[sp]:
            self._check_space(sp)  # again, under the lock: a destroy may have come first
            if addr is None:
                addr = -(-self._find_gap(sp, length + hsize, "anon") // hsize) * hsize
            return self._mmap(sp, length, prot, "anon", name or "hugetlb", addr, False, hugepage.MAP_HUGETLB)

    def _cut(self, sp: int, lo: int, hi: int, prot: int | None) -> None:
        """Remove lo..hi from the regions (prot None) or set its protection, splitting regions."""
        out = []
        for rlo, rhi, rprot, kind, name in self.regions(sp):
            if rhi <= lo or rlo >= hi:
                out.append((rlo, rhi, rprot, kind, name))
                continue
            if rlo < lo:
                out.append((rlo, lo, rprot, kind, name))
            if prot is not None:
                out.append((max(rlo, lo), min(rhi, hi), prot, kind, name))
            if rhi > hi:
                out.append((hi, rhi, rprot, kind, name))
        self._set_regions(sp, out)

    def munmap(self, sp: int, addr: int, length: int) -> int:
        """Unmap lo..hi: pages freed (frames and swap slots), regions cut. Returns pages freed."""
        self._check_space(sp)
        with self.space_locks[sp]:
            self._check_space(sp)  # again: a destroy may have come first
            lo, hi = self._page_range(addr, length, sp)
            self._whole_hugetlb(sp, lo, hi, "munmap")
            hugepage.split_range(self, sp, lo >> self.shift, hi >> self.shift, self.table(sp))
            freed = self._drop_pages(sp, lo >> self.shift, hi >> self.shift)
            self._cut(sp, lo, hi, None)
            guards = [r for r in self.regions(sp) if r[3] == "guard" and r[1] == lo]
            if guards and not any(r[0] == lo and r[3] == "stack" for r in self.regions(sp)):
                self._cut(sp, guards[0][0], guards[0][1], None)  # the stack went: its guard goes too
            self.a["sp_tlbgen"][sp] += 1
            self.stat[S["tlb_shootdowns"]] += 1
            return freed

    def _whole_hugetlb(self, sp: int, lo: int, hi: int, what: str) -> None:
        """A hugetlb region is unmapped or protected in whole huge pages (its pages cannot be split)."""
        hsize = self.tlb.huge_pages * self.fs
        for rlo, rhi, rprot, _, name in self.regions(sp):
            if rprot & hugepage.MAP_HUGETLB and rlo < hi and lo < rhi and (lo % hsize or hi % hsize):
                raise InvalidArgument(f"{what} of {lo:#x}..{hi:#x} cuts the hugetlb region {name}: "
                                      f"unmap or protect whole huge pages ({hsize} bytes, aligned)")

    def discard(self, sp: int, addr: int, length: int) -> int:
        """MADV_DONTNEED: free the pages of addr..addr+length (frames, swap slots) but keep the region;
        the next touch is a minor fault on a zeroed frame. Returns pages freed."""
        self._check_space(sp)
        with self.space_locks[sp]:
            self._check_space(sp)  # again, under the lock: a destroy may have come first
            lo, hi = self._page_range(addr, length, sp)
            hugepage.split_range(self, sp, lo >> self.shift, hi >> self.shift, self.table(sp))
            freed = self._drop_pages(sp, lo >> self.shift, hi >> self.shift)
            self.a["sp_tlbgen"][sp] += 1
            self.stat[S["tlb_shootdowns"]] += 1
            return freed

    def mprotect(self, sp: int, addr: int, length: int, prot: int) -> None:
        self._check_space(sp)
        if not 0 <= prot <= 7:
            raise InvalidArgument(f"prot {prot} must combine R=1, W=2, X=4")
        if prot & (W | X):
            prot |= R
        with self.space_locks[sp]:
            self._check_space(sp)  # again, under the lock: a destroy may have come first
            lo, hi = self._page_range(addr, length, sp)
            for v in range(lo, hi, self.fs):
                if self.region_at(sp, v) is None:
                    raise OutOfRange(f"mprotect of {v:#x}: not mapped in space {sp}")
            self._whole_hugetlb(sp, lo, hi, "mprotect")
            hugepage.split_range(self, sp, lo >> self.shift, hi >> self.shift, self.table(sp))
            self._cut(sp, lo, hi, prot)  # (the region's huge-page advice is dropped with its old protection)
            t = self.table(sp)
            for vpn in range(lo >> self.shift, hi >> self.shift):
                e, _ = t.walk(vpn)
                if e & P.P:
                    e = (e | P.RW) if prot & W else (e & ~P.RW)
                    # PROT_NONE keeps the page but takes the user's access away (U/S = 0: every access faults)
                    t.set(vpn, (e | P.US) if prot & (R | W | X) else (e & ~P.US))
            self.a["sp_tlbgen"][sp] += 1
            self.stat[S["tlb_shootdowns"]] += 1

    def _drop_pages(self, sp: int, lo: int, hi: int) -> int:
        """Free the frames and swap slots of vpns lo..hi-1 and clear their entries (space lock held)."""
        t = self.table(sp)
        a = self.a
        freed = 0
        resident = np.flatnonzero((a["vm_rmap_space"] == sp) & (a["vm_rmap_vpn"] >= lo) & (a["vm_rmap_vpn"] < hi))
        for f in resident.tolist():
            self._release_frame(f, sp)
            self._step("munmap:frame-released")
            freed += 1
        if int(a["sp_stats"][sp, SP_SWAP]):  # the swap entries in range, from one pass over the table
            for e in self._swap_entries(sp, lo, hi):
                self.swap.give(P.swap_slot(e))
                a["sp_stats"][sp, SP_SWAP] -= 1
                freed += 1
        t.clear_range(lo, hi)
        return freed

    def _swap_entries(self, sp: int, lo: int, hi: int) -> list[int]:
        """The swap PTEs of vpns lo..hi-1 (recovery's table walk, which reads each table once)."""
        from memsim.sim.vm.recovery import table_entries

        vpns, ptes = table_entries(self, sp)
        sel = (vpns >= lo) & (vpns < hi) & ((ptes & np.uint64(P.P)) == 0) & ((ptes & np.uint64(P.SW)) != 0)
        return [int(e) for e in ptes[sel].tolist()]

    def _release_frame(self, f: int, sp: int) -> None:
        a = self.a
        if a["vm_huge"][f] == HUGETLB_TAIL:
            return  # released with its head, whole (hugetlb regions are unmapped in whole pages)
        if a["vm_huge"][f] == HUGETLB_HEAD:  # back to the reservation, in one step under the pool's lock
            hp = self.tlb.huge_pages
            with self.pool.lock:
                a["vm_rmap_space"][f:f + hp] = -1
                a["vm_rmap_vpn"][f:f + hp] = -1
            a["sp_stats"][sp, SP_RSS] -= hp
            return
        self._unlist(f)
        slot = int(a["vm_frame_swap"][f])
        if slot >= 0:
            self.swap.give(slot)
            a["vm_frame_swap"][f] = -1
        if a["vm_huge"][f] == HUGE_HEAD and int(a["vm_deposit"][f]) >= 0:  # its reserved table goes too
            self.pool.give(int(a["vm_deposit"][f]))
            a["sp_stats"][sp, SP_PT_FRAMES] -= 1
        a["vm_deposit"][f] = -1
        a["vm_rmap_space"][f] = -1
        a["vm_rmap_vpn"][f] = -1
        a["vm_huge"][f] = 0
        a["sp_stats"][sp, SP_RSS] -= 1
        self.pool.give(f)

    # -- frames ----------------------------------------------------------------------------------

    def _alloc_table_frames(self, n: int) -> int:
        if n == 1:
            return self._take_frame(FRAME_PAGETABLE)
        try:
            return self.pool.take_run(n, FRAME_PAGETABLE)
        except ResourceExhausted:
            if n > self.pool.nframes:
                raise
        self._empty_window(n)  # evict the pages of the cheapest window of n frames, then take it
        return self.pool.take_run(n, FRAME_PAGETABLE)

    def _empty_window(self, n: int) -> None:
        """Swap out every user page in the window of n frames that holds the fewest of them and no
        page table or huge page (what a linear table's contiguous run needs)."""
        a = self.a
        owner = self.mem.frame_owner[self.pool.base:self.pool.base + self.pool.nframes]
        blocked = ((owner == FRAME_PAGETABLE) | (a["vm_huge"] != 0)).astype(np.int64)
        used = (self.pool.free_map == 0).astype(np.int64)
        k = np.ones(n, dtype=np.int64)
        bad = np.convolve(blocked, k, mode="valid")
        cost = np.convolve(used, k, mode="valid") + bad * (self.pool.nframes + 1)
        w = int(np.argmin(cost))
        if bad[w]:
            raise ResourceExhausted(f"no window of {n} frames without page tables in the VM's pool")
        for f in range(w, w + n):
            if not self.pool.free_map[f] and not self.reclaim_frame(f):
                raise ResourceExhausted(f"could not evict frame {f} to make a run of {n} frames")

    def _take_frame(self, owner: int) -> int:
        for _ in range(RECLAIM_TRIES):
            f = self.pool.take(owner)
            if f is not None:
                return f
            self.reclaim_one()
        raise ResourceExhausted("out of memory: no frame could be reclaimed from the VM's pool "
                                f"({self.pool.nframes} frames; every candidate was busy)")

    def reclaim_one(self) -> bool:
        """Evict one page chosen by the policy; True if a frame was freed."""
        a = self.a
        swap_full = False
        for _ in range(RECLAIM_TRIES):
            with self.lru_lock:
                if not len(self.policy):
                    raise ResourceExhausted(
                        f"out of memory: the VM's {self.pool.nframes} frames hold only page tables; "
                        f"map less or give the machine more VM memory")
                f = self.policy.evict()
            self.stat[S["pgscan"]] += 1
            owner, vpn = int(a["vm_rmap_space"][f]), int(a["vm_rmap_vpn"][f])
            if owner < 0:
                continue  # freed since the policy chose it
            lock = self.space_locks[owner]
            if not lock.try_acquire():
                with self.lru_lock:
                    if f not in self.policy and int(a["vm_rmap_space"][f]) == owner:
                        self.policy.insert(f)  # putback_lru_page: try it again later
                self.stat[S["reclaim_busy_skips"]] += 1
                continue
            try:
                if int(a["vm_rmap_space"][f]) != owner or int(a["vm_rmap_vpn"][f]) != vpn:
                    continue  # the frame changed hands before we got the lock
                t = self.table(owner)
                # memory pressure splits a huge page (thp_split_page)
                if a["vm_huge"][f] == HUGE_HEAD and not hugepage.split(self, owner, vpn, t, except_frame=f):
                    with self.lru_lock:
                        if f not in self.policy:
                            self.policy.insert(f)
                    continue
                e, _ = t.walk(vpn)
                if not e & P.P or P.frame_of(e) != self.pool.base + f:
                    continue
                slot = int(a["vm_frame_swap"][f])
                if slot < 0 and e & P.D:
                    try:
                        slot = self.swap.take()
                    except ResourceExhausted:
                        # Swap is full: this page cannot go; a clean one still could (the next candidates).
                        with self.lru_lock:
                            if f not in self.policy:
                                self.policy.insert(f)
                        swap_full = True
                        continue
                self._unlist(f)
                self._swap_out(owner, vpn, f, e, t, slot)
                return True
            finally:
                lock.release()
        if swap_full:
            raise ResourceExhausted(f"out of memory: every frame of the VM's pool is in use and swap is full "
                                    f"({self.swap.slots} slots of {self.fs} bytes)")
        return False

    def reclaim_frame(self, f: int) -> bool:
        """Evict the small page in frame f (for a contiguous run); False if its space is busy, the
        frame changed hands or is part of a huge page. Raises the OOM error if swap is full."""
        a = self.a
        owner, vpn = int(a["vm_rmap_space"][f]), int(a["vm_rmap_vpn"][f])
        if owner < 0:
            return False
        lock = self.space_locks[owner]
        if not lock.try_acquire():
            return False
        try:
            if int(a["vm_rmap_space"][f]) != owner or int(a["vm_rmap_vpn"][f]) != vpn or a["vm_huge"][f]:
                return False
            t = self.table(owner)
            e, _ = t.walk(vpn)
            if not e & P.P or P.frame_of(e) != self.pool.base + f:
                return False
            slot = int(a["vm_frame_swap"][f])
            if slot < 0 and e & P.D:
                slot = self.swap.take()
            self._unlist(f)
            self._swap_out(owner, vpn, f, e, t, slot)
            return True
        finally:
            lock.release()

    def _unlist(self, f: int) -> None:
        """Take frame f out of the policy and out of the reverse map in one step under vm/lru, so that a
        reclaimer putting back a frame it could not lock never sees it half released."""
        with self.lru_lock:
            if f in self.policy:
                self.policy.remove(f)
            self.a["vm_rmap_space"][f] = -1

    def _swap_out(self, sp: int, vpn: int, f: int, e: int, t: PageTable, slot: int) -> None:
        """Unmap the page in frame f: to swap slot `slot` (written only if the page is dirty), or,
        for a never-written zero page (slot -1), nowhere: its next touch zero-fills again."""
        a = self.a
        dirty = bool(e & P.D)
        if slot < 0:
            t.set(vpn, 0)
        else:
            if dirty:
                self.swap.write(slot, self.pool.view(f))
                self._step("reclaim:written")
                self.stat[S["pswpout"]] += 1
                self.stat[S["bytes_swapped_out"]] += self.fs
            t.set(vpn, P.swap_entry(slot))
            a["sp_stats"][sp, SP_SWAP] += 1
        a["vm_frame_swap"][f] = -1
        a["vm_rmap_space"][f] = -1
        a["vm_rmap_vpn"][f] = -1
        a["sp_stats"][sp, SP_RSS] -= 1
        a["sp_tlbgen"][sp] += 1  # shootdown: no core may use a translation to f for this page again
        self.stat[S["tlb_shootdowns"]] += 1
        self.stat[S["pgsteal"]] += 1
        self.pool.give(f)

    # -- the access path -------------------------------------------------------------------------

    def _fault(self, sp: int, addr: int, vpn: int, write: bool, t: PageTable, e: int) -> tuple[int, str]:
        """Handle a fault on vpn; returns (the new PTE, 'minor' or 'major')."""
        region = self.region_at(sp, addr)
        if region is None:
            self.stat[S["segfaults"]] += 1
            raise OutOfRange(f"segmentation fault: {'write to' if write else 'read of'} {addr:#x}, which is not "
                             f"in any region of space {sp}")
        _lo, _hi, prot, kind, name = region
        need = W if write else R
        if not prot & need:
            self.stat[S["protection_faults"]] += 1
            if kind == "guard":
                raise FailedPrecondition(f"segmentation fault: {addr:#x} is in the guard page below the stack "
                                         f"'{name.removesuffix(' guard')}' of space {sp} (a stack overflow)")
            raise FailedPrecondition(f"protection fault: {'write to' if write else 'read of'} {addr:#x} in region "
                                     f"{name} ({prot_text(prot)}) of space {sp}")
        a = self.a
        if e == 0 and prot & hugepage.MAP_HUGETLB:
            self.stat[S["pgfault"]] += 1
            a["sp_stats"][sp, SP_MINFLT] += 1
            return hugepage.fault_hugetlb(self, sp, vpn, region, t, write), "minor"
        if e == 0 and hugepage.eligible(self, sp, region, t):
            huge = hugepage.fault_huge(self, sp, vpn, region, t, write)
            if huge is not None:
                self.stat[S["pgfault"]] += 1
                a["sp_stats"][sp, SP_MINFLT] += 1
                return huge, "minor"
        f = self._take_frame(FRAME_USER)
        self._step("fault:frame-taken")
        kind_of_fault = "minor"
        if P.is_swap(e):
            slot = P.swap_slot(e)
            self.swap.read(slot, self.pool.view(f))
            self._step("fault:swapped-in")
            swap_full = 2 * int(a["vm_meta"][M_SWAP_USED]) > self.swap.slots  # Linux's vm_swap_full()
            a["vm_frame_swap"][f] = -1 if swap_full else slot  # the swap cache: valid until the page is written
            a["sp_stats"][sp, SP_SWAP] -= 1
            self.stat[S["pgmajfault"]] += 1
            self.stat[S["pswpin"]] += 1
            self.stat[S["bytes_swapped_in"]] += self.fs
            a["sp_stats"][sp, SP_MAJFLT] += 1
            kind_of_fault = "major"
        else:
            self.pool.zero(f)
            a["vm_frame_swap"][f] = -1
            a["sp_stats"][sp, SP_MINFLT] += 1
        self.stat[S["pgfault"]] += 1
        new = P.make(self.pool.base + f, bool(prot & W), bool(prot & X)) | P.A
        if kind_of_fault == "major" and a["vm_frame_swap"][f] < 0:
            self.swap.give(P.swap_slot(e))  # swap is half full: the slot goes back, the page counts as dirty
            new |= P.D
        a["vm_rmap_space"][f] = sp
        a["vm_rmap_vpn"][f] = vpn
        a["sp_stats"][sp, SP_RSS] += 1
        t.set(vpn, new)
        with self.lru_lock:
            self.policy.insert(f)
        return new, kind_of_fault

    def _translate(self, sp: int, addr: int, write: bool) -> tuple[int, dict]:
        """The frame (machine-wide) backing addr, faulting it in; and what happened (space lock held)."""
        vpn = addr >> self.shift
        a = self.a
        self.stat[S["accesses"]] += 1
        a["sp_stats"][sp, SP_ACCESSES] += 1
        info = {"tlb_hit": False, "levels": 0, "fault": "none"}
        ent = self.tlb.lookup(sp, vpn)
        t = None
        if ent is not None and (not write or ent.writable):
            self.stat[S["tlb_hit"]] += 1
            a["sp_stats"][sp, SP_TLB_HIT] += 1
            info["tlb_hit"] = True
            frame = ent.frame + (vpn % ent.span if ent.span > 1 else 0)  # a huge entry covers its whole run
            if write and not ent.dirty:  # x86 sets D through a walk on the first write via a clean entry
                t = self.table(sp)
                e, _ = t.walk(vpn)
                t.set(vpn, e | P.D | P.A)  # a swap copy of the page is stale from now on
                ent.dirty = True
        else:
            if ent is None:
                self.stat[S["tlb_miss"]] += 1
                a["sp_stats"][sp, SP_TLB_MISS] += 1
            t = self.table(sp)
            e, levels = t.walk(vpn)
            self.stat[S["pt_walks"]] += 1
            self.stat[S["pt_walk_levels"]] += levels
            info["levels"] = levels
            if not e & P.P or not e & P.US or (write and not e & P.RW):
                if e & P.P:  # present but protected: the region says why
                    region = self.region_at(sp, addr)
                    prot = region[2] if region else 0
                    self.stat[S["protection_faults"]] += 1
                    raise FailedPrecondition(f"protection fault: {'write to' if write else 'read of'} {addr:#x} in "
                                             f"region {region[4] if region else '?'} ({prot_text(prot)}) of space {sp}")
                e, info["fault"] = self._fault(sp, addr, vpn, write, t, e)
            if write and not e & P.D:
                e |= P.D
            if not e & P.A or write:
                t.set(vpn, e | P.A)
            frame = P.frame_of(e)
            gen = int(a["sp_tlbgen"][sp])
            if e & P.PS:
                hp = self.tlb.huge_pages
                self.tlb.fill(sp, vpn, TLBEntry(frame - vpn % hp, bool(e & P.RW), bool(e & P.D), gen, span=hp))
            else:
                self.tlb.fill(sp, vpn, TLBEntry(frame, bool(e & P.RW), bool(e & P.D), gen))
        with self.lru_lock:
            f = frame - self.pool.base
            if a["vm_huge"][f] == HUGE_TAIL:  # a huge page ages as one: its head is in the policy
                f -= f % self.tlb.huge_pages
            if f in self.policy:
                self.policy.hit(f)
        info["frame"] = frame
        return frame, info

    def access(self, sp: int, addr: int, length: int, data: bytes | None = None) -> bytes:
        """Load `length` bytes at addr (data None) or store data there; pages fault in as needed."""
        self._check_space(sp)
        bits = int(self.a["sp_bits"][sp])
        n = length if data is None else len(data)
        if n < 0 or addr < 0 or addr + n > 1 << bits:
            self.stat[S["segfaults"]] += 1
            raise OutOfRange(f"segmentation fault: {addr:#x}+{n} is outside space {sp}'s {bits}-bit addresses")
        out = bytearray()
        if n == 0:
            return b""  # a 0-byte access touches no page
        with self.space_locks[sp]:
            self._check_space(sp)  # again, under the lock: a destroy may have come first
            pos = 0
            while pos < n:
                va = addr + pos
                off = va & (self.fs - 1)
                chunk = min(self.fs - off, n - pos)
                frame, _ = self._translate(sp, va, data is not None)
                start = frame * self.fs + off
                if data is None:
                    out += self.mem.data[start:start + chunk].tobytes()
                else:
                    self.mem.data[start:start + chunk] = np.frombuffer(data, dtype=np.uint8, count=chunk,
                                                                        offset=pos)
                pos += chunk
        return bytes(out)

    def load(self, sp: int, addr: int, length: int) -> bytes:
        return self.access(sp, addr, length)

    def store(self, sp: int, addr: int, data: bytes) -> None:
        self.access(sp, addr, len(data), bytes(data))

    def translate(self, sp: int, addr: int, write: bool = False) -> dict:
        """What the MMU did for one access: frame, levels walked, TLB hit, fault kind."""
        self._check_space(sp)
        bits = int(self.a["sp_bits"][sp])
        if not 0 <= addr < 1 << bits:
            self.stat[S["segfaults"]] += 1
            raise OutOfRange(f"segmentation fault: {addr:#x} is outside space {sp}'s {bits}-bit addresses")
        with self.space_locks[sp]:
            self._check_space(sp)  # again, under the lock: a destroy may have come first
            _, info = self._translate(sp, addr, write)
        info["kind"] = KINDS[int(self.a["sp_kind"][sp])]
        return info

    # -- reports ---------------------------------------------------------------------------------

    def table_bytes(self, sp: int) -> int:
        t = self.table(sp)
        if isinstance(t, InvertedTable):
            from memsim.sim.vm.pt_inverted import ENTRY_BYTES
            return t.entries_used() * ENTRY_BYTES
        return t.table_frames() * self.fs

    def memory_usage(self, sp: int) -> dict[str, int]:
        """Node's process.memoryUsage() names: rss (resident bytes of pages and page tables), heapTotal
        (bytes of heap regions), heapUsed (resident bytes of heap regions), external (resident bytes
        outside the heap)."""
        self._check_space(sp)
        a = self.a
        with self.space_locks[sp]:
            self._check_space(sp)  # again, under the lock: a destroy may have come first
            resident = np.flatnonzero(a["vm_rmap_space"] == sp)
            vpns = a["vm_rmap_vpn"][resident]
            heap_total = heap_used = 0
            for lo, hi, _, kind, _ in self.regions(sp):
                if kind == "heap":
                    heap_total += hi - lo
                    heap_used += int(((vpns >= lo >> self.shift) & (vpns < hi >> self.shift)).sum()) * self.fs
            rss_pages = int(resident.size)
            return {"rss": rss_pages * self.fs + self.table_bytes(sp), "heapTotal": heap_total,
                    "heapUsed": heap_used, "external": rss_pages * self.fs - heap_used,
                    "pageTables": self.table_bytes(sp), "swap": int(a["sp_stats"][sp, SP_SWAP]) * self.fs}

    def memory_map(self, sp: int) -> list[dict]:
        """smaps-like: each region with its size, rss and swap."""
        self._check_space(sp)
        a = self.a
        out = []
        with self.space_locks[sp]:
            self._check_space(sp)  # again, under the lock: a destroy may have come first
            vpns = a["vm_rmap_vpn"][a["vm_rmap_space"] == sp]
            swapped = np.zeros(0, dtype=np.int64)
            if int(a["sp_stats"][sp, SP_SWAP]):  # every swap entry of the table, in one pass
                from memsim.sim.vm.recovery import table_entries

                all_vpns, ptes = table_entries(self, sp)
                swapped = all_vpns[((ptes & np.uint64(P.P)) == 0) & ((ptes & np.uint64(P.SW)) != 0)]
            for lo, hi, prot, kind, name in self.regions(sp):
                v_lo, v_hi = lo >> self.shift, hi >> self.shift
                rss = int(((vpns >= v_lo) & (vpns < v_hi)).sum())
                swap = int(((swapped >= v_lo) & (swapped < v_hi)).sum())
                out.append({"start": lo, "end": hi, "size": hi - lo, "rss": rss * self.fs, "swap": swap * self.fs,
                            "perms": prot_text(prot) + "p", "kind": kind, "name": name,
                            "huge_pages": huge_count(a, sp, v_lo, v_hi)})
        return out

    def space_stats(self, sp: int) -> dict:
        self._check_space(sp)
        with self.space_locks[sp]:  # a destroy (a reaped lease, on any core) may be under way
            self._check_space(sp)
            return self._space_stats(sp)

    def _space_stats(self, sp: int) -> dict:
        a = self.a
        st = a["sp_stats"][sp]
        hits, misses = int(st[SP_TLB_HIT]), int(st[SP_TLB_MISS])
        return {"space": sp, "page_table": KINDS[int(a["sp_kind"][sp])], "bits": int(a["sp_bits"][sp]),
                "name": _name(a["sp_name"][sp]), "page_table_bytes": self.table_bytes(sp),
                "rss_pages": int(st[SP_RSS]), "swap_pages": int(st[SP_SWAP]), "minflt": int(st[SP_MINFLT]),
                "majflt": int(st[SP_MAJFLT]), "tlb_hits": hits, "tlb_misses": misses,
                "tlb_hit_ratio": hits / (hits + misses) if hits + misses else 0.0,
                "accesses": int(st[SP_ACCESSES]), "owner": int(a["sp_owner"][sp]),
                "lease_expiry": float(a["sp_expiry"][sp])}

    def vmstat(self) -> dict[str, int]:
        from memsim.sim.vm.layout import M_SWAP_SLOTS, M_SWAP_USED, VMSTAT
        tot = self.a["vm_stat"].sum(axis=0)
        out = {name: int(tot[i]) for i, name in enumerate(VMSTAT)}
        meta = self.a["vm_meta"]
        out.update({"pool_frames": self.pool.nframes, "free_frames": self.pool.free_frames(),
                    "swap_slots": int(meta[M_SWAP_SLOTS]), "swap_used": int(meta[M_SWAP_USED]),
                    "ipt_frames": int(meta[M_IPT_FRAMES]), "spaces": len(self.spaces()),
                    "page_size": self.fs, "huge_pages": int((self.a["vm_huge"] == HUGE_HEAD).sum()),
                    "hugetlb_pages_total": int((self.a["vm_huge"] == HUGETLB_HEAD).sum()),
                    "hugetlb_pages_free": len(hugepage.hugetlb_free(self)),
                    "thp_mode": int(meta[M_THP])})
        return out
