"""`memsim bench alloc|cache|vm|gc`: the load generators' flags, and the commands that run them.

Every flag's default is its field's default in tools/loads.py (AllocLoad, CacheLoad, VmLoad, GcLoad), and
every list of choices is read from the table that owns it: workloads and patterns from
tools/loads.py, maxmemory-policies from memsim.sim.cache.config, page-table kinds from
memsim.sim.vm. The loads themselves (tools/loadgen.py, cachebench.py, vmbench.py, gcbench.py) import gRPC,
so they are imported only when a bench command runs, after the parser (see tools/cli.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import TypeVar

from memsim.sim.cache.config import maxmemory_policies, parse_memory
from memsim.sim.errors import SimError
from memsim.sim.vm.kinds import PAGE_TABLES
from memsim.tools.flags import (
    COUNT,
    FRACTION,
    SECONDS,
    TARGET_HELP,
    Parser,
    parse_bytes,
    real,
    server_error,
    size_text,
    target,
    usage_error,
    whole,
)
from memsim.tools.loads import GC_WORKLOADS, PATTERNS, WORKLOADS, AllocLoad, CacheLoad, GcLoad, VmLoad, parse_sizes


def value_sizes(text: str) -> str:
    """N or A-B bytes per value (`bench cache -d`)."""
    try:
        parse_sizes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def redis_memory(text: str) -> str:
    """A value CONFIG SET maxmemory takes (Redis's units: 2mb, 100kb, 0 = no limit)."""
    try:
        parse_memory(text)
    except SimError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory value (e.g. 2mb, 100kb, 0 for no limit)") from None
    return text


value_sizes.__name__ = redis_memory.__name__ = "size"


L = TypeVar("L", AllocLoad, CacheLoad, VmLoad, GcLoad)


def _load(cls: type[L], args: argparse.Namespace, **other: object) -> L:
    """The load record for these flags: every field that has a flag of its own name, `progress` from
    --no-progress, and `other` for the fields that flags of other names set."""
    names = {f.name for f in fields(cls)}
    flags = {k: v for k, v in vars(args).items() if k in names}  # as argparse's types parsed them
    flags.update(other, progress=not args.no_progress)
    return cls(**flags)


def _run(args: argparse.Namespace, load: L, run: Callable[[L, str | None, bool], int]) -> int:
    """Refuse a load whose fields do not fit together (one line, as argparse's errors), else run it."""
    try:
        load.validate()
    except ValueError as e:
        return usage_error(args, str(e))
    return run(load, args.json, args.quiet)


def cmd_bench_alloc(args: argparse.Namespace) -> int:
    from memsim.tools.loadgen import run_alloc_bench

    return _run(args, _load(AllocLoad, args), run_alloc_bench)


def cmd_bench_cache(args: argparse.Namespace) -> int:
    from memsim.client import MemsimError
    from memsim.tools.cachebench import run_cache_bench

    config = {}
    if args.maxmemory is not None:
        config["maxmemory"] = args.maxmemory
    if args.maxmemory_policy is not None:
        config["maxmemory-policy"] = args.maxmemory_policy
    load = _load(CacheLoad, args, fill_on_miss=not args.no_fill, config=config, flush=not args.no_flush)
    try:
        return _run(args, load, run_cache_bench)
    except MemsimError as e:
        return server_error("bench cache", args.target, e, e.code.name)
    except RuntimeError as e:  # a load process failed (tools/harness.py says which and why)
        print(f"memsim bench cache: {e}", file=sys.stderr)
        return 1


def cmd_bench_vm(args: argparse.Namespace) -> int:
    from memsim.client import MemsimError
    from memsim.tools.vmbench import run_vm_bench

    try:
        return _run(args, _load(VmLoad, args), run_vm_bench)
    except MemsimError as e:
        return server_error("bench vm", args.target, e, e.code.name, hint=False)
    except (ValueError, RuntimeError) as e:
        print(f"memsim bench vm: {e}", file=sys.stderr)
        return 2


def cmd_bench_gc(args: argparse.Namespace) -> int:
    from memsim.client import MemsimError

    load = _load(GcLoad, args, target=args.target or "")
    try:
        load.validate()
    except ValueError as e:
        return usage_error(args, str(e))
    if args.png and importlib.util.find_spec("matplotlib") is None:  # say so before the run, not after it
        return usage_error(args, "--png needs matplotlib, which is not installed: pip install matplotlib")
    from memsim.tools.gcbench import run_gc_bench
    from memsim.tools.gcplot import PlotUnavailable

    try:
        return run_gc_bench(load, args.json, args.png, args.quiet)
    except MemsimError as e:
        return server_error("bench gc", load.target or "its own server", e, e.code.name, hint=bool(args.target))
    except (RuntimeError, PlotUnavailable) as e:  # a load process failed, or its own server did not start
        print(f"memsim bench gc: {e}", file=sys.stderr)
        return 1


def _gc_parser(bsub: argparse._SubParsersAction[Parser]) -> None:
    g = GcLoad()
    s = bsub.add_parser("gc", help="GC workloads (Boehm's GCBench, Octane's Splay, a request handler) on "
                                   "isolates of several client processes: pauses, MMU, survival, a plot")
    s.add_argument("--target", type=target, default=None,
                   help="the server's HOST:PORT (default: start a server of the bench's own, and stop it after)")
    s.add_argument("--workload", "-w", default=g.workload, choices=(*GC_WORKLOADS, "all"),
                   help=f"(default {g.workload}; all = each in turn)")
    s.add_argument("--clients", "-c", type=COUNT, default=g.clients,
                   help=f"client processes, each with an isolate of its own (default {g.clients})")
    s.add_argument("--seconds", "-t", type=SECONDS, default=g.seconds,
                   help=f"measured seconds per workload (default {g.seconds:g})")
    s.add_argument("--scale", type=real(0, 1, above=True), default=g.scale,
                   help=f"of Boehm's and Octane's real sizes; 1 = GCBench's depth-18 stretch tree and Splay's "
                        f"8000 nodes (default {g.scale:g})")
    s.add_argument("--semi-space", type=parse_bytes, default=g.semi_space,
                   help=f"each isolate's semi-space, whole heap pages (default {size_text(g.semi_space)})")
    s.add_argument("--max-old-space", type=parse_bytes, default=g.max_old_space,
                   help=f"each isolate's old-space limit, as Node's --max-old-space-size "
                        f"(default {size_text(g.max_old_space)})")
    s.add_argument("--incremental-marking", action="store_true",
                   help="each isolate marks incrementally (V8's default), in steps between its operations")
    s.add_argument("--seed", type=whole(0), default=g.seed, help=f"random seed (default {g.seed})")
    s.add_argument("--quick", action="store_true",
                   help="a smoke run: 1.5 s per workload at scale 1/256, semi-spaces of 256 KiB")
    s.add_argument("--json", help="write the report as JSON to this file")
    s.add_argument("--png", help="plot heap size and pauses over time into this PNG file")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_bench_gc)


def _common(s: argparse.ArgumentParser, load: AllocLoad | CacheLoad | VmLoad, what: str) -> None:
    """The flags every load has: where, how many processes, how long, and what to print."""
    s.add_argument("--target", type=target, default=load.target, help=TARGET_HELP)
    s.add_argument("--processes", "-p", type=COUNT, default=load.processes,
                   help=f"client processes (default {load.processes})")
    s.add_argument("--seconds", "-t", type=SECONDS, default=load.seconds,
                   help=f"measured seconds (default {load.seconds:g})")
    s.set_defaults(func={"alloc": cmd_bench_alloc, "cache": cmd_bench_cache, "vm": cmd_bench_vm}[what])


def _output(s: argparse.ArgumentParser, load: AllocLoad | CacheLoad | VmLoad) -> None:
    s.add_argument("--pin", action="store_true", help="process i talks to core i %% cores on its own port")
    s.add_argument("--seed", type=whole(0), default=load.seed, help=f"random seed (default {load.seed})")
    s.add_argument("--json", help="write the report as JSON to this file")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--quiet", action="store_true")


def add_bench_parsers(sub: argparse._SubParsersAction[Parser]) -> argparse.ArgumentParser:
    """`memsim bench ...` under the top-level subparsers `sub`; returns the `bench` parser."""
    b = sub.add_parser("bench", help="load generators")
    bsub = b.add_subparsers(dest="bench", required=True)

    a = AllocLoad()
    s = bsub.add_parser("alloc", help="Larson-style alloc/free load from many client processes")
    _common(s, a, "alloc")
    s.add_argument("--batch", type=COUNT, default=a.batch,
                   help=f"ops per stream message; 1 = unary calls (default {a.batch})")
    s.add_argument("--slots", type=COUNT, default=a.slots,
                   help=f"live objects per process (Larson's chunks) (default {a.slots})")
    s.add_argument("--min-size", type=COUNT, default=a.min_size, help=f"smallest object, bytes (default {a.min_size})")
    s.add_argument("--max-size", type=COUNT, default=a.max_size, help=f"largest object, bytes (default {a.max_size})")
    s.add_argument("--cross-free", type=FRACTION, default=a.cross_free,
                   help=f"fraction of objects handed to the next process to free (default {a.cross_free:g})")
    _output(s, a)

    c = CacheLoad()
    s = bsub.add_parser("cache", help="cache load (GET/SET) from many client processes, with latency and hit ratio")
    _common(s, c, "cache")
    s.add_argument("--warmup", type=real(0), default=c.warmup,
                   help=f"seconds of load before the measured window (default {c.warmup:g})")
    s.add_argument("--workload", "-w", default=c.workload, choices=WORKLOADS, help=f"(default {c.workload})")
    s.add_argument("--keys", "-k", type=COUNT, default=c.keys, help=f"distinct keys (default {c.keys})")
    s.add_argument("--alpha", type=real(0), default=c.alpha, help=f"Zipf exponent (zipf, scan) (default {c.alpha})")
    s.add_argument("--read-ratio", "-r", type=FRACTION, default=c.read_ratio,
                   help=f"fraction of GETs (not hotset) (default {c.read_ratio})")
    s.add_argument("--value-size", "-d", type=value_sizes, default=c.value_size,
                   help=f"N bytes, or A-B for uniform sizes (default {c.value_size})")
    s.add_argument("--pipeline", "-P", type=COUNT, default=c.pipeline,
                   help=f"commands per round trip; 1 = one per call (default {c.pipeline})")
    s.add_argument("--no-fill", action="store_true", help="do not SET a key after its GET missed")
    s.add_argument("--scan-fraction", type=FRACTION, default=c.scan_fraction,
                   help=f"share of cold sequential keys (scan) (default {c.scan_fraction})")
    s.add_argument("--maxmemory", type=redis_memory, help="CONFIG SET maxmemory for the run, restored after (e.g. 2mb)")
    s.add_argument("--maxmemory-policy", choices=maxmemory_policies(), metavar="POLICY",
                   help=f"CONFIG SET maxmemory-policy for the run, restored after: {', '.join(maxmemory_policies())}")
    s.add_argument("--no-flush", action="store_true", help="keep the keys already there (default: FLUSHALL)")
    s.add_argument("--rate", type=real(0), default=c.rate,
                   help="pace the load at this many ops/s in all (0 = flat out)")
    _output(s, c)

    v = VmLoad()
    s = bsub.add_parser("vm", help="loads and stores on address spaces: fault rates, TLB, swap traffic")
    _common(s, v, "vm")
    s.add_argument("--pattern", default=v.pattern, choices=PATTERNS, help=f"(default {v.pattern})")
    s.add_argument("--pages", type=COUNT, default=v.pages,
                   help=f"pages each process touches (its working set) (default {v.pages})")
    s.add_argument("--page-table", default=v.page_table, choices=list(PAGE_TABLES), help=f"(default {v.page_table})")
    s.add_argument("--shared", action="store_true", help="all processes use one space (default: one each)")
    s.add_argument("--batch", type=COUNT, default=v.batch, help=f"accesses per stream message (default {v.batch})")
    s.add_argument("--write-ratio", type=FRACTION, default=v.write_ratio,
                   help=f"share of stores (default {v.write_ratio:g})")
    _output(s, v)

    _gc_parser(bsub)
    for command in bsub.choices.values():
        command.set_defaults(prog=command.prog)  # for errors found after parsing (usage_error)
    return b
