"""The managed heap against its oracle over the wire, with real helper cores and every switch drawn.

tests/sim/v8/test_v8_properties.py runs random programs against tests/sim/v8/oracle.py in one process,
its helper tasks simulated by turns. Here the same model and the same Mirror (tests/sim/v8/mirror.py,
through `WireIsolate`, the sim Isolate's surface over memsim.client's) drive an isolate of a real
server of 3 cores: its scavenges, Mark-Compacts (marking, evacuation, pointer updating) and
concurrent marking are joined by the other cores' GcHelpers (server/gc_helper.py), and the server
verifies the heap after every collection (MEMSIM_TEST_V8_VERIFY; a failed verification comes back
as an error of the call that collected).

Per program, drawn from its seed: gc_helpers in {0, 1, 2, -1}, incremental_marking, concurrent_marking,
the server (one with testing knobs: MEMSIM_TEST_V8_FORCE_COMPACTION, every Mark-Compact evacuates every
old page with live objects, and MEMSIM_TEST_V8_STEP_BYTES, marking steps of 4 KB; or one without), and
a concurrent mutator: a second isolate on core 1 churning tests/server/test_v8_multicore.py's Graph
with switches of its own, so that a helper core is sometimes busy. The program: allocations of every
size (a one-page semi-space and a 2 MiB old generation of the server's 256 KiB pages: a collection
every few steps, the old generation at its limit now and then, where a marking cycle starts), field
stores, old->new stores, "moves" of a reference out of one object into another inside a scope that
then closes (the store that needs the marking barrier: a black host, a white value whose other path
is cut), scopes, globals, drops, stale handles, minor and major GCs, and short idle gaps in which
concurrent markers run alone.

Content stamps: every object's and string's payload starts with 16 bytes, its own id and a probe
word; the program writes only after them. Mirror.check_graph reads every reachable object back
after every GC (kind, space, fields, payload), and where two paths reach one object `same` writes a
fresh probe word through one handle and reads it through the other: a torn copy shows as a payload
mismatch, a doubly copied object as two objects (and as heapUsed above the model's bytes).

Why a seeded driver and not hypothesis's RuleBasedStateMachine: what a program does on the server
depends on when other processes join (helpers, concurrent markers, the churning isolate), so a
replay is not a reproduction; hypothesis would shrink towards a different run each time and report
Flaky. A failure here names the program's seed, switches and last steps, and the server's log.

CI size: PROGRAMS programs of STEPS steps. The long run (any number of minutes, as many programs as fit):
    MEMSIM_PROPERTY_MINUTES=15 .venv/bin/python -m pytest -q -s tests/server/test_v8_wire_properties.py -k oracle
(MEMSIM_PROPERTY_SEED=n starts from another seed; MEMSIM_PROPERTY_REPORT=file.json writes the counts
of GCs per kind and mode, the helpers that joined, and the programs run.) gc_helpers=-1 scavenges
serially here: V8's rule, min(new-space MiB + 1, 8, cores), gives a 256 KiB new space one task.

The control (can it fail?): on a server whose isolates skip the marking barrier
(MEMSIM_TEST_V8_MARKING_BARRIER_OFF) and mark 1 KB a step, incremental programs from seed 0 until one
fails; it must fail the server's verifier or the model (4 of seeds 0..15 did; seed 1 is the first).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from memsim.client import FailedPrecondition, ResourceExhausted, V8Client, VMClient
from memsim.client.isolate import Isolate
from memsim.client.v8_types import Description, GcEvent, Handle
from memsim.sim.system import MachineConfig
from memsim.sim.v8.isolate_table import (
    FORCE_COMPACTION_ENV,
    MARKING_BARRIER_OFF_ENV,
    STEP_BYTES_ENV,
    VERIFY_ENV,
)
from tests.server.test_v8_multicore import SIZES, Graph
from tests.servers import running_server
from tests.sim.v8.mirror import Mirror
from tests.sim.v8.oracle import LO_SPACE, NEW_SPACE, OBJECT, OLD_SPACE, SMI_MAX, SMI_MIN, Ref

pytestmark = pytest.mark.integration

KiB, MiB = 1 << 10, 1 << 20
MINUTES = float(os.environ.get("MEMSIM_PROPERTY_MINUTES") or 0)  # the long run's length; 0: the CI size
PAGE = MachineConfig().v8_page_size  # the server's V8 page (memsim serve has no flag for it)
SEMI, MAX_OLD = PAGE, 2 * MiB
SERVER = {"cores": 3, "memory": "128MiB", "extra": ["--vm-memory", "64MiB"]}
PROGRAMS, STEPS = 3, 150  # the CI size
CONTROL_PROGRAMS, CONTROL_SEED, CONTROL_STEPS = 6, 0, 200  # the control: 4 of seeds 0..15 failed
# the testing knobs of one of the two servers: every Mark-Compact evacuates every old page with live
# objects (parallel evacuation and pointer updating every time), and a marking step marks 4 KB
KNOBS = {FORCE_COMPACTION_ENV: "1", STEP_BYTES_ENV: "4096"}
LONG_STEPS = 400
STAMP = 16  # bytes 0..8: the object's id; 8..16: the probe word `same` writes
MAIN_CORE, CHURN_CORE = 0, 1


def stamp(uid: int) -> bytes:
    return uid.to_bytes(8, "little") * 2


class WireIsolate:
    """The surface of sim/v8's Isolate that Mirror uses, over a server's isolate: the mutator's calls
    go straight to memsim.client's Isolate; type_of, space_of, nfields, payload_len and byte_length are
    one Describe (kept until the next call of any other kind, as Mirror.check_object asks them in a
    row); `same` is the content-stamp probe; `trace` pages through the ring and records each GC."""

    def __init__(self, iso: Isolate):
        self.iso = iso
        self.events: list[GcEvent] = []
        self._described: tuple[Handle, Description] | None = None
        self._nonce = 0

    def __getattr__(self, name: str):  # new_object, set_field, gc, memory_usage, scopes, globals ...
        self._described = None
        return getattr(self.iso, name)

    def _describe(self, h: Handle) -> Description:
        if self._described is None or self._described[0] != h:
            self._described = (h, self.iso.describe(h))
        return self._described[1]

    def type_of(self, h: Handle) -> str:
        return self._describe(h).type

    def space_of(self, h: Handle) -> str:
        return self._describe(h).space

    def nfields(self, h: Handle) -> int:
        return self._describe(h).nfields

    def payload_len(self, h: Handle) -> int:
        return self._describe(h).payload_len

    def byte_length(self, h: Handle) -> int:
        return self._describe(h).byte_length

    def same(self, a: Handle, b: Handle) -> bool:
        """One object, if a probe word written through `a` reads back through `b` (the word is put back
        after): in the payload's stamp, or an ArrayBuffer's first 8 backing bytes (its copies would share
        the backing store, so for those this only tells two ArrayBuffers apart)."""
        self._described = None
        iso = self.iso
        da, db = iso.describe(a), iso.describe(b)
        if da != db:
            return False
        if da.type == "array_buffer":
            if da.byte_length < 8:
                return True  # nothing to probe: the same kind, space and length is all that shows
            read, write, at = iso.read_backing, iso.write_backing, 0
        else:
            assert da.payload_len >= STAMP, f"an object without its stamp: {da}"
            if iso.read_payload(a, 0, 8) != iso.read_payload(b, 0, 8):
                return False
            read, write, at = iso.read_payload, iso.write_payload, 8
        self._nonce += 1
        old = read(a, at, 8)
        probe = (self._nonce | 1 << 62).to_bytes(8, "little")
        write(a, at, probe)
        seen = read(b, at, 8)
        write(a, at, old)
        return seen == probe

    def trace(self, after_seq: int = 0) -> list[GcEvent]:
        self._described = None
        out: list[GcEvent] = []
        while True:
            page = self.iso.trace(after_seq=after_seq)
            out += page
            if len(page) < 128:
                break
            after_seq = page[-1].seq
        self.events += out
        return out


class WireSpaces:
    """Mirror's `vm`: the VM's own count of a space's resident bytes, over the wire."""

    def __init__(self, vm: VMClient):
        self.vm = vm

    def memory_usage(self, space: int) -> dict[str, int]:
        return self.vm.space(space).memory_usage()


class WireMirror(Mirror):
    handle_type = Handle


@dataclass
class Switches:
    gc_helpers: int
    incremental_marking: bool
    concurrent_marking: bool
    knobs: bool
    churn: bool

    @classmethod
    def draw(cls, rng: random.Random, knobs: bool | None = None) -> Switches:
        return cls(rng.choice([0, 1, 2, -1]), rng.random() < 0.5, rng.random() < 0.5,
                   rng.random() < 0.3 if knobs is None else knobs, rng.random() < 0.5)

    def mode(self) -> str:
        marking = "concurrent" if self.concurrent_marking else "incremental" if self.incremental_marking else "atomic"
        return f"helpers={self.gc_helpers} marking={marking}{' +knobs' if self.knobs else ''}"

    def isolate(self) -> dict[str, int | bool]:
        return {"gc_helpers": self.gc_helpers, "incremental_marking": self.incremental_marking,
                "concurrent_marking": self.concurrent_marking}


@dataclass
class Tally:
    """What the runs did: GCs per kind and mode, how many of them helper cores joined."""
    programs: int = 0
    steps: int = 0
    gcs: Counter[str] = field(default_factory=Counter)
    joined: Counter[str] = field(default_factory=Counter)  # GCs with helper_objects > 0
    helper_objects: Counter[str] = field(default_factory=Counter)
    compacted: int = 0
    incremental_cycles: int = 0

    def add(self, sw: Switches, events: list[GcEvent]) -> None:
        for e in events:
            key = f"{e.kind} [{sw.mode()}]"
            self.gcs[key] += 1
            self.joined[key] += e.helper_objects > 0
            self.helper_objects[key] += e.helper_objects
            self.compacted += e.compacted > 0
            self.incremental_cycles += e.incremental_walltime_ms > 0

    def summary(self) -> str:
        rows = [f"{k}: {n} GCs, {self.joined[k]} joined by helpers ({self.helper_objects[k]} objects)"
                for k, n in sorted(self.gcs.items())]
        return (f"{self.programs} programs, {self.steps} steps, {sum(self.gcs.values())} GCs "
                f"({self.compacted} compacting, {self.incremental_cycles} ending a marking cycle)\n  "
                + "\n  ".join(rows))


class Program:
    """One random program against one isolate and its model (rules picked by weight from `rng`)."""

    def __init__(self, mi: Mirror, rng: random.Random):
        self.mi, self.rng = mi, rng
        self.uid = 0
        self.log: list[str] = []
        self.rules: list[tuple[Callable[[], None], int]] = [
            (self.new_object, 10), (self.new_string, 3), (self.new_array_buffer, 2), (self.new_medium, 16),
            (self.new_large, 1), (self.set_field, 8), (self.old_to_new, 5), (self.move, 6), (self.get_field, 3),
            (self.write_payload, 3), (self.write_backing, 1), (self.open_scope, 2), (self.close_scope, 3),
            (self.make_persistent, 4), (self.drop, 3), (self.stale, 1), (self.minor_gc, 3), (self.major_gc, 1),
            (self.idle, 2)]

    # -- drawing ------------------------------------------------------------------------------------

    def objects(self, spaces: tuple[str, ...] | None = None, with_fields: bool = False, kind: str | None = None
                ) -> list[Handle]:
        mi = self.mi
        out = []
        for h in mi.handles():
            o = mi.model.objects[mi.oid_of[h]]
            if ((spaces is None or o.space in spaces) and (not with_fields or o.fields)
                    and (kind is None or o.kind == kind)):
                out.append(h)
        return out

    def value(self) -> int | Handle:
        hs = self.mi.handles()
        return self.rng.choice(hs) if hs and self.rng.random() < 0.6 else self.rng.randint(SMI_MIN, SMI_MAX)

    def payload(self, extra: int) -> bytes:
        self.uid += 1
        return stamp(self.uid) + self.rng.randbytes(extra)

    def allocate(self, make: Callable[[], object]) -> None:
        """One allocation; the heap limit is a legal outcome, in V8's words, and the isolate goes on."""
        try:
            make()
        except ResourceExhausted as e:
            self.mi.sync()
            assert "JavaScript heap out of memory" in str(e), e

    # -- rules ---------------------------------------------------------------------------------------

    def new_object(self) -> None:
        n = self.rng.randint(0, 4)
        fields = [self.value() for _ in range(self.rng.randint(0, n))]
        self.allocate(lambda: self.mi.new_object(fields, self.payload(self.rng.randint(0, 40)), nfields=n,
                                                 pretenure=self.rng.random() < 0.3))

    def new_string(self) -> None:
        self.allocate(lambda: self.mi.new_string(self.payload(self.rng.randint(0, 40)),
                                                 pretenure=self.rng.random() < 0.3))

    def new_array_buffer(self) -> None:
        self.allocate(lambda: self.mi.new_array_buffer(self.rng.randint(0, 300)))

    def new_medium(self) -> None:
        """Big but below page/2: a few fill the one-page semi-space, so allocations collect."""
        extra = self.rng.randint(PAGE // 8, PAGE // 3)
        pretenure = self.rng.random() < 0.3
        self.allocate(lambda: self.mi.new_object([self.value()], self.payload(extra), pretenure=pretenure))

    def new_large(self) -> None:
        self.allocate(lambda: self.mi.new_object([self.value(), self.value()], self.payload(PAGE // 2)))

    def set_field(self, host: Handle | None = None, v: int | Handle | None = None) -> None:
        hs = self.objects(with_fields=True, kind=OBJECT)
        if not hs:
            return
        host = host if host is not None else self.rng.choice(hs)
        n = len(self.mi.model.objects[self.mi.oid_of[host]].fields)
        self.mi.set_field(host, self.rng.randrange(n), self.value() if v is None else v)

    def old_to_new(self) -> None:
        """A young object stored into an old or large one: only the remembered set keeps it alive."""
        hosts = self.objects((OLD_SPACE, LO_SPACE), with_fields=True, kind=OBJECT)
        young = self.objects((NEW_SPACE,))
        if hosts and young:
            self.set_field(self.rng.choice(hosts), self.rng.choice(young))

    def move(self) -> None:
        """Move a reference from b.f into a.g inside a scope that closes, and cut b.f: while marking,
        only the marking barrier keeps the value alive if a is already black and it is still white."""
        mi = self.mi
        sources = [h for h in self.objects(with_fields=True, kind=OBJECT)
                   if any(isinstance(f, Ref) for f in mi.model.objects[mi.oid_of[h]].fields)]
        hosts = self.objects(with_fields=True, kind=OBJECT)
        if not sources:
            return
        b, a = self.rng.choice(sources), self.rng.choice(hosts)
        i = self.rng.choice([i for i, f in enumerate(mi.model.objects[mi.oid_of[b]].fields) if isinstance(f, Ref)])
        mi.open_scope()
        x = mi.get_field(b, i)
        mi.set_field(a, self.rng.randrange(len(mi.model.objects[mi.oid_of[a]].fields)), x)
        mi.set_field(b, i, self.rng.randint(0, 9))
        mi.close_scope()

    def get_field(self) -> None:
        hs = self.objects(with_fields=True, kind=OBJECT)
        if hs:
            h = self.rng.choice(hs)
            self.mi.get_field(h, self.rng.randrange(len(self.mi.model.objects[self.mi.oid_of[h]].fields)))

    def write_payload(self) -> None:
        """Bytes after the stamp."""
        mi = self.mi
        hs = [h for h in mi.handles() if len(mi.model.objects[mi.oid_of[h]].payload) > STAMP]
        if hs:
            h = self.rng.choice(hs)
            n = len(mi.model.objects[mi.oid_of[h]].payload)
            off = self.rng.randint(STAMP, n - 1)
            mi.write_payload(h, off, self.rng.randbytes(self.rng.randint(1, min(64, n - off))))

    def write_backing(self) -> None:
        mi = self.mi
        hs = [h for h in mi.handles() if mi.model.objects[mi.oid_of[h]].backing]
        if hs:
            h = self.rng.choice(hs)
            n = len(mi.model.objects[mi.oid_of[h]].backing)
            off = self.rng.randrange(n)
            mi.write_backing(h, off, self.rng.randbytes(self.rng.randint(1, n - off)))

    def open_scope(self) -> None:
        if len(self.mi.scopes) < 6:
            self.mi.open_scope()

    def close_scope(self) -> None:
        """Close the innermost scope (escaping one of its handles, or not); the program then opens
        another, so that only globals and escapes live in the root scope and the heap turns over."""
        inner = self.mi.scopes[-1]
        self.mi.close_scope(self.rng.choice(inner) if inner and self.rng.random() < 0.5 else None)
        if len(self.mi.scopes) == 1:
            self.mi.open_scope()

    def make_persistent(self) -> None:
        if self.mi.locals():
            self.mi.make_persistent(self.rng.choice(self.mi.locals()))

    def drop(self) -> None:
        if self.mi.globals:
            self.mi.drop(self.rng.choice(sorted(self.mi.globals, key=lambda g: g.id)))

    def stale(self) -> None:
        if self.mi.stale:
            with pytest.raises(FailedPrecondition):
                self.mi.iso.describe(self.rng.choice(self.mi.stale))

    def minor_gc(self) -> None:
        self.mi.gc(minor=True)

    def major_gc(self) -> None:
        self.mi.gc(minor=False)

    def idle(self) -> None:
        """A gap between operations: concurrent markers run with the mutator away."""
        time.sleep(self.rng.choice([0.001, 0.005, 0.02]))

    # -- running -------------------------------------------------------------------------------------

    def run(self, steps: int) -> None:
        rules, weights = zip(*self.rules, strict=True)
        mi = self.mi
        mi.open_scope()
        for n in range(steps):
            rule = self.rng.choices(rules, weights)[0]
            before = len(mi.gcs)
            self.log.append(f"{n}: {rule.__name__}")
            rule()
            mi.sync()
            if len(mi.gcs) > before:
                self.log[-1] += " (" + ", ".join(f"{t.kind} {t.reason}" for t in mi.gcs[before:]) + ")"
                mi.check_graph()
                if mi.last_gc_was_full():
                    mi.check_after_full_gc()
            mi.check_figures()
        mi.gc(minor=False)
        mi.check_graph()
        mi.check_after_full_gc()
        mi.check_figures()


@contextlib.contextmanager
def churning(target: str, rng: random.Random, errors: list[BaseException]) -> Iterator[None]:
    """A second isolate on CHURN_CORE, with switches of its own, churning a stamped graph until the block ends."""
    stop = threading.Event()

    def churn() -> None:
        try:
            with V8Client(target, core=CHURN_CORE, timeout=120) as v8:
                iso = v8.create_isolate(**SIZES, **Switches.draw(rng).isolate())
                g = Graph(iso, rng.randrange(1 << 30))
                while not stop.is_set():
                    g.churn(rng, major=rng.random() < 0.3)
                g.check()
                iso.destroy()
        except BaseException as e:  # noqa: BLE001  (reported by the program that drew it)
            errors.append(e)

    t = threading.Thread(target=churn, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(120)


class Servers:
    """A server without and one with KNOBS, started on first use and kept for the module;
    `env` is the hooks every one of them gets (MEMSIM_TEST_V8_VERIFY at least)."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.stack = contextlib.ExitStack()
        self.started: dict[bool, object] = {}

    def get(self, knobs: bool):
        if knobs not in self.started:
            with pytest.MonkeyPatch.context() as mp:
                for k, v in {**self.env, **(KNOBS if knobs else {})}.items():
                    mp.setenv(k, v)
                self.started[knobs] = self.stack.enter_context(running_server(**SERVER))
        return self.started[knobs]


def run_program(servers: Servers, seed: int, steps: int, tally: Tally, knobs: bool | None = None,
                sw: Switches | None = None) -> None:
    """One program: draw its switches, create its isolate (and maybe the churning one), run, check."""
    rng = random.Random(seed)
    sw = sw or Switches.draw(rng, knobs)
    srv = servers.get(sw.knobs)
    errors: list[BaseException] = []
    prog: Program | None = None
    wire: WireIsolate | None = None
    with contextlib.ExitStack() as stack:
        if sw.churn:
            stack.enter_context(churning(srv.target, random.Random(seed ^ 0x5EED), errors))
        v8 = stack.enter_context(V8Client(srv.target, core=MAIN_CORE, timeout=120))
        vm = stack.enter_context(VMClient(srv.target, timeout=120))
        iso = v8.create_isolate(SEMI, MAX_OLD, 1.5, **sw.isolate())
        try:
            wire = WireIsolate(iso)
            mi = WireMirror(wire, WireSpaces(vm), iso.info.space, PAGE, SEMI)
            prog = Program(mi, rng)
            prog.run(steps)
            iso.destroy()
        except BaseException as e:
            log = "\n    ".join((prog.log if prog else [])[-40:])
            server_log = "".join(srv.output[-30:])
            raise AssertionError(f"program seed {seed} ({sw}) failed: {type(e).__name__}: {e}\n  last steps:\n    "
                                 f"{log}\n  server:\n{server_log}") from e
    if errors:
        raise AssertionError(f"program seed {seed} ({sw}): the churning isolate failed: {errors[0]!r}") from errors[0]
    tally.programs += 1
    tally.steps += steps
    tally.add(sw, wire.events if wire else [])


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    s = Servers({VERIFY_ENV: "1"})
    with s.stack:
        yield s


@pytest.mark.timeout(300 + MINUTES * 60 + 600)  # the program running at the deadline finishes
def test_random_programs_match_the_oracle_in_every_mode(servers):
    """PROGRAMS programs (or, with MEMSIM_PROPERTY_MINUTES, as many as fit in that time)."""
    minutes = MINUTES
    seed = int(os.environ.get("MEMSIM_PROPERTY_SEED") or 11)
    tally = Tally()
    deadline = time.monotonic() + minutes * 60
    failures: list[str] = []  # a long run goes on after a failure (up to 5), to find what else fails
    n = 0
    try:
        while (n < PROGRAMS) if not minutes else (time.monotonic() < deadline and len(failures) < 5):
            # CI: the first program on the server with the testing knobs, the rest drawn
            try:
                run_program(servers, seed + n, LONG_STEPS if minutes else STEPS, tally, knobs=True if n == 0 else None)
            except AssertionError as e:
                if not minutes:
                    raise
                failures.append(str(e))
                print(f"\nFAILURE {len(failures)}: {e}", flush=True)
            n += 1
    finally:
        print("\nwire property run:", tally.summary())
        report = os.environ.get("MEMSIM_PROPERTY_REPORT")
        if report:
            with open(report, "w") as f:
                json.dump({"seed": seed, "minutes": minutes, "programs": tally.programs, "steps": tally.steps,
                           "gcs": tally.gcs, "joined": tally.joined, "helper_objects": tally.helper_objects,
                           "compacted": tally.compacted, "incremental_cycles": tally.incremental_cycles,
                           "failures": failures}, f, indent=1)
    assert not failures, f"{len(failures)} of {n} programs failed; the first:\n{failures[0]}"
    assert sum(tally.gcs.values()) > 0


def test_without_the_marking_barrier_a_property_run_fails():
    """The control: a server whose isolates skip the marking barrier (MEMSIM_TEST_V8_MARKING_BARRIER_OFF),
    marking in small steps (MEMSIM_TEST_V8_STEP_BYTES) so that cycles span many operations, must fail
    one of a few incremental programs: a moved reference is reclaimed while still reachable (in 16
    programs of 200 steps from seed 0, about one in three failed so)."""
    s = Servers({VERIFY_ENV: "1", MARKING_BARRIER_OFF_ENV: "1", STEP_BYTES_ENV: "1024"})
    failures: list[str] = []
    with s.stack:
        for n in range(CONTROL_PROGRAMS):
            sw = Switches(gc_helpers=0, incremental_marking=True, concurrent_marking=False, knobs=False,
                          churn=False)
            try:
                run_program(s, CONTROL_SEED + n, CONTROL_STEPS, Tally(), sw=sw)
            except AssertionError as e:
                failures.append(str(e))
                break
    assert failures, f"{CONTROL_PROGRAMS} programs passed without the marking barrier"
    # the lost object shows as the server's verifier failing a collection, or as the model's mismatch
    assert "the heap does not verify" in failures[0] or "OracleMismatch" in failures[0], failures[0]
