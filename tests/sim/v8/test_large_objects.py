"""Large objects (sim/v8/large_object_space.py) at the edges the random tests do not reach:

- a chunk of 128 pages or more is found (its free-run search once summed in int8 and wrapped);
- an old-to-new slot on a large object's second page, recorded by a Mark-Compact that had to keep
  young survivors in new space (old space out of frames), is counted on the slot's own page, so the
  next scavenge visits it and the young object lives.
"""

from __future__ import annotations

from memsim.sim.system import Machine, MachineConfig
from memsim.sim.v8 import verifier
from memsim.sim.vm.gup import MAX_PIN_PAGES

MiB = 1 << 20
PAGE = 64 << 10


def test_a_large_object_of_more_than_127_pages_is_allocated():
    m = Machine.create(MachineConfig(memory_bytes=128 * MiB, vm_memory=80 * MiB, v8_page_size=PAGE, v8_isolates=2))
    try:
        v8 = m.v8(0, m.heap(0))
        iso_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=16 * MiB)
        with v8.enter(iso_id) as iso:
            big = iso.new_object(payload=bytes((130 << 16) - 200))
            assert iso.space_of(big) == "large_object_space"
            assert iso.payload_len(big) == (130 << 16) - 200
            assert verifier.problems(iso.h) == ""
    finally:
        m.destroy()


def test_a_slot_on_a_large_objects_second_page_stays_a_root(machine, v8):
    vm = machine.vm(0)
    iso_id = v8.create_isolate(semi_space_size=2 * PAGE, max_old_space_size=16 * PAGE)
    with v8.enter(iso_id) as iso:
        iso.testing(verify_heap=True)
        big = iso.make_persistent(iso.new_object(nfields=8192))  # two pages: field 8190 is on the second
        iso.set_field(big, 8190, iso.new_object([42]))
        hog = vm.create_space()  # take every frame the pin limit has left, so the Mark-Compact cannot
        region = vm.mmap(hog, 64 << 20, kind="anon")  # commit old pages and keeps the young survivor young
        pins = []
        while True:
            try:
                pins += vm.pin_user_pages(hog, region + len(pins) * 4096, 1)
            except Exception:  # noqa: BLE001  (the pin limit: the only way this loop ends)
                break
            assert len(pins) < MAX_PIN_PAGES
        iso.gc()
        assert iso.space_of(iso.get_field(big, 8190)) == "new_space"
        vm.unpin_user_pages(hog, pins)
        iso.gc(minor=True)
        iso.gc(minor=True)
        assert iso.get_field(iso.get_field(big, 8190), 0) == 42
