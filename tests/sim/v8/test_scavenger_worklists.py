"""The scavenger on segmented worklists (sim/v8/scavenger.py, worklist.py) where the pool's fixed
size shows: more copies wait to be scanned at once than the pool's NSEG x SEG entries.

An old (large) object holds one young child per field, each child holding a young grandchild;
its OLD_TO_NEW slots are the scavenge's roots, so every child is copied and pushed before any is
scanned, and the pool overflows: the entries that did not fit are dropped and found again by the
overflow rescan. Every grandchild must survive with its value (the rescan is what copies the
grandchildren of dropped children: without it they would be left in from-space, which the
verifier and the reads below catch), and the event shows the extra scans (objects scanned >
objects copied).
"""

from __future__ import annotations

from memsim.sim.v8 import verifier
from memsim.sim.v8 import worklist as wl

PAGE = 64 << 10


def test_a_pool_overflow_is_rescanned_and_loses_nothing(v8):
    n = wl.NSEG * wl.SEG + 4000
    iso_id = v8.create_isolate(semi_space_size=24 * PAGE, max_old_space_size=32 * PAGE)
    with v8.enter(iso_id) as iso:
        big = iso.make_persistent(iso.new_object(nfields=n))  # above half a page: a large object, old
        for lo in range(0, n, 1000):
            iso.open_scope()
            for i in range(lo, min(n, lo + 1000)):
                iso.set_field(big, i, iso.new_object([iso.new_object([i])]))
            iso.close_scope()
        ev = iso.gc(minor=True)
        assert verifier.problems(iso.h) == ""
        assert ev.kind == "Scavenge" and ev.nodes_copied_in_new == 2 * n
        assert ev.objects_scanned > 2 * n  # the rescan scanned the survivors again
        for i in range(0, n, 97):
            iso.open_scope()
            child = iso.get_field(big, i)
            assert iso.get_field(iso.get_field(child, 0), 0) == i
            iso.close_scope()
