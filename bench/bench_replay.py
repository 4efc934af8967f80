"""Trace replay speed: memsim's compiled loop against libCacheSim's C loop and cachetools, one run.

The trace is the same for everyone: simulate.zipf_trace(1M requests, 100k objects, alpha 1.0,
seed 42), written once as libCacheSim's oracleGeneral file by sim/trace's write_trace. For LRU,
SIEVE and S3-FIFO at each cache size, requests per second of
- memsim, compiled: simulate's compiled loop (sim/policies/compiled.py) over the trace's ids in
  memory, the policy's own kernels; "memsim_e2e" adds reading the file and renumbering its ids,
  the part of the work libCacheSim's figure includes;
- memsim, interpreted (--interpreted): simulate.run's Python loop over Keyed, the same kernels
  called one request at a time from Python (the loop the simulator had before it was compiled);
- libCacheSim (the `libcachesim` package, 0.3.5: its C cache and its C process_trace loop over
  its own oracleGeneral reader), S3-FIFO with its defaults, which memsim's `libcachesim` preset
  equals (the miss counts are reported beside each figure, and must agree). Its hash table is
  sized to the footprint (hashpower = ⌈log2 objects⌉, 17 here): at its default of 24 (16M buckets)
  the same loop ran 3-4× slower on this host, its cache misses in a 128 MiB table;
- cachetools (LRUCache: it has no SIEVE nor S3-FIFO), the loop `if k in c: c[k] else: c[k] = k`.
Each figure is the best of --repeats runs (the least disturbed by the host), after one untimed
run that compiles (memsim) or warms the caches. Ratios are memsim compiled over each peer.

    python bench/bench_replay.py [--sizes 808,8081] [--repeats 3] [--interpreted] [--out bench/results/replay.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cachetools
import libcachesim as lcs
import numpy as np

from memsim.sim.policies.compiled import dense_ids, replay_compiled
from memsim.sim.policies.simulate import make, run, zipf_trace
from memsim.sim.trace import TraceChunk, read_keys, write_trace

POLICIES = {"lru": (lcs.LRU, {}), "sieve": (lcs.Sieve, {}), "s3fifo": (lcs.S3FIFO, {"preset": "libcachesim"})}


def best(fn: Callable[[], int], repeats: int) -> tuple[float, int]:
    """(best seconds, misses) over `repeats` timed runs after an untimed one."""
    misses = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), misses


def cachetools_lru(trace: list[int], size: int) -> int:
    c: cachetools.LRUCache[int, int] = cachetools.LRUCache(maxsize=size)
    misses = 0
    for k in trace:
        if k in c:
            c[k]
        else:
            misses += 1
            c[k] = k
    return misses


def libcachesim_misses(cls: Any, size: int, path: str, n: int, hashpower: int) -> int:
    reader = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)
    miss_ratio, _ = cls(size, hashpower=hashpower).process_trace(reader)
    return round(miss_ratio * n)


def hashpower(objects: int) -> int:
    return max(10, (objects - 1).bit_length())


def time_all(name: str, size: int, options: dict[str, Any], peer: Any, ids: np.ndarray, trace: list[int], path: str,
             args: argparse.Namespace) -> dict[str, tuple[float, int]]:
    """Every contender's (best seconds, misses) for one policy at one size."""
    n = len(trace)
    figures = {
        "memsim": best(lambda: replay_compiled(name, ids, size, **options)[1], args.repeats),
        "memsim_e2e": best(lambda: replay_compiled(name, dense_ids(read_keys(path, "oracleGeneral"))[0], size,
                                                   **options)[1], args.repeats),
        "libcachesim": best(lambda: libcachesim_misses(peer, size, path, n, hashpower(args.objects)), args.repeats),
    }
    if name == "lru":
        figures["cachetools"] = best(lambda: cachetools_lru(trace, size), args.repeats)
    if args.interpreted:
        figures["memsim_interpreted"] = best(lambda: run(make(name, size, **options), trace, size).misses, 1)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--sizes", default="808,8081", help="cache sizes in objects (default: 0.8 %% and 8 %%)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--interpreted", action="store_true", help="also time the Python loop (slow: seconds a run)")
    ap.add_argument("--out", default="bench/results/replay.json")
    args = ap.parse_args()

    trace = zipf_trace(args.requests, args.objects, 1.0, seed=42)
    ids = np.asarray(trace, np.int64)
    n = len(trace)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "zipf.oracleGeneral")
        write_trace(path, [TraceChunk.of(ids)], "oracleGeneral")
        for size in (int(s) for s in args.sizes.split(",")):
            for name, (peer, options) in POLICIES.items():
                row: dict[str, Any] = {"policy": name, "size": size}
                figures = time_all(name, size, options, peer, ids, trace, path, args)
                for who, (secs, misses) in figures.items():
                    row[who] = {"requests_per_s": n / secs, "seconds": secs, "misses": misses}
                for who in figures:
                    if who != "memsim":
                        row[f"memsim_over_{who}"] = row["memsim"]["requests_per_s"] / row[who]["requests_per_s"]
                results.append(row)
                print(f"{name:7s} {size:6d}  " + "  ".join(
                    f"{who} {row[who]['requests_per_s'] / 1e6:6.2f} M/s ({row[who]['misses']})" for who in figures))
    doc = {"trace": {"requests": n, "objects": args.objects, "alpha": 1.0, "seed": 42},
           "host": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()},
           "libcachesim": getattr(lcs, "__version__", "unknown"), "libcachesim_hashpower": hashpower(args.objects),
           "repeats": args.repeats, "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
