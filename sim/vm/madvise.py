"""madvise: Linux's mm/madvise.c; here MADV_DONTNEED (MADV_HUGEPAGE is mmap's `huge`, a region flag).

MADV_DONTNEED frees the pages of a range (frames, swap slots) but keeps its regions: the next
touch is a minor fault on a zeroed frame, as for anonymous memory on Linux. The allocator's
arena in an address space (heapsource.py) gives pages back this way (Go's sysUnused).

Touches: the space's table, counters and `sp_tlbgen` (its lock held); through zap_range the
pool, swap and policy. A hugetlb region is discarded in whole huge pages only, and a range holding
a pinned page not at all (gup.py), both checked first.
"""

from __future__ import annotations

from memsim.sim.vm import hugepage
from memsim.sim.vm.gup import check_unpinned
from memsim.sim.vm.memory import zap_range
from memsim.sim.vm.mm import MM
from memsim.sim.vm.mmap import shootdown
from memsim.sim.vm.vma import page_range, whole_hugetlb


def discard(mm: MM, sp: int, addr: int, length: int) -> int:
    """MADV_DONTNEED over addr..addr+length; returns the pages freed."""
    mm.check_space(sp)
    with mm.locks.space[sp]:
        mm.check_space(sp)  # again, under the lock: a destroy may have come first
        lo, hi = page_range(mm, sp, addr, length)
        whole_hugetlb(mm, sp, lo, hi, "madvise")
        check_unpinned(mm, sp, lo >> mm.shift, hi >> mm.shift, "madvise(MADV_DONTNEED)")
        hugepage.split_range(mm, sp, lo >> mm.shift, hi >> mm.shift, mm.table(sp))
        freed = zap_range(mm, sp, lo >> mm.shift, hi >> mm.shift)
        shootdown(mm, sp)
        return freed
