"""memsim.v1.V8 over gRPC, against a real server: isolates and their objects through the sync and
asyncio clients, handle scopes, a whole object graph in one batch message (REFs), isolates on two
cores, and leases that release an isolate with its client."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from memsim.client import AsyncV8Client, DeadlineExceeded, FailedPrecondition, Handle, NotFound, Ref, V8Client
from memsim.v1 import v8_pb2 as pb
from memsim.v1 import v8_pb2_grpc
from tests.server.test_sessions import busy_core, wait_until
from tests.servers import running_server

pytestmark = pytest.mark.integration  # every test here starts a server

KiB, MiB = 1 << 10, 1 << 20
SMALL = {"semi_space_size": 256 * KiB, "max_old_space_size": 2 * MiB}


@pytest.fixture(scope="module")
def server():
    with running_server(cores=2, memory="64MiB", extra=["--vm-memory", "32MiB"]) as srv:
        yield srv


def test_objects_strings_and_array_buffers_through_the_client(server):
    with V8Client(server.target) as v8:
        iso = v8.create_isolate(**SMALL)
        assert iso.info.state == "live" and iso.info.semi_space_size == 256 * KiB and iso.info.owner == v8.client_id
        name = iso.new_string(b"Ann")
        emp = iso.new_object([name, 5000], nfields=3, payload=b"\x01\x02\x03")
        assert iso.get_field(emp, 1) == 5000 and iso.get_field(emp, 2) == 0  # missing fields are Smi 0
        got = iso.get_field(emp, 0)
        assert isinstance(got, Handle) and got != name and iso.read_payload(got) == b"Ann"  # a new handle
        iso.set_field(emp, 2, -(1 << 31))
        assert iso.get_field(emp, 2) == -(1 << 31)
        iso.write_payload(emp, 1, b"\xff")
        assert iso.read_payload(emp) == b"\x01\xff\x03" and iso.read_payload(emp, 2) == b"\x03"
        assert iso.read_payload(emp, 1, 1) == b"\xff" and iso.read_payload(emp, 3) == b""
        ab = iso.new_array_buffer(100)
        iso.write_backing(ab, 98, b"hi")
        assert iso.read_backing(ab, 98) == b"hi" and iso.read_backing(ab, 0, 2) == b"\0\0"
        d = iso.describe(emp)
        assert (d.nfields, d.payload_len, d.type, d.space) == (3, 3, "object", "new_space")
        assert iso.describe(ab).type == "array_buffer" and iso.describe(ab).byte_length == 100
        assert iso.describe(name).type == "string" and iso.describe(name).payload_len == 3
        big = iso.new_object(payload=b"L" * (200 * KiB))  # above half a page: the large-object space
        assert iso.describe(big).space == "large_object_space"
        assert iso.describe(iso.new_object([1], pretenure=True)).space == "old_space"
        use = iso.memory_usage()
        assert use["external"] == use["arrayBuffers"] >= 100 and use["heapUsed"] > 200 * KiB
        assert use["heapTotal"] >= use["heapUsed"] and use["rss"] > 0
        assert [i.isolate for i in v8.isolates(mine_only=True)] == [iso.id]
        assert v8.isolate(iso.id).id == iso.id
        iso.destroy()
        with pytest.raises(NotFound):
            v8.isolate(iso.id)
        with pytest.raises(FailedPrecondition, match="does not exist"):
            iso.get_field(emp, 0)


def test_scopes_escape_and_globals(server):
    with V8Client(server.target) as v8:
        iso = v8.create_isolate(**SMALL)
        outer = iso.new_object([1])
        with iso.scope() as s:
            assert s.depth == 1
            inner = iso.new_object([2])
            with iso.scope() as s2:
                assert s2.depth == 2
                deep = iso.new_object([3])
                s2.escape(deep)
            kept = s2.escaped
            assert isinstance(kept, Handle) and iso.get_field(kept, 0) == 3
            with pytest.raises(FailedPrecondition):
                iso.get_field(deep, 0)  # its scope closed: the handle is dead
            g = iso.make_persistent(inner)
        for dead in (inner, kept):
            with pytest.raises(FailedPrecondition):
                iso.get_field(dead, 0)
        assert iso.get_field(g, 0) == 2 and iso.get_field(outer, 0) == 1
        iso.drop(g)
        with pytest.raises(FailedPrecondition):
            iso.get_field(g, 0)
        with pytest.raises(FailedPrecondition):
            iso.drop(g)
        with pytest.raises(FailedPrecondition):  # a local is not a global
            iso.drop(outer)
        assert iso.open_scope() == 1 and iso.close_scope() is None


def test_a_tree_goes_in_one_message(server):
    with V8Client(server.target) as v8:
        iso = v8.create_isolate(**SMALL)
        b = iso.batch()
        leaves = [b.new_object([i], payload=bytes([i])) for i in range(8)]
        nodes = leaves
        while len(nodes) > 1:  # a binary tree, bottom up, each node naming its children by Ref
            nodes = [b.new_object([nodes[i], nodes[i + 1]]) for i in range(0, len(nodes), 2)]
        root = b.make_persistent(nodes[0])
        left = b.get_field(root, 0)
        b.set_field(left, 1, 99)  # a Ref to what GET_FIELD read, as the object
        read = b.read_payload(leaves[3])
        scope = b.open_scope()
        tmp = b.new_object([7])
        escaped = b.close_scope(tmp)  # into the outer scope, under a new id
        r = b.execute().raise_first()
        assert all(isinstance(r[x], Handle) for x in (*leaves, root, left, tmp, escaped))
        assert r[scope] == 1 and r[read] == b"\x03" and r[escaped] != r[tmp]
        assert iso.get_field(r[escaped], 0) == 7
        with pytest.raises(FailedPrecondition):
            iso.get_field(r[tmp], 0)
        # walk it back with unary calls: right, right, right is leaf 7
        x = r[root]
        for _ in range(3):
            x = iso.get_field(x, 1)
        assert iso.get_field(x, 0) == 7 and iso.read_payload(x) == b"\x07"
        assert iso.get_field(iso.get_field(r[root], 0), 1) == 99
        b = iso.batch()
        hop = b.get_field(r[root], 0)
        for _ in range(3):
            hop = b.get_field(hop, 0)
        got = b.execute().raise_first()
        assert isinstance(got[Ref(1)], Handle) and got[hop] == 0  # leaf 0's Smi, four hops down in one message


def test_isolates_on_two_cores_each_serve_any_isolate(server):
    with V8Client(server.target, core=0) as c0, V8Client(server.target, core=1) as c1:
        a, b = c0.create_isolate(**SMALL), c1.create_isolate(**SMALL)
        ga = a.make_persistent(a.new_object([11]))
        gb = b.make_persistent(b.new_object([22]))
        on1 = c1.isolate(a.id)  # core 1 runs isolate a's mutator too (its locker, one core at a time)
        assert on1.get_field(ga, 0) == 11 and b.get_field(gb, 0) == 22
        with pytest.raises(FailedPrecondition):
            on1.get_field(gb, 0)  # b's handle in a


def test_the_asyncio_client(server):
    async def go() -> None:
        async with AsyncV8Client(server.target) as v8:
            iso = await v8.create_isolate(**SMALL)
            async with iso.scope() as s:
                h = await iso.new_object([1, 2])
                s.escape(h)
            assert await iso.get_field(s.escaped, 1) == 2
            b = iso.batch()
            r = b.new_object([3])
            b.get_field(r, 0)
            assert (await b.execute()).raise_first()[1] == 3
            await iso.destroy()

    asyncio.run(go())


def test_close_releases_isolates_and_kept_ones_stay(server):
    with V8Client(server.target) as v8:
        mine = v8.create_isolate(**SMALL).id
        kept = v8.create_isolate(keep=True, **SMALL)
        assert kept.info.owner == "" and kept.info.keep
    with V8Client(server.target) as v8:
        ids = {i.isolate for i in v8.isolates()}
        assert mine not in ids and kept.id in ids
        v8.isolate(kept.id).destroy()


def test_an_isolate_nobody_renews_is_reaped_after_its_lease(server):
    with grpc.insecure_channel(server.target) as ch:
        stub = v8_pb2_grpc.V8Stub(ch)
        info = stub.CreateIsolate(pb.CreateIsolateRequest(lease_seconds=1, **SMALL), timeout=10)  # no client id
        assert info.owner and not info.keep
        deadline = time.monotonic() + 20
        while any(i.isolate == info.isolate for i in stub.ListIsolates(pb.ListIsolatesRequest(), timeout=10).isolates):
            assert time.monotonic() < deadline, "the isolate was not reaped"
            time.sleep(0.2)


def test_an_isolate_created_after_its_caller_gave_up_is_destroyed_again():
    with running_server(cores=1, memory="64MiB", extra=["--vm-memory", "32MiB"]) as srv, V8Client(srv.target) as v8:
        timed_out = 0
        with busy_core(srv.target), V8Client(srv.target, core=0, timeout=0.02) as hasty:
            for _ in range(1000):
                try:
                    iso = hasty.create_isolate(keep=True, **SMALL)  # kept: only the server can undo it
                    v8.isolate(iso.id).destroy()  # answered: its caller destroys it
                except DeadlineExceeded:
                    timed_out += 1
                if timed_out >= 10:
                    break
        assert timed_out >= 10
        wait_until(lambda: v8.isolates() == [], 10, "no isolate left behind")
