"""The isolate table and the heap's place in the VM (sim/v8/isolate_table.py, direct_map.py):

- heapTotal is the committed heap pages, which are exactly the VM's resident heap-region bytes
  of the isolate's space, and they are pinned long-term (never reclaimed);
- destroying an isolate gives every frame and pin back; a client may read its space but not change it;
- geometry and size arguments are checked before anything is made;
- leases: release(owner) and reap(now) destroy what an owner held;
- recovery: a locker that finds a mutator's phase verifies the heap and goes on; one that finds a
  collection's phase (its holder died mid-GC) reports the isolate LOST, with every frame released.
"""

from __future__ import annotations

import pytest

from memsim.sim.errors import FailedPrecondition, InvalidArgument, NotFound, OutOfRange, ResourceExhausted
from memsim.sim.system import MachineConfig
from memsim.sim.v8.layout import C_MAX_OLD, MC_EVACUATE, MUTATOR, SCAVENGE
from memsim.sim.vm.layout import M_PINNED

KiB, MiB = 1 << 10, 1 << 20
PAGE = 64 * KiB


def test_heap_total_is_the_vms_resident_heap_and_pinned(machine, v8):
    iso_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=8 * PAGE)
    space = v8.list_isolates()[0].space
    vm = machine.vm(0)
    with v8.enter(iso_id) as iso:
        for _ in range(20):
            iso.new_object(nfields=64, pretenure=True)  # commits old pages
        iso.new_object(nfields=5000)  # a large object: a chunk of its own
        usage = iso.memory_usage()
    assert usage["heapTotal"] == vm.memory_usage(space)["heapUsed"]
    assert usage["heapTotal"] > 2 * PAGE
    assert usage["rss"] >= usage["heapTotal"]
    assert int(vm.a.vm_meta[M_PINNED]) * machine.config.frame_size == usage["heapTotal"]
    with pytest.raises(FailedPrecondition, match="managed heap"):
        vm.check_client_may_change(space, "store")


def test_destroy_gives_back_every_frame_and_pin(machine, v8):
    vm = machine.vm(0)
    free_before = int(vm.a.vm_free.sum())
    iso_id = v8.create_isolate(semi_space_size=2 * PAGE, max_old_space_size=8 * PAGE)
    with v8.enter(iso_id) as iso:
        ab = iso.new_array_buffer(1000)
        iso.write_backing(ab, 0, b"x" * 1000)
        iso.new_object(nfields=3, pretenure=True)
    assert int(vm.a.vm_free.sum()) < free_before
    v8.destroy_isolate(iso_id)
    assert int(vm.a.vm_free.sum()) == free_before
    assert int(vm.a.vm_meta[M_PINNED]) == 0
    assert not (machine.meta["v8_markbits"].any() or machine.meta["v8_slots"].any())
    assert v8.list_isolates() == []
    with pytest.raises(NotFound):
        v8.destroy_isolate(iso_id)
    with pytest.raises(FailedPrecondition, match="does not exist"), v8.enter(iso_id):
        pass


def test_bad_sizes_are_refused_before_anything_is_made(machine, v8):
    for kwargs in ({"semi_space_size": 1000}, {"semi_space_size": 0}, {"max_old_space_size": PAGE + 1},
                   {"growing_factor": 0.5}, {"max_old_space_size": 1 << 40}, {"owner": 5}):
        with pytest.raises(InvalidArgument):
            v8.create_isolate(**kwargs)
    assert v8.list_isolates() == [] and int(machine.vm(0).a.sp_state.sum()) == 0
    with pytest.raises(NotFound):
        v8.destroy_isolate(99)
    for bad in ({"v8_page_size": 3000}, {"v8_max_heap": 100}, {"v8_isolates": 0}):
        with pytest.raises(InvalidArgument):
            MachineConfig(vm_memory=16 * MiB, **bad).validate()


def test_isolates_are_independent_and_handles_do_not_cross(v8):
    a, b = v8.create_isolate(semi_space_size=PAGE), v8.create_isolate(semi_space_size=PAGE)
    with v8.enter(a) as ia:
        ha = ia.new_object([7])
    with v8.enter(b) as ib:
        with pytest.raises(FailedPrecondition, match=f"belongs to isolate {a}"):
            ib.get_field(ha, 0)
        hb = ib.new_object([8])
        with pytest.raises(OutOfRange):
            ib.get_field(hb, 1)
    with v8.enter(a) as ia:
        assert ia.get_field(ha, 0) == 7


def test_leases_release_and_reap(v8):
    mine = v8.create_isolate(semi_space_size=PAGE, owner=11, lease=5.0, now=100.0)
    kept = v8.create_isolate(semi_space_size=PAGE)
    other = v8.create_isolate(semi_space_size=PAGE, owner=12, lease=5.0, now=100.0)
    assert v8.renew(11, 103.0) == 1
    assert v8.reap(106.0) == [other]
    assert v8.release(11) == [mine]
    assert [i.id for i in v8.list_isolates()] == [kept]


def test_a_dead_mutator_is_recovered_when_the_heap_verifies(machine, v8):
    iso_id = v8.create_isolate(semi_space_size=PAGE)
    with v8.enter(iso_id) as iso:
        g = iso.make_persistent(iso.new_object([1, 2, 3]))
    machine.meta["iso_phase"][iso_id] = MUTATOR  # as a core killed inside a call leaves it
    with v8.enter(iso_id) as iso:
        assert iso.get_field(g, 2) == 3


@pytest.mark.parametrize("phase", [SCAVENGE, MC_EVACUATE])
def test_a_core_dead_in_a_collection_leaves_the_isolate_lost_and_released(machine, v8, phase):
    vm = machine.vm(0)
    free_before = int(vm.a.vm_free.sum())
    iso_id = v8.create_isolate(semi_space_size=PAGE)
    survivor = v8.create_isolate(semi_space_size=PAGE)
    with v8.enter(survivor) as iso:
        g = iso.make_persistent(iso.new_string(b"still here"))
    machine.meta["iso_phase"][iso_id] = phase
    machine.meta["iso_holder"][iso_id] = 1
    with pytest.raises(FailedPrecondition, match=f"isolate {iso_id} was lost: core 1 died"), v8.enter(iso_id):
        pass
    with pytest.raises(FailedPrecondition, match="was lost"), v8.enter(iso_id):
        pass
    assert [i.state for i in v8.list_isolates() if i.id == iso_id] == ["lost"]
    with v8.enter(survivor) as iso:
        assert iso.read_payload(g) == b"still here"
    v8.destroy_isolate(iso_id)
    v8.destroy_isolate(survivor)
    assert int(vm.a.vm_free.sum()) == free_before


def test_a_create_the_pool_refuses_leaves_its_row_free(machine, v8):
    big = {"semi_space_size": 12 * PAGE, "max_old_space_size": 16 * PAGE}  # 1.5 MiB of semispaces each
    made = [v8.create_isolate(**big), v8.create_isolate(**big)]  # the pin limit is 4 MiB of the 16 MiB pool
    for _ in range(10):
        with pytest.raises(ResourceExhausted, match="frame pool"):
            v8.create_isolate(**big)
    assert [i.id for i in v8.list_isolates()] == made
    small = [v8.create_isolate(semi_space_size=PAGE), v8.create_isolate(semi_space_size=PAGE)]
    with pytest.raises(ResourceExhausted, match="all 4 isolates are in use"):
        v8.create_isolate(semi_space_size=PAGE)
    for i in made + small:
        v8.destroy_isolate(i)
    assert int(machine.vm(0).a.vm_meta[M_PINNED]) == 0
    assert len([v8.create_isolate(semi_space_size=PAGE) for _ in range(4)]) == 4


def test_a_stale_reap_list_never_destroys_the_rows_next_holder(machine, v8):
    other = machine.v8(1, machine.heap(1))
    old = v8.create_isolate(semi_space_size=PAGE, owner=0xA, lease=1.0, now=0.0)
    stale = v8.expired(5.0)  # made without the locks, as a core's lease reaper makes it
    assert stale == [old]
    assert other.reap(5.0) == [old]  # another core reaps it first
    new = other.create_isolate(semi_space_size=PAGE, owner=0xB, lease=600.0, now=5.0)
    assert new == old  # the lowest free row: the same one
    assert not v8.destroy_if_held(new, 0xA, expired_at=5.0)  # the stale list's destroy checks again, and refuses
    assert v8.reap(5.0) == [] and v8.release(0xA) == []
    with v8.enter(new) as iso:
        iso.new_object([1])


def test_backing_stores_are_bounded_by_the_isolates_limit(machine, v8):
    iso_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=4 * PAGE)
    with v8.enter(iso_id) as iso:
        for _ in range(3):
            iso.open_scope()
            iso.new_array_buffer(100 * 1024)  # dead once its scope closes: freed by the collection the next needs
            iso.close_scope()
        kept = iso.new_array_buffer(200 * 1024)
        with pytest.raises(ResourceExhausted, match="Array buffer allocation failed"):
            iso.new_array_buffer(100 * 1024)
        assert iso.byte_length(kept) == 200 * 1024
        assert [e.reason for e in iso.trace()].count("external memory pressure") >= 1
        assert iso.memory_usage()["external"] == 200 * 1024


def test_an_array_buffer_whose_backing_store_fails_leaves_the_heap_whole(v8):
    iso_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=32 * PAGE)
    with v8.enter(iso_id) as iso:
        iso.testing(verify_heap=True)
        before = iso.memory_usage()["heapUsed"]
        with pytest.raises((InvalidArgument, ResourceExhausted)):
            iso.new_array_buffer(3 << 20)  # over the isolate's limit for backing stores: refused
        iso.h.cfg[C_MAX_OLD] = 1 << 32  # let the machine's allocator refuse it next, after the object is made
        with pytest.raises((InvalidArgument, ResourceExhausted)):
            iso.new_array_buffer((1 << 31) - 1)
        assert iso.memory_usage()["heapUsed"] == before
        iso.gc(minor=True)
        iso.gc()


def test_a_failed_create_never_destroys_another_space(machine, v8):
    vm = machine.vm(0)
    spaces = []
    with pytest.raises(ResourceExhausted):
        while True:
            spaces.append(vm.create_space())
    assert spaces[0] == 0
    with pytest.raises(ResourceExhausted, match="address spaces"):
        v8.create_isolate(semi_space_size=PAGE)
    assert vm.a.sp_state[0] == 1 and v8.list_isolates() == []
    for sp in spaces:
        vm.destroy_space(sp)
    v8.create_isolate(semi_space_size=PAGE)


def test_a_collection_that_fails_part_way_gives_the_isolate_up(machine, v8, monkeypatch):
    iso_id = v8.create_isolate(semi_space_size=PAGE)
    other = v8.create_isolate(semi_space_size=PAGE)
    with v8.enter(other) as iso:
        g = iso.make_persistent(iso.new_string(b"other"))

    def broken(h, work):
        raise ResourceExhausted("Scavenger: semi-space copy failed (a test's)")

    monkeypatch.setattr("memsim.sim.v8.heap.scavenger.scavenge", broken)
    with v8.enter(iso_id) as iso:
        h = iso.new_object([1])
        with pytest.raises(ResourceExhausted):
            iso.gc(minor=True)
        for op in (lambda: iso.get_field(h, 0), lambda: iso.new_object([2]), iso.open_scope):
            with pytest.raises(FailedPrecondition, match="collection failed part-way"):
                op()  # as a batch's later ops would be: refused, never run on a half-collected heap
    with pytest.raises(FailedPrecondition, match=f"isolate {iso_id} was lost"), v8.enter(iso_id):
        pass
    with v8.enter(other) as iso:
        assert iso.read_payload(g) == b"other"
