"""The live VM against the offline simulator: the same reference string, the same fault count.

Virtual memory's page replacement (sim/vm/vm.py) and the trace simulator
(sim/policies/simulate.py) drive the same policy classes; the simulator's loop is the
definition: a miss is `insert` (after `evict` when full), a hit is `hit`, never both for one
request. A page fault is the miss, and a fault must therefore not also be reported as a hit,
or Clock enters every page referenced, two-list activates every new page at once (and is
LRU), SIEVE marks every page visited and S3-FIFO promotes every page out of its small queue.

For every policy the VM accepts, on the classic Belady string at 3 and 4 frames, a hot set
with a scan through it, a cyclic string, seeded Zipf strings and random strings (hypothesis),
the machine's pgfault delta equals the simulator's misses. The machine gets exactly `frames`
frames for pages: a 21-bit space with a linear table holds 512 pages in one table frame, so
a pool of frames + 1. Loads exercise minor faults on zero pages (dropped on eviction);
stores make pages dirty, so the refaults are major faults read back from swap.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.client.vm import VMClient
from memsim.sim.policies import POLICIES
from memsim.sim.policies.simulate import simulate, zipf_trace
from memsim.sim.system import Machine, MachineConfig
from memsim.sim.vm.layout import HUGE_HEAD
from tests.servers import running_server

MiB = 1 << 20
PAGE = 4096
EVERY_POLICY = sorted(POLICIES)
BELADY = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5]


def hot_and_scan(rounds: int = 10, hot: int = 3, scan: int = 10) -> list[int]:
    """A hot set touched twice per round, then a one-pass scan of pages the hot set must survive."""
    out: list[int] = []
    for r in range(rounds):
        out += list(range(hot)) * 2
        out += list(range(hot + r * scan, hot + (r + 1) * scan))
    return out


STRINGS = {
    "belady-3": (BELADY, 3),
    "belady-4": (BELADY, 4),
    "hot-and-scan": (hot_and_scan(), 8),
    "cyclic": ([p for _ in range(6) for p in range(7)], 5),
    "zipf": (zipf_trace(400, 40, 0.9, seed=7), 10),
    "seeded-random": ([random.Random(3).randrange(20) for _ in range(300)], 6),
}


def live_faults(policy: str, trace: list[int], frames: int, write: bool = False) -> int:
    """Page faults of the machine replaying trace (page numbers) with `frames` frames for pages."""
    npages = max(trace) + 1
    m = Machine.create(MachineConfig(memory_bytes=8 * MiB, cores=1, vm_memory=(frames + 1) * PAGE,
                                     vm_policy=policy, swap_bytes=(npages + 8) * PAGE))
    try:
        vm = m.vm(0)
        sp = vm.create_space("linear", bits=21)  # 512 pages, one table frame
        base = vm.mmap(sp, npages * PAGE)
        before = vm.vmstat()["pgfault"]
        for page in trace:
            if write:
                vm.store(sp, base + page * PAGE, b"%d" % page)
            else:
                vm.load(sp, base + page * PAGE, 1)
        faults = vm.vmstat()["pgfault"] - before
        assert vm.policy.check() == []
        if write:  # the data came back from swap intact
            for page in sorted(set(trace)):
                assert vm.load(sp, base + page * PAGE, len(b"%d" % page)) == b"%d" % page
        return faults
    finally:
        m.destroy()


def offline_misses(policy: str, trace: list[int], frames: int) -> int:
    return simulate(policy, trace, frames).misses


@pytest.mark.parametrize("policy", EVERY_POLICY)
@pytest.mark.parametrize("name", list(STRINGS))
def test_live_faults_equal_offline_misses(policy, name):
    trace, frames = STRINGS[name]
    assert live_faults(policy, trace, frames) == offline_misses(policy, trace, frames)


@pytest.mark.parametrize("policy", EVERY_POLICY)
@pytest.mark.parametrize("name", ["belady-3", "hot-and-scan", "zipf"])
def test_live_faults_equal_offline_misses_through_swap(policy, name):
    trace, frames = STRINGS[name]
    assert live_faults(policy, trace, frames, write=True) == offline_misses(policy, trace, frames)


@pytest.mark.parametrize("policy", EVERY_POLICY)
@settings(max_examples=15, deadline=None)
@given(trace=st.lists(st.integers(0, 11), min_size=1, max_size=60), frames=st.integers(1, 8),
       write=st.booleans())
def test_live_faults_equal_offline_misses_on_random_strings(policy, trace, frames, write):
    assert live_faults(policy, trace, frames, write) == offline_misses(policy, trace, frames)


def test_the_documented_differences_from_lru_hold_on_the_machine():
    """What the policies are for, on the machine: two-list resists a scan that flushes LRU;
    Clock, like LRU here, has no Belady anomaly on the classic string, FIFO has."""
    trace, frames = STRINGS["hot-and-scan"]
    assert live_faults("twolist", trace, frames) < live_faults("lru", trace, frames)
    assert live_faults("clock", BELADY, 4) <= live_faults("clock", BELADY, 3)
    assert live_faults("fifo", BELADY, 4) > live_faults("fifo", BELADY, 3)


def test_a_huge_page_fault_is_an_insertion_not_a_hit():
    """The THP fault path inserts the huge page's head; the faulting access is not also a hit."""
    m = Machine.create(MachineConfig(memory_bytes=24 * MiB, cores=1, vm_memory=8 * MiB, vm_policy="twolist",
                                     thp="always"))
    try:
        vm = m.vm(0)
        sp = vm.create_space("multilevel")
        base = vm.mmap(sp, 4 * MiB)
        base2 = -(-base // (2 * MiB)) * 2 * MiB
        vm.store(sp, base2, b"x")
        heads = [int(f) for f in (vm.a.vm_huge == HUGE_HEAD).nonzero()[0]]
        assert len(heads) == 1 and vm.policy.lists() == ([], heads)  # inactive: touched once
        vm.load(sp, base2 + 5 * PAGE, 1)  # the second access, through the huge TLB entry
        assert vm.policy.lists() == (heads, [])
    finally:
        m.destroy()


@pytest.mark.parametrize("policy", ["s3fifo", "twolist"])
def test_a_new_space_in_a_reused_slot_starts_afresh(policy):
    """A policy's memory of evicted pages (S3-FIFO's ghost) dies with their space: a new space
    given the same slot faults exactly as the first one did."""
    trace, frames = STRINGS["zipf"]
    m = Machine.create(MachineConfig(memory_bytes=8 * MiB, cores=1, vm_memory=(frames + 1) * PAGE,
                                     vm_policy=policy))
    try:
        vm = m.vm(0)
        counts = []
        for _ in range(2):
            sp = vm.create_space("linear", bits=21)
            base = vm.mmap(sp, (max(trace) + 1) * PAGE)
            before = vm.vmstat()["pgfault"]
            for page in trace:
                vm.load(sp, base + page * PAGE, 1)
            counts.append((sp, vm.vmstat()["pgfault"] - before))
            vm.destroy_space(sp)
        assert counts[0][0] == counts[1][0]
        assert counts[0][1] == counts[1][1] == offline_misses(policy, trace, frames)
    finally:
        m.destroy()


def server_faults(trace: list[int], vm: VMClient) -> int:
    sp = vm.create_space(page_table="linear", bits=21)
    base = sp.mmap((max(trace) + 1) * PAGE)
    before = vm.vmstat()["pgfault"]
    for page in trace:
        sp.load(base + page * PAGE, 1)
    faults = vm.vmstat()["pgfault"] - before
    sp.destroy()
    return faults


def server_batch_faults(trace: list[int], vm: VMClient) -> int:
    """The same through one batch of TRANSLATE ops: the reply's fault kinds, and pgfault, agree."""
    sp = vm.create_space(page_table="linear", bits=21)
    base = sp.mmap((max(trace) + 1) * PAGE)
    before = vm.vmstat()["pgfault"]
    batch = sp.batch()
    for page in trace:
        batch.translate(base + page * PAGE)
    reply = batch.execute()
    assert not reply.errors
    faults = vm.vmstat()["pgfault"] - before
    assert sum(1 for t in reply.results if t.fault != "none") == faults
    sp.destroy()
    return faults


@pytest.mark.integration
@pytest.mark.parametrize("policy", EVERY_POLICY)
def test_live_faults_equal_offline_misses_through_the_server(policy):
    trace, frames = STRINGS["hot-and-scan"]
    with running_server(cores=1, memory="8MiB", extra=["--vm-memory", f"{(frames + 1) * PAGE}",
                                                       "--vm-policy", policy]) as srv, VMClient(srv.target) as vm:
        assert server_faults(trace, vm) == offline_misses(policy, trace, frames)
        assert server_faults(BELADY, vm) == offline_misses(policy, BELADY, frames)
        assert server_batch_faults(STRINGS["zipf"][0], vm) == offline_misses(policy, STRINGS["zipf"][0], frames)


def test_recovery_lays_the_policy_out_under_each_page_s_name():
    """After a core died, the policy is rebuilt from the resident frames, each with its page's
    identity (S3-FIFO's ghost needs it) and the capacity the pool has for pages."""
    from memsim.sim.vm.recovery import check, recover

    m = Machine.create(MachineConfig(memory_bytes=8 * MiB, cores=1, vm_memory=9 * PAGE, vm_policy="s3fifo"))
    try:
        vm = m.vm(0)
        sp = vm.create_space("linear", bits=21)
        base = vm.mmap(sp, 12 * PAGE)
        for page in range(12):
            vm.load(sp, base + page * PAGE, 1)
        recover(vm)
        resident = (vm.a.vm_rmap_space == sp).nonzero()[0].tolist()
        assert len(resident) == 8 and vm.policy.capacity == 8
        for f in resident:
            assert vm.policy.arrays["pol_fp"][f] == vm.page_fingerprint(sp, int(vm.a.vm_rmap_vpn[f]))
        assert check(vm) == []
    finally:
        m.destroy()
