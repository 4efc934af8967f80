"""ArrayBuffer backing stores: V8's ArrayBufferExtension and ArrayBufferSweeper
(`src/heap/array-buffer-sweeper.cc`).

An ArrayBuffer's bytes live outside the managed heap, as in V8 (`external` and `arrayBuffers` in
Node's process.memoryUsage()): here in the machine's Go-style allocator (sim/alloc,
`Heap.malloc`), recorded for the isolate's client. The JS_ARRAY_BUFFER object holds its byte
length and the index of its extension row (`ext_*`). The collectors mark a row when they find its
holder alive: 1 = the holder is in new space, 2 = in old space. After a scavenge the young rows are
swept (unmarked ones freed: their holders died young; those marked 2 were promoted and move to the
old list); after a mark-compact every row is. A row is FREE, YOUNG or OLD, as V8 keeps a young and
an old extension list, so that a scavenge sweeps only the young ones.

Owns: `ext_*` rows of one isolate. Touches: sim/alloc's heap (malloc, free, read, write) under the
allocator's own locks, inside the isolate's locker.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.errors import ResourceExhausted
from memsim.sim.v8.context import HeapContext

EXT_FREE, EXT_YOUNG, EXT_OLD = 0, 1, 2
MARK_NONE, MARK_NEW, MARK_OLD = 0, 1, 2


def new_backing_store(h: HeapContext, byte_length: int, old: bool) -> int:
    """Allocate a zeroed backing store; its extension row."""
    a, i = h.a, h.iso
    free = np.flatnonzero(a.ext_state[i] == EXT_FREE)
    if not free.size:
        raise ResourceExhausted(f"isolate {i}: all {a.ext_state.shape[1]} ArrayBuffer backing stores are in use")
    row = int(free[0])
    addr = 0
    if byte_length:
        addr = h.alloc.malloc(byte_length, h.client).address
        h.alloc.write(addr, 0, bytes(byte_length))
    a.ext_addr[i, row], a.ext_len[i, row] = addr, byte_length
    a.ext_state[i, row] = EXT_OLD if old else EXT_YOUNG
    a.ext_mark[i, row] = MARK_NONE
    return row


def _free_rows(h: HeapContext, rows: np.ndarray) -> int:
    a, i = h.a, h.iso
    freed = 0
    for r in rows:
        addr = int(a.ext_addr[i, r])
        if addr:
            h.alloc.free(addr)
        freed += int(a.ext_len[i, r])
        a.ext_state[i, r] = EXT_FREE
        a.ext_addr[i, r] = a.ext_len[i, r] = 0
    return freed


def sweep_young(h: HeapContext) -> int:
    """After a scavenge: free the young rows nobody marked, age the promoted; bytes freed."""
    a, i = h.a, h.iso
    young = a.ext_state[i] == EXT_YOUNG
    freed = _free_rows(h, np.flatnonzero(young & (a.ext_mark[i] == MARK_NONE)))
    a.ext_state[i][young & (a.ext_mark[i] == MARK_OLD)] = EXT_OLD
    a.ext_mark[i] = MARK_NONE
    return freed


def sweep_full(h: HeapContext) -> int:
    """After a mark-compact: free every row nobody marked; the rest are young or old by their mark."""
    a, i = h.a, h.iso
    used = a.ext_state[i] != EXT_FREE
    freed = _free_rows(h, np.flatnonzero(used & (a.ext_mark[i] == MARK_NONE)))
    a.ext_state[i][used & (a.ext_mark[i] == MARK_NEW)] = EXT_YOUNG
    a.ext_state[i][used & (a.ext_mark[i] == MARK_OLD)] = EXT_OLD
    a.ext_mark[i] = MARK_NONE
    return freed


def release_all(h: HeapContext) -> None:
    """The isolate goes: free every backing store."""
    _free_rows(h, np.flatnonzero(h.a.ext_state[h.iso] != EXT_FREE))


def external_bytes(h: HeapContext) -> int:
    a, i = h.a, h.iso
    return int(a.ext_len[i][a.ext_state[i] != EXT_FREE].sum())


def check_row(h: HeapContext, row: int) -> tuple[int, int]:
    """(address, length) of a live row."""
    return int(h.a.ext_addr[h.iso, row]), int(h.a.ext_len[h.iso, row])
