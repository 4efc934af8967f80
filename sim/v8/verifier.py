"""The heap verifier: V8's `heap-verifier.cc` (HeapVerifier::VerifyHeap), run by the tests after
every collection (`testing(verify_heap=True)`) and by recovery before a heap is trusted again.

It walks every space object by object, as V8's verifier does, and checks:
- every committed page has a whole chunk header (magic, isolate, slot);
- every page is iterable: headers of known types whose sizes stay within the page's area, to
  the page's end (new space: to top), no forwarding word left outside a collection;
- every reference field points at the start of an object in new (to-space only), old or
  large-object space, never into from-space, a free block or a filler;
- every old-to-new reference from an old or large object is in the OLD_TO_NEW remembered set
  (unless the test hook turned the barrier off);
- every handle (local or global) in use holds a Smi or a reference to an object start.
It reads only; `problems` returns the first problem's description ("" when the heap is whole).
"""

from __future__ import annotations

import numpy as np

from memsim.sim.errors import FailedPrecondition
from memsim.sim.v8 import large_object_space, new_space
from memsim.sim.v8 import memory_chunk as mc
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.layout import (
    CHUNK_HEADER,
    NEW_SPACE,
    OLD_SPACE,
    OLD_TO_NEW,
    T_NEW_LIMIT,
    T_NEW_TOP,
    T_OLD_LIMIT,
    T_OLD_TOP,
)
from memsim.sim.v8.objects import (
    BYTE_ARRAY,
    FILLER,
    FREE_SPACE,
    JS_ARRAY_BUFFER,
    JS_OBJECT,
    is_forwarded,
    is_smi,
    itype_of,
    nfields_of,
    size_of,
    untag,
)

LIVE_TYPES = (JS_OBJECT, BYTE_ARRAY, JS_ARRAY_BUFFER)


class HeapCorrupt(Exception):
    pass


def _walk(h: HeapContext, start: int, end: int, objects: dict[int, int]) -> None:
    """Record every live object in [start, end) as address -> map word."""
    d = h.dmap
    lab_top, lab_limit = int(h.top[T_OLD_TOP]), int(h.top[T_OLD_LIMIT])
    at = start
    while at < end:
        if at == lab_top and lab_top:  # old space's linear allocation area: not yet objects
            at = lab_limit
            continue
        mw = d.load(at)
        if is_forwarded(mw):
            raise HeapCorrupt(f"a forwarding word at {at:#x} outside a collection")
        t = itype_of(mw)
        if t not in (JS_OBJECT, BYTE_ARRAY, JS_ARRAY_BUFFER, FREE_SPACE, FILLER):
            raise HeapCorrupt(f"an unknown instance type {t} at {at:#x}")
        size = size_of(mw)
        if at + size > end:
            raise HeapCorrupt(f"the object at {at:#x} ({size} bytes) runs past its area's end {end:#x}")
        if t in LIVE_TYPES:
            objects[at] = mw
        at += size


def _pages(h: HeapContext) -> list[tuple[int, int, int]]:
    """(page, area start, area end) of every page to walk, checking each header."""
    out = []
    to = new_space.to_space(h)
    top, current = int(h.top[T_NEW_TOP]), int(h.top[T_NEW_LIMIT]) - h.g.page_size
    for page in range(to, current + 1, h.g.page_size):  # pages before top's are full to their end
        out.append((page, page + CHUNK_HEADER, top if page == current else page + h.g.page_size))
    for old in np.flatnonzero(h.a.pg_space[h.iso] == OLD_SPACE):
        page = h.bounds.page(int(old))
        out.append((page, page + CHUNK_HEADER, page + h.g.page_size))
    for slot, size in large_object_space.objects(h):
        page = h.bounds.page(slot)
        out.append((page, page + CHUNK_HEADER, page + CHUNK_HEADER + ((size + 7) & ~7)))
    for page, _, _ in out:
        if h.dmap.load(page + 8 * mc.W_MAGIC) != mc.MAGIC or h.dmap.load(page + 8 * mc.W_OWNER) != (
                h.iso << 32 | h.bounds.slot(page)):
            raise HeapCorrupt(f"the chunk header of page {page:#x} is not whole")
    return out


def _check_refs(h: HeapContext, objects: dict[int, int]) -> None:
    d = h.dmap
    for addr, mw in objects.items():
        if itype_of(mw) != JS_OBJECT:
            continue
        old_host = not h.bounds.in_new(addr)
        for i in range(nfields_of(mw)):
            slot = addr + 8 + 8 * i
            w = d.load(slot)
            if is_smi(w):
                continue
            target = untag(w)
            if target not in objects:
                raise HeapCorrupt(f"field {i} of {addr:#x} points at {target:#x}, which is not a live object")
            if old_host and h.bounds.in_new(target) and not h.barrier_off and not h.rset.contains(OLD_TO_NEW, slot):
                raise HeapCorrupt(f"the old-to-new slot {slot:#x} (field {i} of {addr:#x}) is not remembered")


def problems(h: HeapContext) -> str:
    """The first thing wrong with the heap, or "" if it verifies."""
    try:
        objects: dict[int, int] = {}
        for _, start, end in _pages(h):
            _walk(h, start, end, objects)
        _check_refs(h, objects)
        for w in h.handles.root_words():
            if not is_smi(int(w)) and untag(int(w)) not in objects:
                raise HeapCorrupt(f"a handle holds {int(w):#x}, which is not a live object")
        if int(h.a.pg_space[h.iso, h.bounds.slot(new_space.to_space(h))]) != NEW_SPACE:
            raise HeapCorrupt("to-space's first page is not a new-space page")
    except HeapCorrupt as e:
        return str(e)
    return ""


def verify(h: HeapContext) -> None:
    bad = problems(h)
    if bad:
        raise FailedPrecondition(f"isolate {h.iso}: the heap does not verify: {bad}")
