"""Regions: Linux's vm_area_struct (mm/vma.c, find_vma in mm/mmap.c), one space's list of VMAs.

A region is a `Region` record (start, end, prot, kind, name), kept in the space's rows of the
`vma_*` arrays sorted by address, at most MAX_REGIONS of them. `prot` holds R/W/X and the
region's flags beside them: MADV_HUGEPAGE (madvise(MADV_HUGEPAGE): may get transparent huge
pages) and MAP_HUGETLB (whole huge pages from the hugetlb reservation), as Linux's vm_flags
hold VM_HUGEPAGE and VM_HUGETLB.

Touches: `vma_*` and `sp_hugetlb` of the space (its lock held by the caller); reading the
hugetlb reservation (`vm_huge`) and the others' `sp_hugetlb` under `vm/frames` (lock order:
vm/space/<i> -> vm/frames).

Invariants: a space's regions never overlap and are sorted; every change of them comes through
`set_regions`, which first reserves the huge pages its hugetlb regions will span (or refuses the
change), so `sp_hugetlb` always equals what the regions span (recovery.py checks it); functions
that only compute a new list (`cut`) change nothing, so a refused call leaves the regions as
they were.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from memsim.sim.errors import InvalidArgument, OutOfRange, ResourceExhausted
from memsim.sim.vm.layout import HUGE_FRAMES, HUGETLB_HEAD, MAX_REGIONS
from memsim.sim.vm.mm import MM, space_name, store_name

R, W, X = 1, 2, 4
MADV_HUGEPAGE = 8  # the region flags beside R/W/X in vma_prot
MAP_HUGETLB = 16
REGION_KINDS = ("code", "data", "heap", "stack", "anon", "guard")


class Region(NamedTuple):
    start: int  # bytes, page-aligned
    end: int
    prot: int  # R/W/X | MADV_HUGEPAGE | MAP_HUGETLB
    kind: str  # one of REGION_KINDS
    name: str


def prot_text(prot: int) -> str:
    return ("r" if prot & R else "-") + ("w" if prot & W else "-") + ("x" if prot & X else "-")


def check_prot(prot: object) -> int:
    """A protection from a caller: R/W/X only; W or X imply R, as on x86."""
    if not isinstance(prot, int) or not 0 <= prot <= 7:
        raise InvalidArgument(f"prot {prot} must combine R=1, W=2, X=4")
    return prot | R if prot & (W | X) else prot


def regions(mm: MM, sp: int) -> list[Region]:
    """The regions of sp, by address."""
    a = mm.a
    return [Region(int(a.vma_start[sp, r]), int(a.vma_end[sp, r]), int(a.vma_prot[sp, r]),
                   REGION_KINDS[int(a.vma_kind[sp, r])], space_name(a.vma_name[sp, r]))
            for r in range(int(a.vma_count[sp]))]


def region_at(mm: MM, sp: int, addr: int) -> Region | None:
    a = mm.a
    n = int(a.vma_count[sp])
    i = int(np.searchsorted(a.vma_start[sp, :n], addr, side="right")) - 1
    if i >= 0 and addr < int(a.vma_end[sp, i]):
        return regions(mm, sp)[i]
    return None


def set_regions(mm: MM, sp: int, regs: list[Region]) -> None:
    """Make regs the regions of sp (reserving their hugetlb pages first, or refusing)."""
    if len(regs) > MAX_REGIONS:
        raise ResourceExhausted(f"space {sp} would have {len(regs)} regions, more than {MAX_REGIONS}")
    _reserve_hugetlb(mm, sp, regs)
    a = mm.a
    for r, reg in enumerate(sorted(regs)):
        a.vma_start[sp, r], a.vma_end[sp, r] = reg.start, reg.end
        a.vma_prot[sp, r] = reg.prot
        a.vma_kind[sp, r] = REGION_KINDS.index(reg.kind)
        store_name(a.vma_name[sp, r], reg.name)
    a.vma_count[sp] = len(regs)


def hugetlb_pages_of(mm: MM, regs: list[Region]) -> int:
    """Huge pages the hugetlb regions among regs reserve (one per huge page they span)."""
    hsize = mm.tlb.huge_pages * mm.fs
    return sum(-(-(r.end - r.start) // hsize) for r in regs if r.prot & MAP_HUGETLB)


def _reserve_hugetlb(mm: MM, sp: int, regs: list[Region]) -> None:
    """Reserve the huge pages of sp's hugetlb regions as they will be, or refuse the change: Linux's
    hugetlb_reserve_pages, which makes a MAP_HUGETLB mmap fail with ENOMEM when the pool cannot cover
    it instead of a SIGBUS at a later touch. Under the pool's lock, which the faults that take
    reserved pages also hold."""
    a = mm.a
    want = hugetlb_pages_of(mm, regs)
    had = int(a.sp_hugetlb[sp])
    if want == had:
        return
    with mm.pool.lock:
        if want > had:
            total = int(np.count_nonzero(a.vm_huge == HUGETLB_HEAD))
            reserved = int(a.sp_hugetlb[a.sp_state != 0].sum())
            if reserved - had + want > total:
                if not total:
                    raise ResourceExhausted(
                        f"a hugetlb mapping of {want - had} huge page(s) is refused: there is no hugetlb "
                        f"reservation (vm.nr_hugepages is 0); start the server with --hugetlb-pages N")
                raise ResourceExhausted(
                    f"a hugetlb mapping of {want - had} more huge page(s) is refused: {reserved} of the {total} "
                    f"huge pages of the reservation (vm.nr_hugepages, --hugetlb-pages) are reserved by "
                    f"hugetlb mappings already; unmap some, or start the server with more")
        a.sp_hugetlb[sp] = want


def cut(mm: MM, sp: int, lo: int, hi: int, prot: int | None) -> list[Region]:
    """The regions with lo..hi removed (prot None) or given `prot`, splitting regions; nothing changes.
    A region keeps its MAP_HUGETLB flag through mprotect (Linux keeps VM_HUGETLB on the VMA): its
    pages stay reserved huge pages."""
    out: list[Region] = []
    for r in regions(mm, sp):
        if r.end <= lo or r.start >= hi:
            out.append(r)
            continue
        if r.start < lo:
            out.append(r._replace(end=lo))
        if prot is not None:
            out.append(r._replace(start=max(r.start, lo), end=min(r.end, hi), prot=prot | (r.prot & MAP_HUGETLB)))
        if r.end > hi:
            out.append(r._replace(start=hi))
    if len(out) > MAX_REGIONS:
        raise ResourceExhausted(
            f"{'munmap' if prot is None else 'mprotect'} of {lo:#x}..{hi:#x} would split a region and leave "
            f"space {sp} with {len(out)} regions, more than {MAX_REGIONS}: change whole regions, or unmap "
            f"some first")
    return out


def check_mapped(mm: MM, sp: int, lo: int, hi: int, what: str) -> None:
    """Every byte of lo..hi is in some region (mprotect's ENOMEM otherwise), from the regions alone."""
    pos = lo
    for r in regions(mm, sp):  # by address
        if r.end <= pos:
            continue
        if r.start > pos:
            break
        pos = r.end
        if pos >= hi:
            return
    raise OutOfRange(f"{what} of {pos:#x}: not mapped in space {sp}")


def first_denied(mm: MM, sp: int, addr: int, n: int, write: bool) -> int | None:
    """The first address of addr..addr+n that no region allows this access to, from the regions alone."""
    need = W if write else R
    pos, end = addr, addr + n
    for r in regions(mm, sp):  # by address
        if r.end <= pos:
            continue
        if r.start > pos or not r.prot & need:
            return pos
        pos = r.end
        if pos >= end:
            return None
    return pos


def whole_hugetlb(mm: MM, sp: int, lo: int, hi: int, what: str) -> None:
    """A hugetlb region is unmapped, protected or discarded in whole huge pages (its pages cannot be split)."""
    hsize = HUGE_FRAMES * mm.fs
    for r in regions(mm, sp):
        if r.prot & MAP_HUGETLB and r.start < hi and lo < r.end and (lo % hsize or hi % hsize):
            raise InvalidArgument(f"{what} of {lo:#x}..{hi:#x} cuts the hugetlb region {r.name}: "
                                  f"{what} whole huge pages ({hsize} bytes, aligned)")


def page_range(mm: MM, sp: int, addr: int, length: int) -> tuple[int, int]:
    """addr..addr+length rounded up to whole pages, checked against the space's width."""
    bits = mm.bits(sp)
    if length <= 0:
        raise InvalidArgument(f"length {length} must be positive")
    if addr % mm.fs:
        raise InvalidArgument(f"address {addr:#x} is not aligned to the {mm.fs}-byte page")
    hi = addr + -(-length // mm.fs) * mm.fs
    if addr < 0 or hi > 1 << bits:
        raise OutOfRange(f"range {addr:#x}..{hi:#x} is outside space {sp}'s {bits}-bit addresses")
    return addr, hi
