"""Pinning pages: Linux's mm/gup.c with FOLL_PIN, pin_user_pages and unpin_user_pages
(Documentation/core-api/pin_user_pages.rst).

A caller that reads and writes a space's pages through their frames directly (a garbage
collector working through the direct map, as a driver's DMA does) pins them first:
`pin_user_pages` faults the range in (a write fault with write=True, so the pages are dirty and a
store through the frame is never lost to a stale swap copy), returns each page's machine-wide
frame (its bytes: `mem.data[frame * frame_size:][:frame_size]`) and holds each page until
`unpin_user_pages`. A huge page is held whole: its pins are counted on its head frame (Linux's
folio pincount), whichever subpages were pinned. While pinned, a page is never reclaimed
(vmscan.py: met by reclaim, it leaves the replacement policy until its last unpin, as Linux parks
such pages on the unevictable list), migrated by compaction, copied away by khugepaged or split
(hugepage.py).

The rules, and why:
- all or nothing: the space (live, not the machine's own arena), npages (1..MAX_PIN_PAGES) and the
  range (page-aligned, inside the space, every page in regions allowing the access: OUT_OF_RANGE
  where nothing is mapped, FAILED_PRECONDITION where the region forbids reading, or writing with
  write=True) are checked before anything changes; a fault or the limit failing partway unpins
  what the call had pinned (the pages it faulted in stay, as on Linux), so a refused call leaves
  every pin count as it was.
- the limit: at most vm_meta[M_PIN_LIMIT] frames of the machine are pinned at once (a pinned huge
  page counts all its frames), a quarter of the pool (PIN_SHARE) from boot. Linux bounds long-term
  pins with RLIMIT_MEMLOCK (per process, 8 MiB by default); here every space shares one pool, so
  the bound is the machine's, a quarter of the frames reclaim can use (the pool less the hugetlb
  reservation), so that three quarters stay for user pages and page tables to be reclaimed from.
  Over it: RESOURCE_EXHAUSTED naming the limit.
  A hugetlb page counts nothing: it is never reclaimed, pinned or not, and its reservation
  (--hugetlb-pages) already bounds it.
  A page's pins are at most PIN_MAX_PER_PAGE (Linux refuses a pin that would overflow the
  folio's count).
- munmap or MADV_DONTNEED of a range holding a pinned page, and a partial munmap or mprotect that
  would split a pinned huge page, are refused with FAILED_PRECONDITION (`check_unpinned`,
  hugepage.split_range). Linux lets munmap go on and the pin alone keeps the page until the
  unpin; here every taken user frame is some mapped page's (recovery's invariant), so a pinned
  page no mapping holds has no representation, and refusing is the honest simpler rule. mprotect
  that splits nothing is allowed, as on Linux: a pin is not a permission. Destroying a space (an
  exit, a reaped lease) releases its pins first (`release_space_pins`): the space goes whatever
  its pin holders think, and their later unpin of those frames is refused.
- a short-term pin (the default) belongs to the core that took it (`vm_pin_core[core]`): an unpin
  by another core is refused, and recovery (recovery.py) releases a dead core's pins. (Linux records
  no pin's holder; its short-term pins last one I/O, and here one core's work.)
- a long-term pin (longterm=True, Linux's FOLL_LONGTERM: pin_user_pages.rst, "Case 1/2") belongs
  to the address space, not to a core: it is counted in `vm_pin_longterm` instead, any core may
  release it (with longterm=True), recovery of a dead core leaves it, and only its unpin or the
  space's destruction ends it. It is what a holder that outlives any one core needs (an isolate's
  managed heap, docs/design/managed-heap.md). Either kind counts in `vm_pincount` and against the
  limit alike, and an unpin releases only pins of its own kind (each frame must hold that many).

Locks: a frame's pin counts (`vm_pincount`, `vm_pin_core`, `vm_pin_longterm`) are guarded by its
space's lock (`vm/space/<i>`), as its reverse map is; the machine's count (`vm_meta[M_PINNED]`) is
changed under `vm/frames`, taken inside the space's lock (layout.py's order). Counters: Linux's
nr_foll_pin_acquired and nr_foll_pin_released (/proc/vmstat), one per page.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from memsim.sim.errors import FailedPrecondition, InvalidArgument, OutOfRange, ResourceExhausted
from memsim.sim.vm.layout import HUGE_FRAMES, HUGE_HEAD, HUGETLB_HEAD, M_PIN_LIMIT, M_PINNED, SYSTEM_ARENA, S, VMArrays
from memsim.sim.vm.memory import translate_locked
from memsim.sim.vm.mm import MM
from memsim.sim.vm.rmap import any_pinned, folio_head
from memsim.sim.vm.vma import first_denied, page_range, prot_text, region_at

PIN_SHARE = 4  # at most 1/PIN_SHARE of the pool's frames pinned at once (vm_meta[M_PIN_LIMIT] at boot)
MAX_PIN_PAGES = 1 << 16  # pages one call may pin (256 MiB of 4 KiB pages); the limit above bounds them too
PIN_MAX_PER_PAGE = (1 << 15) - 1  # pins one page (or huge page) may hold: vm_pin_core, vm_pin_longterm are int16


def folio_frames(a: VMArrays, head: int) -> int:
    """Frames a pin on this head takes from reclaim: a whole transparent huge page, one small page, or
    none for a hugetlb page (never reclaimed anyway: its reservation bounds it, not the pin limit)."""
    huge = int(a.vm_huge[head])
    return HUGE_FRAMES if huge == HUGE_HEAD else 0 if huge == HUGETLB_HEAD else 1


def pinned_frames(a: VMArrays) -> int:
    """Frames the pin counts hold, recounted (what vm_meta[M_PINNED] says; recovery.py checks it)."""
    huge = a.vm_huge[np.flatnonzero(a.vm_pincount > 0)]
    return int(np.where(huge == HUGE_HEAD, HUGE_FRAMES, np.where(huge == HUGETLB_HEAD, 0, 1)).sum())


def _check_range(mm: MM, sp: int, addr: int, npages: int, write: bool) -> None:
    """Every argument of a pin, checked before anything changes (the space's lock held)."""
    if mm.a.sp_system[sp] == SYSTEM_ARENA:
        raise FailedPrecondition(f"pin_user_pages in address space {sp} refused: it is the machine's own (the "
                                 f"allocator's heap arena, --heap-in-vm), whose pages the allocator gives back")
    lo, hi = page_range(mm, sp, addr, npages * mm.fs)
    denied = first_denied(mm, sp, lo, hi - lo, write)
    if denied is None:
        return
    region = region_at(mm, sp, denied)
    if region is None:
        raise OutOfRange(f"pin_user_pages of {lo:#x}..{hi:#x}: {denied:#x} is not mapped in space {sp}")
    raise FailedPrecondition(f"pin_user_pages of {lo:#x}..{hi:#x}: {denied:#x} is in region {region.name} "
                             f"({prot_text(region.prot)}) of space {sp}, which does not allow "
                             f"{'writing (pin with write=False to read)' if write else 'reading'}")


def _check_bools(**flags: object) -> None:
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise InvalidArgument(f"{name} must be a bool, got {value!r}")


def _pin(mm: MM, head: int, longterm: bool) -> None:
    a = mm.a
    if int(a.vm_pincount[head]) >= PIN_MAX_PER_PAGE:
        raise ResourceExhausted(f"frame {mm.pool.base + head} already holds {PIN_MAX_PER_PAGE} pins, "
                                f"the most one page may hold")
    if not a.vm_pincount[head]:
        n = folio_frames(a, head)
        with mm.pool.lock:
            pinned, limit = int(a.vm_meta[M_PINNED]), int(a.vm_meta[M_PIN_LIMIT])
            if pinned + n > limit:
                raise ResourceExhausted(
                    f"pin_user_pages refused: {pinned} of the VM's {mm.pool.nframes} frames are pinned and "
                    f"{n} more would pass the machine's pin limit of {limit} frames (1/{PIN_SHARE} of the pool less "
                    f"its hugetlb reservation, vm_meta[M_PIN_LIMIT]; Linux's RLIMIT_MEMLOCK); unpin some first")
            a.vm_meta[M_PINNED] = pinned + n
    if longterm:
        a.vm_pin_longterm[head] += 1
    else:
        a.vm_pin_core[mm.core, head] += 1
    a.vm_pincount[head] += 1


def _held(mm: MM, head: int, longterm: bool) -> int:
    """Pins of the kind an unpin may release on this head: the space's long-term ones, or this core's."""
    return int(mm.a.vm_pin_longterm[head] if longterm else mm.a.vm_pin_core[mm.core, head])


def _unpin(mm: MM, head: int, longterm: bool) -> None:
    a = mm.a
    a.vm_pincount[head] -= 1
    if longterm:
        a.vm_pin_longterm[head] -= 1
    else:
        a.vm_pin_core[mm.core, head] -= 1
    if not a.vm_pincount[head]:
        with mm.pool.lock:
            a.vm_meta[M_PINNED] -= folio_frames(a, head)
        _make_evictable(mm, head)


def _make_evictable(mm: MM, head: int) -> None:
    """The last pin is gone: a page reclaim took off the policy while it was pinned (vmscan.py) goes
    back to it (hugetlb pages never age, so they never were in it)."""
    if int(mm.a.vm_huge[head]) != HUGETLB_HEAD:
        mm.lru.putback(head, int(mm.a.vm_rmap_space[head]), int(mm.a.vm_rmap_vpn[head]), still_mapped=True)


def pin_user_pages(mm: MM, sp: int, addr: int, npages: int, write: bool = True, longterm: bool = False) -> list[int]:
    """Fault in and pin the npages pages from addr; their machine-wide frames, in order (see the header).
    longterm=True: FOLL_LONGTERM, pins of the space that outlive this core."""
    if not isinstance(npages, int) or isinstance(npages, bool) or not 1 <= npages <= MAX_PIN_PAGES:
        raise InvalidArgument(f"npages {npages!r} must be an integer from 1 to {MAX_PIN_PAGES}")
    _check_bools(write=write, longterm=longterm)
    mm.check_space(sp)
    with mm.locks.space[sp]:
        mm.check_space(sp)  # again, under the lock: a destroy may have come first
        _check_range(mm, sp, addr, npages, write)
        frames: list[int] = []
        try:
            for i in range(npages):
                frame = translate_locked(mm, sp, addr + i * mm.fs, write)["frame"]
                _pin(mm, folio_head(mm.a, frame - mm.pool.base), longterm)
                frames.append(frame)
                mm.step("gup:pinned")
        except BaseException:
            for frame in frames:  # all or nothing: what this call pinned goes back
                _unpin(mm, folio_head(mm.a, frame - mm.pool.base), longterm)
            raise
        mm.stat[S["nr_foll_pin_acquired"]] += npages
        return frames


def unpin_user_pages(mm: MM, sp: int, frames: list[int], longterm: bool = False) -> None:
    """Release pins this core took on pages of space sp (the frames pin_user_pages returned), or with
    longterm=True long-term pins of sp, whichever core took them. All of them are checked first: each
    must be a page of sp holding such a pin as many times as it is listed; otherwise
    FAILED_PRECONDITION and nothing changes."""
    _check_bools(longterm=longterm)
    if not isinstance(frames, list) or not all(isinstance(f, int) and not isinstance(f, bool) for f in frames):
        raise InvalidArgument("frames must be a list of the frame numbers pin_user_pages returned")
    if len(frames) > MAX_PIN_PAGES:
        raise InvalidArgument(f"{len(frames)} frames: at most {MAX_PIN_PAGES} per call")
    mm.check_space(sp)
    a = mm.a
    with mm.locks.space[sp]:
        mm.check_space(sp)
        heads: Counter[int] = Counter()
        for frame in frames:
            f = frame - mm.pool.base
            if not 0 <= f < mm.pool.nframes or int(a.vm_rmap_space[f]) != sp:
                raise FailedPrecondition(f"unpin_user_pages: frame {frame} holds no page of space {sp} (its space "
                                         f"was destroyed, which released its pins, or it was never pinned)")
            heads[folio_head(a, f)] += 1
        for head, n in heads.items():
            if _held(mm, head, longterm) < n:
                whose = "long-term" if longterm else f"short-term of core {mm.core}"
                raise FailedPrecondition(
                    f"unpin_user_pages: frame {mm.pool.base + head} of space {sp} holds "
                    f"{_held(mm, head, longterm)} {whose} pin(s), fewer than the {n} to release (a short-term pin "
                    f"is released by the core that took it, a long-term one by any core with longterm=True)")
        for head, n in heads.items():
            for _ in range(n):
                _unpin(mm, head, longterm)
        mm.stat[S["nr_foll_pin_released"]] += len(frames)


def release_space_pins(mm: MM, sp: int) -> int:
    """Drop every pin on space sp's pages, whoever took them (a destroy; sp's lock held). Returns pins dropped."""
    a = mm.a
    heads = np.flatnonzero((a.vm_rmap_space == sp) & (a.vm_pincount > 0))
    if not heads.size:
        return 0
    dropped = int(a.vm_pincount[heads].sum())
    held = sum(folio_frames(a, int(h)) for h in heads.tolist())
    a.vm_pin_core[:, heads] = 0
    a.vm_pin_longterm[heads] = 0
    a.vm_pincount[heads] = 0
    with mm.pool.lock:
        a.vm_meta[M_PINNED] -= held
    mm.stat[S["nr_foll_pin_released"]] += dropped
    return dropped


def check_unpinned(mm: MM, sp: int, lo_vpn: int, hi_vpn: int, what: str) -> None:
    """Refuse (FAILED_PRECONDITION) a munmap or MADV_DONTNEED of vpns lo..hi-1 holding a pinned page."""
    a = mm.a
    frames = np.flatnonzero((a.vm_rmap_space == sp) & (a.vm_rmap_vpn >= lo_vpn) & (a.vm_rmap_vpn < hi_vpn))
    if any_pinned(a, frames):
        raise FailedPrecondition(f"{what} of {lo_vpn << mm.shift:#x}..{hi_vpn << mm.shift:#x} in space {sp} refused: "
                                 f"it holds pinned pages (pin_user_pages); unpin them first")
