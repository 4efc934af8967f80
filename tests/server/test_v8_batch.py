"""server/v8_batch.py in-process, on a real machine and isolate (no gRPC): a message is checked whole
before its first op, REFs resolve to earlier ops' results, reads are charged to the reply's budget
before they copy, and a failing op fails alone."""

from __future__ import annotations

import time

import pytest

from memsim.server.limits import ReplyBudget
from memsim.server.v8_batch import ALL_BYTES, plan, run_batch
from memsim.sim.errors import InvalidArgument
from memsim.sim.system import Machine, MachineConfig
from memsim.v1 import v8_pb2 as pb

KiB, MiB = 1 << 10, 1 << 20
OUT_OF_RANGE, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED = 11, 9, 8, 4


@pytest.fixture
def isolate():
    m = Machine.create(MachineConfig(memory_bytes=32 * MiB, cores=1, vm_memory=16 * MiB))
    try:
        v8 = m.v8(0, m.heap(0))
        iso = v8.create_isolate(semi_space_size=256 * KiB, max_old_space_size=2 * MiB)

        def run(msg: pb.V8Batch | None, budget: ReplyBudget | None = None,
                arrived: float | None = None) -> pb.V8BatchReply | int:
            """The message's reply; with None, the isolate's heapUsed."""
            with v8.enter(iso) as i:
                if msg is None:
                    return i.memory_usage()["heapUsed"]
                return run_batch(i, msg, 0, budget or ReplyBudget(), arrived=arrived)

        yield run
    finally:
        m.destroy()


def test_refs_name_earlier_results_and_a_failed_op_fails_alone(isolate):
    msg = pb.V8Batch(op=(pb.V8_NEW_STRING, pb.V8_NEW_OBJECT, pb.V8_GET_FIELD, pb.V8_GET_FIELD, pb.V8_GET_FIELD,
                            pb.V8_READ_PAYLOAD, pb.V8_READ_PAYLOAD),
                     a=[0, 0, 1, 1, 3, 2, 1],
                     a_tag=[pb.VALUE_NONE, pb.VALUE_NONE] + [pb.VALUE_REF] * 5,
                     b=[0, 0, 0, 9, 0, 1, 0], c=[0, 0, 0, 0, 0, ALL_BYTES, 2],
                     nvalues=[0, 2, 0, 0, 0, 0, 0], fields=[0, (1 << 64) - 7],
                     field_tags=[pb.VALUE_REF, pb.VALUE_SMI], data=[b"Ann", b"pay"])
    r = isolate(msg)
    assert [e.index for e in r.errors] == [3, 4]
    assert r.errors[0].code == OUT_OF_RANGE and r.errors[1].code == FAILED_PRECONDITION
    assert "op 3, which failed" in r.errors[1].message
    assert list(r.value_tag[:3]) == [pb.VALUE_HANDLE] * 3 and r.value[2] != r.value[0]  # a new handle
    assert list(r.data) == [b"nn", b"pa"]


def test_reads_are_charged_before_they_copy(isolate):
    msg = pb.V8Batch(op=(pb.V8_NEW_STRING, pb.V8_READ_PAYLOAD, pb.V8_READ_PAYLOAD, pb.V8_READ_PAYLOAD),
                     a=[0, 0, 0, 0], a_tag=[pb.VALUE_NONE] + [pb.VALUE_REF] * 3,
                     b=[0, 0, 0, 900], c=[0, ALL_BYTES, ALL_BYTES, 200], data=[b"s" * 1000])
    budget = ReplyBudget(limit=1500)
    r = isolate(msg, budget)
    assert [(e.index, e.code) for e in r.errors] == [(2, RESOURCE_EXHAUSTED), (3, OUT_OF_RANGE)]
    assert [len(d) for d in r.data] == [1000, 0, 0] and budget.used == 1000  # the failed ones refunded


def test_a_message_is_checked_whole_before_any_op(isolate):
    good = [pb.V8_NEW_OBJECT] * 3
    for bad in (pb.V8Batch(op=[*good, 77], data=[b""] * 3),
                pb.V8Batch(op=[*good, pb.V8_GET_FIELD], a=[0, 0, 0, 3], a_tag=[0, 0, 0, pb.VALUE_REF], data=[b""] * 3),
                pb.V8Batch(op=good, nvalues=[0, 0, 1], data=[b""] * 3),
                pb.V8Batch(op=good, data=[b""] * 2)):
        with pytest.raises(InvalidArgument, match="bad batch"):
            plan(bad)
        with pytest.raises(InvalidArgument):
            isolate(bad)
    assert isolate(None) == 0  # the refused messages made nothing
    r = isolate(pb.V8Batch(op=good, data=[b""] * 3))
    assert not r.errors and isolate(None) == 3 * 8


def test_ops_not_started_by_the_timeout_are_not_run(isolate):
    def msg(timeout_ms: int) -> pb.V8Batch:
        return pb.V8Batch(op=[pb.V8_NEW_STRING] * 3, a=[0] * 3, a_tag=[pb.VALUE_NONE] * 3, b=[0] * 3, c=[0] * 3,
                          data=[b"x" * 100] * 3, timeout_ms=timeout_ms)

    used = isolate(None)
    late = isolate(msg(500), arrived=time.monotonic() - 1.0)  # its caller gave up half a second ago
    assert [(e.index, e.code) for e in late.errors] == [(0, DEADLINE_EXCEEDED), (1, DEADLINE_EXCEEDED),
                                                       (2, DEADLINE_EXCEEDED)]
    assert "timeout_ms (500) passed" in late.errors[0].message
    assert isolate(None) == used  # nothing was allocated
    assert not isolate(msg(60_000)).errors and not isolate(msg(0)).errors  # in time, or no limit
