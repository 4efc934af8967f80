"""The reverse map, and a page's frame going back: Linux's mm/rmap.c (page_remove_rmap) with
mm/swap_state.c's free_page_and_swap_cache.

Every user frame knows the page it holds (`vm_rmap_space`, `vm_rmap_vpn`; -1 when it holds
none), which is how reclaim, compaction and recovery go from a frame to the PTE that maps it.

Touches, for a frame of space sp (sp's lock held by the caller): the frame's reverse map, its
swap-cache slot (`vm_frame_swap`, given back through `vm/swap`), its huge-page marks
(`vm_huge`, `vm_deposit`), sp's rss and page-table counts, the policy (`vm/lru`, lru.py) and
the pool (`vm/frames`). A hugetlb page's frames go back to the reservation, never to the pool.
"""

from __future__ import annotations

from memsim.sim.vm.layout import HUGE_FRAMES, HUGE_HEAD, HUGETLB_HEAD, HUGETLB_TAIL, SP_PT_FRAMES, SP_RSS
from memsim.sim.vm.mm import MM


def release_frame(mm: MM, f: int, sp: int) -> None:
    """Unmap-time release of the page in frame f of space sp (its PTE is cleared by the caller)."""
    a = mm.a
    if a.vm_huge[f] == HUGETLB_TAIL:
        return  # released with its head, whole (hugetlb regions are unmapped in whole pages)
    if a.vm_huge[f] == HUGETLB_HEAD:  # back to the reservation, in one step under the pool's lock
        hp = HUGE_FRAMES
        with mm.pool.lock:
            a.vm_rmap_space[f:f + hp] = -1
            a.vm_rmap_vpn[f:f + hp] = -1
        a.sp_stats[sp, SP_RSS] -= hp
        return
    mm.lru.unlist(f)
    slot = int(a.vm_frame_swap[f])
    if slot >= 0:
        mm.swap.give(slot)
        a.vm_frame_swap[f] = -1
    if a.vm_huge[f] == HUGE_HEAD and int(a.vm_deposit[f]) >= 0:  # its reserved table goes too
        mm.pool.give(int(a.vm_deposit[f]))
        a.sp_stats[sp, SP_PT_FRAMES] -= 1
    a.vm_deposit[f] = -1
    a.vm_rmap_space[f] = -1
    a.vm_rmap_vpn[f] = -1
    a.vm_huge[f] = 0
    a.sp_stats[sp, SP_RSS] -= 1
    mm.pool.give(f)


def clear(mm: MM, f: int) -> None:
    """Frame f holds no page any more (its PTE already points elsewhere or nowhere)."""
    a = mm.a
    a.vm_frame_swap[f] = -1
    a.vm_rmap_space[f] = -1
    a.vm_rmap_vpn[f] = -1
