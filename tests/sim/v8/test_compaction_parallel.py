"""Mark-compact's parallel evacuation and pointer updating in one process (sim/v8/compaction_job.py,
evacuation_kernels.py): with the test hooks two tasks take turns on forced compactions (every old page
with live objects a candidate), each with its own compaction LAB.

- the race hook: both tasks take every candidate page and every update item, and every copy stops
  between its body and its forwarding CAS, so the other task copies the same object and one loses
  (cas_failures > 0, the loser's copy given back); the oracle (tests/sim/v8/mirror.py) holds and the
  content stamps say every reachable object is at exactly one address;
- the control: the CAS replaced by a plain store leaves objects copied twice (the stamps fail);
- an aborted page in the middle (the abort-for-testing hook, V8's COMPACTION_WAS_ABORTED_FOR_TESTING):
  that page keeps part of its objects while the pages after it are evacuated, and the heap is whole;
- the figures: a serial Mark-Compact's total CPU is its main's, measured, and no helper joined.
"""

from __future__ import annotations

import random
from collections import Counter

from memsim.sim.v8 import Handle, verifier
from memsim.sim.v8.objects import JS_OBJECT, itype_of, payload_len_of
from tests.sim.v8.mirror import PAGE, MiB, Mirror, mirrored_isolate, small_machine
from tests.sim.v8.test_scavenger_parallel import STAMP, _graph, _stamps

MAX_OLD = 4 * MiB


def _old_graph(m: Mirror, seed: int, rounds: int = 3) -> None:
    """Stamped DAGs promoted into old space by full GCs, spread over old pages."""
    rng = random.Random(seed)
    for _ in range(rounds):
        _graph(m, rng, 600)
        m.gc()


def _old_chains(m: Mirror, rounds: int) -> None:
    """Chains of stamped 144-byte objects, one global each, with as many dead objects between them:
    old pages about half live after the full GCs that promote them."""
    for _ in range(rounds):
        m.open_scope()
        prev: list[Handle] = []
        for _ in range(300):
            oid = m.model._next_oid
            prev = [m.new_object(prev + [0] * (16 - len(prev)), payload=oid.to_bytes(STAMP, "little"))]
            m.new_object([0] * 16)  # garbage
        m.make_persistent(prev[0])
        m.close_scope()
        m.gc()


def _addresses(m: Mirror) -> dict[int, int]:
    """oid -> the address of the object carrying its stamp (tests/sim/v8/test_scavenger_parallel's walk)."""
    h = m.iso.h
    objects: dict[int, int] = {}
    for _, start, end in verifier._pages(h):
        verifier._walk(h, start, end, objects)
    out: dict[int, int] = {}
    for addr, mw in objects.items():
        if itype_of(mw) == JS_OBJECT and payload_len_of(mw) == STAMP:
            out[int.from_bytes(h.dmap.read(addr + 8 * (1 + (mw >> 8 & 0xFFFFFF)), STAMP), "little")] = addr
    return out


def _once(m: Mirror) -> None:
    seen = _stamps(m)
    reachable = m.model.reachable()
    assert all(seen[oid] == 1 for oid in reachable), {oid: seen[oid] for oid in reachable if seen[oid] != 1}


def test_two_racing_tasks_evacuate_each_object_once():
    with small_machine() as machine, mirrored_isolate(machine, semi_space_size=4 * PAGE,
                                                      max_old_space_size=MAX_OLD) as m:
        _old_graph(m, 21)
        m.iso.testing(scavenge_tasks=2, race_hook=True, force_compaction=True)
        before = _addresses(m)
        ev = m.iso.gc()
        m.sync()
        assert ev.compacted > 0 and ev.cas_failures > 0
        m.check_graph()
        _once(m)
        after = _addresses(m)
        assert sum(after[oid] != before[oid] for oid in m.model.reachable()) > 0
        _graph(m, random.Random(22), 300)  # and the next collections keep the heap whole
        m.gc()
        m.check_graph()
        _once(m)


def test_control_a_plain_store_evacuates_objects_twice():
    with small_machine() as machine, mirrored_isolate(machine, semi_space_size=4 * PAGE,
                                                      max_old_space_size=MAX_OLD, verify_heap=False) as m:
        _old_graph(m, 21)
        m.iso.testing(scavenge_tasks=2, race_hook=True, no_cas=True, force_compaction=True)
        m.iso.gc()
        seen = _stamps(m)
        assert any(seen[oid] > 1 for oid in m.model.reachable())


def test_a_page_aborted_in_the_middle_keeps_the_heap_whole():
    with small_machine() as machine, mirrored_isolate(machine, semi_space_size=4 * PAGE,
                                                      max_old_space_size=MAX_OLD) as m:
        _old_chains(m, 5)
        m.iso.testing(scavenge_tasks=2, force_compaction=True, abort_compaction=5)
        before = _addresses(m)
        pages: dict[int, list[int]] = {}
        for oid in m.model.reachable():
            pages.setdefault(before[oid] // PAGE, []).append(oid)
        assert len(pages) >= 3
        m.gc()
        m.check_graph()
        _once(m)
        after = _addresses(m)
        split: Counter[tuple[bool, bool]] = Counter()
        for oids in pages.values():
            stayed = sum(after[oid] == before[oid] for oid in oids)
            split[(0 < stayed < len(oids), stayed == len(oids))] += 1
        assert split[(True, False)] == 1, split  # one page aborted part way, moved objects and kept the rest
        assert split[(False, False)] >= 2, split  # the others were evacuated, before and after it
        m.iso.testing(abort_compaction=-1, scavenge_tasks=1)
        m.gc()
        m.check_graph()
        _once(m)


def test_a_serial_mark_compacts_cpu_is_the_mains():
    with small_machine() as machine, mirrored_isolate(machine, semi_space_size=4 * PAGE,
                                                      max_old_space_size=MAX_OLD) as m:
        _old_graph(m, 41)
        m.iso.testing(force_compaction=True)
        ev = m.iso.gc()
        assert ev.compacted > 0 and ev.helpers == ev.helper_objects == ev.cas_failures == 0
        assert ev.total_cpu_ms == ev.main_cpu_ms > 0
