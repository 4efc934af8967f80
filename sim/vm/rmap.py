"""The reverse map, and a page's frame going back: Linux's mm/rmap.c (page_remove_rmap) with
mm/swap_state.c's free_page_and_swap_cache.

Every user frame knows the page it holds (`vm_rmap_space`, `vm_rmap_vpn`; -1 when it holds
none), which is how reclaim, compaction and recovery go from a frame to the PTE that maps it.

Touches, for a frame of space sp (sp's lock held by the caller): the frame's reverse map, its
swap-cache slot (`vm_frame_swap`, given back through `vm/swap`), its huge-page marks
(`vm_huge`, `vm_deposit`), sp's rss and page-table counts, the policy (`vm/lru`, lru.py) and
the pool (`vm/frames`). A hugetlb page's frames go back to the reservation, never to the pool.

`folio_maybe_dma_pinned` is Linux's name for the question reclaim, compaction, khugepaged and
split ask before they move or drop a page: does a FOLL_PIN pin (gup.py) hold it? A huge page's
pins are counted on its head frame (Linux's folio pincount), so a pinned subpage pins all of it.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.vm.layout import HUGE_FRAMES, HUGE_HEAD, HUGETLB_HEAD, HUGETLB_TAIL, SP_PT_FRAMES, SP_RSS, VMArrays
from memsim.sim.vm.mm import MM


def folio_head(a: VMArrays, f: int) -> int:
    """The frame that carries frame f's pins: its huge page's head (huge pages are aligned runs), or f."""
    return f - f % HUGE_FRAMES if a.vm_huge[f] else f


def folio_maybe_dma_pinned(a: VMArrays, f: int) -> bool:
    """Frame f's page (or the huge page it is part of) is pinned (mm.h folio_maybe_dma_pinned)."""
    return bool(a.vm_pincount[folio_head(a, f)] > 0)


def pinned_mask(a: VMArrays, frames: np.ndarray) -> np.ndarray:
    """For each of `frames` (pool-relative): is it pinned, or part of a pinned huge page."""
    heads = np.where(a.vm_huge[frames] != 0, frames - frames % HUGE_FRAMES, frames)
    return np.asarray(a.vm_pincount[heads] > 0, dtype=bool)


def any_pinned(a: VMArrays, frames: np.ndarray) -> bool:
    """Some frame among `frames` (pool-relative) is pinned, or part of a pinned huge page."""
    return bool(frames.size) and bool(pinned_mask(a, frames).any())


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
