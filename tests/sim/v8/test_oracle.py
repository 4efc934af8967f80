"""The oracle itself: its sizes and its collectors follow V8's rules (tests/sim/v8/oracle.py).

The heap's tests trust the model's figures exactly, so the model is checked on its own first, on
small graphs whose answers are worked out by hand.
"""

from __future__ import annotations

import pytest

from tests.sim.v8.oracle import ARRAY_BUFFER_SIZE, LO_SPACE, NEW_SPACE, OLD_SPACE, Oracle, Ref, object_size

PAGE = 64 << 10


def test_sizes_are_the_designs():
    assert object_size(0, 0) == 8
    assert object_size(2, 5) == 8 + 16 + 8
    assert object_size(0, 8) == 16 and object_size(0, 9) == 24
    assert ARRAY_BUFFER_SIZE == 24
    o = Oracle(PAGE)
    s = o.new_string(b"0123456789")
    ab = o.new_array_buffer(1000)
    h = o.new_object([1], b"abc", nfields=3)
    assert [o.objects[x].size for x in (s, ab, h)] == [24, 24, 8 + 24 + 8]
    assert o.objects[h].fields == [1, 0, 0]
    assert o.heap_bytes() == o.live_bytes() == 88 and o.external_bytes() == 1000


def test_spaces_at_allocation():
    o = Oracle(PAGE, semi_space_size=2 * PAGE)
    assert o.objects[o.new_object(payload=bytes(PAGE // 2 - 8))].space == NEW_SPACE  # exactly page/2
    assert o.objects[o.new_object(payload=bytes(PAGE // 2 - 7))].space == LO_SPACE
    one_page = Oracle(PAGE)  # a one-page semi-space cannot hold page/2 twice: old space
    assert one_page.objects[one_page.new_object(payload=bytes(PAGE // 2 - 8))].space == OLD_SPACE
    assert o.objects[o.new_string(b"x", pretenure=True)].space == OLD_SPACE
    small_semi = Oracle(PAGE * 4, semi_space_size=PAGE * 4)  # half a semi-space's area: 131,040 bytes
    assert small_semi.young_max == (PAGE * 4 - 64) // 2
    assert small_semi.objects[small_semi.new_object(payload=bytes(small_semi.young_max - 8))].space == NEW_SPACE
    assert small_semi.objects[small_semi.new_object(payload=bytes(small_semi.young_max))].space == OLD_SPACE


def test_promotion_on_the_second_survival():
    o = Oracle(PAGE)
    h = o.new_object([1])
    o.scavenge()
    assert (o.objects[h].space, o.objects[h].age) == (NEW_SPACE, 1)
    r = o.scavenge()
    assert o.objects[h].space == OLD_SPACE and r.promoted == {h}
    late = o.new_object()
    r = o.mark_compact()  # a full GC promotes every young survivor (always_promote_young_mc)
    assert o.objects[late].space == OLD_SPACE and r.promoted == {late}
    assert not any(ob.space == NEW_SPACE for ob in o.objects.values())


def test_scavenge_roots_are_handles_and_every_old_field():
    o = Oracle(PAGE)
    old = o.new_object(nfields=1, pretenure=True)
    o.open_scope()
    kept = o.new_object([7])
    inner = o.new_object([Ref(kept)])  # young -> young: kept alive through `inner` only if inner lives
    dead_old = o.new_object([Ref(inner)], pretenure=True)  # unreachable old object, but not yet known dead
    o.set_field(old, 0, Ref(kept))
    garbage = o.new_object([1])
    o.close_scope()
    r = o.scavenge()
    assert r.died == {garbage} and r.died_bytes == 16
    assert {kept, inner, dead_old} <= set(o.objects)
    r = o.mark_compact()
    assert r.died == {dead_old, inner} and kept in o.objects


def test_scavenge_does_not_trace_through_old_objects():
    """A young object reached only from handles through an old one is kept by the old object's slot,
    not by tracing: the same answer, found the scavenger's way."""
    o = Oracle(PAGE)
    o.open_scope()
    young = o.new_object()
    old = o.new_object([Ref(young)], pretenure=True)
    o.close_scope(escape=old)
    o.scavenge()
    assert young in o.objects


def test_scopes_globals_and_escape():
    o = Oracle(PAGE)
    o.open_scope()
    a = o.new_object([1])
    b = o.new_object([Ref(a)])
    c = o.new_object()
    g = o.make_persistent(c)
    o.close_scope(escape=b)
    assert o.reachable() == {a, b, c}
    o.drop(g)
    assert o.reachable() == {a, b}
    r = o.mark_compact()
    assert r.died == {c}
    with pytest.raises(AssertionError):
        o.close_scope()  # the root scope never closes


def test_get_field_makes_a_handle():
    o = Oracle(PAGE)
    o.open_scope()
    a = o.new_object([5])
    holder = o.new_object([Ref(a)], pretenure=True)
    o.close_scope(escape=holder)
    o.open_scope()
    assert o.get_field(holder, 0) == Ref(a)
    o.set_field(holder, 0, 3)
    assert o.reachable() == {a, holder}  # the handle from get_field keeps `a`
    o.close_scope()
    r = o.mark_compact()
    assert r.died == {a}


def test_backing_stores_are_freed_with_their_holder():
    o = Oracle(PAGE)
    o.open_scope()
    o.new_array_buffer(100)
    o.write_backing(o.new_array_buffer(50), 0, b"xy")
    o.close_scope()
    r = o.scavenge()
    assert r.freed_backing == 150 and o.external_bytes() == 0
