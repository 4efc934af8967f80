"""Mark-compact (sim/v8/mark_compact.py, marking.py, mark_kernels.py, sweeper.py) on a real machine:

- after gc() every reachable graph reads back the same, heapUsed is exactly the bytes of the
  reachable objects, and the heap verifies;
- unreachable objects are reclaimed, empty pages released (heapTotal falls, frames go back to the pool);
- compaction moves objects (forced, and chosen by the heuristics on fragmented pages) and updates
  every pointer, roots and globals included; an evacuation that runs out of room aborts cleanly;
- large objects keep their address and are freed when dead; backing stores of dead ArrayBuffers are freed;
- young survivors are promoted (or stay young when old space cannot take them);
- the heap limit: Node's out-of-memory error, and the isolate goes on; old-space growth past the
  limit starts a Mark-Compact by itself.
"""

from __future__ import annotations

import random

import pytest

from memsim.sim.errors import ResourceExhausted
from memsim.sim.v8 import mark_compact, marking, old_space, verifier
from memsim.sim.v8.handles import Handle
from memsim.sim.v8.isolate import Isolate
from memsim.sim.v8.layout import OLD_TO_NEW
from memsim.sim.v8.worklist import L_PUSH, M_FILL, NSEG_MARKING, Worklist

PAGE = 64 << 10  # conftest.py's machine (and its v8 fixture) has 64 KiB heap pages


def size_of(iso: Isolate, h: Handle) -> int:
    kind = iso.type_of(h)
    if kind == "array_buffer":
        return 24
    return 8 + 8 * iso.nfields(h) + ((iso.payload_len(h) + 7) & ~7)


def reachable(iso: Isolate, roots: list[Handle]) -> tuple[int, list]:
    """(bytes of the objects reachable from roots, a canonical dump of the graph)."""
    seen: dict[int, int] = {}
    dump = []
    stack = list(roots)
    while stack:
        h = stack.pop()
        addr = iso.address_of(h)
        if addr in seen:
            dump.append(("ref", seen[addr]))
            continue
        seen[addr] = len(seen)
        kind = iso.type_of(h)
        payload = iso.read_payload(h) if kind != "array_buffer" else iso.read_backing(h)
        dump.append((kind, payload))
        for i in range(iso.nfields(h)):
            v = iso.get_field(h, i)
            if isinstance(v, int):
                dump.append(("smi", v))
            else:
                stack.append(v)
    return _bytes(iso, roots), dump


def _bytes(iso: Isolate, roots: list[Handle]) -> int:
    seen: set[int] = set()
    total = 0
    stack = list(roots)
    while stack:
        h = stack.pop()
        addr = iso.address_of(h)
        if addr in seen:
            continue
        seen.add(addr)
        total += size_of(iso, h)
        stack.extend(v for i in range(iso.nfields(h)) if not isinstance(v := iso.get_field(h, i), int))
    return total


def build_tree(iso: Isolate, depth: int, tag: int, pretenure_every: int = 3) -> Handle:
    """A binary tree whose nodes carry a Smi, a payload naming them, and every third one old."""
    counter = [0]

    def node(d: int) -> Handle:
        counter[0] += 1
        n = counter[0]
        kids = [node(d - 1), node(d - 1)] if d else [0, 0]
        return iso.new_object([*kids, tag * 1000 + n], payload=f"node-{tag}-{n}".encode(),
                              pretenure=n % pretenure_every == 0)

    iso.open_scope()
    return iso.close_scope(node(depth))


def test_reachable_graph_intact_and_heap_used_exact(v8):
    iso_id = v8.create_isolate(semi_space_size=4 * PAGE, max_old_space_size=32 * PAGE)
    with v8.enter(iso_id) as iso:
        keep = iso.make_persistent(build_tree(iso, 6, 1))
        iso.open_scope()
        for k in range(300):  # garbage, young and old
            iso.new_object([k], payload=b"g" * 50, pretenure=k % 2 == 0)
        build_tree(iso, 5, 2)
        iso.close_scope()
        local = build_tree(iso, 4, 3)
        live_before, dump_before = reachable(iso, [keep, local])
        assert iso.memory_usage()["heapUsed"] > live_before
        iso.gc()
        assert verifier.problems(iso.h) == ""
        live_after, dump_after = reachable(iso, [keep, local])
        assert dump_after == dump_before
        assert live_after == live_before
        assert iso.memory_usage()["heapUsed"] == live_before
        assert iso.space_of(keep) == iso.space_of(local) == "old_space"  # young survivors are promoted
        assert int(iso.h.a.pg_slots[iso_id, :, OLD_TO_NEW].sum()) == 0
        iso.gc()  # a second one changes nothing
        assert iso.memory_usage()["heapUsed"] == live_before
        assert reachable(iso, [keep, local])[1] == dump_before


def test_unreachable_objects_reclaimed_and_empty_pages_released(machine, v8):
    iso_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=32 * PAGE)
    vm = machine.vm(0)
    with v8.enter(iso_id) as iso:
        iso.open_scope()
        for k in range(400):
            iso.new_object([k] * 20, payload=b"p" * 200, pretenure=True)
        iso.close_scope()
        before = iso.memory_usage()
        free_before = int(vm.a.vm_free.sum())
        event = iso.gc()
        after = iso.memory_usage()
        assert after["heapUsed"] == 0
        assert after["heapTotal"] < before["heapTotal"]
        assert after["heapTotal"] == 2 * PAGE  # the semispaces stay; every old page went
        assert int(vm.a.vm_free.sum()) > free_before
        assert event.committed_before - event.committed_after == 3 * PAGE  # 400 objects of 376 bytes
        assert verifier.problems(iso.h) == ""
        h = iso.new_object([1, 2], pretenure=True)  # old space works again from scratch
        assert iso.get_field(h, 1) == 2


def fragment(iso: Isolate, n: int, keep_every: int, nfields: int = 30) -> list[Handle]:
    """Fill old pages with objects, keeping one in `keep_every` (each pointing at the previous kept one)."""
    kept: list[Handle] = []
    iso.open_scope()
    for k in range(n):
        fields = [k, kept[-1] if kept else 0] + [k] * (nfields - 2)
        h = iso.new_object(fields, payload=bytes([k & 255]) * 40, pretenure=True)
        if k % keep_every == 0:
            kept.append(iso.make_persistent(h))
    iso.close_scope()
    return kept


def check_chain(iso: Isolate, kept: list[Handle], keep_every: int) -> None:
    for j, g in enumerate(kept):
        k = j * keep_every
        assert iso.get_field(g, 0) == k
        assert iso.read_payload(g) == bytes([k & 255]) * 40
        prev = iso.get_field(g, 1)
        if j:
            assert iso.same(prev, kept[j - 1])


def test_forced_compaction_moves_objects_and_updates_every_pointer(v8):
    iso_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=32 * PAGE)
    with v8.enter(iso_id) as iso:
        kept = fragment(iso, 600, 3)
        local = iso.get_field(kept[-1], 1)  # a local handle too
        iso.gc()  # sweep only: one live object in three leaves no page 70 % free
        addrs = [iso.address_of(g) for g in kept]
        total = iso.memory_usage()["heapTotal"]
        iso.testing(force_compaction=True)
        event = iso.gc()
        assert event.compacted > 0
        moved = sum(iso.address_of(g) != a for g, a in zip(kept, addrs, strict=True))
        assert moved > len(kept) // 2
        assert verifier.problems(iso.h) == ""
        check_chain(iso, kept, 3)
        assert iso.same(local, kept[-2])
        assert iso.memory_usage()["heapUsed"] == _bytes(iso, kept)
        assert iso.memory_usage()["heapTotal"] < total  # compacted into fewer pages


def test_heuristics_compact_mostly_empty_pages_without_force(v8):
    iso_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=32 * PAGE)
    with v8.enter(iso_id) as iso:
        kept = fragment(iso, 800, 10)  # 10 % live: every page is a candidate
        event = iso.gc()
        assert event.compacted > 0 and event.committed_after < event.committed_before
        assert verifier.problems(iso.h) == ""
        check_chain(iso, kept, 10)
        assert iso.memory_usage()["heapUsed"] == _bytes(iso, kept)
        used = iso.memory_usage()["heapUsed"]
        assert iso.memory_usage()["heapTotal"] - 2 * PAGE <= used + 2 * PAGE


def test_compaction_aborts_when_old_space_and_its_slack_are_full(v8):
    # 8 pages of old space and 2 of slack, all filled 60 %: forced compaction runs out of room midway
    iso_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=8 * PAGE, growing_factor=4.0)
    with v8.enter(iso_id) as iso:
        kept = fragment(iso, 2000, 2, nfields=20)
        assert iso.memory_usage()["heapTotal"] >= 2 * PAGE + 7 * PAGE
        addrs = [iso.address_of(g) for g in kept]
        iso.testing(force_compaction=True)
        event = iso.gc()
        moved = sum(iso.address_of(g) != a for g, a in zip(kept, addrs, strict=True))
        assert 0 < moved < len(kept) and event.compacted > 0  # some pages moved, then it aborted
        assert verifier.problems(iso.h) == ""
        check_chain(iso, kept, 2)
        assert iso.memory_usage()["heapUsed"] == _bytes(iso, kept)
        iso.testing(force_compaction=False)
        iso.gc()
        assert verifier.problems(iso.h) == ""
        check_chain(iso, kept, 2)


def test_large_objects_never_move_and_are_freed_when_dead(v8):
    iso_id = v8.create_isolate(semi_space_size=2 * PAGE, max_old_space_size=32 * PAGE)
    with v8.enter(iso_id) as iso:
        iso.open_scope()
        big = iso.make_persistent(iso.new_object(nfields=5000))  # 40 KB > half a 64 KB page
        iso.close_scope()
        assert iso.space_of(big) == "large_object_space"
        young = iso.new_string(b"young")
        iso.set_field(big, 4999, young)
        seven = iso.new_object([7], pretenure=True)
        iso.set_field(big, 0, seven)
        addr = iso.address_of(big)
        iso.testing(force_compaction=True)
        iso.gc()
        assert iso.address_of(big) == addr
        assert iso.space_of(iso.get_field(big, 4999)) == "old_space"
        assert iso.read_payload(iso.get_field(big, 4999)) == b"young"
        assert iso.get_field(iso.get_field(big, 0), 0) == 7
        assert verifier.problems(iso.h) == ""
        total = iso.memory_usage()["heapTotal"]
        iso.drop(big)
        iso.gc()
        assert iso.memory_usage()["heapTotal"] <= total - PAGE
        assert iso.memory_usage()["heapUsed"] == _bytes(iso, [young, seven])


def test_backing_stores_of_old_array_buffers_are_freed_by_a_mark_compact(v8):
    iso_id = v8.create_isolate(semi_space_size=2 * PAGE, max_old_space_size=32 * PAGE)
    with v8.enter(iso_id) as iso:
        iso.open_scope()
        buffers = [iso.make_persistent(iso.new_array_buffer(1000 * (k + 1))) for k in range(4)]
        iso.close_scope()
        iso.write_backing(buffers[0], 0, b"kept")
        iso.gc()  # all promoted: their extensions are old now
        assert {iso.space_of(b) for b in buffers} == {"old_space"}
        for b in buffers[1:]:
            iso.drop(b)
        iso.gc(minor=True)  # a scavenge sweeps only young extensions
        assert iso.memory_usage()["external"] == 10000
        iso.gc()
        assert iso.memory_usage()["external"] == iso.memory_usage()["arrayBuffers"] == 1000
        assert iso.read_backing(buffers[0], 0, 4) == b"kept"
        assert verifier.problems(iso.h) == ""


def test_young_survivors_stay_young_when_old_space_is_full(v8):
    iso_id = v8.create_isolate(semi_space_size=2 * PAGE, max_old_space_size=4 * PAGE, growing_factor=4.0)
    with v8.enter(iso_id) as iso:
        old = []
        with pytest.raises(ResourceExhausted):
            for k in range(10000):
                old.append(iso.new_object([k] * 62, pretenure=True))  # 512 B each, all kept
        # 90 KB of young survivors: more than old space's slack (a page) can take
        young = [iso.new_object([k, old[k % len(old)]], payload=b"y" * 100) for k in range(700)]
        iso.gc()
        assert verifier.problems(iso.h) == ""
        assert "new_space" in {iso.space_of(y) for y in young}
        for k, y in enumerate(young):
            assert iso.get_field(y, 0) == k and iso.same(iso.get_field(y, 1), old[k % len(old)])
            assert iso.read_payload(y) == b"y" * 100
        assert iso.memory_usage()["heapUsed"] == _bytes(iso, old + young)


def test_out_of_memory_names_the_limit_and_the_isolate_goes_on(v8):
    iso_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=8 * PAGE)
    with v8.enter(iso_id) as iso:
        iso.open_scope()
        with pytest.raises(ResourceExhausted, match="JavaScript heap out of memory") as e:
            for k in range(100000):
                iso.new_object([k] * 100, pretenure=True)
        assert "max_old_space_size=0.5 MB" in str(e.value)
        iso.close_scope()
        h = iso.new_object([1, 2, 3], pretenure=True)
        assert iso.get_field(h, 2) == 3
        assert verifier.problems(iso.h) == ""
        iso.gc()
        assert iso.memory_usage()["heapUsed"] == _bytes(iso, [h])


def test_old_space_growth_past_the_limit_starts_a_mark_compact(v8):
    iso_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=32 * PAGE, growing_factor=1.5)
    with v8.enter(iso_id) as iso:
        epoch = int(iso.h.a.iso_epoch[iso_id])
        keep = iso.make_persistent(iso.new_object([1], pretenure=True))
        iso.open_scope()
        for k in range(3000):  # 1.5 MB of garbage through a 2 MB old space: only collections make room
            iso.new_object([k] * 60, pretenure=True)
            if k % 100 == 99:
                iso.close_scope()
                iso.open_scope()
        iso.close_scope()
        assert int(iso.h.a.iso_epoch[iso_id]) > epoch
        events = iso.trace()
        assert events and all(e.kind == "Mark-Compact" and e.reason == "allocation limit" for e in events)
        assert "Mark-Compact" in events[0].line and "allocation limit" in events[0].line
        assert iso.memory_usage()["heapTotal"] <= 2 * PAGE + 32 * PAGE
        assert verifier.problems(iso.h) == ""
        assert iso.get_field(keep, 0) == 1


def test_marks_are_clear_after_a_collection(v8):
    iso_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=16 * PAGE)
    with v8.enter(iso_id) as iso:
        h = iso.new_object([1], pretenure=True)
        iso.gc()
        assert not marking.is_marked(iso.h, iso.address_of(h))
        assert not iso.h.a.v8_markbits[marking.frame_rows(iso.h)].any()
        assert not iso.h.a.pg_live[iso_id].any()


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("minor", [False, True])
def test_random_graphs_survive_mark_compacts_as_the_model_says(v8, seed, minor):
    """A plain model of the graph (fields and payloads by model id) against the heap, after every
    Mark-Compact (forced compaction on every other one; with `minor`, a one-page semispace that
    scavenges on allocation failure and a scavenge before each round's end): every object reachable
    from the globals reads back as the model says, with the same identities, and heapUsed is
    exactly their bytes. The verifier runs after every collection."""
    rng = random.Random(seed)
    iso_id = v8.create_isolate(semi_space_size=PAGE if minor else 8 * PAGE, max_old_space_size=64 * PAGE)
    model: dict[int, tuple[list, bytes, int]] = {}  # id -> (fields: int | ("ref", id), payload, size)
    globals_: dict[int, Handle] = {}
    with v8.enter(iso_id) as iso:
        iso.testing(verify_heap=True)
        for rnd in range(12):
            iso.open_scope()
            local: dict[int, Handle] = dict(globals_)
            for _ in range(rng.randrange(250, 500)):
                mid = len(model)
                n = rng.choice((0, 1, 2, 4, 8)) if rng.random() > 0.01 else 4200  # sometimes a large object
                payload = bytes(rng.randrange(256) for _ in range(rng.choice((0, 3, 17, 1000))))
                fields: list = [rng.randrange(-50, 50) for _ in range(n)]
                local[mid] = iso.new_object(fields, payload=payload, pretenure=rng.random() < 0.3)
                model[mid] = (fields, payload, 8 + 8 * n + ((len(payload) + 7) & ~7))
            for _ in range(rng.randrange(250, 500)):
                a = rng.choice(list(local))
                if not model[a][0]:
                    continue
                i = rng.randrange(len(model[a][0]))
                if rng.random() < 0.7:
                    b = rng.choice(list(local))
                    iso.set_field(local[a], i, local[b])
                    model[a][0][i] = ("ref", b)
                else:
                    v = rng.randrange(-(1 << 31), 1 << 31)
                    iso.set_field(local[a], i, v)
                    model[a][0][i] = v
            for mid in rng.sample(list(local), min(len(local), 4)):
                if mid not in globals_:
                    globals_[mid] = iso.make_persistent(local[mid])
            for mid in rng.sample(list(globals_), len(globals_) // 4):
                iso.drop(globals_.pop(mid))
            iso.close_scope()
            iso.testing(force_compaction=rnd % 2 == 1)
            if minor:
                iso.gc(minor=True)
            iso.gc()
            # compare the heap with the model from every global
            iso.open_scope()
            addr_of: dict[int, int] = {}
            live = 0
            stack = [(mid, h) for mid, h in globals_.items()]
            while stack:
                mid, h = stack.pop()
                addr = iso.address_of(h)
                if mid in addr_of:
                    assert addr_of[mid] == addr
                    continue
                assert addr not in addr_of.values()
                addr_of[mid] = addr
                fields, payload, size = model[mid]
                live += size
                assert iso.nfields(h) == len(fields) and iso.read_payload(h) == payload
                for i, f in enumerate(fields):
                    v = iso.get_field(h, i)
                    if isinstance(f, tuple):
                        assert isinstance(v, Handle)
                        stack.append((f[1], v))
                    else:
                        assert v == f
            iso.close_scope()
            assert iso.memory_usage()["heapUsed"] == live
        if minor:  # some scavenges ran on allocation failure, inside a round
            assert any(e.kind == "Scavenge" and e.reason == "allocation failure" for e in iso.trace())


def test_a_marking_worklist_that_overflows_is_refilled_from_the_grey_objects(v8, monkeypatch):
    publish = Worklist.publish
    dropped = []

    def full_pool(self, task, lst):  # the marking pool never takes a segment: every full one is dropped
        if self.seg.shape[0] != NSEG_MARKING:
            return publish(self, task, lst)
        dropped.append(int(self.meta[self.locals[task, lst, L_PUSH], M_FILL]))
        self.meta[self.locals[task, lst, L_PUSH], M_FILL] = 0
        return False

    monkeypatch.setattr(Worklist, "publish", full_pool)
    iso_id = v8.create_isolate(semi_space_size=4 * PAGE, max_old_space_size=32 * PAGE)
    with v8.enter(iso_id) as iso:
        wide = iso.new_object([iso.new_string(bytes([k])) for k in range(40)] + [build_tree(iso, 5, 4)])
        iso.new_object(nfields=4500, pretenure=True)  # a large object among the roots
        live, dump = reachable(iso, [wide])
        iso.gc()
        assert reachable(iso, [wide]) == (live, dump)
        assert verifier.problems(iso.h) == ""
        assert sum(dropped) > 0  # the rescan (marking._rescan) found what the pool dropped


def test_candidates_follow_v8s_evacuation_heuristics(v8):
    iso_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=32 * PAGE)
    with v8.enter(iso_id) as iso:
        h = iso.h
        for _ in range(6):  # six old pages
            iso.open_scope()
            for _ in range(8):
                iso.new_object(nfields=1000, pretenure=True)
            iso.close_scope()
        slots = [int(s) for s in old_space.pages(h)]
        assert len(slots) == 6
        area = PAGE - 64
        pg_live = h.a.pg_live[iso_id]
        for s, live in zip(slots, (area, area // 10, 0, area // 4, area // 2, area // 5), strict=True):
            pg_live[s] = live
        # >= 70 % free, fewest live bytes first; the empty page is the sweeper's
        assert mark_compact.select_candidates(h, force=False) == [slots[1], slots[5], slots[3]]
        # forced: every page with live objects that is not full
        assert mark_compact.select_candidates(h, force=True) == [slots[1], slots[5], slots[3], slots[4]]
        pg_live[slots[3]] = pg_live[slots[5]] = area  # one 10 %-live page alone would free no page
        assert mark_compact.select_candidates(h, force=False) == []
        pg_live[:] = 0


def test_compaction_stops_cleanly_when_the_machines_pin_limit_is_reached(v8):
    """Another isolate holds nearly all the frames the machine lets be pinned: the evacuation gets
    one new page, then stops; nothing is lost and the isolate stays usable."""
    a_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=16 * PAGE)
    b_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=64 * PAGE)
    with v8.enter(a_id) as a:
        kept = fragment(a, 1200, 2)
        a.gc()
    with v8.enter(b_id) as b:
        big = []
        b.open_scope()
        with pytest.raises(ResourceExhausted, match="VM frame pool"):
            for _ in range(64):
                big.append(b.make_persistent(b.new_object(nfields=5000)))  # a page of pins each
        b.close_scope()
        b.drop(big[-1])
        b.gc()  # one page of pins free again
    with v8.enter(a_id) as a:
        addrs = [a.address_of(g) for g in kept]
        a.testing(force_compaction=True, verify_heap=True)
        a.gc()
        moved = sum(a.address_of(g) != x for g, x in zip(kept, addrs, strict=True))
        assert 0 < moved < len(kept)
        check_chain(a, kept, 2)
        assert a.memory_usage()["heapUsed"] == _bytes(a, kept)


def test_promotion_past_the_limit_starts_a_mark_compact(v8):
    """Young objects that live on are promoted by scavenges; once the old generation passes its
    limit that way, a Mark-Compact follows the scavenge (reason "allocation limit")."""
    iso_id = v8.create_isolate(semi_space_size=4 * PAGE, max_old_space_size=32 * PAGE, growing_factor=1.5)
    with v8.enter(iso_id) as iso:
        iso.testing(verify_heap=True)
        head = iso.make_persistent(iso.new_object([-1]))
        for k in range(5000):  # a chain of 1.1 MB, all alive: the limit starts at half of 2 MB
            iso.open_scope()
            iso.new_object([k], payload=b"g" * 600)  # and garbage, so that scavenges make room
            node = iso.new_object([head, k], payload=b"x" * 200)
            iso.drop(head)
            head = iso.make_persistent(node)
            iso.close_scope()
        events = iso.trace()
        assert any(e.kind == "Scavenge" for e in events)
        assert any(e.kind == "Mark-Compact" and e.reason == "allocation limit" for e in events)
        iso.open_scope()
        h, k = head, 4999
        while k >= 0:
            assert iso.get_field(h, 1) == k
            h, k = iso.get_field(h, 0), k - 1
        assert iso.get_field(h, 0) == -1
        iso.close_scope()
