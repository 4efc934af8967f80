"""Pinned pages (sim/vm/gup.py, Linux's pin_user_pages with FOLL_PIN): a holder reads and writes
them through their frames, and reclaim, compaction, khugepaged and split leave them alone.

- stamps written through the returned frames survive reclaim pressure from another space (no
  swap-out of a pinned page); unpinned, the same pages are reclaimed;
- compaction does not migrate a pinned frame, khugepaged does not collapse a pinned range, a
  partial munmap/mprotect does not split a pinned huge page;
- bad input is refused before anything is pinned or faulted; the machine's pin limit holds;
- several processes pinning, writing through frames and reclaiming at once keep every checksum;
- recovery releases a killed core's pins (also one killed mid-pin), and only its own;
- long-term pins (FOLL_LONGTERM) are the space's: they outlive the core that took them, any core
  releases them, check() counts them, destroying the space releases them, the limit counts them.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import queue
import signal
import time
import traceback

import numpy as np
import pytest

from memsim.sim.errors import FailedPrecondition, InvalidArgument, NotFound, OutOfRange, ResourceExhausted
from memsim.sim.policies import policy_names
from memsim.sim.system import Machine, MachineConfig
from memsim.sim.vm.gup import MAX_PIN_PAGES
from memsim.sim.vm.hugepage import collapse_scan
from memsim.sim.vm.layout import M_PIN_LIMIT, M_PINNED, M_THP
from memsim.sim.vm.recovery import check, recover
from memsim.sim.vm.vma import R

MiB = 1 << 20
PAGE = 4096
HP = 512
CTX = mp.get_context("fork")


def make(vm_frames: int, cores: int = 4, memory: int = 8 * MiB, **kw) -> Machine:
    kw.setdefault("vm_policy", "clock")
    kw.setdefault("swap_bytes", 16 * MiB)
    return Machine.create(MachineConfig(memory_bytes=memory, cores=cores, vm_memory=vm_frames * PAGE, **kw))


def stamp(tag: str, i: int) -> bytes:
    return hashlib.blake2b(f"{tag}:{i}".encode(), digest_size=16).digest()


def write_through(vm, frame: int, data: bytes) -> None:
    """A direct-map store: straight into the frame's bytes, no MMU."""
    vm.mem.data[frame * vm.fs:frame * vm.fs + len(data)] = np.frombuffer(data, dtype=np.uint8)


def read_through(vm, frame: int, n: int) -> bytes:
    return vm.mem.data[frame * vm.fs:frame * vm.fs + n].tobytes()


def no_pins(vm) -> bool:
    a = vm.a
    return (not a.vm_pincount.any() and not a.vm_pin_core.any() and not a.vm_pin_longterm.any()
            and int(a.vm_meta[M_PINNED]) == 0)


def hog(vm, pages: int) -> None:
    """Reclaim pressure from another space: touch `pages` pages of a new one."""
    sp = vm.create_space("multilevel", name="hog")
    base = vm.mmap(sp, pages * PAGE)
    for i in range(pages):
        vm.store(sp, base + i * PAGE, b"hog %d" % i)


@pytest.fixture
def m(request):
    """A machine with a pool of 256 frames (a pin limit of 64); parametrize indirectly to change its config."""
    machine = make(256, **(getattr(request, "param", None) or {}))
    yield machine
    machine.destroy()


# -- reclaim ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("pinned", [True, False])
def test_pinned_pages_survive_reclaim_pressure_and_unpinned_ones_do_not(pinned, m):
    vm = m.vm(0)
    sp = vm.create_space("multilevel", name="v8 heap")
    base = vm.mmap(sp, 32 * PAGE)
    if pinned:
        frames = vm.pin_user_pages(sp, base, 32)
        for i, f in enumerate(frames):
            write_through(vm, f, stamp("gc", i))
    else:
        for i in range(32):
            vm.store(sp, base + i * PAGE, stamp("gc", i))
    hog(vm, 1024)  # 4x the pool
    st = vm.vmstat()
    assert st["pswpout"] > 0
    if pinned:
        assert vm.space_stats(sp)["swap_pages"] == 0 and vm.space_stats(sp)["rss_pages"] == 32
        assert st["reclaim_pinned_skips"] > 0
        assert [read_through(vm, f, 16) for f in frames] == [stamp("gc", i) for i in range(32)]
        assert [vm.translate(sp, base + i * PAGE)["frame"] for i in range(32)] == frames
        assert sum(r["pinned"] for r in vm.memory_map(sp)) == 32 * PAGE
        assert check(vm) == []
        vm.unpin_user_pages(sp, frames)
        assert no_pins(vm) and vm.vmstat()["nr_foll_pin_released"] == 32
        hog(vm, 1024)  # now they may go
    assert vm.space_stats(sp)["swap_pages"] > 0
    for i in range(32):  # and come back whole
        assert vm.load(sp, base + i * PAGE, 16) == stamp("gc", i)
    assert check(vm) == []


# -- huge pages: compaction, khugepaged, split ---------------------------------------------------------

@pytest.fixture
def thp():
    m = make(2048, cores=2, memory=24 * MiB, vm_policy="lru", thp="always")
    yield m
    m.destroy()


def aligned_start(vm, sp: int, size: int) -> int:
    base = vm.mmap(sp, size + 2 * MiB, kind="heap")
    return -(-base // (2 * MiB)) * (2 * MiB)


def test_compaction_does_not_move_a_pinned_frame(thp):
    vm = thp.vm(0)
    meta = thp.meta.arrays["vm_meta"]
    meta[M_THP] = 0
    other = vm.create_space("multilevel")
    n_pages = vm.pool.nframes - 64
    scattered = vm.mmap(other, n_pages * PAGE, kind="heap")
    for i in range(n_pages):
        vm.store(other, scattered + i * PAGE, stamp("o", i))
    touched = list(range(0, n_pages, 64))
    for i in touched:  # every aligned window of the pool keeps a few used frames
        if i + 1 < n_pages:
            vm.munmap(other, scattered + (i + 1) * PAGE, min(63, n_pages - i - 1) * PAGE)
    pins = {i: vm.pin_user_pages(other, scattered + i * PAGE, 1) for i in touched}
    meta[M_THP] = 2
    sp = vm.create_space("multilevel")
    start = aligned_start(vm, sp, 2 * MiB)
    vm.store(sp, start, b"huge")
    st = vm.vmstat()
    assert st["compact_migrate_pages"] == 0 and st["thp_fault_fallback"] == 1 and st["huge_pages"] == 0
    for i in touched:
        assert vm.translate(other, scattered + i * PAGE)["frame"] == pins[i][0]
        assert read_through(vm, pins[i][0], 16) == stamp("o", i)
    for i in touched:  # unpinned, compaction may move them for the next huge page
        vm.unpin_user_pages(other, pins[i])
    start2 = aligned_start(vm, sp, 2 * MiB)
    vm.store(sp, start2, b"huge")
    st = vm.vmstat()
    assert st["compact_migrate_pages"] > 0 and st["thp_fault_alloc"] == 1
    for i in touched:
        assert vm.load(other, scattered + i * PAGE, 16) == stamp("o", i)
    assert check(vm) == []


def test_khugepaged_does_not_collapse_a_pinned_range(thp):
    vm = thp.vm(0)
    meta = thp.meta.arrays["vm_meta"]
    meta[M_THP] = 0
    sp = vm.create_space("multilevel")
    start = aligned_start(vm, sp, 2 * MiB)
    for i in range(HP):
        vm.store(sp, start + i * PAGE, stamp("k", i))
    frames = vm.pin_user_pages(sp, start + 7 * PAGE, 1, write=False)
    meta[M_THP] = 2
    assert collapse_scan(vm) == 0 and vm.vmstat()["huge_pages"] == 0
    assert vm.translate(sp, start + 7 * PAGE)["frame"] == frames[0]
    vm.unpin_user_pages(sp, frames)
    assert collapse_scan(vm) == 1
    assert vm.load(sp, start + 7 * PAGE, 16) == stamp("k", 7)
    assert check(vm) == []


def test_a_pinned_subpage_pins_its_huge_page_whole(thp):
    vm = thp.vm(0)
    sp = vm.create_space("multilevel")
    start = aligned_start(vm, sp, 2 * MiB)
    frames = vm.pin_user_pages(sp, start + 3 * PAGE, 2)
    assert vm.vmstat()["huge_pages"] == 1 and frames[1] == frames[0] + 1
    a = vm.a
    head = frames[0] - 3 - vm.pool.base
    assert int(a.vm_pincount[head]) == 2 and int(a.vm_meta[M_PINNED]) == HP  # counted on the head, held whole
    assert sum(r["pinned"] for r in vm.memory_map(sp)) == HP * PAGE
    with pytest.raises(FailedPrecondition, match="pinned huge page"):
        vm.mprotect(sp, start, PAGE, R)  # would split it
    with pytest.raises(FailedPrecondition, match="pinned"):
        vm.munmap(sp, start + 100 * PAGE, PAGE)  # another subpage: the huge page is pinned
    vm.mprotect(sp, start, 2 * MiB, R)  # whole: no split, allowed (a pin is not a permission)
    assert vm.vmstat()["thp_split_page"] == 0
    thp.meta.arrays["vm_meta"][M_THP] = 0  # (the hog's own pages small: only ours is huge)
    hog(vm, 1900)  # pressure would split and swap it
    st = vm.vmstat()
    assert st["pswpout"] > 0 and st["reclaim_pinned_skips"] > 0
    assert st["thp_split_page"] == 0 and st["huge_pages"] == 1 and vm.space_stats(sp)["swap_pages"] == 0
    vm.unpin_user_pages(sp, frames)
    assert no_pins(vm)
    vm.munmap(sp, start + 100 * PAGE, PAGE)
    assert vm.vmstat()["thp_split_page"] == 1
    assert check(vm) == []


def test_a_pinned_hugetlb_page_holds_its_mapping_and_takes_nothing_from_the_limit():
    m = make(2048, cores=2, memory=24 * MiB, hugetlb_pages=1)
    try:
        vm = m.vm(0)
        sp = vm.create_space("multilevel")
        start = vm.mmap(sp, 2 * MiB, hugetlb=True)
        frames = vm.pin_user_pages(sp, start + 10 * PAGE, 3)
        assert int(vm.a.vm_pincount[frames[0] - 10 - vm.pool.base]) == 3 and int(vm.a.vm_meta[M_PINNED]) == 0
        with pytest.raises(FailedPrecondition, match="pinned"):
            vm.munmap(sp, start, 2 * MiB)
        assert check(vm) == []
        vm.unpin_user_pages(sp, frames)
        vm.munmap(sp, start, 2 * MiB)
        assert no_pins(vm) and check(vm) == []
    finally:
        m.destroy()


# -- validation and the limit ------------------------------------------------------------------------

@pytest.mark.parametrize("m", [{"heap_in_vm": True}], indirect=True)  # (a space of the machine's own)
def test_bad_input_is_refused_and_pins_nothing(m):
    vm = m.vm(0)
    sp = vm.create_space("multilevel")
    ro = vm.mmap(sp, 4 * PAGE, prot=R)
    rw = vm.mmap(sp, 8 * PAGE)  # (nothing mapped after it)
    stack = vm.mmap(sp, 4 * PAGE, kind="stack")
    gone = vm.create_space("multilevel")
    gone_base = vm.mmap(gone, PAGE)
    vm.destroy_space(gone)
    system = next(s for s in vm.spaces() if vm.a.sp_system[s])
    refusals = [
        (OutOfRange, lambda: vm.pin_user_pages(sp, rw + 6 * PAGE, 4)),  # runs past the region
        (OutOfRange, lambda: vm.pin_user_pages(sp, 0, 1)),  # nothing mapped
        (OutOfRange, lambda: vm.pin_user_pages(sp, 1 << 60, 1)),  # outside the space
        (FailedPrecondition, lambda: vm.pin_user_pages(sp, ro, 2)),  # read-only, write=True
        (FailedPrecondition, lambda: vm.pin_user_pages(sp, stack - PAGE, 2, write=False)),  # the guard page
        (NotFound, lambda: vm.pin_user_pages(gone, gone_base, 1)),  # destroyed
        (NotFound, lambda: vm.pin_user_pages(500, 0, 1)),
        (FailedPrecondition, lambda: vm.pin_user_pages(system, 0, 1, write=False)),  # the machine's own
        (InvalidArgument, lambda: vm.pin_user_pages(sp, rw, 0)),
        (InvalidArgument, lambda: vm.pin_user_pages(sp, rw, MAX_PIN_PAGES + 1)),
        (InvalidArgument, lambda: vm.pin_user_pages(sp, rw + 1, 1)),  # not page-aligned
        (InvalidArgument, lambda: vm.pin_user_pages(sp, rw, 1, write=1)),
        (FailedPrecondition, lambda: vm.unpin_user_pages(sp, [vm.pool.base])),  # never pinned
    ]
    for error, call in refusals:
        with pytest.raises(error):
            call()
    assert no_pins(vm)
    assert vm.space_stats(sp)["rss_pages"] == 0  # refused before a page was faulted in
    assert vm.vmstat()["nr_foll_pin_acquired"] == 0
    frames = vm.pin_user_pages(sp, rw, 2)
    for bad in ([frames[0], frames[0]], [frames[0] + 1000], [*frames, frames[0]]):  # more than pinned
        with pytest.raises(FailedPrecondition):
            vm.unpin_user_pages(sp, bad)
    with pytest.raises(FailedPrecondition):
        m.vm(1).unpin_user_pages(sp, frames)  # another core's pins
    assert int(vm.a.vm_meta[M_PINNED]) == 2
    for what in (lambda: vm.munmap(sp, rw, PAGE), lambda: vm.discard(sp, rw, 8 * PAGE)):
        with pytest.raises(FailedPrecondition, match="pinned"):
            what()
    assert vm.load(sp, rw, 1) == b"\0" and vm.space_stats(sp)["rss_pages"] == 2
    vm.unpin_user_pages(sp, frames)
    assert no_pins(vm) and check(vm) == []


def test_the_pin_limit_holds_and_a_refusal_pins_nothing(m):
    vm = m.vm(0)
    limit = int(vm.a.vm_meta[M_PIN_LIMIT])
    assert limit == 256 // 4
    sp = vm.create_space("multilevel")
    base = vm.mmap(sp, 2 * limit * PAGE)
    first = vm.pin_user_pages(sp, base, limit - 10)
    again = vm.pin_user_pages(sp, base, 5)  # the same pages again: no new frames
    assert int(vm.a.vm_meta[M_PINNED]) == limit - 10
    with pytest.raises(ResourceExhausted, match="pin limit of 64 frames"):
        vm.pin_user_pages(sp, base + (limit - 10) * PAGE, 11)  # 10 fit, the 11th does not
    assert int(vm.a.vm_meta[M_PINNED]) == limit - 10 and int(vm.a.vm_pincount.sum()) == limit - 5
    other = vm.create_space("multilevel")  # the limit is the machine's
    o = vm.mmap(other, 16 * PAGE)
    assert len(vm.pin_user_pages(other, o, 10)) == 10
    with pytest.raises(ResourceExhausted):
        vm.pin_user_pages(other, o + 10 * PAGE, 1)
    hog(vm, 512)  # reclaim still works beside a full pin budget
    vm.unpin_user_pages(sp, again)
    vm.unpin_user_pages(sp, first)
    vm.destroy_space(other)  # a destroy releases its space's pins
    assert no_pins(vm) and check(vm) == []
    st = vm.vmstat()
    assert st["nr_foll_pin_acquired"] == st["nr_foll_pin_released"] == limit - 10 + 5 + 10
    assert st["pinned_frames"] == 0 and st["pin_limit_frames"] == limit


# -- several processes at once --------------------------------------------------------------------------

def _child(q, fn, *args) -> None:
    code = 0
    try:
        try:
            q.put(("ok", fn(*args)))
        except BaseException:  # noqa: BLE001 - a child reports every failure, then os._exit
            code = 1
            q.put(("error", traceback.format_exc()))
        q.close()
        q.join_thread()
    finally:
        os._exit(code)


HELD = 4  # pages 0..3 of each pinner's space stay pinned the whole time (a collector's long-held pages)


def pinner(m: Machine, core: int, sp: int, base: int, pages: int, deadline: float) -> tuple[int, dict[int, bytes]]:
    """Hold HELD pages pinned throughout; meanwhile, round after round until the deadline (and at least
    20 rounds), pin a random run of the others, write stamps through the frames, check them after
    other work, unpin. The last stamp of each page is returned for the parent's check."""
    rng = np.random.default_rng(core)
    vm = m.vm(core)
    held = vm.pin_user_pages(sp, base, HELD)
    last: dict[int, bytes] = {i: stamp(f"{core}:held", i) for i in range(HELD)}
    for i, f in enumerate(held):
        write_through(vm, f, last[i])
    r = 0
    while r < 20 or time.monotonic() < deadline:
        n = int(rng.integers(1, 9))
        first = int(rng.integers(HELD, pages - n))
        frames = vm.pin_user_pages(sp, base + first * PAGE, n)
        for k, f in enumerate(frames):
            last[first + k] = stamp(f"{core}:{r}", first + k)
            write_through(vm, f, last[first + k])
        for _ in range(8):  # unpinned pages of its own, under the others' pressure
            i = int(rng.integers(HELD, pages))
            if not first <= i < first + n:
                last[i] = stamp(f"{core}:{r}:s", i)
                vm.store(sp, base + i * PAGE, last[i])
        for k, f in enumerate(frames):
            got = read_through(vm, f, 16)
            assert got == last[first + k], f"core {core} round {r}: frame {f} lost its stamp"
        vm.unpin_user_pages(sp, frames)
        r += 1
    assert [read_through(vm, f, 16) for f in held] == [last[i] for i in range(HELD)], f"core {core}: held pages"
    vm.unpin_user_pages(sp, held)
    return core, last


def reclaimer(m: Machine, core: int, pages: int, deadline: float) -> int:
    vm = m.vm(core)
    sp = vm.create_space("multilevel", name="hog")
    base = vm.mmap(sp, pages * PAGE)
    rounds = 0
    while time.monotonic() < deadline:
        for i in range(pages):
            vm.store(sp, base + i * PAGE, b"hog")
        rounds += 1
    return rounds


def test_processes_pin_write_through_frames_and_reclaim_at_once():
    m = make(320, cores=4)  # 3 x 48 pages and a 256-page hog: reclaim all the time, with some headroom
    try:
        sup = m.supervisor_vm()
        pages = 48
        spaces = [sup.create_space("multilevel", name=f"gc{c}") for c in range(3)]
        bases = [sup.mmap(sp, pages * PAGE) for sp in spaces]
        q = CTX.Queue()
        deadline = time.monotonic() + 6
        procs = [CTX.Process(target=_child, args=(q, pinner, m, c, spaces[c], bases[c], pages, deadline), daemon=True)
                 for c in range(3)]
        procs.append(CTX.Process(target=_child, args=(q, reclaimer, m, 3, 256, deadline), daemon=True))
        for p in procs:
            p.start()
        results = []
        for _ in procs:
            try:
                kind, payload = q.get(timeout=120)
            except queue.Empty:
                pytest.fail("a child never reported")
            assert kind == "ok", payload
            results.append(payload)
        for p in procs:
            p.join(30)
        lasts = dict(r for r in results if isinstance(r, tuple))
        assert sorted(lasts) == [0, 1, 2]
        st = sup.vmstat()
        assert st["pswpout"] > 0 and st["reclaim_pinned_skips"] > 0  # reclaim met pinned pages, and left them
        assert st["nr_foll_pin_acquired"] == st["nr_foll_pin_released"] > 0
        assert no_pins(sup) and check(sup) == []
        for c, sp in enumerate(spaces):  # every page holds what its process last wrote, through either path
            assert {i: sup.load(sp, bases[c] + i * PAGE, 16) for i in lasts[c]} == lasts[c]
    finally:
        m.destroy()


# -- recovery ------------------------------------------------------------------------------------------

def pin_and_die(m: Machine, core: int, sp: int, base: int, npages: int, crash_at: str | None, q) -> None:
    vm = m.vm(core)
    vm.crash_at = crash_at
    frames = vm.pin_user_pages(sp, base, npages)
    q.put(frames)
    q.close()
    q.join_thread()
    os.kill(os.getpid(), signal.SIGKILL)  # dies holding its pins


@pytest.mark.parametrize("crash_at", [None, "gup:pinned"])
def test_recovery_releases_a_killed_core_s_pins_and_only_its_own(crash_at, m):
    sup = m.supervisor_vm()
    sp = sup.create_space("multilevel")
    base = sup.mmap(sp, 32 * PAGE)
    alive = m.vm(2).pin_user_pages(sp, base + 16 * PAGE, 4)  # core 2 lives on
    q = CTX.Queue()
    child = CTX.Process(target=pin_and_die, args=(m, 1, sp, base, 8, crash_at, q))
    child.start()
    if crash_at is None:
        assert len(q.get(timeout=30)) == 8
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    dead = int(sup.a.vm_pin_core[1].sum())
    assert dead == (8 if crash_at is None else 1)  # (killed after its first page's pin)
    report = recover(sup, 1)
    assert report["pins_released"] == dead
    assert not sup.a.vm_pin_core[1].any() and int(sup.a.vm_meta[M_PINNED]) == 4
    assert check(sup) == []
    with pytest.raises(FailedPrecondition):
        sup.munmap(sp, base + 16 * PAGE, PAGE)  # core 2's pins hold
    sup.munmap(sp, base, 8 * PAGE)  # the dead core's pages are free to go
    m.vm(2).unpin_user_pages(sp, alive)
    assert no_pins(sup) and check(sup) == []


def test_check_sees_a_pin_count_out_of_step_and_recovery_recounts_it(m):
    vm = m.vm(0)
    sp = vm.create_space("multilevel")
    base = vm.mmap(sp, 4 * PAGE)
    frames = vm.pin_user_pages(sp, base, 2)
    f = frames[0] - vm.pool.base
    vm.a.vm_pincount[f] += 1  # a count no core's record explains
    vm.a.vm_pincount[frames[1] - vm.pool.base + 1] = 1  # a pin on a frame no page of it maps
    problems = check(vm)
    assert any("cores' pins sum" in p for p in problems) and any("no page maps" in p for p in problems)
    recover(m.supervisor_vm())  # no core died: the records stand, the counts follow them
    assert check(vm) == [] and int(vm.a.vm_pincount[f]) == 1
    vm.unpin_user_pages(sp, frames)
    assert no_pins(vm)


@pytest.mark.parametrize("policy", policy_names())
def test_a_few_pins_leave_reclaim_victims_under_every_policy(policy):
    """Reclaim takes a pinned page off the policy until its last unpin: put back at once, a policy
    that ranks it worst again (LFU's lowest count, SIEVE's hand) would hand it to every try and
    leave the machine out of memory with three quarters of the pool reclaimable."""
    m = make(256, vm_policy=policy)
    vm = m.vm(0)
    try:
        sp = vm.create_space("multilevel", name="p")
        base = vm.mmap(sp, 64 * PAGE)
        frames = vm.pin_user_pages(sp, base, 8, True)
        sp2 = vm.create_space("multilevel", name="hog")
        b2 = vm.mmap(sp2, 400 * PAGE)
        for i in range(400):
            vm.store(sp2, b2 + i * PAGE, b"x")
            for _ in range(3):
                vm.load(sp2, b2 + i * PAGE, 1)
        assert check(vm) == []
        vm.unpin_user_pages(sp, frames)  # back in the policy: reclaimable again
        assert all(f - vm.pool.base in vm.lru for f in frames) and check(vm) == [] and no_pins(vm)
    finally:
        m.destroy()


def test_khugepaged_collapses_from_the_frames_compaction_moved_the_range_to(thp):
    """Collapsing a range may compact first, and compaction may move the range's own pages: the copy
    must read them where they went, not where they were."""
    vm = thp.vm(0)
    meta = thp.meta.arrays["vm_meta"]
    meta[M_THP] = 0
    filler = vm.create_space("multilevel")
    fb = vm.mmap(filler, 600 * PAGE, kind="heap")
    for i in range(600):
        vm.store(filler, fb + i * PAGE, b"f")
    sp = vm.create_space("multilevel")
    start = aligned_start(vm, sp, 2 * MiB)
    other = vm.create_space("multilevel")
    ob = vm.mmap(other, 1400 * PAGE, kind="heap")
    oi = 0
    for i in range(HP):  # the range's pages interleaved with another space's
        vm.store(sp, start + i * PAGE, stamp("k", i))
        vm.store(other, ob + oi * PAGE, b"o")
        oi += 1
    while vm.pool.free_frames() > 0 and oi < 1400:
        vm.store(other, ob + oi * PAGE, b"o")
        oi += 1
    for j in range(oi):  # free the other space's pages outside window 0, and filler pages inside it
        if (vm.translate(other, ob + j * PAGE)["frame"] - vm.pool.base) // HP >= 1:
            vm.munmap(other, ob + j * PAGE, PAGE)
    vm.munmap(filler, fb + 100 * PAGE, 450 * PAGE)
    meta[M_THP] = 2
    assert collapse_scan(vm) == 1 and vm.vmstat()["compact_migrate_pages"] > 0
    assert [i for i in range(HP) if vm.load(sp, start + i * PAGE, 16) != stamp("k", i)] == []
    assert check(vm) == []


def test_the_pin_limit_is_a_quarter_of_what_reclaim_can_use_not_of_the_hugetlb_reservation():
    m = make(2048, memory=32 * MiB, vm_policy="clock", hugetlb_pages=3)  # 1536 frames reserved, 512 left
    vm = m.vm(0)
    try:
        assert int(vm.a.vm_meta[M_PIN_LIMIT]) == (2048 - 3 * HP) // 4
        sp = vm.create_space("multilevel", name="p")
        base = vm.mmap(sp, 512 * PAGE)
        with pytest.raises(ResourceExhausted, match="pin limit"):
            vm.pin_user_pages(sp, base, 505, True)
        assert no_pins(vm)
    finally:
        m.destroy()


# -- long-term pins (FOLL_LONGTERM) ---------------------------------------------------------------------

def pin_both_and_die(m: Machine, core: int, sp: int, base: int, q) -> None:
    vm = m.vm(core)
    q.put((vm.pin_user_pages(sp, base, 4, longterm=True), vm.pin_user_pages(sp, base + 4 * PAGE, 4)))
    q.close()
    q.join_thread()
    os.kill(os.getpid(), signal.SIGKILL)  # dies holding both kinds


def test_a_long_term_pin_outlives_the_core_that_took_it_and_a_short_term_one_does_not(m):
    sup = m.supervisor_vm()
    sp = sup.create_space("multilevel", name="isolate heap")
    base = sup.mmap(sp, 16 * PAGE)
    q = CTX.Queue()
    child = CTX.Process(target=pin_both_and_die, args=(m, 1, sp, base, q))
    child.start()
    longterm, short = q.get(timeout=30)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    report = recover(sup, 1)
    assert report["pins_released"] == 4 and check(sup) == []
    assert not sup.a.vm_pin_core.any() and int(sup.a.vm_meta[M_PINNED]) == 4
    assert [int(sup.a.vm_pincount[f - sup.pool.base]) for f in longterm + short] == [1] * 4 + [0] * 4
    with pytest.raises(FailedPrecondition):
        sup.munmap(sp, base, PAGE)  # the long-term pins hold the pages
    sup.munmap(sp, base + 4 * PAGE, 4 * PAGE)  # the dead core's short-term ones are gone
    with pytest.raises(FailedPrecondition, match="long-term"):
        m.vm(2).unpin_user_pages(sp, longterm + longterm, longterm=True)  # more than they hold: nothing goes
    m.vm(2).unpin_user_pages(sp, longterm, longterm=True)  # another core releases them
    assert no_pins(sup) and check(sup) == []


def test_another_core_unpins_a_long_term_pin_but_not_a_short_term_one(m):
    vm0, vm1 = m.vm(0), m.vm(1)
    sp = vm0.create_space("multilevel")
    base = vm0.mmap(sp, 8 * PAGE)
    longterm = vm0.pin_user_pages(sp, base, 2, longterm=True)
    short = vm0.pin_user_pages(sp, base + 2 * PAGE, 2)
    with pytest.raises(FailedPrecondition):
        vm1.unpin_user_pages(sp, short)  # core 0's
    with pytest.raises(FailedPrecondition):
        vm1.unpin_user_pages(sp, short, longterm=True)  # not long-term pins
    with pytest.raises(FailedPrecondition):
        vm0.unpin_user_pages(sp, longterm)  # not core 0's short-term pins either
    with pytest.raises(InvalidArgument):
        vm1.unpin_user_pages(sp, longterm, longterm=1)
    assert int(vm0.a.vm_pincount.sum()) == 4
    vm1.unpin_user_pages(sp, longterm, longterm=True)
    vm0.unpin_user_pages(sp, short)
    assert no_pins(vm0) and check(vm0) == []
    assert vm0.vmstat()["nr_foll_pin_released"] == 4


def test_check_sees_a_long_term_pin_count_out_of_step(m):
    vm = m.vm(0)
    sp = vm.create_space("multilevel")
    base = vm.mmap(sp, 4 * PAGE)
    frames = vm.pin_user_pages(sp, base, 2, longterm=True)
    assert check(vm) == []
    f = frames[0] - vm.pool.base
    vm.a.vm_pin_longterm[f] += 1  # a long-term pin the count does not hold
    assert any("cores' pins sum" in p for p in check(vm))
    recover(m.supervisor_vm())  # the records stand, the counts follow them
    assert check(vm) == [] and int(vm.a.vm_pincount[f]) == 2
    vm.unpin_user_pages(sp, frames + frames[:1], longterm=True)
    assert no_pins(vm)


def test_destroying_the_space_releases_its_long_term_pins(m):
    vm = m.vm(0)
    sp = vm.create_space("multilevel")
    base = vm.mmap(sp, 8 * PAGE)
    frames = vm.pin_user_pages(sp, base, 8, longterm=True)
    vm.pin_user_pages(sp, base, 2)
    vm.destroy_space(sp)
    assert no_pins(vm) and check(vm) == []
    assert vm.vmstat()["nr_foll_pin_released"] == 10
    with pytest.raises((FailedPrecondition, NotFound)):
        vm.unpin_user_pages(sp, frames, longterm=True)


def test_the_pin_limit_counts_long_term_pins(m):
    vm = m.vm(0)
    limit = int(vm.a.vm_meta[M_PIN_LIMIT])
    sp = vm.create_space("multilevel")
    base = vm.mmap(sp, (limit + 1) * PAGE)
    held = vm.pin_user_pages(sp, base, limit - 2, longterm=True)
    with pytest.raises(ResourceExhausted, match="pin limit"):
        vm.pin_user_pages(sp, base + (limit - 2) * PAGE, 3)  # short-term pins share the limit
    with pytest.raises(ResourceExhausted, match="pin limit"):
        vm.pin_user_pages(sp, base + (limit - 2) * PAGE, 3, longterm=True)
    assert int(vm.a.vm_meta[M_PINNED]) == limit - 2 and int(vm.a.vm_pin_longterm.sum()) == limit - 2
    vm.pin_user_pages(sp, base + (limit - 2) * PAGE, 2, longterm=True)  # exactly the limit
    assert int(vm.a.vm_meta[M_PINNED]) == limit and check(vm) == []
    vm.unpin_user_pages(sp, held, longterm=True)
