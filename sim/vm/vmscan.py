"""Reclaim: Linux's mm/vmscan.c (shrink_page_list, one page at a time), and the frame allocator it serves.

A fault (or a page table) that finds no free frame reclaims one: the policy (lru.py, under
`vm/lru`) names a victim; its space is locked with a try-lock (Linux's trylock_page: a busy
victim goes back to the policy and the next one is tried, so two cores reclaiming from each
other's spaces cannot deadlock), the victim re-validated (the frame may have been freed or
reused meanwhile), and the page is written to swap if it is dirty or has no copy there (a clean
page read back from swap keeps its slot, Linux's swap cache, and is just dropped; a
never-written zero page is dropped and zero-filled again on its next touch). Its PTE becomes a
swap entry, its space's TLB generation is bumped (the shootdown), and the frame is handed to
the faulting space. Memory pressure splits a huge page first (thp_split_page). A pinned page
(gup.py: FOLL_PIN, a huge page pinned through any subpage) is never evicted, split or emptied out
of a window: it goes back to the policy (`reclaim_pinned_skips`), as Linux's shrink_folio_list
keeps a folio_maybe_dma_pinned folio. gup.py bounds pins to a share of the pool so that reclaim
always has pages left to take.

A major fault reads its page before it asks for a frame (`SwapIn`), so that with frames and swap
both full its own slot can take the victim: a swapped-out page can always come back. (A core
killed inside that exchange loses the faulting page, which is then only in its memory, as a
machine losing power mid swap-in would.)

Touches: the victim's PTE (its space's lock, try-locked), the reverse map, `vm_frame_swap`,
`sp_stats`, `sp_tlbgen`, the pool (vm/frames), swap slots (vm/swap), the policy (vm/lru).
Lock order: the faulting space's lock -> (try) the victim's -> vm/frames, vm/lru, vm/swap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memsim.sim.errors import ResourceExhausted
from memsim.sim.machine.memory import FRAME_PAGETABLE
from memsim.sim.vm import hugepage
from memsim.sim.vm import pte as P
from memsim.sim.vm.frames import window_sums
from memsim.sim.vm.layout import HUGE_HEAD, SP_RSS, SP_SWAP, S
from memsim.sim.vm.mm import MM
from memsim.sim.vm.pagetable import PageTable
from memsim.sim.vm.rmap import clear, folio_maybe_dma_pinned

RECLAIM_TRIES = 64


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


def take_frame(mm: MM, owner: int, swap_in: SwapIn | None = None) -> int:
    """A free frame, reclaiming for it if none is; a swap-in offers its slot to reclaim (SwapIn)."""
    for _ in range(RECLAIM_TRIES):
        f = mm.pool.take(owner)
        if f is not None:
            return f
        reclaim_one(mm, swap_in)
        if swap_in is not None and swap_in.frame >= 0:
            return swap_in.frame  # the victim went to the swap-in's slot and its frame came straight here
    raise ResourceExhausted("out of memory: no frame could be reclaimed from the VM's pool "
                            f"({mm.pool.nframes} frames; every candidate was busy)")


def alloc_table_frames(mm: MM, n: int) -> int:
    """n contiguous frames for a page table, reclaiming pages for them if needed."""
    if n == 1:
        return take_frame(mm, FRAME_PAGETABLE)
    try:
        return mm.pool.take_run(n, FRAME_PAGETABLE)
    except ResourceExhausted:
        if n > mm.pool.nframes:
            raise
    _empty_window(mm, n)  # evict the pages of the cheapest window of n frames, then take it
    return mm.pool.take_run(n, FRAME_PAGETABLE)


def _empty_window(mm: MM, n: int) -> None:
    """Swap out every user page in the window of n frames that holds the fewest of them and no
    page table or huge page (what a linear table's contiguous run needs)."""
    pool = mm.pool
    owner = mm.mem.frame_owner[pool.base:pool.base + pool.nframes]
    blocked = ((owner == FRAME_PAGETABLE) | (mm.a.vm_huge != 0) | (mm.a.vm_pincount > 0)).astype(np.int64)
    used = (pool.free_map == 0).astype(np.int64)
    bad = window_sums(blocked, n)
    cost = window_sums(used, n) + bad * (pool.nframes + 1)
    w = int(np.argmin(cost))
    if bad[w]:
        raise ResourceExhausted(f"no window of {n} frames without page tables or pinned pages in the VM's pool")
    for f in range(w, w + n):
        if not pool.free_map[f] and not reclaim_frame(mm, f):
            raise ResourceExhausted(f"could not evict frame {f} to make a run of {n} frames")


def reclaim_one(mm: MM, swap_in: SwapIn | None = None) -> bool:
    """Evict one page chosen by the policy; True if a frame was freed. When swap is full and the
    victim is dirty, a swap-in's own slot (already read) takes the victim, and the victim's frame
    goes to the swap-in instead of the pool (swap_in.frame), so no other core can take it between."""
    a = mm.a
    swap_full = False
    for _ in range(RECLAIM_TRIES):
        f = mm.lru.evict()
        mm.stat[S["pgscan"]] += 1
        owner, vpn = int(a.vm_rmap_space[f]), int(a.vm_rmap_vpn[f])
        if owner < 0:
            continue  # freed since the policy chose it
        lock = mm.locks.space[owner]
        if not lock.try_acquire():
            mm.lru.putback(f, owner, vpn, still_mapped=True)  # putback_lru_page: try it again later
            mm.stat[S["reclaim_busy_skips"]] += 1
            continue
        try:
            if int(a.vm_rmap_space[f]) != owner or int(a.vm_rmap_vpn[f]) != vpn:
                continue  # the frame changed hands before we got the lock
            if folio_maybe_dma_pinned(a, f):
                # Pinned: it stays, and stays out of the policy until its last unpin puts it back
                # (gup.py), as Linux parks a page it cannot evict on the unevictable list. Put back at
                # once, a policy that ranks it worst again (LFU's lowest count, SIEVE's hand) would
                # hand it to every following try and starve the whole pool of victims.
                mm.stat[S["reclaim_pinned_skips"]] += 1
                continue
            t = mm.table(owner)
            pmd = hugepage.pmd_table(t)
            # memory pressure splits a huge page (thp_split_page)
            if a.vm_huge[f] == HUGE_HEAD and pmd is not None and not hugepage.split(mm, owner, vpn, pmd,
                                                                                    except_frame=f):
                mm.lru.putback(f, owner, vpn)
                continue
            e, _ = t.walk(vpn)
            if not e & P.P or P.frame_of(e) != mm.pool.base + f:
                continue
            slot = int(a.vm_frame_swap[f])
            handover = None
            if slot < 0 and e & P.D:
                try:
                    slot = mm.swap.take()
                except ResourceExhausted:
                    if swap_in is None or swap_in.frame >= 0:
                        # Swap is full: this page cannot go; a clean one still could (the next candidates).
                        mm.lru.putback(f, owner, vpn)
                        swap_full = True
                        continue
                    slot, handover = swap_in.slot, swap_in
                    mm.table(swap_in.sp).set(swap_in.vpn, 0)  # the slot is the victim's from now on
            mm.lru.unlist(f)
            try:
                swap_out(mm, owner, vpn, f, e, t, slot, keep=handover is not None)
            except BaseException:
                # The victim's write failed (an I/O error of the swap file) before anything of it
                # changed (the write comes first in swap_out): it stays resident, and a handed-over
                # slot still holds the faulting page, whose entry points there again.
                if handover is not None:
                    mm.table(handover.sp).set(handover.vpn, P.swap_entry(slot))
                with mm.lru.lock:
                    a.vm_rmap_space[f] = owner  # undo unlist
                    if f not in mm.lru:
                        mm.lru.insert(f, owner, vpn)
                raise
            if handover is not None:
                handover.frame = f
            return True
        finally:
            lock.release()
    if swap_full:
        raise ResourceExhausted(f"out of memory: every frame of the VM's pool is in use and swap is full "
                                f"({mm.swap.slots} slots of {mm.fs} bytes)")
    return False


def reclaim_frame(mm: MM, f: int) -> bool:
    """Evict the small page in frame f (for a contiguous run); False if its space is busy, the
    frame changed hands, is part of a huge page or is pinned. Raises the OOM error if swap is full."""
    a = mm.a
    owner, vpn = int(a.vm_rmap_space[f]), int(a.vm_rmap_vpn[f])
    if owner < 0:
        return False
    lock = mm.locks.space[owner]
    if not lock.try_acquire():
        return False
    try:
        if int(a.vm_rmap_space[f]) != owner or int(a.vm_rmap_vpn[f]) != vpn or a.vm_huge[f] \
                or folio_maybe_dma_pinned(a, f):
            return False
        t = mm.table(owner)
        e, _ = t.walk(vpn)
        if not e & P.P or P.frame_of(e) != mm.pool.base + f:
            return False
        slot = int(a.vm_frame_swap[f])
        if slot < 0 and e & P.D:
            slot = mm.swap.take()
        mm.lru.unlist(f)
        swap_out(mm, owner, vpn, f, e, t, slot)
        return True
    finally:
        lock.release()


def swap_out(mm: MM, sp: int, vpn: int, f: int, e: int, t: PageTable, slot: int, keep: bool = False) -> None:
    """Unmap the page in frame f: to swap slot `slot` (written only if the page is dirty), or,
    for a never-written zero page (slot -1), nowhere: its next touch zero-fills again. With keep,
    the frame stays taken (handed to the swap-in that gave its slot, still a user frame)."""
    a = mm.a
    if slot < 0:
        t.set(vpn, 0)
    else:
        if e & P.D:
            mm.swap.write(slot, mm.pool.view(f))
            mm.step("reclaim:written")
            mm.stat[S["pswpout"]] += 1
            mm.stat[S["bytes_swapped_out"]] += mm.fs
        t.set(vpn, P.swap_entry(slot))
        a.sp_stats[sp, SP_SWAP] += 1
    clear(mm, f)
    a.sp_stats[sp, SP_RSS] -= 1
    a.sp_tlbgen[sp] += 1  # shootdown: no core may use a translation to f for this page again
    mm.stat[S["tlb_shootdowns"]] += 1
    mm.stat[S["pgsteal"]] += 1
    if not keep:
        mm.pool.give(f)
