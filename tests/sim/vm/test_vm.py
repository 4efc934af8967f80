"""Virtual memory on the machine (sim/vm), without RPC: translation, faults, swap, replacement, isolation.

- every page-table kind agrees with a plain dictionary model under random mmap/munmap/store/
  load sequences (hypothesis), with a pool small enough that pages go to swap and back;
- data survives swap with memory oversubscribed 4x, and only dirty pages are written back;
- Belady's anomaly on the machine: FIFO 9 faults with 3 frames and 10 with 4; LRU 10 and 8;
- page-table bytes come out of the machine: 4 MiB per 32-bit linear table, 400 MiB for 100
  spaces, a few KiB for a sparse 48-bit multilevel space;
- segmentation, protection and guard-page faults say which address and why;
- two cores reading a space while a third unmaps and evicts never see a stale frame.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsim.sim.errors import FailedPrecondition, InvalidArgument, NotFound, OutOfRange, ResourceExhausted
from memsim.sim.system import Machine, MachineConfig
from memsim.sim.vm.kinds import KINDS, PAGE_TABLES
from memsim.sim.vm.layout import M_IPT_FRAMES
from memsim.sim.vm.recovery import check
from memsim.sim.vm.vma import R, X

MiB = 1 << 20
PAGE = 4096
CTX = mp.get_context("fork")
BELADY = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5]


def machine(vm_frames: int, policy: str = "twolist", swap_pages: int | None = None, memory: int = 8 * MiB,
            cores: int = 4) -> Machine:
    return Machine.create(MachineConfig(memory_bytes=memory, cores=cores, vm_memory=vm_frames * PAGE,
                                        vm_policy=policy, swap_bytes=None if swap_pages is None else swap_pages * PAGE))


def bits_for(kind: str) -> int:
    """A narrow space for the kinds whose table spans the whole space (their default is 32 bits)."""
    return 24 if PAGE_TABLES[kind].default_bits <= 32 else 48


# -- the dictionary model -------------------------------------------------------------------------

ops = st.lists(st.tuples(st.sampled_from(["mmap", "munmap", "store", "load", "load_far"]),
                         st.integers(1, 12), st.integers(0, 10_000), st.binary(min_size=1, max_size=64)),
               min_size=1, max_size=40)


@pytest.fixture(scope="module")
def small_machine():
    m = machine(vm_frames=24, policy="clock", swap_pages=512)
    yield m
    m.destroy()


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=ops)
def test_translation_matches_a_dictionary_model(small_machine, kind, seq):
    vm = small_machine.vm(0)
    sp = vm.create_space(kind, bits=bits_for(kind))
    model: dict[int, bytearray] = {}  # page address -> contents
    regions: list[tuple[int, int]] = []
    try:
        for op, n, where, data in seq:
            if op == "mmap":
                start = vm.mmap(sp, n * PAGE, kind="anon" if where % 2 else "heap")
                regions.append((start, start + n * PAGE))
                for p in range(start, start + n * PAGE, PAGE):
                    model[p] = bytearray(PAGE)
            elif op == "munmap" and regions:
                lo, hi = regions[where % len(regions)]
                cut_lo = lo + (where % max(1, (hi - lo) // PAGE)) * PAGE
                cut_hi = min(hi, cut_lo + n * PAGE)
                vm.munmap(sp, cut_lo, cut_hi - cut_lo)
                for p in range(cut_lo, cut_hi, PAGE):
                    model.pop(p, None)
                regions = [r for r in ([(lo, cut_lo), (cut_hi, hi)] + [x for x in regions if x != (lo, hi)])
                           if r[1] > r[0]]
            elif op in ("store", "load") and model:
                pages = sorted(model)
                page = pages[where % len(pages)]
                off = (where * 37) % (PAGE - len(data))
                if op == "store":
                    vm.store(sp, page + off, data)
                    model[page][off:off + len(data)] = data
                else:
                    assert vm.load(sp, page + off, len(data)) == bytes(model[page][off:off + len(data)])
            elif op == "load_far":
                addr = (1 << bits_for(kind)) - PAGE * (n + 1000)
                if addr - addr % PAGE not in model:
                    with pytest.raises(OutOfRange, match="not in any region"):
                        vm.load(sp, addr, 1)
        for page, content in model.items():  # everything, after all the swapping
            assert vm.load(sp, page, PAGE) == bytes(content)
        assert check(vm) == []
    finally:
        vm.destroy_space(sp)
    assert vm.pool.free_frames() == vm.pool.nframes - int(vm.a.vm_meta[M_IPT_FRAMES])  # only the shared IPT stays


# -- swap ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_data_survives_swap_with_memory_oversubscribed_4x(kind):
    m = machine(vm_frames=64, policy="twolist")
    try:
        vm = m.vm(0)
        sp = vm.create_space(kind, bits=bits_for(kind))
        pages = 4 * 64
        base = vm.mmap(sp, pages * PAGE, kind="heap")
        for i in range(pages):
            vm.store(sp, base + i * PAGE, (b"%06d" % i) * 8 + bytes([i % 251]) * 100)
        for i in reversed(range(pages)):
            assert vm.load(sp, base + i * PAGE, 48) == (b"%06d" % i) * 8
        st_ = vm.vmstat()
        assert st_["pswpout"] > 0 and st_["pswpin"] > 0 and st_["pgmajfault"] == st_["pswpin"]
        assert vm.space_stats(sp)["rss_pages"] <= 64
        use = vm.memory_usage(sp)
        assert use["rss"] < use["heapTotal"]  # rss differs from the heap's size, as for a real process
        assert sum(r["swap"] for r in vm.memory_map(sp)) == use["swap"] > 0
        vm.destroy_space(sp)
        assert vm.vmstat()["swap_used"] == 0
    finally:
        m.destroy()


def test_only_dirty_pages_are_written_back():
    m = machine(vm_frames=24, policy="fifo", swap_pages=512)  # swap far from full: slots stay as swap cache
    try:
        vm = m.vm(0)
        sp = vm.create_space("multilevel")
        base = vm.mmap(sp, 60 * PAGE)
        for i in range(60):
            vm.store(sp, base + i * PAGE, b"x%d" % i)
        out1 = vm.vmstat()["pswpout"]
        dirty_resident = vm.space_stats(sp)["rss_pages"]  # written, never swapped yet
        for _ in range(3):  # read everything again and again: pages come back clean
            for i in range(60):
                assert vm.load(sp, base + i * PAGE, 3).startswith(b"x")
        st_ = vm.vmstat()
        assert st_["pswpin"] > 100
        # each page was written to swap once: clean pages with a copy there are dropped, not rewritten
        assert st_["pswpout"] == out1 + dirty_resident == 60
        for i in range(60):
            vm.load(sp, base + i * PAGE + 8, 1)  # never written offsets of written pages: still clean
        zero = vm.mmap(sp, 60 * PAGE)
        before = vm.vmstat()["pswpout"]
        for i in range(60):  # read-only zero pages: dropped when evicted, zero-filled again
            assert vm.load(sp, zero + i * PAGE, 4) == b"\0\0\0\0"
        assert vm.vmstat()["pswpout"] == before
    finally:
        m.destroy()


def test_out_of_swap_is_resource_exhausted_and_the_space_goes_on():
    m = machine(vm_frames=16, policy="lru", swap_pages=8)
    try:
        vm = m.vm(0)
        sp = vm.create_space("multilevel")
        base = vm.mmap(sp, 64 * PAGE)
        stored = 0
        with pytest.raises(ResourceExhausted, match="swap is full"):
            for i in range(64):
                vm.store(sp, base + i * PAGE, b"d")
                stored = i + 1
        assert vm.load(sp, base + (stored - 1) * PAGE, 1) == b"d"  # resident pages still serve
        assert vm.vmstat()["swap_used"] == 8
        vm.munmap(sp, base, 64 * PAGE)
        assert vm.vmstat()["swap_used"] == 0
        again = vm.mmap(sp, 4 * PAGE)
        vm.store(sp, again, b"after")
        assert vm.load(sp, again, 5) == b"after"
    finally:
        m.destroy()


# -- replacement ---------------------------------------------------------------------------------------

def belady_faults(policy: str, user_frames: int) -> int:
    # A 16-bit space with a linear table: the table is one frame, the rest of the pool is for pages.
    m = machine(vm_frames=1 + user_frames, policy=policy)
    try:
        vm = m.vm(0)
        sp = vm.create_space("linear", bits=16)
        base = vm.mmap(sp, 6 * PAGE)
        before = vm.vmstat()["pgfault"]
        for page in BELADY:
            vm.load(sp, base + page * PAGE, 1)
        return vm.vmstat()["pgfault"] - before
    finally:
        m.destroy()


def test_beladys_anomaly_on_the_machine():
    assert belady_faults("fifo", 3) == 9
    assert belady_faults("fifo", 4) == 10  # more frames, more faults
    assert belady_faults("lru", 3) == 10
    assert belady_faults("lru", 4) == 8  # a stack algorithm: no anomaly


@pytest.mark.parametrize("policy", ["fifo", "lru", "lfu", "clock", "twolist", "sieve", "s3fifo"])
def test_every_policy_drives_reclaim(policy):
    m = machine(vm_frames=20, policy=policy)
    try:
        vm = m.vm(0)
        sp = vm.create_space("multilevel")
        base = vm.mmap(sp, 50 * PAGE)
        rng = random.Random(1)
        for _ in range(400):
            i = int(rng.paretovariate(1.2)) % 50
            vm.store(sp, base + i * PAGE, b"%d" % i)
        for i in range(50):
            v = vm.load(sp, base + i * PAGE, 2)
            assert v in (b"\0\0", (b"%d" % i)[:2].ljust(2, b"\0"))
        assert vm.policy.check() == []
        assert vm.vmstat()["pgsteal"] > 0
    finally:
        m.destroy()


# -- page-table cost -------------------------------------------------------------------------------------

def test_a_32_bit_linear_table_is_4_mib_and_100_of_them_400_mib():
    m = Machine.create(MachineConfig(memory_bytes=420 * MiB, cores=1, vm_memory=403 * MiB, swap_bytes=0))
    try:
        vm = m.vm(0)
        spaces = [vm.create_space("linear", bits=32) for _ in range(100)]
        assert {vm.space_stats(sp)["page_table_bytes"] for sp in spaces} == {4 * MiB}
        assert sum(vm.space_stats(sp)["page_table_bytes"] for sp in spaces) == 400 * MiB
        assert m.memory.frames_by_owner()["pagetable"] * PAGE == 400 * MiB
        with pytest.raises(ResourceExhausted, match="frames"):
            vm.create_space("linear", bits=32)  # the 101st does not fit
        sparse = [vm.create_space("multilevel", bits=48) for _ in range(3)]
        for sp in sparse:
            vm.mmap(sp, 4 * PAGE, prot=R | X, kind="code")
            vm.mmap(sp, 8 * PAGE, kind="stack")
            vm.load(sp, vm.regions(sp)[0][0], 1)
            vm.store(sp, vm.regions(sp)[-1][1] - 8, b"ret addr")
            assert vm.space_stats(sp)["page_table_bytes"] == 7 * PAGE  # root + 3 + 3: a few KiB
    finally:
        m.destroy()


def test_table_kinds_cost_what_their_design_says():
    m = machine(vm_frames=2048, memory=16 * MiB)
    try:
        vm = m.vm(0)
        lin = vm.create_space("linear", bits=24)
        hyb = vm.create_space("hybrid", bits=24)
        mul = vm.create_space("multilevel", bits=48)
        inv = vm.create_space("inverted", bits=48)
        for sp in (lin, hyb, mul, inv):
            a = vm.mmap(sp, 16 * PAGE, kind="heap")
            for i in range(16):
                vm.store(sp, a + i * PAGE, b"z")
        cost = {sp: vm.space_stats(sp)["page_table_bytes"] for sp in (lin, hyb, mul, inv)}
        assert cost[lin] == 4096 * 4  # 2^12 entries of 4 bytes, touched or not
        assert cost[hyb] < cost[lin]  # only the heap segment's table, as far as its bound
        assert cost[mul] == 4 * PAGE  # root + one table per level below
        assert cost[inv] == 16 * 20  # its share of the machine's table: one entry per resident page
        levels = {sp: vm.translate(sp, vm.regions(sp)[0][0] + 5 * PAGE)["levels"] for sp in (lin, hyb, mul, inv)}
        assert levels == {lin: 0, hyb: 0, mul: 0, inv: 0}  # TLB hits: no walk
        vm.tlb.flush()
        levels = {sp: vm.translate(sp, vm.regions(sp)[0][0] + 5 * PAGE)["levels"] for sp in (lin, hyb, mul, inv)}
        assert levels[lin] == 1 and levels[hyb] == 1 and levels[mul] == 4 and levels[inv] >= 2
    finally:
        m.destroy()


# -- faults and bad input ----------------------------------------------------------------------------------

def test_segmentation_protection_and_guard_faults_say_where_and_why():
    m = machine(vm_frames=64)
    try:
        vm = m.vm(0)
        sp = vm.create_space("multilevel")
        code = vm.mmap(sp, 2 * PAGE, prot=R | X, kind="code", name="text")
        stack = vm.mmap(sp, 4 * PAGE, kind="stack", name="main")
        with pytest.raises(FailedPrecondition, match=rf"write to {code + 8:#x} in region text \(r-x\)"):
            vm.store(sp, code + 8, b"patch")
        assert vm.load(sp, code, 4) == b"\0" * 4
        with pytest.raises(FailedPrecondition, match="guard page below the stack 'main'"):
            vm.store(sp, stack - 8, b"overflow")
        with pytest.raises(OutOfRange, match=r"read of 0x1000, which is not in any region of space"):
            vm.load(sp, 0x1000, 1)
        vm.store(sp, stack, b"ok")
        vm.mprotect(sp, stack, PAGE, R)
        with pytest.raises(FailedPrecondition, match="protection fault"):
            vm.store(sp, stack, b"no")  # the TLB entry was writable: mprotect's shootdown removed it
        assert vm.load(sp, stack, 2) == b"ok"
        with pytest.raises(OutOfRange):
            vm.load(sp, 1 << 48, 1)
        with pytest.raises(NotFound):
            vm.load(sp + 50, 0, 1)
        with pytest.raises(InvalidArgument):
            vm.create_space("radix")
        with pytest.raises(InvalidArgument):
            vm.mmap(sp, 0)
        with pytest.raises(FailedPrecondition, match="overlaps"):
            vm.mmap(sp, PAGE, addr=code)
        with pytest.raises(InvalidArgument, match="levels"):
            vm.create_space("multilevel", bits=48, levels=2, level_bits=9)
        assert vm.vmstat()["segfaults"] >= 2
    finally:
        m.destroy()


def test_spaces_are_isolated():
    m = machine(vm_frames=64)
    try:
        vm = m.vm(0)
        a, b = vm.create_space("multilevel"), vm.create_space("inverted")
        pa = vm.mmap(a, PAGE, kind="heap")
        pb = vm.mmap(b, PAGE, kind="heap")
        vm.store(a, pa, b"secret of a")
        assert vm.load(b, pb, 11) == b"\0" * 11
        with pytest.raises(OutOfRange):
            vm.load(b, pa + 2 * PAGE, 1) if pa + 2 * PAGE != pb else vm.load(b, 0x100000000, 1)
        assert vm.translate(a, pa)["frame"] != vm.translate(b, pb)["frame"]
    finally:
        m.destroy()


# -- concurrency ---------------------------------------------------------------------------------------------

def stamp(vpn: int, version: int) -> bytes:
    return b"%012d:%08d|" % (vpn, version)


def reader(m: Machine, core: int, sp: int, base: int, pages: int, q) -> None:
    problems, reads = [], 0
    try:
        vm = m.vm(core)
        rng = random.Random(core)
        for _ in range(3000):
            i = rng.randrange(pages)
            try:
                got = vm.load(sp, base + i * PAGE, 22)
            except OutOfRange:
                continue  # unmapped by the third core just now: a fault, not a stale read
            reads += 1
            if got != b"\0" * 22 and not got.startswith(b"%012d:" % ((base >> 12) + i)):
                problems.append(f"page {i} read {got!r}")
    except Exception as e:  # noqa: BLE001 - reported to the parent
        problems.append(repr(e))
    q.put((core, reads, problems))
    q.close()
    q.join_thread()
    os._exit(0)


def churner(m: Machine, core: int, sp: int, base: int, pages: int, q) -> None:
    problems = []
    try:
        vm = m.vm(core)
        rng = random.Random(7)
        other = vm.create_space("multilevel")
        hog = vm.mmap(other, 64 * PAGE)
        for v in range(60):
            i = rng.randrange(pages - 4)
            vm.munmap(sp, base + i * PAGE, 2 * PAGE)
            vm.mmap(sp, 2 * PAGE, addr=base + i * PAGE)
            for j in (i, i + 1):
                vm.store(sp, base + j * PAGE, stamp((base >> 12) + j, v))
            for k in range(64):  # memory pressure from another space: pages of sp get evicted
                vm.store(other, hog + k * PAGE, b"hog")
        vm.destroy_space(other)
    except Exception as e:  # noqa: BLE001 - reported to the parent
        problems.append(repr(e))
    q.put((core, 0, problems))
    q.close()
    q.join_thread()
    os._exit(0)


@pytest.mark.parametrize("kind", ["multilevel", "inverted"])
def test_no_stale_translation_while_another_core_unmaps_and_evicts(kind):
    m = machine(vm_frames=96, policy="clock")
    try:
        vm = m.vm(0)
        sp = vm.create_space(kind)
        pages = 48
        base = vm.mmap(sp, pages * PAGE, kind="heap")
        for i in range(pages):
            vm.store(sp, base + i * PAGE, stamp((base >> 12) + i, 0))
        q = CTX.Queue()
        procs = [CTX.Process(target=reader, args=(m, c, sp, base, pages, q)) for c in (1, 2)]
        procs.append(CTX.Process(target=churner, args=(m, 3, sp, base, pages, q)))
        for p in procs:
            p.start()
        out = [q.get(timeout=240) for _ in procs]
        for p in procs:
            p.join(30)
        assert [p for _, _, ps in out for p in ps] == []
        assert sum(r for _, r, _ in out) > 1000
        st_ = vm.vmstat()
        assert st_["pgsteal"] > 0 and st_["tlb_shootdowns"] > 0
        for i in range(pages):  # and the space is whole at the end
            got = vm.load(sp, base + i * PAGE, 22)
            assert got == b"\0" * 22 or got.startswith(b"%012d:" % ((base >> 12) + i))
    finally:
        m.destroy()


# -- a core killed mid-change ---------------------------------------------------------------------------------

def die_at(m: Machine, core: int, point: str, sp: int, base: int, q) -> None:
    """Pressure the pool until the named step, where this process is SIGKILLed."""
    vm = m.vm(core)
    vm.crash_at = point
    q.put("started")
    q.close()
    q.join_thread()
    for round_ in range(50):
        for i in range(48):
            vm.store(sp, base + i * PAGE, stamp((base >> 12) + i, round_ + 1))
        vm.munmap(sp, base + 40 * PAGE, 4 * PAGE)
        vm.mmap(sp, 4 * PAGE, addr=base + 40 * PAGE)
    os._exit(3)  # never reached: every point is passed within the first rounds


@pytest.mark.parametrize("point", ["fault:frame-taken", "fault:swapped-in", "reclaim:written",
                                   "munmap:frame-released"])
@pytest.mark.parametrize("kind", ["multilevel", "inverted"])
def test_a_core_killed_mid_change_leaves_a_machine_recovery_makes_whole(kind, point):
    from memsim.sim.vm.recovery import recover

    m = machine(vm_frames=40, policy="clock")
    try:
        sup = m.supervisor_vm()
        sp = sup.create_space(kind)
        base = sup.mmap(sp, 48 * PAGE, kind="heap")
        keep = sup.create_space("multilevel")
        kept = sup.mmap(keep, 8 * PAGE)
        for i in range(8):
            sup.store(keep, kept + i * PAGE, b"keep %d" % i)
        q = CTX.Queue()
        child = CTX.Process(target=die_at, args=(m, 1, point, sp, base, q))
        child.start()
        assert q.get(timeout=30) == "started"
        child.join(60)
        assert child.exitcode == -9, f"the child did not die at {point} (exit {child.exitcode})"
        report = recover(sup)
        assert check(sup) == [], report
        for i in range(8):  # the other space's data came through
            assert sup.load(keep, kept + i * PAGE, 5 + len(str(i))) == b"keep %d" % i
        for i in range(48):  # and the damaged one still works: every page is whole or zero
            got = sup.load(sp, base + i * PAGE, 22)
            assert got == b"\0" * 22 or got.startswith(b"%012d:" % ((base >> 12) + i))
            sup.store(sp, base + i * PAGE, b"after")
        assert check(sup) == []
        assert all(m.locks(0).probe_free(i) for i in range(len(m._lock_names)))
    finally:
        m.destroy()


# -- fixes from a new-user run ---------------------------------------------------------------------------------

def test_prot_none_takes_even_a_resident_page_away():
    m = machine(vm_frames=64)
    try:
        vm = m.vm(0)
        sp = vm.create_space("multilevel")
        a = vm.mmap(sp, 2 * PAGE, kind="data")
        vm.store(sp, a, b"secret")
        vm.mprotect(sp, a, 2 * PAGE, 0)
        with pytest.raises(FailedPrecondition, match=r"read of .* \(---\)"):
            vm.load(sp, a, 6)  # resident, and in this core's TLB a moment ago
        vm.mprotect(sp, a, 2 * PAGE, R)
        assert vm.load(sp, a, 6) == b"secret"
        assert vm.load(sp, a, 0) == b"" and vm.space_stats(sp)["rss_pages"] == 1  # 0 bytes touch nothing
    finally:
        m.destroy()


def test_a_table_run_evicts_pages_when_the_pool_is_full():
    m = machine(vm_frames=64, policy="lru")
    try:
        vm = m.vm(0)
        busy = vm.create_space("multilevel")
        b = vm.mmap(busy, 100 * PAGE)
        for i in range(100):
            vm.store(busy, b + i * PAGE, b"%d" % i)
        assert vm.pool.free_frames() == 0
        lin = vm.create_space("linear", bits=24)  # 16 KiB of table: a run of 4 frames
        assert vm.space_stats(lin)["page_table_bytes"] == 4 * PAGE
        for i in range(100):
            assert vm.load(busy, b + i * PAGE, len(b"%d" % i)) == b"%d" % i
        assert check(vm) == []
    finally:
        m.destroy()


def test_swap_slots_come_back_when_swap_is_half_full():
    m = machine(vm_frames=16, policy="clock", swap_pages=48)
    try:
        vm = m.vm(0)
        sp = vm.create_space("multilevel")
        base = vm.mmap(sp, 56 * PAGE)  # 16 frames + 48 slots can hold it, barely
        for i in range(56):
            vm.store(sp, base + i * PAGE, b"v%d" % i)
        for _ in range(3):  # read passes: swapped-in pages must not keep their slots when swap is tight
            for i in range(56):
                assert vm.load(sp, base + i * PAGE, len(b"v%d" % i)) == b"v%d" % i
        assert check(vm) == []
    finally:
        m.destroy()


def test_a_failed_mmap_leaves_no_region_and_unmapping_a_stack_takes_its_guard():
    m = machine(vm_frames=64)
    try:
        vm = m.vm(0)
        sp = vm.create_space("hybrid", bits=40)
        before = vm.regions(sp)
        free = vm.pool.free_frames()
        with pytest.raises(ResourceExhausted):
            vm.mmap(sp, 1 << 37, kind="heap")
        assert vm.regions(sp) == before and vm.pool.free_frames() == free
        ml = vm.create_space("multilevel")
        st = vm.mmap(ml, 4 * PAGE, kind="stack")
        assert [r[3] for r in vm.regions(ml)] == ["guard", "stack"]
        vm.munmap(ml, st, 4 * PAGE)
        assert vm.regions(ml) == []
    finally:
        m.destroy()


def test_a_hybrid_stack_segment_grows_down_and_costs_only_its_pages():
    m = machine(vm_frames=512)
    try:
        vm = m.vm(0)
        sp = vm.create_space("hybrid", bits=32)
        code = vm.mmap(sp, 16 * PAGE, prot=R | X, kind="code")
        stack = vm.mmap(sp, 16 * PAGE, kind="stack")
        vm.load(sp, code, 1)
        for i in range(16):
            vm.store(sp, stack + i * PAGE, b"frame %d" % i)
        assert vm.space_stats(sp)["page_table_bytes"] <= 4 * PAGE  # not the 1 MiB to the segment's top
        for i in range(16):
            assert vm.load(sp, stack + i * PAGE, 6 + len(str(i))) == b"frame %d" % i
        with pytest.raises(FailedPrecondition, match="guard page"):
            vm.store(sp, stack - 1, b"x")
        vm.munmap(sp, stack + 4 * PAGE, 4 * PAGE)
        assert vm.load(sp, stack, 7) == b"frame 0" and check(vm) == []
    finally:
        m.destroy()


def test_inverted_hash_spreads_one_page_of_many_spaces_over_many_chains():
    # The same virtual page in 100 spaces: keys that differ only in their high (space) bits. A hash
    # that took the product's middle bits put them all on one chain, so a walk grew with the number
    # of spaces (52 references a walk at 100 spaces).
    from memsim.sim.vm.pt_inverted import ipt_hash, ipt_key

    mask = 1023
    assert len({ipt_hash(ipt_key(space, 5), mask) for space in range(100)}) > 90
    assert len({ipt_hash(ipt_key(1, vpn), mask) for vpn in range(1024)}) > 600
    assert all(0 <= ipt_hash(ipt_key(s, v), 15) <= 15 for s in range(8) for v in range(64))
