"""mprotect: Linux's mm/mprotect.c (do_mprotect_pkey, change_protection).

The range must be mapped throughout (ENOMEM otherwise: OUT_OF_RANGE); its regions are cut at
its ends and given the new protection, the huge pages it covers in part are split, and the
present entries of the range are rewritten in one walk over what is populated (not page by
page over the range). PROT_NONE keeps the pages but takes the user's access away (U/S = 0:
every access faults). A region keeps MAP_HUGETLB (Linux keeps VM_HUGETLB) and loses
MADV_HUGEPAGE with its old protection.

Touches: the space's regions, table, `sp_tlbgen` (its lock held). Everything is checked (mapped,
the region limit, hugetlb pages, the splits) before anything changes.
"""

from __future__ import annotations

from memsim.sim.vm import hugepage
from memsim.sim.vm import pte as P
from memsim.sim.vm.mm import MM
from memsim.sim.vm.mmap import shootdown
from memsim.sim.vm.vma import R, W, X, check_mapped, check_prot, cut, page_range, set_regions, whole_hugetlb


def mprotect(mm: MM, sp: int, addr: int, length: int, prot: int) -> None:
    """Set the protection of addr..addr+length, every byte of which must be mapped."""
    mm.check_space(sp)
    prot = check_prot(prot)
    with mm.locks.space[sp]:
        mm.check_space(sp)  # again, under the lock: a destroy may have come first
        lo, hi = page_range(mm, sp, addr, length)
        check_mapped(mm, sp, lo, hi, "mprotect")
        whole_hugetlb(mm, sp, lo, hi, "mprotect")
        regs = cut(mm, sp, lo, hi, prot)
        t = mm.table(sp)
        hugepage.split_range(mm, sp, lo >> mm.shift, hi >> mm.shift, t)
        set_regions(mm, sp, regs)
        vpns, ptes = mm.entries(sp, lo >> mm.shift, hi >> mm.shift)
        for vpn, e in zip(vpns.tolist(), ptes.tolist(), strict=True):
            if e & P.P:
                e = (e | P.RW) if prot & W else (e & ~P.RW)
                t.set(vpn, (e | P.US) if prot & (R | W | X) else (e & ~P.US))
        shootdown(mm, sp)
