"""The managed heap's client pieces without a server: the batch builder's columns (Refs, tagged
words, data order), the decoding of a reply, the value checks made before anything is sent, the
records against v8.proto, and the one body per method serving the sync and the asyncio client."""

from __future__ import annotations

import inspect
from dataclasses import fields

import pytest

from memsim.client import AsyncIsolate, GcEvent, Handle, Isolate, IsolateBatch, Ref
from memsim.client.errors import FailedPrecondition, InvalidArgument, OutOfRange
from memsim.client.isolate import IsolateCommands, V8Commands
from memsim.client.v8_types import WORD, value_of, value_pb
from memsim.v1 import machine_pb2 as mpb
from memsim.v1 import v8_pb2 as pb


def built() -> IsolateBatch[None]:
    return IsolateBatch(lambda batch: None, isolate=3)


def test_a_tree_in_one_message_names_earlier_ops_by_ref():
    b = built()
    name = b.new_string(b"Ann")
    emp = b.new_object([name, -5000], nfields=3, payload=b"pay")
    b.set_field(emp, 2, Handle(0xFEED))
    b.get_field(emp, 0)
    b.write_payload(emp, 1, b"AY")
    b.read_payload(emp)
    b.read_backing(Handle(7), 4, 8)
    kept = b.make_persistent(emp)
    b.drop(kept)
    b.open_scope()
    b.close_scope(emp)
    b.close_scope()
    b.gc(minor=True)
    b.gc()
    assert (name, emp, kept) == (Ref(0), Ref(1), Ref(7))
    m = b.to_proto(seq=9)
    assert m.seq == 9 and m.isolate == 3 and len(m.op) == len(b) == 14
    assert list(m.op) == [pb.V8_NEW_STRING, pb.V8_NEW_OBJECT, pb.V8_SET_FIELD, pb.V8_GET_FIELD, pb.V8_WRITE_PAYLOAD,
                          pb.V8_READ_PAYLOAD, pb.V8_READ_BACKING, pb.V8_MAKE_PERSISTENT, pb.V8_DROP, pb.V8_OPEN_SCOPE,
                          pb.V8_CLOSE_SCOPE, pb.V8_CLOSE_SCOPE, pb.V8_GC, pb.V8_GC]
    # the object operand: REF k for a Ref, the id for a Handle, NONE where the op takes none
    assert list(m.a_tag) == [pb.VALUE_NONE, pb.VALUE_NONE, pb.VALUE_REF, pb.VALUE_REF, pb.VALUE_REF, pb.VALUE_REF,
                             pb.VALUE_HANDLE, pb.VALUE_REF, pb.VALUE_REF, pb.VALUE_NONE, pb.VALUE_REF, pb.VALUE_NONE,
                             pb.VALUE_NONE, pb.VALUE_NONE]
    assert m.a[2] == 1 and m.a[6] == 7 and m.a[8] == 7 and m.a[10] == 1
    # the value stream: NEW_OBJECT's two, then SET_FIELD's one; a negative Smi in two's complement
    assert list(m.nvalues) == [0, 2] + [0] * 12 and list(m.nfields) == [0, 3] + [0] * 12
    assert list(m.fields) == [0, (1 << 64) - 5000, 0xFEED]
    assert list(m.field_tags) == [pb.VALUE_REF, pb.VALUE_SMI, pb.VALUE_HANDLE]
    # data in op order: the string, the object's payload, the write
    assert list(m.data) == [b"Ann", b"pay", b"AY"]
    # a READ with no length reads to the end; b and c carry offsets, lengths, flags
    assert m.c[5] == WORD and (m.b[6], m.c[6]) == (4, 8) and (m.b[12], m.b[13]) == (1, 0)


def test_values_are_checked_before_anything_is_sent():
    b = built()
    with pytest.raises(OutOfRange, match="Smi"):
        b.new_object([1 << 70])
    with pytest.raises(InvalidArgument, match=r"int .*Handle.*Ref"):
        b.set_field(Handle(1), 0, "x")  # the wrong type is the test
    with pytest.raises(InvalidArgument, match="Handle or a Ref"):
        b.get_field(5, 0)  # the wrong type is the test
    with pytest.raises(InvalidArgument, match="nfields 1 is less than the 2"):
        b.new_object([1, 2], nfields=1)
    assert len(b) == 0 and not b.fields  # a refused op adds nothing, not even its first values
    with pytest.raises(InvalidArgument, match="bad batch"):
        b.read_payload(Handle(1), -1)
        b.to_proto(0)
    with pytest.raises(OutOfRange):
        value_pb(-(1 << 63) - 1)
    assert value_pb(-(1 << 63)).smi == -(1 << 63)  # the server, not the client, holds Smis to int32
    assert value_of(value_pb(Handle(1 << 63))) == Handle(1 << 63) and value_of(pb.Value()) == 0


def test_a_reply_decodes_per_op():
    b = built()
    r0 = b.new_object([1])
    b.get_field(r0, 0)
    b.read_payload(r0)
    b.set_field(r0, 0, 2)
    b.read_payload(r0, 0, 5)
    b.get_field(r0, 0)
    reply = pb.V8BatchReply(seq=1, core=2, data=[b"abc", b""],
                            value=[0x77, 1, 0, 0, 0, (1 << 64) - 1],
                            value_tag=[pb.VALUE_HANDLE, pb.VALUE_SMI, pb.VALUE_NONE, pb.VALUE_NONE, pb.VALUE_NONE,
                                       pb.VALUE_SMI],
                            errors=[mpb.OpError(index=4, code=9, message="handle 0x77 is dead")])
    r = b.decode(reply)
    assert r[r0] == Handle(0x77) and r[1] == 1 and r[2] == b"abc" and r[3] is None and r[5] == -1
    assert isinstance(r[4], FailedPrecondition) and r.errors == [(4, r[4])]
    assert (r.core, len(r)) == (2, 6)
    with pytest.raises(FailedPrecondition, match="dead"):
        r.raise_first()


def test_records_match_the_proto():
    assert [f.name for f in fields(GcEvent)] == [f.name for f in pb.GcEvent.DESCRIPTOR.fields]
    e = GcEvent.from_pb(pb.GcEvent(seq=2, kind="Scavenge", live_before=300, live_after=100, line="[1:0x0] ..."))
    assert e.seq == 2 and e.kind == "Scavenge" and e.freed == 200 and e.line.startswith("[1:")


def test_one_body_per_method_for_both_clients():
    # every command of IsolateCommands runs on Isolate (now) and AsyncIsolate (a coroutine), with the
    # body's signature, so help() and IDEs show the method as written
    names = [n for n, v in vars(IsolateCommands).items() if type(v).__name__ == "command"]
    assert {"new_object", "get_field", "set_field", "gc", "trace", "close_scope", "memory_usage"} <= set(names)
    for n in names:
        assert not inspect.iscoroutinefunction(getattr(Isolate, n).body)
        sig = inspect.signature(getattr(Isolate, n))
        assert "Steps" not in str(sig.return_annotation), n
    assert {"create_isolate", "isolate", "isolates", "execute"} <= {
        n for n, v in vars(V8Commands).items() if type(v).__name__ == "command"}
    assert hasattr(AsyncIsolate, "scope") and hasattr(Isolate, "scope")


def test_a_ref_from_another_batch_is_refused_before_it_is_added():
    first, second = built(), built()
    r = first.new_object([1])
    with pytest.raises(InvalidArgument, match="another batch"):
        second.set_field(r, 0, 5)
    with pytest.raises(InvalidArgument, match="another batch"):
        second.new_object([r])
    assert len(second) == 0
    second.new_object([Ref(0)])  # a Ref written by hand names op 0 of this batch, as before
