"""The GC bench's workloads (tools/gcloads.py, tools/splay.py) run against a plain Python object graph
that enforces V8's handle rules: a handle is usable only while its scope is open (or, for a global,
until it is dropped), so a workload that kept a handle past its message fails here. The graph then
says what the heap would hold: Splay's tree has exactly the keys and shape the client noted,
GCBench's long-lived data survives its passes, the handler's cache stays at its size. The same
programs then run on the real heap (sim/v8's Isolate, in process) and read back what they built."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from memsim.sim.system import Machine, MachineConfig
from memsim.sim.v8 import Handle, Isolate
from memsim.tools import gcloads
from memsim.tools.gcloads import GcBench, GcBenchShape, Handler, Held, Msg, Ref, Result, Send, Value
from memsim.tools.splay import KEY, LEFT, RIGHT, ROOT, VALUE, HeapSplayTree, Splay

MiB = 1 << 20


@dataclass
class Obj:
    fields: list[int | Obj]
    payload: bytes = b""


@dataclass
class Graph:
    """Objects, handle scopes and globals: the isolate's rules without its memory."""

    handles: dict[int, Obj] = field(default_factory=dict)
    scopes: list[list[int]] = field(default_factory=lambda: [[]])
    globals: set[int] = field(default_factory=set)
    next_id: int = 1
    ops: int = 0

    def handle(self, o: Obj, persistent: bool = False) -> Held:
        h, self.next_id = self.next_id, self.next_id + 1
        self.handles[h] = o
        (self.globals.add(h) if persistent else self.scopes[-1].append(h))
        return Held(h)

    def obj(self, v: Value, res: list[Result]) -> Obj:
        h = res[v.index] if isinstance(v, Ref) else v
        assert isinstance(h, Held), f"not a handle: {v!r}"
        assert h.id in self.handles, f"handle {h.id} is dead (its scope closed, or it was dropped)"
        return self.handles[h.id]

    def value(self, v: Value, res: list[Result]) -> int | Obj:
        return v if isinstance(v, int) else self.obj(v, res)

    def send(self, m: Msg) -> list[Result]:
        res: list[Result] = []
        for op in m.ops:
            self.ops += 1
            out: Result = None
            if op.code == "new_object":
                fs = [self.value(v, res) for v in op.fields] + [0] * (op.nfields - len(op.fields))
                out = self.handle(Obj(fs, op.data))
            elif op.code == "new_string":
                out = self.handle(Obj([], op.data))
            elif op.code == "new_array_buffer":
                out = self.handle(Obj([], bytes(op.b)))
            elif op.code == "set_field":
                self.obj(op.a, res).fields[op.b] = self.value(op.c, res)
            elif op.code == "get_field":
                v = self.obj(op.a, res).fields[op.b]
                out = v if isinstance(v, int) else self.handle(v)
            elif op.code == "read_payload":
                out = self.obj(op.a, res).payload[op.b:op.b + op.nfields]
            elif op.code == "open_scope":
                self.scopes.append([])
                out = len(self.scopes)
            elif op.code == "close_scope":
                escaped = None if op.a == 0 else self.obj(op.a, res)
                assert len(self.scopes) > 1, "closing the root scope"
                for h in self.scopes.pop():
                    del self.handles[h]
                out = None if escaped is None else self.handle(escaped)
            elif op.code == "make_persistent":
                out = self.handle(self.obj(op.a, res), persistent=True)
            elif op.code == "drop":
                assert isinstance(op.a, Held) and op.a.id in self.globals
                self.globals.discard(op.a.id)
                del self.handles[op.a.id]
            else:
                raise AssertionError(op.code)
            res.append(out)
        return res

    def reachable(self) -> int:
        seen: set[int] = set()
        stack = list(self.handles.values())
        while stack:
            o = stack.pop()
            if id(o) not in seen:
                seen.add(id(o))
                stack += [f for f in o.fields if isinstance(f, Obj)]
        return len(seen)


def drive(program, steps: int) -> int:
    n = 0
    for _ in program:
        n += 1
        if n >= steps:
            break
    return n


def test_gcbench_shape_scales_boehms_numbers():
    full = GcBenchShape.scaled(1.0)
    assert (full.stretch_depth, full.long_lived_depth, full.array_size, full.max_depth) == (18, 16, 500_000, 16)
    assert full.num_iters(4) == 2 * (2**19 - 1) // 31
    small = GcBenchShape.scaled(1 / 16)
    assert (small.stretch_depth, small.long_lived_depth, small.max_depth, small.array_size) == (14, 12, 12, 31250)


@pytest.mark.parametrize("depth", [3, 10, 11])  # one message, and subtrees joined across messages
def test_gcbench_builds_whole_trees_both_ways(depth):
    g = Graph()
    bench = GcBench(g.send, GcBenchShape.scaled(1 / 256))

    def count(o: Obj) -> int:
        return 1 + sum(count(f) for f in o.fields[:2] if isinstance(f, Obj))

    gen = bench.make_tree(depth)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        root = stop.value
    assert count(g.handles[root.id]) == gcloads.tree_size(depth)
    top = g.send(_msg(lambda m: m.new_object(nfields=4)))[0]
    assert isinstance(top, Held)
    list(bench.populate(depth, top))
    assert count(g.handles[top.id]) == gcloads.tree_size(depth)
    assert len(g.scopes) == 1


def _msg(build) -> Msg:
    m = Msg()
    build(m)
    return m


def test_gcbench_passes_keep_only_the_long_lived_data():
    g = Graph()
    bench = GcBench(g.send, GcBenchShape.scaled(1 / 512))
    run = bench.run()
    while bench.passes < 2:
        next(run)
    assert len(g.scopes) == 1 and len(g.globals) == 2  # one pass's tree and array
    array = next(g.handles[h] for h in g.globals if g.handles[h].payload)
    assert array.payload[8000:8008] == struct.pack("<d", 1 / 1000)
    assert len(array.payload) == 8 * bench.shape.array_size
    assert g.reachable() == gcloads.tree_size(bench.shape.long_lived_depth) + 1
    assert bench.trees > 0


def heap_keys(g: Graph, t: HeapSplayTree) -> list[tuple[int, int]]:
    """The heap's tree in order, each key with its depth (so the shape is compared too)."""
    out: list[tuple[int, int]] = []

    def walk(o: int | Obj, depth: int) -> None:
        if isinstance(o, Obj):
            walk(o.fields[LEFT], depth + 1)
            key = o.fields[KEY]
            assert isinstance(key, int)
            out.append((key, depth))
            walk(o.fields[RIGHT], depth + 1)

    walk(g.handles[t.tree.id].fields[ROOT], 0)
    return out


def mirror_keys(t: HeapSplayTree) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []

    def walk(n, depth: int) -> None:
        if n is not None:
            walk(n.left, depth + 1)
            out.append((n.key, depth))
            walk(n.right, depth + 1)

    walk(t.root, 0)
    return out


def test_splay_tree_in_the_heap_matches_the_clients_notes():
    g = Graph()
    sp = Splay(g.send, scale=1 / 100, seed=3)  # 80 nodes
    list(sp.setup())
    assert sp.tree is not None and len(sp.tree.keys()) == 80 == len(sp.keys)
    assert heap_keys(g, sp.tree) == mirror_keys(sp.tree)
    assert sp.tree.keys() == sorted(sp.keys)
    run = sp.run()
    while sp.runs < 3:
        next(run)
    assert heap_keys(g, sp.tree) == mirror_keys(sp.tree)
    assert sp.tree.keys() == sorted(sp.keys) and len(sp.keys) == 80
    assert max(d for _, d in mirror_keys(sp.tree)) < 80  # splaying keeps it from a list's depth
    assert len(sp.samples) == 3 and all(ms > 0 for _, ms in sp.samples)
    assert len(g.scopes) == 1 and len(g.globals) == 1
    # each node holds its payload: a depth-5 tree whose 32 leaves hold an array and a string
    node = g.handles[sp.tree.tree.id].fields[ROOT]
    assert isinstance(node, Obj)
    leaf = node.fields[VALUE]
    for _ in range(5):
        assert isinstance(leaf, Obj) and len(leaf.fields) == 2
        leaf = leaf.fields[0]
    assert isinstance(leaf, Obj) and len(leaf.fields) == 2
    array, string = leaf.fields
    assert isinstance(array, Obj) and array.fields == list(range(10))
    assert isinstance(string, Obj) and string.payload.startswith(b"String for key ")
    assert g.reachable() == 1 + 80 * (1 + 31 + 32 * 3)


def test_handler_keeps_a_bounded_cache():
    g = Graph()
    h = Handler(g.send, scale=1 / 512, seed=1)  # 8 cache entries
    drive(h.run(), 100)
    assert h.requests == 2000 and h.cached > 8
    assert len(h.cache) <= h.cache_entries + gcloads.REQUESTS_PER_MESSAGE
    assert len(g.globals) == len(h.cache) and len(g.scopes) == 1
    assert 40 <= g.ops / h.requests <= 60  # about 50 objects a request


# -- the same workloads on the real heap, in process (sim/v8's Isolate, no server) -------------------------

@contextmanager
def real_isolate(semi: int) -> Iterator[Isolate]:
    """An isolate on a machine of its own, entered (its locker held) for the whole block."""
    m = Machine.create(MachineConfig(memory_bytes=128 * MiB, vm_memory=64 * MiB, v8_isolates=1))
    try:
        v8 = m.v8(0, m.heap(0))
        iso_id = v8.create_isolate(semi_space_size=semi, max_old_space_size=8 * MiB)
        with v8.enter(iso_id) as iso:
            yield iso
    finally:
        m.destroy()


# 4 MiB semi-spaces hold these small runs without a GC; one page (256 KiB) makes them run through
# scavenges, so what they read back at the end has been moved and promoted.
SEMI_SPACES = pytest.mark.parametrize("semi", [4 * MiB, 256 << 10], ids=["no-gc", "scavenges"])


def scavenges(iso: Isolate) -> int:
    return sum(1 for e in iso.trace() if e.kind == "Scavenge")


def on_isolate(iso: Isolate) -> Send:
    """A message's ops, one call each, on the sim's Isolate: the ops the V8 batch stream runs."""
    def send(m: Msg) -> list[Result]:
        res: list[Result] = []

        def val(v: Value) -> int | Handle:
            r = res[v.index] if isinstance(v, Ref) else v
            if isinstance(r, Held):
                return Handle(r.id)
            assert isinstance(r, int), r
            return r

        def obj(v: Value) -> Handle:
            h = val(v)
            assert isinstance(h, Handle)
            return h

        for op in m.ops:
            out: int | Handle | bytes | None = None
            if op.code == "new_object":
                out = iso.new_object([val(f) for f in op.fields], payload=op.data, nfields=op.nfields)
            elif op.code == "new_string":
                out = iso.new_string(op.data)
            elif op.code == "new_array_buffer":
                out = iso.new_array_buffer(op.b)
            elif op.code == "set_field":
                iso.set_field(obj(op.a), op.b, val(op.c))
            elif op.code == "get_field":
                out = iso.get_field(obj(op.a), op.b)
            elif op.code == "read_payload":
                out = iso.read_payload(obj(op.a), op.b, op.nfields)
            elif op.code == "open_scope":
                out = iso.open_scope()
            elif op.code == "close_scope":
                out = iso.close_scope(None if op.a == 0 else obj(op.a))
            elif op.code == "make_persistent":
                out = iso.make_persistent(obj(op.a))
            elif op.code == "drop":
                iso.drop(obj(op.a))
            res.append(Held(out.id) if isinstance(out, Handle) else out)
        return res
    return send


@SEMI_SPACES
def test_splay_on_the_real_heap(semi):
    with real_isolate(semi) as isolate:
        splay_on(isolate, semi)


def splay_on(isolate: Isolate, semi: int) -> None:
    sp = Splay(on_isolate(isolate), scale=1 / 100, seed=5)
    list(sp.setup())
    run = sp.run()
    while sp.runs < 2:
        next(run)
    assert sp.tree is not None
    isolate.open_scope()
    got: list[tuple[int, int]] = []

    def walk(h: int | Handle, depth: int) -> None:
        if isinstance(h, Handle):
            walk(isolate.get_field(h, LEFT), depth + 1)
            key = isolate.get_field(h, KEY)
            assert isinstance(key, int)
            got.append((key, depth))
            walk(isolate.get_field(h, RIGHT), depth + 1)

    walk(isolate.get_field(Handle(sp.tree.tree.id), ROOT), 0)
    isolate.close_scope()
    assert got == mirror_keys(sp.tree) and len(got) == 80
    assert (scavenges(isolate) > 0) == (semi < MiB)


@SEMI_SPACES
def test_gcbench_and_handler_on_the_real_heap(semi):
    with real_isolate(semi) as isolate:
        gcbench_and_handler_on(isolate, semi)


def gcbench_and_handler_on(isolate: Isolate, semi: int) -> None:
    bench = GcBench(on_isolate(isolate), GcBenchShape.scaled(1 / 1024))
    run = bench.run()
    while bench.passes < 1:  # its last step reads array[1000] and the long-lived tree back
        next(run)
    h = Handler(on_isolate(isolate), scale=1 / 512, seed=2)
    drive(h.run(), 10)
    assert h.requests == 200 and isolate.memory_usage()["external"] > 0  # the bodies' backing stores
    assert (scavenges(isolate) > 0) == (semi < MiB)
