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

They create no Python objects and allocate nothing (the marking worklist is the caller's, grown
between calls when full), and the same source runs interpreted under NUMBA_DISABLE_JIT=1.
Objects are walked from a range's start by their sizes; a map word with its low bit clear is a
forwarding address (objects.py), whose size is the copy's: only an aborted evacuation candidate
has such words outside its own loop (mark_compact.py).

Owns nothing: the callers (marking.py, mark_compact.py, sweeper.py) hold the isolate's locker and
say which ranges are walked.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.v8.dm_kernels import copy_words, test_and_set_bit, test_bit, word_index
from memsim.sim.v8.jit import njit_kernel
from memsim.sim.v8.layout import FREE_LIST_CATEGORIES, HEAP_BASE
from memsim.sim.v8.objects import FILLER, FREE_SPACE, JS_ARRAY_BUFFER, JS_OBJECT, header, itype_of, nfields_of, size_of

# ctr columns
K_MARKED, K_WORDS, K_SLOTS, K_MOVED, K_COPIED, K_SEEN, K_UPDATED, K_FREED, K_BLOCKS, K_RECORDED = range(10)
NCTR = 10
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
def mark(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, bits: np.ndarray, bitbase: int,
         page_shift: int, roots: np.ndarray, stack: np.ndarray, sp: int, pg_live: np.ndarray, ext_mark: np.ndarray,
         ctr: np.ndarray) -> int:
    """Tri-colour marking from `roots` (tagged words) to a fixpoint. White = bit clear, grey = bit
    set and on the worklist `stack` (its first `sp` entries), black = bit set and popped (its fields
    visited). A black object's size is added to its page's live bytes; a live ArrayBuffer marks its
    extension row. The caller gives room for every root. Returns 0 when the worklist is empty, else
    its size when the object on top has more fields than the room left: that object stays grey on
    top, and the caller grows `stack` and calls again (with no roots)."""
    for k in range(roots.shape[0]):
        w = roots[k]
        if (w & 1) != 0 and test_and_set_bit(bits, word_index(dm, w - 1, shift, wpf) - bitbase):
            stack[sp] = w - 1
            sp += 1
    while sp > 0:
        addr = stack[sp - 1]
        mw = words[word_index(dm, addr, shift, wpf)]
        t = itype_of(mw)
        n = nfields_of(mw) if t == JS_OBJECT else 0
        if sp - 1 + n > stack.shape[0]:
            return sp
        sp -= 1
        size = size_of(mw)
        pg_live[(addr - HEAP_BASE) >> page_shift] += size
        ctr[K_MARKED] += 1
        ctr[K_WORDS] += size >> 3
        ctr[K_SLOTS] += n
        for i in range(n):
            w = words[word_index(dm, addr + 8 + 8 * i, shift, wpf)]
            if (w & 1) != 0 and test_and_set_bit(bits, word_index(dm, w - 1, shift, wpf) - bitbase):
                stack[sp] = w - 1
                sp += 1
        if t == JS_ARRAY_BUFFER:
            ext_mark[words[word_index(dm, addr + 16, shift, wpf)] >> 32] = MARK_OLD
    return 0


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
    points into new space [new_lo, new_hi) is recorded in OLD_TO_NEW (`slots`, counted per page)."""
    host_old = not (new_lo <= start < new_hi)
    at = start
    while at < end:
        mw = _header(words, dm, at, shift, wpf)
        size = size_of(mw)
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
                    if host_old and new_lo <= target < new_hi and test_and_set_bit(slots, k - bitbase):
                        pg_slots[(at + 8 + 8 * i - HEAP_BASE) >> page_shift] += 1  # the slot's page
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
