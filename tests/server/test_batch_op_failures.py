"""One op's unexpected failure is that op's INTERNAL error, never its batch's: the ops before and
after it keep their results (an allocation already made is reported, so its caller can free it).
The failure is injected into one call of a real heap / VM, since no known input reaches it."""

from __future__ import annotations

import grpc

from memsim.server.ops import execute_batch
from memsim.server.vm_servicer import run_batch
from memsim.sim.system import Machine, MachineConfig
from memsim.v1 import machine_pb2 as pb
from memsim.v1 import vm_pb2 as vpb

MiB = 1 << 20
INTERNAL = grpc.StatusCode.INTERNAL.value[0]


def test_an_allocator_batch_goes_on_past_an_unexpected_failure(machine, monkeypatch):
    heap = machine.heap(0)
    real_read = heap.read

    def read(addr, offset, n):
        if n == 7:
            raise RuntimeError("injected")
        return real_read(addr, offset, n)

    monkeypatch.setattr(heap, "read", read)
    req = pb.OpBatch(seq=1, kind=[pb.ALLOC, pb.READ, pb.ALLOC], size=[64, 7, 64], ref=[-1, 0, -1])
    reply = execute_batch(heap, req)
    assert [(e.index, e.code) for e in reply.errors] == [(1, INTERNAL)]
    assert "injected" in reply.errors[0].message
    assert reply.address[0] and reply.address[2]  # both allocations made and reported


def test_a_vm_batch_goes_on_past_an_unexpected_failure(monkeypatch):
    m = Machine.create(MachineConfig(memory_bytes=16 * MiB, cores=1, vm_memory=4 * MiB))
    try:
        vm = m.vm(0)
        sp = vm.create_space("multilevel")
        base = vm.mmap(sp, 3 * 4096)
        real_load = vm.load

        def load(s, addr, n):
            if addr == base + 4096:
                raise RuntimeError("injected")
            return real_load(s, addr, n)

        monkeypatch.setattr(vm, "load", load)
        req = vpb.VmBatch(seq=1, op=[vpb.VM_STORE, vpb.VM_LOAD, vpb.VM_LOAD], space=[sp] * 3,
                          address=[base, base + 4096, base], length=[0, 1, 2], data=[b"hi"])
        reply = run_batch(vm, req, 0)
        assert [(e.index, e.code) for e in reply.errors] == [(1, INTERNAL)]
        assert list(reply.data) == [b"", b"hi"]
    finally:
        m.destroy()
