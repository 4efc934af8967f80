"""Integration: the client library against a real server on loopback (2 cores, 16 MiB)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from memsim.client import (
    AsyncClient,
    Client,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
)
from memsim.v1 import machine_pb2 as pb
from tests.servers import running_server

pytestmark = pytest.mark.integration  # every test here starts a server

MEM = 16 << 20


@pytest.fixture(scope="module")
def server():
    # No scavenger passes here: the lock-counter tests must see only what they do themselves
    # (test_lifecycle.py tests the scavenger).
    with running_server(cores=2, memory="16MiB", extra=["--scavenge-period", "3600"]) as srv:
        yield srv


@pytest.fixture
def client(server):
    with Client(server.target, timeout=10) as c:
        yield c


def test_info_describes_the_machine(client):
    info = client.info()
    assert info.cores == 2
    assert info.memory_bytes == MEM
    assert info.frame_size == 4096 and info.heap_page_size == 8192
    assert len(info.size_classes) == 67 and info.size_classes[-1].size == 32768
    assert info.arena_base == 0xC000000000


def test_alloc_write_read_free_round_trip(client):
    for size in (1, 7, 15, 16, 100, 4000, 32768, 100_000):
        a = client.alloc(size)
        assert a.size == size and a.usable_size >= size
        payload = bytes((i * 7 + size) & 0xFF for i in range(size))
        client.write(a.address, payload)
        assert client.read(a.address, size) == payload
        assert client.read(a.address, 1, offset=size - 1) == payload[-1:]
        client.free(a.address)


def test_structured_values_round_trip_through_msgpack(client):
    value = {"user": "ada", "scores": [1, 2.5, None], "blob": b"\x00\x01", "nested": {"ok": True}}
    a = client.put_value(value)
    assert a.size == len(__import__("msgpack").packb(value, use_bin_type=True))
    assert client.get_value(a) == value
    client.free(a.address)


def test_layers_are_reported(client):
    big = client.alloc(64 << 10)
    assert big.layer == "mheap" and big.size_class == 0
    first, second = client.alloc(3), client.alloc(3)
    if first.core == second.core:  # the second packs into the block the first opened
        assert second.layer == "tiny" and second.address == first.address + 3
    client.free(big.address)


def test_pinned_client_is_served_by_its_core(server):
    for core in (0, 1):
        with Client(server.target, core=core) as c:
            assert c.info().core == core
            a = c.alloc(48)
            assert a.core == core
            c.free(a.address)


def test_batch_with_refs_and_per_op_errors(client):
    b = client.batch()
    r = b.alloc(64)
    b.write(r, b"z" * 64)
    b.read(r, 64)
    b.read(r, 65)  # past the end
    b.free(r)
    b.free(r)  # double free
    b.alloc(0)  # bad size
    res = b.execute()
    assert res[0].ok and res[0].address
    assert res[2].data == b"z" * 64
    codes = {i: e.code for i, e in res.errors}
    assert codes == {3: grpc.StatusCode.OUT_OF_RANGE, 5: grpc.StatusCode.FAILED_PRECONDITION,
                     6: grpc.StatusCode.INVALID_ARGUMENT}
    assert res[4].layer in ("mcache", "mcentral")


def test_batch_reply_is_bounded(client):
    big = client.alloc(6 << 20).address
    b = client.batch()
    for _ in range(6):
        b.read(big, 6 << 20)
    res = b.execute()
    assert [r.ok for r in res.results] == [True] * 4 + [False] * 2  # 24 MiB of reads per batch at most
    assert res[4].error.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "split the batch" in str(res[4].error)
    client.free(big)


def test_async_batch_survives_a_cancelled_call(server):
    async def go() -> None:
        async with AsyncClient(server.target) as m:
            b = m.batch()
            b.alloc(8)
            task = asyncio.ensure_future(b.execute())
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            b2 = m.batch()
            r = b2.alloc(8)
            b2.free(r)
            res = await b2.execute()  # a fresh stream: the cancelled one is not reused
            assert not res.errors

    asyncio.run(go())


def test_client_rejects_what_protobuf_cannot_carry(client):
    with pytest.raises(InvalidArgument):
        client.alloc(-1)
    with pytest.raises(InvalidArgument):
        client.read(-5, 1)
    b = client.batch()
    b.alloc(-1)
    with pytest.raises(InvalidArgument):
        b.execute()


def test_malformed_batch_is_invalid_argument(server):
    channel = grpc.insecure_channel(server.target)
    from memsim.v1 import machine_pb2_grpc

    stub = machine_pb2_grpc.MachineStub(channel)
    bad = pb.OpBatch(kind=[pb.ALLOC, pb.ALLOC], size=[8])  # size column too short
    with pytest.raises(grpc.RpcError) as ei:
        list(stub.Batch(iter([bad]), timeout=10))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "size has 1 entries for 2 ops" in ei.value.details()
    channel.close()


@pytest.mark.parametrize(
    "call, exc, text",
    [
        (lambda c, a: c.alloc(0), InvalidArgument, "bad allocation size 0"),
        (lambda c, a: c.alloc(MEM + 1), InvalidArgument, "larger than the machine's"),
        (lambda c, a: c.free(a + 8), FailedPrecondition, "invalid free"),
        (lambda c, a: c.free(12345), FailedPrecondition, "outside the heap arena"),
        (lambda c, a: c.read(a, 101), OutOfRange, "past its end"),
        (lambda c, a: c.write(a, b"x", offset=100), OutOfRange, "past its end"),
        (lambda c, a: c.read(0xDEAD, 1), OutOfRange, "segmentation fault"),
        (lambda c, a: c.read(a + 16, 1), NotFound, "16 bytes into the object at"),
    ],
)
def test_bad_input_gets_its_status_code_and_changes_nothing(client, call, exc, text):
    a = client.alloc(100).address
    client.write(a, b"k" * 100)
    before = client.stats().memstats
    with pytest.raises(exc) as ei:
        call(client, a)
    assert text in str(ei.value)
    after = client.stats(check_heap=True)
    assert after.heap_problems == []
    assert after.memstats.HeapAlloc == before.HeapAlloc
    assert client.read(a, 100) == b"k" * 100  # the object is intact
    client.free(a)


def test_double_free_is_failed_precondition(client):
    a = client.alloc(24).address
    client.free(a)
    with pytest.raises(FailedPrecondition, match="double free"):
        client.free(a)
    t = client.alloc(5).address
    client.free(t)
    with pytest.raises(FailedPrecondition, match="double free"):
        client.free(t)


def test_out_of_memory_names_the_limit_and_recovers(client):
    held = []
    with pytest.raises(ResourceExhausted) as ei:
        for _ in range(100):
            held.append(client.alloc(1 << 20).address)
    heap = MEM - MEM // 4  # serve gives virtual memory a quarter of the machine by default
    assert str(heap) in str(ei.value) and "out of memory" in str(ei.value)
    assert len(held) >= 8
    for a in held:
        client.free(a)
    a = client.alloc(1 << 20)  # the machine still works
    client.free(a.address)
    assert client.stats(check_heap=True).heap_problems == []


def test_workers_survive_bad_input(server, client):
    pids = list(server.worker_pids)
    for _ in range(20):
        with pytest.raises(FailedPrecondition):
            client.free(0xC000000000 + 8)
    assert server.alive_workers() == pids


def test_stats_use_go_memstats_names_and_balance(client):
    held = [client.alloc(s).address for s in (8, 33, 1000, 50_000)]
    st = client.stats().memstats
    assert st.HeapIdle + st.HeapInuse == st.HeapSys
    assert 0 < st.HeapAlloc <= st.HeapInuse
    assert st.Mallocs - st.Frees == st.HeapObjects
    assert {e.Size for e in st.BySize} >= {8, 48, 1024}
    for a in held:
        client.free(a)


def test_mcache_fast_path_takes_no_lock(server):
    with Client(server.target, core=1) as c:
        warm = [c.alloc(80).address for _ in range(4)]  # the cache now holds a batch of 80-byte objects
        for a in warm:
            c.free(a)
        st0 = c.stats()
        for _ in range(10):
            b = c.batch()
            refs = [b.alloc(80) for _ in range(4)]
            for r in refs:
                b.free(r)
            b.execute().raise_first()
        st1 = c.stats()
    acq0 = {lk.name: lk.acquisitions for lk in st0.locks}
    assert {lk.name: lk.acquisitions for lk in st1.locks} == acq0  # the scavenger too leaves an idle heap alone
    assert st1.caches[1].hits - st0.caches[1].hits == 40


def test_health_and_reflection(server):
    ch = grpc.insecure_channel(server.target)
    h = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="memsim.v1.Machine"), timeout=5)
    assert h.status == health_pb2.HealthCheckResponse.SERVING
    req = reflection_pb2.ServerReflectionRequest(list_services="")
    resp = next(reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(iter([req]), timeout=5))
    names = {s.name for s in resp.list_services_response.service}
    assert "memsim.v1.Machine" in names and "grpc.health.v1.Health" in names
    ch.close()


def test_async_client(server):
    async def go() -> bytes:
        async with AsyncClient(server.target) as m:
            a = await m.alloc(32)
            await m.write(a.address, b"async!")
            got = await m.read(a.address, 6)
            b = m.batch()
            r = b.alloc(16)
            b.write(r, b"0123456789abcdef")
            b.read(r, 16)
            b.free(r)
            res = await m.execute(b)
            assert res[2].data == b"0123456789abcdef"
            await m.free(a.address)
            with pytest.raises(FailedPrecondition):
                await m.free(a.address)
            return got

    assert asyncio.run(go()) == b"async!"


def test_unknown_server_is_unavailable():
    from memsim.client import Unavailable

    with Client("127.0.0.1:1", timeout=2) as c, pytest.raises(Unavailable):
        c.info()
