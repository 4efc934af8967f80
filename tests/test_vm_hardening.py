"""Hostile and unlucky input to the VM: hugetlb on a table of another PMD size, refused calls that must
change nothing, swap-in with frames and swap both full, and calls over huge ranges that must cost what
is populated, not what is mapped."""

from __future__ import annotations

import numpy as np
import pytest

from memsim.sim.errors import FailedPrecondition, InvalidArgument
from memsim.sim.system import Machine, MachineConfig
from memsim.sim.vm.recovery import check

MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
PAGE = 4096
HP = 512


def stamp(sp: int, i: int) -> bytes:
    return b"space %03d page %06d" % (sp, i)


def snapshot(vm, sp: int) -> dict:
    """What a refused call must leave as it was: regions, counters, table, frames, swap."""
    from memsim.sim.vm.recovery import table_entries

    vpns, ptes = table_entries(vm, sp)
    order = np.argsort(vpns)
    a = vm.a
    return {"regions": vm.regions(sp), "stats": a["sp_stats"][sp].tolist(), "free": vm.pool.free_frames(),
            "swap_used": int(a["vm_meta"][4]), "vpns": vpns[order].tolist(), "ptes": ptes[order].tolist(),
            "huge": a["vm_huge"].tolist(), "usage": vm.memory_usage(sp)}


# -- 1. hugetlb and the table's PMD span -------------------------------------------------------------------

@pytest.fixture
def hugetlb_machine():
    m = Machine.create(MachineConfig(memory_bytes=24 * MiB, cores=1, vm_memory=12 * MiB, hugetlb_pages=1))
    yield m
    m.destroy()


@pytest.mark.parametrize("level_bits", [8, 10, 16])
def test_hugetlb_on_a_table_whose_pmd_is_not_the_reservations_run_is_refused_at_mmap(hugetlb_machine, level_bits):
    vm = hugetlb_machine.vm(0)
    a_sp = vm.create_space("multilevel")
    base = vm.mmap(a_sp, 600 * PAGE)
    for i in range(600):
        vm.store(a_sp, base + i * PAGE, stamp(a_sp, i))
    odd = vm.create_space("multilevel", level_bits=level_bits)
    before = snapshot(vm, odd), vm.vmstat()["hugetlb_pages_free"]
    with pytest.raises(InvalidArgument, match="level_bits=9"):
        vm.mmap(odd, (1 << level_bits) * PAGE, hugetlb=True)
    assert (snapshot(vm, odd), vm.vmstat()["hugetlb_pages_free"]) == before
    assert all(vm.load(a_sp, base + i * PAGE, 21) == stamp(a_sp, i) for i in range(600))
    assert vm.space_stats(a_sp)["rss_pages"] == 600
    assert check(vm) == []


def test_hugetlb_fault_never_marks_frames_outside_its_run(hugetlb_machine):
    """Defence in depth: a hugetlb region on a table of another span (made by hand, as a crash or an
    older build could leave) must fail its fault without touching a frame."""
    from memsim.sim.vm import hugepage

    vm = hugetlb_machine.vm(0)
    a_sp = vm.create_space("multilevel")
    base = vm.mmap(a_sp, 600 * PAGE)
    for i in range(600):
        vm.store(a_sp, base + i * PAGE, stamp(a_sp, i))
    odd = vm.create_space("multilevel", level_bits=10)
    addr = vm._mmap(odd, 4 * MiB, 3, "anon", "forged", 4 * MiB, False, hugepage.MAP_HUGETLB)
    rmap = vm.a["vm_rmap_space"].copy()
    with pytest.raises(FailedPrecondition, match="huge page"):
        vm.store(odd, addr, b"x")
    assert (vm.a["vm_rmap_space"] == rmap).all()
    assert all(vm.load(a_sp, base + i * PAGE, 21) == stamp(a_sp, i) for i in range(600))


def test_hugetlb_on_a_wide_pmd_through_the_server():
    from memsim.client import VMClient
    from memsim.client.errors import InvalidArgument as InvalidArgumentError
    from tests.servers import running_server

    with running_server(cores=1, memory="24MiB", extra=["--vm-memory", "12MiB", "--hugetlb-pages", "1"]) as srv, \
            VMClient(srv.target, timeout=20) as vmc:
        a = vmc.create_space()
        base = a.mmap(600 * PAGE)
        for i in range(600):
            a.store(base + i * PAGE, stamp(a.id, i))
        odd = vmc.create_space("multilevel", level_bits=10)
        with pytest.raises(InvalidArgumentError, match="hugetlb"):
            odd.mmap(4 * MiB, hugetlb=True)
        assert all(a.load(base + i * PAGE, 21) == stamp(a.id, i) for i in range(600))
        assert a.memory_usage()["rss"] >= 600 * PAGE
        assert vmc.vmstat()["hugetlb_pages_free"] == 1
