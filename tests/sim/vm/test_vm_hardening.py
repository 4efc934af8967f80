"""Hostile and unlucky input to the VM: hugetlb on a table of another PMD size, refused calls that must
change nothing, swap-in with frames and swap both full, and calls over huge ranges that must cost what
is populated, not what is mapped."""

from __future__ import annotations

import numpy as np
import pytest

from memsim.sim.errors import FailedPrecondition, InvalidArgument, OutOfRange, ResourceExhausted
from memsim.sim.system import Machine, MachineConfig
from memsim.sim.vm.layout import M_SWAP_USED, MAX_REGIONS
from memsim.sim.vm.recovery import check

MiB = 1 << 20
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
    return {"regions": vm.regions(sp), "stats": a.sp_stats[sp].tolist(), "free": vm.pool.free_frames(),
            "swap_used": int(a.vm_meta[M_SWAP_USED]), "vpns": vpns[order].tolist(), "ptes": ptes[order].tolist(),
            "huge": a.vm_huge.tolist(), "usage": vm.memory_usage(sp)}


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
    from memsim.sim.vm.mmap import mmap_region
    from memsim.sim.vm.vma import MAP_HUGETLB

    vm = hugetlb_machine.vm(0)
    a_sp = vm.create_space("multilevel")
    base = vm.mmap(a_sp, 600 * PAGE)
    for i in range(600):
        vm.store(a_sp, base + i * PAGE, stamp(a_sp, i))
    odd = vm.create_space("multilevel", level_bits=10)
    addr = mmap_region(vm, odd, 2 * MiB, 3, "anon", "forged", 4 * MiB, False, MAP_HUGETLB)
    rmap = vm.a.vm_rmap_space.copy()
    with pytest.raises(FailedPrecondition, match="huge page"):
        vm.store(odd, addr, b"x")
    assert (vm.a.vm_rmap_space == rmap).all()
    assert all(vm.load(a_sp, base + i * PAGE, 21) == stamp(a_sp, i) for i in range(600))


@pytest.mark.integration
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


# -- 3. a refused call changes nothing ---------------------------------------------------------------------

@pytest.fixture
def thp_machine():
    m = Machine.create(MachineConfig(memory_bytes=24 * MiB, cores=1, vm_memory=12 * MiB, hugetlb_pages=1,
                                     thp="always", vm_policy="lru"))
    yield m
    m.destroy()


def fill_regions_to_the_limit(vm, sp: int, base: int, pages: int) -> int:
    """Punch one-page holes in the region at base until the space has MAX_REGIONS regions; returns the
    page index of the next hole the limit refuses."""
    i = 1
    while len(vm.regions(sp)) < MAX_REGIONS:
        vm.munmap(sp, base + i * PAGE, PAGE)
        i += 2
    assert i < pages
    return i


ACCESS_COUNTERS = {"accesses", "tlb_miss", "tlb_hit", "pt_walks", "pt_walk_levels", "segfaults", "protection_faults"}


def assert_refused_changes_nothing(vm, sp: int, call, err, match: str, access: bool = False) -> None:
    """The call is refused with err and changes nothing; a refused access still counts as an access
    (and as the fault that refused it), as on hardware, but moves no byte and maps no page."""
    before, stat = snapshot(vm, sp), vm.vmstat()
    with pytest.raises(err, match=match):
        call()
    after, stat_after = snapshot(vm, sp), vm.vmstat()
    if access:
        for snap in (before, after):  # sp_stats: rss, swap, minflt, majflt stay; the access counters may not
            snap["stats"] = snap["stats"][:4]
    assert after == before
    allowed = {"pagewalk_entries"} | (ACCESS_COUNTERS if access else set())
    changed = {k for k in stat if stat[k] != stat_after[k] and k not in allowed}
    assert not changed, changed
    assert check(vm) == []


def test_munmap_refused_at_the_region_limit_keeps_the_page_and_its_data(thp_machine):
    vm = thp_machine.vm(0)
    sp = vm.create_space("multilevel")
    pages = 80
    base = vm.mmap(sp, pages * PAGE)
    for i in range(pages):
        vm.store(sp, base + i * PAGE, stamp(sp, i))
    nxt = fill_regions_to_the_limit(vm, sp, base, pages)
    assert_refused_changes_nothing(vm, sp, lambda: vm.munmap(sp, base + nxt * PAGE, PAGE), ResourceExhausted,
                                   "regions")
    for i in range(0, pages):
        if i % 2 == 0 or i >= nxt:
            assert vm.load(sp, base + i * PAGE, 21) == stamp(sp, i)


def test_mprotect_refused_at_the_region_limit_keeps_a_huge_page_whole(thp_machine):
    vm = thp_machine.vm(0)
    sp = vm.create_space("multilevel")
    holes = vm.mmap(sp, 80 * PAGE)
    fill_regions_to_the_limit(vm, sp, holes, 80)
    vm.munmap(sp, holes + 2 * PAGE, PAGE)  # a one-page region gone: room for the huge page's region
    assert len(vm.regions(sp)) == MAX_REGIONS - 1
    big = vm.mmap(sp, 4 * MiB, kind="heap")
    hstart = -(-big // (2 * MiB)) * (2 * MiB)
    for i in range(HP):
        vm.store(sp, hstart + i * PAGE, stamp(sp, i))
    assert vm.vmstat()["huge_pages"] == 1
    # the middle of the huge page read-only: 3 regions from 1, one too many
    assert_refused_changes_nothing(vm, sp, lambda: vm.mprotect(sp, hstart + 8 * PAGE, PAGE, 1), ResourceExhausted,
                                   "regions")
    assert vm.vmstat()["huge_pages"] == 1
    assert all(vm.load(sp, hstart + i * PAGE, 21) == stamp(sp, i) for i in range(HP))


def test_mprotect_of_a_hole_changes_nothing(thp_machine):
    vm = thp_machine.vm(0)
    sp = vm.create_space("multilevel")
    a = vm.mmap(sp, 8 * PAGE, addr=1 << 30)
    vm.mmap(sp, 8 * PAGE, addr=(1 << 30) + 16 * PAGE)
    for i in range(8):
        vm.store(sp, a + i * PAGE, stamp(sp, i))
    assert_refused_changes_nothing(vm, sp, lambda: vm.mprotect(sp, a, 24 * PAGE, 1), OutOfRange, "not mapped")
    vm.store(sp, a, b"still writable")


def test_munmap_and_madvise_cutting_hugetlb_change_nothing_not_even_a_thp_at_the_other_end(thp_machine):
    vm = thp_machine.vm(0)
    sp = vm.create_space("multilevel")
    h = 64 * MiB
    vm.mmap(sp, 2 * MiB, kind="heap", addr=h)
    vm.mmap(sp, 2 * MiB, hugetlb=True, addr=h + 2 * MiB)
    for i in range(0, 2 * HP, 5):
        vm.store(sp, h + i * PAGE, stamp(sp, i))
    assert vm.vmstat()["huge_pages"] == 1 and vm.vmstat()["hugetlb_pages_free"] == 0
    for call in (lambda: vm.munmap(sp, h + PAGE, 2 * MiB), lambda: vm.discard(sp, h + PAGE, 2 * MiB),
                 lambda: vm.mprotect(sp, h + PAGE, 2 * MiB, 1)):
        assert_refused_changes_nothing(vm, sp, call, InvalidArgument, "hugetlb")
    assert all(vm.load(sp, h + i * PAGE, 21) == stamp(sp, i) for i in range(0, 2 * HP, 5))


def test_mmap_munmap_madvise_mprotect_refusals_change_nothing(thp_machine):
    vm = thp_machine.vm(0)
    sp = vm.create_space("multilevel")
    a = vm.mmap(sp, 4 * PAGE, addr=1 << 30)
    vm.store(sp, a, stamp(sp, 0))
    cases = [
        (lambda: vm.mmap(sp, 4 * PAGE, addr=a + PAGE), FailedPrecondition, "overlaps"),
        (lambda: vm.mmap(sp, 0), InvalidArgument, "positive"),
        (lambda: vm.mmap(sp, PAGE, addr=a + 1), InvalidArgument, "aligned"),
        (lambda: vm.mmap(sp, PAGE, kind="guard"), InvalidArgument, "kind"),
        (lambda: vm.mmap(sp, 3 * MiB, hugetlb=True), InvalidArgument, "huge pages"),
        (lambda: vm.mmap(sp, PAGE, addr=1 << 48), OutOfRange, "outside"),
        (lambda: vm.mmap(sp, PAGE, prot=9), InvalidArgument, "prot"),
        (lambda: vm.munmap(sp, a + 1, PAGE), InvalidArgument, "aligned"),
        (lambda: vm.munmap(sp, a, 0), InvalidArgument, "positive"),
        (lambda: vm.munmap(sp, a, 1 << 50), OutOfRange, "outside"),
        (lambda: vm.discard(sp, a - PAGE, -1), InvalidArgument, "positive"),
        (lambda: vm.mprotect(sp, a, PAGE, 9), InvalidArgument, "prot"),
        (lambda: vm.mprotect(sp, a, PAGE, "r"), InvalidArgument, "prot"),
        (lambda: vm.mprotect(sp, a - PAGE, 2 * PAGE, 1), OutOfRange, "not mapped"),
    ]
    for call, err, match in cases:
        assert_refused_changes_nothing(vm, sp, call, err, match)
    fill_regions_to_the_limit(vm, sp, vm.mmap(sp, 80 * PAGE), 80)
    assert_refused_changes_nothing(vm, sp, lambda: vm.mmap(sp, PAGE, kind="stack"), ResourceExhausted, "regions")
    assert vm.load(sp, a, 21) == stamp(sp, 0)


# -- 4. swap-in with frames and swap both full -------------------------------------------------------------

@pytest.mark.parametrize("kind", ["multilevel", "linear", "hybrid", "inverted"])
def test_every_page_reads_back_when_frames_and_swap_are_full(kind):
    m = Machine.create(MachineConfig(memory_bytes=8 * MiB, cores=1, vm_memory=2 * MiB, swap_bytes=MiB,
                                     vm_policy="lru", thp="never"))
    try:
        vm = m.vm(0)
        sp = vm.create_space(kind, bits=24 if kind in ("linear", "hybrid") else None)
        pages = vm.pool.nframes + vm.swap.slots + 64
        base = vm.mmap(sp, pages * PAGE)
        stored = 0
        with pytest.raises(ResourceExhausted, match="swap is full"):
            for i in range(pages):
                vm.store(sp, base + i * PAGE, stamp(sp, i))
                stored += 1
        st = vm.vmstat()
        assert st["free_frames"] == 0 and st["swap_used"] == st["swap_slots"]
        assert stored > vm.pool.nframes
        for rnd in range(2):  # every page, twice: each swap-in makes room by swapping another out
            for i in range(stored):
                assert vm.load(sp, base + i * PAGE, 21) == stamp(sp, i), (rnd, i)
        assert check(vm) == []
    finally:
        m.destroy()


def test_a_failed_swap_write_during_the_handover_loses_no_page(monkeypatch):
    """With frames and swap full, reclaim writes its victim into the faulting page's own slot. If
    that write fails (the swap device's I/O error), the faulting page must still be in its slot and
    the victim still resident: the fault fails, nothing is lost."""
    m = Machine.create(MachineConfig(memory_bytes=8 * MiB, cores=1, vm_memory=2 * MiB, swap_bytes=MiB,
                                     vm_policy="lru", thp="never"))
    try:
        vm = m.vm(0)
        sp = vm.create_space("multilevel")
        pages = vm.pool.nframes + vm.swap.slots + 64
        base = vm.mmap(sp, pages * PAGE)
        stored = 0
        with pytest.raises(ResourceExhausted, match="swap is full"):
            for i in range(pages):
                vm.store(sp, base + i * PAGE, stamp(sp, i))
                stored += 1
        real_write = vm.swap.write

        def failing_write(slot, data):
            raise OSError(5, "Input/output error (injected)")

        monkeypatch.setattr(vm.swap, "write", failing_write)
        with pytest.raises(OSError):
            vm.load(sp, base, 21)  # page 0 went to swap long ago: a major fault with a handover
        monkeypatch.setattr(vm.swap, "write", real_write)
        for i in range(stored):
            assert vm.load(sp, base + i * PAGE, 21) == stamp(sp, i), i
        assert check(vm) == []
    finally:
        m.destroy()


# -- 7. range calls cost what is populated -----------------------------------------------------------------

RANGES = {  # kind -> (create_space kwargs, region length): as wide as each kind can map
    "multilevel": ({}, TiB),
    "inverted": ({}, TiB),
    "hybrid": ({"bits": 32}, 256 * MiB),
    "linear": ({"bits": 28}, 128 * MiB),
}


@pytest.mark.parametrize("kind", sorted(RANGES))
def test_range_calls_walk_what_is_populated_not_the_range(kind):
    m = Machine.create(MachineConfig(memory_bytes=24 * MiB, cores=1, vm_memory=8 * MiB, swap_bytes=MiB,
                                     vm_policy="lru", thp="never"))
    try:
        vm = m.vm(0)
        kw, length = RANGES[kind]
        sp = vm.create_space(kind, **kw)
        base = vm.mmap(sp, length, name="vast")
        n = 24
        addrs = [base + (length // PAGE // n * i + 3) * PAGE for i in range(n)]
        for i, a in enumerate(addrs):
            vm.store(sp, a, stamp(sp, i))
        for _ in range(4):  # a few in swap too: the walks must find swap entries as well
            assert vm.reclaim_one()
        walked0 = vm.vmstat()["pagewalk_entries"]
        vm.mprotect(sp, base, length, 1)
        assert [vm.load(sp, a, 21) for a in addrs] == [stamp(sp, i) for i in range(n)]
        with pytest.raises(FailedPrecondition):
            vm.store(sp, addrs[5], b"read-only now")
        regions = vm.memory_map(sp)
        assert sum(r["rss"] + r["swap"] for r in regions) == n * PAGE
        assert vm.memory_usage(sp)["swap"] + vm.memory_usage(sp)["external"] == n * PAGE
        low = sum(a < base + length // 2 for a in addrs)
        assert vm.discard(sp, base, length // 2) == low
        assert vm.munmap(sp, base, length) == n - low
        walked = vm.vmstat()["pagewalk_entries"] - walked0
        assert 0 < walked <= 16 * n, walked  # entries handled one by one: a few per populated page
        assert vm.regions(sp) == [] and check(vm) == []
    finally:
        m.destroy()


def test_khugepaged_finds_a_populated_range_at_the_end_of_a_vast_region():
    from memsim.sim.vm.hugepage import collapse_scan
    from memsim.sim.vm.layout import M_THP

    m = Machine.create(MachineConfig(memory_bytes=24 * MiB, cores=1, vm_memory=8 * MiB, vm_policy="lru",
                                     thp="never"))
    try:
        vm = m.vm(0)
        sp = vm.create_space("multilevel")
        length = 64 * TiB
        base = vm.mmap(sp, length, kind="heap")
        end = (base + length) // (2 * MiB) * (2 * MiB) - 2 * MiB
        for i in range(HP):
            vm.store(sp, end + i * PAGE, stamp(sp, i))
        m.meta.arrays["vm_meta"][M_THP] = 2
        assert collapse_scan(vm, 8) == 1
        assert vm.vmstat()["khugepaged_pages_scanned"] == HP
        assert all(vm.load(sp, end + i * PAGE, 21) == stamp(sp, i) for i in range(HP))
        assert collapse_scan(vm, 8) == 0 and check(vm) == []
    finally:
        m.destroy()


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["multilevel", "inverted"])
def test_a_terabyte_mapping_through_the_server_answers_within_the_deadline(kind):
    from memsim.client import VMClient
    from tests.servers import running_server

    with running_server(cores=1, memory="32MiB", extra=["--vm-memory", "8MiB"]) as srv, \
            VMClient(srv.target, timeout=20) as vmc:
        sp = vmc.create_space(kind)
        base = sp.mmap(TiB, name="vast")
        addrs = [base + i * (TiB // 16) + 7 * PAGE for i in range(16)]
        for i, a in enumerate(addrs):
            sp.store(a, stamp(sp.id, i))
        walked0 = vmc.vmstat()["pagewalk_entries"]
        sp.mprotect(base, TiB, "r")
        assert [sp.load(a, 21) for a in addrs] == [stamp(sp.id, i) for i in range(16)]
        assert sp.memory_usage()["external"] == 16 * PAGE
        assert sum(r["rss"] for r in sp.memory_map()) == 16 * PAGE
        assert sp.munmap(base, TiB) == 16
        assert vmc.vmstat()["pagewalk_entries"] - walked0 <= 16 * 16


def test_a_run_of_frames_is_the_first_window_that_fits():
    """take_run and the window reclaim empties find windows from one prefix sum (O(pool), whatever the
    run's length); the first fitting window is still the one taken."""
    from memsim.sim.vm.frames import window_sums

    rng = np.random.default_rng(8)
    flags = (rng.random(5000) < 0.9).astype(np.uint8)
    for n in (1, 2, 7, 64, 333, 5000):
        assert window_sums(flags, n).tolist() == np.convolve(flags.astype(np.int64), np.ones(n, np.int64),
                                                              mode="valid").tolist()
    m = Machine.create(MachineConfig(memory_bytes=24 * MiB, cores=1, vm_memory=8 * MiB))
    try:
        vm = m.vm(0)
        taken = [vm.pool.take(1) for _ in range(40)]
        for f in taken[5:9] + taken[20:32]:
            vm.pool.give(f)
        assert vm.pool.take_run(10, 1) == taken[20]  # the first window of 10 free frames
        assert vm.pool.take_run(4, 1) == taken[5]
    finally:
        m.destroy()


def test_a_store_that_would_fault_partway_writes_nothing(thp_machine):
    vm = thp_machine.vm(0)
    sp = vm.create_space("multilevel")
    a = vm.mmap(sp, 2 * PAGE, addr=1 << 30)
    vm.mmap(sp, PAGE, prot=1, addr=(1 << 30) + 2 * PAGE)
    vm.store(sp, a, b"k" * (2 * PAGE))
    for start, n, err in ((a + PAGE, 2 * PAGE, FailedPrecondition), (a + PAGE, 3 * PAGE, FailedPrecondition),
                          (a, 4 * PAGE, FailedPrecondition)):
        assert_refused_changes_nothing(vm, sp, lambda s=start, k=n: vm.store(sp, s, b"z" * k), err, "protection",
                                       access=True)
    vm.munmap(sp, a + 2 * PAGE, PAGE)
    assert_refused_changes_nothing(vm, sp, lambda: vm.store(sp, a + 100, b"z" * (2 * PAGE)), OutOfRange,
                                   "segmentation fault", access=True)
    assert vm.load(sp, a, 2 * PAGE) == b"k" * (2 * PAGE)


def test_a_region_whose_hybrid_table_cannot_fit_is_refused_clearly():
    m = Machine.create(MachineConfig(memory_bytes=24 * MiB, cores=1, vm_memory=8 * MiB))
    try:
        vm = m.vm(0)
        sp = vm.create_space("hybrid", bits=48)
        before = snapshot(vm, sp)
        with pytest.raises(ResourceExhausted, match="multilevel or inverted"):
            vm.mmap(sp, TiB)
        assert snapshot(vm, sp) == before
    finally:
        m.destroy()


@pytest.mark.parametrize("kind", ["multilevel", "linear", "hybrid", "inverted"])
def test_random_calls_keep_every_page_and_the_machine_consistent(kind):
    """A seeded mix of every range call, refused ones included, against a model of what each page holds."""
    rng = np.random.default_rng(88)
    m = Machine.create(MachineConfig(memory_bytes=16 * MiB, cores=1, vm_memory=4 * MiB, swap_bytes=16 * MiB,
                                     vm_policy="clock", thp="always"))
    try:
        vm = m.vm(0)
        sp = vm.create_space(kind, bits=26 if kind in ("linear", "hybrid") else None)
        model: dict[int, bytes] = {}  # page address -> its stamp (absent: zeros)
        base = vm.mmap(sp, 8 * MiB, kind="heap")
        writable = {base + i * PAGE for i in range(8 * MiB // PAGE)}
        mapped = set(writable)
        for step in range(600):
            op = rng.integers(6)
            page = base + int(rng.integers(8 * MiB // PAGE)) * PAGE
            n = int(rng.integers(1, 40)) * PAGE
            span = {page + k * PAGE for k in range(n // PAGE)}
            try:
                if op <= 1:
                    for page in sorted(span):  # page by page: the ones before a refusal are stored
                        data = b"step %06d" % step
                        vm.store(sp, page, data)
                        model[page] = data
                elif op == 2:
                    vm.munmap(sp, page, n)
                    mapped -= span
                    writable -= span
                    for p in span:
                        model.pop(p, None)
                elif op == 3:
                    vm.discard(sp, page, n)
                    for p in span:
                        model.pop(p, None)
                elif op == 4:
                    prot = int(rng.choice([1, 3]))
                    vm.mprotect(sp, page, n, prot)
                    writable = (writable | span) if prot == 3 else (writable - span)
                else:
                    got = vm.load(sp, page, 11)
                    assert got == model.get(page, bytes(11)), (step, hex(page))
            except (OutOfRange, FailedPrecondition, ResourceExhausted, InvalidArgument) as e:
                if op <= 1:  # refused stores: unmapped, read-only, or out of memory
                    assert page not in writable or isinstance(e, ResourceExhausted), (step, e)
                elif op == 4:
                    assert not span <= mapped or isinstance(e, ResourceExhausted), (step, e)
                elif op == 5:
                    assert page not in mapped, (step, e)
        for page in sorted(mapped):
            assert vm.load(sp, page, 11) == model.get(page, bytes(11)), hex(page)
        st = vm.vmstat()
        assert st["pswpout"] and st["pswpin"]  # the walks met swap entries too
        if kind == "multilevel":
            assert st["thp_fault_alloc"] and st["thp_split_page"]
        assert check(vm) == []
    finally:
        m.destroy()


@pytest.mark.integration
def test_refused_munmap_and_full_swap_through_the_server():
    from memsim.client import VMClient
    from memsim.client.errors import ResourceExhausted as ResourceExhaustedError
    from tests.servers import running_server

    with running_server(cores=1, memory="16MiB", extra=["--vm-memory", "1MiB", "--swap", "1MiB"]) as srv, \
            VMClient(srv.target, timeout=20) as vmc:
        sp = vmc.create_space()
        pages = 800
        base = sp.mmap(pages * PAGE)
        stored = 0
        with pytest.raises(ResourceExhaustedError, match="swap is full"):
            for i in range(pages):
                sp.store(base + i * PAGE, stamp(sp.id, i))
                stored += 1
        assert [sp.load(base + i * PAGE, 21) for i in range(stored)] == [stamp(sp.id, i) for i in range(stored)]
        holes = 0
        with pytest.raises(ResourceExhaustedError, match="regions"):
            for i in range(1, stored, 2):  # punch one-page holes until the region limit refuses one
                sp.munmap(base + i * PAGE, PAGE)
                holes = i
        kept = [i for i in range(stored) if i % 2 == 0 or i > holes]
        assert len(sp.memory_map()) == MAX_REGIONS
        assert [sp.load(base + i * PAGE, 21) for i in kept] == [stamp(sp.id, i) for i in kept]
        st = vmc.vmstat()
        assert st["pswpin"] and st["swap_used"] <= st["swap_slots"]


# -- a space slot reused while another core still knows its old table -------------------------------------

@pytest.mark.parametrize("kind", ["linear", "hybrid", "multilevel", "inverted"])
def test_a_core_never_uses_the_table_of_a_destroyed_space_that_had_the_same_slot(kind):
    """Each core keeps its own view of a space's table; a space destroyed and created again in the same
    slot by another core (same kind, new root) must not be walked, written or freed through the old view
    (found by bench/fuzz.py: 'frames 0..1023 freed twice', and a store lost)."""
    m = Machine.create(MachineConfig(memory_bytes=64 * MiB, cores=2, vm_memory=40 * MiB))
    try:
        core0, core1 = m.vm(0), m.vm(1)
        sp = core0.create_space(kind)
        core1.memory_usage(sp)  # core 1 now has a view of sp's table
        core0.destroy_space(sp)
        other = core0.create_space("multilevel")  # takes sp's slot
        assert other == sp
        keep = core0.create_space(kind)  # may take the old table's frames
        core0.destroy_space(other)
        again = core0.create_space(kind)  # sp's slot again, with a new table
        assert again == sp
        base = core1.mmap(again, 4 * PAGE)
        core1.store(again, base, b"stored on core 1")
        assert core0.load(again, base, 16) == b"stored on core 1"
        kbase = core0.mmap(keep, PAGE)
        core0.store(keep, kbase, b"keep")
        core1.destroy_space(again)
        assert core0.load(keep, kbase, 4) == b"keep"
        assert check(core0) == []
    finally:
        m.destroy()
