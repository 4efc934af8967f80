"""With --heap-in-vm the allocator's arena is address space 0 ("go heap"): the machine's own space.
A VM client may look at it (load, translate, the reports) but never change it: a store would
overwrite allocator objects (the cache's values among them) behind the allocator's back, and a
destroy, munmap or mprotect would take the heap's memory away from under it."""

from __future__ import annotations

import pytest

from memsim.client import Client, FailedPrecondition, VMClient
from memsim.v1 import vm_pb2 as pb
from tests.servers import running_server

pytestmark = pytest.mark.integration  # every test here starts a server


def test_a_vm_client_cannot_change_the_allocators_space():
    with running_server(cores=1, memory="16MiB", extra=["--heap-in-vm", "--vm-memory", "8MiB"]) as srv, \
            Client(srv.target) as m, VMClient(srv.target) as vm:
        a = m.alloc(100)
        m.write(a.address, b"A" * 100)
        stub = vm._stub
        refused = {
            "Store": lambda: stub.Store(pb.StoreRequest(space=0, address=a.address, data=b"Z" * 10), timeout=10),
            "Mmap": lambda: stub.Mmap(pb.MmapRequest(space=0, length=4096), timeout=10),
            "Munmap": lambda: stub.Munmap(pb.MunmapRequest(space=0, address=a.address, length=4096), timeout=10),
            "Mprotect": lambda: stub.Mprotect(pb.MprotectRequest(space=0, address=a.address, length=4096, prot=1),
                                              timeout=10),
            "DestroySpace": lambda: stub.DestroySpace(pb.SpaceRequest(space=0), timeout=10),
        }
        for name, call in refused.items():
            with pytest.raises(Exception) as ei:
                call()
            assert ei.value.code().name == "FAILED_PRECONDITION", name
            assert "the machine's own" in ei.value.details(), name
        b = vm.space(0).batch() if hasattr(vm, "space") else None
        if b is not None:
            b.store(a.address, b"Q")
            res = b.execute()
            assert res.errors and isinstance(res.errors[0][1], FailedPrecondition)
        assert stub.Load(pb.LoadRequest(space=0, address=a.address, length=4), timeout=10).data == b"AAAA"
        assert m.read(a.address, 100) == b"A" * 100
        assert not m.stats(check_heap=True).heap_problems
