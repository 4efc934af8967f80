"""The page heap's span allocation with pageAlloc's index (sim/alloc/pagealloc.py) against the
whole-arena first-fit scan it replaced, by machine size.

On a machine made here (no server: this times mheap, not the wire), under the heap lock as a
core holds it: spans of `--pages` pages fill 90 % of memory, every second one is freed, and as
many are allocated again into the holes. Reported per machine size: µs per span for the fill and
for the refill, with the index and with the old search (pagealloc.find replaced by the full scan
`pagealloc.scan`, the same page-map writes either way), and their ratio. Both run in this process,
one after the other, on fresh machines; the best of `--rounds` counts.

    python bench/micro_pageheap.py [--sizes 64,512,2048] [--pages 5] [--rounds 3]
                                   [--out bench/results/micro_pageheap.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memsim.sim.alloc import pagealloc
from memsim.sim.system import Machine, MachineConfig

MiB = 1 << 20


@contextmanager
def full_scan():
    """pagealloc.find as the old mheap._find_run: first fit over the whole arena's page map."""
    real = pagealloc.find
    pagealloc.find = pagealloc.scan_find
    try:
        yield
    finally:
        pagealloc.find = real


def one_round(mib: int, pages: int) -> dict[str, float]:
    m = Machine.create(MachineConfig(memory_bytes=mib * MiB, cores=1))
    try:
        mh = m.heap(0).mheap
        n = int(mib * MiB * 0.9) // (pages * 8192)
        with mh.lock:
            t0 = time.perf_counter()
            spans = [mh.alloc_pages(pages, 0) for _ in range(n)]
            t1 = time.perf_counter()
            for s in spans[::2]:
                mh.free_pages(s)
            t2 = time.perf_counter()
            for _ in range(len(spans[::2])):
                mh.alloc_pages(pages, 0)
            t3 = time.perf_counter()
        return {"fill_us": (t1 - t0) / n * 1e6, "refill_us": (t3 - t2) / len(spans[::2]) * 1e6, "spans": n}
    finally:
        m.destroy()


def best(mib: int, pages: int, rounds: int) -> dict[str, float]:
    runs = [one_round(mib, pages) for _ in range(rounds)]
    return {"fill_us": min(r["fill_us"] for r in runs), "refill_us": min(r["refill_us"] for r in runs),
            "spans": runs[0]["spans"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="64,512,2048", help="machine sizes in MiB")
    ap.add_argument("--pages", type=int, default=5, help="pages per span (5: a 40 KiB large object)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="bench/results/micro_pageheap.json")
    args = ap.parse_args()
    pagealloc.warm()
    rows: list[dict[str, Any]] = []
    for mib in (int(s) for s in args.sizes.split(",")):
        indexed = best(mib, args.pages, args.rounds)
        with full_scan():
            scanned = best(mib, args.pages, args.rounds)
        row = {"memory_mib": mib, "pages": args.pages, "spans": indexed["spans"],
               "index": {k: indexed[k] for k in ("fill_us", "refill_us")},
               "full_scan": {k: scanned[k] for k in ("fill_us", "refill_us")},
               "speedup_fill": scanned["fill_us"] / indexed["fill_us"],
               "speedup_refill": scanned["refill_us"] / indexed["refill_us"]}
        rows.append(row)
        print(f"{mib:>6} MiB  {row['spans']:>7} spans  fill {indexed['fill_us']:7.1f} µs "
              f"(scan {scanned['fill_us']:7.1f}, {row['speedup_fill']:.1f}×)  refill {indexed['refill_us']:7.1f} µs "
              f"(scan {scanned['refill_us']:7.1f}, {row['speedup_refill']:.1f}×)", flush=True)
    report = {"host": platform.node(), "python": platform.python_version(), "cpus": os.cpu_count(),
              "load": os.getloadavg(), "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
