"""Allocator and RPC benchmark: one run, figures as ratios, JSON out.

Part 1, the cost of the wire. One client process drives a 1-core server with the
Larson-style load, first with one unary call per operation, then with 100 operations per
stream message. Server CPU per operation = the worker's utime+stime (from /proc) over the
run divided by the operations served. The ratio batch/unary is the figure that matters
(roughly 0.5 ms per unary call against a few µs per op batched, in gRPC-Python: a unary call
pays for a whole HTTP/2 request and its Python handlers, a batched op only for its share of one message).

Part 2, the allocator designs on the same workload, with 1, 2 and 4 client
processes, each pinned to its own core of a 4-core server (this host has 2 CPUs, so 4
workers and 4 clients share them; the ordering of the designs and the lock figures are what
this shows, not scaling):
    cached    per-core caches + a lock per size class (Go / tcmalloc)
    nocache   every allocation and free goes to mcentral under its lock
    global    per-core caches, but one lock for every central list and the page heap
    nocache+global  both: every operation takes the one lock
For each: ops/s, p50/p99 batch latency, central-lock acquisitions per op, contended share.

    python bench/bench_alloc.py [--seconds 5] [--out bench/results/alloc.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from memsim.tools.harness import write_json
from memsim.tools.loadgen import run_alloc_load
from memsim.tools.loads import AllocLoad
from memsim.tools.local import LocalServer, cpu_seconds

DESIGNS = {
    "cached": {},
    "nocache": {"no_caches": True},
    "global": {"global_lock": True},
    "nocache+global": {"no_caches": True, "global_lock": True},  # where one lock for everything bites
}


def rpc_cost(seconds: float) -> dict:
    out = {}
    with LocalServer(cores=1, memory="64MiB") as srv:
        for mode, batch in (("unary", 1), ("batch100", 100)):
            pid = srv.worker_pids[0]
            cpu0 = cpu_seconds(pid)
            r = run_alloc_load(AllocLoad(target=srv.target, processes=1, seconds=seconds, batch=batch, slots=500,
                                         cross_free=0.0, progress=False))
            cpu = cpu_seconds(pid) - cpu0
            out[mode] = {"ops": r["ops"], "ops_per_s": r["ops_per_s"], "server_cpu_s": cpu,
                         "server_cpu_us_per_op": cpu / r["ops"] * 1e6, "latency_us": r["latency_us"]}
    out["batch_over_unary_cpu_per_op"] = out["batch100"]["server_cpu_us_per_op"] / out["unary"]["server_cpu_us_per_op"]
    return out


def designs(seconds: float, procs: list[int]) -> dict:
    out: dict[str, dict] = {}
    for name, switches in DESIGNS.items():
        out[name] = {}
        for p in procs:
            with LocalServer(cores=4, memory="64MiB", **switches) as srv:
                r = run_alloc_load(AllocLoad(target=srv.target, processes=p, seconds=seconds, batch=100,
                                             slots=1000, pin=True, cross_free=0.1, progress=False))
            locks = r["locks"]
            acq = sum(x["acquisitions"] for x in locks)
            cont = sum(x["contended"] for x in locks)
            out[name][str(p)] = {
                "ops_per_s": r["ops_per_s"], "ops": r["ops"], "errors": r["errors"],
                "p50_us": r["latency_us"]["p50"], "p99_us": r["latency_us"]["p99"],
                "central_lock_acq_per_op": r["central_lock_acquisitions_per_op"],
                "lock_acq_per_op": acq / r["ops"] if r["ops"] else 0.0,
                "contended_share": cont / acq if acq else 0.0,
                "lock_wait_ms": sum(x["wait_ns"] for x in locks) / 1e6,
                "mcache_hits": r["mcache_hits"],
            }
    for name in out:
        for p in out[name]:
            out[name][p]["vs_cached"] = out[name][p]["ops_per_s"] / out["cached"][p]["ops_per_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--procs", default="1,2,4")
    ap.add_argument("--out", default="bench/results/alloc.json")
    args = ap.parse_args()
    t0 = time.time()
    result = {
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()},
        "seconds_per_run": args.seconds,
        "rpc": rpc_cost(args.seconds),
        "designs": designs(args.seconds, [int(x) for x in args.procs.split(",")]),
    }
    result["wall_s"] = time.time() - t0
    write_json(args.out, result)
    rpc = result["rpc"]
    print(f"server CPU per op: unary {rpc['unary']['server_cpu_us_per_op']:.1f} µs, "
          f"batch of 100 {rpc['batch100']['server_cpu_us_per_op']:.1f} µs "
          f"(ratio {rpc['batch_over_unary_cpu_per_op']:.4f})")
    print(f"{'design':14} {'procs':>5} {'ops/s':>10} {'vs cached':>9} {'p99 µs':>8} {'central acq/op':>15} "
          f"{'contended':>9}")
    for name, rows in result["designs"].items():
        for p, r in rows.items():
            print(f"{name:14} {p:>5} {r['ops_per_s']:10.0f} {r['vs_cached']:9.2f} {r['p99_us']:8d} "
                  f"{r['central_lock_acq_per_op']:15.4f} {r['contended_share']:9.3f}")
    print(f"wrote {args.out} in {result['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
