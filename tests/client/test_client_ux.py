"""The client library as a new user meets it: closed clients, the exceptions it exports, and
values stored with put_value."""

from __future__ import annotations

import asyncio

import pytest

import memsim.client as mc
from memsim.client import (
    AsyncCache,
    AsyncClient,
    AsyncVMClient,
    Cache,
    Client,
    ClientClosed,
    InvalidArgument,
    VMClient,
)
from tests.servers import page_heap_locked, running_server

pytestmark = pytest.mark.integration  # every test here starts a server


@pytest.fixture(scope="module")
def srv():
    with running_server(cores=1, memory="8MiB") as s:
        yield s


def test_connection_error_is_exported_as_redis_py_users_expect():
    assert issubclass(mc.ConnectionError, ConnectionError) and issubclass(mc.ConnectionError, mc.MemsimError)
    assert issubclass(ClientClosed, mc.ConnectionError) and issubclass(ClientClosed, mc.Unavailable)


SYNC_CALLS = {
    "Client": (Client, [lambda c: c.alloc(8), lambda c: c.stats(), lambda c: c.batch().execute()]),
    "Cache": (lambda t: Cache(target=t), [lambda r: r.get("k"), lambda r: r.pipeline().set("a", 1).execute()]),
    "VMClient": (VMClient, [lambda v: v.vmstat(), lambda v: v.spaces()]),
}


@pytest.mark.parametrize("name", SYNC_CALLS)
def test_a_closed_client_raises_client_closed(srv, name):
    make, calls = SYNC_CALLS[name]
    c = make(srv.target)
    calls[0](c)  # it worked while open
    c.close()
    for call in calls:
        with pytest.raises(ClientClosed, match="closed"):
            call(c)


ASYNC_CALLS = {
    "AsyncClient": (AsyncClient, [lambda c: c.alloc(8), lambda c: c.batch().execute()]),
    "AsyncCache": (lambda t: AsyncCache(target=t), [lambda r: r.get("k"), lambda r: r.ping()]),
    "AsyncVMClient": (AsyncVMClient, [lambda v: v.vmstat(), lambda v: v.spaces()]),
}


@pytest.mark.parametrize("name", ASYNC_CALLS)
def test_a_closed_async_client_raises_client_closed(srv, name):
    make, calls = ASYNC_CALLS[name]

    async def run():
        c = make(srv.target)
        await calls[0](c)
        await c.close()
        for call in calls:
            with pytest.raises(ClientClosed, match="closed"):
                await call(c)

    asyncio.run(run())


def test_free_and_get_value_take_an_address_or_an_allocation(srv):
    value = {"user": "ada", "tags": [1, 2], "blob": b"x" * 300}
    with Client(srv.target) as m:
        for size_hint in (value, 7, "a" * 5000):
            v = m.put_value(size_hint)
            assert m.get_value(v) == size_hint
            assert m.get_value(v.address) == size_hint  # the address alone is enough
            m.free(v)  # an Allocation, as get_value takes
        w = m.put_value([1, 2, 3])
        m.free(w.address)


def test_async_free_and_get_value_take_an_address_or_an_allocation(srv):
    async def run():
        async with AsyncClient(srv.target) as m:
            v = await m.put_value({"n": 1})
            assert await m.get_value(v.address) == {"n": 1}
            await m.free(v)

    asyncio.run(run())


def test_get_value_of_bytes_that_are_not_msgpack_says_what_it_found(srv):
    with Client(srv.target) as m:
        a = m.alloc(5)
        m.write(a.address, b"\xc1oops")  # 0xc1 is never used by msgpack
        with pytest.raises(InvalidArgument) as ei:
            m.get_value(a)
        text = str(ei.value)
        assert f"{a.address:#x}" in text and "msgpack" in text and "c1" in text, text
        b = m.alloc(5)
        m.write(b.address, b"hello")  # one fixint, then four bytes too many
        with pytest.raises(InvalidArgument, match="msgpack"):
            m.get_value(b.address)


def test_every_allocator_call_takes_its_own_timeout(srv):
    from memsim.client import DeadlineExceeded

    with Client(srv.target, timeout=10) as m:
        a = m.alloc(16, timeout=5)
        m.write(a.address, b"hi", timeout=5, offset=3)
        assert m.read(a.address, 2, offset=3, timeout=5) == b"hi"
        assert m.stats(timeout=5).memstats.HeapObjects >= 1 and m.info(timeout=5).cores == 1
        with page_heap_locked(srv.worker_pids[0]), pytest.raises(DeadlineExceeded):
            m.alloc(1 << 20, timeout=0.5)  # waits for the page heap: this call's deadline, not the client's 10 s
        m.free(a, timeout=5)


def test_every_async_allocator_call_takes_its_own_timeout(srv):
    from memsim.client import DeadlineExceeded

    async def run():
        async with AsyncClient(srv.target, timeout=10) as m:
            a = await m.alloc(16, timeout=5)
            with page_heap_locked(srv.worker_pids[0]), pytest.raises(DeadlineExceeded):
                await m.alloc(1 << 20, timeout=0.5)
            await m.free(a, timeout=5)

    asyncio.run(run())
