"""Incremental marking (sim/v8/incremental_marking.py, marking.py, marking_barrier.py) on a real machine:

- the marking barrier: an object stored into a black one while the cycle runs, and no longer
  anywhere else, survives the cycle; with the barrier off (a test hook) it is reclaimed, so the
  test can fail;
- a scavenge in the middle of a cycle gives each copy its original's colour, rewrites the marking
  worklist and clears from-space's bits;
- a core that dies in a marking step, or in the mutator while a cycle runs: the cycle is dropped,
  the isolate stays live and verified;
- the marking kernels leave the same colours and heap compiled and interpreted (NUMBA_DISABLE_JIT=1);
- allocation past the limit starts a cycle, the observers step it, the finalising Mark-Compact's
  trace line carries V8's incremental suffix, and the oracle holds.
"""

from __future__ import annotations

import hashlib
import re

from memsim.sim.system import Machine, MachineConfig
from memsim.sim.v8 import incremental_marking, marking, verifier
from memsim.sim.v8.heap import now_ms
from memsim.sim.v8.layout import LIVE, M_STATE, MARKING_ON, MC_MARK_STEP, MUTATOR
from memsim.sim.v8.memory_chunk import INCREMENTAL_MARKING, chunk_of, flags
from memsim.sim.v8.tracer_incremental import steps
from tests.sim.v8.mirror import mirrored_isolate, small_machine
from tests.sim.v8.test_scavenger import interpreted, objects_digest

PAGE = 64 << 10


def _step_until(iso, done, limit=10_000):
    for _ in range(limit):
        if done():
            return
        incremental_marking.step(iso.h, now_ms(iso.h))
    raise AssertionError("marking never reached the state the test needs")


def _barrier_scenario(v8, barrier_off: bool) -> tuple[bool, int, int]:
    """Globals B then A (A is pushed last, so it pops first); X only in B's field. Step one object at
    a time until A is black, B grey, X white; then A.f = X; B.f = 0; finish. (X's field still read
    back as X, heapUsed after, X's size)."""
    iso_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=16 * PAGE)
    with v8.enter(iso_id) as iso:
        h = iso.h
        iso.open_scope()
        x = iso.new_string(b"only in B.f", pretenure=True)
        gb = iso.make_persistent(iso.new_object([x], pretenure=True))
        ga = iso.make_persistent(iso.new_object([0], pretenure=True))
        iso.close_scope()
        iso.testing(marking_barrier_off=barrier_off, step_bytes=8)  # a step blackens one object
        incremental_marking.start(h, now_ms(h))
        addr = {name: iso.address_of(g) for name, g in (("A", ga), ("B", gb))}
        _step_until(iso, lambda: marking.is_black(h, addr["A"]))
        iso.open_scope()
        xh = iso.get_field(gb, 0)
        x_addr, x_size = iso.address_of(xh), 8 + 16
        assert marking.is_marked(h, addr["B"]) and not marking.is_black(h, addr["B"]), "B is grey"
        assert not marking.is_marked(h, x_addr), "X is white"
        iso.set_field(ga, 0, xh)
        iso.set_field(gb, 0, 0)
        iso.close_scope()
        ev = iso.gc()
        assert ev.incremental_walltime_ms > 0 and not marking.active(h)
        survived = not verifier.problems(h)
        if survived:
            iso.open_scope()
            assert iso.read_payload(iso.get_field(ga, 0)) == b"only in B.f"
            iso.close_scope()
        used = iso.memory_usage()["heapUsed"]
    v8.destroy_isolate(iso_id)
    return survived, used, x_size


def test_the_marking_barrier_keeps_an_object_stored_into_a_black_one(v8):
    survived, used, _ = _barrier_scenario(v8, barrier_off=False)
    assert survived
    lost, used_off, x_size = _barrier_scenario(v8, barrier_off=True)
    assert not lost, "without the marking barrier X is reclaimed while A still points at it"
    assert used - used_off == x_size


def test_a_scavenge_while_marking_keeps_colours_and_the_worklist(v8):
    iso_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=16 * PAGE)
    with v8.enter(iso_id) as iso:
        h = iso.h
        iso.testing(verify_heap=True, step_bytes=8)
        iso.open_scope()
        leaf = iso.new_string(b"leaf")
        young = [iso.make_persistent(iso.new_object([leaf, k])) for k in range(6)]
        iso.new_object([1])  # garbage: dies in the scavenge
        iso.close_scope()
        incremental_marking.start(h, now_ms(h))
        assert all(flags(h.dmap, chunk_of(iso.address_of(g), PAGE)) & INCREMENTAL_MARKING for g in young)
        _step_until(iso, lambda: sum(marking.is_black(h, iso.address_of(g)) for g in young) >= 3)
        colour = {g: (marking.is_marked(h, iso.address_of(g)), marking.is_black(h, iso.address_of(g))) for g in young}
        before = {g: iso.address_of(g) for g in young}
        assert {c for c in colour.values()} == {(True, True), (True, False)}, "some black, some grey"
        iso.gc(minor=True)
        assert marking.active(h)
        for g in young:
            assert iso.address_of(g) != before[g]
            assert (marking.is_marked(h, iso.address_of(g)), marking.is_black(h, iso.address_of(g))) == colour[g]
            assert flags(h.dmap, chunk_of(iso.address_of(g), PAGE)) & INCREMENTAL_MARKING
        iso.gc(minor=True)  # the survivors are promoted: their colour goes to old space
        assert all(iso.space_of(g) == "old_space" for g in young)
        assert [marking.is_black(h, iso.address_of(g)) for g in young] == [colour[g][1] for g in young]
        ev = iso.gc()
        assert not marking.active(h) and ev.incremental_walltime_ms > 0
        for k, g in enumerate(young):
            assert iso.get_field(g, 1) == k and iso.read_payload(iso.get_field(g, 0)) == b"leaf"
        assert not h.a.v8_markbits[marking.frame_rows(h)].any() and not h.a.v8_blackbits[marking.frame_rows(h)].any()
    v8.destroy_isolate(iso_id)


def test_a_core_dead_in_a_marking_step_or_the_mutator_drops_the_cycle(machine, v8):
    iso_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=16 * PAGE)
    for phase in (MC_MARK_STEP, MUTATOR):
        with v8.enter(iso_id) as iso:
            g = iso.make_persistent(iso.new_object([iso.new_string(b"kept")], pretenure=True))
            iso.testing(step_bytes=8)
            incremental_marking.start(iso.h, now_ms(iso.h))
            incremental_marking.step(iso.h, now_ms(iso.h))
            assert machine.meta["iso_marking"][iso_id, M_STATE] == MARKING_ON
        machine.meta["iso_phase"][iso_id] = phase  # as a core killed inside a step (or a call) leaves it
        machine.meta["iso_holder"][iso_id] = 1
        with v8.enter(iso_id) as iso:
            h = iso.h
            assert not marking.active(h)
            assert not h.a.v8_markbits[marking.frame_rows(h)].any() and not h.a.pg_live[iso_id].any()
            assert not any(flags(h.dmap, p) & INCREMENTAL_MARKING for p in incremental_marking.pages(h))
            assert iso.read_payload(iso.get_field(g, 0)) == b"kept"
            iso.gc()
            assert verifier.problems(h) == ""
        assert machine.meta["iso_state"][iso_id] == LIVE
    v8.destroy_isolate(iso_id)


SUFFIX = re.compile(r" MB, \d+\.\d\d / 0\.00 ms  \(\+ \d+\.\d ms in (\d+) steps since start of marking, biggest step "
                    r"\d+\.\d ms, walltime since start of marking \d+ ms\) \(average mu = ")


def test_the_limit_starts_a_cycle_that_steps_and_finalises_with_v8s_suffix():
    with small_machine() as m, mirrored_isolate(m, max_old_space_size=16 * PAGE, growing_factor=1.1) as mi:
        mi.iso.testing(incremental_marking=True, step_bytes=32 << 10)
        keep = mi.make_persistent(mi.new_object(nfields=1, pretenure=True))
        for k in range(4000):
            if any(t.reason.startswith("finalize incremental marking") for t in mi.gcs) and k % 50 == 0:
                break
            mi.open_scope()
            node = mi.new_object([k, 0], payload=b"x" * 1500, pretenure=k % 2 == 0)
            if k % 4 < 2:  # a list that keeps half of them: old space grows, the limit is met
                mi.set_field(node, 1, mi.get_field(keep, 0))
                mi.set_field(keep, 0, node)
            if k % 50 == 49:
                mi.set_field(keep, 0, 0)  # and drops them now and then: garbage for the cycle to find
            mi.close_scope()
            if k % 20 == 0:
                mi.check_figures()
        mi.sync()
        mi.gc()
        mi.check_graph()
        events = mi.iso.trace()
        done = [e for e in events if e.kind == "Mark-Compact" and e.incremental_steps > 0]
        assert done, [e.line for e in events]
        for e in done:
            match = SUFFIX.search(e.line)
            assert match and int(match.group(1)) == e.incremental_steps, e.line
            assert len(e.marking_step_ms) == len(e.marking_step_start_ms) == e.incremental_steps  # (ring: 256)
            assert max(e.marking_step_ms) == e.incremental_longest_ms
        assert any(e.reason == "finalize incremental marking via stack guard" for e in done), [e.line for e in done]
        got = steps(mi.iso.h.a.tr_steps, mi.iso.h.a.tr_inc, mi.iso.id)
        assert len(got) >= sum(e.incremental_steps for e in done) > 0



def marking_digest() -> str:
    """A deterministic cycle: a tree, steps, stores through the barrier, a scavenge in the middle, an
    overflow rescan, more steps; a digest of both bitmaps over the isolate's frames, then of every
    object's bytes after the finishing Mark-Compact."""
    m = Machine.create(MachineConfig(vm_memory=16 * (1 << 20), v8_page_size=PAGE, v8_isolates=1))
    try:
        v8 = m.v8(0, m.heap(0))
        with v8.enter(v8.create_isolate(semi_space_size=2 * PAGE, max_old_space_size=16 * PAGE)) as iso:
            h, digest = iso.h, hashlib.sha256()
            iso.open_scope()
            nodes = [iso.new_object([k, 0, 0], payload=bytes([k % 251]) * 24, pretenure=k % 3 == 0) for k in range(600)]
            for k in range(1, 600):
                iso.set_field(nodes[(k - 1) // 2], 1 + (k - 1) % 2, nodes[k])
            root = iso.make_persistent(nodes[0])
            iso.close_scope()
            iso.testing(step_bytes=512)
            incremental_marking.start(h, 0.0)
            for k in range(40):
                incremental_marking.step(h, 0.0)
                iso.open_scope()
                iso.set_field(root, 0, iso.new_object([k], payload=b"fresh"))
                iso.close_scope()
                if k == 20:
                    iso.gc(minor=True)
                    marking.rescan(h)
            rows = marking.frame_rows(h)
            digest.update(h.a.v8_markbits[rows].tobytes() + h.a.v8_blackbits[rows].tobytes())
            iso.gc()
            objects_digest(h, digest)
            return digest.hexdigest()
    finally:
        m.destroy()


def test_jit_and_interpreted_marking_kernels_agree():
    assert interpreted("tests.sim.v8.test_incremental_marking", "marking_digest") == marking_digest()
