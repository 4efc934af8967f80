"""The scavenger's parallel kernel in one process (sim/v8/scavenge_kernels.py, scavenger.py's
test hooks): two tasks take turns, each with its own LABs and worklist segments, both taking every
root and remembered slot (legal: updating a slot twice gives the same word).

- with the race hook every copy stops between its body and its forwarding CAS, so the other task
  copies the same object and one of the two loses the CAS: cas_fail > 0, the loser's copy is given
  back, and the oracle (tests/sim/v8/mirror.py) holds after every scavenge;
- content stamps: every object carries its oid as its payload; after the scavenge every reachable
  oid is found at exactly one address walking the heap's pages (to-space, old pages: a loser's copy
  left behind as an object would show twice);
- the control: the same run with the CAS replaced by a plain store (every task "wins") leaves
  objects copied twice, and the stamps say so (so the stamp test can fail);
- without the race hook two tasks still agree with the oracle;
- the tracer's figures (sim/v8/tracer_parallel.py): the event counts the CAS failures and steals of
  every task; with one task (serial) total CPU is the main's, measured, and no helper joined.
"""

from __future__ import annotations

import random
from collections import Counter

from memsim.sim.v8 import Handle, verifier
from memsim.sim.v8 import scavenge_kernels as k
from memsim.sim.v8.objects import JS_OBJECT, itype_of, payload_len_of
from tests.sim.v8.mirror import PAGE, Mirror, mirrored_isolate, small_machine

STAMP = 8  # payload bytes: the oid, little-endian


def _stamp(m: Mirror, fields: list[Handle]) -> Handle:
    oid = m.model._next_oid  # the oid the model gives the object being made
    h = m.new_object(fields, payload=oid.to_bytes(STAMP, "little"))
    assert m.oid_of[h] == oid
    return h


def _graph(m: Mirror, rng: random.Random, n: int) -> None:
    """n stamped objects: a random DAG, each object pointing at up to three of the 40 made before it
    (so some are shared by several parents), hanging from a few globals among the last made."""
    m.open_scope()
    made: list[Handle] = []
    for _ in range(n):
        made.append(_stamp(m, [rng.choice(made[-40:]) for _ in range(rng.randint(0, 3))] if made else []))
    for h in made[-4:]:
        m.make_persistent(h)
    m.close_scope()


def _stamps(m: Mirror) -> Counter[int]:
    """oid -> how many objects in the heap's pages carry it."""
    h = m.iso.h
    objects: dict[int, int] = {}
    for _, start, end in verifier._pages(h):
        verifier._walk(h, start, end, objects)
    seen: Counter[int] = Counter()
    for addr, mw in objects.items():
        if itype_of(mw) == JS_OBJECT and payload_len_of(mw) == STAMP:
            seen[int.from_bytes(h.dmap.read(addr + 8 * (1 + (mw >> 8 & 0xFFFFFF)), STAMP), "little")] += 1
    return seen


def _cas_failures(m: Mirror, tasks: int) -> int:
    h = m.iso.h
    return sum(int(k.task_row(h.a.gc_task, h.iso, t)[0][k.K_CAS_FAIL]) for t in range(tasks))


def test_two_racing_tasks_lose_cas_and_copy_each_object_once():
    with small_machine() as machine, mirrored_isolate(machine, semi_space_size=4 * PAGE) as m:
        m.iso.testing(scavenge_tasks=2, race_hook=True)
        rng = random.Random(11)
        fails = 0
        for _ in range(3):
            _graph(m, rng, 400)
            m.gc(minor=True)
            fails += _cas_failures(m, 2)
            m.check_graph()
            reachable = m.model.reachable()
            seen = _stamps(m)
            assert all(seen[oid] == 1 for oid in reachable), {oid: seen[oid] for oid in reachable if seen[oid] != 1}
        assert fails > 0


def test_control_a_plain_store_copies_objects_twice():
    with small_machine() as machine, mirrored_isolate(machine, semi_space_size=4 * PAGE, verify_heap=False) as m:
        m.iso.testing(scavenge_tasks=2, race_hook=True, no_cas=True)
        _graph(m, random.Random(11), 400)
        m.iso.gc(minor=True)
        seen = _stamps(m)
        assert any(seen[oid] > 1 for oid in m.model.reachable())


def test_two_tasks_without_the_hook_keep_the_oracle():
    with small_machine() as machine, mirrored_isolate(machine, semi_space_size=4 * PAGE) as m:
        m.iso.testing(scavenge_tasks=2)
        rng = random.Random(5)
        for _ in range(4):
            _graph(m, rng, 500)
            m.gc(minor=True)
            m.check_graph()


def test_the_event_counts_every_tasks_cas_failures_and_serial_cpu_is_the_mains():
    with small_machine() as machine, mirrored_isolate(machine, semi_space_size=4 * PAGE) as m:
        _graph(m, random.Random(3), 400)
        ev = m.iso.gc(minor=True)
        assert ev.helpers == ev.helper_objects == ev.cas_failures == 0
        assert ev.total_cpu_ms == ev.main_cpu_ms > 0 and "scavenge.parallel=0.00" in ev.nvp
        m.iso.testing(scavenge_tasks=2, race_hook=True)
        _graph(m, random.Random(4), 400)
        ev = m.iso.gc(minor=True)
        assert ev.cas_failures == _cas_failures(m, 2) > 0
        assert ev.helpers == 0 and ev.total_cpu_ms >= ev.main_cpu_ms > 0  # two tasks, one process
