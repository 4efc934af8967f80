"""Property test: random batches, mostly nonsense, never crash a worker or corrupt the heap.

Hypothesis builds batches of allocs, frees, reads and writes on addresses that are live,
freed, interior, outside the heap or random, with sizes from 0 to beyond physical memory.
Every op either succeeds or fails with one of the machine's status codes; afterwards the
server's invariant check passes, no worker has restarted, and freeing what is still live
brings the heap back to where it was.
"""

from __future__ import annotations

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsim.client import Client
from tests.servers import running_server

pytestmark = pytest.mark.integration  # every test here starts a server

BASE = 0xC000000000
ALLOWED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
           grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.RESOURCE_EXHAUSTED}


@pytest.fixture(scope="module")
def fuzz_server():
    with running_server(cores=2, memory="8MiB") as srv:
        yield srv


sizes = st.one_of(st.integers(0, 40), st.integers(0, 70_000), st.sampled_from([16, 32768, 32769, 8 << 20, 1 << 40]))
addresses = st.one_of(st.integers(0, (1 << 64) - 1), st.integers(BASE - 64, BASE + (8 << 20) + 64))
op = st.tuples(st.sampled_from(["alloc", "free", "read", "write", "free_live", "read_live", "write_live",
                                "free_interior"]), sizes, addresses, st.integers(0, 200))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=1, max_size=60))
def test_random_batches_never_hurt_the_machine(fuzz_server, ops):
    with Client(fuzz_server.target, timeout=30) as c:
        before = c.stats().memstats
        b = c.batch()
        allocs = []
        for kind, size, addr, off in ops:
            live = allocs[addr % len(allocs)] if allocs and kind.endswith("_live") else None
            target = live if live is not None else addr
            if kind == "alloc":
                allocs.append(b.alloc(size))
            elif kind == "free_interior":
                b.free(BASE + off * 8 + 1)
            elif kind.startswith("free"):
                b.free(target)
            elif kind.startswith("read"):
                b.read(target, size % 300, off)
            else:
                b.write(target, b"\xab" * (size % 300), off)
        res = b.execute()
        for _, e in res.errors:
            assert e.code in ALLOWED, e
        assert c.stats(check_heap=True).heap_problems == []
        # Free whatever this batch left allocated (some were freed by its own FREE ops, which
        # then fail here with FAILED_PRECONDITION): the heap must come back exactly.
        cleanup = c.batch()
        for r in allocs:
            if res[r.index].ok:
                cleanup.free(res[r.index].address)
        for _, e in cleanup.execute().errors:
            assert e.code == grpc.StatusCode.FAILED_PRECONDITION, e
        end = c.stats(check_heap=True)
        assert end.heap_problems == []
        assert end.memstats.HeapObjects == before.HeapObjects
    assert fuzz_server.alive_workers() == fuzz_server.worker_pids[:2]
