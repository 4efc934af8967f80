"""`memsim trace replay`: every policy at every cache size on one trace, in parallel, as a table and a plot.

    memsim trace replay TRACE --policies lru,sieve,s3fifo,opt,redis-lru-5 --sizes 100,1000,0.1
                              [--scheduler tcp://host:8786] [--workers N] [--json OUT] [--png OUT]

Owns: the policy names the command takes (`parse_policies`), the sizes (`parse_sizes`), the job one
(policy, size) pair is (`replay_job`), running them all on tools/executor.py's executor
(`replay_all`), and the table, JSON and PNG. A policy is
- any registered one (sim/policies' registry), `NAME:PRESET` for a preset of its options
  (`s3fifo:libcachesim`, `twolist:libcachesim`): replayed by the compiled loop
  (sim/policies/compiled.py) when it has kernels, else by simulate.run's Python loop;
- `opt`: Belady's OPT (compiled);
- `redis-lru-N`, `redis-lfu-N` (N samples, default 5), `redis-random`: Redis's sampled
  allkeys-lru/lfu/random as sim/cache/lrutest.py's SampledCache models them (evict.py's own LRU
  clock, LFU counter and 16-entry pool; every miss is a cache-aside SET), a request every
  1/REDIS_OPS_PER_SECOND s of virtual time (Python: ~1 µs a request, not compiled).
Sizes are objects (an integer) or a fraction of the footprint (a number with a point: 0.01).

How the trace travels: by PATH. Each job names the file; a worker reads it once (the first of its
jobs, memoised per process: `_load`) and renumbers its keys 0..k-1, so a million-request trace
costs each worker one read instead of 8 MB pickled into every job. On a Dask cluster the path must
therefore be readable by every worker (a shared file system). The parent reads it once too, for
the footprint (fractional sizes) and the request count.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from memsim.sim.cache.lrutest import SampledCache
from memsim.sim.policies import POLICIES, policy_names
from memsim.sim.policies.compiled import belady_compiled, compiled, dense_ids, replay_compiled
from memsim.sim.policies.simulate import make, simulate
from memsim.sim.trace.io import FORMATS, open_trace, read_keys
from memsim.tools.executor import ExecutorUnavailable, executor
from memsim.tools.flags import Parser, out_file, whole

__all__ = ["PolicySpec", "Row", "add_replay", "parse_policies", "parse_sizes", "replay_all", "replay_job"]

REDIS_OPS_PER_SECOND = 5_000.0  # SampledCache's default: Redis's ~100k/s on 1M keys, scaled to ~50k keys
_REDIS = re.compile(r"redis-(lru|lfu)(?:-(\d+))?$|redis-random$")


@dataclass(frozen=True)
class PolicySpec:
    """One policy of the command line: its label, its kind (policy, opt, redis) and how to make it."""

    label: str
    kind: str
    name: str = ""  # the registry name, or Redis's maxmemory-policy
    preset: str | None = None
    samples: int = 5


@dataclass(frozen=True)
class Row:
    policy: str
    size: int
    hits: int
    misses: int
    seconds: float  # the job's replay time (the trace's read excluded)

    @property
    def miss_ratio(self) -> float:
        return self.misses / max(self.hits + self.misses, 1)


def parse_policies(text: str) -> list[PolicySpec]:
    """'lru,s3fifo:libcachesim,opt,redis-lru-5' -> specs; ValueError naming what is known."""
    out: list[PolicySpec] = []
    for label in (t.strip() for t in text.split(",")):
        if not label:
            continue
        m = _REDIS.match(label)
        if label in ("opt", "belady"):
            out.append(PolicySpec(label, "opt"))
        elif m:
            samples = int(m.group(2) or 5)
            if not 1 <= samples <= 64:
                raise ValueError(f"{label}: Redis's maxmemory-samples is 1..64")
            out.append(PolicySpec(label, "redis", f"allkeys-{m.group(1) or 'random'}", samples=samples))
        else:
            name, _, preset = label.partition(":")
            if name not in POLICIES:
                raise ValueError(f"unknown policy {label!r}; known: {', '.join(policy_names())}, opt, "
                                 f"redis-lru-N, redis-lfu-N, redis-random")
            if preset:
                make(name, 20, preset=preset)  # a policy without presets: TypeError; an unknown one: ValueError
            out.append(PolicySpec(label, "policy", name, preset or None))
    if not out:
        raise ValueError("no policy named")
    return out


def parse_sizes(text: str, footprint: int) -> list[int]:
    """'100,1000,0.1' -> cache sizes in objects (a number with a point is a fraction of the footprint)."""
    sizes: list[int] = []
    for t in (t.strip() for t in text.split(",")):
        if not t:
            continue
        if not re.fullmatch(r"\d+|\d*\.\d+|\d+\.", t):
            raise ValueError(f"size {t!r}: give a whole number of objects (1000) or a fraction of the "
                             f"footprint with a point (0.01)")
        if "." in t:
            f = float(t)
            if not 0.0 < f <= 1.0:
                raise ValueError(f"size {t}: a fraction of the footprint is in (0, 1]")
            sizes.append(max(1, round(f * footprint)))
        else:
            n = int(t)
            if n < 1:
                raise ValueError(f"size {t}: a cache holds at least 1 object")
            sizes.append(n)
    if not sizes:
        raise ValueError("no size named")
    return sorted(set(sizes))


@lru_cache(maxsize=2)
def _load(path: str, fmt: str | None) -> tuple[np.ndarray, int]:
    """The trace's keys as dense ids, and its footprint (distinct keys): read once per worker process."""
    ids, table = dense_ids(read_keys(path, fmt))
    return ids, int(np.count_nonzero(np.bincount(ids, minlength=table))) if ids.size else 0


def replay_job(path: str, fmt: str | None, spec: PolicySpec, size: int) -> Row:
    """Replay the trace at `path` against one policy at one size (runs in a worker)."""
    ids, _ = _load(path, fmt)
    t0 = time.perf_counter()
    if spec.kind == "opt":
        hits, misses, _ = belady_compiled(ids, size)
    elif spec.kind == "redis":
        cache = SampledCache(size, spec.name, spec.samples, ops_per_second=REDIS_OPS_PER_SECOND)
        access = cache.access
        for k in ids.tolist():
            access(k, True)
        hits, misses = cache.hits, cache.misses
    else:
        options: dict[str, Any] = {"preset": spec.preset} if spec.preset else {}
        if compiled(spec.name):
            hits, misses, _ = replay_compiled(spec.name, ids, size, **options)
        else:
            r = simulate(spec.name, ids.tolist(), size, **options)
            hits, misses = r.hits, r.misses
    return Row(spec.label, size, hits, misses, time.perf_counter() - t0)


def replay_all(path: str, fmt: str | None, specs: Sequence[PolicySpec], sizes: Sequence[int],
               scheduler: str | None = None, workers: int | None = None, progress: bool = False) -> list[Row]:
    """Every (policy, size) as its own job on the executor; rows in policy, then size, order."""
    rows: list[Row] = []
    jobs = [(s, n) for s in specs for n in sizes]
    with executor(scheduler, workers) as ex, Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("replaying", total=len(jobs))
        futures = [ex.submit(replay_job, path, fmt, s, n) for s, n in jobs]
        for f in as_completed(futures):
            rows.append(f.result())
            bar.advance(task)
    order = {s.label: i for i, s in enumerate(specs)}
    return sorted(rows, key=lambda r: (order[r.policy], r.size))


def render(rows: Sequence[Row], requests: int, footprint: int, console: Console | None = None) -> None:
    con = console or Console()
    sizes = sorted({r.size for r in rows})
    t = Table(title=f"miss ratio, {requests:,} requests, footprint {footprint:,} objects", box=box.SIMPLE_HEAD)
    t.add_column("policy")
    for n in sizes:
        t.add_column(f"{n:,}", justify="right")
    by = {(r.policy, r.size): r for r in rows}
    for p in dict.fromkeys(r.policy for r in rows):
        t.add_row(p, *(f"{by[p, n].miss_ratio:.4f}" for n in sizes))
    con.print(t)


def write_png(path: str, rows: Sequence[Row], title: str) -> None:
    from memsim.tools.gcplot import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    for p in dict.fromkeys(r.policy for r in rows):
        pts = [(r.size, r.miss_ratio) for r in rows if r.policy == p]
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", ms=3,
                linestyle="--" if p in ("opt", "belady") else "-", label=p)
    ax.set_xscale("log")
    ax.set_xlabel("cache size (objects)")
    ax.set_ylabel("miss ratio")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        fmt = open_trace(args.trace, args.format).fmt
        ids, footprint = _load(os.path.abspath(args.trace), fmt)
        specs = parse_policies(args.policies)
        sizes = parse_sizes(args.sizes, footprint)
        rows = replay_all(os.path.abspath(args.trace), fmt, specs, sizes, args.scheduler, args.workers,
                          progress=args.json != "-" and sys.stderr.isatty())
    except (OSError, ValueError, TypeError, ExecutorUnavailable) as e:
        print(f"{args.prog}: {e}", file=sys.stderr)
        return 2
    if args.json:
        doc = {"trace": args.trace, "format": fmt, "requests": int(ids.size), "footprint": footprint, "sizes": sizes,
               "scheduler": args.scheduler or "processes",
               "rows": [asdict(r) | {"miss_ratio": r.miss_ratio} for r in rows]}
        if args.json == "-":
            print(json.dumps(doc, indent=2))
        else:
            with open(args.json, "w") as f:
                json.dump(doc, f, indent=2)
    if args.json != "-":
        render(rows, int(ids.size), footprint)
    if args.png:
        write_png(args.png, rows, f"miss ratio against cache size: {os.path.basename(args.trace)}")
        if args.json != "-":
            print(f"wrote {args.png}")
    return 0


def add_replay(tsub: argparse._SubParsersAction[Parser]) -> None:
    s = tsub.add_parser("replay", help="every policy at every cache size: a miss-ratio table and plot")
    s.add_argument("trace", help="the trace file")
    s.add_argument("--format", "-f", choices=FORMATS, default=None, help="the trace's format (default: guessed)")
    s.add_argument("--policies", "-p", default="lru,fifo,clock,sieve,s3fifo,lfu,opt,redis-lru-5",
                   help="comma-separated: registered policies (NAME or NAME:PRESET, e.g. s3fifo:libcachesim), "
                        "opt, redis-lru-N, redis-lfu-N, redis-random (default %(default)s)")
    s.add_argument("--sizes", "-s", default="0.001,0.01,0.1",
                   help="comma-separated cache sizes: objects, or fractions of the footprint (default %(default)s)")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the jobs on this Dask scheduler (tcp://host:8786) instead of local processes")
    s.add_argument("--workers", type=whole(1), help="local worker processes (default: one per CPU)")
    s.add_argument("--json", type=out_file, metavar="OUT", help="write the rows as JSON to OUT ('-': stdout, no table)")
    s.add_argument("--png", type=out_file, metavar="OUT", help="plot miss ratio against size to OUT")
    s.set_defaults(func=cmd_replay, prog=s.prog)
