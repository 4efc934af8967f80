"""Mark-compact's inner loops as compiled kernels: V8's MarkingVisitor (`marking-visitor-inl.h`),
the evacuators' MigrateObject (`mark-compact.cc`), the pointer-updating visitor
(PointersUpdatingVisitor) and the sweeper's RawSweep (`sweeper.cc`).

Every kernel is an njit function (jit.py) over plain arrays, with the direct map's translation
inlined (dm_kernels.py):

    words   the phys segment as int64            dm      the isolate's `v8_dm` row
    shift   log2(frame size)                     wpf     words per frame
    bits    `v8_markbits` (pool-wide)            bitbase pool_base * wpf: an address's mark bit is
                                                         word_index(va) - bitbase
    ctr     int64[NCTR]: the work counters (K_* below), which the callers copy into GcWork

They create no Python objects and allocate nothing (the marking worklist is worklist.py's marking
pool, whose segments the caller publishes and steals between calls), and the same source runs
interpreted under NUMBA_DISABLE_JIT=1. Colours (marking.py): `bits` marked (grey or black),
`black` (`v8_blackbits`) visited.
Objects are walked from a range's start by their sizes; a map word with its low bit clear is a
forwarding address (objects.py), whose size is the copy's: only an aborted evacuation candidate
has such words outside its own loop (mark_compact.py).

Owns nothing: the callers (marking.py, mark_compact.py, sweeper.py) hold the isolate's locker and
say which ranges are walked.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.v8 import worklist as wl
from memsim.sim.v8.dm_kernels import copy_words, test_and_set_bit, test_and_set_bit_atomic, test_bit, word_index
from memsim.sim.v8.jit import atomic_add, njit_kernel
from memsim.sim.v8.layout import CHUNK_HEADER, FREE_LIST_CATEGORIES, HEAP_BASE, OLD_TO_NEW
from memsim.sim.v8.objects import FILLER, FREE_SPACE, JS_ARRAY_BUFFER, JS_OBJECT, header, itype_of, nfields_of, size_of

# ctr columns (K_OVERFLOW: objects greyed while the marking segment had no room: the rescan finds them;
# K_SEEN: objects walked, by evacuate_range (not free space), update_range and sweep_range (all))
K_MARKED, K_WORDS, K_SLOTS, K_MOVED, K_COPIED, K_SEEN, K_UPDATED, K_FREED, K_BLOCKS, K_RECORDED, K_OVERFLOW = range(11)
NCTR = 11
M_EMPTY, M_FULL, M_BUDGET = range(3)  # drain's results
CATEGORIES = np.array(FREE_LIST_CATEGORIES, dtype=np.int64)
MARK_OLD = 2  # array_buffer_sweeper's MARK_OLD: the holder lives in old space after this collection


@njit_kernel
def _header(words: np.ndarray, dm: np.ndarray, at: int, shift: int, wpf: int) -> int:
    """The header of the object at `at`, through its forwarding address if it moved."""
    mw = words[word_index(dm, at, shift, wpf)]
    if (mw & 1) == 0:
        mw = words[word_index(dm, mw, shift, wpf)]
    return mw


@njit_kernel
def _visit(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, bits: np.ndarray, black: np.ndarray,
           bitbase: int, page_shift: int, addr: int, seg: np.ndarray, meta: np.ndarray, local: np.ndarray,
           pg_live: np.ndarray, ext_mark: np.ndarray, ctr: np.ndarray) -> int:
    """Grey the white fields of the grey object at `addr` (MarkingVisitor), each pushed on the task's
    marking segment, then blacken it; a field that finds no room stays grey off the worklist
    (K_OVERFLOW: the caller's rescan finds it). Every bit is set by an atomic `lock or` (V8's
    MarkBit::Set<AccessMode::ATOMIC>), so that helper cores marking concurrently (concurrent_marking.py)
    grey each object once; black comes last, so a task that dies mid-visit leaves the object grey
    for the rescan, and only the task whose bit turned black adds its size to its page's live bytes
    (atomically) and counts it. A live ArrayBuffer marks its extension row. The words visited."""
    mw = words[word_index(dm, addr, shift, wpf)]
    t = itype_of(mw)
    n = nfields_of(mw) if t == JS_OBJECT else 0
    size = size_of(mw)
    for i in range(n):
        w = words[word_index(dm, addr + 8 + 8 * i, shift, wpf)]
        if (w & 1) != 0 and test_and_set_bit_atomic(bits, word_index(dm, w - 1, shift, wpf) - bitbase):
            if wl.room(meta, local, wl.WL_MARKING):
                wl.push(seg, meta, local, wl.WL_MARKING, w - 1)
            else:
                ctr[K_OVERFLOW] += 1
    if t == JS_ARRAY_BUFFER:
        ext_mark[words[word_index(dm, addr + 16, shift, wpf)] >> 32] = MARK_OLD
    if test_and_set_bit_atomic(black, word_index(dm, addr, shift, wpf) - bitbase):
        atomic_add(pg_live, (addr - HEAP_BASE) >> page_shift, size)
        ctr[K_MARKED] += 1
        ctr[K_WORDS] += size >> 3
        ctr[K_SLOTS] += n
    return max(1, size >> 3)


@njit_kernel
def drain(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, bits: np.ndarray, black: np.ndarray,
          bitbase: int, page_shift: int, seg: np.ndarray, meta: np.ndarray, local: np.ndarray, pg_live: np.ndarray,
          ext_mark: np.ndarray, ctr: np.ndarray, budget: int) -> int:
    """Pop grey objects and visit them (MarkCompactCollector::ProcessMarkingWorklist) until the task's
    segments are empty (M_EMPTY: the caller steals or is done), `budget` words have been marked
    (M_BUDGET: an incremental step's end), or the next object's fields might not fit the push
    segment (M_FULL: it goes back on top, the caller publishes the segment and calls again). An
    entry already black (pushed twice: by a rescan and before it) is skipped."""
    done = 0
    while done < budget:
        addr = wl.pop(seg, meta, local, wl.WL_MARKING)
        if addr == 0:
            return M_EMPTY
        b = word_index(dm, addr, shift, wpf) - bitbase
        if test_bit(black, b):
            continue
        mw = words[word_index(dm, addr, shift, wpf)]
        n = nfields_of(mw) if itype_of(mw) == JS_OBJECT else 0
        fill = meta[local[wl.WL_MARKING, wl.L_PUSH], wl.M_FILL]
        if fill > 0 and fill + n > wl.SEG:  # it came from the push segment, so it fits back
            wl.push(seg, meta, local, wl.WL_MARKING, addr)
            return M_FULL
        done += _visit(words, dm, shift, wpf, bits, black, bitbase, page_shift, addr, seg, meta, local, pg_live,
                       ext_mark, ctr)
    return M_BUDGET


@njit_kernel
def push_roots(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, bits: np.ndarray, bitbase: int,
               roots: np.ndarray, start: int, seg: np.ndarray, meta: np.ndarray, local: np.ndarray) -> int:
    """Grey every white object the root words from `start` on point at (MarkRoots), pushing each;
    returns roots.shape[0], or the index where the push segment filled (the caller publishes it)."""
    for k in range(start, roots.shape[0]):
        w = roots[k]
        if (w & 1) != 0 and not test_bit(bits, word_index(dm, w - 1, shift, wpf) - bitbase):
            if not wl.room(meta, local, wl.WL_MARKING):
                return k
            if test_and_set_bit_atomic(bits, word_index(dm, w - 1, shift, wpf) - bitbase):
                wl.push(seg, meta, local, wl.WL_MARKING, w - 1)
    return roots.shape[0]


@njit_kernel
def push_grey(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, bits: np.ndarray, black: np.ndarray,
              bitbase: int, start: int, end: int, seg: np.ndarray, meta: np.ndarray, local: np.ndarray) -> int:
    """The overflow's rescan (V8's old MarkCompactCollector::RefillMarkingDeque): push every grey
    object of [start, end) (marked, not black); `end`, or the address where the push segment
    filled (the caller publishes it and calls again from there)."""
    at = start
    while at < end:
        mw = words[word_index(dm, at, shift, wpf)]
        b = word_index(dm, at, shift, wpf) - bitbase
        if test_bit(bits, b) and not test_bit(black, b):
            if not wl.room(meta, local, wl.WL_MARKING):
                return at
            wl.push(seg, meta, local, wl.WL_MARKING, at)
        at += size_of(mw)
    return end


@njit_kernel
def transfer_colors(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, bits: np.ndarray, black: np.ndarray,
                    bitbase: int, page_shift: int, page: int, lo: int, top: int, current: int, to_lo: int,
                    to_hi: int, pg_live: np.ndarray) -> int:
    """After a scavenge while marking, before from-space is zapped: every forwarded from-space
    object's colour goes to its copy (V8's TransferColor in Scavenger::MigrateObject), and a black
    one promoted counts on its old page's live bytes. Pages from `lo` to `current` (the old
    allocation top's page) are walked, `current` only to `top`. The objects given a colour."""
    n = 0
    at_page = lo
    while at_page <= current:
        end = top if at_page == current else at_page + page
        at = at_page + CHUNK_HEADER
        while at < end:
            mw = words[word_index(dm, at, shift, wpf)]
            if (mw & 1) == 0:  # forwarded: the survivor's size is in its copy's header
                b = word_index(dm, at, shift, wpf) - bitbase
                size = size_of(words[word_index(dm, mw, shift, wpf)])
                if test_bit(bits, b):
                    d = word_index(dm, mw, shift, wpf) - bitbase
                    test_and_set_bit(bits, d)
                    n += 1
                    if test_bit(black, b):
                        test_and_set_bit(black, d)
                        if mw < to_lo or mw >= to_hi:
                            pg_live[(mw - HEAP_BASE) >> page_shift] += size
                at += size
                continue
            at += size_of(mw)
        at_page += page
    return n


@njit_kernel
def update_worklist(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, seg: np.ndarray, meta: np.ndarray,
                    lo: int, hi: int) -> int:
    """MarkingWorklists::Update after a scavenge (UpdateMarkingWorklistAfterYoungGenGC): every entry
    in from-space [lo, hi) becomes its copy's address, or goes if it was not copied (it died);
    every segment is compacted in place. The entries dropped."""
    dropped = 0
    for s in range(seg.shape[0]):
        k = 0
        for j in range(meta[s, wl.M_FILL]):
            e = seg[s, j]
            if lo <= e < hi:
                mw = words[word_index(dm, e, shift, wpf)]
                if (mw & 1) != 0:
                    dropped += 1
                    continue
                e = mw
            seg[s, k] = e
            k += 1
        meta[s, wl.M_FILL] = k
    return dropped


@njit_kernel
def migrate(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, bits: np.ndarray, bitbase: int,
            page_shift: int, src: int, dst: int, size: int, pg_live: np.ndarray, ext_mark: np.ndarray,
            ext_val: int, ctr: np.ndarray) -> None:
    """Move one marked object: copy the body, then write the forwarding word (the copy's address,
    low bit 0), as V8's MigrateObject does. The copy is marked and counted live on its page, so
    the sweeper keeps it."""
    copy_words(words, dm, src, dst, size, shift, wpf)
    words[word_index(dm, src, shift, wpf)] = dst
    test_and_set_bit(bits, word_index(dm, dst, shift, wpf) - bitbase)
    pg_live[(dst - HEAP_BASE) >> page_shift] += size
    if itype_of(words[word_index(dm, dst, shift, wpf)]) == JS_ARRAY_BUFFER:
        ext_mark[words[word_index(dm, dst + 16, shift, wpf)] >> 32] = ext_val
    ctr[K_MOVED] += 1
    ctr[K_COPIED] += size >> 3


@njit_kernel
def evacuate_range(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, bits: np.ndarray, bitbase: int,
                   page_shift: int, start: int, end: int, top: np.ndarray, top_col: int, limit_col: int,
                   used_col: int, pg_live: np.ndarray, ext_mark: np.ndarray, ext_val: int, ctr: np.ndarray) -> int:
    """Move every marked object of [start, end) into the linear allocation area top[top_col] ..
    top[limit_col] (bumping it, and top[used_col] when >= 0). Returns `end` when done, else the
    address of the first object that did not fit: the caller refills the area and moves that one."""
    at = start
    while at < end:
        mw = words[word_index(dm, at, shift, wpf)]
        size = size_of(mw)
        t = itype_of(mw)
        if t != FREE_SPACE and t != FILLER:
            ctr[K_SEEN] += 1
            if test_bit(bits, word_index(dm, at, shift, wpf) - bitbase):
                dst = top[top_col]
                if dst == 0 or dst + size > top[limit_col]:
                    return at
                top[top_col] = dst + size
                if used_col >= 0:
                    top[used_col] += size
                migrate(words, dm, shift, wpf, bits, bitbase, page_shift, at, dst, size, pg_live, ext_mark,
                        ext_val, ctr)
        at += size
    return end


@njit_kernel
def unmark_range(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, bits: np.ndarray, bitbase: int,
                 start: int, end: int) -> int:
    """Clear the mark bits of [start, end) of an aborted candidate (its objects there moved away);
    the bytes that were marked."""
    at, live = start, 0
    while at < end:
        size = size_of(_header(words, dm, at, shift, wpf))
        b = word_index(dm, at, shift, wpf) - bitbase
        if test_bit(bits, b):
            bits[b >> 6] &= ~(np.uint64(1) << np.uint64(b & 63))
            live += size
        at += size
    return live


@njit_kernel
def update_range(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, bits: np.ndarray, bitbase: int,
                 page_shift: int, start: int, end: int, check_marks: bool, new_lo: int, new_hi: int,
                 slots: np.ndarray, pg_slots: np.ndarray, ctr: np.ndarray) -> None:
    """Rewrite every field of the live objects of [start, end) that points at a forwarded object
    to its new address (marked objects only when `check_marks`). A field of an old host that then
    points into new space [new_lo, new_hi) is recorded in OLD_TO_NEW (`slots`, counted per page in
    `pg_slots`, the isolate's pg_slots row flattened: page * 2 + OLD_TO_NEW), both atomically."""
    host_old = not (new_lo <= start < new_hi)
    at = start
    while at < end:
        mw = _header(words, dm, at, shift, wpf)
        size = size_of(mw)
        ctr[K_SEEN] += 1  # a map word walked (work_span.py)
        if itype_of(mw) == JS_OBJECT and (not check_marks or test_bit(bits, word_index(dm, at, shift, wpf) - bitbase)):
            n = nfields_of(mw)
            ctr[K_SLOTS] += n
            for i in range(n):
                k = word_index(dm, at + 8 + 8 * i, shift, wpf)
                w = words[k]
                if w & 1:
                    target = w - 1
                    tm = words[word_index(dm, target, shift, wpf)]
                    if (tm & 1) == 0:
                        target = tm
                        words[k] = tm | 1
                        ctr[K_UPDATED] += 1
                    # atomic: update tasks on other cores record slots of neighbouring objects
                    if host_old and new_lo <= target < new_hi and test_and_set_bit_atomic(slots, k - bitbase):
                        atomic_add(pg_slots, 2 * ((at + 8 + 8 * i - HEAP_BASE) >> page_shift) + OLD_TO_NEW, 1)
                        ctr[K_RECORDED] += 1
        at += size


@njit_kernel
def update_roots(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, roots: np.ndarray) -> int:
    """Rewrite the root words (tagged) that point at a forwarded object; how many were."""
    n = 0
    for k in range(roots.shape[0]):
        w = roots[k]
        if w & 1:
            tm = words[word_index(dm, w - 1, shift, wpf)]
            if (tm & 1) == 0:
                roots[k] = tm | 1
                n += 1
    return n


@njit_kernel
def _free_block(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, start: int, size: int,
                heads: np.ndarray, ctr: np.ndarray) -> None:
    """free_list.free inside a kernel: a FREE_SPACE block on its category (the largest minimum it
    reaches), or a FILLER below the smallest."""
    ctr[K_FREED] += size
    if size < CATEGORIES[0]:
        words[word_index(dm, start, shift, wpf)] = header(FILLER, 0, size - 8)
        return
    c = 0
    while c + 1 < CATEGORIES.shape[0] and CATEGORIES[c + 1] <= size:
        c += 1
    words[word_index(dm, start, shift, wpf)] = header(FREE_SPACE, 0, size - 8)
    words[word_index(dm, start + 8, shift, wpf)] = heads[c]
    heads[c] = start
    ctr[K_BLOCKS] += 1


@njit_kernel
def sweep_range(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, bits: np.ndarray, bitbase: int,
                start: int, end: int, heads: np.ndarray, ctr: np.ndarray) -> None:
    """V8's RawSweep over one page's area: every run of unmarked objects, free blocks and fillers
    between marked objects becomes one free block, threaded on the free list (`heads`)."""
    at, run = start, -1
    while at < end:
        size = size_of(_header(words, dm, at, shift, wpf))
        ctr[K_SEEN] += 1  # a map word walked (work_span.py)
        if test_bit(bits, word_index(dm, at, shift, wpf) - bitbase):
            if run >= 0:
                _free_block(words, dm, shift, wpf, run, at - run, heads, ctr)
                run = -1
        elif run < 0:
            run = at
        at += size
    if run >= 0:
        _free_block(words, dm, shift, wpf, run, end - run, heads, ctr)


@njit_kernel
def evict_free_list(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, heads: np.ndarray,
                    page_shift: int, evict: np.ndarray) -> int:
    """Unlink every free-list block whose page slot has `evict` set (V8's EvictFreeListItems);
    the blocks stay FREE_SPACE objects. How many were unlinked."""
    n = 0
    for c in range(heads.shape[0]):
        prev, node = 0, heads[c]
        while node:
            nxt = words[word_index(dm, node + 8, shift, wpf)]
            if evict[(node - HEAP_BASE) >> page_shift]:
                if prev:
                    words[word_index(dm, prev + 8, shift, wpf)] = nxt
                else:
                    heads[c] = nxt
                n += 1
            else:
                prev = node
            node = nxt
    return n
