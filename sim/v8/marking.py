"""The mark bitmaps and the marking of a Mark-Compact: V8's MarkingBitmap (`marking.h`),
MarkCompactCollector::MarkLiveObjects (`mark-compact.cc`) and the marking half of
IncrementalMarking (`incremental-marking.cc`: Start's MarkRoots, Step, the finalisation).

Two bitmaps, one bit per word of the VM pool, indexed by physical frame: the bit of heap address
va is `dm_kernels.word_index(va) - pool_base * wpf`. A frame belongs to at most one committed page
of one isolate, so the isolate's locker guards its frames' bits. Only an object's first word is
ever marked. V8 keeps two bits per object for its colours; here they are two bitmaps:

    white   `v8_markbits` clear: not reached (yet); dead once marking ends
    grey    `v8_markbits` set, `v8_blackbits` clear: reached, fields not yet visited; normally on
            the marking worklist
    black   both set: reached and every field visited

The marking worklist is worklist.py's marking pool (WL_MARKING), shared segments that outlive a
call, because an incremental cycle spans many calls and scavenges. The pool is fixed: a push that
finds no room, or a segment the pool cannot take, leaves its objects grey and off the worklist,
and the cycle remembers it (iso_marking's M_OVERFLOWED); when the worklist runs dry, every page is
walked and its grey objects pushed again (mark_kernels.push_grey, V8's old RefillMarkingDeque),
which a second bitmap makes possible: without it grey and black would look alike off the list.

Marking is split as V8's is: `start` (the counts zeroed, the worklist emptied, the roots greyed:
MarkRoots), `step(budget)` (pop and visit until `budget` bytes are black or the worklist is
empty), `finish` (the roots again, then everything left). A Mark-Compact without incremental
marking runs start + finish in its pause; an incremental one runs only finish there
(incremental_marking.py owns the cycle: its state, the page flags, when steps run). Every object
allocated in old or large-object space while a cycle runs is black at once (`black_allocate`,
V8's black allocation); a scavenge in the middle of a cycle gives each copy its original's
colour and rewrites the worklist (`after_scavenge`).

Invariants: outside a marking cycle (iso_marking OFF) every bit of the isolate's frames is clear
and `pg_live` is 0 (`clear` runs in the release phase and when a cycle is aborted); during one,
`pg_live` is each page's black bytes; a page's frames are cleared again when it is uncommitted
(direct_map.py), so a frame's next owner starts white.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from memsim.sim.machine import atomics
from memsim.sim.v8 import large_object_space, new_space, old_space, work_span
from memsim.sim.v8 import mark_kernels as mk
from memsim.sim.v8 import worklist as wl
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.gc_work import GcWork
from memsim.sim.v8.layout import CHUNK_HEADER, M_OVERFLOWED, M_STATE, MARKING_ON

TASK = 0  # the main thread's row of the marking pool (concurrent marking's helpers take others)
UNLIMITED = 1 << 62


def bitbase(h: HeapContext) -> int:
    """The bit index of the pool's first word: an address's bit is its word index minus this."""
    return h.g.pool_base * h.g.words_per_frame


def _bit(h: HeapContext, bits: np.ndarray, addr: int) -> bool:
    b = h.dmap.index(addr) - bitbase(h)
    return bool(int(bits[b >> 6]) >> (b & 63) & 1)


def is_marked(h: HeapContext, addr: int) -> bool:
    """Whether the object at addr is grey or black."""
    return _bit(h, h.a.v8_markbits, addr)


def is_black(h: HeapContext, addr: int) -> bool:
    return _bit(h, h.a.v8_blackbits, addr)


def active(h: HeapContext) -> bool:
    """An incremental marking cycle is running (its marks and worklist are live between calls)."""
    return int(h.a.iso_marking[h.iso, M_STATE]) == MARKING_ON


def frame_rows(h: HeapContext) -> np.ndarray:
    """The bitmap words (indices into a pool-wide row) of every frame the isolate has committed."""
    return _rows(h, h.dmap.dm[h.dmap.dm >= 0].astype(np.int64))


def _rows(h: HeapContext, frames: np.ndarray) -> np.ndarray:
    per = h.g.words_per_frame // 64
    return (((frames - h.g.pool_base) * per)[:, None] + np.arange(per)).ravel()


def clear(h: HeapContext) -> None:
    """Every object of the isolate white again, and no live bytes counted."""
    rows = frame_rows(h)
    h.a.v8_markbits[rows] = 0
    h.a.v8_blackbits[rows] = 0
    h.a.pg_live[h.iso] = 0


def _pool(h: HeapContext) -> wl.Worklist:
    return wl.Worklist(h.a.marking, h.iso, h.worklist.lock)


def start(h: HeapContext) -> int:
    """Begin a marking: no live bytes counted, an empty worklist, the roots grey (MarkRoots); the
    root slots visited."""
    h.a.pg_live[h.iso] = 0
    h.a.iso_marking[h.iso, M_OVERFLOWED] = 0
    _pool(h).reset(tasks=1)
    return _push_roots(h)


def _push_roots(h: HeapContext) -> int:
    d, pool = h.dmap, _pool(h)
    roots = h.handles.root_words()
    k = 0
    while (k := mk.push_roots(d.words, d.dm, d.shift, d.wpf, h.a.v8_markbits, bitbase(h), roots, k, pool.seg,
                              pool.meta, pool.local(TASK))) < roots.size:
        _publish(h, pool)
    return int(roots.size)


def push(h: HeapContext, addr: int) -> None:
    """Push a grey object on the main thread's marking segment (the marking barrier's push)."""
    pool = _pool(h)
    local = pool.local(TASK)
    if not wl.room(pool.meta, local, wl.WL_MARKING):
        _publish(h, pool)
    wl.push(pool.seg, pool.meta, local, wl.WL_MARKING, addr)


def _publish(h: HeapContext, pool: wl.Worklist) -> None:
    if not pool.publish(TASK, wl.WL_MARKING):
        h.a.iso_marking[h.iso, M_OVERFLOWED] = 1


def drain(h: HeapContext, budget_bytes: int, ctr: np.ndarray) -> bool:
    """Visit grey objects until `budget_bytes` more are black or none is left; True when none is
    (the worklist and, after an overflow, the rescan found nothing grey)."""
    a, d, pool = h.a, h.dmap, _pool(h)
    left = max(1, budget_bytes >> 3)
    while True:
        before = int(ctr[mk.K_WORDS])
        code = mk.drain(d.words, d.dm, d.shift, d.wpf, a.v8_markbits, a.v8_blackbits, bitbase(h), h.g.page_shift,
                        pool.seg, pool.meta, pool.local(TASK), a.pg_live[h.iso], a.ext_mark[h.iso], ctr, left)
        left -= int(ctr[mk.K_WORDS]) - before
        if ctr[mk.K_OVERFLOW]:
            a.iso_marking[h.iso, M_OVERFLOWED] = 1
            ctr[mk.K_OVERFLOW] = 0
        if code == mk.M_BUDGET:
            return False
        if code == mk.M_FULL:
            _publish(h, pool)
        elif not pool.steal(TASK, wl.WL_MARKING):
            if not a.iso_marking[h.iso, M_OVERFLOWED]:
                return True
            _rescan(h, pool)


def rescan(h: HeapContext) -> None:
    """Push every grey object on the marking worklist again (the overflow path, run by hand)."""
    _rescan(h, _pool(h))


def _rescan(h: HeapContext, pool: wl.Worklist) -> None:
    """The overflow path: push every grey object of every page again (old space made iterable first)."""
    a, d = h.a, h.dmap
    a.iso_marking[h.iso, M_OVERFLOWED] = 0
    old_space.give_back_lab(h)
    ps = h.g.page_size
    ranges = [(h.bounds.page(int(s)) + CHUNK_HEADER, h.bounds.page(int(s)) + ps) for s in old_space.pages(h)]
    ranges += [(h.bounds.page(s) + CHUNK_HEADER, h.bounds.page(s) + CHUNK_HEADER + ((n + 7) & ~7))
               for s, n in large_object_space.objects(h)]
    for at, end in ranges + new_space.ranges(h):
        while (at := mk.push_grey(d.words, d.dm, d.shift, d.wpf, a.v8_markbits, a.v8_blackbits, bitbase(h), at, end,
                                  pool.seg, pool.meta, pool.local(TASK))) < end:
            _publish(h, pool)


def step(h: HeapContext, budget_bytes: int) -> tuple[bool, int]:
    """One incremental step: (whether the worklist is empty, the bytes it made black)."""
    ctr = np.zeros(mk.NCTR, dtype=np.int64)
    done = drain(h, budget_bytes, ctr)
    return done, int(ctr[mk.K_WORDS]) * 8


def finish(h: HeapContext, work: GcWork, helpers: Callable[[np.ndarray], int] | None = None) -> None:
    """Mark everything reachable from the roots, in the pause: after an incremental cycle, the roots
    again and what is left grey; else the whole marking. `helpers(ctr)`, when given, marks with
    helper cores first (concurrent_marking.mark_in_pause: its job's tasks, 1 if it posted none); the
    main's drain then takes what is left. `pg_live` then holds each page's live bytes and every live
    ArrayBuffer's extension row is marked. Work and span (work_span.py): the roots are the main's
    alone; the marking is a parallel phase, the job's (the drain after it, the overflow's rescan,
    serial), or the drain's as one task."""
    t0 = time.perf_counter()
    roots = _push_roots(h) if active(h) else start(h)
    ctr = np.zeros(mk.NCTR, dtype=np.int64)
    tasks = helpers(ctr) if helpers is not None else 1
    before = work_span.marking_words(ctr)
    drain(h, UNLIMITED, ctr)
    work_span.serial(work, roots)
    if tasks > 1:
        work_span.marking_job(work, h, tasks)
        work_span.serial(work, work_span.marking_words(ctr) - before)
    else:
        work_span.phase(work, np.array([work_span.marking_words(ctr)]), np.zeros(1, dtype=np.int64))
    work.objects_marked += int(ctr[mk.K_MARKED])
    work.objects_scanned += int(ctr[mk.K_MARKED])
    work.words_scanned += int(ctr[mk.K_WORDS])
    work.slots_visited += int(ctr[mk.K_SLOTS])
    work.phase_ms["mark"] = (time.perf_counter() - t0) * 1e3


def black_allocate(h: HeapContext, addr: int, size: int) -> None:
    """V8's black allocation: an object allocated in old or large-object space during a cycle is
    black at once and counts as live on its page (it survives this cycle, as in V8)."""
    b = h.dmap.index(addr) - bitbase(h)
    for bits in (h.a.v8_markbits, h.a.v8_blackbits):  # atomic: helper cores set bits of the same words
        atomics.fetch_or(bits, b >> 6, np.uint64(1) << np.uint64(b & 63))
    atomics.fetch_add(h.a.pg_live[h.iso], h.bounds.slot(addr), size)


def after_scavenge(h: HeapContext, from_base: int, from_top: int, old_current: int) -> None:
    """A scavenge ran while marking (called before from-space is zapped): each copy takes its
    original's colour, the worklist's entries follow their objects (the dead go), and from-space's
    bits and live bytes are cleared before its frames hold new objects."""
    a, d, pool = h.a, h.dmap, _pool(h)
    to_lo = new_space.to_space(h)
    mk.transfer_colors(d.words, d.dm, d.shift, d.wpf, a.v8_markbits, a.v8_blackbits, bitbase(h), h.g.page_shift,
                       h.g.page_size, from_base, from_top, old_current, to_lo, to_lo + h.bounds.semi, a.pg_live[h.iso])
    with pool.lock:
        mk.update_worklist(d.words, d.dm, d.shift, d.wpf, pool.seg, pool.meta, from_base, from_base + h.bounds.semi)
    rows = _rows(h, d.frames(from_base, h.bounds.semi).astype(np.int64))
    a.v8_markbits[rows] = 0
    a.v8_blackbits[rows] = 0
    slots = h.bounds.slot_range(from_base, h.bounds.semi)
    a.pg_live[h.iso, slots.start:slots.stop] = 0
