"""sim/alloc/owners.py: who allocated each live object, and a client's release (no server)."""

from __future__ import annotations

import pytest

from memsim.sim.alloc import layout as L
from memsim.sim.alloc.owners import Owners, tiny_objects
from memsim.sim.alloc.recovery import check
from memsim.sim.errors import FailedPrecondition, ResourceExhausted

A, B = 0xA11CE, 0xB0B


def test_objects_are_listed_by_core_and_client_and_a_release_frees_only_that_clients(machine):
    h0, h1 = machine.heap(0), machine.heap(1)
    own0, own1 = Owners(h0), Owners(h1)
    ea = own0.claim(A, 30.0, now=0.0)
    eb = own1.claim(B, 30.0, now=0.0)
    assert ea != eb and own1.entry_of(A) == ea  # one table for every core
    a_objs = [h0.malloc(n, ea).address for n in (24, 5000, 100_000)]
    b_objs = [h1.malloc(n, eb).address for n in (24, 70_000)]
    nobody = h1.malloc(48).address
    tiny = [h0.malloc(3).address, h0.malloc(4).address]  # nobody's: one block
    a_tiny = [h0.malloc(2, ea).address, h0.malloc(6, ea).address]  # A's: a block of A's own
    assert a_tiny[0] // 16 != tiny[0] // 16 and a_tiny[1] // 16 == a_tiny[0] // 16
    a_objs += a_tiny
    listed, total = own0.live(client=A)
    assert total == 5 and sorted(o.address for o in listed) == sorted(a_objs)
    assert {o.core for o in listed} == {0} and {o.client for o in listed} == {A}
    on1, _ = own0.live(core=1)
    assert {o.address for o in on1} == {*b_objs, nobody}
    unowned, _ = own0.live(client=0)
    assert {nobody, *tiny} <= {o.address for o in unowned}
    assert sorted((o.address, o.size, o.kind) for o in unowned if o.kind == "tiny") == \
        [(tiny[0], 3, "tiny"), (tiny[1], 4, "tiny")]
    few, total = own0.live(limit=2)
    assert len(few) == 2 and total == 5 + 2 + 1 + 2

    assert own1.begin_release(ea, A, now=1.0)  # core 1 releases core 0's client: the records are shared
    assert not own0.begin_release(ea, A, now=1.0)  # one releaser at a time
    assert own1.free_some(ea, 2) == (2, 2)
    assert own1.free_some(ea, 2) == (2, 2)
    assert own1.free_some(ea, 2) == (1, 1)
    assert own1.free_some(ea, 2) == (0, 0)
    own1.finish_release(ea)
    assert own0.entry_of(A) == 0 and own0.live(client=A) == ([], 0)
    assert sorted(o.address for o in own0.live(client=B)[0]) == sorted(b_objs)
    assert not check(h0, quiescent=False)


def test_a_lease_expires_unless_renewed(machine):
    own = Owners(machine.heap(0))
    e = own.claim(A, 10.0, now=100.0)
    assert own.expired(105.0) == [] and own.expired(111.0) == [e]
    assert own.renew(A, now=109.0) and own.expired(111.0) == []
    assert not own.renew(B, now=109.0)  # holds nothing
    assert not own.begin_release(e, A, now=111.0, expired_only=True)  # renewed meanwhile
    assert own.begin_release(e, A, now=120.0, expired_only=True)
    assert own.entry_of(A) == 0 and own.expired(200.0) == [e]  # a stalled release is taken over later...
    assert own.begin_release(e, -A, now=200.0, expired_only=True)  # ...by its negated id
    own.finish_release(e)
    assert own.expired(1e9) == []


def test_a_full_client_table_is_resource_exhausted(machine):
    own = Owners(machine.heap(0))
    machine.arrays.client_id[1:] = range(1, L.MAX_CLIENTS)
    with pytest.raises(ResourceExhausted, match="keep=True"):
        own.claim(A, 30.0, now=0.0)
    assert own.claim(5, 30.0, now=0.0) == 5  # a client that holds an entry keeps it


def test_tiny_block_marks_decode_to_objects():
    # objects at 0..2 (3 bytes), 4..7 (4 bytes), 8..8 (1 byte): start bits 0, 4, 8; end bits 2, 7, 8
    marks = (1 << 0 | 1 << 4 | 1 << 8) | (1 << 2 | 1 << 7 | 1 << 8) << 16
    assert tiny_objects(marks) == [(0, 3), (4, 4), (8, 1)]


# -- a release frees only what its client still owns; one listing per release; entries reused safely ---------


def servicer_on(machine, core: int = 0):
    from memsim.server.servicer import MachineServicer
    return MachineServicer(machine, machine.heap(core), core, port=0)


def test_a_release_does_not_free_an_object_handed_to_another_client_after_it_was_listed(machine):
    srv, h1 = servicer_on(machine), machine.heap(1)
    own = srv.owners
    ea, eb = own.claim(A, 30.0, now=0.0), own.claim(B, 30.0, now=0.0)
    for _ in range(4):
        srv.heap.malloc(100, ea)
    *others, victim = own.client_objects(ea)  # listed last: the release frees the others first
    free, raced = srv.heap.free, []

    def free_racing(addr: int, *args, **kw):
        if not raced:  # between two of the release's frees, core 1 frees A's victim and hands the slot to B
            h1.free(victim)
            raced.append(h1.malloc(100, eb).address)
        return free(addr, *args, **kw)

    srv.heap.free = free_racing
    assert srv.release(ea, A, now=1.0, expired_only=False) == 3
    assert raced == [victim]  # the same slot, now B's
    assert [o.address for o in own.live(client=B)[0]] == [victim]  # B's object survived A's release
    assert not set(others) & {o.address for o in own.live()[0]}
    assert not check(h1, quiescent=False)


def test_a_release_lists_the_clients_objects_once_not_once_per_chunk(machine):
    from memsim.server import servicer as S
    srv = servicer_on(machine)
    own = srv.owners
    ea = own.claim(A, 30.0, now=0.0)
    n = 3 * S.RELEASE_CHUNK + 10
    for i in range(n):
        srv.heap.malloc(24 if i % 2 else 5, ea)
    calls = []
    listing = own.client_objects
    own.client_objects = lambda entry: calls.append(entry) or listing(entry)
    assert srv.release(ea, A, now=1.0, expired_only=False) == n
    assert len(calls) == 1
    assert own.live(client=A) == ([], 0) and not check(srv.heap, quiescent=False)


def test_a_released_entry_is_not_reused_until_a_late_allocation_under_it_is_swept(machine):
    from memsim.sim.alloc.owners import TOMBSTONE_S
    srv, h1 = servicer_on(machine), machine.heap(1)
    own = srv.owners
    ea = own.claim(A, 30.0, now=0.0)  # an Alloc on core 1 got A's entry...
    assert srv.release(ea, A, now=1.0, expired_only=False) == 0  # ...A closed meanwhile...
    late = h1.malloc(24, ea).address  # ...and then that Alloc published its object under the entry
    eb = own.claim(B, 30.0, now=2.0)
    assert eb != ea  # B does not inherit A's late object
    assert srv.expired(1.0 + TOMBSTONE_S / 2) == []  # for a while, nothing to reap
    assert srv.release(eb, B, now=3.0, expired_only=False) == 0
    assert late in {o.address for o in own.live()[0]}  # B's close did not free it
    assert srv.reap(2.0 + TOMBSTONE_S)  # the reaper sweeps the tombstone...
    assert late not in {o.address for o in own.live()[0]}
    assert int(machine.arrays.client_id[ea]) == 0  # ...and only then gives the entry back
    assert own.claim(A, 30.0, now=100.0) in (ea, eb)
    assert not check(h1, quiescent=False)


def test_the_owner_of_a_freed_slot_is_nobody_so_a_double_free_of_a_former_cache_object_says_so(machine):
    from memsim.sim.alloc.owners import CACHE_ENTRY
    heap = machine.heap(0)
    ks = machine.keyspace(heap)
    own = Owners(heap)
    before = set(own.client_objects(CACHE_ENTRY))
    ks.set(b"key", b"v" * 100)
    made = set(own.client_objects(CACHE_ENTRY)) - before
    assert ks.delete(b"key")
    gone = made - set(own.client_objects(CACHE_ENTRY))
    assert gone
    for addr in gone:
        assert heap.owner_word(addr) is None
        own.check_client_access(addr, "free")  # no longer the cache's: nothing to refuse
        with pytest.raises(FailedPrecondition, match="double"):
            heap.free(addr)
    ks.release()
