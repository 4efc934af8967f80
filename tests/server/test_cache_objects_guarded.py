"""The cache's keys and values are allocator objects, but they are the keyspace's, not a client's:
the allocator service (memsim.v1.Machine) must not free, read or write them, even given their
address (found by bench/fuzz.py: a Free of a cache value's address succeeded, and once the slot
was reused the key's value was another object's bytes)."""

from __future__ import annotations

import pytest

from memsim.client import Cache, Client, FailedPrecondition
from memsim.sim.alloc.owners import CACHE_ENTRY, Owners
from memsim.sim.errors import FailedPrecondition as Refused
from tests.servers import running_server


def cache_objects(heap) -> list[int]:
    return Owners(heap).client_objects(CACHE_ENTRY)


def test_the_keyspace_records_its_objects_as_the_caches(machine):
    heap = machine.heap(0)
    ks = machine.keyspace(heap)
    before = set(cache_objects(heap))
    ks.set(b"k", b"v" * 100)  # a key and a value object, neither a client's
    made = set(cache_objects(heap)) - before
    assert len(made) >= 1
    owners = Owners(heap)
    live, _ = owners.live(limit=100_000)
    assert all(o.client == 0 for o in live if o.address in made)
    for addr in made:
        with pytest.raises(Refused, match="belongs to the cache"):
            owners.check_client_access(addr, "free")
    ks.release()


@pytest.mark.integration
@pytest.mark.parametrize("size", [5, 100, 40_000])  # a tiny, a small and a large value
def test_the_allocator_service_cannot_free_read_or_write_a_cache_value(size):
    with running_server(cores=1, memory="16MiB") as srv, Cache(srv.target) as r, Client(srv.target) as m:
        value = bytes(range(256)) * (size // 256) + bytes(size % 256)
        r.set("victim", value)
        info = m.list_objects(limit=100_000)
        mine = {o.address for o in m.list_objects(mine=True, limit=100_000).objects}
        targets = [o.address for o in info.objects if o.address not in mine]
        assert targets, "the cache's objects are listed"
        for addr in targets:
            with pytest.raises(FailedPrecondition, match="belongs to the cache"):
                m.free(addr)
            with pytest.raises(FailedPrecondition, match="belongs to the cache"):
                m.write(addr, b"x")
            with pytest.raises(FailedPrecondition, match="belongs to the cache"):
                m.read(addr, 1)
            b = m.batch()
            b.free(addr)
            b.write(addr, b"y")
            b.read(addr, 1)
            res = b.execute()
            assert [e.code.name for _, e in res.errors] == ["FAILED_PRECONDITION"] * 3
        for _ in range(50):  # reuse whatever a wrongful free would have handed out
            a = m.alloc(size)
            m.write(a.address, b"\xff" * min(size, 64))
        assert r.get("victim") == value
        assert not m.stats(check_heap=True).heap_problems
