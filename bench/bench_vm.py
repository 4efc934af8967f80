"""Virtual memory on the machine, in one run: thrashing, replacement policies, THP, page-table cost.

Every figure comes from real servers started here (memsim serve as a child process) and driven
by `memsim bench vm`'s load (tools/vmbench.py, on tools/harness.py) or the VM client:

1. Thrashing: 2 processes, working-set pattern (shuffled sweeps over all their pages), on a
   2 MiB pool (512 frames): 100 pages each (fits) against 1000 each (does not).
2. Replacement: 2 processes looping over 300 pages each (600 pages on 512 frames, a little too
   many: LRU's and FIFO's worst case) under each policy of sim/policies: faults per 1000
   accesses, swap traffic.
3. Transparent huge pages: random accesses over 4 MiB per process (2 processes, 32 MiB pool),
   --thp never against always: TLB hit ratio, accesses/s, p99 per batch, compaction stalls.
4. Page-table cost: 100 spaces with 32-bit linear tables on a server with 448 MiB of VM
   memory (the source material's 4 MiB each, 400 MiB in all), and 100 sparse 48-bit
   multilevel spaces (code at the bottom, a stack at the top).

    python bench/bench_vm.py [--seconds 4] [--out bench/results/vm.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

from memsim.client.vm import VMClient
from memsim.tools.harness import write_json
from memsim.tools.loads import VmLoad
from memsim.tools.local import LocalServer
from memsim.tools.vmbench import run_vm_load

POLICIES = ("fifo", "lru", "clock", "twolist", "sieve", "s3fifo")


def summary(r: dict) -> dict:
    d = r["vmstat_delta"]
    return {k: r[k] for k in ("accesses_per_s", "faults_per_1000", "major_faults_per_1000", "tlb_hit_ratio",
                              "pswpin", "pswpout", "errors", "latency_us")} | {
        "compact_stall": d.get("compact_stall", 0),
        # the simulated cost of translation: page-table reads per access (a TLB hit reads none)
        "walk_reads_per_access": round(d["pt_walk_levels"] / max(1, d["accesses"]), 3)}


def load(target: str, seconds: float, **kw) -> dict:
    return summary(run_vm_load(VmLoad(target=target, processes=kw.pop("processes", 2), seconds=seconds,
                                      progress=False, **kw)))


def thrashing(seconds: float) -> dict:
    out = {}
    with LocalServer(cores=2, memory="16MiB", extra=["--vm-memory", "2MiB", "--vm-policy", "twolist",
                                                     "--swap", "64MiB"]) as srv:
        for pages in (100, 1000):
            out[f"{pages}_pages_each"] = load(srv.target, seconds, pattern="working-set", pages=pages)
            print(f"  working set {pages:5d} pages x 2: {out[f'{pages}_pages_each']['accesses_per_s']:>9,.0f} "
                  f"accesses/s, {out[f'{pages}_pages_each']['faults_per_1000']} faults per 1000", flush=True)
    return out


def replacement(seconds: float) -> dict:
    out = {}
    for policy in POLICIES:
        with LocalServer(cores=2, memory="16MiB", extra=["--vm-memory", "2MiB", "--vm-policy", policy,
                                                         "--swap", "64MiB"]) as srv:
            out[policy] = load(srv.target, seconds, pattern="loop", pages=300)
            print(f"  {policy:8s}: {out[policy]['faults_per_1000']} faults per 1000 accesses, "
                  f"{out[policy]['accesses_per_s']:,.0f} accesses/s", flush=True)
    return out


def huge_pages(seconds: float) -> dict:
    out = {}
    for mode in ("never", "always"):
        with LocalServer(cores=2, memory="64MiB", extra=["--vm-memory", "32MiB", "--thp", mode,
                                                         "--tlb-entries", "64", "--tlb-ways", "4"]) as srv:
            out[mode] = load(srv.target, seconds, pattern="random", pages=1024, write_ratio=0.3)
            with VMClient(srv.target) as vm:
                st = vm.vmstat()
            out[mode] |= {k: st[k] for k in ("thp_fault_alloc", "thp_fault_fallback", "compact_stall",
                                             "compact_success", "thp_split_page")}
            print(f"  thp {mode:6s}: TLB hit ratio {out[mode]['tlb_hit_ratio']}, walk reads per access "
                  f"{out[mode]['walk_reads_per_access']}, {out[mode]['accesses_per_s']:,.0f} accesses/s, "
                  f"p99 {out[mode]['latency_us']['p99']} µs, {out[mode]['thp_fault_alloc']} huge pages", flush=True)
    return out


def table_cost() -> dict:
    out = {}
    with LocalServer(cores=1, memory="512MiB", extra=["--vm-memory", "448MiB", "--swap", "0"]) as srv, \
            VMClient(srv.target, timeout=120) as vm:
        t0 = time.perf_counter()
        spaces = [vm.create_space(page_table="linear", bits=32) for _ in range(100)]
        created = time.perf_counter() - t0
        linear = [s.stats().page_table_bytes for s in spaces]
        out["linear_32bit_each_bytes"] = sorted(set(linear))
        out["linear_32bit_100_spaces_bytes"] = sum(linear)
        out["linear_create_100_s"] = round(created, 2)
        for s in spaces:
            s.destroy()
        sparse = []
        for _ in range(100):
            s = vm.create_space(page_table="multilevel", bits=48)
            code = s.mmap(64 << 10, prot="rx", kind="code")
            stack = s.mmap(64 << 10, kind="stack")
            s.load(code, 1)
            s.store(stack + (64 << 10) - 8, b"ret addr")
            sparse.append(s.stats().page_table_bytes)
        out["multilevel_48bit_sparse_each_bytes"] = sorted(set(sparse))
        out["multilevel_48bit_100_spaces_bytes"] = sum(sparse)
    print(f"  100 x 32-bit linear: {out['linear_32bit_100_spaces_bytes']:,} bytes of page tables; "
          f"100 sparse 48-bit multilevel: {out['multilevel_48bit_100_spaces_bytes']:,}", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="measured seconds per load")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "vm.json"))
    args = ap.parse_args()
    result: dict = {"host": {"cpus": os.cpu_count(), "python": platform.python_version()}, "args": vars(args)}
    print("thrashing", flush=True)
    result["thrashing"] = thrashing(args.seconds)
    print("replacement (2 loops of 300 pages on 512 frames)", flush=True)
    result["replacement"] = replacement(args.seconds)
    print("transparent huge pages (2 x 4 MiB, random)", flush=True)
    result["huge_pages"] = huge_pages(args.seconds)
    print("page-table cost", flush=True)
    result["page_tables"] = table_cost()
    write_json(args.out, result)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
