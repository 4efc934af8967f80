"""What a benchmark run is: the load records that `memsim bench ...` fills from its flags and
bench/*.py build directly, with the workloads and patterns they choose from.

Owns: AllocLoad (tools/loadgen.py), CacheLoad (tools/cachebench.py), VmLoad (tools/vmbench.py),
GcLoad (tools/gcbench.py).
Invariant: importable without gRPC. The CLI's parser is built before `memsim serve` forks its
workers (gRPC's threads do not survive fork), and it reads its bench flags' defaults and choices
here, so that each default is written once, in its dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from memsim.sim.vm.kinds import PAGE_TABLE_DEFAULT
from memsim.tools.flags import DEFAULT_TARGET


@dataclass
class AllocLoad:
    target: str = DEFAULT_TARGET
    processes: int = 4
    seconds: float = 10.0
    batch: int = 100  # ops per message; 1 = unary calls
    slots: int = 1000
    min_size: int = 8
    max_size: int = 1000
    pin: bool = False
    cross_free: float = 0.1
    seed: int = 4141
    progress: bool = True

    def validate(self) -> None:
        """ValueError naming the first bad field, before any process starts or any call is made."""
        if self.processes < 1 or self.slots < 1 or self.batch < 1:
            raise ValueError("processes, slots and batch must be at least 1")
        if not self.seconds > 0:
            raise ValueError(f"seconds {self.seconds} must be above 0")
        if not 1 <= self.min_size <= self.max_size:
            raise ValueError(f"--min-size {self.min_size} and --max-size {self.max_size}: give 1 <= min <= max")
        if not 0 <= self.cross_free <= 1:
            raise ValueError(f"--cross-free {self.cross_free} is a fraction between 0 and 1")


# `memsim bench cache --workload` (tools/cachebench.py's module doc says what each does).
WORKLOADS = ("uniform", "zipf", "hotset", "scan", "loop")

@dataclass
class CacheLoad:
    target: str = DEFAULT_TARGET
    kind: str = "memsim"  # or "redis" (target is then host:port of a redis-server)
    processes: int = 2
    seconds: float = 10.0
    warmup: float = 2.0
    workload: str = "zipf"
    keys: int = 10_000
    alpha: float = 1.0
    read_ratio: float = 0.9
    value_size: str = "32"  # "N" or "A-B"
    pipeline: int = 100  # commands per round trip; 1 = one command per call
    fill_on_miss: bool = True
    scan_fraction: float = 0.3
    seed: int = 1
    pin: bool = False  # memsim: process i talks to core i % cores
    progress: bool = True
    config: dict[str, str] = field(default_factory=dict)  # CONFIG SET before the run (maxmemory, policy)
    flush: bool = True  # FLUSHALL before the run
    rate: float = 0.0  # total ops/s to pace at (0 = as fast as possible); see the module doc

    def validate(self) -> None:
        if self.workload not in WORKLOADS:
            raise ValueError(f"workload {self.workload!r} is not one of {', '.join(WORKLOADS)}")
        if not 0 <= self.read_ratio <= 1:
            raise ValueError("read_ratio is a fraction between 0 and 1")
        if self.keys < 1 or self.processes < 1 or self.pipeline < 1 or self.seconds <= 0:
            raise ValueError("keys, processes, pipeline and seconds must be positive")
        parse_sizes(self.value_size)


def parse_sizes(spec: str) -> tuple[int, int]:
    lo, _, hi = spec.partition("-")
    if not lo.isdigit() or not (hi or lo).isdigit():
        raise ValueError(f"value size {spec!r}: give N or A-B bytes, e.g. 32 or 16-256")
    a, b = int(lo), int(hi or lo)
    if not 0 <= a <= b:
        raise ValueError(f"value size {spec!r}: give N or A-B with 0 <= A <= B")
    return a, b


# `memsim bench vm --pattern` (tools/vmbench.py's module doc says what each does).
PATTERNS = ("sequential", "random", "loop", "working-set")


@dataclass
class VmLoad:
    target: str = DEFAULT_TARGET
    processes: int = 2
    seconds: float = 5.0
    pattern: str = "random"
    pages: int = 256
    page_table: str = PAGE_TABLE_DEFAULT
    shared: bool = False
    batch: int = 100
    write_ratio: float = 0.3
    seed: int = 1
    pin: bool = False
    progress: bool = True

    def validate(self) -> None:
        """ValueError naming what is wrong, before any process starts or any call is made."""
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern {self.pattern!r} is not one of {', '.join(PATTERNS)}")
        if self.processes < 1 or self.pages < 1 or self.batch < 1 or not 0 <= self.write_ratio <= 1:
            raise ValueError("processes, pages and batch must be at least 1, write_ratio between 0 and 1")
        if not self.seconds > 0:
            raise ValueError(f"seconds {self.seconds} must be above 0")


# `memsim bench gc --workload` (tools/gcloads.py says what each does); "all" runs each in turn.
GC_WORKLOADS = ("gcbench", "splay", "handler")
QUICK_SECONDS = 1.5  # --quick: a smoke run of every figure, seconds per workload
QUICK_SCALE = 1 / 256  # --quick: Boehm's trees 8 levels shallower, Splay's tree 31 nodes
QUICK_SEMI_SPACE = 256 << 10  # --quick: one heap page a semi-space, so that even 1.5 s sees scavenges


@dataclass
class GcLoad:
    target: str = ""  # HOST:PORT; empty = start a server of the bench's own (tools/gcbench.py)
    workload: str = "gcbench"  # one of GC_WORKLOADS, or "all"
    clients: int = 2  # load processes, each with an isolate of its own
    seconds: float = 10.0  # measured seconds per workload
    scale: float = 1 / 16  # of Boehm's and Octane's real sizes (1.0 = stretch depth 18, 8000 splay nodes)
    semi_space: int = 1 << 20  # bytes per semi-space (V8's --min-semi-space-size, in bytes)
    max_old_space: int = 16 << 20  # bytes (Node's --max-old-space-size, in bytes)
    gc_helpers: int = 0  # each isolate's scavenge helper cores (CreateIsolateRequest.gc_helpers)
    incremental_marking: bool = False  # each isolate's major GCs mark incrementally (CreateIsolateRequest)
    concurrent_marking: bool = False  # helper cores mark each isolate's cycles (CreateIsolateRequest)
    seed: int = 1
    quick: bool = False
    progress: bool = True

    def workloads(self) -> tuple[str, ...]:
        return GC_WORKLOADS if self.workload == "all" else (self.workload,)

    def effective(self) -> GcLoad:
        """The load as it runs: --quick shortens the window and shrinks the workloads."""
        if not self.quick:
            return self
        return replace(self, seconds=min(self.seconds, QUICK_SECONDS), scale=min(self.scale, QUICK_SCALE),
                       semi_space=min(self.semi_space, QUICK_SEMI_SPACE))

    def validate(self) -> None:
        """ValueError naming the first bad field, before any process starts or any call is made."""
        if self.workload not in (*GC_WORKLOADS, "all"):
            raise ValueError(f"workload {self.workload!r} is not one of {', '.join(GC_WORKLOADS)}, all")
        if self.clients < 1:
            raise ValueError("clients must be at least 1")
        if not self.seconds > 0:
            raise ValueError(f"seconds {self.seconds} must be above 0")
        if not 0 < self.scale <= 1:
            raise ValueError(f"--scale {self.scale} is a fraction of the real sizes: above 0, at most 1")
        if self.semi_space < 1 or self.max_old_space < 1:
            raise ValueError("--semi-space and --max-old-space must be positive sizes")
