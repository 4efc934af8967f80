"""Atomic against incremental marking on one workload: the Mark-Compact's main-thread pause, the
marking left in it, and the incremental steps that took the rest (sim/v8/incremental_marking.py).

A Splay-like program (Octane's Splay replaces the nodes of a long-lived structure) runs in one
isolate on a machine made here (no server: this times the collector, not the wire): a global array
holds `--nodes` nodes; each iteration replaces a random one with a new node and allocates a piece
of garbage. Old space fills with replaced nodes, so the old generation's limit is met again and
again: with atomic marking each time a Mark-Compact marks everything in its pause; with
incremental marking (the isolate created with incremental_marking=True, V8's default) the limit
starts a cycle, the allocation observers step it, and the Mark-Compact that ends it only
re-scans the roots and drains what is left. The same seed drives both runs. Per mode: the
Mark-Compacts' pauses and the `mark` phase inside them (the tracer's figures), the steps' count,
total and longest time, and the heap at each Mark-Compact (incremental marking lets the heap grow
during the cycle and keeps its floating garbage to the next one). Times are wall-clock on this
host; the first Mark-Compact of each run is left out (it is the one that compiles nothing only
if warmup.warm() ran first, which it does).

    python bench/micro_marking.py [--nodes 8000] [--iterations 40000] [--out bench/results/micro_marking.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
from pathlib import Path
from typing import Any

from memsim.sim.system import Machine, MachineConfig
from memsim.sim.v8 import warmup

MiB = 1 << 20


def _figures(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "median_ms": round(statistics.median(values), 3) if values else 0.0,
            "max_ms": round(max(values, default=0.0), 3), "total_ms": round(sum(values), 3)}


def measure(incremental: bool, nodes: int, iterations: int, max_old: int = 4 * MiB, seed: int = 1) -> dict[str, Any]:
    """One run of the program; the figures of its Mark-Compacts and marking steps."""
    m = Machine.create(MachineConfig(memory_bytes=128 * MiB, vm_memory=64 * MiB, cores=1, v8_isolates=1,
                                     v8_page_size=256 << 10))
    rng = random.Random(seed)
    try:
        v8 = m.v8(0, m.heap(0))
        iso_id = v8.create_isolate(semi_space_size=256 << 10, max_old_space_size=max_old,
                                   incremental_marking=incremental)
        with v8.enter(iso_id) as iso:
            root = iso.make_persistent(iso.new_object(nfields=nodes, pretenure=True))
            for i in range(nodes):
                iso.open_scope()
                iso.set_field(root, i, iso.new_object([i, 0], payload=b"n" * 100))
                iso.close_scope()
            iso.gc()
            first = iso.counters()["last_seq"]
            for k in range(iterations):
                iso.open_scope()
                i = rng.randrange(nodes)
                iso.set_field(root, i, iso.new_object([i, k], payload=b"n" * 100))
                iso.new_object([1, 2], payload=b"g" * 40)
                iso.close_scope()
            mcs = [e for e in iso.trace(after_seq=first) if e.kind == "Mark-Compact"]
        v8.destroy_isolate(iso_id)
    finally:
        m.destroy()
    steps = [ms for e in mcs for ms in e.marking_step_ms]
    return {"incremental": incremental, "mark_compacts": _figures([e.pause_ms for e in mcs]),
            "mark_in_pause": _figures([e.mark_ms for e in mcs]), "steps": _figures(steps),
            "steps_counted": sum(e.incremental_steps for e in mcs),
            "heap_at_mc_kib": [e.live_before >> 10 for e in mcs], "after_mc_kib": [e.live_after >> 10 for e in mcs],
            "reasons": sorted({e.reason for e in mcs})}


def run(nodes: int, iterations: int) -> dict[str, Any]:
    warmup.warm()  # every kernel compiled (or loaded) before the timed runs, as the supervisor does
    return {"host": platform.node(), "python": platform.python_version(), "cpus": os.cpu_count(), "nodes": nodes,
            "iterations": iterations, "atomic": measure(False, nodes, iterations),
            "incremental": measure(True, nodes, iterations)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=8000, help="nodes of the long-lived array")
    ap.add_argument("--iterations", type=int, default=40000, help="nodes replaced (each with one garbage object)")
    ap.add_argument("--out", default="bench/results/micro_marking.json")
    args = ap.parse_args()
    report = run(args.nodes, args.iterations)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    for mode in ("atomic", "incremental"):
        r = report[mode]
        mc, mark, st = r["mark_compacts"], r["mark_in_pause"], r["steps"]
        print(f"{mode:11s}: {mc['n']} Mark-Compacts, pause median {mc['median_ms']:.2f} max {mc['max_ms']:.2f} ms; "
              f"marking in the pause median {mark['median_ms']:.2f} ms; {st['n']} steps, median "
              f"{st['median_ms']:.2f} longest {st['max_ms']:.2f} total {st['total_ms']:.1f} ms; heap at MC "
              f"{r['heap_at_mc_kib']} KiB")


if __name__ == "__main__":
    main()
