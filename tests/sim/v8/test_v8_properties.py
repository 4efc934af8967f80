"""The managed heap against its oracle: random programs of allocations, stores, scopes, globals and GCs.

A hypothesis RuleBasedStateMachine drives one isolate on a real Machine (64 KiB V8 pages, a one-page
semi-space, a 1 MiB old generation: PyPy tests its nursery the same way, tiny, so that every few
allocations collect) and tests/sim/v8/oracle.py's model side by side, through tests/sim/v8/mirror.py.
The isolate runs sim/v8/verifier.py after every GC (`testing(verify_heap=True)`).

What holds, and where it is checked:
  * after every GC, the isolate's own `gc()` and the ones allocation triggers ("allocation failure"):
    every object reachable from the handles has the model's kind, fields (references by identity),
    payload, backing store and space (so promotion happens on the second survival), read back
    through the API (`Mirror.check_graph`), and heapUsed fell by exactly the bytes that died
    (`Mirror.sync`);
  * after a mark-compact: heapUsed is the reachable objects' exact bytes and external their
    backing stores' (what became unreachable was reclaimed), but for the floating garbage of an
    incremental marking cycle (switched on and off at random, with concurrent marking's helper task
    taking turns with the mutator), which the next one reclaims;
  * after every step: heapUsed and external are the model's bytes not yet reclaimed, and heapTotal is
    the VM's own count of the isolate space's resident heap bytes;
  * a handle of a closed scope or a dropped global is refused (FailedPrecondition);
  * at the end, destroying the isolate frees every backing store in the machine's allocator.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from memsim.sim.alloc.memstats import read_memstats
from memsim.sim.errors import FailedPrecondition, ResourceExhausted
from memsim.sim.v8 import Handle, concurrent_marking, incremental_marking, marking
from memsim.sim.v8.heap import now_ms
from tests.sim.v8.mirror import PAGE, Mirror, mirrored_isolate, small_machine
from tests.sim.v8.oracle import OBJECT, SMI_MAX, SMI_MIN

smis = st.integers(SMI_MIN, SMI_MAX)
small_payloads = st.binary(max_size=40)


def pattern(n: int, seed: int) -> bytes:
    """n bytes that differ from any other seed's (a large object's payload without drawing it)."""
    return bytes((seed * 31 + i * 7 + 1) % 251 for i in range(n))


class IsolateAgainstOracle(RuleBasedStateMachine):

    def __init__(self) -> None:
        super().__init__()
        self.machine_exits = contextlib.ExitStack()
        self.iso_exits = contextlib.ExitStack()
        self.m = self.machine_exits.enter_context(small_machine())
        try:
            self.mi: Mirror = self.iso_exits.enter_context(mirrored_isolate(self.m))
        except BaseException:
            self.machine_exits.close()
            raise
        self.seed = 0

    # -- helpers -----------------------------------------------------------------------------------

    def candidates(self, kinds: tuple[str, ...] | None = None, with_fields: bool = False) -> list[Handle]:
        """The live handles (locals of every open scope, then globals) of objects of one of `kinds`."""
        mi = self.mi
        return [h for h in mi.handles()
                if (kinds is None or mi.model.objects[mi.oid_of[h]].kind in kinds)
                and (not with_fields or mi.model.objects[mi.oid_of[h]].fields)]

    def pick(self, data: st.DataObject, kinds: tuple[str, ...] | None = None, with_fields: bool = False) -> Handle:
        return data.draw(st.sampled_from(self.candidates(kinds, with_fields)))

    def has(self, kinds: tuple[str, ...] | None = None, with_fields: bool = False) -> bool:
        return bool(self.candidates(kinds, with_fields))

    def value(self, data: st.DataObject) -> int | Handle:
        """A Smi, or (when there is one) a live handle."""
        if self.mi.handles():
            use_handle: bool = data.draw(st.booleans())
            if use_handle:
                return self.pick(data)
        return data.draw(smis)

    def allocate(self, make) -> None:
        """Run one allocation; check the heap after any GC it triggered. The heap limit is a legal
        outcome, with V8's words, and the isolate must go on."""
        before = len(self.mi.gcs)
        try:
            make()
        except ResourceExhausted as e:
            self.mi.sync()
            text = str(e)
            assert "JavaScript heap out of memory" in text and "max_old_space_size" in text, text
        triggered = self.mi.gcs[before:]
        for t in triggered:
            assert t.reason in ("allocation failure", "allocation limit", "last resort",
                                "finalize incremental marking via stack guard"), (
                f"{t.kind} inside an allocation: {t.reason!r}")
        if triggered:
            self.after_gc()

    def after_gc(self) -> None:
        self.mi.check_graph()
        if self.mi.last_gc_was_full():
            self.mi.check_after_full_gc()

    # -- allocation --------------------------------------------------------------------------------

    @rule(data=st.data(), nfields=st.integers(0, 4), payload=small_payloads, pretenure=st.booleans())
    def new_object(self, data, nfields, payload, pretenure):
        fields = [self.value(data) for _ in range(data.draw(st.integers(0, nfields)))]
        self.allocate(lambda: self.mi.new_object(fields, payload, nfields=nfields, pretenure=pretenure))

    @rule(payload=small_payloads, pretenure=st.booleans())
    def new_string(self, payload, pretenure):
        self.allocate(lambda: self.mi.new_string(payload, pretenure=pretenure))

    @rule(byte_length=st.integers(0, 300))
    def new_array_buffer(self, byte_length):
        self.allocate(lambda: self.mi.new_array_buffer(byte_length))

    @rule(payload_len=st.integers(PAGE // 8, PAGE // 2 - 64), pretenure=st.booleans())
    def new_medium(self, payload_len, pretenure):
        """Below page/2 but big: a few fill the one-page semi-space, so scavenges run on "allocation
        failure" inside an allocation."""
        self.seed += 1
        payload = pattern(payload_len, self.seed)
        self.allocate(lambda: self.mi.new_object([self.seed], payload, pretenure=pretenure))

    @rule(data=st.data(), string=st.booleans(), extra=st.integers(1, PAGE // 4))
    def new_large(self, data, string, extra):
        """Above page/2 (kMaxRegularHeapObjectSize): large-object space."""
        self.seed += 1
        payload = pattern(PAGE // 2 + extra, self.seed)
        if string:
            self.allocate(lambda: self.mi.new_string(payload))
        else:
            fields = [self.value(data) for _ in range(2)]
            self.allocate(lambda: self.mi.new_object(fields, payload))

    # -- the mutator -------------------------------------------------------------------------------

    @precondition(lambda self: self.has((OBJECT,), with_fields=True))
    @rule(data=st.data())
    def set_field(self, data):
        h = self.pick(data, (OBJECT,), with_fields=True)
        i = data.draw(st.integers(0, len(self.mi.model.objects[self.mi.oid_of[h]].fields) - 1))
        self.mi.set_field(h, i, self.value(data))

    @precondition(lambda self: self.has((OBJECT,), with_fields=True))
    @rule(data=st.data())
    def get_field(self, data):
        h = self.pick(data, (OBJECT,), with_fields=True)
        self.mi.get_field(h, data.draw(st.integers(0, len(self.mi.model.objects[self.mi.oid_of[h]].fields) - 1)))

    def write_some(self, data: st.DataObject, backing: bool) -> None:
        """Write a random run of bytes into a live object's payload, or an ArrayBuffer's backing store."""
        mi = self.mi

        def buf(h: Handle) -> bytearray:
            obj = mi.model.objects[mi.oid_of[h]]
            return obj.backing if backing else obj.payload

        hs = [h for h in mi.handles() if buf(h)]
        if not hs:
            return
        h = data.draw(st.sampled_from(hs))
        n = len(buf(h))
        off = data.draw(st.integers(0, n - 1))
        (mi.write_backing if backing else mi.write_payload)(h, off, data.draw(st.binary(min_size=1, max_size=n - off)))

    @precondition(lambda self: any(o.payload for o in self.mi.model.objects.values()))
    @rule(data=st.data())
    def write_payload(self, data):
        self.write_some(data, backing=False)

    @precondition(lambda self: any(o.backing for o in self.mi.model.objects.values()))
    @rule(data=st.data())
    def write_backing(self, data):
        self.write_some(data, backing=True)

    # -- roots -------------------------------------------------------------------------------------

    @rule()
    def open_scope(self):
        self.mi.open_scope()

    @precondition(lambda self: len(self.mi.scopes) > 1)
    @rule(data=st.data(), escape=st.booleans())
    def close_scope(self, data, escape):
        inner = self.mi.scopes[-1]
        self.mi.close_scope(data.draw(st.sampled_from(inner)) if escape and inner else None)

    @precondition(lambda self: len(self.mi.scopes) == 1)
    @rule()
    def close_root_scope(self):
        with pytest.raises(FailedPrecondition):
            self.mi.iso.close_scope()

    @precondition(lambda self: bool(self.mi.locals()))
    @rule(data=st.data())
    def make_persistent(self, data):
        self.mi.make_persistent(data.draw(st.sampled_from(self.mi.locals())))

    @precondition(lambda self: bool(self.mi.globals))
    @rule(data=st.data())
    def drop(self, data):
        self.mi.drop(data.draw(st.sampled_from(sorted(self.mi.globals, key=lambda g: g.id))))

    @precondition(lambda self: bool(self.mi.stale))
    @rule(data=st.data())
    def stale_handle_is_refused(self, data):
        h = data.draw(st.sampled_from(self.mi.stale))
        with pytest.raises(FailedPrecondition):
            self.mi.iso.type_of(h)

    # -- GCs ---------------------------------------------------------------------------------------

    @rule()
    def minor_gc(self):
        self.mi.gc(minor=True)
        self.after_gc()

    @rule()
    def major_gc(self):
        self.mi.gc(minor=False)
        self.after_gc()

    @rule(on=st.booleans(), step_bytes=st.sampled_from([0, 64, 4096]))
    def incremental_marking(self, on, step_bytes):
        """C_INCREMENTAL drawn at random: the allocation limit then starts a marking cycle that steps
        as the program allocates (a cycle already running goes on to its Mark-Compact either way);
        the model allows for its floating garbage (mirror.py)."""
        self.mi.iso.testing(incremental_marking=on, step_bytes=step_bytes)

    @rule(steps=st.integers(0, 3), helper=st.booleans())
    def marking_cycle(self, steps, helper):
        """Start a cycle now and take a few steps (V8's cctests' heap::SimulateIncrementalMarking), by
        the main or by concurrent marking's helper task (one object a turn): the rules after it
        store, drop, allocate and scavenge in the middle of it."""
        h = self.mi.iso.h
        incremental_marking.start(h, now_ms(h))
        for _ in range(steps):
            if helper:
                concurrent_marking.turn(h, 1, 1)
            else:
                incremental_marking.step(h, now_ms(h))

    @precondition(lambda self: marking.active(self.mi.iso.h))
    @rule(words=st.sampled_from([1, 16, 4096]), concurrent=st.booleans())
    def helper_turn(self, words, concurrent):
        """A concurrent marker's slice as task 1 between the mutator's operations (concurrent_marking.turn:
        the helper's kernel and segments, driven in this process by turns); C_CONCURRENT drawn too (on
        this one-core machine a cycle it starts has no helper core, so the main marks it alone)."""
        self.mi.iso.testing(concurrent_marking=concurrent)
        concurrent_marking.turn(self.mi.iso.h, 1, words)

    @rule()
    def compacting_gc(self):
        """Every old page with objects is an evacuation candidate: everything old moves."""
        self.mi.iso.testing(force_compaction=True)
        try:
            self.mi.gc(minor=False)
        finally:
            self.mi.iso.testing(force_compaction=False)
        self.after_gc()

    @invariant()
    def figures_match(self):
        self.mi.check_figures()

    def teardown(self):
        try:
            try:
                self.mi.gc(minor=False)
                self.after_gc()
                self.mi.check_figures()
            finally:
                self.iso_exits.close()  # destroy_isolate
            assert read_memstats(self.m.arrays).HeapObjects == 0, "the isolate's backing stores outlived it"
        finally:
            self.machine_exits.close()


TestIsolateAgainstOracle = IsolateAgainstOracle.TestCase
TestIsolateAgainstOracle.settings = settings(max_examples=60, stateful_step_count=50, deadline=None,
                                             suppress_health_check=[HealthCheck.too_slow])
