"""The managed heap's oracle: a plain Python model of one isolate's object graph.

What it owns: objects as `{oid: Obj(kind, fields, payload, backing, space, age)}`, the handle
scopes as a stack of oid lists (the root scope at the bottom, never closed), and the persistent
(global) handles as `{gid: oid}`. It touches nothing of sim/v8: a test drives the real isolate and
this model side by side and keeps the oid <-> Handle map by hand, as PyPy's direct GC tests keep
their `stackroots` ("the tests need to maintain by hand what the GC should see as the list of
roots", rpython/memory/gc/test/test_direct.py).

Why a generational model and not only a graph: the collector's figures are exact at every moment,
not only after a full GC. heapUsed is V8's SizeOfObjects, the bytes of every object not yet
reclaimed, garbage included, and which garbage a scavenge leaves is fixed by V8's rules:
  * the scavenger's roots are the handles plus every OLD_TO_NEW slot, i.e. each field of an old or
    large object that holds a young reference, whether or not that old object is itself reachable
    (old garbage is found dead only by the next mark-compact; V8 src/heap/scavenger.cc,
    ScavengerCollector::CollectGarbage walks the whole remembered set);
  * a young object that survives its first scavenge is copied within new space (it now lies below
    the age mark) and one that survives its second is promoted to old space (new-spaces.h,
    SemiSpaceNewSpace::ShouldBePromoted = IsAddressBelowAgeMark);
  * a mark-compact reclaims everything unreachable from the handles, in every space, and promotes
    every young survivor, whatever its age (V8's --always_promote_young_mc, on by default since
    V8 9.x; sim/v8/mark_compact.py does the same), leaving new space empty.
Invariants: every Ref in a field names an oid in `objects`; scope and global entries too; the model
never holds an object that a correct collector has reclaimed.

Sizes are design-managed-heap.md section 4's: 8 + 8*nfields + round8(payload_len); a string is a
BYTE_ARRAY of its bytes (no fields); an ArrayBuffer is two fields' worth of body
[byte_length, extension index], 24 bytes, with its bytes in an external backing store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

NEW_SPACE, OLD_SPACE, LO_SPACE = "new_space", "old_space", "large_object_space"
OBJECT, STRING, ARRAY_BUFFER = "object", "string", "array_buffer"
HEADER = 8  # the map word
SMI_MIN, SMI_MAX = -(1 << 31), (1 << 31) - 1


class Ref(NamedTuple):
    """A tagged field that holds a reference: the model's oid of its target."""
    oid: int


Value = int | Ref  # an int is a Smi


def round8(n: int) -> int:
    return (n + 7) & ~7


def object_size(nfields: int, payload_len: int) -> int:
    return HEADER + 8 * nfields + round8(payload_len)


ARRAY_BUFFER_SIZE = object_size(2, 0)  # [byte_length, extension]: 24 bytes


@dataclass
class Obj:
    kind: str
    fields: list[Value]
    payload: bytearray
    backing: bytearray  # an ArrayBuffer's external bytes; empty for the other kinds
    space: str
    age: int = 0  # scavenges survived in new space (0 or 1; the second survival promotes)

    @property
    def size(self) -> int:
        if self.kind == ARRAY_BUFFER:
            return ARRAY_BUFFER_SIZE
        return object_size(len(self.fields), len(self.payload))

    def refs(self) -> Iterable[int]:
        return (f.oid for f in self.fields if isinstance(f, Ref))


@dataclass
class GcResult:
    """What one modelled GC reclaimed and moved."""
    died: set[int] = field(default_factory=set)
    died_bytes: int = 0
    promoted: set[int] = field(default_factory=set)
    freed_backing: int = 0


CHUNK_HEADER = 64  # a page's MemoryChunk header (design-managed-heap.md section 4); the rest is its area


class Oracle:
    """One isolate's heap as a model. `page_size` fixes where large objects start (above page/2,
    V8's kMaxRegularHeapObjectSize); `semi_space_size` the biggest young object: one above half a
    semi-space's area goes to old space instead, since new space could not hold it twice (a
    scavenge copies within new space; sim/v8/heap.py's allocate_raw)."""

    def __init__(self, page_size: int, semi_space_size: int | None = None):
        self.page_size = page_size
        semi = page_size if semi_space_size is None else semi_space_size
        self.young_max = (semi // page_size) * (page_size - CHUNK_HEADER) // 2
        self.objects: dict[int, Obj] = {}
        self.scopes: list[list[int]] = [[]]
        self.globals: dict[int, int] = {}
        self._next_oid = 1
        self._next_gid = 1

    # -- the mutator ---------------------------------------------------------------------------

    def _space_for(self, size: int, pretenure: bool) -> str:
        if size > self.page_size // 2:
            return LO_SPACE
        return OLD_SPACE if pretenure or size > self.young_max else NEW_SPACE

    def _add(self, obj: Obj) -> int:
        for oid in obj.refs():
            assert oid in self.objects, f"a field names oid {oid}, which the model does not hold"
        oid = self._next_oid
        self._next_oid += 1
        self.objects[oid] = obj
        self.scopes[-1].append(oid)
        return oid

    def new_object(self, fields: Sequence[Value] = (), payload: bytes = b"", nfields: int | None = None,
                   pretenure: bool = False) -> int:
        n = len(fields) if nfields is None else nfields
        assert n >= len(fields)
        values: list[Value] = [*fields, *([0] * (n - len(fields)))]
        size = object_size(n, len(payload))
        return self._add(Obj(OBJECT, values, bytearray(payload), bytearray(), self._space_for(size, pretenure)))

    def new_string(self, data: bytes, pretenure: bool = False) -> int:
        size = object_size(0, len(data))
        return self._add(Obj(STRING, [], bytearray(data), bytearray(), self._space_for(size, pretenure)))

    def new_array_buffer(self, byte_length: int) -> int:
        return self._add(Obj(ARRAY_BUFFER, [], bytearray(), bytearray(byte_length), NEW_SPACE))

    def set_field(self, oid: int, i: int, value: Value) -> None:
        if isinstance(value, Ref):
            assert value.oid in self.objects
        self.objects[oid].fields[i] = value

    def get_field(self, oid: int, i: int) -> Value:
        """A reference read comes back as a new handle in the current scope (V8's Local)."""
        v = self.objects[oid].fields[i]
        if isinstance(v, Ref):
            self.scopes[-1].append(v.oid)
        return v

    def write_payload(self, oid: int, offset: int, data: bytes) -> None:
        buf = self.objects[oid].payload
        assert offset + len(data) <= len(buf)
        buf[offset:offset + len(data)] = data

    def write_backing(self, oid: int, offset: int, data: bytes) -> None:
        buf = self.objects[oid].backing
        assert offset + len(data) <= len(buf)
        buf[offset:offset + len(data)] = data

    def open_scope(self) -> int:
        self.scopes.append([])
        return len(self.scopes) - 1

    def close_scope(self, escape: int | None = None) -> None:
        """Pop the innermost scope; `escape` (an oid) is re-created in the parent
        (EscapableHandleScope::Escape)."""
        assert len(self.scopes) > 1, "the root scope never closes"
        self.scopes.pop()
        if escape is not None:
            self.scopes[-1].append(escape)

    def make_persistent(self, oid: int) -> int:
        gid = self._next_gid
        self._next_gid += 1
        self.globals[gid] = oid
        return gid

    def drop(self, gid: int) -> None:
        del self.globals[gid]

    # -- reachability ----------------------------------------------------------------------------

    def roots(self) -> set[int]:
        out = {oid for scope in self.scopes for oid in scope}
        out.update(self.globals.values())
        return out

    def _closure(self, seeds: Iterable[int], through: set[str] | None = None) -> set[int]:
        """Every oid reachable from `seeds`, following fields only out of objects whose space is in
        `through` (None: every space)."""
        seen: set[int] = set()
        stack = list(seeds)
        while stack:
            oid = stack.pop()
            if oid in seen:
                continue
            seen.add(oid)
            obj = self.objects[oid]
            if through is None or obj.space in through:
                stack.extend(o for o in obj.refs() if o not in seen)
        return seen

    def reachable(self) -> set[int]:
        return self._closure(self.roots())

    # -- the collectors ----------------------------------------------------------------------------

    def _survive_young(self, oids: Iterable[int], result: GcResult) -> None:
        """A scavenge's survivors: the second survival promotes (the age mark)."""
        for oid in oids:
            obj = self.objects[oid]
            if obj.space != NEW_SPACE:
                continue
            if obj.age >= 1:
                obj.space = OLD_SPACE
                result.promoted.add(oid)
            else:
                obj.age = 1

    def _reclaim(self, dead: Iterable[int], result: GcResult) -> None:
        for oid in dead:
            obj = self.objects.pop(oid)
            result.died.add(oid)
            result.died_bytes += obj.size
            result.freed_backing += len(obj.backing)

    def scavenge(self) -> GcResult:
        """A minor GC: young objects reachable from the handles or from any old/large object's field
        (the remembered set) survive; the other young objects die."""
        young = {oid for oid, o in self.objects.items() if o.space == NEW_SPACE}
        seeds = {oid for oid in self.roots() if oid in young}
        for obj in self.objects.values():
            if obj.space != NEW_SPACE:
                seeds.update(o for o in obj.refs() if o in young)
        live = self._closure(seeds, through={NEW_SPACE})
        result = GcResult()
        self._reclaim(young - live, result)
        self._survive_young(live, result)
        return result

    def mark_compact(self) -> GcResult:
        """A major GC: everything unreachable from the handles dies; every young survivor is
        promoted."""
        live = self.reachable()
        result = GcResult()
        self._reclaim(set(self.objects) - live, result)
        for oid in live:
            obj = self.objects[oid]
            if obj.space == NEW_SPACE:
                obj.space = OLD_SPACE
                result.promoted.add(oid)
        return result

    def gc(self, kind: str) -> GcResult:
        """Replay one GC by the name the tracer gives it (GcEvent.kind)."""
        if kind == "Scavenge":
            return self.scavenge()
        assert kind == "Mark-Compact", f"unknown GC kind {kind!r}"
        return self.mark_compact()

    # -- figures ---------------------------------------------------------------------------------

    def heap_bytes(self) -> int:
        """heapUsed as V8 defines it (SizeOfObjects): every object not yet reclaimed."""
        return sum(o.size for o in self.objects.values())

    def live_bytes(self) -> int:
        """The exact bytes of the reachable objects: heapUsed right after a full GC."""
        return sum(self.objects[oid].size for oid in self.reachable())

    def external_bytes(self) -> int:
        """Backing-store bytes of every ArrayBuffer not yet reclaimed (Node's external)."""
        return sum(len(o.backing) for o in self.objects.values())

    def reachable_external_bytes(self) -> int:
        return sum(len(self.objects[oid].backing) for oid in self.reachable())
