"""The test's side of the oracle: drive a real isolate and the model together, and compare them.

What it owns: the oid <-> Handle map (kept by hand, as PyPy's direct GC tests keep `stackroots`),
the handles of every open scope and every global, the handles that died (closed scopes, dropped
globals), and the last GC sequence number read from the isolate's trace ring. It touches the
isolate only through the API of V8API.md (new_*, set/get_field, payloads, scopes, globals, gc,
trace, memory_usage, space_of, same) and the machine's VM only for the space's own usage.

Invariant: after every call through a Mirror the model has replayed exactly the GCs the isolate ran
(read back from `iso.trace`, so a scavenge on "allocation failure" inside new_object is modelled
before the object it made room for), and every live handle maps to the oid of its object.

`check_graph` follows the whole reachable graph through the API, from the root handles: every
object's kind, field count, fields (Smis by value, references by identity with `iso.same`),
payload, ArrayBuffer backing store and space must be the model's. `check_figures` compares
memory_usage with the model's exact figures.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from memsim.sim.system import Machine, MachineConfig
from memsim.sim.v8 import V8, Handle, Isolate
from memsim.sim.vm.vm import VM
from tests.sim.v8.oracle import ARRAY_BUFFER, NEW_SPACE, Oracle, Ref, Value

KiB, MiB = 1 << 10, 1 << 20
PAGE = 64 * KiB  # the tests' V8 page: small, so that a few objects fill new space


def machine_config(cores: int = 1) -> MachineConfig:
    """A machine small enough for many hypothesis examples, with a VM pool for the heaps' pages."""
    return MachineConfig(memory_bytes=32 * MiB, vm_memory=16 * MiB, cores=cores, v8_page_size=PAGE)


@contextlib.contextmanager
def small_machine(cores: int = 1) -> Iterator[Machine]:
    m = Machine.create(machine_config(cores))
    try:
        yield m
    finally:
        m.destroy()


_views: weakref.WeakKeyDictionary[Machine, dict[int, V8]] = weakref.WeakKeyDictionary()


def v8_of(m: Machine, core: int) -> V8:
    """The core's V8 view, made once per machine and core (with the core's allocator, which holds
    the backing stores), as a core's process makes it once."""
    per_core = _views.setdefault(m, {})
    if core not in per_core:
        per_core[core] = m.v8(core, m.heap(core))
    return per_core[core]


def isolate_space(m: Machine, core: int, iso_id: int) -> int:
    """The sim/vm space the isolate lives in (IsolateInfo.space)."""
    rows = [info for info in v8_of(m, core).list_isolates() if info.id == iso_id]
    assert len(rows) == 1, f"isolate {iso_id} is listed {len(rows)} times"
    return rows[0].space


class OracleMismatch(AssertionError):
    """The isolate disagrees with the model: the one failure the barrier-off test expects."""


def expect(ok: bool, message: str) -> None:
    if not ok:
        raise OracleMismatch(message)


@dataclass
class Traced:
    """One GC the isolate ran, with what the model says it reclaimed."""
    seq: int
    kind: str
    reason: str
    live_before: int
    live_after: int
    died_bytes: int
    freed_backing: int


class Mirror:
    """A real isolate (used inside its `enter`) and its model, driven in lockstep. `handle_type` is the
    class of the isolate's handles: the sim's here, the client's for an isolate over the wire
    (tests/server/test_v8_wire_properties.py drives a server's isolate through this class)."""

    handle_type: type = Handle

    def __init__(self, iso: Isolate, vm: VM, space: int, page_size: int = PAGE, semi_space_size: int = PAGE):
        self.iso = iso
        self.vm = vm
        self.space = space
        self.model = Oracle(page_size, semi_space_size)
        self.scopes: list[list[Handle]] = [[]]
        self.globals: dict[Handle, int] = {}  # global handle -> the model's gid
        self.oid_of: dict[Handle, int] = {}
        self.stale: list[Handle] = []
        self.last_seq = max((ev.seq for ev in iso.trace(after_seq=0)), default=0)
        self.gcs: list[Traced] = []
        # Floating garbage (incremental marking): bytes and backing-store bytes the model reclaimed
        # and the isolate still holds, because a cycle marked them before they became unreachable
        # (or allocated them black). They are unreachable for good, so the next Mark-Compact frees them.
        self.floating = 0
        self.floating_ext = 0

    # -- handles -----------------------------------------------------------------------------------

    def locals(self) -> list[Handle]:
        return [h for scope in self.scopes for h in scope]

    def handles(self) -> list[Handle]:
        """Every live handle, locals of every open scope first, then the globals."""
        return self.locals() + list(self.globals)

    def _local(self, h: Handle, oid: int) -> Handle:
        self.scopes[-1].append(h)
        self.oid_of[h] = oid
        return h

    def value(self, v: int | Handle) -> Value:
        return Ref(self.oid_of[v]) if isinstance(v, self.handle_type) else v

    # -- GCs: replay what the isolate ran --------------------------------------------------------

    def sync(self, made_external: int = 0) -> list[Traced]:
        """Replay in the model every GC the isolate ran since the last call, oldest first.
        `made_external`: backing-store bytes the call just made that the model does not hold yet (an
        ArrayBuffer's store is allocated after its object, so after any GC the allocation ran).

        Each GC's fall of heapUsed must be exactly what the model says died, and the number of
        objects it promoted (the tracer's nodes_promoted) what the model promoted, with one
        exception the model cannot foresee: a GC that finds old space full copies the survivors it
        would have promoted within new space instead (V8's Scavenger::EvacuateObjectDefault falls
        back from PromoteObject to SemiSpaceCopyObject; a Mark-Compact evacuates into to-space);
        they are then below the age mark. The promotions the isolate did not do are found by
        reading the survivors' spaces back, and their number must match the counters exactly."""
        out = []
        shortfall = 0  # promotions the model did and the isolate did not
        maybe_young: set[int] = set()  # objects a GC promoted in the model
        loose = False  # an incremental Mark-Compact promoted floating young garbage too: counts are not exact
        ext_bound: int | None = None  # after an incremental Mark-Compact: the most floating_ext may be
        for ev in self.iso.trace(after_seq=self.last_seq):
            assert ev.seq > self.last_seq
            self.last_seq = ev.seq
            r = self.model.gc(ev.kind)
            fell = ev.live_before - ev.live_after
            what = f"{ev.kind} ({ev.reason}): heapUsed fell {ev.live_before} -> {ev.live_after}, by {fell} bytes"
            if ev.kind == "Mark-Compact" and ev.incremental_walltime_ms > 0:  # it ended an incremental cycle
                garbage = r.died_bytes + self.floating
                expect(self.floating <= fell <= garbage, f"{what}; the garbage is {garbage} bytes, of which "
                                                         f"{self.floating} floated from the last cycle")
                self.floating = garbage - fell
                ext_bound = self.floating_ext + r.freed_backing
                loose |= len(r.promoted) != ev.nodes_promoted
            else:
                died = r.died_bytes + (self.floating if ev.kind == "Mark-Compact" else 0)
                expect(fell == died, f"{what}; what died is {died} bytes")
                if ev.kind == "Mark-Compact":
                    self.floating, ext_bound = 0, 0
                shortfall += len(r.promoted) - ev.nodes_promoted
            maybe_young |= r.promoted
            out.append(Traced(ev.seq, ev.kind, ev.reason, ev.live_before, ev.live_after, r.died_bytes, r.freed_backing))
        self.gcs.extend(out)
        if ext_bound is not None:
            self.floating_ext = self.iso.memory_usage()["external"] - made_external - self.model.external_bytes()
            expect(0 <= self.floating_ext <= ext_bound, f"external holds {self.floating_ext} bytes the model "
                                                        f"reclaimed; at most {ext_bound} may float")
        if shortfall and not loose:
            expect(shortfall > 0, f"the isolate promoted {-shortfall} objects more than the model "
                                  f"(nodes_promoted) in {[t.kind for t in out]}")
            left = self._adopt_young(maybe_young)
            expect(left == shortfall, f"nodes_promoted says {shortfall} survivors stayed young; {left} did")
        elif loose:
            self._adopt_young(maybe_young)
        return out

    def _adopt_young(self, candidates: set[int]) -> int:
        """Read back which of `candidates` (promoted in the model) the isolate kept in new space, and
        make the model agree: they survived once, so the next scavenge promotes them."""
        left: list[int] = []

        def adopt(oid: int, h: Handle) -> None:
            if oid in candidates and self.iso.space_of(h) == NEW_SPACE:
                obj = self.model.objects[oid]
                obj.space, obj.age = NEW_SPACE, 1
                left.append(oid)

        self.walk(adopt)
        return len(left)

    def gc(self, minor: bool = False) -> Traced:
        """`gc()`; a scavenge whose promotions pass the old generation's limit may be followed by a
        Mark-Compact in the same call (reason "allocation limit"): both are replayed. A minor GC that old
        space could not take every survivor of is a Mark-Compact (Heap::SelectGarbageCollector)."""
        ev = self.iso.gc(minor=minor)
        promoted_all = ev.kind == "Scavenge" or ev.collector_reason != "scavenge might not succeed"
        assert ev.kind == ("Scavenge" if minor and promoted_all else "Mark-Compact") and ev.reason == "testing", ev
        done = {t.seq: t for t in self.sync()}
        assert ev.seq in done, f"the trace ring lacks the GC just run (seq {ev.seq})"
        return done[ev.seq]

    def last_gc_was_full(self) -> bool:
        return bool(self.gcs) and self.gcs[-1].kind == "Mark-Compact"

    # -- the mutator ---------------------------------------------------------------------------------

    def new_object(self, fields: Sequence[int | Handle] = (), payload: bytes = b"", nfields: int | None = None,
                   pretenure: bool = False) -> Handle:
        values = [self.value(v) for v in fields]
        h = self.iso.new_object(fields=list(fields), payload=payload, nfields=nfields, pretenure=pretenure)
        self.sync()
        return self._local(h, self.model.new_object(values, payload, nfields, pretenure))

    def new_string(self, data: bytes, pretenure: bool = False) -> Handle:
        h = self.iso.new_string(data, pretenure=pretenure)
        self.sync()
        return self._local(h, self.model.new_string(data, pretenure))

    def new_array_buffer(self, byte_length: int) -> Handle:
        h = self.iso.new_array_buffer(byte_length)
        self.sync(made_external=byte_length)
        return self._local(h, self.model.new_array_buffer(byte_length))

    def set_field(self, h: Handle, i: int, v: int | Handle) -> None:
        self.iso.set_field(h, i, v)
        self.model.set_field(self.oid_of[h], i, self.value(v))

    def get_field(self, h: Handle, i: int) -> int | Handle:
        v = self.iso.get_field(h, i)
        mv = self.model.get_field(self.oid_of[h], i)
        if isinstance(mv, Ref):
            expect(isinstance(v, self.handle_type), f"field {i} should hold a reference, holds {v!r}")
            assert isinstance(v, self.handle_type)
            return self._local(v, mv.oid)
        expect(v == mv, f"field {i} holds {v!r}, the model says {mv!r}")
        return v

    def write_payload(self, h: Handle, offset: int, data: bytes) -> None:
        self.iso.write_payload(h, offset, data)
        self.model.write_payload(self.oid_of[h], offset, data)

    def write_backing(self, h: Handle, offset: int, data: bytes) -> None:
        self.iso.write_backing(h, offset, data)
        self.model.write_backing(self.oid_of[h], offset, data)

    def open_scope(self) -> None:
        self.iso.open_scope()
        self.model.open_scope()
        self.scopes.append([])

    def close_scope(self, escape: Handle | None = None) -> Handle | None:
        escaped_oid = None if escape is None else self.oid_of[escape]
        r = self.iso.close_scope(escape=escape)
        self.model.close_scope(escaped_oid)
        for h in self.scopes.pop():
            self.stale.append(h)
            del self.oid_of[h]
        if escaped_oid is None:
            assert r is None
            return None
        assert isinstance(r, self.handle_type)
        return self._local(r, escaped_oid)

    def make_persistent(self, h: Handle) -> Handle:
        oid = self.oid_of[h]
        g = self.iso.make_persistent(h)
        self.globals[g] = self.model.make_persistent(oid)
        self.oid_of[g] = oid
        return g

    def drop(self, g: Handle) -> None:
        self.iso.drop(g)
        self.model.drop(self.globals.pop(g))
        del self.oid_of[g]
        self.stale.append(g)

    # -- checks ------------------------------------------------------------------------------------

    def check_object(self, h: Handle, oid: int) -> None:
        obj = self.model.objects[oid]
        iso = self.iso
        what = f"oid {oid} ({obj.kind}, age {obj.age}, the model's {obj.space})"
        kind, space = iso.type_of(h), iso.space_of(h)
        expect(kind == obj.kind, f"{what}: the isolate's type is {kind}")
        expect(space == obj.space, f"{what}: the isolate has it in {space}")
        if obj.kind == ARRAY_BUFFER:
            n = iso.byte_length(h)
            expect(n == len(obj.backing), f"{what}: byte_length {n}, the model's {len(obj.backing)}")
            expect(iso.read_backing(h) == bytes(obj.backing), f"{what}: its backing store's bytes differ")
            return
        n, plen = iso.nfields(h), iso.payload_len(h)
        expect(n == len(obj.fields), f"{what}: {n} fields, the model's {len(obj.fields)}")
        expect(plen == len(obj.payload), f"{what}: payload of {plen} bytes, the model's {len(obj.payload)}")
        expect(iso.read_payload(h) == bytes(obj.payload), f"{what}: its payload's bytes differ")

    def walk(self, visit: Callable[[int, Handle], None] | None = None, check: bool = False) -> int:
        """Reach every reachable object by following the model's references through the API from
        the root handles, calling `visit(oid, handle)` on each; with `check`, every object and field
        is compared with the model on the way. The handles it makes live in a scope it closes, so
        the caller's handles are left as they were. Returns how many objects it reached."""
        iso = self.iso
        iso.open_scope()
        try:
            handle_of: dict[int, Handle] = {}
            stack: list[int] = []
            for h in self.handles():
                oid = self.oid_of[h]
                if oid in handle_of:
                    expect(iso.same(h, handle_of[oid]), f"two handles of oid {oid} are not the same object")
                else:
                    handle_of[oid] = h
                    stack.append(oid)
            while stack:
                oid = stack.pop()
                h = handle_of[oid]
                if check:
                    self.check_object(h, oid)
                if visit is not None:
                    visit(oid, h)
                for i, f in enumerate(self.model.objects[oid].fields):
                    if not isinstance(f, Ref) and not check:
                        continue
                    v = iso.get_field(h, i)
                    if not isinstance(f, Ref):
                        expect(v == f, f"oid {oid} field {i} holds {v!r}, the model's Smi {f}")
                        continue
                    expect(isinstance(v, self.handle_type),
                           f"oid {oid} field {i} holds {v!r}, the model's a reference")
                    assert isinstance(v, self.handle_type)
                    if f.oid in handle_of:
                        expect(iso.same(v, handle_of[f.oid]), f"oid {oid} field {i} points at another object")
                    else:
                        handle_of[f.oid] = v
                        stack.append(f.oid)
            return len(handle_of)
        finally:
            iso.close_scope()

    def check_graph(self) -> int:
        """Follow every reachable object through the API and compare it with the model; returns how
        many objects it saw."""
        return self.walk(check=True)

    def check_figures(self) -> None:
        """memory_usage against the model's exact figures, and heapTotal against the VM's count of the
        space's resident heap bytes (the committed pages are exactly the pinned ones)."""
        mu = self.iso.memory_usage()
        used, ext = self.model.heap_bytes(), self.model.external_bytes()
        used, ext = used + self.floating, ext + self.floating_ext
        expect(mu["heapUsed"] == used, f"heapUsed {mu['heapUsed']}, the model's objects not yet reclaimed {used} "
                                       f"({self.floating} floating)")
        expect(mu["external"] == ext, f"external {mu['external']}, the model's backing stores {ext}")
        expect(mu["arrayBuffers"] == ext, f"arrayBuffers {mu['arrayBuffers']}, the model's backing stores {ext}")
        vm_used = self.vm.memory_usage(self.space)["heapUsed"]
        expect(mu["heapTotal"] == vm_used, f"heapTotal {mu['heapTotal']}, the VM's resident heap bytes {vm_used}")

    def check_after_full_gc(self) -> None:
        """After a mark-compact nothing unreachable is left but an incremental cycle's floating garbage:
        heapUsed is the reachable bytes (and the floating ones)."""
        mu = self.iso.memory_usage()
        live = self.model.live_bytes() + self.floating
        ext = self.model.reachable_external_bytes() + self.floating_ext
        expect(mu["heapUsed"] == live, f"heapUsed {mu['heapUsed']} after a full GC, the reachable bytes {live}")
        expect(mu["external"] == ext, f"external {mu['external']} after a full GC, the reachable backing stores {ext}")


@contextlib.contextmanager
def mirrored_isolate(m: Machine, core: int = 0, *, semi_space_size: int = PAGE, max_old_space_size: int = 1 * MiB,
                     growing_factor: float = 1.5, verify_heap: bool = True, **options: int | bool) -> Iterator[Mirror]:
    """A fresh isolate on `core` (`options`: create_isolate's switches), entered, with verify_heap on,
    and its Mirror; destroyed on exit."""
    v8 = v8_of(m, core)
    iso_id = v8.create_isolate(semi_space_size=semi_space_size, max_old_space_size=max_old_space_size,
                               growing_factor=growing_factor, **options)
    try:
        space = isolate_space(m, core, iso_id)
        with v8.enter(iso_id) as iso:
            iso.testing(verify_heap=verify_heap)
            yield Mirror(iso, m.vm(core), space, PAGE, semi_space_size)
    finally:
        v8.destroy_isolate(iso_id)
