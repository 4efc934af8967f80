"""The V8 service's batch executor: one `V8Batch` message's ops on one isolate.

Owns: the batch's checks (`plan`, run before any op: the whole message is well formed and within
limits.py, or it changes nothing), the meaning of its columns and tagged words, REF resolution,
and the reply. Touches: one isolate, through the sim API (memsim.sim.v8), inside the locker the
servicer took (server/v8_servicer.py) under the core's mutex; no gRPC here, as server/ops.py is
the Machine's executor.

A REF word names the result of an earlier op of the same message (the handle it made, or what
GET_FIELD read), so that a whole object graph goes in one message: Cap'n Proto's "promise
pipelining", without the round trips. REFs must point backwards at an op that has a result; a
REF to an op that failed makes the op that uses it fail too (FAILED_PRECONDITION) and the rest
goes on, as `wire.run_ops` runs every op.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from memsim.server.limits import (
    MAX_FIELDS,
    MAX_V8_ALLOC_BYTES,
    MAX_V8_BATCH_GCS,
    MAX_V8_BATCH_OPS,
    MAX_V8_PAYLOAD,
    ReplyBudget,
)
from memsim.server.wire import DeadlineExceeded, batch_column, check_batch_size, run_ops
from memsim.sim.errors import FailedPrecondition, InvalidArgument
from memsim.sim.v8 import Handle, Isolate, Value
from memsim.v1 import v8_pb2 as pb

ALL_BYTES = (1 << 64) - 1  # a READ's length: to the end of the payload or backing store
WORD = 8  # bytes of a tagged field (x64, no pointer compression)

# What each op takes: an object operand (a / a_tag), data, values from the stream.
_TAKES_OBJECT = frozenset({pb.V8_SET_FIELD, pb.V8_GET_FIELD, pb.V8_READ_PAYLOAD, pb.V8_WRITE_PAYLOAD,
                           pb.V8_READ_BACKING, pb.V8_WRITE_BACKING, pb.V8_MAKE_PERSISTENT, pb.V8_DROP})
_TAKES_DATA = frozenset({pb.V8_NEW_OBJECT, pb.V8_NEW_STRING, pb.V8_WRITE_PAYLOAD, pb.V8_WRITE_BACKING})
_READS = frozenset({pb.V8_READ_PAYLOAD, pb.V8_READ_BACKING})
# Ops whose result a later REF may name (CLOSE_SCOPE only when it escapes a handle).
_HAS_RESULT = frozenset({pb.V8_NEW_OBJECT, pb.V8_NEW_STRING, pb.V8_NEW_ARRAY_BUFFER, pb.V8_GET_FIELD,
                         pb.V8_MAKE_PERSISTENT, pb.V8_CLOSE_SCOPE})
_OPS = frozenset(pb.V8Op.values()) - {pb.V8_OP_UNSPECIFIED}
_WORD_TAGS = frozenset({pb.VALUE_SMI, pb.VALUE_HANDLE, pb.VALUE_REF})


def smi_of(word: int) -> int:
    """A batch word read as a Smi: two's complement in 64 bits (the sim checks the int32 range)."""
    return word - (1 << 64) if word >= 1 << 63 else word


def word_of(v: Value) -> tuple[int, pb.ValueTag]:
    """A value as a reply word and its tag."""
    if isinstance(v, Handle):
        return v.id, pb.VALUE_HANDLE
    return v & ALL_BYTES, pb.VALUE_SMI


@dataclass
class Plan:
    """A checked message: its columns, and per op the slice of the value stream and its data."""

    ops: Sequence[int]
    a: list[int]
    a_tag: Sequence[int]
    b: list[int]
    c: list[int]
    nfields: list[int]  # NEW_OBJECT: the object's fields (0 given: as many as values)
    first: list[int]  # the op's first word of the value stream
    count: list[int]  # how many words it takes
    words: list[int]
    tags: Sequence[int]
    data_of: list[bytes]


def _check_ref(i: int, k: int, what: str, ops: Sequence[int], a_tag: Sequence[int]) -> None:
    if k >= i:
        raise InvalidArgument(f"bad batch: op {i}'s {what} is REF {k}, which is not an earlier op of the message")
    if ops[k] not in _HAS_RESULT or (ops[k] == pb.V8_CLOSE_SCOPE and a_tag[k] == pb.VALUE_NONE):
        raise InvalidArgument(f"bad batch: op {i}'s {what} is REF {k}, but op {k} ({pb.V8Op.Name(ops[k])}) "
                              f"has no result to name")


def plan(req: pb.V8Batch) -> Plan:
    """Check the whole message against its shape and limits.py before any op runs; InvalidArgument
    (naming the op and what is wrong) for a malformed one."""
    ops = list(req.op)
    n = len(ops)
    check_batch_size(n, MAX_V8_BATCH_OPS)
    a = batch_column(req.a, n, "a", 0)
    a_tag = batch_column(req.a_tag, n, "a_tag", pb.VALUE_NONE)
    b = batch_column(req.b, n, "b", 0)
    c = batch_column(req.c, n, "c", 0)
    nfields = batch_column(req.nfields, n, "nfields", 0)
    nvalues = batch_column(req.nvalues, n, "nvalues", 0)
    words, tags = list(req.fields), list(req.field_tags)
    if len(words) != len(tags):
        raise InvalidArgument(f"bad batch: {len(words)} field words with {len(tags)} field tags (one tag per word)")
    if len(words) > MAX_FIELDS:
        raise InvalidArgument(f"bad batch: {len(words)} field words are more than the {MAX_FIELDS}-word limit")
    payloads = list(req.data)
    takers = sum(op in _TAKES_DATA for op in ops)
    if len(payloads) != takers:
        raise InvalidArgument(f"bad batch: {len(payloads)} data entries for {takers} ops that take one "
                              f"(NEW_OBJECT, NEW_STRING, WRITE_PAYLOAD, WRITE_BACKING)")
    next_payload = iter(payloads)
    data_of = [next(next_payload) if op in _TAKES_DATA else b"" for op in ops]
    first, count = [0] * n, [0] * n
    used = fields = alloc = gcs = 0
    for i, op in enumerate(ops):
        if op not in _OPS:
            raise InvalidArgument(f"bad batch: op {i} has unknown kind {op}")
        tag, name = a_tag[i], pb.V8Op.Name(op)
        if op in _TAKES_OBJECT and tag not in (pb.VALUE_HANDLE, pb.VALUE_REF):
            raise InvalidArgument(f"bad batch: op {i} ({name}) needs an object: a_tag HANDLE or REF, not "
                                  f"{_tag_name(tag)}")
        if op == pb.V8_CLOSE_SCOPE and tag not in (pb.VALUE_NONE, pb.VALUE_HANDLE, pb.VALUE_REF):
            raise InvalidArgument(f"bad batch: op {i} (CLOSE_SCOPE) escapes a handle (HANDLE or REF) or nothing "
                                  f"(NONE), not {_tag_name(tag)}")
        if op not in _TAKES_OBJECT and op != pb.V8_CLOSE_SCOPE and tag != pb.VALUE_NONE:
            raise InvalidArgument(f"bad batch: op {i} ({name}) takes no object, but a_tag is {_tag_name(tag)}")
        if tag == pb.VALUE_REF:
            _check_ref(i, a[i], "object", ops, a_tag)
        takes = nvalues[i] if op == pb.V8_NEW_OBJECT else 1 if op == pb.V8_SET_FIELD else 0
        if op != pb.V8_NEW_OBJECT and nvalues[i] not in (0, takes):
            raise InvalidArgument(f"bad batch: op {i} ({name}) takes {takes} values, not nvalues {nvalues[i]}")
        first[i], count[i] = used, takes
        used += takes
        if used > len(words):
            raise InvalidArgument(f"bad batch: op {i} ({name}) takes values past the {len(words)} field words given")
        for j in range(first[i], used):
            if tags[j] not in _WORD_TAGS:
                raise InvalidArgument(f"bad batch: field word {j} (op {i}) has tag {_tag_name(tags[j])}: give SMI, "
                                      f"HANDLE or REF")
            if tags[j] == pb.VALUE_REF:
                _check_ref(i, words[j], f"value {j - first[i]}", ops, a_tag)
        if op == pb.V8_NEW_OBJECT:
            size = nfields[i] or takes
            if size < takes:
                raise InvalidArgument(f"bad batch: op {i} (NEW_OBJECT) gives {takes} values for nfields {nfields[i]}")
            if size > MAX_FIELDS:
                raise InvalidArgument(f"bad batch: op {i} (NEW_OBJECT) has {size} fields, more than the "
                                      f"{MAX_FIELDS}-field limit")
            fields += size
            alloc += WORD * size + len(data_of[i])
        elif op == pb.V8_NEW_STRING:
            alloc += len(data_of[i])
        elif op == pb.V8_NEW_ARRAY_BUFFER:
            _check_bytes(i, name, b[i], "byte_length")
            alloc += b[i]
        elif op in _READS and c[i] != ALL_BYTES:
            _check_bytes(i, name, c[i], "length")
        elif op == pb.V8_GC:
            gcs += 1
            if gcs > MAX_V8_BATCH_GCS:
                raise InvalidArgument(f"bad batch: more than {MAX_V8_BATCH_GCS} GC ops in one message")
        _check_bytes(i, name, len(data_of[i]), "data")
    if used != len(words):
        raise InvalidArgument(f"bad batch: the ops take {used} field words, but {len(words)} were given")
    if fields > MAX_FIELDS:
        raise InvalidArgument(f"bad batch: its objects have {fields} fields in all, more than the {MAX_FIELDS}-field "
                              f"limit of one message")
    if alloc > MAX_V8_ALLOC_BYTES:
        raise InvalidArgument(f"bad batch: it allocates {alloc} bytes in all, more than the {MAX_V8_ALLOC_BYTES}-byte "
                              f"limit of one message; split it")
    return Plan(ops, a, a_tag, b, c, nfields, first, count, words, tags, data_of)


def _tag_name(tag: int) -> str:
    return pb.ValueTag.Name(tag)[len("VALUE_"):] if tag in pb.ValueTag.values() else str(tag)


def _check_bytes(i: int, name: str, n: int, what: str) -> None:
    if n > MAX_V8_PAYLOAD:
        raise InvalidArgument(f"bad batch: op {i} ({name}) has a {what} of {n} bytes, more than the "
                              f"{MAX_V8_PAYLOAD}-byte limit")


def read_length(iso: Isolate, h: Handle, offset: int, length: int | None, backing: bool) -> int:
    """The bytes a read will copy (for the reply's budget, before the copy); the sim checks the range."""
    if length is not None:
        return length
    size = iso.byte_length(h) if backing else iso.payload_len(h)
    return max(0, size - offset)


def budgeted_read(iso: Isolate, budget: ReplyBudget, h: Handle, offset: int, length: int | None, backing: bool,
                  what: str) -> bytes:
    """A payload or backing-store read, charged to the reply's budget before it copies."""
    n = read_length(iso, h, offset, length, backing)
    budget.charge(n, what)
    try:
        if backing:
            return iso.read_backing(h, offset, length)
        return iso.read_payload(h, offset, length)
    except Exception:
        budget.refund(n)  # nothing was copied
        raise


def run_batch(iso: Isolate, req: pb.V8Batch, core: int, budget: ReplyBudget,
              checked: Plan | None = None, arrived: float | None = None) -> pb.V8BatchReply:
    """Every op of a message in order, on `iso` (its locker held); an op's failure is its OpError
    and the rest go on. `checked` is the message's plan, if the caller has made it already. With
    `timeout_ms`, an op not started by then (from `arrived`, time.monotonic()) is not run and
    answers DEADLINE_EXCEEDED, so a caller that gave up costs the core at most one more op."""
    p = checked if checked is not None else plan(req)
    n = len(p.ops)
    results: list[Value | None] = [None] * n
    failed: set[int] = set()
    reads: list[bytes] = []

    def resolve(i: int, tag: int, word: int) -> Value:
        if tag == pb.VALUE_SMI:
            return smi_of(word)
        if tag == pb.VALUE_HANDLE:
            return Handle(word)
        r = results[word]
        if r is None:
            why = "failed" if word in failed else "made nothing"
            raise FailedPrecondition(f"op {i}: REF {word} names op {word}, which {why}")
        return r

    def obj(i: int) -> Handle:
        v = resolve(i, p.a_tag[i], p.a[i])
        if not isinstance(v, Handle):
            raise FailedPrecondition(f"op {i}: its object is REF {p.a[i]}, which read the Smi {v}, not a reference")
        return v

    deadline = (time.monotonic() if arrived is None else arrived) + req.timeout_ms / 1000 if req.timeout_ms else 0.0

    def op(i: int) -> None:
        kind, b, c = p.ops[i], p.b[i], p.c[i]
        if deadline and time.monotonic() > deadline:
            failed.add(i)
            raise DeadlineExceeded(f"op {i} not started: the batch's timeout_ms ({req.timeout_ms}) passed")
        try:
            if kind == pb.V8_NEW_OBJECT:
                vals = [resolve(i, p.tags[j], p.words[j]) for j in range(p.first[i], p.first[i] + p.count[i])]
                results[i] = iso.new_object(vals, payload=p.data_of[i], nfields=p.nfields[i] or None,
                                            pretenure=bool(c))
            elif kind == pb.V8_NEW_STRING:
                results[i] = iso.new_string(p.data_of[i], pretenure=bool(c))
            elif kind == pb.V8_NEW_ARRAY_BUFFER:
                results[i] = iso.new_array_buffer(b)
            elif kind == pb.V8_SET_FIELD:
                j = p.first[i]
                iso.set_field(obj(i), b, resolve(i, p.tags[j], p.words[j]))
            elif kind == pb.V8_GET_FIELD:
                results[i] = iso.get_field(obj(i), b)
            elif kind in _READS:
                reads.append(b"")  # one slot per read, empty if it fails
                length = None if c == ALL_BYTES else c
                backing = kind == pb.V8_READ_BACKING
                reads[-1] = budgeted_read(iso, budget, obj(i), b, length, backing, f"op {i} ({pb.V8Op.Name(kind)})")
            elif kind == pb.V8_WRITE_PAYLOAD:
                iso.write_payload(obj(i), b, p.data_of[i])
            elif kind == pb.V8_WRITE_BACKING:
                iso.write_backing(obj(i), b, p.data_of[i])
            elif kind == pb.V8_OPEN_SCOPE:
                results[i] = iso.open_scope()
            elif kind == pb.V8_CLOSE_SCOPE:
                escape = None if p.a_tag[i] == pb.VALUE_NONE else obj(i)
                results[i] = iso.close_scope(escape)
            elif kind == pb.V8_MAKE_PERSISTENT:
                results[i] = iso.make_persistent(obj(i))
            elif kind == pb.V8_DROP:
                iso.drop(obj(i))
            else:  # V8_GC (plan() let no other kind through)
                results[i] = iso.gc(minor=bool(b)).seq
        except Exception:
            failed.add(i)
            raise

    errors = run_ops(n, op, core)
    reply = pb.V8BatchReply(seq=req.seq, core=core, data=reads, errors=errors)
    for r in results:
        word, tag = (0, pb.VALUE_NONE) if r is None else word_of(r)
        reply.value.append(word)
        reply.value_tag.append(tag)
    return reply
