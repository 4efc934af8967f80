"""`memsim`: serve a machine, look at it, drive it.

    memsim serve [--cores 4] [--memory 64MiB] [--frame-size 4096] [--port 50051] [--no-caches] [--global-lock]
    memsim stats [--target HOST:PORT] [--json] [--all] [--check]
    memsim sizeclasses
    memsim demo                        start a default machine, run a short load, print, stop
    memsim bench alloc [...]           Larson-style load from many processes (see --help)

`serve` must fork its workers before gRPC is imported, so this module imports nothing
gRPC-related at the top; each subcommand imports what it needs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}


def parse_bytes(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 64MiB, 4096, 1GiB)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def _add_machine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cores", type=int, default=4, help="simulated cores = worker processes (default 4)")
    p.add_argument("--memory", type=parse_bytes, default=64 << 20, help="physical memory (default 64MiB)")
    p.add_argument("--frame-size", type=parse_bytes, default=4096, help="frame (physical page) size (default 4096)")
    p.add_argument("--no-caches", action="store_true", help="experiment: no per-core caches, every alloc to mcentral")
    p.add_argument("--global-lock", action="store_true", help="experiment: one lock for all central lists and the heap")


def cmd_serve(args: argparse.Namespace) -> int:
    from memsim.server.supervisor import ServeOptions, serve
    from memsim.sim.errors import SimError
    from memsim.sim.machine.shm import SharedMemoryFull
    from memsim.sim.system import MachineConfig

    config = MachineConfig(memory_bytes=args.memory, frame_size=args.frame_size, cores=args.cores,
                           per_core_caches=not args.no_caches, global_lock=args.global_lock)
    try:
        config.validate()
    except SimError as e:
        print(f"memsim serve: {e}", file=sys.stderr)
        return 2
    opts = ServeOptions(host=args.host, port=args.port, pin=not args.no_pin,
                        scavenge_period=args.scavenge_period, scavenge_idle=args.scavenge_idle)
    try:
        return serve(config, opts)
    except SharedMemoryFull as e:
        print(f"memsim serve: {e.strerror}", file=sys.stderr)
        return 2


def cmd_stats(args: argparse.Namespace) -> int:
    from memsim.client import Client, MemsimError
    from memsim.client.report import render_stats, stats_to_dict

    try:
        with Client(args.target, timeout=args.timeout) as c:
            st = c.stats(check_heap=args.check)
            info = c.info()
    except MemsimError as e:
        print(f"memsim stats: {args.target}: {e.code.name}: {e}", file=sys.stderr)
        if e.code.name == "UNAVAILABLE":
            print("is a server running there? point at it with --target HOST:PORT", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(stats_to_dict(st, info), indent=2))
    else:
        render_stats(st, info, all_classes=args.all)
        if args.check:
            print("heap check: " + ("ok" if not st.heap_problems else "; ".join(st.heap_problems)))
    return 1 if st.heap_problems else 0


def cmd_sizeclasses(args: argparse.Namespace) -> int:
    from memsim.sim.alloc.sizeclasses import table

    t = table()
    print(t.format())
    print(f"\n{len(t)} classes including class 0 (large objects); mean rounding waste for uniform request "
          f"sizes 1..32768 B: {t.mean_rounding_waste() * 100:.2f}%")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from memsim.client.demo import run_demo

    return run_demo(cores=args.cores, memory=args.memory, clients=args.clients, seconds=args.seconds)


def cmd_bench_alloc(args: argparse.Namespace) -> int:
    from memsim.client.loadgen import AllocLoad, run_alloc_bench

    load = AllocLoad(target=args.target, processes=args.processes, seconds=args.seconds, batch=args.batch,
                     slots=args.slots, min_size=args.min_size, max_size=args.max_size, pin=args.pin,
                     cross_free=args.cross_free, seed=args.seed, progress=not args.no_progress)
    return run_alloc_bench(load, json_path=args.json, quiet=args.quiet)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memsim", description="A simulated machine's memory, served over gRPC.")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="serve a machine until SIGINT/SIGTERM")
    _add_machine_args(s)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=50051, help="shared port; core c also on port+1+c (0 = pick free)")
    s.add_argument("--no-pin", action="store_true", help="do not pin worker c to CPU c %% ncpu")
    s.add_argument("--scavenge-period", type=float, default=1.0, help="seconds between scavenger passes")
    s.add_argument("--scavenge-idle", type=float, default=5.0, help="release free pages idle this many seconds")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("stats", help="heap figures, size classes in use and the lock table")
    s.add_argument("--target", default="127.0.0.1:50051", help="the server's HOST:PORT (default 127.0.0.1:50051)")
    s.add_argument("--timeout", type=float, default=5.0)
    s.add_argument("--json", action="store_true")
    s.add_argument("--all", action="store_true", help="list every size class, not only those in use")
    s.add_argument("--check", action="store_true",
                   help="also verify the heap's invariants (exit 1 if broken); takes every lock once")
    s.set_defaults(func=cmd_stats)

    s = sub.add_parser("sizeclasses", help="print the size-class table and its waste")
    s.set_defaults(func=cmd_sizeclasses)

    s = sub.add_parser("demo", help="start a default machine, run a short load from a few processes, print, stop")
    s.add_argument("--cores", type=int, default=4)
    s.add_argument("--memory", type=parse_bytes, default=64 << 20)
    s.add_argument("--clients", type=int, default=3)
    s.add_argument("--seconds", type=float, default=3.0)
    s.set_defaults(func=cmd_demo)

    b = sub.add_parser("bench", help="load generators")
    bsub = b.add_subparsers(dest="bench", required=True)
    s = bsub.add_parser("alloc", help="Larson-style alloc/free load from many client processes")
    s.add_argument("--target", default="127.0.0.1:50051", help="the server's HOST:PORT (default 127.0.0.1:50051)")
    s.add_argument("--processes", "-p", type=int, default=4)
    s.add_argument("--seconds", "-t", type=float, default=10.0)
    s.add_argument("--batch", type=int, default=100, help="ops per stream message; 1 = unary calls")
    s.add_argument("--slots", type=int, default=1000, help="live objects per process (Larson's chunks)")
    s.add_argument("--min-size", type=int, default=8)
    s.add_argument("--max-size", type=int, default=1000)
    s.add_argument("--pin", action="store_true", help="process i talks to core i %% cores on its own port")
    s.add_argument("--cross-free", type=float, default=0.1,
                   help="fraction of objects handed to the next process to free (default 0.1)")
    s.add_argument("--seed", type=int, default=4141)
    s.add_argument("--json", help="write the report as JSON to this file")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_bench_alloc)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `memsim stats --json | head`: the reader left, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
