"""After a core dies: take back what it held, rebuild what it may have torn, check the heap.

A worker can be killed at any instruction. The kernel releases its fcntl locks, but the
structures those locks guarded may be half updated, and the objects in its private mcache
and its tiny block are nobody's. The supervisor therefore, before it restarts the core:

1. takes every central lock and then the heap lock (the fixed lock order), so no other core
   is inside a shared structure;
2. frees pages whose span record is not live (a span allocation torn in half: mheap writes
   pages first and the record last, so this is the only torn state it can leave);
3. returns the dead core's cached objects (slot_state = CACHED by it) to FREE, marks its
   tiny block retired (freeing it if it holds no live object), frees the tiny block it had
   won (tiny.py) but not yet claimed, and rebuilds every class's span list and free counts
   from the slot states, which are the ground truth;
4. recomputes the heap gauges and the page allocator's index (pagealloc.py) from the page map.

An object in flight inside the dead core (claimed by its malloc but not yet published, or
its free had won the CAS but not yet reached the cache) is ALLOCATED with no size, which
another live core's in-flight operation can look like too; so the slot is taken back only
when it is the one the dead core recorded as in flight (`S_INFLIGHT`), which no other core
can reach (a free or read of an object with no size fails).

`check()` verifies the invariants the concurrency tests rely on and returns what is wrong.
"""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np

from memsim.sim.alloc import layout as L
from memsim.sim.alloc import pagealloc
from memsim.sim.alloc.heap import Heap
from memsim.sim.alloc.sizeclasses import MAX_OBJECTS_PER_SPAN, PAGE_SIZE, table
from memsim.sim.alloc.tiny import BLOCK, RETIRED_MARK, mark_retired


def recover(heap: Heap, dead_core: int | None) -> dict[str, int]:
    """Run with the machine otherwise live. `heap` is any core's view (the supervisor's)."""
    a = heap.a
    with ExitStack() as stack:
        for c in heap.centrals[1:]:
            assert c is not None
            stack.enter_context(c.lock)
        stack.enter_context(heap.mheap.lock)
        torn = _free_torn_pages(a)
        tiny_freed = 0
        in_flight = 0
        if dead_core is not None:
            inflight_word = int(a.core_stats[dead_core, L.S_INFLIGHT])
            in_flight = _reclaim_in_flight(a, dead_core)
            tiny_freed = _retire_tiny_blocks(heap, dead_core) + _free_won_tiny_block(heap, dead_core, inflight_word)
            a.core_stats[dead_core, L.S_TINY_BLOCK_FREES] += tiny_freed
        reclaimed = 0
        dead_state = None if dead_core is None else 1 + dead_core
        for c in heap.centrals[1:]:
            assert c is not None
            reclaimed += c.rebuild(dead_state)
        a.heap_gauges[L.G_INUSE_PAGES] = int(np.count_nonzero(a.page_span[: int(a.heap_gauges[L.G_ARENA_PAGES])] >= 0))
        pagealloc.rebuild(a)  # the dead core may have held the heap lock between a page-map and a summary write
        a.heap_gauges[L.G_RECOVERIES] += 1
    return {"torn_pages": torn, "reclaimed_objects": reclaimed + in_flight, "tiny_blocks_freed": tiny_freed}


def _reclaim_in_flight(a: L.HeapArrays, core: int) -> int:
    """Free the slot the dead core was between ALLOCATED-with-no-size and done with.

    A malloc in flight was never counted, so reclaiming it needs no bookkeeping; a free in
    flight had already won its CAS, so it is counted as the free it was (Frees, or a tiny
    block freed) to keep HeapAlloc and HeapObjects exact.
    """
    word = int(a.core_stats[core, L.S_INFLIGHT])
    a.core_stats[core, L.S_INFLIGHT] = 0
    slot = (word & L.INFLIGHT_SLOT) - 1
    if slot < 0 or a.span_state[slot // MAX_OBJECTS_PER_SPAN] != L.SPAN_SMALL:
        return 0
    if a.slot_state[slot] != L.ALLOCATED or a.obj_size[slot] != 0:
        return 0  # still cached (rebuild takes it back), published, or a tiny block not yet claimed
    a.slot_state[slot] = L.FREE  # rebuild() counts it back into its span
    # The slot ends free. A free that was not yet counted, or a malloc that was, needs one
    # more free on the books; a free already counted or a malloc not yet counted needs none.
    if bool(word & L.INFLIGHT_FREE) != bool(word & L.INFLIGHT_COUNTED):
        if word & L.INFLIGHT_TINY_BLOCK:
            a.core_stats[core, L.S_TINY_BLOCK_FREES] += 1
        else:
            a.core_frees[core, int(a.span_class[slot // MAX_OBJECTS_PER_SPAN])] += 1
    return 1


def _free_torn_pages(a: L.HeapArrays) -> int:
    ps = a.page_span
    used = np.flatnonzero(ps >= 0)
    bases = ps[used]
    torn = used[a.span_state[bases] == L.SPAN_FREE]
    ps[torn] = -1
    return int(torn.size)


def _block_of(slot: int) -> int:
    span, idx = divmod(slot, MAX_OBJECTS_PER_SPAN)
    return (span * PAGE_SIZE + idx * BLOCK) // BLOCK


def _retire_tiny_blocks(heap: Heap, core: int) -> int:
    """Retire the dead core's tiny block the way TinyAllocator.retire() does: by CAS, because a
    live core may be freeing the block's last object at this very moment."""
    a = heap.a
    freed = 0
    held = L.TINY_HELD | core
    for slot in np.flatnonzero(a.obj_size == held).tolist():
        if not heap.obj_words.cas(slot, held, L.TINY_RETIRED):
            continue
        if mark_retired(a, heap.mark_words, heap.obj_words, slot, _block_of(slot)):
            a.slot_state[slot] = L.FREE  # rebuild() counts it back into its span
            freed += 1
    return freed


def _free_won_tiny_block(heap: Heap, core: int, inflight_word: int) -> int:
    """The tiny block the dead core had won (moved its marks to RETIRED_MARK, tiny.py) but not yet
    claimed. Only the block it recorded as in flight can be one; but a live core that won it is in
    the same state until its claim, with the block in its own S_INFLIGHT (set before its marks CAS,
    cleared after the claim), and that core frees it itself. The marks are read before the other
    cores' S_INFLIGHT, so a live winner is seen either still in flight or already done (obj_size 0,
    and the claim below fails)."""
    a = heap.a
    slot = (inflight_word & L.INFLIGHT_SLOT) - 1
    if slot < 0 or not inflight_word & L.INFLIGHT_TINY_BLOCK or \
            a.span_state[slot // MAX_OBJECTS_PER_SPAN] != L.SPAN_SMALL:
        return 0
    if int(a.tiny_marks[_block_of(slot)]) != RETIRED_MARK or int(a.obj_size[slot]) != L.TINY_RETIRED:
        return 0
    others = np.delete(a.core_stats[:, L.S_INFLIGHT], core) & L.INFLIGHT_SLOT
    if np.any(others == slot + 1) or not heap.obj_words.cas(slot, L.TINY_RETIRED, 0):
        return 0
    a.slot_state[slot] = L.FREE
    return 1


def check(heap: Heap, quiescent: bool = True) -> list[str]:
    """Invariants of the heap. With quiescent=True (no core mid-operation, caches released)
    the counts must also balance exactly."""
    a = heap.a
    problems: list[str] = []
    t = table()
    arena = int(a.heap_gauges[L.G_ARENA_PAGES])
    inuse = int(np.count_nonzero(a.page_span[:arena] >= 0))
    if inuse != int(a.heap_gauges[L.G_INUSE_PAGES]):
        problems.append(f"HeapInuse pages {int(a.heap_gauges[L.G_INUSE_PAGES])} != pages mapped to spans {inuse}")
    if np.any(a.page_span[arena:] >= 0):
        problems.append("pages beyond the arena belong to spans")
    problems += pagealloc.check(a)
    for c in t.classes:
        spans = np.flatnonzero((a.span_state == L.SPAN_SMALL) & (a.span_class == c.index))
        listed = set()
        s = int(a.central_head[c.index])
        steps = 0
        while s >= 0 and steps <= len(spans) + 1:
            listed.add(s)
            s = int(a.span_next[s])
            steps += 1
        if steps > len(spans):
            problems.append(f"class {c.size}B: central list is longer than its spans (cycle?)")
        total_free = 0
        for span in spans.tolist():
            lo = span * MAX_OBJECTS_PER_SPAN
            st = a.slot_state[lo:lo + c.objects]
            nfree = int(np.count_nonzero(st == L.FREE))
            total_free += nfree
            if nfree != int(a.span_nfree[span]):
                problems.append(f"span {span} ({c.size}B): nfree {int(a.span_nfree[span])} != free slots {nfree}")
            if (nfree > 0) != (span in listed):
                problems.append(f"span {span} ({c.size}B): listed={span in listed} with {nfree} free objects")
            sizes = a.obj_size[lo:lo + c.objects]
            alloc = st == L.ALLOCATED
            if np.any(sizes[~alloc] != 0):
                problems.append(f"span {span} ({c.size}B): an object that is not allocated has a size")
            if quiescent and np.any(sizes[alloc] == 0):
                problems.append(f"span {span} ({c.size}B): an allocated object has no size")
            if quiescent and np.any((st != L.FREE) & (st != L.ALLOCATED)):
                problems.append(f"span {span} ({c.size}B): objects still cached after caches were released")
        if listed - set(spans.tolist()):
            problems.append(f"class {c.size}B: central list holds spans that are not this class's")
        if total_free != int(a.central_stats[c.index, L.C_NFREE]):
            problems.append(f"class {c.size}B: central free count {int(a.central_stats[c.index, L.C_NFREE])} "
                            f"!= free slots {total_free}")
    return problems


def locked_check(heap: Heap) -> list[str]:
    """check() while holding every central lock and the heap lock, with other cores running.

    Lock-free transitions (CACHED <-> ALLOCATED on another core) cannot break what is checked
    here: an object is FREE only under its class lock, and it has a size only while ALLOCATED.
    """
    with ExitStack() as stack:
        for c in heap.centrals[1:]:
            assert c is not None
            stack.enter_context(c.lock)
        stack.enter_context(heap.mheap.lock)
        return check(heap, quiescent=False)
