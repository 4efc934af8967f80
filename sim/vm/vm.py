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
  4. the replacement policy hears of the access, once: a fault is its miss (policy.insert, the
     page is new to it), any other access its hit (policy.hit: the simulator can tell it every
     access, where hardware only sets the PTE's accessed bit), exactly the loop of the offline
     simulator (sim/policies/simulate.py); A/D bits are set in the PTE.

The policy learns each page's identity (`page_fingerprint`: the space's incarnation and the
vpn, for S3-FIFO's ghost) and, before each insertion and eviction, its capacity: the frames
that can hold pages now (free ones plus the pages it holds; page tables and the hugetlb
reservation are not among them), the size the offline simulator calls its cache.

A fault that finds no free frame reclaims one (Linux's shrink_page_list, one page at a time):
the policy (`sim/policies`, over pool frames, under `vm/lru`) names a victim; its space is
locked with a try-lock (see layout.py for why), the victim re-validated (the frame may have
been freed or reused meanwhile), and the page is written to swap if it is dirty or has no
copy there (a clean page read back from swap keeps its slot, Linux's swap cache, and is just
dropped; a never-written zero page is dropped and zero-filled again on its next touch). Its
PTE becomes a swap entry, its space's TLB generation is bumped (the shootdown), and the frame
is handed to the faulting space. A major fault reads its page before it asks for a frame, so
that with frames and swap both full its own slot can take the victim (SwapIn): a swapped-out
page can always come back. (A core killed inside that exchange loses the faulting page, which
is then only in its memory, as a machine losing power mid swap-in would.)

Every call checks everything before it changes anything (regions and their limit, hugetlb
pages, huge-page splits, an access's permissions over its whole range), so a refused call
leaves data, regions and counters as they were. Range calls (mprotect, munmap, madvise, the
reports) walk only what is populated (pagetable.py's entries), never the range page by page:
a 1 TiB mapping costs what it holds.

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
from dataclasses import dataclass

import numpy as np

from memsim.sim.errors import FailedPrecondition, InvalidArgument, NotFound, OutOfRange, ResourceExhausted
from memsim.sim.machine.locks import LockTable
from memsim.sim.machine.memory import FRAME_PAGETABLE, FRAME_USER, PhysicalMemory
from memsim.sim.policies import POLICIES, Policy, fingerprint
from memsim.sim.vm import hugepage
from memsim.sim.vm import pte as P
from memsim.sim.vm.frames import FramePool, window_sums
from memsim.sim.vm.layout import (
    HUGE_FRAMES,
    HUGE_HEAD,
    HUGE_TAIL,
    HUGETLB_HEAD,
    HUGETLB_TAIL,
    M_IPT_FRAMES,
    M_POLICY,
    M_SPACE_SERIAL,
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


@dataclass
class SwapIn:
    """A major fault in progress: its page's slot, already read into `page`. With frames and swap both
    full, reclaim writes its victim into this slot and hands the victim's frame over (`frame`), so a
    swapped-out page can always come back: Linux frees the slot at swap-in (mm/memory.c do_swap_page,
    swap_free) where here the slot is reused at once."""

    sp: int
    vpn: int
    slot: int
    page: np.ndarray
    frame: int = -1


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
        self.tlb = TLB(tlb_entries, tlb_ways, arrays["sp_tlbgen"], huge_pages=HUGE_FRAMES)
        # This core's views of the spaces' tables, by slot, each with the incarnation (sp_serial) it was
        # built for: a view caches what its table was created with (a linear table's first frame, the
        # geometry), so a slot destroyed and created again by another core must not be reached through it.
        self._tables: dict[int, tuple[int, PageTable]] = {}
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
        serial = int(self.a["sp_serial"][sp])
        cached = self._tables.get(sp)
        if cached is not None and cached[0] == serial:
            return cached[1]
        kind = int(self.a["sp_kind"][sp])
        ctx = self._ctx(sp)
        t: PageTable
        if kind == 0:
            t = LinearTable(ctx)
        elif kind == 1:
            t = HybridTable(ctx)
        elif kind == 2:
            t = MultiLevelTable(ctx)
        else:
            t = InvertedTable(ctx, self.ipt_lock, self.swap_lock)
        self._tables[sp] = (serial, t)
        return t

    def _check_space(self, sp: int) -> None:
        if not isinstance(sp, int) or not 0 <= sp < MAX_SPACES or not int(self.a["sp_state"][sp]):
            raise NotFound(f"address space {sp} does not exist (create one with create_space)")

    def _space_shape(self, page_table: str, bits: int | None, levels: int | None,
                     level_bits: int | None) -> tuple[int, int, int]:
        """Every create_space field checked before anything changes: (bits, levels, level_bits).
        levels and level_bits describe a radix tree (x86-64: 4 levels of 9 bits), so only a
        multilevel table has them; the space table stores them as int16, hence the bounds."""
        if page_table not in KINDS:
            raise InvalidArgument(f"page_table {page_table!r} is not one of {', '.join(KINDS)}")
        for field, value in (("bits", bits), ("levels", levels), ("level_bits", level_bits)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise InvalidArgument(f"{field} must be an integer, got {value!r}")
        if bits is None:
            bits = 32 if page_table in ("linear", "hybrid") else 48
        if not self.shift + 2 <= bits <= 57:
            raise InvalidArgument(f"bits (the address width) is {bits}: it must be between {self.shift + 2} "
                                  f"and 57 (0 = the default: 32 for linear and hybrid, 48 otherwise)")
        if page_table != "multilevel":
            for field, value in (("levels", levels), ("level_bits", level_bits)):
                if value is not None:
                    raise InvalidArgument(f"{field} is {value}: only a multilevel page table has levels "
                                          f"(leave {field} unset, or 0, for a {page_table} table)")
            return bits, 1, 9
        if level_bits is None:
            level_bits = 9
        if not 1 <= level_bits <= 16:
            raise InvalidArgument(f"level_bits is {level_bits}: it must be between 1 and 16 (0 = 9, as x86-64)")
        if levels is not None and not 1 <= levels <= 8:
            raise InvalidArgument(f"levels is {levels}: it must be between 1 and 8 (0 = as many as bits needs)")
        vbits = bits - self.shift
        levels = levels or -(-vbits // level_bits)
        if not 1 <= levels <= 8 or vbits - level_bits * (levels - 1) < 1 or vbits > level_bits * levels:
            raise InvalidArgument(f"{levels} levels of {level_bits} bits do not cover a {bits}-bit space "
                                  f"with {self.fs}-byte pages ({vbits} bits of page number)")
        return bits, levels, level_bits

    def create_space(self, page_table: str = "multilevel", bits: int | None = None, levels: int | None = None,
                     level_bits: int | None = None, name: str = "", owner: int = 0, lease: float = 0.0,
                     now: float = 0.0, system: bool = False) -> int:
        """A new address space; levels and level_bits (multilevel only) default to x86-64's 9-bit levels,
        as many as the width needs. owner != 0 holds it on a lease of `lease` seconds from `now` (see
        leases above). system=True makes it the machine's own (the allocator's arena with heap_in_vm):
        see check_client_may_change."""
        bits, levels, level_bits = self._space_shape(page_table, bits, levels, level_bits)
        if not 0 <= owner < 1 << 63 or (owner and not 0 < lease < float("inf")):
            raise InvalidArgument(f"owner {owner} needs a positive, finite lease (got {lease})")
        if not isinstance(name, str):
            raise InvalidArgument(f"name must be a string, got {type(name).__name__}")
        a = self.a
        with self.spaces_lock:
            free = np.flatnonzero(a["sp_state"] == 0)
            if not free.size:
                raise ResourceExhausted(f"all {MAX_SPACES} address spaces are in use")
            sp = int(free[0])
            with self.space_locks[sp]:
                a["sp_kind"][sp] = KINDS.index(page_table)
                a["sp_bits"][sp] = bits
                a["sp_levels"][sp] = levels
                a["sp_level_bits"][sp] = level_bits
                a["sp_stats"][sp] = 0
                a["vma_count"][sp] = 0
                a["sp_name"][sp] = 0
                raw = name.encode()[:NAME_BYTES]
                a["sp_name"][sp, :len(raw)] = np.frombuffer(raw, dtype=np.uint8)
                a["sp_owner"][sp], a["sp_lease"][sp], a["sp_expiry"][sp] = owner, lease, now + lease
                a["sp_system"][sp] = system
                a["sp_tlbgen"][sp] += 1
                a["vm_meta"][M_SPACE_SERIAL] += 1
                a["sp_serial"][sp] = a["vm_meta"][M_SPACE_SERIAL]
                a["sp_hugetlb"][sp] = 0
                ctx = self._ctx(sp)
                if page_table == "linear":
                    LinearTable.create(ctx, bits)
                elif page_table == "hybrid":
                    HybridTable.create(ctx)
                elif page_table == "multilevel":
                    MultiLevelTable.create(ctx, levels, level_bits)
                else:
                    InvertedTable.create(ctx, self.ipt_lock)
                a["sp_state"][sp] = 1
            return sp

    def destroy_space(self, sp: int) -> None:
        self._check_space(sp)
        with self.spaces_lock, self.space_locks[sp]:
            self._check_space(sp)  # again, under the lock: another destroy may have come first
            self._destroy_locked(sp)

    def check_client_may_change(self, sp: int, what: str) -> None:
        """Refuse a client's change (store, mmap, munmap, mprotect, destroy) of one of the machine's own
        spaces: the allocator's arena (heap_in_vm) is changed only by the allocator, through its page
        source, which knows what its bytes mean; a client may still load, translate and read the
        reports, as a process may read /proc/kcore but not write it."""
        if isinstance(sp, int) and 0 <= sp < MAX_SPACES and self.a["sp_system"][sp]:
            raise FailedPrecondition(f"{what} in address space {sp} refused: it is the machine's own (the "
                                     f"allocator's heap arena, --heap-in-vm); clients may load from it, not change it")

    def _destroy_locked(self, sp: int) -> None:
        """Tear down space sp (vm/spaces and its lock held)."""
        a = self.a
        for r in range(int(a["vma_count"][sp])):
            self._drop_pages(sp, int(a["vma_start"][sp, r]) >> self.shift, int(a["vma_end"][sp, r]) >> self.shift)
        self.table(sp).destroy()
        a["vma_count"][sp] = 0
        a["sp_state"][sp] = 0
        a["sp_owner"][sp] = 0
        a["sp_system"][sp] = 0
        a["sp_tlbgen"][sp] += 1
        self._tables.pop(sp, None)

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
        self._reserve_hugetlb(sp, regs)
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

    def hugetlb_pages_of(self, regs: list[tuple[int, int, int, str, str]]) -> int:
        """Huge pages the hugetlb regions among regs reserve (one per huge page they span)."""
        hsize = self.tlb.huge_pages * self.fs
        return sum(-(-(hi - lo) // hsize) for lo, hi, prot, _, _ in regs if prot & hugepage.MAP_HUGETLB)

    def _reserve_hugetlb(self, sp: int, regs: list[tuple[int, int, int, str, str]]) -> None:
        """Reserve the huge pages of sp's hugetlb regions as they will be (every region change comes
        here first), or refuse the change: Linux's hugetlb_reserve_pages, which makes a MAP_HUGETLB
        mmap fail with ENOMEM when the pool cannot cover it instead of a SIGBUS at a later touch.
        Under the pool's lock, which the faults that take reserved pages also hold."""
        a = self.a
        want = self.hugetlb_pages_of(regs)
        had = int(a["sp_hugetlb"][sp])
        if want == had:
            return
        with self.pool.lock:
            if want > had:
                total = int(np.count_nonzero(a["vm_huge"] == HUGETLB_HEAD))
                reserved = int(a["sp_hugetlb"][a["sp_state"] != 0].sum())
                if reserved - had + want > total:
                    if not total:
                        raise ResourceExhausted(
                            f"a hugetlb mapping of {want - had} huge page(s) is refused: there is no hugetlb "
                            f"reservation (vm.nr_hugepages is 0); start the server with --hugetlb-pages N")
                    raise ResourceExhausted(
                        f"a hugetlb mapping of {want - had} more huge page(s) is refused: {reserved} of the {total} "
                        f"huge pages of the reservation (vm.nr_hugepages, --hugetlb-pages) are reserved by "
                        f"hugetlb mappings already; unmap some, or start the server with more")
            a["sp_hugetlb"][sp] = want

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
        huge=True is madvise(MADV_HUGEPAGE): the region may get transparent huge pages (hugepage.py)
        and starts on a huge page; hugetlb=True is MAP_HUGETLB: whole huge pages from the boot-time
        reservation, set aside at mmap (refused if the reservation cannot cover them), never swapped."""
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
                start = self._thp_gap(sp, size, prot | flags, kind)
                if start is None:
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

    def _thp_gap(self, sp: int, size: int, prot: int, kind: str) -> int | None:
        """Where a region that may get transparent huge pages goes: on a huge-page boundary, so that
        its first 2 MiB can be one huge page (Linux's thp_get_unmapped_area: ask for a huge page
        more, round up). None if no huge page can go there (thp never, a table without a PMD, a region
        too small for one and not madvised) or no such gap is left: any gap then does, as in Linux."""
        t = self.table(sp)
        if not hugepage.eligible(self, sp, (0, size, prot, kind, ""), t):
            return None
        hsize = t.huge_pages * self.fs
        if size < hsize and not prot & hugepage.MADV_HUGEPAGE:
            return None
        try:
            gap = self._find_gap(sp, size + hsize, kind)
        except ResourceExhausted:
            return None
        return -(-gap // hsize) * hsize

    def _mmap_hugetlb(self, sp: int, length: int, prot: int, name: str, addr: int | None) -> int:
        self._check_space(sp)
        t = self.table(sp)
        if not isinstance(t, MultiLevelTable) or t.pmd_depth < 0:
            raise InvalidArgument("hugetlb mappings need a multilevel page table (their pages are PMD entries)")
        hugepage.check_hugetlb_span(t, self.fs)
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

    def _cut(self, sp: int, lo: int, hi: int, prot: int | None) -> list[tuple[int, int, int, str, str]]:
        """The regions with lo..hi removed (prot None) or given `prot`, splitting regions; nothing changes.
        A region keeps its MAP_HUGETLB flag through mprotect (Linux keeps VM_HUGETLB on the VMA): its
        pages stay reserved huge pages."""
        out = []
        for rlo, rhi, rprot, kind, name in self.regions(sp):
            if rhi <= lo or rlo >= hi:
                out.append((rlo, rhi, rprot, kind, name))
                continue
            if rlo < lo:
                out.append((rlo, lo, rprot, kind, name))
            if prot is not None:
                out.append((max(rlo, lo), min(rhi, hi), prot | (rprot & hugepage.MAP_HUGETLB), kind, name))
            if rhi > hi:
                out.append((hi, rhi, rprot, kind, name))
        if len(out) > MAX_REGIONS:
            raise ResourceExhausted(
                f"{'munmap' if prot is None else 'mprotect'} of {lo:#x}..{hi:#x} would split a region and leave "
                f"space {sp} with {len(out)} regions, more than {MAX_REGIONS}: change whole regions, or unmap "
                f"some first")
        return out

    def munmap(self, sp: int, addr: int, length: int) -> int:
        """Unmap lo..hi: pages freed (frames and swap slots), regions cut. Returns pages freed.
        Everything is checked (the region limit, hugetlb pages, the splits) before anything changes."""
        self._check_space(sp)
        with self.space_locks[sp]:
            self._check_space(sp)  # again: a destroy may have come first
            lo, hi = self._page_range(addr, length, sp)
            self._whole_hugetlb(sp, lo, hi, "munmap")
            regs = self._cut(sp, lo, hi, None)
            guards = [r for r in regs if r[3] == "guard" and r[1] == lo]
            if guards and not any(r[0] == lo and r[3] == "stack" for r in regs):
                regs.remove(guards[0])  # the stack went: its guard goes too
            t = self.table(sp)
            hugepage.split_range(self, sp, lo >> self.shift, hi >> self.shift, t)
            freed = self._drop_pages(sp, lo >> self.shift, hi >> self.shift)
            self._set_regions(sp, regs)
            self.a["sp_tlbgen"][sp] += 1
            self.stat[S["tlb_shootdowns"]] += 1
            return freed

    def _whole_hugetlb(self, sp: int, lo: int, hi: int, what: str) -> None:
        """A hugetlb region is unmapped, protected or discarded in whole huge pages (its pages cannot be split)."""
        hsize = HUGE_FRAMES * self.fs
        for rlo, rhi, rprot, _, name in self.regions(sp):
            if rprot & hugepage.MAP_HUGETLB and rlo < hi and lo < rhi and (lo % hsize or hi % hsize):
                raise InvalidArgument(f"{what} of {lo:#x}..{hi:#x} cuts the hugetlb region {name}: "
                                      f"{what} whole huge pages ({hsize} bytes, aligned)")

    def discard(self, sp: int, addr: int, length: int) -> int:
        """MADV_DONTNEED: free the pages of addr..addr+length (frames, swap slots) but keep the region;
        the next touch is a minor fault on a zeroed frame. Returns pages freed."""
        self._check_space(sp)
        with self.space_locks[sp]:
            self._check_space(sp)  # again, under the lock: a destroy may have come first
            lo, hi = self._page_range(addr, length, sp)
            self._whole_hugetlb(sp, lo, hi, "madvise")
            hugepage.split_range(self, sp, lo >> self.shift, hi >> self.shift, self.table(sp))
            freed = self._drop_pages(sp, lo >> self.shift, hi >> self.shift)
            self.a["sp_tlbgen"][sp] += 1
            self.stat[S["tlb_shootdowns"]] += 1
            return freed

    def _check_mapped(self, sp: int, lo: int, hi: int, what: str) -> None:
        """Every byte of lo..hi is in some region (mprotect's ENOMEM otherwise), from the regions alone."""
        pos = lo
        for rlo, rhi, *_ in self.regions(sp):  # by address
            if rhi <= pos:
                continue
            if rlo > pos:
                break
            pos = rhi
            if pos >= hi:
                return
        raise OutOfRange(f"{what} of {pos:#x}: not mapped in space {sp}")

    def mprotect(self, sp: int, addr: int, length: int, prot: int) -> None:
        """Set the protection of addr..addr+length, every byte of which must be mapped. Everything is
        checked (mapped, the region limit, hugetlb pages, the splits) before anything changes; the
        entries are rewritten in one walk over what is populated, not page by page over the range."""
        self._check_space(sp)
        if not isinstance(prot, int) or not 0 <= prot <= 7:
            raise InvalidArgument(f"prot {prot} must combine R=1, W=2, X=4")
        if prot & (W | X):
            prot |= R
        with self.space_locks[sp]:
            self._check_space(sp)  # again, under the lock: a destroy may have come first
            lo, hi = self._page_range(addr, length, sp)
            self._check_mapped(sp, lo, hi, "mprotect")
            self._whole_hugetlb(sp, lo, hi, "mprotect")
            regs = self._cut(sp, lo, hi, prot)  # (MADV_HUGEPAGE is dropped with the old protection; MAP_HUGETLB stays)
            t = self.table(sp)
            hugepage.split_range(self, sp, lo >> self.shift, hi >> self.shift, t)
            self._set_regions(sp, regs)
            vpns, ptes = self._entries(sp, lo >> self.shift, hi >> self.shift)
            for vpn, e in zip(vpns.tolist(), ptes.tolist(), strict=True):
                if e & P.P:
                    e = (e | P.RW) if prot & W else (e & ~P.RW)
                    # PROT_NONE keeps the page but takes the user's access away (U/S = 0: every access faults)
                    t.set(vpn, (e | P.US) if prot & (R | W | X) else (e & ~P.US))
            self.a["sp_tlbgen"][sp] += 1
            self.stat[S["tlb_shootdowns"]] += 1

    def _entries(self, sp: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """The non-zero entries of vpns lo..hi-1 (pagetable.py), counted in pagewalk_entries."""
        t = self.table(sp)
        out = t.entries(lo, hi)
        self._count_walk(t)
        return out

    def _count_walk(self, t: PageTable) -> None:
        self.stat[S["pagewalk_entries"]] += t.visited
        t.visited = 0

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
        if int(a["sp_stats"][sp, SP_SWAP]):  # the swap entries in range, from one walk over what is populated
            _, ptes = self._entries(sp, lo, hi)
            for e in ptes[((ptes & np.uint64(P.P)) == 0) & ((ptes & np.uint64(P.SW)) != 0)].tolist():
                self.swap.give(P.swap_slot(int(e)))
                a["sp_stats"][sp, SP_SWAP] -= 1
                freed += 1
        t.clear_range(lo, hi)
        self._count_walk(t)
        return freed

    def _release_frame(self, f: int, sp: int) -> None:
        a = self.a
        if a["vm_huge"][f] == HUGETLB_TAIL:
            return  # released with its head, whole (hugetlb regions are unmapped in whole pages)
        if a["vm_huge"][f] == HUGETLB_HEAD:  # back to the reservation, in one step under the pool's lock
            hp = HUGE_FRAMES
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
        bad = window_sums(blocked, n)
        cost = window_sums(used, n) + bad * (self.pool.nframes + 1)
        w = int(np.argmin(cost))
        if bad[w]:
            raise ResourceExhausted(f"no window of {n} frames without page tables in the VM's pool")
        for f in range(w, w + n):
            if not self.pool.free_map[f] and not self.reclaim_frame(f):
                raise ResourceExhausted(f"could not evict frame {f} to make a run of {n} frames")

    def _take_frame(self, owner: int, swap_in: SwapIn | None = None) -> int:
        """A free frame, reclaiming for it if none is; a swap-in offers its slot to reclaim (SwapIn)."""
        for _ in range(RECLAIM_TRIES):
            f = self.pool.take(owner)
            if f is not None:
                return f
            self.reclaim_one(swap_in)
            if swap_in is not None and swap_in.frame >= 0:
                return swap_in.frame  # the victim went to the swap-in's slot and its frame came straight here
        raise ResourceExhausted("out of memory: no frame could be reclaimed from the VM's pool "
                                f"({self.pool.nframes} frames; every candidate was busy)")

    def reclaim_one(self, swap_in: SwapIn | None = None) -> bool:
        """Evict one page chosen by the policy; True if a frame was freed. When swap is full and the
        victim is dirty, a swap-in's own slot (already read) takes the victim, and the victim's frame
        goes to the swap-in instead of the pool (swap_in.frame), so no other core can take it between."""
        a = self.a
        swap_full = False
        for _ in range(RECLAIM_TRIES):
            with self.lru_lock:
                if not len(self.policy):
                    raise ResourceExhausted(
                        f"out of memory: the VM's {self.pool.nframes} frames hold only page tables; "
                        f"map less or give the machine more VM memory")
                self._size_policy()
                f = self.policy.evict()
            self.stat[S["pgscan"]] += 1
            owner, vpn = int(a["vm_rmap_space"][f]), int(a["vm_rmap_vpn"][f])
            if owner < 0:
                continue  # freed since the policy chose it
            lock = self.space_locks[owner]
            if not lock.try_acquire():
                with self.lru_lock:
                    if f not in self.policy and int(a["vm_rmap_space"][f]) == owner:
                        self._insert(f, owner, vpn)  # putback_lru_page: try it again later
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
                            self._insert(f, owner, vpn)
                    continue
                e, _ = t.walk(vpn)
                if not e & P.P or P.frame_of(e) != self.pool.base + f:
                    continue
                slot = int(a["vm_frame_swap"][f])
                handover = False
                if slot < 0 and e & P.D:
                    try:
                        slot = self.swap.take()
                    except ResourceExhausted:
                        if swap_in is None or swap_in.frame >= 0:
                            # Swap is full: this page cannot go; a clean one still could (the next candidates).
                            with self.lru_lock:
                                if f not in self.policy:
                                    self._insert(f, owner, vpn)
                            swap_full = True
                            continue
                        slot, handover = swap_in.slot, True
                        self.table(swap_in.sp).set(swap_in.vpn, 0)  # the slot is the victim's from now on
                self._unlist(f)
                try:
                    self._swap_out(owner, vpn, f, e, t, slot, keep=handover)
                except BaseException:
                    # The victim's write failed (an I/O error of the swap file) before anything of it
                    # changed (the write comes first in _swap_out): it stays resident, and a handed-over
                    # slot still holds the faulting page, whose entry points there again.
                    if handover:
                        self.table(swap_in.sp).set(swap_in.vpn, P.swap_entry(slot))
                    with self.lru_lock:
                        self.a["vm_rmap_space"][f] = owner  # undo _unlist
                        if f not in self.policy:
                            self._insert(f, owner, vpn)
                    raise
                if handover:
                    swap_in.frame = f
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

    def page_fingerprint(self, sp: int, vpn: int) -> int:
        """The policy's name for page vpn of space sp (base.py's fingerprint). A space slot reused by
        a new space has a new serial, so a policy's memory of evicted pages (S3-FIFO's ghost) dies
        with its space, as Linux's shadow entries live in the mapping itself (mm/workingset.c)."""
        return fingerprint((int(self.a["sp_serial"][sp]), vpn))

    def _size_policy(self, incoming: int = 0) -> None:
        """Tell the policy its capacity (vm/lru held): the frames that can hold pages now, i.e. the
        free ones, those of the pages it holds and `incoming` taken for pages it is about to hold.
        Two-list sizes its active list from it, S3-FIFO its queues; the offline simulator's cache
        size is the same number. (A huge page is one entry: with THP the capacity is a hint.)"""
        cap = min(self.pool.nframes, max(1, self.pool.free_frames() + len(self.policy) + incoming))
        if cap != self.policy.capacity:
            self.policy.set_capacity(cap)

    def _insert(self, f: int, sp: int, vpn: int) -> None:
        """The page vpn of sp in frame f (taken from the pool) is new to the policy (vm/lru held)."""
        self._size_policy(incoming=1)
        self.policy.insert(f, self.page_fingerprint(sp, vpn))

    def admit(self, f: int, sp: int, vpn: int) -> None:
        """A page was faulted, split, collapsed or migrated into frame f: the policy's insertion."""
        with self.lru_lock:
            self._insert(f, sp, vpn)

    def _unlist(self, f: int) -> None:
        """Take frame f out of the policy and out of the reverse map in one step under vm/lru, so that a
        reclaimer putting back a frame it could not lock never sees it half released."""
        with self.lru_lock:
            if f in self.policy:
                self.policy.remove(f)
            self.a["vm_rmap_space"][f] = -1

    def _swap_out(self, sp: int, vpn: int, f: int, e: int, t: PageTable, slot: int, keep: bool = False) -> None:
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
        if not keep:  # (kept: handed to the swap-in that gave its slot, still taken, still a user frame)
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
        swap_in = SwapIn(sp, vpn, P.swap_slot(e), self.swap.read_page(P.swap_slot(e))) if P.is_swap(e) else None
        f = self._take_frame(FRAME_USER, swap_in)
        self._step("fault:frame-taken")
        kind_of_fault = "minor"
        if swap_in is not None:
            slot = swap_in.slot
            self.pool.view(f)[:] = swap_in.page
            self._step("fault:swapped-in")
            swap_full = 2 * int(a["vm_meta"][M_SWAP_USED]) > self.swap.slots  # Linux's vm_swap_full()
            keep_copy = not swap_full and swap_in.frame < 0  # (a victim took the slot: no copy left there)
            a["vm_frame_swap"][f] = slot if keep_copy else -1  # the swap cache: valid until the page is written
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
        if swap_in is not None and a["vm_frame_swap"][f] < 0:
            if swap_in.frame < 0:
                self.swap.give(swap_in.slot)  # swap is half full: the slot goes back, the page counts as dirty
            new |= P.D
        a["vm_rmap_space"][f] = sp
        a["vm_rmap_vpn"][f] = vpn
        a["sp_stats"][sp, SP_RSS] += 1
        t.set(vpn, new)
        self.admit(f, sp, vpn)
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
        if info["fault"] == "none":  # a fault was the policy's miss (the insertion), not also a hit
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
            multi_page = (addr & (self.fs - 1)) + n > self.fs  # (one page faults whole or not at all)
            denied = self._first_denied(sp, addr, n, data is not None) if multi_page else None
            if denied is not None and denied > addr:  # it would fail partway: fail before a byte moves
                self._translate(sp, denied, data is not None)  # raises that page's own fault
                raise FailedPrecondition(f"{addr:#x}+{n} is not all accessible in space {sp}")  # (not reached)
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

    def _first_denied(self, sp: int, addr: int, n: int, write: bool) -> int | None:
        """The first address of addr..addr+n that no region allows this access to, from the regions alone."""
        need = W if write else R
        pos, end = addr, addr + n
        a, count = self.a, int(self.a["vma_count"][sp])
        bounds = zip(a["vma_start"][sp, :count].tolist(), a["vma_end"][sp, :count].tolist(),
                     a["vma_prot"][sp, :count].tolist(), strict=True)
        for rlo, rhi, prot in bounds:  # by address
            if rhi <= pos:
                continue
            if rlo > pos or not prot & need:
                return pos
            pos = rhi
            if pos >= end:
                return None
        return pos

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
            if int(a["sp_stats"][sp, SP_SWAP]):  # every swap entry of the table, in one walk over what is populated
                all_vpns, ptes = self._entries(sp, 0, 1 << (int(a["sp_bits"][sp]) - self.shift))
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
