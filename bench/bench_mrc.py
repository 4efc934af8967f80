"""A 100-size LRU miss-ratio curve on one Zipf trace: memsim's one pass (sim/trace/mrc.py: stack
distances with a Fenwick tree, a numba kernel) against libCacheSim running LRU once per size (its C
loop, through its Python package `libcachesim`, GPL, used here and in tests only, never by the
package) and against memsim's own trace simulator run once per size (sim/policies/simulate.py).
SHARDS' fixed-rate estimate (R = 0.01) is timed beside them, with its error.

All three read the same oracleGeneral file, written here from `zipf_trace` (seeded); memsim's
timings include reading it (read_keys), libCacheSim's runs read it through its own reader, as its
`cachesim` does. libCacheSim's LRU is given a hash table sized to the trace's footprint
(`hashpower` = ceil(log2(objects)), the fastest setting on this trace; its Python default, 2^24
buckets, is 3-7x slower per run here and would flatter memsim). Every method's miss counts are
checked equal at every size before any figure is reported.

    python bench/bench_mrc.py [--requests 1000000] [--objects 100000] [--alpha 1.0] [--sizes 100]
                              [--rounds 3] [--out bench/results/bench_mrc.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from memsim.sim.policies.simulate import simulate, zipf_trace
from memsim.sim.trace import TraceChunk, open_trace, read_keys, write_trace
from memsim.sim.trace.mrc import default_sizes, exact, mae, shards_rate

QUICK = {"requests": 20_000, "objects": 2_000, "sizes": 10, "rounds": 1}


def _best(rounds: int, fn: Any) -> tuple[float, Any]:
    best, out = math.inf, None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run(requests: int = 1_000_000, objects: int = 100_000, alpha: float = 1.0, n_sizes: int = 100, seed: int = 1,
        rounds: int = 3, own: bool = True, peer: bool = True) -> dict[str, Any]:
    keys = np.asarray(zipf_trace(requests, objects, alpha, seed=seed), np.int64)
    with tempfile.TemporaryDirectory(prefix="memsim-bench-mrc-") as tmp:
        path = str(Path(tmp) / "zipf.oracleGeneral")
        write_trace(path, [TraceChunk.of(keys)], "oracleGeneral")
        exact(keys[:1000])  # load the compiled kernel (numba's on-disk cache) before timing
        footprint = len(np.unique(keys))
        sizes = default_sizes(footprint, n_sizes)
        one_s, curve = _best(rounds, lambda: exact(read_keys(path), sizes))
        misses = curve.misses.tolist()
        shards_s, est = _best(rounds, lambda: shards_rate(open_trace(path), 0.01, sizes))
        report: dict[str, Any] = {
            "trace": {"requests": requests, "objects": objects, "alpha": alpha, "seed": seed, "footprint": footprint,
                      "format": "oracleGeneral"},
            "sizes": sizes.tolist(), "misses": misses,
            "memsim_one_pass": {"seconds": round(one_s, 4), "method": "stack distances, Fenwick tree (numba)"},
            "memsim_shards": {"seconds": round(shards_s, 4), "rate": 0.01, "mae": round(mae(curve, est), 6)},
            "host": {"python": sys.version.split()[0], "machine": platform.machine(), "rounds": rounds},
        }
        if peer:
            report["libcachesim"] = _libcachesim(path, sizes, footprint, misses, requests)
            report["speedup_vs_libcachesim"] = round(report["libcachesim"]["seconds"] / one_s, 2)
        if own:
            t0 = time.perf_counter()
            trace = keys.tolist()
            own_misses = [simulate("lru", trace, int(c)).misses for c in sizes]
            own_s = time.perf_counter() - t0
            if own_misses != misses:
                raise AssertionError("memsim's simulator and the one pass disagree")
            report["memsim_simulator"] = {"seconds": round(own_s, 3), "runs": len(sizes)}
            report["speedup_vs_memsim_simulator"] = round(own_s / one_s, 2)
    return report


def _libcachesim(path: str, sizes: np.ndarray, footprint: int, misses: list[int], requests: int) -> dict[str, Any]:
    import libcachesim as lcs  # test/bench-only peer (GPL)

    hashpower = max(10, math.ceil(math.log2(footprint)))
    reader = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)
    t0 = time.perf_counter()
    ratios = []
    for c in sizes.tolist():
        reader.reset()
        ratios.append(lcs.LRU(c, hashpower=hashpower).process_trace(reader)[0])
    seconds = time.perf_counter() - t0
    theirs = [round(r * requests) for r in ratios]
    if theirs != misses:
        bad = next(i for i, (a, b) in enumerate(zip(theirs, misses, strict=True)) if a != b)
        raise AssertionError(f"libCacheSim and memsim disagree at {sizes[bad]} objects: {theirs[bad]} != {misses[bad]}")
    version = getattr(lcs, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("libcachesim")
    return {"seconds": round(seconds, 3), "runs": len(sizes), "hashpower": hashpower, "version": version}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--sizes", type=int, default=100, help="cache sizes, evenly spaced up to the footprint")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="memsim's timings: the best of this many")
    ap.add_argument("--no-own", action="store_true", help="skip the runs of memsim's own simulator (the slow part)")
    ap.add_argument("--no-libcachesim", action="store_true", help="skip the peer")
    ap.add_argument("--quick", action="store_true", help=f"a small run: {QUICK}")
    ap.add_argument("--out", default="bench/results/bench_mrc.json")
    a = ap.parse_args()
    kw = {"requests": a.requests, "objects": a.objects, "n_sizes": a.sizes, "rounds": a.rounds}
    if a.quick:
        kw = {"requests": QUICK["requests"], "objects": QUICK["objects"], "n_sizes": QUICK["sizes"],
              "rounds": QUICK["rounds"]}
    r = run(alpha=a.alpha, seed=a.seed, own=not a.no_own, peer=not a.no_libcachesim, **kw)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(r, indent=2))
    n = len(r["sizes"])
    print(f"{r['trace']['requests']:,} requests, {r['trace']['footprint']:,} objects, {n} LRU sizes")
    print(f"  memsim one pass      {r['memsim_one_pass']['seconds']:8.3f} s")
    print(f"  memsim SHARDS R=0.01 {r['memsim_shards']['seconds']:8.3f} s  (MAE {r['memsim_shards']['mae']:.4f})")
    if "libcachesim" in r:
        print(f"  libCacheSim x{n}      {r['libcachesim']['seconds']:8.3f} s  -> one pass is "
              f"{r['speedup_vs_libcachesim']}x faster (miss counts equal at every size)")
    if "memsim_simulator" in r:
        print(f"  memsim simulator x{n} {r['memsim_simulator']['seconds']:8.3f} s  -> one pass is "
              f"{r['speedup_vs_memsim_simulator']}x faster")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
