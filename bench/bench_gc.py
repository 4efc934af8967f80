"""The managed heap's collector across heap sizes: each GC workload at 1x to 6x its minimum heap.

A GC's cost depends on how much room it has: the same program in a heap barely larger than its live
data collects all the time, in six times that rarely (the range GC studies sweep, e.g. Blackburn
et al., "Myths and realities: the performance impact of garbage collection", SIGMETRICS 2004).
Every figure comes from a real server started here (tools/gcbench.py's own_server, sized for the
largest heap) and `memsim bench gc`'s workloads (tools/gcloads.py, tools/splay.py):

1. the minimum: the smallest old space each workload completes its set-up and a run in, found by
   bisection in whole heap pages below a generous 24 MiB (tools/gcheap.py, the same search as
   `memsim experiment gc --heaps`);
2. the sweep: old-space limits of 1, 1.5, 2, 3, 4 and 6 times that minimum, each run with
   `clients` isolates for `seconds`: GC counts, time in GC, pause p50/p99/max, MMU at 10/50/100 ms,
   survival and promotion ratios, or the OOM (Node's "JavaScript heap out of memory") where the
   heap is too small.

    python bench/bench_gc.py [--seconds 4] [--clients 2] [--scale 0.0625] [--out bench/results/gc.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from memsim.sim.system import MachineConfig
from memsim.sim.v8.spaces import SpaceBounds
from memsim.tools.gcbench import own_server, run_workload
from memsim.tools.gcheap import multiples, smallest_heap
from memsim.tools.harness import write_json
from memsim.tools.loads import GC_WORKLOADS, GcLoad

FACTORS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
MACHINE = MachineConfig()  # the server's: `memsim serve` runs with MachineConfig's v8 defaults
PAGE = MACHINE.v8_page_size  # heap sizes are whole pages
GENEROUS = 24 << 20  # room for each workload's live data at the default scale, within v8_max_heap


def fits(load: GcLoad, max_old: int) -> bool:
    """Whether an isolate of this old space fits the machine's v8_max_heap reservation."""
    return SpaceBounds(load.semi_space, max_old, PAGE).reservation <= MACHINE.v8_max_heap


def pages(n: float) -> int:
    return multiples(int(n), [1.0], PAGE)[0][1]


def point(load: GcLoad, workload: str, max_old: int) -> dict[str, Any]:
    try:
        r = run_workload(replace(load, max_old_space=max_old), workload)
    except RuntimeError as e:  # a lane failed: at the smallest heaps, the OOM
        return {"max_old_space": max_old, "error": str(e).splitlines()[-1]}
    f = r["figures"]
    return {"max_old_space": max_old, "gc_counts": f["gc_counts"], "gc_time_share": f["gc_time_share"],
            "pauses": {k: {s: v[s] for s in ("p50_ms", "p99_ms", "max_ms")} for k, v in f["pauses"].items()},
            "mmu": f["mmu"], "survival_ratio": f["survival"]["survival_ratio"],
            "promotion_ratio": f["survival"]["promotion_ratio"], "allocation_mib_s": f["allocation_mib_s"],
            "ops_per_s": r["client"]["ops_per_s"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--scale", type=float, default=GcLoad().scale)
    ap.add_argument("--workloads", nargs="+", default=list(GC_WORKLOADS), choices=GC_WORKLOADS)
    ap.add_argument("--out", default="bench/results/gc.json")
    args = ap.parse_args()
    load = GcLoad(clients=args.clients, seconds=args.seconds, scale=args.scale, progress=False)
    out: dict[str, Any] = {"host": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                    "machine": platform.machine()},
                           "load": {"clients": load.clients, "seconds": load.seconds, "scale": load.scale,
                                    "semi_space": load.semi_space}, "workloads": {}}
    t0 = time.monotonic()
    with own_server(replace(load, max_old_space=MACHINE.v8_max_heap // 2)) as srv:  # room for any heap that fits
        load.target = srv.target
        for w in args.workloads:
            least = smallest_heap(srv.target, replace(load, max_old_space=GENEROUS), w, PAGE).bytes
            print(f"{w}: minimum heap {least / (1 << 20):.2f} MiB", flush=True)
            rows = []
            for k in FACTORS:
                if not fits(load, pages(k * least)):
                    rows.append({"factor": k, "max_old_space": pages(k * least), "error": "above v8_max_heap"})
                    print(f"  {k:>3g}x: above the machine's v8_max_heap ({MACHINE.v8_max_heap >> 20} MiB)")
                    continue
                p = {"factor": k, **point(load, w, pages(k * least))}
                rows.append(p)
                if "error" in p:
                    print(f"  {k:>3g}x {p['max_old_space'] >> 10:>7} KiB: {p['error']}", flush=True)
                    continue
                pa = p["pauses"]["all"]
                print(f"  {k:>3g}x {p['max_old_space'] >> 10:>7} KiB: GCs {p['gc_counts']}, in GC "
                      f"{p['gc_time_share'] * 100:5.1f}%, p99 {pa['p99_ms']:.2f} ms, max {pa['max_ms']:.2f} ms, "
                      f"MMU 10/50/100 ms {' / '.join(str(u) for u in p['mmu'].values())}", flush=True)
            out["workloads"][w] = {"minimum_heap": least, "points": rows}
    out["seconds"] = round(time.monotonic() - t0, 1)
    write_json(args.out, out)
    print(f"wrote {Path(args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
