"""memsim.v1.V8 against hostile input, on a real server: every refusal has its status code, a
malformed batch changes nothing, and afterwards the worker still serves and the isolate's graph
reads back as it was built."""

from __future__ import annotations

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsim.client import (
    FailedPrecondition,
    Handle,
    InvalidArgument,
    OutOfRange,
    Ref,
    ResourceExhausted,
    V8Client,
)
from memsim.client.session import CLIENT_ID_KEY
from memsim.v1 import v8_pb2 as pb
from memsim.v1 import v8_pb2_grpc
from tests.server.test_wire import JUNK
from tests.servers import running_server

pytestmark = pytest.mark.integration  # every test here starts a server

KiB, MiB = 1 << 10, 1 << 20
SMALL = {"semi_space_size": 256 * KiB, "max_old_space_size": 2 * MiB}
WORD = (1 << 64) - 1


@pytest.fixture(scope="module")
def server():
    with running_server(cores=2, memory="64MiB", extra=["--vm-memory", "32MiB"]) as srv:
        yield srv


@pytest.fixture
def stub(server):
    with grpc.insecure_channel(server.target) as ch:
        yield v8_pb2_grpc.V8Stub(ch)


def build_graph(iso):
    """A global holding an object: [Smi 7, a string, -3], and its checksum to read back."""
    s = iso.new_string(b"intact")
    h = iso.new_object([7, s, -3], payload=b"payload")
    return iso.make_persistent(h)


def intact(iso, g) -> bool:
    s = iso.get_field(g, 1)
    return (iso.get_field(g, 0), iso.get_field(g, 2), iso.read_payload(s), iso.read_payload(g)) == (
        7, -3, b"intact", b"payload")


def test_bad_handles_are_failed_precondition_and_the_isolate_goes_on(server):
    with V8Client(server.target) as v8:
        iso, other = v8.create_isolate(**SMALL), v8.create_isolate(**SMALL)
        g = build_graph(iso)
        foreign = other.new_object([1])
        for bad in (Handle(0), Handle(WORD), Handle(g.id ^ 1), Handle(g.id + (1 << 40)), foreign):
            with pytest.raises(FailedPrecondition):
                iso.get_field(bad, 0)
            with pytest.raises(FailedPrecondition):
                iso.set_field(g, 0, bad)  # a dead or foreign handle as a value is refused too
        with iso.scope():
            dead = iso.new_object([1])
        with pytest.raises(FailedPrecondition, match=r"dead|closed"):
            iso.get_field(dead, 0)
        iso.drop(iso.make_persistent(g))
        with pytest.raises(FailedPrecondition, match="root"):
            iso.close_scope()
        assert intact(iso, g) and other.get_field(foreign, 0) == 1


def test_out_of_range_fields_payloads_and_smis(server):
    with V8Client(server.target) as v8:
        iso = v8.create_isolate(**SMALL)
        g = build_graph(iso)
        for index in (3, 1 << 20, (1 << 32) - 1):
            with pytest.raises(OutOfRange):
                iso.get_field(g, index)
        with pytest.raises(OutOfRange):
            iso.read_payload(g, 5, 10)
        with pytest.raises(OutOfRange):
            iso.write_payload(g, 7, b"x")
        for smi in (1 << 31, -(1 << 31) - 1, 1 << 62):
            with pytest.raises(OutOfRange):
                iso.set_field(g, 0, smi)
        iso.set_field(g, 0, (1 << 31) - 1)
        assert iso.get_field(g, 0) == (1 << 31) - 1
        iso.set_field(g, 0, 7)
        assert intact(iso, g)


def test_malformed_and_oversized_batches_are_invalid_argument_and_change_nothing(server, stub):
    with V8Client(server.target) as v8:
        iso = v8.create_isolate(**SMALL)
        g = build_graph(iso)
        used = iso.memory_usage()["heapUsed"]
        new = pb.V8_NEW_OBJECT
        bad = {
            "too many ops": pb.V8Batch(isolate=iso.id, op=[pb.V8_OPEN_SCOPE] * 10_001),
            "a column too short": pb.V8Batch(isolate=iso.id, op=[new, new], b=[1]),
            "a word without its tag": pb.V8Batch(isolate=iso.id, op=[new], nvalues=[1], fields=[1], data=[b""]),
            "an unknown op": pb.V8Batch(isolate=iso.id, op=[new, 99], data=[b""]),
            "a forward REF": pb.V8Batch(isolate=iso.id, op=[pb.V8_GET_FIELD, new], a=[1],
                                        a_tag=[pb.VALUE_REF, pb.VALUE_NONE], data=[b""]),
            "a REF to an op with no result": pb.V8Batch(isolate=iso.id, op=[pb.V8_OPEN_SCOPE, pb.V8_GET_FIELD],
                                                        a=[0, 0], a_tag=[pb.VALUE_NONE, pb.VALUE_REF]),
            "data missing": pb.V8Batch(isolate=iso.id, op=[new, pb.V8_NEW_STRING], data=[b""]),
            "values left over": pb.V8Batch(isolate=iso.id, op=[new], fields=[1], field_tags=[pb.VALUE_SMI],
                                           data=[b""]),
            "a Smi as the object": pb.V8Batch(isolate=iso.id, op=[new, pb.V8_GET_FIELD], a=[0, 5],
                                              a_tag=[pb.VALUE_NONE, pb.VALUE_SMI], data=[b""]),
            "fewer fields than values": pb.V8Batch(isolate=iso.id, op=[new], nfields=[1], nvalues=[2],
                                                   fields=[1, 2], field_tags=[pb.VALUE_SMI] * 2, data=[b""]),
            "an object over MAX_FIELDS": pb.V8Batch(isolate=iso.id, op=[new], nfields=[(1 << 20) + 1], data=[b""]),
            "a read over the payload limit": pb.V8Batch(isolate=iso.id, op=[new, pb.V8_READ_PAYLOAD], a=[0, 0],
                                                        a_tag=[pb.VALUE_NONE, pb.VALUE_REF], c=[0, 17 << 20],
                                                        data=[b""]),
            "too many GCs": pb.V8Batch(isolate=iso.id, op=[new] + [pb.V8_GC] * 9, data=[b""]),
            "too much allocated": pb.V8Batch(isolate=iso.id, op=[pb.V8_NEW_ARRAY_BUFFER] * 5, b=[16 << 20] * 5),
        }
        for why, msg in bad.items():
            calls = stub.Batch(iter([msg]), metadata=((CLIENT_ID_KEY, v8.client_id),))
            with pytest.raises(grpc.RpcError) as e:
                list(calls)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (why, e.value.details())
            assert "bad batch" in e.value.details(), why
        # none of them ran its first op (a NEW_OBJECT, mostly): the heap holds what it held
        assert iso.memory_usage()["heapUsed"] == used
        with pytest.raises(InvalidArgument, match="10000-op limit"):
            b = iso.batch()
            for _ in range(10_001):
                b.open_scope()
            b.execute()
        for too_big in (lambda: iso.new_string(b"x" * (16 * MiB + 1)), lambda: iso.new_array_buffer(1 << 40),
                        lambda: iso.new_object(nfields=(1 << 20) + 1), lambda: iso.trace(max_records=129)):
            with pytest.raises(InvalidArgument, match="limit"):
                too_big()
        b = iso.batch()  # the client's stream was ended by the oversized batch; the next one opens another
        r = b.new_object([1, 2])
        b.get_field(r, 1)
        assert b.execute().raise_first()[1] == 2 and intact(iso, g)


def test_undecodable_bytes_are_invalid_argument_on_every_v8_method(server):
    with grpc.insecure_channel(server.target) as ch:
        for m in pb.DESCRIPTOR.services_by_name["V8"].methods:
            path = f"/memsim.v1.V8/{m.name}"
            for junk in JUNK:
                with pytest.raises(grpc.RpcError) as e:
                    if m.client_streaming:
                        list(ch.stream_stream(path)(iter([junk]), timeout=10))
                    else:
                        ch.unary_unary(path)(junk, timeout=10)
                assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a valid" in e.value.details()


def test_a_failing_op_fails_alone_and_refs_to_it_fail_too(server):
    with V8Client(server.target) as v8:
        iso = v8.create_isolate(**SMALL)
        b = iso.batch()
        ok = b.new_object([1, 2])
        b.get_field(ok, 5)  # out of range: this op only
        dead = b.get_field(Handle(12345), 0)  # a bad handle
        b.get_field(dead, 0)  # names the failed op: FAILED_PRECONDITION, and the batch goes on
        b.set_field(ok, 0, dead)
        last = b.get_field(ok, 1)
        r = b.execute()
        assert isinstance(r[1], OutOfRange) and isinstance(r[2], FailedPrecondition)
        assert isinstance(r[3], FailedPrecondition) and "failed" in str(r[3]) and isinstance(r[4], FailedPrecondition)
        assert r[last] == 2 and [i for i, _ in r.errors] == [1, 2, 3, 4]


def test_the_heap_limit_is_resource_exhausted_in_nodes_words_and_the_isolate_lives_on(server):
    with V8Client(server.target) as v8:
        iso = v8.create_isolate(semi_space_size=256 * KiB, max_old_space_size=1 * MiB)
        g = build_graph(iso)
        kept = []
        with pytest.raises(ResourceExhausted, match="JavaScript heap out of memory") as e:
            for _ in range(100):  # 100 x 64 KiB held by globals: far past 1 MiB
                kept.append(iso.make_persistent(iso.new_object(payload=b"\1" * (64 * KiB))))
        assert "max_old_space_size" in str(e.value) and e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        for h in kept:
            iso.drop(h)
        iso.gc()
        small = iso.new_object([1], payload=b"still here")
        assert iso.read_payload(small) == b"still here" and intact(iso, g)
        assert v8.isolate(iso.id).info.state == "live"


# -- random batches, mostly nonsense ---------------------------------------------------------

ALLOWED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE,
           grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.NOT_FOUND}
KINDS = ["new_object", "new_string", "new_array_buffer", "set_field", "get_field", "read_payload", "write_payload",
         "read_backing", "write_backing", "open_scope", "close_scope", "make_persistent", "drop", "gc"]
numbers = st.one_of(st.integers(0, 8), st.sampled_from([255, 1 << 20, (1 << 31) - 1, 1 << 32, (1 << 63) - 1]))
values = st.one_of(st.integers(-(1 << 31), (1 << 31) - 1), st.integers(-(1 << 63), (1 << 63) - 1),
                   st.integers(0, 40).map(lambda k: ("ref", k)), st.integers(0, 3).map(lambda k: ("global", k)),
                   st.integers(0, (1 << 64) - 1).map(lambda k: ("handle", k)))
ops = st.tuples(st.sampled_from(KINDS), values, numbers, numbers, st.lists(values, max_size=4), st.binary(max_size=40))
# a column to corrupt in the message as sent (None: send it as built)
corruptions = st.one_of(st.none(), st.sampled_from(["a", "a_tag", "b", "nfields", "nvalues", "fields", "field_tags",
                                                    "data", "op"]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(program=st.lists(ops, min_size=1, max_size=40), corrupt=corruptions, junk=st.integers(0, 1 << 20))
def test_random_batches_never_hurt_the_worker_or_the_isolate(server, program, corrupt, junk):
    with V8Client(server.target, timeout=30) as v8:
        iso = v8.create_isolate(**SMALL)
        kept = build_graph(iso)  # the program never names it: it must read back as built
        g = build_graph(iso)  # the program's to use, store into and drop
        globals_ = [g, Handle(g.id ^ (1 << 20)), Handle(g.id + 1), Handle(0)]  # stale stamps, and nothing

        def operand(v):
            if isinstance(v, tuple):
                kind, k = v
                return Ref(k) if kind == "ref" else globals_[k] if kind == "global" else Handle(k)
            return v

        b = iso.batch()
        for kind, target, x, y, vals, data in program:
            t = operand(target)
            obj = t if isinstance(t, Handle | Ref) else g
            try:
                if kind == "new_object":
                    b.new_object([operand(v) for v in vals], payload=data, nfields=len(vals) + x % 3)
                elif kind == "new_string":
                    b.new_string(data)
                elif kind == "new_array_buffer":
                    b.new_array_buffer(x)
                elif kind == "set_field":
                    b.set_field(obj, x, t if not vals else operand(vals[0]))
                elif kind == "get_field":
                    b.get_field(obj, x)
                elif kind in ("read_payload", "read_backing"):
                    getattr(b, kind)(obj, x, y if y % 2 else None)
                elif kind in ("write_payload", "write_backing"):
                    getattr(b, kind)(obj, x, data)
                elif kind == "close_scope":
                    b.close_scope(obj if x % 2 else None)
                elif kind in ("make_persistent", "drop"):
                    getattr(b, kind)(obj)
                elif kind == "gc":
                    b.gc(minor=bool(x % 2))
                else:
                    b.open_scope()
            except (OutOfRange, InvalidArgument):
                continue  # the client refused it before sending (a Smi past int64, nfields < values)
        msg = b.to_proto(seq=1)
        if corrupt is not None:
            column = getattr(msg, corrupt)
            if len(column):
                column[junk % len(column)] = (junk if corrupt != "data" else b"x" * (junk % 64)) \
                    if corrupt not in ("a_tag", "field_tags", "op") else junk % 20
            else:
                column.append(junk if corrupt != "data" else b"")
        with grpc.insecure_channel(server.target) as ch:
            try:
                reply = next(v8_pb2_grpc.V8Stub(ch).Batch(iter([msg]), timeout=30))
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "bad batch" in e.details(), e.details()
            else:
                assert len(reply.value) == len(msg.op)
                for err in reply.errors:
                    assert err.code in {c.value[0] for c in ALLOWED}, err
        assert intact(iso, kept)
        iso.destroy()
    assert server.alive_workers() == server.worker_pids[:2]
