"""One isolate's API: V8's `api.cc` as a client uses it, for the core holding the isolate's locker.

An `Isolate` is made by `V8.enter` (isolate_table.py) and used only inside it. Objects are made
by allocating (heap.py, which may collect garbage) and then writing the header and fields; a
handle is created only after the object's words are complete, so a collection never meets a
half-made object and every handle names a whole one. Values are ints (Smis, checked to int32)
or `Handle`s; a reference read from a field comes back as a new local handle in the current
scope, as V8's `Local<Value> Get()` does.

Every argument is checked before anything changes: a bad handle is FAILED_PRECONDITION, a field
index, payload range or Smi out of range OUT_OF_RANGE, a malformed request INVALID_ARGUMENT; an
operation that fails has changed nothing but, at most, run a collection.
"""

from __future__ import annotations

from collections.abc import Sequence

from memsim.sim.errors import FailedPrecondition, InvalidArgument, OutOfRange, ResourceExhausted
from memsim.sim.v8 import array_buffer_sweeper as abs_
from memsim.sim.v8 import heap, new_space, stats
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.handles import Handle
from memsim.sim.v8.large_object_space import chunk_bytes
from memsim.sim.v8.layout import (
    C_BARRIER_OFF,
    C_CONCURRENT,
    C_FORCE_COMPACTION,
    C_INCREMENTAL,
    C_MARKING_BARRIER_OFF,
    C_MAX_OLD,
    C_STEP_BYTES,
    C_TEST_ABORT,
    C_TEST_NO_CAS,
    C_TEST_RACE,
    C_TEST_TASKS,
    C_VERIFY,
    LO_SPACE,
    NEW_SPACE,
    OLD_SPACE,
    SPACE_NAMES,
)
from memsim.sim.v8.objects import (
    BYTE_ARRAY,
    JS_ARRAY_BUFFER,
    JS_OBJECT,
    MAX_NFIELDS,
    MAX_PAYLOAD,
    SMI_MAX,
    SMI_MIN,
    TYPE_NAMES,
    header,
    is_smi,
    itype_of,
    nfields_of,
    object_size,
    payload_len_of,
    smi,
    smi_value,
    tag,
    untag,
)
from memsim.sim.v8.tracer import GcEvent, TracerCounters
from memsim.sim.v8.tracer_incremental import attach
from memsim.sim.v8.write_barrier import for_store

Value = int | Handle


class Isolate:
    def __init__(self, h: HeapContext):
        self.h = h
        self.id = h.iso

    # -- values ----------------------------------------------------------------------------

    def _word(self, v: Value) -> int:
        """The tagged word of a value (checked)."""
        if isinstance(v, Handle):
            return self.h.handles.load(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise InvalidArgument(f"a field value is an integer (a Smi) or a Handle, not {type(v).__name__}")
        if not SMI_MIN <= v <= SMI_MAX:
            raise OutOfRange(f"{v} is outside the Smi range [{SMI_MIN}, {SMI_MAX}] (V8's 31/32-bit small integers)")
        return smi(v)

    def _value(self, word: int) -> Value:
        return smi_value(word) if is_smi(word) else self.h.handles.new_local(word)

    def _object(self, h: Handle) -> tuple[int, int]:
        """(address, map word) of a live handle's object."""
        addr = untag(self.h.handles.load(h))
        return addr, self.h.dmap.load(addr)

    def _check_alloc_sizes(self, nfields: int, payload_len: int) -> int:
        if isinstance(nfields, bool) or not isinstance(nfields, int) or not 0 <= nfields <= MAX_NFIELDS:
            raise InvalidArgument(f"nfields {nfields!r} must be between 0 and {MAX_NFIELDS}")
        if payload_len > MAX_PAYLOAD:
            raise InvalidArgument(f"a payload of {payload_len} bytes is above the {MAX_PAYLOAD}-byte maximum")
        size = object_size(nfields, payload_len)
        if chunk_bytes(self.h, size) > int(self.h.cfg[C_MAX_OLD]):
            raise heap.oom(self.h, size, ": larger than the whole old generation")
        return size

    # -- objects ---------------------------------------------------------------------------

    def new_object(self, fields: Sequence[Value] = (), payload: bytes = b"", nfields: int | None = None,
                   pretenure: bool = False) -> Handle:
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise InvalidArgument(f"payload must be bytes, not {type(payload).__name__}")
        payload = bytes(payload)  # its length in bytes, whatever a memoryview's item size
        n = len(fields) if nfields is None else nfields
        if isinstance(n, int) and n < len(fields):
            raise InvalidArgument(f"nfields {n} is fewer than the {len(fields)} fields given")
        size = self._check_alloc_sizes(n, len(payload))
        words = [self._word(v) for v in fields]
        # handles are resolved again after the allocation: a collection inside it may move their objects
        addr = heap.allocate_raw(self.h, size, bool(pretenure))
        words = [self._word(v) for v in fields]
        d = self.h.dmap
        d.store(addr, header(JS_OBJECT, n, len(payload)))
        for i in range(n):
            d.store(addr + 8 + 8 * i, words[i] if i < len(words) else 0)
        if len(payload):
            d.write(addr + 8 + 8 * n, bytes(payload))
        if len(payload) & 7:
            d.fill(addr + 8 + 8 * n + len(payload), 8 - (len(payload) & 7))
        for i, w in enumerate(words):
            self._barrier(addr, addr + 8 + 8 * i, w)
        return self.h.handles.new_local(tag(addr))

    def new_string(self, data: bytes, pretenure: bool = False) -> Handle:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidArgument(f"a string's data must be bytes, not {type(data).__name__}")
        data = bytes(data)
        size = self._check_alloc_sizes(0, len(data))
        addr = heap.allocate_raw(self.h, size, bool(pretenure))
        self.h.dmap.store(addr, header(BYTE_ARRAY, 0, len(data)))
        self.h.dmap.fill(addr + 8, size - 8)
        if len(data):
            self.h.dmap.write(addr + 8, bytes(data))
        return self.h.handles.new_local(tag(addr))

    def new_array_buffer(self, byte_length: int) -> Handle:
        if isinstance(byte_length, bool) or not isinstance(byte_length, int) or not 0 <= byte_length <= SMI_MAX:
            raise InvalidArgument(f"byte_length {byte_length!r} must be between 0 and {SMI_MAX}")
        self._make_room_outside(byte_length)
        size = object_size(2, 0)
        addr = heap.allocate_raw(self.h, size)
        try:
            row = abs_.new_backing_store(self.h, byte_length, old=not new_space.contains(self.h, addr))
        except BaseException:
            heap.unallocate(self.h, addr, size)  # the object's bytes become a filler: the heap stays iterable
            raise
        d = self.h.dmap
        d.store(addr, header(JS_ARRAY_BUFFER, 2, 0))
        d.store(addr + 8, smi(byte_length))
        d.store(addr + 16, smi(row))
        return self.h.handles.new_local(tag(addr))

    def _make_room_outside(self, n: int) -> None:
        """Backing stores are bounded per isolate by its max_old_space_size, so that one isolate cannot
        take the machine's whole allocator: past it a Mark-Compact frees the dead ones (V8 collects on
        "external memory pressure"), and if that is not enough the allocation fails as V8's does."""
        limit = int(self.h.cfg[C_MAX_OLD])
        if abs_.external_bytes(self.h) + n <= limit:
            return
        heap.collect_garbage(self.h, heap.KIND_MARK_COMPACT, "external memory pressure")
        held = abs_.external_bytes(self.h)
        if held + n > limit:
            raise ResourceExhausted(f"RangeError: Array buffer allocation failed: {n:,} bytes more than the "
                                    f"{held:,} bytes of live backing stores pass the isolate's limit "
                                    f"(max_old_space_size={limit / (1 << 20):g} MB)")

    def _barrier(self, host: int, slot: int, word: int) -> None:
        for_store(self.h, host, slot, word)

    def _field_slot(self, h: Handle, i: int) -> tuple[int, int]:
        addr, mw = self._object(h)
        if itype_of(mw) != JS_OBJECT:
            raise FailedPrecondition(f"handle {h.id:#x} is a {TYPE_NAMES.get(itype_of(mw), '?')}, which has no fields")
        n = nfields_of(mw)
        if isinstance(i, bool) or not isinstance(i, int):
            raise InvalidArgument(f"a field index is an integer, not {type(i).__name__}")
        if not 0 <= i < n:
            raise OutOfRange(f"field {i} is out of range: the object has {n} fields")
        return addr, addr + 8 + 8 * i

    def set_field(self, h: Handle, i: int, v: Value) -> None:
        host, slot = self._field_slot(h, i)
        word = self._word(v)
        self._barrier(host, slot, word)  # record first, then write (write_barrier.py)
        self.h.dmap.store(slot, word)

    def get_field(self, h: Handle, i: int) -> Value:
        _, slot = self._field_slot(h, i)
        return self._value(self.h.dmap.load(slot))

    def nfields(self, h: Handle) -> int:
        _, mw = self._object(h)
        return nfields_of(mw) if itype_of(mw) == JS_OBJECT else 0

    def payload_len(self, h: Handle) -> int:
        return payload_len_of(self._object(h)[1])

    def type_of(self, h: Handle) -> str:
        return TYPE_NAMES[itype_of(self._object(h)[1])]

    def _payload_range(self, h: Handle, offset: int, length: int | None) -> tuple[int, int]:
        addr, mw = self._object(h)
        plen = payload_len_of(mw)
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise InvalidArgument("offset must be an integer")
        n = plen - offset if length is None else length
        if isinstance(n, bool) or not isinstance(n, int) or offset < 0 or n < 0 or offset + n > plen:
            raise OutOfRange(f"bytes {offset}..{offset + (n if isinstance(n, int) else 0)} are outside the "
                             f"{plen}-byte payload")
        return addr + 8 + 8 * nfields_of(mw) + offset, n

    def read_payload(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        at, n = self._payload_range(h, offset, length)
        return self.h.dmap.read(at, n) if n else b""

    def write_payload(self, h: Handle, offset: int, data: bytes) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidArgument(f"data must be bytes, not {type(data).__name__}")
        data = bytes(data)
        at, n = self._payload_range(h, offset, len(data))
        if n:
            self.h.dmap.write(at, bytes(data))

    # -- ArrayBuffers ----------------------------------------------------------------------

    def _buffer(self, h: Handle) -> tuple[int, int]:
        addr, mw = self._object(h)
        if itype_of(mw) != JS_ARRAY_BUFFER:
            raise FailedPrecondition(f"handle {h.id:#x} is not an ArrayBuffer")
        return abs_.check_row(self.h, smi_value(self.h.dmap.load(addr + 16)))

    def byte_length(self, h: Handle) -> int:
        return self._buffer(h)[1]

    def _backing_range(self, h: Handle, offset: int, length: int | None) -> tuple[int, int, int]:
        addr, blen = self._buffer(h)
        n = blen - offset if length is None else length
        if (isinstance(offset, bool) or not isinstance(offset, int) or isinstance(n, bool) or not isinstance(n, int)
                or offset < 0 or n < 0 or offset + n > blen):
            raise OutOfRange(f"bytes {offset}..{offset}+{n} are outside the {blen}-byte ArrayBuffer")
        return addr, offset, n

    def read_backing(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        addr, off, n = self._backing_range(h, offset, length)
        return self.h.alloc.read(addr, off, n) if n else b""

    def write_backing(self, h: Handle, offset: int, data: bytes) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidArgument(f"data must be bytes, not {type(data).__name__}")
        data = bytes(data)
        addr, off, n = self._backing_range(h, offset, len(data))
        if n:
            self.h.alloc.write(addr, off, bytes(data))

    # -- scopes and handles ------------------------------------------------------------------

    def open_scope(self) -> int:
        return self.h.handles.open_scope()

    def close_scope(self, escape: Handle | None = None) -> Handle | None:
        return self.h.handles.close_scope(escape)

    def make_persistent(self, h: Handle) -> Handle:
        return self.h.handles.new_global(self.h.handles.load(h))

    def drop(self, g: Handle) -> None:
        self.h.handles.drop(g)

    def same(self, a: Handle, b: Handle) -> bool:
        return self.h.handles.load(a) == self.h.handles.load(b)

    # -- GC and figures ------------------------------------------------------------------------

    def gc(self, minor: bool = False) -> GcEvent:
        """`gc()` as with --expose-gc: a Mark-Compact, or with minor=True a Scavenge (reason "testing"),
        unless old space could not take every survivor: then a Mark-Compact, as V8's
        Heap::SelectGarbageCollector decides for any young-generation request."""
        if minor and not heap.can_promote_all(self.h):
            return heap.collect_garbage(self.h, heap.KIND_MARK_COMPACT, "testing",
                                        collector_reason="scavenge might not succeed")
        return heap.collect_garbage(self.h, heap.KIND_SCAVENGE if minor else heap.KIND_MARK_COMPACT, "testing")

    def address_of(self, h: Handle) -> int:
        return self._object(h)[0]

    def space_of(self, h: Handle) -> str:
        addr = self._object(h)[0]
        space = int(self.h.a.pg_space[self.h.iso, self.h.bounds.slot(addr)])
        assert space in (NEW_SPACE, OLD_SPACE, LO_SPACE)
        return SPACE_NAMES[space]

    def memory_usage(self) -> dict[str, int]:
        """Node's process.memoryUsage() of this isolate: rss is its address space's resident bytes."""
        return stats.memory_usage(self.h.vm.memory_usage(self.h.space)["rss"], heap.sizes(self.h))

    def heap_statistics(self) -> dict[str, int]:
        """v8.getHeapStatistics()."""
        return stats.heap_statistics(heap.sizes(self.h))

    def heap_space_statistics(self) -> list[dict[str, int | str]]:
        """v8.getHeapSpaceStatistics(): node 20's nine spaces, in node's order."""
        return stats.heap_space_statistics(heap.sizes(self.h))

    def counters(self) -> TracerCounters:
        """GC counts by kind, pause percentiles (p50/p99/max) and the totals of bytes and work."""
        return self.h.tracer.counters()

    def trace(self, after_seq: int = 0, max_records: int | None = None) -> list[GcEvent]:
        """The last collections' events (the trace ring), oldest first, after `after_seq`; a Mark-Compact
        that ended an incremental marking cycle with that cycle's steps."""
        return attach(self.h.tracer.read(after_seq, max_records), self.h.a.tr_steps, self.h.a.tr_inc, self.h.iso)

    def testing(self, barrier_off: bool | None = None, force_compaction: bool | None = None,
                verify_heap: bool | None = None, scavenge_tasks: int | None = None, race_hook: bool | None = None,
                no_cas: bool | None = None, incremental_marking: bool | None = None,
                marking_barrier_off: bool | None = None, step_bytes: int | None = None,
                concurrent_marking: bool | None = None, abort_compaction: int | None = None) -> None:
        """Test hooks (never reachable from the wire); scavenge_tasks, race_hook and no_cas run the
        scavenger's parallel kernel with that many tasks taking turns in this process (layout.py's
        C_TEST_*); incremental_marking switches incremental marking (on the wire only at creation),
        concurrent_marking lets helper cores mark a cycle (on the wire only at creation),
        marking_barrier_off skips the marking barrier, step_bytes sets a marking step's budget
        (0: V8's 1 ms at the measured speed); abort_compaction=n makes the middle evacuation candidate
        abort after n objects moved (None leaves it, -1 turns it off; compaction_job.py)."""
        for col, v in ((C_BARRIER_OFF, barrier_off), (C_FORCE_COMPACTION, force_compaction), (C_VERIFY, verify_heap),
                       (C_TEST_RACE, race_hook), (C_TEST_NO_CAS, no_cas), (C_INCREMENTAL, incremental_marking),
                       (C_MARKING_BARRIER_OFF, marking_barrier_off), (C_CONCURRENT, concurrent_marking)):
            if v is not None:
                self.h.cfg[col] = int(bool(v))
        if scavenge_tasks is not None:
            self.h.cfg[C_TEST_TASKS] = scavenge_tasks
        if abort_compaction is not None:
            self.h.cfg[C_TEST_ABORT] = abort_compaction + 1
        if step_bytes is not None:
            if isinstance(step_bytes, bool) or not isinstance(step_bytes, int) or step_bytes < 0:
                raise InvalidArgument(f"step_bytes {step_bytes!r} must be a byte count >= 0")
            self.h.cfg[C_STEP_BYTES] = step_bytes
