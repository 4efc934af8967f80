"""Both page sources keep PageSource's whole contract (sim/alloc/pagesource.py): the heap's bytes
read the same through the source's read/write/zero as through the heap itself."""

from __future__ import annotations

import pytest

from memsim.sim.system import Machine, MachineConfig

MiB = 1 << 20


@pytest.mark.parametrize("heap_in_vm", [False, True])
def test_a_source_moves_the_heaps_bytes(heap_in_vm):
    cfg = MachineConfig(memory_bytes=16 * MiB, cores=1, vm_memory=4 * MiB if heap_in_vm else 0, heap_in_vm=heap_in_vm)
    with Machine.create(cfg) as m:
        heap = m.heap(0)
        src = heap.source
        assert src.paged == heap_in_vm
        r = heap.malloc(100)
        heap.write(r.address, 0, b"abc" * 30)
        assert src.read(r.address, 90) == b"abc" * 30
        src.write(r.address + 10, b"XYZ")
        assert heap.read(r.address, 9, 5) == b"aXYZb"
        src.zero(r.address, 4)
        assert heap.read(r.address, 0, 6) == b"\0\0\0\0bc"
        assert (src.physical(r.address) < 0) == heap_in_vm
        del heap, src
