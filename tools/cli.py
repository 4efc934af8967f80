"""`memsim`: serve a machine, look at it, drive it.

    memsim serve [--cores 4] [--memory 64MiB] [--frame-size 4096] [--port 50051] [--no-caches] [--global-lock]
    memsim stats [--target HOST:PORT] [--json] [--all] [--check] [--objects [--core N] [--client ID]]
    memsim sizeclasses
    memsim demo                        start a default machine, run a short load, print, stop
    memsim bench alloc [...]           Larson-style load from many processes (see --help)

`serve` must fork its workers before gRPC is imported, so this module imports nothing
gRPC-related at the top; each subcommand imports what it needs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable
from typing import NoReturn

from memsim.server.limits import STREAM_IDLE_S
from memsim.sim.alloc.layout import MAX_CORES
from memsim.sim.cache.config import POLICY_IDS, parse_memory
from memsim.sim.errors import SimError
from memsim.sim.policies import POLICIES

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}


def parse_bytes(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 64MiB, 4096, 1GiB)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


# -- flag types, shared by every command: a bad value is refused before anything runs ---------

def whole(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An integer flag between lo and hi (inclusive)."""
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{value} is out of range: give {_bounds(lo, hi)}")
        return value
    parse.__name__ = "whole number"
    return parse


def real(lo: float, hi: float | None = None, *, above: bool = False) -> Callable[[str], float]:
    """A finite number flag, at least lo (or strictly above it) and at most hi."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < lo or (above and value == lo) or (hi is not None and value > hi):
            want = f"a number above {lo:g}" if above else _bounds(lo, hi)
            raise argparse.ArgumentTypeError(f"{text} is out of range: give {want}")
        return value
    parse.__name__ = "number"
    return parse


def _bounds(lo: float, hi: float | None) -> str:
    return f"at least {lo:g}" if hi is None else f"{lo:g} to {hi:g}"


def target(text: str) -> str:
    """HOST:PORT of a server."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:50051)")
    return text


target.__name__ = "HOST:PORT"
parse_bytes.__name__ = "size"

def value_sizes(text: str) -> str:
    """N or A-B bytes per value (`bench cache -d`)."""
    from memsim.tools.cachebench import parse_sizes

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
CACHE_POLICIES = list(POLICY_IDS)
VM_POLICIES = sorted(POLICIES)
TARGET_HELP = "the server's HOST:PORT (default 127.0.0.1:50051)"
COUNT = whole(1)  # processes, clients, cores, slots, keys, pages, batch and pipeline lengths
SECONDS = real(0, above=True)  # durations and timeouts
FRACTION = real(0, 1)  # shares and ratios
PORT = whole(0, 65535)
CLIENT_PORT = whole(1, 65535)


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line that names the way out (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _add_machine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cores", type=whole(1, MAX_CORES), default=4,
                   help="simulated cores = worker processes (default 4)")
    p.add_argument("--memory", type=parse_bytes, default=64 << 20, help="physical memory (default 64MiB)")
    p.add_argument("--frame-size", type=parse_bytes, default=4096, help="frame (physical page) size (default 4096)")
    p.add_argument("--no-caches", action="store_true", help="experiment: no per-core caches, every alloc to mcentral")
    p.add_argument("--global-lock", action="store_true", help="experiment: one lock for all central lists and the heap")
    p.add_argument("--max-keys", type=whole(64, 1 << 26), default=65536,
                   help="entries of the cache's keyspace (default 65536)")
    p.add_argument("--vm-memory", type=parse_bytes, default=None,
                   help="physical memory given to virtual memory's frame pool (default: a quarter of --memory)")
    p.add_argument("--vm-policy", default="twolist", choices=VM_POLICIES, metavar="POLICY",
                   help="page replacement: fifo, lru, lfu, clock, twolist (default, Linux's), sieve, s3fifo")
    p.add_argument("--swap", type=parse_bytes, default=None, help="swap file size (default 4x --vm-memory)")
    p.add_argument("--tlb-entries", type=whole(1, 65536), default=64, help="TLB entries per core (default 64)")
    p.add_argument("--tlb-ways", type=whole(1, 65536), default=4, help="TLB associativity (default 4)")
    p.add_argument("--thp", default="madvise", choices=["never", "madvise", "always"],
                   help="transparent huge pages (default madvise: regions mapped with huge=True)")
    p.add_argument("--khugepaged-ms", type=whole(1), default=1000, help="khugepaged's scan period (default 1000)")
    p.add_argument("--hugetlb-pages", type=whole(0), default=0,
                   help="explicit 2 MiB huge pages set aside at start, for mmap(hugetlb=True) (default 0)")
    p.add_argument("--heap-in-vm", action="store_true",
                   help="experiment: the allocator's arena is address space 0 of the VM, paged like a process's heap")
    p.add_argument("--heap-virtual", type=parse_bytes, default=None,
                   help="with --heap-in-vm: the arena's size, which may exceed physical memory (default --memory)")
    p.add_argument("--maxmemory", type=parse_bytes, default=0,
                   help="the cache's memory limit, as Redis's maxmemory (default 0 = none; CONFIG SET changes it)")
    p.add_argument("--maxmemory-policy", default="noeviction", choices=CACHE_POLICIES, metavar="POLICY",
                   help="Redis's eviction policy or memsim's: noeviction (default), allkeys-lru, allkeys-lfu, "
                        "allkeys-random, volatile-lru|lfu|random|ttl, exact-lru, exact-lfu, fifo, clock, twolist, "
                        "sieve, s3fifo")


def default_vm_memory(memory: int, frame_size: int) -> int:
    """A quarter of the machine for virtual memory's pool, in whole frames (the heap keeps the rest)."""
    return memory // 4 // max(frame_size, 8192) * max(frame_size, 8192)


def machine_config(args: argparse.Namespace):
    """The MachineConfig that `memsim serve` with these flags would build (not yet validated)."""
    from memsim.sim.system import MachineConfig

    return MachineConfig(memory_bytes=args.memory, frame_size=args.frame_size, cores=args.cores,
                         per_core_caches=not args.no_caches, global_lock=args.global_lock,
                         max_keys=args.max_keys, maxmemory=args.maxmemory, maxmemory_policy=args.maxmemory_policy,
                         vm_memory=default_vm_memory(args.memory, args.frame_size) if args.vm_memory is None
                         else args.vm_memory, vm_policy=args.vm_policy, swap_bytes=args.swap,
                         tlb_entries=args.tlb_entries, tlb_ways=args.tlb_ways, thp=args.thp,
                         khugepaged_ms=args.khugepaged_ms, heap_in_vm=args.heap_in_vm,
                         hugetlb_pages=args.hugetlb_pages, heap_virtual_bytes=args.heap_virtual)


def cmd_serve(args: argparse.Namespace) -> int:
    from memsim.server.supervisor import ServeOptions, serve
    from memsim.sim.machine.shm import SharedMemoryFull

    config = machine_config(args)
    try:
        config.validate()
    except SimError as e:
        print(f"memsim serve: {e}", file=sys.stderr)
        return 2
    opts = ServeOptions(host=args.host, port=args.port, pin=not args.no_pin, start_timeout=args.start_timeout,
                        scavenge_period=args.scavenge_period, scavenge_idle=args.scavenge_idle,
                        stream_idle_s=args.stream_idle_timeout)
    try:
        return serve(config, opts)
    except SharedMemoryFull as e:
        print(f"memsim serve: {e.strerror}", file=sys.stderr)
        return 2
    except SimError as e:  # the machine could not be built from a configuration that looked valid
        print(f"memsim serve: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. the swap file's directory (MEMSIM_SWAP_DIR, else the temp dir)
        where = f": {e.filename}" if e.filename else ""
        print(f"memsim serve: cannot set the machine up: {e.strerror or e}{where}", file=sys.stderr)
        return 2


def cmd_stats(args: argparse.Namespace) -> int:
    from memsim.client import Client, MemsimError
    from memsim.tools.report import render_stats, stats_to_dict

    try:
        with Client(args.target, timeout=args.timeout) as c:
            st = c.stats(check_heap=args.check)
            info = c.info()
            listing = None
            if args.objects or args.core is not None or args.client:
                listing = c.list_objects(core=args.core, client=args.client, limit=args.limit)
        pool = vm_pool_bytes(args.target, args.timeout)
    except MemsimError as e:
        print(f"memsim stats: {args.target}: {e.code.name}: {e}", file=sys.stderr)
        if e.code.name == "UNAVAILABLE":
            print("is a server running there? point at it with --target HOST:PORT", file=sys.stderr)
        return 1
    if args.json:
        d = stats_to_dict(st, info, pool)
        if listing is not None:
            d["objects"] = {"total": listing.total, "listed": [vars(o) for o in listing.objects]}
        print(json.dumps(d, indent=2))
    else:
        render_stats(st, info, all_classes=args.all, vm_pool_bytes=pool)
        if args.check:
            print("heap check: " + ("ok" if not st.heap_problems else "; ".join(st.heap_problems)))
        if listing is not None:
            from memsim.tools.report import render_objects

            render_objects(listing)
    return 1 if st.heap_problems else 0


def vm_pool_bytes(target: str, timeout: float) -> int:
    """The VM pool's share of physical memory (0 on a machine started without virtual memory)."""
    from memsim.client import MemsimError, VMClient

    try:
        with VMClient(target, timeout=timeout) as vm:
            st = vm.vmstat()
    except MemsimError as e:
        if e.code.name == "UNIMPLEMENTED":
            return 0
        raise
    return st["pool_frames"] * st["page_size"]


def cmd_sizeclasses(args: argparse.Namespace) -> int:
    from memsim.sim.alloc.sizeclasses import table

    t = table()
    if args.json:
        print(json.dumps({"classes": [{"class": c.index, "size": c.size, "span_bytes": c.span_bytes,
                                       "objects": c.objects, "tail_waste": c.tail_waste,
                                       "max_waste": round(c.max_waste, 4), "batch": c.batch} for c in t.classes],
                          "num_size_classes": len(t), "mean_rounding_waste": round(t.mean_rounding_waste(), 6)},
                         indent=2))
        return 0
    print(t.format())
    print(f"\n{len(t)} classes including class 0 (large objects); mean rounding waste for uniform request "
          f"sizes 1..32768 B: {t.mean_rounding_waste() * 100:.2f}%")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from memsim.sim.system import MachineConfig
    from memsim.tools.demo import run_demo

    try:  # the server the demo starts must be one that can start
        MachineConfig(memory_bytes=args.memory, cores=args.cores).validate()
    except SimError as e:
        return usage_error(args, str(e))
    try:
        return run_demo(cores=args.cores, memory=args.memory, clients=args.clients, seconds=args.seconds)
    except RuntimeError as e:  # its server did not start, or a load process failed: the last line says why
        last = [ln for ln in str(e).splitlines() if ln.strip()][-1:] or [repr(e)]
        print(f"memsim demo: {last[0]}", file=sys.stderr)
        return 1


def cmd_bench_alloc(args: argparse.Namespace) -> int:
    from memsim.tools.loadgen import AllocLoad, run_alloc_bench

    load = AllocLoad(target=args.target, processes=args.processes, seconds=args.seconds, batch=args.batch,
                     slots=args.slots, min_size=args.min_size, max_size=args.max_size, pin=args.pin,
                     cross_free=args.cross_free, seed=args.seed, progress=not args.no_progress)
    try:
        load.validate()
    except ValueError as e:
        return usage_error(args, str(e))
    return run_alloc_bench(load, json_path=args.json, quiet=args.quiet)


def usage_error(args: argparse.Namespace, message: str) -> int:
    """A bad combination of flags, found after parsing: one line, as argparse's own errors."""
    print(f"{args.prog}: {message} (see {args.prog} --help)", file=sys.stderr)
    return 2


def cmd_cli(args: argparse.Namespace) -> int:
    from memsim.tools.repl import main_cli

    target = args.target or f"{args.host}:{args.port}"
    return main_cli(target, args.command, True if args.raw else (False if args.no_raw else None), args.timeout)


def cmd_bench_cache(args: argparse.Namespace) -> int:
    from memsim.tools.cachebench import CacheLoad, run_cache_bench

    config = {}
    if args.maxmemory is not None:
        config["maxmemory"] = args.maxmemory
    if args.maxmemory_policy is not None:
        config["maxmemory-policy"] = args.maxmemory_policy
    load = CacheLoad(target=args.target, processes=args.processes, seconds=args.seconds, warmup=args.warmup,
                     workload=args.workload, keys=args.keys, alpha=args.alpha, read_ratio=args.read_ratio,
                     value_size=args.value_size, pipeline=args.pipeline, fill_on_miss=not args.no_fill,
                     scan_fraction=args.scan_fraction, seed=args.seed, pin=args.pin, progress=not args.no_progress,
                     config=config, flush=not args.no_flush, rate=args.rate)
    try:
        load.validate()
    except ValueError as e:
        return usage_error(args, str(e))
    from memsim.client import MemsimError

    try:
        return run_cache_bench(load, json_path=args.json, quiet=args.quiet)
    except MemsimError as e:
        print(f"memsim bench cache: {args.target}: {e.code.name}: {e}", file=sys.stderr)
        if e.code.name == "UNAVAILABLE":
            print("is a server running there? point at it with --target HOST:PORT", file=sys.stderr)
        return 1


def cmd_vm(args: argparse.Namespace) -> int:
    from memsim.tools.vmreport import main_vm

    return main_vm(args.target, args.space, args.json, args.timeout)


def cmd_bench_vm(args: argparse.Namespace) -> int:
    from memsim.client import MemsimError
    from memsim.tools.vmbench import VmLoad, run_vm_bench

    load = VmLoad(target=args.target, processes=args.processes, seconds=args.seconds, pattern=args.pattern,
                  pages=args.pages, page_table=args.page_table, shared=args.shared, batch=args.batch,
                  write_ratio=args.write_ratio, seed=args.seed, pin=args.pin, progress=not args.no_progress)
    try:
        load.validate()
    except ValueError as e:
        return usage_error(args, str(e))
    try:
        return run_vm_bench(load, json_path=args.json, quiet=args.quiet)
    except MemsimError as e:
        print(f"memsim bench vm: {args.target}: {e.code.name}: {e}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError) as e:
        print(f"memsim bench vm: {e}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="memsim", description="A simulated machine's memory, served over gRPC.")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="serve a machine until SIGINT/SIGTERM")
    _add_machine_args(s)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=PORT, default=50051, help="shared port; core c also on port+1+c (0 = pick free)")
    s.add_argument("--no-pin", action="store_true", help="do not pin worker c to CPU c %% ncpu")
    s.add_argument("--scavenge-period", type=SECONDS, default=1.0, help="seconds between scavenger passes")
    s.add_argument("--start-timeout", type=SECONDS, default=30.0,
                   help="seconds each core has to start before the server gives up (default 30)")
    s.add_argument("--scavenge-idle", type=real(0), default=5.0, help="release free pages idle this many seconds")
    s.add_argument("--stream-idle-timeout", type=SECONDS, default=STREAM_IDLE_S, metavar="SECONDS",
                   help=f"end a batch or pipeline stream that sends no request for this long (default "
                        f"{STREAM_IDLE_S:g}); clients open a new one")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("stats", help="heap figures, size classes in use and the lock table")
    s.add_argument("--target", type=target, default="127.0.0.1:50051", help=TARGET_HELP)
    s.add_argument("--timeout", type=SECONDS, default=5.0, help="seconds to wait for the server (default 5)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--all", action="store_true", help="list every size class, not only those in use")
    s.add_argument("--check", action="store_true",
                   help="also verify the heap's invariants (exit 1 if broken); takes every lock once")
    s.add_argument("--objects", action="store_true",
                   help="also list live objects by core and client (to find leaks), the first --limit of them")
    s.add_argument("--core", type=int, default=None, help="with --objects: only those this core allocated")
    s.add_argument("--client", default="", help="with --objects: only this client's (its id, as listed)")
    s.add_argument("--limit", type=int, default=1000, help="with --objects: list at most this many (default 1000)")
    s.set_defaults(func=cmd_stats)

    s = sub.add_parser("sizeclasses", help="print the size-class table and its waste")
    s.add_argument("--json", action="store_true", help="the table as JSON")
    s.set_defaults(func=cmd_sizeclasses)

    s = sub.add_parser("demo", help="start a default machine, run a short load from a few processes, print, stop")
    s.add_argument("--cores", type=whole(1, MAX_CORES), default=4, help="simulated cores (default 4)")
    s.add_argument("--memory", type=parse_bytes, default=64 << 20, help="physical memory (default 64MiB)")
    s.add_argument("--clients", type=COUNT, default=3, help="client processes of the load (default 3)")
    s.add_argument("--seconds", type=SECONDS, default=3.0, help="seconds of each load (default 3)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("cli", help="redis-cli for the cache: interactive, or one command from the arguments",
                       add_help=False)  # -h is the host, as in redis-cli
    s.add_argument("--help", action="help", help="show this help and exit")
    s.add_argument("--target", type=target, help="the server's HOST:PORT (instead of -h and -p)")
    s.add_argument("-h", "--host", default="127.0.0.1", help="server host (default 127.0.0.1)")
    s.add_argument("-p", "--port", type=CLIENT_PORT, default=50051, help="server port (default 50051)")
    s.add_argument("--raw", action="store_true", help="bare replies (the default when stdout is not a terminal)")
    s.add_argument("--no-raw", action="store_true", help="typed replies even when stdout is not a terminal")
    s.add_argument("--timeout", type=SECONDS, default=10.0, help="seconds to wait for the server (default 10)")
    s.add_argument("command", nargs=argparse.REMAINDER, help="a command to run instead of the shell, e.g. SET k v")
    s.set_defaults(func=cmd_cli)

    s = sub.add_parser("vm", help="virtual memory: vmstat, and each address space's usage, faults and memory map")
    s.add_argument("--target", type=target, default="127.0.0.1:50051", help=TARGET_HELP)
    s.add_argument("--space", type=whole(0), help="only this space")
    s.add_argument("--json", action="store_true")
    s.add_argument("--timeout", type=SECONDS, default=10.0, help="seconds to wait for the server (default 10)")
    s.set_defaults(func=cmd_vm)

    b = sub.add_parser("bench", help="load generators")
    bsub = b.add_subparsers(dest="bench", required=True)
    s = bsub.add_parser("alloc", help="Larson-style alloc/free load from many client processes")
    s.add_argument("--target", type=target, default="127.0.0.1:50051", help=TARGET_HELP)
    s.add_argument("--processes", "-p", type=COUNT, default=4, help="client processes (default 4)")
    s.add_argument("--seconds", "-t", type=SECONDS, default=10.0, help="measured seconds (default 10)")
    s.add_argument("--batch", type=COUNT, default=100, help="ops per stream message; 1 = unary calls")
    s.add_argument("--slots", type=COUNT, default=1000, help="live objects per process (Larson's chunks)")
    s.add_argument("--min-size", type=COUNT, default=8, help="smallest object, bytes (default 8)")
    s.add_argument("--max-size", type=COUNT, default=1000, help="largest object, bytes (default 1000)")
    s.add_argument("--pin", action="store_true", help="process i talks to core i %% cores on its own port")
    s.add_argument("--cross-free", type=FRACTION, default=0.1,
                   help="fraction of objects handed to the next process to free (default 0.1)")
    s.add_argument("--seed", type=whole(0), default=4141)
    s.add_argument("--json", help="write the report as JSON to this file")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_bench_alloc)

    s = bsub.add_parser("cache", help="cache load (GET/SET) from many client processes, with latency and hit ratio")
    s.add_argument("--target", type=target, default="127.0.0.1:50051", help=TARGET_HELP)
    s.add_argument("--processes", "-p", type=COUNT, default=2, help="client processes (default 2)")
    s.add_argument("--seconds", "-t", type=SECONDS, default=10.0, help="measured seconds (default 10)")
    s.add_argument("--warmup", type=real(0), default=2.0, help="seconds of load before the measured window (default 2)")
    s.add_argument("--workload", "-w", default="zipf", choices=["uniform", "zipf", "hotset", "scan", "loop"])
    s.add_argument("--keys", "-k", type=COUNT, default=10_000, help="distinct keys (default 10000)")
    s.add_argument("--alpha", type=real(0), default=1.0, help="Zipf exponent (zipf, scan)")
    s.add_argument("--read-ratio", "-r", type=FRACTION, default=0.9, help="fraction of GETs (not hotset)")
    s.add_argument("--value-size", "-d", type=value_sizes, default="32",
                   help="N bytes, or A-B for uniform sizes (default 32)")
    s.add_argument("--pipeline", "-P", type=COUNT, default=100, help="commands per round trip; 1 = one per call")
    s.add_argument("--no-fill", action="store_true", help="do not SET a key after its GET missed")
    s.add_argument("--scan-fraction", type=FRACTION, default=0.3, help="share of cold sequential keys (scan)")
    s.add_argument("--maxmemory", type=redis_memory, help="CONFIG SET maxmemory for the run, restored after (e.g. 2mb)")
    s.add_argument("--maxmemory-policy", choices=CACHE_POLICIES, metavar="POLICY",
                   help="CONFIG SET maxmemory-policy for the run, restored after")
    s.add_argument("--no-flush", action="store_true", help="keep the keys already there (default: FLUSHALL)")
    s.add_argument("--rate", type=real(0), default=0.0, help="pace the load at this many ops/s in all (0 = flat out)")
    s.add_argument("--pin", action="store_true", help="process i talks to core i %% cores on its own port")
    s.add_argument("--seed", type=whole(0), default=1)
    s.add_argument("--json", help="write the report as JSON to this file")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_bench_cache)

    s = bsub.add_parser("vm", help="loads and stores on address spaces: fault rates, TLB, swap traffic")
    s.add_argument("--target", type=target, default="127.0.0.1:50051", help=TARGET_HELP)
    s.add_argument("--processes", "-p", type=COUNT, default=2, help="client processes (default 2)")
    s.add_argument("--seconds", "-t", type=SECONDS, default=5.0, help="measured seconds (default 5)")
    s.add_argument("--pattern", default="random", choices=["sequential", "random", "loop", "working-set"])
    s.add_argument("--pages", type=COUNT, default=256, help="pages each process touches (its working set)")
    s.add_argument("--page-table", default="multilevel", choices=["linear", "hybrid", "multilevel", "inverted"])
    s.add_argument("--shared", action="store_true", help="all processes use one space (default: one each)")
    s.add_argument("--batch", type=COUNT, default=100, help="accesses per stream message (default 100)")
    s.add_argument("--write-ratio", type=FRACTION, default=0.3, help="share of stores (default 0.3)")
    s.add_argument("--pin", action="store_true", help="process i talks to core i %% cores on its own port")
    s.add_argument("--seed", type=whole(0), default=1)
    s.add_argument("--json", help="write the report as JSON to this file")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_bench_vm)
    for command in (*sub.choices.values(), *bsub.choices.values()):
        command.set_defaults(prog=command.prog)  # for errors found after parsing (usage_error)
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
