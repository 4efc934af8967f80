"""The replacement-policy extension point: a policy defined here, and nowhere else, registered once,
is usable by the trace simulator, by virtual memory as its `vm_policy` and by the cache as a
`maxmemory-policy`, with no other change.

The policy is MRU (evict the most recently used slot: Belady's choice on a cyclic scan one page
too long, and the opposite of LRU everywhere else), so that each owner's victim is known in
advance and the tests can name it: a wrong victim, or a victim chosen by some other policy,
fails them. It is registered by a fixture and taken out again afterwards, so the other test
modules never see it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from memsim.sim.cache.commands import Commands
from memsim.sim.cache.config import POLICY_IDS, maxmemory_policies
from memsim.sim.cache.db import ENTRY_BYTES
from memsim.sim.cache.keyspace import Keyspace
from memsim.sim.machine.shm import ArraySpec
from memsim.sim.policies import POLICIES, Policy, policy_id, register
from memsim.sim.policies.base import SIZE
from memsim.sim.policies.simulate import make, replay, simulate
from memsim.sim.system import Machine, MachineConfig
from memsim.sim.vm.lru import policy_name as vm_policy_name

MiB = 1 << 20
PAGE = 4096
NAME = "mru-test"
CLOCK = 2  # pol_meta's cell for the access counter (after CAPACITY and SIZE)


class MRU(Policy):
    """Most recently used first out. pol_stamp[slot] is the access count at the slot's last access
    (0: absent); evict() takes the present slot with the largest stamp (an O(slots) scan: a test policy)."""

    @classmethod
    def array_specs(cls, slots: int) -> list[ArraySpec]:
        return [ArraySpec("pol_stamp", "int64", (slots,)), ArraySpec("pol_meta", "int64", (3,))]

    def _bind(self, arrays: dict[str, Any]) -> None:
        self._stamp = arrays["pol_stamp"]

    def _reset(self) -> None:
        for s in range(self.slots):
            self._stamp[s] = 0
        self._meta[CLOCK] = 0

    def _tick(self, slot: int) -> None:
        self._meta[CLOCK] += 1
        self._stamp[slot] = self._meta[CLOCK]

    def _check(self, slot: int, present: bool) -> None:
        if not 0 <= slot < self.slots:
            raise self._out_of_range(slot)
        if present and not self._stamp[slot]:
            raise KeyError(slot)
        if not present and self._stamp[slot]:
            raise self._present(slot)

    def insert(self, slot: int, fingerprint: int = 0) -> None:
        self._check(slot, present=False)
        self._tick(slot)
        self._meta[SIZE] += 1

    def hit(self, slot: int) -> None:
        self._check(slot, present=True)
        self._tick(slot)

    def remove(self, slot: int) -> None:
        self._check(slot, present=True)
        self._stamp[slot] = 0
        self._meta[SIZE] -= 1

    def evict(self) -> int:
        if not len(self):
            raise self._empty()
        victim = max(range(self.slots), key=lambda s: int(self._stamp[s]))
        self.remove(victim)
        return victim

    def __contains__(self, slot: object) -> bool:
        return isinstance(slot, int) and 0 <= slot < self.slots and bool(self._stamp[slot])

    def check(self) -> list[str]:
        return self._check_size(sum(1 for s in range(self.slots) if self._stamp[s]))


@pytest.fixture
def mru() -> Iterator[str]:
    register(NAME)(MRU)  # the one registration: nothing else names the policy
    try:
        yield NAME
    finally:
        del POLICIES[NAME]


# -- the trace simulator ---------------------------------------------------------------------------

def test_the_simulator_runs_the_new_policy(mru):
    steps = replay(make(mru, 3), [1, 2, 3, 2, 4, 2], 3)
    assert [s.victim for s in steps] == [None, None, None, None, 2, 4]  # 2 was used last, then 4
    # a cyclic scan one object too long: LRU misses every time, MRU keeps most of the cycle
    cyclic = [p for _ in range(10) for p in range(4)]
    assert simulate(mru, cyclic, 3).misses < simulate("lru", cyclic, 3).misses == len(cyclic)


# -- virtual memory --------------------------------------------------------------------------------

def test_virtual_memory_pages_by_the_new_policy(mru):
    """The machine with `frames` frames for pages (a 21-bit space's one table frame besides) faults
    exactly as often as the simulator misses, and the page it evicted is the one MRU names."""
    frames = 3
    trace = [0, 1, 2, 0, 3] + [p for _ in range(5) for p in range(5)]
    m = Machine.create(MachineConfig(memory_bytes=8 * MiB, cores=1, vm_memory=(frames + 1) * PAGE,
                                     vm_policy=mru, swap_bytes=16 * PAGE))
    try:
        vm = m.vm(0)
        assert type(vm.policy) is MRU
        sp = vm.create_space("linear", bits=21)
        base = vm.mmap(sp, 8 * PAGE)

        def faults(pages: list[int]) -> int:
            before = vm.vmstat()["pgfault"]
            for page in pages:
                vm.store(sp, base + page * PAGE, b"%d" % page)
            return vm.vmstat()["pgfault"] - before

        assert faults(trace[:5]) == simulate(mru, trace[:5], frames).misses == 4
        # 0 was used last before 3 came: MRU evicted it, so 1 and 2 are resident and 0 faults again
        assert faults([1, 2]) == 0 and faults([0]) == 1
        assert faults(trace[5:]) == simulate(mru, [0, 1, 2, 0, 3, 1, 2, 0, *trace[5:]], frames).misses - 5
        assert vm.policy.check() == []
    finally:
        m.destroy()


# -- the cache -------------------------------------------------------------------------------------

def test_the_cache_evicts_by_the_new_policy(mru):
    m = Machine.create(MachineConfig(memory_bytes=8 * MiB, cores=1, max_keys=1024))
    try:
        ks: Keyspace = m.keyspace(m.heap(0))
        cmds = Commands(ks)
        value = b"v" * 24
        per_key = ks._charge(len(b"k00")) + ks._charge(len(value)) + ENTRY_BYTES
        assert cmds.execute([b"CONFIG", b"SET", b"maxmemory-policy", mru.encode(),
                             b"maxmemory", str(10 * per_key).encode()]) == "OK"
        assert cmds.execute([b"CONFIG", b"GET", b"maxmemory-policy"]) == [b"maxmemory-policy", mru.encode()]
        for i in range(10):
            cmds.execute([b"SET", b"k%02d" % i, value])
        assert cmds.execute([b"GET", b"k03"]) == value  # k03 is now the most recently used
        cmds.execute([b"SET", b"k10", value])  # past maxmemory: one key must go
        assert cmds.execute([b"EXISTS", b"k03"]) == 0
        assert sum(cmds.execute([b"EXISTS", b"k%02d" % i]) for i in range(11)) == 10
        cmds.execute([b"SET", b"k11", value])  # k10 was just written: the most recent now
        assert cmds.execute([b"EXISTS", b"k10"]) == 0 and cmds.execute([b"EXISTS", b"k11"]) == 1
        pid = ks.exact.active
        assert ks.evicted_keys() == int(ks.a.ks_evicted[0, pid]) == 2 and ks.used_memory() <= 10 * per_key
        assert ks.exact.get(ks.exact.active).check() == []
    finally:
        m.destroy()


def test_the_machine_starts_with_the_new_policy(mru):
    m = Machine.create(MachineConfig(memory_bytes=8 * MiB, cores=1, max_keys=1024, maxmemory_policy=mru,
                                     maxmemory=64 * 1024))
    try:
        ks = m.keyspace(m.heap(0))
        assert ks.config_items()[1] == ("maxmemory-policy", mru)
        assert type(ks.exact.get(ks.exact.active)) is MRU
    finally:
        m.destroy()


def test_a_policy_registered_later_renumbers_nothing_and_is_refused_by_an_older_machine():
    """Ids are places in the order of registration, so a machine's stored ids keep their meaning
    when a policy is registered after it was made; its cache, laid out without the newcomer, refuses
    to switch to it instead of reading arrays it never laid out."""
    assert maxmemory_policies()[8:15] == ["exact-lru", "exact-lfu", "fifo", "clock", "twolist", "sieve", "s3fifo"]
    m = Machine.create(MachineConfig(memory_bytes=8 * MiB, cores=1, max_keys=1024, maxmemory_policy="sieve",
                                     vm_memory=64 * PAGE, vm_policy="twolist"))
    try:
        before = dict(POLICY_IDS), {n: policy_id(n) for n in POLICIES}
        register(NAME)(MRU)
        try:
            assert {n: POLICY_IDS[n] for n in before[0]} == before[0]
            assert {n: policy_id(n) for n in before[1]} == before[1] and policy_id(NAME) == len(before[1])
            cmds = Commands(m.keyspace(m.heap(0)))
            assert cmds.execute([b"CONFIG", b"GET", b"maxmemory-policy"]) == [b"maxmemory-policy", b"sieve"]
            assert vm_policy_name(m.vm(0).a) == "twolist"
            with pytest.raises(Exception, match="registered after this cache was laid out"):
                cmds.execute([b"CONFIG", b"SET", b"maxmemory-policy", NAME.encode()])
            assert cmds.execute([b"CONFIG", b"GET", b"maxmemory-policy"]) == [b"maxmemory-policy", b"sieve"]
        finally:
            del POLICIES[NAME]
    finally:
        m.destroy()

