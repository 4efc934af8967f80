"""`memsim` (pyproject's [project.scripts], or `python -m memsim.tools`): serve a machine, look at it, drive it.

    memsim serve [--cores 4] [--memory 64MiB] [--frame-size 4096] [--port 50051] [--no-caches] [--global-lock]
    memsim stats [--target HOST:PORT] [--json] [--all] [--check] [--objects [--core N] [--client ID]]
    memsim sizeclasses
    memsim demo                        start a default machine, run a short load, print, stop
    memsim cli [SET k v]               redis-cli for the cache (tools/repl.py)
    memsim vm                          vmstat and the address spaces (tools/vmreport.py)
    memsim gc [--isolate ID]           the managed heap's isolates: memoryUsage, heap statistics, GC figures
    memsim bench alloc|cache|vm|gc     load generators (tools/cli_bench.py)

Owns the parser and the commands other than bench. `serve`'s defaults are MachineConfig's fields
(sim/system.py) and its choices the tables that own them: replacement policies
(memsim.sim.policies.policy_names), maxmemory-policies (memsim.sim.cache.config.maxmemory_policies),
THP modes (memsim.sim.vm.kinds.THP_MODES). `serve` must fork its workers before gRPC is imported, so this
module and everything it imports at the top (flags.py, cli_bench.py, loads.py, sim/) import no gRPC;
each subcommand imports the client or the server when it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from memsim.server.exporter import DEFAULT_METRICS_PORT
from memsim.sim.alloc.layout import MAX_CORES
from memsim.sim.cache.config import maxmemory_policies
from memsim.sim.errors import SimError
from memsim.sim.policies import policy_names
from memsim.sim.system import VM_SHARE, MachineConfig, default_vm_memory
from memsim.sim.vm.kinds import THP_MODES
from memsim.sim.vm.layout import HUGE_FRAMES
from memsim.tools.cli_bench import add_bench_parsers
from memsim.tools.cli_experiment import add_experiment_parsers
from memsim.tools.cli_trace import add_trace_parsers
from memsim.tools.flags import (
    CLIENT_PORT,
    COUNT,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_TARGET,
    PORT,
    SECONDS,
    SERVE,
    TARGET_HELP,
    Parser,
    one_of,
    parse_bytes,
    real,
    server_error,
    size_text,
    target,
    usage_error,
    whole,
)

DEFAULT = MachineConfig()  # `memsim serve`'s defaults are the machine's own


def _add_machine_args(p: argparse.ArgumentParser) -> None:
    """The machine's flags: each default is MachineConfig's (sim/system.py), each list of choices its table's."""
    d = DEFAULT
    p.add_argument("--cores", type=whole(1, MAX_CORES), default=d.cores,
                   help=f"simulated cores = worker processes (default {d.cores})")
    p.add_argument("--memory", type=parse_bytes, default=d.memory_bytes,
                   help=f"physical memory (default {size_text(d.memory_bytes)})")
    p.add_argument("--frame-size", type=parse_bytes, default=d.frame_size,
                   help=f"frame (physical page) size (default {d.frame_size})")
    p.add_argument("--no-caches", action="store_true", help="experiment: no per-core caches, every alloc to mcentral")
    p.add_argument("--global-lock", action="store_true", help="experiment: one lock for all central lists and the heap")
    p.add_argument("--max-keys", type=whole(64, 1 << 26), default=d.max_keys,
                   help=f"entries of the cache's keyspace (default {d.max_keys})")
    p.add_argument("--vm-memory", type=parse_bytes, default=None,
                   help=f"physical memory given to virtual memory's frame pool (default: 1/{VM_SHARE} "
                        f"of --memory)")
    p.add_argument("--vm-policy", default=d.vm_policy, choices=policy_names(), metavar="POLICY",
                   help=f"page replacement: {one_of(policy_names(), d.vm_policy)}")
    p.add_argument("--swap", type=parse_bytes, default=d.swap_bytes, help="swap file size (default 4x --vm-memory)")
    p.add_argument("--tlb-entries", type=whole(1, 65536), default=d.tlb_entries,
                   help=f"TLB entries per core (default {d.tlb_entries})")
    p.add_argument("--tlb-ways", type=whole(1, 65536), default=d.tlb_ways,
                   help=f"TLB associativity (default {d.tlb_ways})")
    p.add_argument("--thp", default=d.thp, choices=THP_MODES,
                   help=f"transparent huge pages: {one_of(THP_MODES, d.thp)} (madvise: regions mapped with huge=True)")
    p.add_argument("--khugepaged-ms", type=whole(1), default=d.khugepaged_ms,
                   help=f"khugepaged's scan period (default {d.khugepaged_ms})")
    p.add_argument("--hugetlb-pages", type=whole(0), default=d.hugetlb_pages,
                   help=f"explicit huge pages of {HUGE_FRAMES} frames (2 MiB with 4 KiB frames) set aside at "
                        f"start, for mmap(hugetlb=True) (default {d.hugetlb_pages})")
    p.add_argument("--heap-in-vm", action="store_true",
                   help="experiment: the allocator's arena is address space 0 of the VM, paged like a process's heap")
    p.add_argument("--heap-virtual", type=parse_bytes, default=d.heap_virtual_bytes,
                   help="with --heap-in-vm: the arena's size, which may exceed physical memory (default --memory)")
    p.add_argument("--maxmemory", type=parse_bytes, default=d.maxmemory,
                   help=f"the cache's memory limit, as Redis's maxmemory (default {d.maxmemory} = none; CONFIG SET "
                        f"changes it)")
    p.add_argument("--maxmemory-policy", default=d.maxmemory_policy, choices=maxmemory_policies(), metavar="POLICY",
                   help=f"Redis's eviction policy or memsim's: {one_of(maxmemory_policies(), d.maxmemory_policy)}")


def machine_config(args: argparse.Namespace) -> MachineConfig:
    """The MachineConfig that `memsim serve` with these flags would build (not yet validated)."""
    return MachineConfig(memory_bytes=args.memory, frame_size=args.frame_size, cores=args.cores,
                         per_core_caches=not args.no_caches, global_lock=args.global_lock,
                         max_keys=args.max_keys, maxmemory=args.maxmemory, maxmemory_policy=args.maxmemory_policy,
                         vm_memory=default_vm_memory(args.memory, args.frame_size) if args.vm_memory is None
                         else args.vm_memory, vm_policy=args.vm_policy, swap_bytes=args.swap,
                         tlb_entries=args.tlb_entries, tlb_ways=args.tlb_ways, thp=args.thp,
                         khugepaged_ms=args.khugepaged_ms, heap_in_vm=args.heap_in_vm,
                         hugetlb_pages=args.hugetlb_pages, heap_virtual_bytes=args.heap_virtual)


def cmd_serve(args: argparse.Namespace) -> int:
    from memsim.server.supervisor import ServeOptions, serve  # gRPC is imported after the fork (supervisor.py)
    from memsim.sim.machine.shm import SharedMemoryFull

    config = machine_config(args)
    try:
        config.validate()
    except SimError as e:
        print(f"memsim serve: {e}", file=sys.stderr)
        return 2
    opts = ServeOptions(host=args.host, port=args.port, pin=not args.no_pin, start_timeout=args.start_timeout,
                        scavenge_period=args.scavenge_period, scavenge_idle=args.scavenge_idle,
                        stream_idle_s=args.stream_idle_timeout, trace_gc=args.trace_gc, resp_port=resp_port(args),
                        maxclients=args.maxclients)
    opts.metrics, opts.metrics_port = not args.no_metrics, args.metrics_port
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


def resp_port(args: argparse.Namespace) -> int | None:
    """--resp-port, else Redis's 6379 (ServeOptions), or free ports like the gRPC ones when --port is 0."""
    if args.no_resp:
        return None
    if args.resp_port is not None:
        return int(args.resp_port)
    return 0 if args.port == 0 else SERVE.resp_port


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
        return server_error("stats", args.target, e, e.code.name)
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
    return int(st["pool_frames"]) * int(st["page_size"])


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


def cmd_cli(args: argparse.Namespace) -> int:
    from memsim.tools.repl import main_cli

    target = args.target or f"{args.host}:{args.port}"
    return main_cli(target, args.command, True if args.raw else (False if args.no_raw else None), args.timeout)


def cmd_vm(args: argparse.Namespace) -> int:
    from memsim.tools.vmreport import main_vm

    return main_vm(args.target, args.space, args.json, args.timeout)


def cmd_gc(args: argparse.Namespace) -> int:
    from memsim.tools.gcreport import main_gc

    return main_gc(args.target, args.isolate, args.json, args.timeout)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="memsim", description="A simulated machine's memory, served over gRPC.")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="serve a machine until SIGINT/SIGTERM")
    _add_machine_args(s)
    s.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    s.add_argument("--port", type=PORT, default=DEFAULT_PORT,
                   help="shared port; core c also on port+1+c (0 = pick free)")
    s.add_argument("--resp-port", type=PORT, default=None,
                   help=f"the Redis protocol (redis-cli, redis-benchmark, redis-py): shared port; core c also on "
                        f"port+1+c (default {SERVE.resp_port}, or free ports when --port is 0; 0 = pick free)")
    s.add_argument("--no-resp", action="store_true", help="serve no Redis protocol, gRPC only")
    s.add_argument("--maxclients", type=whole(1), default=SERVE.maxclients,
                   help=f"Redis-protocol connections the machine accepts at once (default {SERVE.maxclients})")
    s.add_argument("--no-pin", action="store_true", help="do not pin worker c to CPU c %% ncpu")
    s.add_argument("--scavenge-period", type=SECONDS, default=SERVE.scavenge_period,
                   help=f"seconds between scavenger passes (default {SERVE.scavenge_period})")
    s.add_argument("--start-timeout", type=SECONDS, default=SERVE.start_timeout,
                   help=f"seconds each core has to start before the server gives up (default {SERVE.start_timeout:g})")
    s.add_argument("--scavenge-idle", type=real(0), default=SERVE.scavenge_idle,
                   help=f"release free pages idle this many seconds (default {SERVE.scavenge_idle})")
    s.add_argument("--stream-idle-timeout", type=SECONDS, default=SERVE.stream_idle_s, metavar="SECONDS",
                   help=f"end a batch or pipeline stream that sends no request for this long (default "
                        f"{SERVE.stream_idle_s:g}); clients open a new one")
    s.add_argument("--trace-gc", action="store_true",
                   help="print a line per garbage collection of an isolate, as node --trace-gc does")
    s.add_argument("--metrics-port", type=PORT, default=None,
                   help=f"Prometheus /metrics on this port of --host (default {DEFAULT_METRICS_PORT}, "
                        f"redis_exporter's; a free one with --port 0; 0 = pick free)")
    s.add_argument("--no-metrics", action="store_true", help="serve no /metrics")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("stats", help="heap figures, size classes in use and the lock table")
    s.add_argument("--target", type=target, default=DEFAULT_TARGET, help=TARGET_HELP)
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
    s.add_argument("--cores", type=whole(1, MAX_CORES), default=DEFAULT.cores,
                   help=f"simulated cores (default {DEFAULT.cores})")
    s.add_argument("--memory", type=parse_bytes, default=DEFAULT.memory_bytes,
                   help=f"physical memory (default {size_text(DEFAULT.memory_bytes)})")
    s.add_argument("--clients", type=COUNT, default=3, help="client processes of the load (default 3)")
    s.add_argument("--seconds", type=SECONDS, default=3.0, help="seconds of each load (default 3)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("cli", help="redis-cli for the cache: interactive, or one command from the arguments",
                       add_help=False)  # -h is the host, as in redis-cli
    s.add_argument("--help", action="help", help="show this help and exit")
    s.add_argument("--target", type=target, help="the server's HOST:PORT (instead of -h and -p)")
    s.add_argument("-h", "--host", default=DEFAULT_HOST, help=f"server host (default {DEFAULT_HOST})")
    s.add_argument("-p", "--port", type=CLIENT_PORT, default=DEFAULT_PORT,
                   help=f"server port (default {DEFAULT_PORT})")
    s.add_argument("--raw", action="store_true", help="bare replies (the default when stdout is not a terminal)")
    s.add_argument("--no-raw", action="store_true", help="typed replies even when stdout is not a terminal")
    s.add_argument("--timeout", type=SECONDS, default=10.0, help="seconds to wait for the server (default 10)")
    s.add_argument("command", nargs=argparse.REMAINDER, help="a command to run instead of the shell, e.g. SET k v")
    s.set_defaults(func=cmd_cli)

    s = sub.add_parser("vm", help="virtual memory: vmstat, and each address space's usage, faults and memory map")
    s.add_argument("--target", type=target, default=DEFAULT_TARGET, help=TARGET_HELP)
    s.add_argument("--space", type=whole(0), help="only this space")
    s.add_argument("--json", action="store_true")
    s.add_argument("--timeout", type=SECONDS, default=10.0, help="seconds to wait for the server (default 10)")
    s.set_defaults(func=cmd_vm)

    s = sub.add_parser("gc", help="the managed heap: each isolate's memoryUsage, getHeapStatistics, "
                                  "getHeapSpaceStatistics, GC counters and last --trace-gc lines")
    s.add_argument("--target", type=target, default=DEFAULT_TARGET, help=TARGET_HELP)
    s.add_argument("--isolate", type=whole(0), help="only this isolate (its id, as listed)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--timeout", type=SECONDS, default=10.0, help="seconds to wait for the server (default 10)")
    s.set_defaults(func=cmd_gc)

    add_bench_parsers(sub)
    add_experiment_parsers(sub)
    add_trace_parsers(sub)
    for command in sub.choices.values():
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

