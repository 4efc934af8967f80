"""A destroyed machine leaves nothing of its memory mapped in the process that used its VM: no module-level
cache (page-table views, say) may keep a view of a segment alive after Machine.destroy()."""

from __future__ import annotations

import gc

from memsim.sim.system import Machine, MachineConfig
from memsim.sim.vm.kinds import KINDS
from memsim.sim.vm.recovery import check

MiB = 1 << 20
PAGE = 4096


def mapped(names: list[str]) -> list[str]:
    """The lines of /proc/self/maps that map one of these shared-memory segments."""
    with open("/proc/self/maps") as maps:
        return [line for line in maps if any(f"/{name}" in line for name in names)]


def use_every_kind(m: Machine) -> None:
    vm = m.vm(0)
    for kind in KINDS:
        sp = vm.create_space(kind, bits=24 if kind == "linear" else None, name=kind)
        addr = vm.mmap(sp, 64 * PAGE)
        for i in range(64):
            vm.store(sp, addr + i * PAGE, b"page %d" % i)
        assert vm.load(sp, addr + 7 * PAGE, 6) == b"page 7"
        assert vm.memory_usage(sp)["pageTables"] >= 0 and vm.memory_map(sp)
        vm.munmap(sp, addr, 8 * PAGE)
    while vm.reclaim_one():  # pages out to swap and back
        if vm.vmstat()["pswpout"] > 16:
            break
    assert check(m.supervisor_vm()) == []


def test_destroyed_machines_with_every_page_table_kind_leave_nothing_mapped():
    seen: list[str] = []
    for _ in range(4):
        m = Machine.create(MachineConfig(memory_bytes=8 * MiB, cores=2, vm_memory=4 * MiB, swap_bytes=4 * MiB))
        names = m.segment_names
        seen += names
        use_every_kind(m)
        gc.collect()
        assert mapped(names), "the live machine's segments should be mapped (else this test proves nothing)"
        m.destroy()
        gc.collect()
        assert mapped(names) == [], "a destroyed machine's memory is still mapped"
    gc.collect()
    assert mapped(seen) == []
