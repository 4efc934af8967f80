"""The VM's requests checked up front, and the calls a new user trips over first.

- CreateSpace: every field of every page-table kind is checked before a space is taken; an
  out-of-range levels or level_bits (stored as int16) is INVALID_ARGUMENT naming the field
  and its range, never INTERNAL, and no space is left behind;
- mprotect / mmap accept 'none' (PROT_NONE, as Linux spells it);
- mmap(hugetlb=True) reserves its huge pages at mmap, as Linux's hugetlb_reserve_pages does:
  a mapping the reservation (vm.nr_hugepages, --hugetlb-pages) cannot cover is refused there
  with RESOURCE_EXHAUSTED, not at its first touch; unmapping or destroying gives them back;
- mmap(huge=True) returns a 2 MiB-aligned address, as Linux's thp_get_unmapped_area does, so
  the mapping's first 2 MiB can be one huge page.
"""

from __future__ import annotations

import pytest

from memsim.client import errors as cerr
from memsim.client.vm import VMClient, prot_bits
from memsim.sim.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from memsim.sim.system import Machine, MachineConfig
from memsim.sim.vm.kinds import KINDS
from memsim.sim.vm.recovery import check
from tests.servers import running_server

MiB = 1 << 20
PAGE = 4096
HUGE = 2 * MiB

# (field, value, the words the refusal must contain) for every kind
BAD_SHAPES = [
    ("levels", 9, "levels"), ("levels", 1 << 15, "levels"), ("levels", 1 << 16, "levels"),
    ("levels", (1 << 32) - 1, "levels"), ("level_bits", 17, "level_bits"), ("level_bits", 1 << 16, "level_bits"),
    ("level_bits", (1 << 32) - 1, "level_bits"), ("bits", 58, "bits"), ("bits", 1 << 16, "bits"),
    ("bits", (1 << 32) - 1, "bits"), ("bits", 13, "bits"),
]


@pytest.fixture
def vm_machine():
    m = Machine.create(MachineConfig(memory_bytes=16 * MiB, cores=1, vm_memory=8 * MiB))
    yield m
    m.destroy()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("field,value,words", BAD_SHAPES)
def test_create_space_refuses_every_out_of_range_field(vm_machine, kind, field, value, words):
    vm = vm_machine.vm(0)
    before = vm.spaces()
    with pytest.raises(InvalidArgument, match=words):
        vm.create_space(kind, **{field: value})
    assert vm.spaces() == before


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "multilevel"])
def test_levels_belong_to_multilevel_tables_only(vm_machine, kind):
    vm = vm_machine.vm(0)
    for field in ("levels", "level_bits"):
        with pytest.raises(InvalidArgument, match=f"{field} .*only a multilevel page table"):
            vm.create_space(kind, **{field: 4})
    sp = vm.create_space(kind)  # unset, they are fine
    assert vm.space_stats(sp)["page_table"] == kind


def test_prot_none_is_linux_spelling_of_no_access():
    assert prot_bits("none") == prot_bits("NONE") == prot_bits("---") == 0
    with pytest.raises(cerr.InvalidArgument, match="'none'"):
        prot_bits("nothing")


def hugetlb_machine(pages: int) -> Machine:
    return Machine.create(MachineConfig(memory_bytes=24 * MiB, cores=1, vm_memory=8 * MiB, hugetlb_pages=pages))


def test_hugetlb_mmap_without_a_reservation_is_refused_at_mmap():
    m = hugetlb_machine(0)
    try:
        vm = m.vm(0)
        sp = vm.create_space("multilevel")
        with pytest.raises(ResourceExhausted, match=r"vm\.nr_hugepages.*--hugetlb-pages"):
            vm.mmap(sp, HUGE, hugetlb=True)
        assert vm.regions(sp) == []
    finally:
        m.destroy()


def test_hugetlb_mmap_reserves_what_it_maps_until_unmapped_or_destroyed():
    m = hugetlb_machine(2)
    try:
        vm = m.vm(0)
        a, b = vm.create_space("multilevel"), vm.create_space("multilevel")
        first = vm.mmap(a, HUGE, hugetlb=True)  # reserved, not yet touched
        with pytest.raises(ResourceExhausted, match="1 of the 2 huge pages"):
            vm.mmap(b, 2 * HUGE, hugetlb=True)
        regions_before = vm.regions(b)
        second = vm.mmap(b, HUGE, hugetlb=True)
        with pytest.raises(ResourceExhausted, match="reservation"):
            vm.mmap(a, HUGE, hugetlb=True)
        assert vm.regions(b) == [*regions_before, (second, second + HUGE, 3 | 16, "anon", "hugetlb")]
        vm.store(a, first, b"reserved at mmap")  # the faults find the pages the mmaps reserved
        vm.store(b, second, b"so does this one")
        vm.munmap(a, first, HUGE)
        third = vm.mmap(a, HUGE, hugetlb=True)  # the unmapped page's reservation came back
        vm.store(a, third, b"again")
        vm.destroy_space(b)
        vm.mmap(a, HUGE, hugetlb=True)  # and the destroyed space's
        with pytest.raises(ResourceExhausted):
            vm.mmap(a, HUGE, hugetlb=True)
        assert check(vm) == []
    finally:
        m.destroy()


def test_a_refused_region_change_keeps_the_reservation_intact():
    """mprotect of a hugetlb region keeps its pages reserved (VM_HUGETLB stays on the VMA)."""
    m = hugetlb_machine(1)
    try:
        vm = m.vm(0)
        sp = vm.create_space("multilevel")
        a = vm.mmap(sp, HUGE, hugetlb=True)
        vm.mprotect(sp, a, HUGE, 1)
        with pytest.raises(ResourceExhausted):
            vm.mmap(sp, HUGE, hugetlb=True)
        with pytest.raises(FailedPrecondition):
            vm.store(sp, a, b"read-only now")
        assert vm.load(sp, a, 1) == b"\0"
    finally:
        m.destroy()


def test_recovery_recounts_the_hugetlb_reservation():
    from memsim.sim.vm.recovery import recover

    m = hugetlb_machine(2)
    try:
        vm = m.vm(0)
        sp = vm.create_space("multilevel")
        vm.mmap(sp, HUGE, hugetlb=True)
        vm.a.sp_hugetlb[sp] = 2  # as a core killed between a region change and its count might leave it
        assert any("huge pages reserved" in p for p in check(vm))
        recover(vm)
        assert check(vm) == []
        vm.mmap(sp, HUGE, hugetlb=True)
        with pytest.raises(ResourceExhausted):
            vm.mmap(sp, HUGE, hugetlb=True)
    finally:
        m.destroy()


@pytest.mark.parametrize("thp", ["madvise", "always"])
def test_huge_mappings_start_on_a_huge_page(thp):
    m = Machine.create(MachineConfig(memory_bytes=24 * MiB, cores=1, vm_memory=12 * MiB, thp=thp))
    try:
        vm = m.vm(0)
        sp = vm.create_space("multilevel")
        vm.mmap(sp, 3 * PAGE)  # something small first, so that the next free address is not aligned
        a = vm.mmap(sp, HUGE, huge=True)
        assert a % HUGE == 0
        vm.store(sp, a, b"x")
        assert vm.vmstat()["thp_fault_alloc"] == 1  # the first touch maps the whole 2 MiB at once
        if thp == "always":
            b = vm.mmap(sp, 2 * HUGE + PAGE)  # every anon region is eligible: aligned as well
            assert b % HUGE == 0
        small = vm.mmap(sp, PAGE)  # a region no huge page fits is not padded
        assert small % HUGE != 0 or small == a + HUGE
    finally:
        m.destroy()


@pytest.mark.integration
def test_the_vm_service_validates_up_front():
    with running_server(cores=1, memory="16MiB", extra=["--vm-memory", "8MiB"]) as srv, \
            VMClient(srv.target) as vm:
        spaces = [s.space for s in vm.spaces()]
        for kind in KINDS:
            for field, value, words in BAD_SHAPES:
                with pytest.raises(cerr.InvalidArgument, match=words):
                    vm.create_space(page_table=kind, **{field: value})
        assert [s.space for s in vm.spaces()] == spaces
        sp = vm.create_space()
        a = sp.mmap(4 * PAGE, prot="none")
        with pytest.raises(cerr.FailedPrecondition):
            sp.load(a, 1)
        sp.mprotect(a, PAGE, "rw")
        sp.store(a, b"ok")
        sp.mprotect(a, PAGE, "none")
        with pytest.raises(cerr.FailedPrecondition, match="protection fault"):
            sp.load(a, 1)
        with pytest.raises(cerr.ResourceExhausted, match=r"vm\.nr_hugepages"):
            sp.mmap(HUGE, hugetlb=True)
        assert sp.mmap(HUGE, huge=True) % HUGE == 0
        sp.destroy()
