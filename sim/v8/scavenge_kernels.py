"""The scavenger's compiled loops: V8's Scavenger::ScavengeObject / EvacuateObject and
Scavenger::Process (`src/heap/scavenger-inl.h`, `scavenger.cc`), as numba kernels over plain arrays.

One kernel, `run`, does a task's share of a scavenge in phases (locals, globals, OLD_TO_NEW slots,
then draining the worklists) and can stop and be re-entered: every step either completes (a slot
updated, an object copied, forwarded and pushed) or changes nothing. As in V8 since M62 there is
no Cheney scan pointer: a copied object is pushed on the copied list and a promoted one on the
promotion list (worklist.py's segments, V8's CopiedList and PromotionList), and the drain pops and
scans them until both are empty. It returns to Python (scavenger.py) when:

- NEED_OLD: an object must be promoted and the promotion LAB [T_OLD_TOP, T_OLD_LIMIT) cannot hold
  it; Python refills the LAB (old_space.refill) or, if old space is full, sets S_OLD_FULL so that
  the kernel copies within new space instead, and calls `run` again, which retries the same slot;
- LOCAL_FULL: the task's push segment of list S_FULL - 1 has no room for the entry an evacuation
  would push; Python publishes it to the global pool and retries the same slot;
- LOCAL_EMPTY: the task's segments are empty while draining; Python steals a global segment or,
  with none left, ends the drain (after the overflow rescan, if the pool ever overflowed);
- PAUSED: the phase given as `stop` was reached (the roots are timed apart from the copying);
- RACE_PAUSE: the race hook's stop (below);
- YIELD: the drain scanned P_SLICE objects (a parallel job's slice: the task publishes for idle
  tasks, checks the main is alive, and counts its CPU time between slices, gc_job.py);
- PARKED: the P_PARK test hook (a helper stops after a won forwarding CAS, before its push:
  S_PARKED holds the entry; a helper killed there leaves a forwarded object in no worklist).

`st` carries everything needed to resume (phase, index, the object being scanned and its field),
`p` the scavenge's constants, `ctr` the work counters (K_*). The kernel writes straight into the
shared arrays: the heap's words through the direct map (dm_kernels.py), the to-space frontier
(`top`, iso_top's row), the OLD_TO_NEW bits and counts, `pg_allocated`, the ArrayBuffer marks and
the task's worklist segments. No Python object is created inside a loop, so the same source runs
interpreted under NUMBA_DISABLE_JIT=1 (and gives the same heap, which the tests check); nothing
is allocated at all, so the kernels are compiled without reference counting (jit.njit_kernel),
which a helper taking a dozen arrays per call would otherwise pay on every object.

The kernel is safe for several tasks on the same isolate at once (V8's parallel scavenge): each
task has its own row of `gc_task` (layout.py: its `ctr`, `lab` and `st`), its own LABs (`lab`: a
to-space LAB claimed from the shared frontier T_NEW_TOP by CAS, LAB_SIZE bytes within a page, or
the rest of the page when one task runs alone, which keeps the serial layout; a promotion LAB
refilled by Python) and its own worklist segments. Per object (V8's order, which a concurrent
reader relies on): allocate in the task's LAB, copy the body, publish the LAB's top, then install
the forwarding word (objects.py: the target's address, low bit 0) in the old copy's map word by
compare-and-swap against the map word read before copying (Scavenger::MigrateObject). The loser
of two tasks copying one object steps its LAB's top back over its copy (FreeLast), counts a
K_CAS_FAIL and uses the winner's address; only the winner pushes, counts and marks. What tasks
share is written atomically (jit.py): recorded and removed OLD_TO_NEW bits and the pages' slot
counts, `pg_allocated`; a slot or root written by two tasks gets the same word from both.

Test hooks (layout.py's C_TEST_*, scavenger.py runs several tasks by turns in one process):
P_RACE stops every copy between its body and its CAS (RACE_PAUSE; S_HELD_* keep the copy, and the
retry of the slot finishes it first), so another task races it; P_NO_CAS installs the forwarding
word with a plain store, as if every task won, which copies objects twice.

`rescan` is the pool's overflow path (worklist.py): when a full segment could not be published its
entries were dropped, so every object copied so far is scanned again, walking to-space and the
promotion LABs of this scavenge as Cheney's scan pointer did; scanning an object twice changes
nothing (its fields already point at copies, its slots are already recorded).
"""

from __future__ import annotations

import numpy as np

from memsim.sim.v8 import worklist as wl
from memsim.sim.v8.dm_kernels import copy_words, test_and_set_bit_atomic, word_index
from memsim.sim.v8.jit import atomic_add, atomic_and, atomic_cas, atomic_load, njit_kernel
from memsim.sim.v8.layout import CHUNK_HEADER, GC_TASK_COLUMNS, HEAP_BASE, T_NEW_TOP
from memsim.sim.v8.objects import FILLER, JS_ARRAY_BUFFER, JS_OBJECT, header, itype_of, nfields_of, size_of

# p: the scavenge's constants (P_LAB: a task's to-space LAB; P_RACE, P_NO_CAS: test hooks, layout.py's C_TEST_*)
(P_SHIFT, P_WPF, P_POOL0, P_PAGE, P_PAGE_SHIFT, P_FROM_LO, P_FROM_HI, P_TO_LO, P_TO_HI, P_AGE_MARK, P_LAB, P_RACE,
 P_NO_CAS) = range(13)
# P_SLICE: objects a drain scans before it returns YIELD (0: no limit; a parallel job's slice, gc_job.py);
# P_PARK: test hook, the first won CAS of an object with a from-space field stops with its push undone (PARKED)
P_SLICE, P_PARK = 13, 14
NP = 15
# st: where the task is (S_HELD_*: a copy the race hook stopped before its CAS)
(S_PHASE, S_I, S_OBJ, S_FIELD, S_SCAN, S_NEED, S_FULL, S_OLD_FULL, S_HELD_SRC, S_HELD_MW, S_HELD_DST,
 S_PARKED) = range(12)
NST = 12
# ctr: the work counters (K_CAS_FAIL: forwarding CASes lost to another task; K_STEALS: segments stolen;
# K_WORDS_LOST: words a task copied and gave back on losing the CAS, work_span.py's work)
(K_COPIED, K_COPIED_BYTES, K_PROMOTED, K_PROMOTED_BYTES, K_OBJECTS_SCANNED, K_WORDS_SCANNED, K_WORDS_COPIED,
 K_SLOTS_VISITED, K_SLOTS_REMOVED, K_SLOTS_RECORDED, K_CAS_FAIL, K_STEALS, K_WORDS_LOST) = range(13)
NCTR = 13
# lab: the task's linear allocation buffers (V8's EvacuationAllocator: one in new space, one in old space)
(L_NEW_TOP, L_NEW_LIMIT, L_OLD_TOP, L_OLD_LIMIT) = range(4)
NLAB = 4
# a task's row of gc_task (layout.py): ctr, lab, st side by side, each a C-contiguous slice
ROW_CTR, ROW_LAB, ROW_ST = 0, 16, 24
assert NCTR <= ROW_LAB and ROW_LAB + NLAB <= ROW_ST and ROW_ST + NST <= GC_TASK_COLUMNS
LAB_SIZE = 32 << 10  # V8's LocalAllocator kLabSize; one task takes the rest of a page (the serial layout)
# phases, in order
PH_LOCALS, PH_GLOBALS, PH_REMEMBERED, PH_DRAIN, PH_DONE = range(5)
# run's results
DONE, NEED_OLD, PAUSED, TO_SPACE_FULL, LOCAL_FULL, LOCAL_EMPTY, RACE_PAUSE, YIELD, PARKED = range(9)

MARK_NEW, MARK_OLD = 1, 2  # array_buffer_sweeper.py's marks


def task_row(gc_task: np.ndarray, iso: int, task: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Task `task`'s (ctr, lab, st) views into the shared gc_task array."""
    row = gc_task[iso, task]
    return row[ROW_CTR:ROW_CTR + NCTR], row[ROW_LAB:ROW_LAB + NLAB], row[ROW_ST:ROW_ST + NST]


@njit_kernel
def _alloc_old(lab: np.ndarray, size: int, st: np.ndarray) -> int:
    """The task's promotion LAB's next `size` bytes, or 0 (S_NEED set unless old space is known full)."""
    if st[S_OLD_FULL]:
        return 0
    t = lab[L_OLD_TOP]
    if t != 0 and t + size <= lab[L_OLD_LIMIT]:
        return t
    st[S_NEED] = size
    return 0


@njit_kernel
def close_new_lab(words: np.ndarray, dm: np.ndarray, top: np.ndarray, lab: np.ndarray, p: np.ndarray) -> None:
    """Give up the task's to-space LAB: its unused tail goes back to the frontier if nothing was
    claimed after it (a CAS on T_NEW_TOP), else becomes a filler (to-space stays walkable)."""
    t, lim = lab[L_NEW_TOP], lab[L_NEW_LIMIT]
    if lim > t and atomic_cas(top, T_NEW_TOP, lim, t) != lim:
        words[word_index(dm, t, p[P_SHIFT], p[P_WPF])] = header(FILLER, 0, lim - t - 8)
    lab[L_NEW_TOP] = 0
    lab[L_NEW_LIMIT] = 0


@njit_kernel
def _alloc_to(words: np.ndarray, dm: np.ndarray, top: np.ndarray, lab: np.ndarray, size: int, p: np.ndarray) -> int:
    """`size` bytes in the task's to-space LAB (not yet published), or a new LAB claimed from the
    shared frontier T_NEW_TOP by CAS: P_LAB bytes (at least `size`) within one page, the next page
    if this one cannot hold `size` (its rest a filler: no object straddles a page); 0 if full."""
    t = lab[L_NEW_TOP]
    if t != 0 and t + size <= lab[L_NEW_LIMIT]:
        return t
    close_new_lab(words, dm, top, lab, p)
    mask = p[P_PAGE] - 1
    while True:
        f = atomic_load(top, T_NEW_TOP)
        c = f + CHUNK_HEADER if (f & mask) == 0 else f
        page_end = (c | mask) + 1
        if c + size > page_end:
            c = page_end + CHUNK_HEADER
            page_end += p[P_PAGE]
        if page_end > p[P_TO_HI]:
            return 0
        end = min(c + max(size, p[P_LAB]), page_end)
        if atomic_cas(top, T_NEW_TOP, f, end) == f:
            if c > f and (f & mask) != 0:
                words[word_index(dm, f, p[P_SHIFT], p[P_WPF])] = header(FILLER, 0, ((f | mask) + 1) - f - 8)
            lab[L_NEW_TOP] = c
            lab[L_NEW_LIMIT] = end
            return c


@njit_kernel
def _no_room(meta: np.ndarray, local: np.ndarray, st: np.ndarray) -> bool:
    """Either list's push segment is full (S_FULL names it): an evacuation could not push its copy."""
    for lst in range(wl.NLIST):
        if not wl.room(meta, local, lst):
            st[S_FULL] = lst + 1
            return True
    return False


@njit_kernel
def _forward(words: np.ndarray, dm: np.ndarray, pg_alloc: np.ndarray, ext_mark: np.ndarray, lab: np.ndarray,
             seg: np.ndarray, meta: np.ndarray, local: np.ndarray, p: np.ndarray, ctr: np.ndarray, src: int,
             mw: int, dst: int) -> int:
    """Install the forwarding word of the object whose map word (index `src`) was `mw`, copied to
    `dst`: a CAS, so that of two tasks copying one object exactly one wins (V8's MigrateObject). The
    loser gives its copy back (allocator_.FreeLast: nothing was allocated after it, so its LAB's top
    steps back over it) and takes the winner's address. The winner counts, pushes and marks."""
    size = size_of(mw)
    promoted = dst < p[P_TO_LO] or dst >= p[P_TO_HI]
    if p[P_NO_CAS]:  # the test hook: a plain store, as if every task won
        words[src] = dst
        old = mw
    else:
        old = atomic_cas(words, src, mw, dst)
    if old != mw:
        lab[L_OLD_TOP if promoted else L_NEW_TOP] = dst
        ctr[K_CAS_FAIL] += 1
        ctr[K_WORDS_LOST] += size >> 3
        return old | 1
    if promoted:
        atomic_add(pg_alloc, (dst - HEAP_BASE) >> p[P_PAGE_SHIFT], size)  # tasks' LABs may share a page
        ctr[K_PROMOTED] += 1
        ctr[K_PROMOTED_BYTES] += size
    else:
        ctr[K_COPIED] += 1
        ctr[K_COPIED_BYTES] += size
    ctr[K_WORDS_COPIED] += size >> 3
    if itype_of(mw) == JS_OBJECT:  # only objects with fields need a scan (V8: ObjectFields::kMaybePointers)
        wl.push(seg, meta, local, wl.WL_PROMOTED if promoted else wl.WL_COPIED, dst)
    elif itype_of(mw) == JS_ARRAY_BUFFER:
        row = words[word_index(dm, dst + 16, p[P_SHIFT], p[P_WPF])] >> 32
        ext_mark[row] = MARK_OLD if promoted else MARK_NEW
    return dst | 1


@njit_kernel
def _evacuate(words: np.ndarray, dm: np.ndarray, pg_alloc: np.ndarray, ext_mark: np.ndarray, top: np.ndarray,
              lab: np.ndarray, seg: np.ndarray, meta: np.ndarray, local: np.ndarray, p: np.ndarray, st: np.ndarray,
              ctr: np.ndarray, w: int) -> int:
    """V8's ScavengeObject for one tagged word: the word the slot must hold afterwards. Anything
    but a from-space reference is returned as is; a forwarded object gives its new address; else
    the object is promoted (below the age mark) or copied, with V8's fallbacks, and forwarded. When
    it cannot be placed or pushed yet, S_NEED (S_NEED = -1: nowhere at all) or S_FULL is set and
    `w` returned unchanged; the race hook stops after the copy (S_HELD_*), and the retry of the same
    slot finishes that copy first, whatever the slot holds by then."""
    if st[S_HELD_DST]:
        dst = st[S_HELD_DST]
        st[S_HELD_DST] = 0
        return _forward(words, dm, pg_alloc, ext_mark, lab, seg, meta, local, p, ctr, st[S_HELD_SRC],
                        st[S_HELD_MW], dst)
    if (w & 1) == 0:
        return w
    addr = w - 1
    if addr < p[P_FROM_LO] or addr >= p[P_FROM_HI]:
        return w
    shift, wpf = p[P_SHIFT], p[P_WPF]
    src = word_index(dm, addr, shift, wpf)
    mw = words[src]
    if (mw & 1) == 0:
        return mw | 1
    if _no_room(meta, local, st):
        return w
    size = size_of(mw)
    dst = 0
    promoted = False
    if addr < p[P_AGE_MARK]:  # its second survival: promote (SemiSpaceNewSpace::ShouldBePromoted)
        dst = _alloc_old(lab, size, st)
        if st[S_NEED]:
            return w
        promoted = dst != 0
    if dst == 0:
        dst = _alloc_to(words, dm, top, lab, size, p)
        if dst == 0:  # to-space is full: promote instead (V8's fallback)
            dst = _alloc_old(lab, size, st)
            if st[S_NEED]:
                return w
            if dst == 0:
                st[S_NEED] = -1
                return w
            promoted = True
    copy_words(words, dm, addr, dst, size, shift, wpf)
    lab[L_OLD_TOP if promoted else L_NEW_TOP] = dst + size  # publish the top, then forward
    if p[P_RACE]:
        st[S_HELD_SRC], st[S_HELD_MW], st[S_HELD_DST] = src, mw, dst
        return w
    nw = _forward(words, dm, pg_alloc, ext_mark, lab, seg, meta, local, p, ctr, src, mw, dst)
    if p[P_PARK] and nw == dst | 1 and _holds_from_ref(words, dm, dst, mw, p):
        st[S_PARKED] = wl.pop(seg, meta, local, wl.WL_PROMOTED if promoted else wl.WL_COPIED)  # the push undone
    return nw


@njit_kernel
def _holds_from_ref(words: np.ndarray, dm: np.ndarray, obj: int, mw: int, p: np.ndarray) -> bool:
    """The P_PARK hook's choice: an object with a field still naming from-space, so that leaving it
    unscanned is visible to the verifier (a leaf whose fields are all null or old would not be)."""
    if itype_of(mw) != JS_OBJECT:
        return False
    for j in range(nfields_of(mw)):
        w = words[word_index(dm, obj + 8 + 8 * j, p[P_SHIFT], p[P_WPF])]
        if (w & 1) == 1 and p[P_FROM_LO] <= w - 1 < p[P_FROM_HI]:
            return True
    return False


@njit_kernel
def _young(w: int, p: np.ndarray) -> bool:
    return (w & 1) == 1 and p[P_TO_LO] <= w - 1 < p[P_TO_HI]


@njit_kernel
def _stuck(st: np.ndarray) -> bool:
    return st[S_NEED] != 0 or st[S_FULL] != 0 or st[S_HELD_DST] != 0 or st[S_PARKED] != 0


@njit_kernel
def _stopped(st: np.ndarray) -> int:
    """Why the kernel stops at the slot it will retry."""
    if st[S_HELD_DST]:
        return RACE_PAUSE
    if st[S_PARKED]:
        return PARKED
    if st[S_FULL]:
        return LOCAL_FULL
    return NEED_OLD if st[S_NEED] > 0 else TO_SPACE_FULL


@njit_kernel
def _scan_fields(words: np.ndarray, dm: np.ndarray, slot_bits: np.ndarray, pg_slots: np.ndarray,
                 pg_alloc: np.ndarray, ext_mark: np.ndarray, top: np.ndarray, lab: np.ndarray, seg: np.ndarray,
                 meta: np.ndarray, local: np.ndarray, p: np.ndarray, st: np.ndarray, ctr: np.ndarray, obj: int,
                 old_host: bool) -> bool:
    """Visit the fields of the object at `obj` from field st[S_FIELD] on; False if it stopped
    (S_NEED, S_FULL or S_HELD_DST set, S_FIELD the field to resume at). An old host records each
    field still pointing young (V8's RecordSlot in the promotion list's visitor), the bit and the
    page's count atomically (tasks share pages)."""
    mw = words[word_index(dm, obj, p[P_SHIFT], p[P_WPF])]
    if itype_of(mw) != JS_OBJECT:
        return True
    n = nfields_of(mw)
    j = st[S_FIELD]
    while j < n:
        va = obj + 8 + 8 * j
        wi = word_index(dm, va, p[P_SHIFT], p[P_WPF])
        nw = _evacuate(words, dm, pg_alloc, ext_mark, top, lab, seg, meta, local, p, st, ctr, words[wi])
        if _stuck(st):
            st[S_FIELD] = j
            return False
        words[wi] = nw
        if old_host and _young(nw, p) and test_and_set_bit_atomic(slot_bits, wi - p[P_POOL0]):
            atomic_add(pg_slots, ((va - HEAP_BASE) >> p[P_PAGE_SHIFT]) * 2, 1)
            ctr[K_SLOTS_RECORDED] += 1
        j += 1
    st[S_FIELD] = 0
    ctr[K_SLOTS_VISITED] += n
    ctr[K_OBJECTS_SCANNED] += 1
    ctr[K_WORDS_SCANNED] += size_of(mw) >> 3
    return True


@njit_kernel
def _drain(words: np.ndarray, dm: np.ndarray, slot_bits: np.ndarray, pg_slots: np.ndarray, pg_alloc: np.ndarray,
           ext_mark: np.ndarray, top: np.ndarray, lab: np.ndarray, seg: np.ndarray, meta: np.ndarray, local: np.ndarray,
           p: np.ndarray, st: np.ndarray, ctr: np.ndarray) -> int:
    """Scavenger::Process: pop copies (the copied list first, then the promotion list) and scan
    them until the task's segments are empty (LOCAL_EMPTY) or it must stop. S_OBJ is the object
    being scanned: popped, so a stop resumes it rather than popping again. After P_SLICE objects
    (if set) it returns YIELD between two objects, so a job's task can look around."""
    scanned = 0
    while True:
        if p[P_SLICE] and scanned >= p[P_SLICE]:
            return YIELD
        obj = st[S_OBJ]
        if obj == 0:
            obj = wl.pop(seg, meta, local, wl.WL_COPIED)
            if obj == 0:
                obj = wl.pop(seg, meta, local, wl.WL_PROMOTED)
                if obj == 0:
                    return LOCAL_EMPTY
            st[S_OBJ] = obj
            st[S_FIELD] = 0
        old_host = obj < p[P_TO_LO] or obj >= p[P_TO_HI]
        if not _scan_fields(words, dm, slot_bits, pg_slots, pg_alloc, ext_mark, top, lab, seg, meta, local, p, st, ctr,
                            obj, old_host):
            return _stopped(st)
        st[S_OBJ] = 0
        scanned += 1


@njit_kernel
def run(words: np.ndarray, dm: np.ndarray, slot_bits: np.ndarray, pg_slots: np.ndarray, pg_alloc: np.ndarray,
        ext_mark: np.ndarray, hs: np.ndarray, gh: np.ndarray, gh_used: np.ndarray, rs: np.ndarray, top: np.ndarray,
        lab: np.ndarray, seg: np.ndarray, meta: np.ndarray, local: np.ndarray, p: np.ndarray, st: np.ndarray,
        ctr: np.ndarray, stop: int) -> int:
    """Advance the task until phase `stop` (PAUSED), the end of its roots and slots followed by a
    drain that found its segments empty (LOCAL_EMPTY: Python steals or sets PH_DONE), or a stop
    for a LAB (NEED_OLD; S_NEED holds the size), a segment (LOCAL_FULL), nowhere to copy to
    (TO_SPACE_FULL) or the race hook (RACE_PAUSE)."""
    while st[S_PHASE] < stop:
        ph = st[S_PHASE]
        if ph <= PH_GLOBALS:
            roots = hs if ph == PH_LOCALS else gh
            i = st[S_I]
            while i < roots.shape[0]:
                if ph == PH_GLOBALS and gh_used[i] == 0:
                    i += 1
                    continue
                nw = _evacuate(words, dm, pg_alloc, ext_mark, top, lab, seg, meta, local, p, st, ctr, roots[i])
                if _stuck(st):
                    st[S_I] = i
                    return _stopped(st)
                roots[i] = nw
                ctr[K_SLOTS_VISITED] += 1
                i += 1
        elif ph == PH_REMEMBERED:
            i = st[S_I]
            while i < rs.shape[0]:
                va = rs[i]
                wi = word_index(dm, va, p[P_SHIFT], p[P_WPF])
                nw = _evacuate(words, dm, pg_alloc, ext_mark, top, lab, seg, meta, local, p, st, ctr, words[wi])
                if _stuck(st):
                    st[S_I] = i
                    return _stopped(st)
                words[wi] = nw
                ctr[K_SLOTS_VISITED] += 1
                if not _young(nw, p):  # REMOVE_SLOT: the slot no longer points into new space
                    b = wi - p[P_POOL0]
                    m = np.uint64(1) << np.uint64(b & 63)
                    if np.uint64(atomic_and(slot_bits, b >> 6, ~m)) & m:  # counted by the task that cleared it
                        atomic_add(pg_slots, ((va - HEAP_BASE) >> p[P_PAGE_SHIFT]) * 2, -1)
                        ctr[K_SLOTS_REMOVED] += 1
                i += 1
        elif ph == PH_DRAIN:
            return _drain(words, dm, slot_bits, pg_slots, pg_alloc, ext_mark, top, lab, seg, meta, local, p, st, ctr)
        st[S_PHASE] = ph + 1
        st[S_I] = 0
    return DONE if st[S_PHASE] >= PH_DONE else PAUSED


@njit_kernel
def rescan(words: np.ndarray, dm: np.ndarray, slot_bits: np.ndarray, pg_slots: np.ndarray, pg_alloc: np.ndarray,
           ext_mark: np.ndarray, top: np.ndarray, lab: np.ndarray, seg: np.ndarray, meta: np.ndarray, local: np.ndarray,
           p: np.ndarray, ranges: np.ndarray, st: np.ndarray, ctr: np.ndarray) -> int:
    """Scan every object in `ranges` (rows lo, hi: a promotion LAB's objects; hi = -1: to-space from
    lo to the frontier, skipping page headers and the task's own LAB's unused tail; every other
    task's LAB is closed) from range S_I, address S_SCAN on; DONE, or a stop as `run`'s. The objects
    are old hosts unless in to-space; their copies are pushed as usual."""
    mask = p[P_PAGE] - 1
    while st[S_I] < ranges.shape[0]:
        lo, hi = ranges[st[S_I], 0], ranges[st[S_I], 1]
        scan = st[S_SCAN] if st[S_SCAN] else lo
        while scan < (atomic_load(top, T_NEW_TOP) if hi < 0 else hi):
            if hi < 0 and (scan & mask) == 0:  # a page boundary: skip the next page's chunk header
                scan += CHUNK_HEADER
                continue
            if hi < 0 and scan == lab[L_NEW_TOP]:  # the task's LAB: nothing allocated beyond its top
                scan = lab[L_NEW_LIMIT]
                continue
            st[S_SCAN] = scan
            mw = words[word_index(dm, scan, p[P_SHIFT], p[P_WPF])]
            if itype_of(mw) != FILLER and not _scan_fields(words, dm, slot_bits, pg_slots, pg_alloc, ext_mark, top,
                                                           lab, seg, meta, local, p, st, ctr, scan, hi >= 0):
                return _stopped(st)
            scan += size_of(mw)
        st[S_I] += 1
        st[S_SCAN] = 0
    return DONE


@njit_kernel
def zap(words: np.ndarray, dm: np.ndarray, p: np.ndarray, lo: int, top: int, current: int) -> int:
    """After the copy: count from-space's dead objects (neither forwarded nor fillers), then zero
    each page's area, frame by frame, under one FILLER. Pages from `lo` to `current` (the page of
    the old allocation top) are walked, each to its end but `current` only to `top`; later pages
    hold nothing (zapped before, or zero since their commit)."""
    shift, wpf, ps = p[P_SHIFT], p[P_WPF], p[P_PAGE]
    died = 0
    page = lo
    while page <= current:
        end = top if page == current else page + ps
        at = page + CHUNK_HEADER
        while at < end:
            mw = words[word_index(dm, at, shift, wpf)]
            if (mw & 1) == 0:  # forwarded: the survivor's size is in its copy's header
                at += size_of(words[word_index(dm, mw, shift, wpf)])
                continue
            if itype_of(mw) != FILLER:
                died += 1
            at += size_of(mw)
        for frame_va in range(page, page + ps, 1 << shift):
            base = word_index(dm, frame_va, shift, wpf)
            skip = CHUNK_HEADER >> 3 if frame_va == page else 0
            words[base + skip:base + wpf] = 0
        words[word_index(dm, page + CHUNK_HEADER, shift, wpf)] = header(FILLER, 0, ps - CHUNK_HEADER - 8)
        page += ps
    return died
