"""The managed heap's collectors, one claim per test, each checked against the oracle.

Every test drives a real isolate (64 KiB V8 pages, a one-page semi-space) through
tests/sim/v8/mirror.py, so besides its own claim each one also checks, after every GC, that the
reachable graph read back through the API is the model's and that heapUsed fell by exactly the
bytes that died. The claims: promotion on the second scavenge survived, not the first (V8's age
mark); the remembered set keeps an object reachable only through an old->new pointer alive, and
without the write barrier it is lost (the same check then fails); forced compaction moves objects
and updates every pointer (roots, old<->old, old<->large), and a moved host records old->new
slots on its new page; large objects never move; backing stores are freed when their holder dies,
young and old; the heap limit's text, after which smaller allocations succeed; heapUsed falls by
what died; stale, foreign and out-of-range uses are refused with the contract's errors; two
isolates are independent.
"""

from __future__ import annotations

import re

import pytest

from memsim.sim.alloc.memstats import read_memstats
from memsim.sim.errors import FailedPrecondition, OutOfRange, ResourceExhausted
from memsim.sim.v8 import Handle
from tests.sim.v8.mirror import PAGE, MiB, Mirror, OracleMismatch, mirrored_isolate, small_machine
from tests.sim.v8.oracle import SMI_MAX, SMI_MIN, object_size

NEW, OLD, LO = "new_space", "old_space", "large_object_space"


@pytest.fixture
def machine():
    with small_machine(cores=2) as m:
        yield m


@pytest.fixture
def mi(machine):
    with mirrored_isolate(machine) as mirror:
        yield mirror


def checked_gc(mi: Mirror, minor: bool) -> None:
    mi.gc(minor=minor)
    mi.check_graph()
    mi.check_figures()
    if mi.last_gc_was_full():
        mi.check_after_full_gc()


def promote(mi: Mirror) -> None:
    """Two scavenges: everything young and alive is now old."""
    checked_gc(mi, minor=True)
    checked_gc(mi, minor=True)


# -- the scavenger: ages and the remembered set ------------------------------------------------------


def test_promotion_on_the_second_survival_not_the_first(mi):
    h = mi.new_object([1, 2], payload=b"survivor")
    s = mi.new_string(b"also")
    a0 = mi.iso.address_of(h)
    assert mi.iso.space_of(h) == NEW and mi.iso.space_of(s) == NEW
    checked_gc(mi, minor=True)
    assert mi.iso.space_of(h) == NEW and mi.iso.space_of(s) == NEW, "promoted on the first survival"
    a1 = mi.iso.address_of(h)
    assert a1 != a0, "a scavenge copies the survivors to the other semi-space"
    checked_gc(mi, minor=True)
    assert mi.iso.space_of(h) == OLD and mi.iso.space_of(s) == OLD, "not promoted on the second survival"
    # An object allocated after a scavenge is above the age mark: its own first survival keeps it young.
    late = mi.new_object([3])
    checked_gc(mi, minor=True)
    assert mi.iso.space_of(late) == NEW
    checked_gc(mi, minor=True)
    assert mi.iso.space_of(late) == OLD


def old_to_new_scenario(mi: Mirror, holder_kind: str, barrier_off: bool) -> None:
    """A young object reachable only through a field of an old (pretenured) or a large object,
    then scavenges that must keep it. Raises AssertionError when the isolate disagrees with the
    model. The young object is the first young object of a fresh isolate, so the second
    scavenge copies the other survivor over the bytes it used to occupy: a lost object cannot pass
    for a live one by leaving its stale copy behind."""
    if holder_kind == "pretenured":
        holder = mi.new_object(nfields=2, pretenure=True)
    else:
        holder = mi.new_object(nfields=2, payload=bytes(PAGE // 2 + 8))
    mi.open_scope()
    young = mi.new_object([41, 42], payload=b"reachable only through old->new")
    if barrier_off:
        mi.iso.testing(barrier_off=True)
    mi.set_field(holder, 1, young)
    mi.close_scope()
    mi.iso.testing(barrier_off=False)
    assert mi.iso.space_of(holder) in (OLD, LO)
    checked_gc(mi, minor=True)
    other = mi.new_object([7], payload=b"another object entirely")
    checked_gc(mi, minor=True)
    assert mi.iso.read_payload(other) == b"another object entirely"


@pytest.mark.parametrize("holder_kind", ["pretenured", "large"])
def test_old_to_new_pointer_keeps_a_young_object_alive(mi, holder_kind):
    old_to_new_scenario(mi, holder_kind, barrier_off=False)
    got = mi.get_field(mi.scopes[0][0], 1)
    assert isinstance(got, Handle) and mi.iso.read_payload(got) == b"reachable only through old->new"


def test_old_to_new_pointer_from_a_promoted_object(mi):
    holder = mi.new_object(nfields=1)
    promote(mi)
    assert mi.iso.space_of(holder) == OLD
    mi.open_scope()
    young = mi.new_object([5], payload=b"young")
    mi.set_field(holder, 0, young)
    mi.close_scope()
    checked_gc(mi, minor=True)
    checked_gc(mi, minor=True)  # the young object's own second survival: now old too
    got = mi.get_field(holder, 0)
    assert isinstance(got, Handle) and mi.iso.space_of(got) == OLD


@pytest.mark.parametrize("holder_kind", ["pretenured", "large"])
def test_without_the_write_barrier_the_object_is_lost(machine, holder_kind):
    """The same scenario with BARRIER_OFF: the slot never reaches OLD_TO_NEW, the scavenger does not
    see it, and the oracle's check must fail (heapUsed falls by bytes the model says are alive, or
    the graph read back differs). The heap verifier is off, so the check is what catches it; any
    other failure (an error from the isolate) fails this test."""
    with mirrored_isolate(machine, verify_heap=False) as mi, pytest.raises(OracleMismatch):
        old_to_new_scenario(mi, holder_kind, barrier_off=True)


# -- mark-compact: compaction and large objects ----------------------------------------------------------


def build_old_graph(mi: Mirror, n: int) -> list[Handle]:
    """n old objects in a ring with cross links and strings, garbage between them (so that their
    pages are fragmented once it dies)."""
    keep: list[Handle] = []
    for i in range(n):
        mi.open_scope()
        for j in range(3):  # garbage, interleaved with the survivors on the same pages
            mi.new_object([i, j], payload=bytes(24), pretenure=True)
        s = mi.new_string(f"node {i}".encode(), pretenure=True)
        h = mi.new_object([i, s, 0], payload=i.to_bytes(4, "little") * 3, pretenure=True)
        kept = mi.close_scope(escape=h)
        assert kept is not None
        keep.append(kept)
    for i, h in enumerate(keep):
        mi.set_field(h, 2, keep[(i + 1) % n])
        if i % 3 == 0:
            mi.set_field(h, 0, keep[(i * 7) % n])
    return keep


def hold_young_only_through(mi: Mirror, host: Handle, i: int, payload: bytes) -> None:
    """A new young object whose only reference is field i of `host` (an old->new slot if host is old)."""
    mi.open_scope()
    young = mi.new_object([99], payload=payload)
    mi.set_field(host, i, young)
    mi.close_scope()


def test_forced_compaction_moves_objects_and_updates_every_pointer(mi):
    keep = build_old_graph(mi, 40)
    big = mi.new_object([keep[0]], payload=bytes(PAGE // 2 + 64))
    mi.set_field(keep[1], 0, big)
    checked_gc(mi, minor=False)  # the garbage dies
    before = {h: mi.iso.address_of(h) for h in keep}
    big_at = mi.iso.address_of(big)
    mi.iso.testing(force_compaction=True)
    checked_gc(mi, minor=False)
    mi.iso.testing(force_compaction=False)
    moved = [h for h in keep if mi.iso.address_of(h) != before[h]]
    assert len(moved) == len(keep), f"{len(keep) - len(moved)} old objects did not move under forced compaction"
    assert mi.iso.address_of(big) == big_at, "a large object moved"
    # A moved host's page takes old->new slots as any old page does.
    hold_young_only_through(mi, keep[len(keep) // 2], 0, b"young, held by an old object that moved")
    checked_gc(mi, minor=True)
    checked_gc(mi, minor=True)
    checked_gc(mi, minor=False)


def test_a_large_object_never_moves(mi):
    big_s = mi.new_string(bytes(range(256)) * (PAGE // 512 + 1))
    big_o = mi.new_object([1, 2, 3], payload=b"\xab" * (PAGE // 2 + 1))
    assert mi.iso.space_of(big_s) == LO and mi.iso.space_of(big_o) == LO
    at = (mi.iso.address_of(big_s), mi.iso.address_of(big_o))
    for step in range(6):
        mi.open_scope()
        young = mi.new_object([step], payload=b"young" * 4)
        mi.set_field(big_o, step % 3, young)  # a large host records old->new slots too
        for _ in range(40):
            mi.new_object([step], payload=bytes(2000))  # churn: over a semi-space, so scavenges run
        mi.close_scope()
        if step % 3 == 2:
            mi.iso.testing(force_compaction=True)
        checked_gc(mi, minor=step % 2 == 0)
        mi.iso.testing(force_compaction=False)
        assert (mi.iso.address_of(big_s), mi.iso.address_of(big_o)) == at, f"a large object moved at step {step}"


# -- backing stores ---------------------------------------------------------------------------------------


def heap_objects(machine) -> int:
    return read_memstats(machine.arrays).HeapObjects


def test_backing_store_is_freed_when_a_young_holder_dies(machine, mi):
    base = heap_objects(machine)
    mi.open_scope()
    ab = mi.new_array_buffer(1000)
    mi.write_backing(ab, 10, b"bytes outside the heap")
    assert heap_objects(machine) == base + 1
    assert mi.iso.memory_usage()["external"] == 1000
    mi.close_scope()
    checked_gc(mi, minor=True)
    assert heap_objects(machine) == base, "a scavenge left a dead ArrayBuffer's backing store allocated"
    assert mi.iso.memory_usage()["external"] == 0


def test_backing_store_is_freed_when_an_old_holder_dies(machine, mi):
    base = heap_objects(machine)
    mi.open_scope()
    ab = mi.new_array_buffer(3000)
    g = mi.make_persistent(ab)
    mi.close_scope()
    promote(mi)
    assert mi.iso.space_of(g) == OLD
    mi.drop(g)
    checked_gc(mi, minor=True)  # an old holder is not the scavenger's to free
    assert heap_objects(machine) == base + 1 and mi.iso.memory_usage()["external"] == 3000
    checked_gc(mi, minor=False)
    assert heap_objects(machine) == base, "a mark-compact left a dead ArrayBuffer's backing store allocated"
    assert mi.iso.memory_usage()["external"] == 0


# -- the heap limit -----------------------------------------------------------------------------------------


def test_heap_limit_error_then_a_smaller_allocation_succeeds(mi):
    size = PAGE // 2 + 1000
    mi.open_scope()
    with pytest.raises(ResourceExhausted) as e:
        for _ in range(4 * MiB // size):  # four times the 1 MiB limit
            mi.new_string(bytes(size))
    mi.sync()
    text = str(e.value)
    assert "JavaScript heap out of memory" in text and "max_old_space_size=1 MB" in text, text
    m = re.search(r"requested ([\d,]+) bytes", text)
    assert m and int(m.group(1).replace(",", "")) == object_size(0, size), text
    assert any(t.kind == "Mark-Compact" for t in mi.gcs), "gave up without a full GC"
    mi.check_graph()
    # The isolate is still usable: small young objects, then (once the big ones die) a big one.
    small = mi.new_object([1], payload=b"small")
    assert mi.iso.read_payload(small) == b"small"
    mi.close_scope()
    checked_gc(mi, minor=False)
    mi.new_string(bytes(size))
    mi.check_graph()


# -- heapUsed ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("minor", [True, False])
def test_heap_used_falls_by_exactly_what_died(mi, minor):
    keep = mi.new_object([1], payload=b"kept")
    mi.open_scope()
    mi.new_object([1, keep], payload=b"12345")  # 8 + 16 + 8
    mi.new_string(b"0123456789")  # 8 + 16
    mi.new_array_buffer(100)  # 24
    mi.set_field(keep, 0, 5)
    mi.close_scope()
    before = mi.iso.memory_usage()
    t = mi.gc(minor=minor)
    after = mi.iso.memory_usage()
    assert t.died_bytes == 32 + 24 + 24
    assert before["heapUsed"] - after["heapUsed"] == 80
    assert before["external"] - after["external"] == 100
    mi.check_graph()


# -- refused uses ---------------------------------------------------------------------------------------------


def test_a_handle_of_a_closed_scope_is_refused_even_after_its_slot_is_reused(mi):
    mi.open_scope()
    h = mi.new_object([1])
    mi.close_scope()
    mi.open_scope()
    h2 = mi.new_object([2])  # likely the same handle slot, with a new stamp
    for use in (lambda: mi.iso.get_field(h, 0), lambda: mi.iso.set_field(h, 0, 3), lambda: mi.iso.type_of(h),
                lambda: mi.iso.make_persistent(h), lambda: mi.iso.new_object([h])):
        with pytest.raises(FailedPrecondition):
            use()
    assert mi.iso.get_field(h2, 0) == 2
    mi.close_scope()


def test_a_dropped_global_is_refused(mi):
    g = mi.make_persistent(mi.new_object([1]))
    mi.drop(g)
    with pytest.raises(FailedPrecondition):
        mi.iso.get_field(g, 0)
    with pytest.raises(FailedPrecondition):
        mi.iso.drop(g)


def test_closing_the_root_scope_is_refused(mi):
    with pytest.raises(FailedPrecondition):
        mi.iso.close_scope()


def refuses_foreign(b: Mirror, ha: Handle) -> None:
    hb = b.new_object([2])
    for use in (lambda: b.iso.get_field(ha, 0), lambda: b.iso.set_field(hb, 0, ha), lambda: b.iso.same(ha, hb),
                lambda: b.iso.new_object([ha]), lambda: b.iso.make_persistent(ha)):
        with pytest.raises(FailedPrecondition):
            use()
    b.check_graph()


def test_another_isolates_handle_is_refused(machine):
    with mirrored_isolate(machine) as a, mirrored_isolate(machine) as b:
        refuses_foreign(b, a.new_object([1]))
        a.check_graph()


def test_a_handle_of_a_destroyed_isolate_is_refused_by_its_successor(machine):
    """The successor may take the destroyed isolate's row: its handles must still be dead there."""
    with mirrored_isolate(machine) as a:
        ha = a.new_object([1])
    with mirrored_isolate(machine) as b:
        refuses_foreign(b, ha)


def test_field_index_and_payload_range_are_out_of_range(mi):
    h = mi.new_object([1, 2], payload=b"abc")
    for use in (lambda: mi.iso.get_field(h, 2), lambda: mi.iso.get_field(h, -1), lambda: mi.iso.set_field(h, 2, 0),
                lambda: mi.iso.read_payload(h, 2, 2), lambda: mi.iso.write_payload(h, 3, b"x")):
        with pytest.raises(OutOfRange):
            use()
    mi.check_graph()


def test_smi_outside_int32_is_out_of_range(mi):
    h = mi.new_object(nfields=2)
    for bad in (SMI_MAX + 1, SMI_MIN - 1, 1 << 40):
        with pytest.raises(OutOfRange):
            mi.iso.set_field(h, 0, bad)
        with pytest.raises(OutOfRange):
            mi.iso.new_object([bad])
    mi.set_field(h, 0, SMI_MAX)
    mi.set_field(h, 1, SMI_MIN)
    mi.check_graph()
    assert (mi.iso.get_field(h, 0), mi.iso.get_field(h, 1)) == (SMI_MAX, SMI_MIN)


# -- two isolates ---------------------------------------------------------------------------------------------------


def test_two_isolates_in_one_machine_are_independent(machine):
    with mirrored_isolate(machine, core=0) as a, mirrored_isolate(machine, core=1) as b:
        assert a.space != b.space
        roots_a = [a.new_object([i], payload=b"A" * (i + 1)) for i in range(20)]
        roots_b = [b.new_object([-i], payload=b"B" * (i + 1)) for i in range(20)]
        for i in range(1, 20):
            a.set_field(roots_a[i], 0, roots_a[i - 1])
            b.set_field(roots_b[i], 0, roots_b[i - 1])
        for _ in range(3):
            at_b = [b.iso.address_of(h) for h in roots_b]
            seq_b = b.last_seq
            mu_b = b.iso.memory_usage()
            checked_gc(a, minor=True)
            checked_gc(a, minor=False)
            for _ in range(100):  # churn in a, none in b
                a.new_object([0], payload=bytes(64))
            a.sync()
            assert [b.iso.address_of(h) for h in roots_b] == at_b, "a GC of one isolate moved another's objects"
            assert not b.iso.trace(after_seq=seq_b), "a GC of one isolate ran in another"
            assert b.iso.memory_usage()["heapUsed"] == mu_b["heapUsed"]
            b.check_graph()
            checked_gc(b, minor=True)
        a.check_graph()
        b.check_graph()
