"""Transparent huge pages (sim/vm/hugepage.py): fault allocation, TLB reach, split, khugepaged, compaction."""

from __future__ import annotations

import pytest

from memsim.sim.system import Machine, MachineConfig
from memsim.sim.vm.layout import M_THP
from memsim.sim.vm.recovery import check

MiB = 1 << 20
PAGE = 4096
HP = 512  # pages per huge page


@pytest.fixture
def m():
    machine = Machine.create(MachineConfig(memory_bytes=24 * MiB, cores=2, vm_memory=8 * MiB, vm_policy="lru",
                                           thp="always", tlb_entries=64, tlb_ways=4))
    yield machine
    machine.destroy()


def aligned_start(vm, sp: int, size: int) -> int:
    base = vm.mmap(sp, size + 2 * MiB, kind="heap")
    return -(-base // (2 * MiB)) * (2 * MiB)


def stamp(i: int) -> bytes:
    return b"page %06d" % i


def test_first_touch_maps_a_huge_page_and_one_tlb_entry_covers_it(m):
    vm = m.vm(0)
    sp = vm.create_space("multilevel")
    start = aligned_start(vm, sp, 2 * MiB)
    first = vm.translate(sp, start + 5 * PAGE, write=True)
    assert first["fault"] == "minor"
    vm.tlb.flush()
    again = vm.translate(sp, start + 7 * PAGE)
    assert again["levels"] == 3 and again["frame"] == first["frame"] + 2  # the walk ends at the PMD
    st = vm.vmstat()
    assert st["thp_fault_alloc"] == 1 and st["huge_pages"] == 1
    assert vm.space_stats(sp)["rss_pages"] == HP
    vm.tlb.flush()
    misses0 = vm.tlb.misses
    for i in range(HP):
        vm.store(sp, start + i * PAGE, stamp(i))
    assert vm.tlb.misses - misses0 == 1  # TLB reach: 2 MiB through one entry
    for i in range(HP):
        assert vm.load(sp, start + i * PAGE, 11) == stamp(i)
    regions = vm.memory_map(sp)
    assert sum(r["huge_pages"] for r in regions) == 1
    assert check(vm) == []


def test_small_pages_need_a_tlb_entry_each(m):
    vm = m.vm(0)
    m.meta.arrays["vm_meta"][M_THP] = 0  # never
    sp = vm.create_space("multilevel")
    start = aligned_start(vm, sp, 2 * MiB)
    vm.tlb.flush()
    misses0 = vm.tlb.misses
    for i in range(HP):
        vm.store(sp, start + i * PAGE, stamp(i))
    assert vm.tlb.misses - misses0 == HP
    assert vm.vmstat()["thp_fault_alloc"] == 0


def test_partial_munmap_and_mprotect_split_and_keep_the_data(m):
    vm = m.vm(0)
    sp = vm.create_space("multilevel")
    start = aligned_start(vm, sp, 2 * MiB)
    for i in range(HP):
        vm.store(sp, start + i * PAGE, stamp(i))
    vm.munmap(sp, start + 100 * PAGE, PAGE)
    assert vm.vmstat()["thp_split_page"] == 1 and vm.vmstat()["huge_pages"] == 0
    for i in range(HP):
        if i != 100:
            assert vm.load(sp, start + i * PAGE, 11) == stamp(i)
    assert vm.space_stats(sp)["rss_pages"] == HP - 1
    assert check(vm) == []


def test_khugepaged_collapses_a_fully_populated_range(m):
    vm = m.vm(0)
    from memsim.sim.vm.hugepage import collapse_scan

    arrays = m.meta.arrays
    arrays["vm_meta"][M_THP] = 0  # faults take small pages ...
    sp = vm.create_space("multilevel")
    start = aligned_start(vm, sp, 2 * MiB)
    for i in range(HP - 1):
        vm.store(sp, start + i * PAGE, stamp(i))
    arrays["vm_meta"][M_THP] = 2  # ... then khugepaged may promote
    assert collapse_scan(vm) == 0  # one page missing: not fully populated
    vm.store(sp, start + (HP - 1) * PAGE, stamp(HP - 1))
    tables_before = vm.space_stats(sp)["page_table_bytes"]
    assert collapse_scan(vm) == 1
    st = vm.vmstat()
    assert st["thp_collapse_alloc"] == 1 and st["huge_pages"] == 1
    assert vm.space_stats(sp)["page_table_bytes"] == tables_before  # its page table is kept as the deposit
    for i in range(HP):
        assert vm.load(sp, start + i * PAGE, 11) == stamp(i)
    assert vm.translate(sp, start)["levels"] in (0, 3)
    assert check(vm) == []


def test_compaction_makes_room_for_a_huge_page(m):
    vm = m.vm(0)
    arrays = m.meta.arrays
    arrays["vm_meta"][M_THP] = 0
    other = vm.create_space("multilevel")
    n_pages = vm.pool.nframes - 64
    scattered = vm.mmap(other, n_pages * PAGE, kind="heap")
    for i in range(n_pages):  # fill the pool, then free all but every 64th page:
        vm.store(other, scattered + i * PAGE, stamp(i))
    touched = list(range(0, n_pages, 64))
    for i in touched:  # every aligned 2 MiB window of the pool keeps a few used frames
        vm.munmap(other, scattered + (i + 1) * PAGE, min(63, n_pages - i - 1) * PAGE) if i + 1 < n_pages else None
    n = vm.pool.nframes // HP
    used = (vm.pool.free_map[: n * HP].reshape(n, HP) == 0).any(axis=1)
    assert used.all(), "the test wants no free aligned window"
    arrays["vm_meta"][M_THP] = 2
    sp = vm.create_space("multilevel")
    start = aligned_start(vm, sp, 2 * MiB)
    vm.store(sp, start, b"huge")
    st = vm.vmstat()
    assert st["compact_stall"] >= 1 and st["compact_success"] >= 1 and st["thp_fault_alloc"] == 1
    assert st["compact_migrate_pages"] > 0
    for i in touched:  # the migrated pages kept their contents
        assert vm.load(other, scattered + i * PAGE, 11) == stamp(i)
    assert check(vm) == []


def test_memory_pressure_splits_a_huge_page_and_swaps_its_pieces(m):
    vm = m.vm(0)
    sp = vm.create_space("multilevel")
    start = aligned_start(vm, sp, 2 * MiB)
    for i in range(HP):
        vm.store(sp, start + i * PAGE, stamp(i))
    m.meta.arrays["vm_meta"][M_THP] = 0
    hog = vm.create_space("multilevel")
    h = vm.mmap(hog, 1900 * PAGE, kind="heap")
    for i in range(1900):
        vm.store(hog, h + i * PAGE, b"hog")
    st = vm.vmstat()
    assert st["thp_split_page"] >= 1 and st["pswpout"] > 0
    for i in range(HP):
        assert vm.load(sp, start + i * PAGE, 11) == stamp(i)
    assert check(vm) == []


def test_khugepaged_thread_promotes_in_the_background(m):
    import threading
    import time

    from memsim.server.vm_servicer import Khugepaged

    vm = m.vm(0)
    arrays = m.meta.arrays
    arrays["vm_meta"][M_THP] = 0
    sp = vm.create_space("multilevel")
    start = aligned_start(vm, sp, 2 * MiB)
    for i in range(HP):
        vm.store(sp, start + i * PAGE, stamp(i))
    arrays["vm_meta"][M_THP] = 2
    k = Khugepaged(vm, threading.Lock(), period_s=0.05)
    k.start()
    try:
        deadline = time.monotonic() + 30
        while vm.vmstat()["thp_collapse_alloc"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        k.stop()
    assert vm.vmstat()["thp_collapse_alloc"] == 1
    assert vm.load(sp, start + 77 * PAGE, 11) == stamp(77)


@pytest.mark.integration
def test_huge_pages_through_the_server():
    from memsim.client import VMClient
    from tests.servers import running_server

    with running_server(cores=1, memory="24MiB", extra=["--vm-memory", "8MiB", "--thp", "madvise"]) as srv, \
            VMClient(srv.target) as vmc:
        sp = vmc.create_space()
        plain = sp.mmap(4 * MiB, kind="heap", name="plain")
        huge = sp.mmap(4 * MiB, kind="heap", name="advised", huge=True)
        for base in (plain, huge):
            a = -(-base // (2 * MiB)) * (2 * MiB)
            sp.store(a, b"x")
        regions = {r["name"]: r for r in sp.memory_map()}
        assert regions["plain"]["huge_pages"] == 0 and regions["advised"]["huge_pages"] == 1
        assert regions["advised"]["rss"] == 2 * MiB and regions["plain"]["rss"] == PAGE
        st = vmc.vmstat()
        assert st["thp_fault_alloc"] == 1 and st["huge_pages"] == 1
        b = sp.batch()
        b.translate(-(-huge // (2 * MiB)) * (2 * MiB) + 9 * PAGE)
        assert b.execute()[0].tlb_hit  # the huge entry filled by the store covers this page too


def test_explicit_hugetlb_pages_come_from_the_boot_reservation():
    from memsim.sim.errors import InvalidArgument, ResourceExhausted

    machine = Machine.create(MachineConfig(memory_bytes=24 * MiB, cores=1, vm_memory=8 * MiB, hugetlb_pages=2,
                                           vm_policy="clock"))
    try:
        vm = machine.vm(0)
        st = vm.vmstat()
        assert st["hugetlb_pages_total"] == 2 and st["hugetlb_pages_free"] == 2
        assert st["free_frames"] == vm.pool.nframes - 2 * HP  # set aside at boot, out of the pool
        sp = vm.create_space("multilevel")
        a = vm.mmap(sp, 4 * MiB, hugetlb=True, name="db buffers")
        assert a % (2 * MiB) == 0
        for i in range(0, 2 * HP, 7):
            vm.store(sp, a + i * PAGE, stamp(i))
        st = vm.vmstat()
        assert st["hugetlb_pages_free"] == 0 and st["hugetlb_faults"] == 2
        hog = vm.create_space("multilevel")  # pressure: hugetlb pages are never reclaimed
        h = vm.mmap(hog, 1600 * PAGE)
        for i in range(1600):
            vm.store(hog, h + i * PAGE, b"hog")
        for i in range(0, 2 * HP, 7):
            assert vm.load(sp, a + i * PAGE, 11) == stamp(i)
        with pytest.raises(InvalidArgument, match="whole huge pages"):
            vm.munmap(sp, a, PAGE)
        with pytest.raises(ResourceExhausted, match="reservation"):  # refused at mmap, as Linux's MAP_HUGETLB
            vm.mmap(sp, 2 * MiB, hugetlb=True)
        vm.munmap(sp, a, 4 * MiB)
        assert vm.vmstat()["hugetlb_pages_free"] == 2
        b = vm.mmap(sp, 2 * MiB, hugetlb=True)
        vm.store(sp, b, b"now there is")
        assert check(vm) == []
        with pytest.raises(InvalidArgument, match="multiple"):
            vm.mmap(sp, MiB, hugetlb=True)
    finally:
        machine.destroy()


# -- from a review of the change ---------------------------------------------------------------------------

def test_collapse_keeps_pages_that_came_back_from_swap_and_skips_prot_none(m):
    from memsim.sim.errors import FailedPrecondition
    from memsim.sim.vm.hugepage import collapse_scan

    vm = m.vm(0)
    meta = m.meta.arrays["vm_meta"]
    meta[M_THP] = 0
    sp = vm.create_space("multilevel")
    start = aligned_start(vm, sp, 2 * MiB)
    for i in range(HP):
        vm.store(sp, start + i * PAGE, stamp(i))
    while vm.space_stats(sp)["rss_pages"]:
        vm.reclaim_one()
    for i in range(HP):  # back in, clean, their swap copies as the backup
        assert vm.load(sp, start + i * PAGE, 11) == stamp(i)
    meta[M_THP] = 2
    assert collapse_scan(vm) == 1
    while vm.space_stats(sp)["rss_pages"]:  # split and out again: the data must go to swap, not vanish
        vm.reclaim_one()
    assert all(vm.load(sp, start + i * PAGE, 11) == stamp(i) for i in range(HP))
    meta[M_THP] = 0
    other = vm.create_space("multilevel")
    s2 = aligned_start(vm, other, 2 * MiB)
    for i in range(HP):
        vm.store(other, s2 + i * PAGE, b"secret")
    vm.mprotect(other, s2, 2 * MiB, 0)
    meta[M_THP] = 2
    collapse_scan(vm)
    vm.tlb.flush()
    with pytest.raises(FailedPrecondition):
        vm.load(other, s2, 6)
    assert check(vm) == []


def test_region_flags_come_only_from_keywords_and_huge_pages_only_with_the_tlbs_size():
    from memsim.sim.errors import InvalidArgument

    machine = Machine.create(MachineConfig(memory_bytes=24 * MiB, cores=1, vm_memory=8 * MiB, thp="always",
                                           hugetlb_pages=1))
    try:
        vm = machine.vm(0)
        sp = vm.create_space("multilevel")
        with pytest.raises(InvalidArgument, match="prot"):
            vm.mmap(sp, PAGE, prot=3 | 16)  # MAP_HUGETLB cannot ride in through prot
        narrow = vm.create_space("multilevel", bits=44, level_bits=8)  # a PMD of 256 pages, not the TLB's 512
        a = vm.mmap(narrow, 4 * MiB, kind="heap")
        vm.store(narrow, a + 10 * PAGE, b"A" * 8)
        vm.store(narrow, a + 300 * PAGE, b"B" * 8)
        assert vm.load(narrow, a + 10 * PAGE, 8) == b"A" * 8 and vm.load(narrow, a + 300 * PAGE, 8) == b"B" * 8
        assert vm.vmstat()["huge_pages"] == 0
        assert check(vm) == []
    finally:
        machine.destroy()


def _claim_hugetlb(machine, core: int, q) -> None:
    import os

    vm = machine.vm(core)
    sp = vm.create_space("multilevel")
    bad = 0
    for r in range(150):
        a = vm.mmap(sp, 2 * MiB, hugetlb=True)
        vm.store(sp, a, b"core%d-%05d" % (core, r))
        bad += vm.load(sp, a, 11) != b"core%d-%05d" % (core, r)
        vm.munmap(sp, a, 2 * MiB)
    q.put(bad)
    q.close()
    q.join_thread()
    os._exit(0)


def test_two_cores_never_get_the_same_hugetlb_page():
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    machine = Machine.create(MachineConfig(memory_bytes=32 * MiB, cores=2, vm_memory=16 * MiB, hugetlb_pages=3))
    try:
        q = ctx.Queue()
        procs = [ctx.Process(target=_claim_hugetlb, args=(machine, c, q)) for c in (0, 1)]
        for p in procs:
            p.start()
        assert [q.get(timeout=120) for _ in procs] == [0, 0]
        for p in procs:
            p.join(30)
        assert check(machine.supervisor_vm()) == []
    finally:
        machine.destroy()
