"""memsim's Redis-protocol port against a real Redis, measured by Redis's own redis-benchmark, in one run.

    python bench/bench_resp_vs_redis.py [--cores 2] [--requests 100000] [--clients 50] [--size 32] [--keys 10000]
                                        [--pipelines 1,16] [--grpc-processes 4] [--out results/resp_vs_redis.json]

Finds or installs Debian's redis-tools and redis-server (bench/redis_peer.py), starts a private redis-server
(no persistence, stopped by its PID) and a memsim server (tools/local.py: its own process, free ports),
then runs, for each pipeline depth, `redis-benchmark -h 127.0.0.1 -p PORT -c CLIENTS -n REQUESTS -P DEPTH
-d SIZE -r KEYS -t set,get --csv` against Redis, then against memsim's shared RESP port: the same command
line, only the port differs. Each figure is redis-benchmark's own requests per second; the JSON has both
servers' figures, memsim's / Redis's ratio, and the command lines.

The same workload through memsim's gRPC front end follows (tools/cachebench.py: `--grpc-processes`
client processes, memsim's Cache client, pipelines of the same depth, uniform keys in the same range, values
of the same size; 100 % SET, then 100 % GET), so a user sees what each front end costs.

The machine is shared by both servers and the benchmark client: on a small machine the figures say
as much about the client's CPU as about either server; the JSON records the CPU count.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from redis_peer import RedisServer, ensure_redis_server, ensure_redis_tools, redis_version

from memsim.tools.cachebench import run_cache_load
from memsim.tools.harness import write_json
from memsim.tools.loads import CacheLoad
from memsim.tools.local import LocalServer

TESTS = ("SET", "GET")


def benchmark_command(exe: str, port: int, a: argparse.Namespace, depth: int) -> list[str]:
    return [exe, "-h", "127.0.0.1", "-p", str(port), "-c", str(a.clients), "-n", str(a.requests), "-P", str(depth),
            "-d", str(a.size), "-r", str(a.keys), "-t", ",".join(t.lower() for t in TESTS), "--csv"]


def run_benchmark(cmd: list[str], timeout: float) -> dict[str, float]:
    """redis-benchmark's requests per second by test, from its --csv output."""
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    rows = {row["test"]: float(row["rps"]) for row in csv.DictReader(io.StringIO(r.stdout)) if row.get("rps")}
    missing = [t for t in TESTS if t not in rows]
    if missing:
        raise RuntimeError(f"`{' '.join(cmd)}` reported no {missing}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return {t: rows[t] for t in TESTS}


def grpc_figures(target: str, a: argparse.Namespace, depth: int) -> dict[str, float]:
    """The same SETs and GETs through memsim's gRPC Cache pipeline, from several processes."""
    out = {}
    for test, reads in (("SET", 0.0), ("GET", 1.0)):
        load = CacheLoad(target=target, kind="memsim", processes=a.grpc_processes, seconds=a.grpc_seconds,
                         warmup=1.0, workload="uniform", keys=a.keys, read_ratio=reads, value_size=str(a.size),
                         pipeline=depth, fill_on_miss=False, progress=False, flush=False)
        r = run_cache_load(load)
        if r["errors"]:
            raise RuntimeError(f"the gRPC {test} load had {r['errors']} errors: {r['error_samples']}")
        out[test] = float(r["ops_per_s"])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="memsim cores (default: CPUs)")
    p.add_argument("--memory", default="256MiB", help="memsim's physical memory (default 256MiB)")
    p.add_argument("--requests", type=int, default=100_000, help="redis-benchmark -n (default 100000)")
    p.add_argument("--clients", type=int, default=50, help="redis-benchmark -c (default 50)")
    p.add_argument("--size", type=int, default=32, help="value size in bytes, redis-benchmark -d (default 32)")
    p.add_argument("--keys", type=int, default=10_000, help="key range, redis-benchmark -r (default 10000)")
    p.add_argument("--pipelines", default="1,16", help="pipeline depths, redis-benchmark -P (default 1,16)")
    p.add_argument("--grpc-processes", type=int, default=4, help="client processes of the gRPC load (default 4)")
    p.add_argument("--grpc-seconds", type=float, default=5.0, help="seconds of each gRPC load (default 5)")
    p.add_argument("--no-grpc", action="store_true", help="skip the gRPC front end's figures")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds one redis-benchmark run may take")
    p.add_argument("--out", default="results/resp_vs_redis.json")
    a = p.parse_args(argv)
    depths = [int(x) for x in a.pipelines.split(",")]
    _cli, bench = ensure_redis_tools(quiet=False)
    ensure_redis_server(quiet=False)
    runs: list[dict[str, Any]] = []
    t0 = time.time()
    with RedisServer() as redis, LocalServer(cores=a.cores, memory=a.memory) as memsim:
        assert redis.port is not None and memsim.resp_port is not None
        for depth in depths:
            row: dict[str, Any] = {"pipeline": depth}
            for name, port in (("redis", redis.port), ("memsim_resp", memsim.resp_port)):
                cmd = benchmark_command(bench, port, a, depth)
                row[name] = run_benchmark(cmd, a.timeout)
                row[f"{name}_command"] = " ".join(cmd)
                print(f"-P {depth} {name}: " + ", ".join(f"{t} {v:,.0f}/s" for t, v in row[name].items()),
                      file=sys.stderr)
            row["ratio_resp_to_redis"] = {t: round(row["memsim_resp"][t] / row["redis"][t], 3) for t in TESTS}
            if not a.no_grpc:
                row["memsim_grpc"] = grpc_figures(memsim.target, a, depth)
                row["ratio_grpc_to_redis"] = {t: round(row["memsim_grpc"][t] / row["redis"][t], 3) for t in TESTS}
                print(f"-P {depth} memsim_grpc: " + ", ".join(f"{t} {v:,.0f}/s" for t, v in row["memsim_grpc"].items()),
                      file=sys.stderr)
            runs.append(row)
    result = {
        "benchmark": "redis-benchmark against Redis and memsim's RESP port; memsim's gRPC pipeline alongside",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
        "redis_version": redis_version(), "memsim_cores": a.cores, "memsim_memory": a.memory,
        "requests": a.requests, "clients": a.clients, "value_size": a.size, "key_range": a.keys,
        "grpc_processes": None if a.no_grpc else a.grpc_processes, "seconds": round(time.time() - t0, 1),
        "runs": runs,
    }
    write_json(a.out, result)
    for row in runs:
        print(f"-P {row['pipeline']}: memsim RESP / Redis = " +
              ", ".join(f"{t} {row['ratio_resp_to_redis'][t]:.2f}x" for t in TESTS) +
              ("" if a.no_grpc else "; memsim gRPC / Redis = " +
               ", ".join(f"{t} {row['ratio_grpc_to_redis'][t]:.2f}x" for t in TESTS)))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
