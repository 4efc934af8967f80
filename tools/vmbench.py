"""`memsim bench vm`: many client processes loading and storing in address spaces.

Each process maps `pages` pages in its own space (or all share one, `--shared`), touches them
once (the warm-up: first-touch faults), then runs its access pattern in batches of `batch`
loads and stores of 8 bytes on the VM stream:

- `sequential`: address after address, 64 bytes apart (many accesses per page: TLB reach);
- `random`: a uniformly random page and offset;
- `loop`: page after page, one access each, cyclically (LRU's and FIFO's worst case once the
  loop is longer than the frames);
- `working-set`: a shuffled sweep over all `pages`, again and again (the working-set model:
  when the processes' sets together exceed the pool, every sweep faults: thrashing).

The parent reads vmstat at a barrier before and after the timed window (tools/harness.py), so faults, swap
traffic and TLB counts cover exactly the measured accesses. Reported: accesses/s, minor and
major faults per 1000 accesses, the TLB hit ratio, pswpin/pswpout, and p50/p99 per batch.
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

from memsim.client import Client, MemsimError, VMClient
from memsim.tools import harness
from memsim.tools.harness import Lane
from memsim.tools.loads import VmLoad


class Pattern:
    def __init__(self, load: VmLoad, index: int, base: int, page: int):
        self.load, self.base, self.page = load, base, page
        self.rng = random.Random(load.seed * 1000 + index)
        self.pos = index * 977
        self.order: list[int] = []

    def next(self) -> int:
        n, page = self.load.pages, self.page
        p = self.load.pattern
        if p == "sequential":
            self.pos += 64
            return self.base + self.pos % (n * page)
        if p == "random":
            return self.base + self.rng.randrange(n) * page + self.rng.randrange(0, page - 8, 8)
        if p == "loop":
            self.pos += 1
            return self.base + (self.pos % n) * page
        if not self.order:
            self.order = list(range(n))
            self.rng.shuffle(self.order)
        return self.base + self.order.pop() * page


@dataclass
class ProcResult:
    accesses: int
    errors: int
    histogram: bytes  # HdrHistogram encoding
    elapsed: float


def _worker(lane: Lane, load: VmLoad, space_id: int | None, cores: int) -> ProcResult:
    i = lane.index
    vm = VMClient(load.target, core=(i % cores) if load.pin else None, timeout=120)
    sp = None
    try:
        sp = vm.space(space_id) if space_id is not None else vm.create_space(load.page_table, name=f"bench{i}")
        page = int(vm.vmstat()["page_size"])
        base = sp.mmap(load.pages * page, kind="heap", name="bench")
        for lo in range(0, load.pages, 256):  # warm-up: first touch of every page
            b = sp.batch()
            for p in range(lo, min(load.pages, lo + 256)):
                b.store(base + p * page, b"%08d" % p)
            b.execute().raise_first()
        pat = Pattern(load, i, base, page)
        rng = random.Random(i)
        lane.meet()  # the parent reads vmstat
        t0 = time.monotonic()
        end = t0 + load.seconds
        n = errors = 0
        while time.monotonic() < end:
            b = sp.batch()
            for _ in range(load.batch):
                a = pat.next()
                if rng.random() < load.write_ratio:
                    b.store(a, b"12345678")
                else:
                    b.load(a, 8)
            s = time.perf_counter()
            r = b.execute()
            lane.record(time.perf_counter() - s)
            n += len(b)
            errors += len(r.errors)
            lane.count(n)
        elapsed = time.monotonic() - t0
        lane.meet()  # the parent reads vmstat again
        return ProcResult(n, errors, lane.hist.encode(), elapsed)
    finally:
        if space_id is None and sp is not None:
            with contextlib.suppress(Exception):  # the server may be gone: nothing else to free then
                sp.destroy()  # a failed run must not leave its frames and swap to the next one
        vm.close()


def _cores(target: str) -> int:
    """The server's cores, for --pin (1 if the allocator cannot say: pinning is optional)."""
    try:
        with Client(target) as c:
            return c.info().cores
    except MemsimError:
        return 1


def run_vm_load(load: VmLoad) -> dict[str, Any]:
    load.validate()
    with VMClient(load.target) as vm:
        shared = vm.create_space(load.page_table, name="bench-shared") if load.shared else None
        try:
            cores = _cores(load.target)
            w = harness.run(_worker, [(load, shared.id if shared else None, cores)] * load.processes, vm.vmstat,
                            seconds=load.seconds, timeout=load.seconds + 300, label=f"vm {load.pattern}",
                            progress=load.progress)
        finally:
            if shared is not None:
                shared.destroy()
    got: list[ProcResult] = w.results
    before, after = w.before, w.after
    hist = harness.merge(r.histogram for r in got)
    n = sum(r.accesses for r in got)
    elapsed = max(r.elapsed for r in got)
    d = {k: v - b for k, v in after.items() if isinstance(v, int) and isinstance(b := before.get(k), int)}
    hits, misses = d["tlb_hit"], d["tlb_miss"]
    return {
        "load": asdict(load), "accesses": n, "elapsed_s": round(elapsed, 3),
        "accesses_per_s": round(n / elapsed, 1), "errors": sum(r.errors for r in got),
        "faults_per_1000": round(1000 * d["pgfault"] / n, 3) if n else None,
        "major_faults_per_1000": round(1000 * d["pgmajfault"] / n, 3) if n else None,
        "tlb_hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
        "pswpin": d["pswpin"], "pswpout": d["pswpout"], "pgsteal": d["pgsteal"],
        "swap_bytes": d["bytes_swapped_in"] + d["bytes_swapped_out"],
        "latency_us": {**harness.latency(hist, ("p50", "p99")), "per": f"batch of {load.batch}"},
        "pool_frames": after["pool_frames"], "policy": after.get("policy"), "vmstat_delta": d,
    }


def print_report(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    ld = r["load"]
    t = Table(title=f"vm {ld['pattern']}: {ld['processes']} processes x {ld['pages']} pages "
                    f"({'one shared space' if ld['shared'] else 'a space each'}, {ld['page_table']}), "
                    f"pool {r['pool_frames']} frames, replacement {r['policy']}")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k, v in (("accesses/s", f"{r['accesses_per_s']:,.0f}"), ("faults per 1000 accesses", r["faults_per_1000"]),
                 ("major faults per 1000", r["major_faults_per_1000"]), ("TLB hit ratio", r["tlb_hit_ratio"]),
                 ("pswpin / pswpout", f"{r['pswpin']:,} / {r['pswpout']:,}"),
                 ("latency p50 / p99 (µs per batch)", f"{r['latency_us']['p50']:,} / {r['latency_us']['p99']:,}"),
                 ("errors", r["errors"])):
        t.add_row(k, str(v))
    Console().print(t)


def run_vm_bench(load: VmLoad, json_path: str | None = None, quiet: bool = False) -> int:
    r = run_vm_load(load)
    harness.emit(r, json_path, quiet, print_report)
    return 0 if r["accesses"] else 1
