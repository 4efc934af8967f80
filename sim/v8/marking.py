"""The mark bitmap and the marking phase of a Mark-Compact: V8's MarkingBitmap
(`marking.h`) and MarkCompactCollector::MarkLiveObjects (`mark-compact.cc`).

`v8_markbits` has one bit per word of the VM pool, indexed by physical frame: the bit of heap
address va is `dm_kernels.word_index(va) - pool_base * wpf`. A frame belongs to at most one
committed page of one isolate, so the isolate's locker guards its frames' bits, and no
per-isolate sizing is needed. Only an object's first word is ever marked (V8 keeps two bits per
object for its colours; here the worklist supplies the second):

    white   bit clear: not reached (yet); dead once marking ends
    grey    bit set and on the worklist: reached, fields not yet visited
    black   bit set and popped: reached and every field visited

Marking is atomic (the mutator is stopped, as in V8's non-incremental full GC), so no marking
barrier is needed. Roots are the local handles `hs_slot[iso, :hs_top]` and the used global
handles; the marking covers every space (new, old, large objects) by address alone.

Invariants: outside a Mark-Compact every bit of the isolate's frames is clear and `pg_live` is 0
(`clear` runs in the release phase); a page's frames are cleared again when it is uncommitted
(direct_map.py), so a frame's next owner starts white.
"""

from __future__ import annotations

import time

import numpy as np

from memsim.sim.v8 import mark_kernels as mk
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.gc_work import GcWork
from memsim.sim.v8.objects import nfields_of

WORKLIST = 1 << 14  # the marking worklist's first size in entries (V8's worklist segments hold 64 each)


def bitbase(h: HeapContext) -> int:
    """The bit index of the pool's first word: an address's bit is its word index minus this."""
    return h.g.pool_base * h.g.words_per_frame


def is_marked(h: HeapContext, addr: int) -> bool:
    """Whether the object at addr is grey or black (tests and assertions)."""
    b = h.dmap.index(addr) - bitbase(h)
    return bool(int(h.a.v8_markbits[b >> 6]) >> (b & 63) & 1)


def frame_rows(h: HeapContext) -> np.ndarray:
    """The bitmap words (indices into a pool-wide row) of every frame the isolate has committed."""
    frames = h.dmap.dm[h.dmap.dm >= 0].astype(np.int64)
    per = h.g.words_per_frame // 64
    return (((frames - h.g.pool_base) * per)[:, None] + np.arange(per)).ravel()


def clear(h: HeapContext) -> None:
    """Every object of the isolate white again, and no live bytes counted."""
    h.a.v8_markbits[frame_rows(h)] = 0
    h.a.pg_live[h.iso] = 0


def mark(h: HeapContext, work: GcWork) -> None:
    """Mark everything reachable from the roots; `pg_live` gets each page's live bytes and every
    live ArrayBuffer's extension row is marked (it will be in old space after the collection)."""
    t0 = time.perf_counter()
    ctr = np.zeros(mk.NCTR, dtype=np.int64)
    d = h.dmap
    h.a.pg_live[h.iso] = 0  # (already: `clear` ends every Mark-Compact) the counts start from nothing
    roots = h.handles.root_words()
    stack = np.empty(max(WORKLIST, 2 * roots.size), dtype=np.int64)
    sp = 0
    while True:
        sp = mk.mark(d.words, d.dm, d.shift, d.wpf, h.a.v8_markbits, bitbase(h), h.g.page_shift, roots, stack, sp,
                     h.a.pg_live[h.iso], h.a.ext_mark[h.iso], ctr)
        if not sp:
            break
        need = sp + nfields_of(d.load(int(stack[sp - 1])))  # the grey object on top and all its fields
        bigger = np.empty(max(2 * stack.size, need), dtype=np.int64)
        bigger[:sp] = stack[:sp]
        stack, roots = bigger, roots[:0]
    work.objects_marked += int(ctr[mk.K_MARKED])
    work.objects_scanned += int(ctr[mk.K_MARKED])
    work.words_scanned += int(ctr[mk.K_WORDS])
    work.slots_visited += int(ctr[mk.K_SLOTS])
    work.phase_ms["mark"] = (time.perf_counter() - t0) * 1e3
