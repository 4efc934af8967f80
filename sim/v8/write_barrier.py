"""The write barrier: V8's `heap-write-barrier.cc` and `src/heap/WRITE_BARRIER.md`.

Every store of a tagged value into a heap object runs `for_store(host, slot, value)` *before* the
word is written (V8 writes first; recording first means a core dying between the two leaves only a
spare remembered slot, which the scavenger drops, never a missing one):

1. a Smi is not a pointer: nothing to do;
   the host's page has INCREMENTAL_MARKING (a marking cycle runs, incremental_marking.py): the
   marking barrier greys a white value (marking_barrier.py), for any host, new pages included,
   so this test comes before the generational early return below;
2. the host's page lacks POINTERS_FROM_HERE_ARE_INTERESTING (a new-space page): nothing to do,
   since the scavenger visits every new object anyway;
3. the value's page has POINTERS_TO_HERE_ARE_INTERESTING (new space): the generational barrier
   records the slot in the host page's OLD_TO_NEW set (remembered_set.py), which makes it a
   root of the next scavenge.

Steps 1 and 2 are the fast path, the flag tests V8 inlines; 3 is the slow path, counted.

`C_BARRIER_OFF` (iso_cfg, set only from the sim, never from the wire) skips step 3: the test that
proves an object reachable only through an old-to-new pointer survives a scavenge uses it to
show that the same test fails without the barrier.
"""

from __future__ import annotations

from memsim.sim.v8 import marking_barrier
from memsim.sim.v8 import memory_chunk as mc
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.layout import OLD_TO_NEW, T_BARRIER_SLOW
from memsim.sim.v8.objects import is_smi, untag


def for_store(h: HeapContext, host: int, slot: int, value: int) -> bool:
    """Run the barrier for storing tagged `value` at `slot` of object `host`; True on the slow path."""
    if is_smi(value):
        return False
    ps = h.g.page_size
    host_flags = mc.flags(h.dmap, mc.chunk_of(host, ps))
    target = untag(value)
    if host_flags & mc.INCREMENTAL_MARKING:
        marking_barrier.write(h, target)
    if not host_flags & mc.POINTERS_FROM_HERE_ARE_INTERESTING:
        return False
    if not h.bounds.in_new(target):
        return False
    if not mc.flags(h.dmap, mc.chunk_of(target, ps)) & mc.POINTERS_TO_HERE_ARE_INTERESTING:
        return False
    h.top[T_BARRIER_SLOW] += 1
    if not h.barrier_off:
        h.rset.insert(OLD_TO_NEW, slot)
    return True
