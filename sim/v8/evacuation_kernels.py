"""A compaction task's kernel: V8's FullEvacuator::RawEvacuatePage for an old-to-old page
(`src/heap/mark-compact.cc`: LiveObjectVisitor::VisitMarkedObjects with EvacuateOldSpaceVisitor, whose
TryEvacuateObject allocates in the task's compaction LAB and MigrateObject copies, then forwards).

`evacuate_page` moves the marked objects of one evacuation candidate into the task's own old-space
LAB (the task's gc_task row, scavenge_kernels.py's lab columns L_OLD_TOP/L_OLD_LIMIT). Several tasks
run it at once on different pages (compaction_job.py), so everything they share is written with
atomics: the forwarding word by CAS (of two tasks on one object, only one wins: the race hook and a
dead helper's page redone by the main are the cases where two tasks meet an object), the copy's mark
bit by `lock or`, its page's live bytes by `lock add` (two tasks' LABs may lie on one page). A loser
gives its copy back (the LAB's top steps back over it, V8's FreeLast) or leaves a filler.

An object already forwarded when the task reaches it (moved by a task that then died, or by the
other task of the race hook) is skipped, its copy's mark bit and live bytes made sure of (a task that
died between its CAS and that bit would otherwise leave the copy to the sweeper).

The task's state is its `st` view: E_AT (next object), E_END, E_NEED (bytes the LAB lacks),
E_HELD_* (a copy the race hook stopped before its CAS), E_LEFT (the abort-for-testing hook: objects
still to move before the page aborts, 0 = off). The counters are scavenge_kernels.py's columns, the
move into old space counted as a promotion (K_PROMOTED, K_PROMOTED_BYTES, K_WORDS_COPIED, K_CAS_FAIL), every
object walked on the page (map words read, dead ones too) in K_OBJECTS_SCANNED, lost copies in K_WORDS_LOST.

Owns nothing: compaction_job.py says which page and LAB; the isolate's locker is held by the main.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.v8.dm_kernels import copy_words, test_and_set_bit_atomic, test_bit, word_index
from memsim.sim.v8.jit import atomic_add, atomic_cas, atomic_load, njit_kernel
from memsim.sim.v8.layout import HEAP_BASE
from memsim.sim.v8.objects import FILLER, FREE_SPACE, JS_ARRAY_BUFFER, header, itype_of, size_of
from memsim.sim.v8.scavenge_kernels import (
    K_CAS_FAIL,
    K_OBJECTS_SCANNED,
    K_PROMOTED,
    K_PROMOTED_BYTES,
    K_WORDS_COPIED,
    K_WORDS_LOST,
    L_OLD_LIMIT,
    L_OLD_TOP,
    MARK_OLD,
)

(E_AT, E_END, E_NEED, E_HELD_SRC, E_HELD_MW, E_HELD_DST, E_LEFT) = range(7)
DONE, NEED_OLD, RACE_PAUSE, ABORT = range(4)  # evacuate_page's results


@njit_kernel
def _live(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, bits: np.ndarray, bitbase: int,
          page_shift: int, dst: int, size: int, pg_live: np.ndarray, ext_mark: np.ndarray) -> None:
    """The copy at `dst` is live: its mark bit and its page's live bytes (once), its extension's mark."""
    if test_and_set_bit_atomic(bits, word_index(dm, dst, shift, wpf) - bitbase):
        atomic_add(pg_live, (dst - HEAP_BASE) >> page_shift, size)
    if itype_of(words[word_index(dm, dst, shift, wpf)]) == JS_ARRAY_BUFFER:
        ext_mark[words[word_index(dm, dst + 16, shift, wpf)] >> 32] = MARK_OLD


@njit_kernel
def _forward(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, bits: np.ndarray, bitbase: int,
             page_shift: int, src: int, mw: int, dst: int, lab: np.ndarray, pg_live: np.ndarray,
             ext_mark: np.ndarray, ctr: np.ndarray, no_cas: bool) -> None:
    """Install the forwarding word of `src` (map word `mw`, body copied to `dst`), as MigrateObject."""
    i = word_index(dm, src, shift, wpf)
    size = size_of(mw)
    if no_cas:  # the test hook: a plain store, as if every task won
        words[i] = dst
        old = mw
    else:
        old = atomic_cas(words, i, mw, dst)
    if old != mw:
        ctr[K_CAS_FAIL] += 1
        ctr[K_WORDS_LOST] += size >> 3
        if lab[L_OLD_TOP] == dst + size:
            lab[L_OLD_TOP] = dst  # FreeLast: the copy was the LAB's last allocation
        else:
            words[word_index(dm, dst, shift, wpf)] = header(FILLER, 0, size - 8)
        return
    _live(words, dm, shift, wpf, bits, bitbase, page_shift, dst, size, pg_live, ext_mark)
    ctr[K_PROMOTED] += 1
    ctr[K_PROMOTED_BYTES] += size
    ctr[K_WORDS_COPIED] += size >> 3


@njit_kernel
def evacuate_page(words: np.ndarray, dm: np.ndarray, shift: int, wpf: int, bits: np.ndarray, bitbase: int,
                  page_shift: int, lab: np.ndarray, pg_live: np.ndarray, ext_mark: np.ndarray, ctr: np.ndarray,
                  st: np.ndarray, race: bool, no_cas: bool) -> int:
    """Move the marked objects of [st[E_AT], st[E_END]): DONE; NEED_OLD (st[E_NEED] bytes: the caller
    refills the LAB and calls again, or aborts the page at st[E_AT]); RACE_PAUSE (a copy held before
    its CAS, finished by the next call); ABORT (the testing hook)."""
    if st[E_HELD_DST]:
        src, mw, dst = st[E_HELD_SRC], st[E_HELD_MW], st[E_HELD_DST]
        st[E_HELD_DST] = 0
        _forward(words, dm, shift, wpf, bits, bitbase, page_shift, src, mw, dst, lab, pg_live, ext_mark, ctr, no_cas)
    at, end = st[E_AT], st[E_END]
    while at < end:
        i = word_index(dm, at, shift, wpf)
        mw = atomic_load(words, i)
        ctr[K_OBJECTS_SCANNED] += 1  # a map word walked (work_span.py)
        if (mw & 1) == 0:  # forwarded already: `mw` is the copy
            size = size_of(words[word_index(dm, mw, shift, wpf)])
            _live(words, dm, shift, wpf, bits, bitbase, page_shift, mw, size, pg_live, ext_mark)
            at += size
            continue
        size = size_of(mw)
        t = itype_of(mw)
        if t != FREE_SPACE and t != FILLER and test_bit(bits, i - bitbase):
            if st[E_LEFT] == 1:
                st[E_AT] = at
                return ABORT
            dst = lab[L_OLD_TOP]
            if dst == 0 or dst + size > lab[L_OLD_LIMIT]:
                st[E_AT], st[E_NEED] = at, size
                return NEED_OLD
            lab[L_OLD_TOP] = dst + size  # published before the copy: a dead task's LAB is closed at its top
            copy_words(words, dm, at, dst, size, shift, wpf)
            if st[E_LEFT] > 1:
                st[E_LEFT] -= 1
            if race:
                st[E_AT], st[E_HELD_SRC], st[E_HELD_MW], st[E_HELD_DST] = at + size, at, mw, dst
                return RACE_PAUSE
            _forward(words, dm, shift, wpf, bits, bitbase, page_shift, at, mw, dst, lab, pg_live, ext_mark, ctr,
                     no_cas)
        at += size
    st[E_AT] = at
    return DONE
