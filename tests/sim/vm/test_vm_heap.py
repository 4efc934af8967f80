"""The allocator's heap inside an address space (sim/vm/heapsource.py): paged like a process's heap."""

from __future__ import annotations

import pytest

from memsim.client import Cache, Client, VMClient
from memsim.sim.system import Machine, MachineConfig
from memsim.sim.vm.heapsource import HEAP_SPACE
from memsim.sim.vm.recovery import check
from tests.servers import running_server

MiB = 1 << 20


def test_a_heap_larger_than_memory_pages_and_its_objects_survive_swap():
    m = Machine.create(MachineConfig(memory_bytes=16 * MiB, cores=2, vm_memory=4 * MiB, heap_in_vm=True,
                                     heap_virtual_bytes=32 * MiB, swap_bytes=64 * MiB))
    try:
        heap, vm = m.heap(0), m.vm(0)
        objs = []
        for i in range(2000):  # 16 MiB of objects on a 4 MiB pool
            r = heap.malloc(8000)
            heap.write(r.address, 0, (b"%06d" % i) * 1000)
            objs.append(r.address)
        for i, a in enumerate(objs):
            assert heap.read(a, 0, 6000) == (b"%06d" % i) * 1000
        st = vm.vmstat()
        assert st["pswpout"] > 0 and st["pswpin"] > 0
        use = vm.memory_usage(HEAP_SPACE)
        assert use["heapTotal"] == 32 * MiB and use["rss"] <= 4 * MiB < use["heapUsed"] + use["swap"]
        small = [heap.malloc(24) for _ in range(100)]  # tiny and small classes too
        for k, r in enumerate(small):
            heap.write(r.address, 0, b"%024d" % k)
        assert all(heap.read(r.address, 0, 24) == b"%024d" % k for k, r in enumerate(small))
        for a in objs:
            heap.free(a)
        for r in small:
            heap.free(r.address)
        assert check(vm) == []
    finally:
        m.destroy()


def test_released_pages_go_back_to_the_pool_and_read_as_zeros():
    m = Machine.create(MachineConfig(memory_bytes=16 * MiB, cores=1, vm_memory=4 * MiB, heap_in_vm=True))
    try:
        heap, vm = m.heap(0), m.vm(0)
        r = heap.malloc(1 << 20)  # a large object: whole pages from the page heap
        heap.write(r.address, 0, b"x" * (1 << 20))
        rss = vm.space_stats(HEAP_SPACE)["rss_pages"]
        heap.source.release(r.address, 1 << 20)  # what the scavenger does to idle free pages
        assert vm.space_stats(HEAP_SPACE)["rss_pages"] <= rss - 255
        assert heap.read(r.address, 0, 8) == b"\0" * 8
        heap.free(r.address)
        assert check(vm) == []
    finally:
        m.destroy()


@pytest.mark.integration
def test_a_server_with_its_heap_in_an_address_space():
    with running_server(cores=2, memory="32MiB", extra=["--vm-memory", "8MiB", "--heap-in-vm", "--heap-virtual",
                                                        "64MiB"]) as srv:
        with Client(srv.target) as c:
            a = c.alloc(100)
            c.write(a.address, b"paged heap")
            assert c.read(a.address, 10) == b"paged heap"
            assert 0xC000000000 <= a.address < 0xC000000000 + 64 * MiB  # Go's arena, now virtual addresses of space 0
            c.free(a.address)
        with Cache(srv.target) as r:
            p = r.pipeline()
            for i in range(3000):
                p.set(f"k{i}", b"v" * 3000)  # 9 MiB of values on an 8 MiB pool
            p.execute()
            assert all(r.get(f"k{i}") == b"v" * 3000 for i in range(0, 3000, 97))
        with VMClient(srv.target) as vm:
            heap_space = vm.space(HEAP_SPACE)
            use = heap_space.memory_usage()
            assert use["heapTotal"] == 64 * MiB and use["rss"] <= 8 * MiB and use["swap"] > 0
            assert vm.spaces()[0].name == "go heap"
