"""The MMU path and the fault handler: Linux's mm/memory.c (handle_mm_fault, do_anonymous_page,
do_swap_page, zap_page_range).

An access (load, store, translate) of space s, under s's lock (`vm/space/<s>`):
  1. the core's TLB (tlb.py): a hit gives the frame at once;
  2. a miss walks s's page table (pagetable.py and its kinds), counting the levels read;
  3. a present PTE fills the TLB; otherwise the region (vma.py) decides: no region is the
     machine's segmentation fault (OUT_OF_RANGE), a region without the permission is a
     protection fault (FAILED_PRECONDITION, the stack's guard page included); a PTE of 0 is a
     minor fault (a zeroed frame, or a huge page: hugepage.py), a swap entry a major fault (the
     page read back from swap); a fault that finds no free frame reclaims one (vmscan.py);
  4. the replacement policy hears of the access, once: a fault is its miss (the insertion), any
     other access its hit (lru.py), exactly the loop of the offline simulator
     (sim/policies/simulate.py); A/D bits are set in the PTE.

An access over several pages is checked against the regions over its whole range first, so a
refused access leaves data and counters as they were. `zap_range` frees what a range holds
(munmap, MADV_DONTNEED, a destroyed space), walking only what is populated.

Touches: the space's table and `sp_stats` (its lock held), this core's TLB, vmstat row and monitor (monitor.py), the
frame's reverse map and swap-cache slot, and through vmscan/lru the pool, swap and policy.
Counters are Linux's (/proc/vmstat): pgfault, pgmajfault, pswpin, ...; per space in `sp_stats`.
"""

from __future__ import annotations

from typing import Literal, TypedDict

import numpy as np

from memsim.sim.errors import FailedPrecondition, OutOfRange
from memsim.sim.machine.memory import FRAME_USER
from memsim.sim.trace.chunk import Op
from memsim.sim.vm import hugepage
from memsim.sim.vm import pte as P
from memsim.sim.vm.layout import (
    M_SWAP_USED,
    SP_ACCESSES,
    SP_MAJFLT,
    SP_MINFLT,
    SP_RSS,
    SP_SWAP,
    SP_TLB_HIT,
    SP_TLB_MISS,
    S,
)
from memsim.sim.vm.mm import MM
from memsim.sim.vm.pagetable import PageTable
from memsim.sim.vm.rmap import release_frame
from memsim.sim.vm.tlb import TLBEntry
from memsim.sim.vm.vma import MAP_HUGETLB, R, W, X, first_denied, prot_text, region_at
from memsim.sim.vm.vmscan import SwapIn, take_frame

Fault = Literal["none", "minor", "major"]


class Translation(TypedDict):
    """What the MMU did for one access."""

    frame: int  # machine-wide frame number
    levels: int  # page-table reads of the walk (0 on a TLB hit)
    tlb_hit: bool
    fault: Fault
    kind: str  # the space's page-table kind


def _fault(mm: MM, sp: int, addr: int, vpn: int, write: bool, t: PageTable, e: int) -> tuple[int, Fault]:
    """Handle a fault on vpn; returns (the new PTE, 'minor' or 'major')."""
    region = region_at(mm, sp, addr)
    if region is None:
        mm.stat[S["segfaults"]] += 1
        raise OutOfRange(f"segmentation fault: {'write to' if write else 'read of'} {addr:#x}, which is not "
                         f"in any region of space {sp}")
    prot = region.prot
    if not prot & (W if write else R):
        mm.stat[S["protection_faults"]] += 1
        if region.kind == "guard":
            raise FailedPrecondition(f"segmentation fault: {addr:#x} is in the guard page below the stack "
                                     f"'{region.name.removesuffix(' guard')}' of space {sp} (a stack overflow)")
        raise FailedPrecondition(f"protection fault: {'write to' if write else 'read of'} {addr:#x} in region "
                                 f"{region.name} ({prot_text(prot)}) of space {sp}")
    a = mm.a
    if e == 0 and prot & MAP_HUGETLB:
        mm.stat[S["pgfault"]] += 1
        a.sp_stats[sp, SP_MINFLT] += 1
        return hugepage.fault_hugetlb(mm, sp, vpn, region, t, write), "minor"
    pmd = hugepage.eligible(mm, region, t) if e == 0 else None
    if pmd is not None:
        huge = hugepage.fault_huge(mm, sp, vpn, region, pmd, write)
        if huge is not None:
            mm.stat[S["pgfault"]] += 1
            a.sp_stats[sp, SP_MINFLT] += 1
            return huge, "minor"
    swap_in = SwapIn(sp, vpn, P.swap_slot(e), mm.swap.read_page(P.swap_slot(e))) if P.is_swap(e) else None
    f = take_frame(mm, FRAME_USER, swap_in)
    mm.step("fault:frame-taken")
    kind_of_fault: Fault = "minor"
    if swap_in is not None:
        mm.pool.view(f)[:] = swap_in.page
        mm.step("fault:swapped-in")
        swap_full = 2 * int(a.vm_meta[M_SWAP_USED]) > mm.swap.slots  # Linux's vm_swap_full()
        keep_copy = not swap_full and swap_in.frame < 0  # (a victim took the slot: no copy left there)
        a.vm_frame_swap[f] = swap_in.slot if keep_copy else -1  # the swap cache: valid until the page is written
        a.sp_stats[sp, SP_SWAP] -= 1
        mm.stat[S["pgmajfault"]] += 1
        mm.stat[S["pswpin"]] += 1
        mm.stat[S["bytes_swapped_in"]] += mm.fs
        a.sp_stats[sp, SP_MAJFLT] += 1
        kind_of_fault = "major"
    else:
        mm.pool.zero(f)
        a.vm_frame_swap[f] = -1
        a.sp_stats[sp, SP_MINFLT] += 1
    mm.stat[S["pgfault"]] += 1
    new = P.make(mm.pool.base + f, bool(prot & W), bool(prot & X)) | P.A
    if swap_in is not None and a.vm_frame_swap[f] < 0:
        if swap_in.frame < 0:
            mm.swap.give(swap_in.slot)  # swap is half full: the slot goes back, the page counts as dirty
        new |= P.D
    a.vm_rmap_space[f] = sp
    a.vm_rmap_vpn[f] = vpn
    a.sp_stats[sp, SP_RSS] += 1
    t.set(vpn, new)
    mm.lru.admit(f, sp, vpn)
    return new, kind_of_fault


def translate_locked(mm: MM, sp: int, addr: int, write: bool) -> Translation:
    """The frame (machine-wide) backing addr, faulting it in; and what happened (space lock held)."""
    vpn = addr >> mm.shift
    a = mm.a
    if (monitor := mm.monitor) is not None:  # a capture (monitor.py); read once: its end may clear it now
        monitor.record(vpn, mm.fs, Op.SET if write else Op.GET, sp)
    mm.stat[S["accesses"]] += 1
    a.sp_stats[sp, SP_ACCESSES] += 1
    tlb_hit, levels = False, 0
    fault: Fault = "none"
    ent = mm.tlb.lookup(sp, vpn)
    if ent is not None and (not write or ent.writable):
        mm.stat[S["tlb_hit"]] += 1
        a.sp_stats[sp, SP_TLB_HIT] += 1
        tlb_hit = True
        frame = ent.frame + (vpn % ent.span if ent.span > 1 else 0)  # a huge entry covers its whole run
        if write and not ent.dirty:  # x86 sets D through a walk on the first write via a clean entry
            t = mm.table(sp)
            e, _ = t.walk(vpn)
            t.set(vpn, e | P.D | P.A)  # a swap copy of the page is stale from now on
            ent.dirty = True
    else:
        if ent is None:
            mm.stat[S["tlb_miss"]] += 1
            a.sp_stats[sp, SP_TLB_MISS] += 1
        t = mm.table(sp)
        e, levels = t.walk(vpn)
        mm.stat[S["pt_walks"]] += 1
        mm.stat[S["pt_walk_levels"]] += levels
        if not e & P.P or not e & P.US or (write and not e & P.RW):
            if e & P.P:  # present but protected: the region says why
                region = region_at(mm, sp, addr)
                mm.stat[S["protection_faults"]] += 1
                raise FailedPrecondition(
                    f"protection fault: {'write to' if write else 'read of'} {addr:#x} in region "
                    f"{region.name if region else '?'} ({prot_text(region.prot if region else 0)}) of space {sp}")
            e, fault = _fault(mm, sp, addr, vpn, write, t, e)
        if write and not e & P.D:
            e |= P.D
        if not e & P.A or write:
            t.set(vpn, e | P.A)
        frame = P.frame_of(e)
        gen = int(a.sp_tlbgen[sp])
        if e & P.PS:
            hp = mm.tlb.huge_pages
            mm.tlb.fill(sp, vpn, TLBEntry(frame - vpn % hp, bool(e & P.RW), bool(e & P.D), gen, span=hp))
        else:
            mm.tlb.fill(sp, vpn, TLBEntry(frame, bool(e & P.RW), bool(e & P.D), gen))
    if fault == "none":  # a fault was the policy's miss (the insertion), not also a hit
        mm.lru.touch(frame)
    return Translation(frame=frame, levels=levels, tlb_hit=tlb_hit, fault=fault, kind=mm.table(sp).kind)


def access(mm: MM, sp: int, addr: int, length: int, data: bytes | None = None) -> bytes:
    """Load `length` bytes at addr (data None) or store data there; pages fault in as needed."""
    mm.check_space(sp)
    bits = mm.bits(sp)
    n = length if data is None else len(data)
    if n < 0 or addr < 0 or addr + n > 1 << bits:
        mm.stat[S["segfaults"]] += 1
        raise OutOfRange(f"segmentation fault: {addr:#x}+{n} is outside space {sp}'s {bits}-bit addresses")
    out = bytearray()
    if n == 0:
        return b""  # a 0-byte access touches no page
    with mm.locks.space[sp]:
        mm.check_space(sp)  # again, under the lock: a destroy may have come first
        multi_page = (addr & (mm.fs - 1)) + n > mm.fs  # (one page faults whole or not at all)
        denied = first_denied(mm, sp, addr, n, data is not None) if multi_page else None
        if denied is not None and denied > addr:  # it would fail partway: fail before a byte moves
            translate_locked(mm, sp, denied, data is not None)  # raises that page's own fault
            raise FailedPrecondition(f"{addr:#x}+{n} is not all accessible in space {sp}")  # (not reached)
        pos = 0
        while pos < n:
            va = addr + pos
            off = va & (mm.fs - 1)
            chunk = min(mm.fs - off, n - pos)
            start = translate_locked(mm, sp, va, data is not None)["frame"] * mm.fs + off
            if data is None:
                out += mm.mem.data[start:start + chunk].tobytes()
            else:
                mm.mem.data[start:start + chunk] = np.frombuffer(data, dtype=np.uint8, count=chunk, offset=pos)
            pos += chunk
    return bytes(out)


def translate(mm: MM, sp: int, addr: int, write: bool = False) -> Translation:
    """What the MMU did for one access: frame, levels walked, TLB hit, fault kind."""
    mm.check_space(sp)
    bits = mm.bits(sp)
    if not 0 <= addr < 1 << bits:
        mm.stat[S["segfaults"]] += 1
        raise OutOfRange(f"segmentation fault: {addr:#x} is outside space {sp}'s {bits}-bit addresses")
    with mm.locks.space[sp]:
        mm.check_space(sp)  # again, under the lock: a destroy may have come first
        return translate_locked(mm, sp, addr, write)


def zap_range(mm: MM, sp: int, lo: int, hi: int) -> int:
    """Free the frames and swap slots of vpns lo..hi-1 and clear their entries (space lock held)."""
    t = mm.table(sp)
    a = mm.a
    freed = 0
    resident = np.flatnonzero((a.vm_rmap_space == sp) & (a.vm_rmap_vpn >= lo) & (a.vm_rmap_vpn < hi))
    for f in resident.tolist():
        release_frame(mm, f, sp)
        mm.step("munmap:frame-released")
        freed += 1
    if int(a.sp_stats[sp, SP_SWAP]):  # the swap entries in range, from one walk over what is populated
        _, ptes = mm.entries(sp, lo, hi)
        for e in ptes[((ptes & np.uint64(P.P)) == 0) & ((ptes & np.uint64(P.SW)) != 0)].tolist():
            mm.swap.give(P.swap_slot(int(e)))
            a.sp_stats[sp, SP_SWAP] -= 1
            freed += 1
    t.clear_range(lo, hi)
    mm.count_walk(t)
    return freed
