"""A destroyed machine leaves nothing mapped in the process that made it: no module-level cache or
per-core view keeps its segments alive after `destroy()` (sim/system.py, sim/machine/shm.py)."""

from __future__ import annotations

import gc

from memsim.sim.system import Machine, MachineConfig

MiB = 1 << 20


def mapped(token: str) -> list[str]:
    with open("/proc/self/maps") as f:
        return [line.strip() for line in f if f"memsim-{token}-" in line]


def test_destroyed_machines_leave_nothing_mapped():
    tokens = []
    for _ in range(3):
        m = Machine.create(MachineConfig(memory_bytes=8 * MiB, cores=2))
        tokens.append(m.token)
        heap = m.heap(0)
        ks = m.keyspace(heap)
        ks.set(b"k", b"v" * 100)
        r = heap.malloc(64 << 10)
        heap.write(r.address, 0, b"x" * 10)
        m.supervisor_heap()
        assert mapped(m.token)
        del heap, ks
        m.destroy()
    gc.collect()
    assert [line for t in tokens for line in mapped(t)] == []


def test_a_destroyed_machine_drops_its_per_core_vm_views():
    """Machine.vm(core) keeps one view per core (its TLB): destroy() lets them go, and the
    metadata segment they map with them."""
    m = Machine.create(MachineConfig(memory_bytes=8 * MiB, cores=2, vm_memory=2 * MiB))
    vm = m.vm(0)
    sp = vm.create_space("multilevel")
    vm.store(sp, vm.mmap(sp, 8192), b"x")
    token = m.token
    del vm
    m.destroy()
    gc.collect()
    assert [line for line in mapped(token) if f"memsim-{token}-meta" in line] == []
