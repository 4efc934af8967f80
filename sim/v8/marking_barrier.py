"""The marking barrier: V8's MarkingBarrier (`src/heap/marking-barrier.cc`), Write -> MarkValue, a
Dijkstra-style insertion barrier for incremental marking.

While a marking cycle runs (incremental_marking.py), every page carries INCREMENTAL_MARKING, and
write_barrier.for_store calls `write` for every store of a reference into an object on such a
page (new pages too, as V8's barrier runs for any host on a marking page), before the
generational part. `write` greys the value if it is white: its mark bit set and the object pushed
on the marking worklist (worklist.py's marking pool, the main thread's segment; the white->grey
turn is an atomic `lock or`, as concurrent marking's helpers may grey the same object), so that no black
object ever points at a white one (the strong tri-colour invariant), whatever the mutator stores
into objects marking has already visited. A store into a white or grey host greys the value too,
as V8's MarkValue does: it does not read the host's colour.

V8's Write also records the slot for compaction (MarkCompactCollector::RecordSlot into OLD_TO_OLD)
when the cycle compacts; this heap has no OLD_TO_OLD: candidates are chosen in the pause and
pointers updated by walking the live objects (mark_compact.py), so there is nothing to record.

`C_MARKING_BARRIER_OFF` (iso_cfg, set only from the sim, `Isolate.testing(marking_barrier_off=True)`)
skips the greying: the test that proves an object stored into a black object survives the cycle
uses it to show that the same test fails without the barrier.

Owns nothing; touches `v8_markbits` and the marking worklist, with the isolate's locker held.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.machine import atomics
from memsim.sim.v8 import marking
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.layout import C_MARKING_BARRIER_OFF


def write(h: HeapContext, value_addr: int) -> bool:
    """MarkingBarrier::Write's MarkValue for a reference to the object at `value_addr`: True if it
    was white and is grey now."""
    if h.cfg[C_MARKING_BARRIER_OFF]:
        return False
    bits = h.a.v8_markbits
    b = h.dmap.index(value_addr) - marking.bitbase(h)
    m = np.uint64(1) << np.uint64(b & 63)
    if bits[b >> 6] & m or atomics.fetch_or(bits, b >> 6, m) & m:  # a helper core may grey it first
        return False
    marking.push(h, value_addr)
    return True

