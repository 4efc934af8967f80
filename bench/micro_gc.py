"""The scavenger's speed, compiled against interpreted: objects and bytes copied per second of GC.

A binary tree (Boehm's GCBench shape: every node two fields and a small payload) is built in one
isolate on a machine made here (no server: this times the collector, not the wire), held by a
global handle, and scavenged twice: the first scavenge copies every node within new space, the
second promotes every node to old space (V8's age mark: promotion on the second survival). The
rate is (nodes copied + nodes promoted) and words copied over the scavenger's time (the event's
`scavenge_ms`; `pause_ms`, which adds the tracer's own work, is reported beside it), with the
host-independent work counters. The tree is built and scavenged `--rounds` times; the best round
counts (the least disturbed by the host). Promotion's time includes committing old-space pages
(pinning their frames through the VM), which copying within new space does not pay.

The same program runs twice: in this process with the kernels compiled by numba (compiled
before timing, as the supervisor does before forking its cores), and in a child process with
NUMBA_DISABLE_JIT=1, where the same kernels run as plain Python.

    python bench/micro_gc.py [--depth 16] [--rounds 3] [--out bench/results/micro_gc.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from memsim.sim.system import Machine, MachineConfig
from memsim.sim.v8 import Handle, Isolate, jit, warmup
from memsim.sim.v8.tracer import GcEvent

MiB = 1 << 20
PAYLOAD = b"node...."  # 8 bytes: a node is 32 bytes (map word, two fields, payload)


def build_tree(iso: Isolate, depth: int) -> Handle:
    """A complete binary tree of 2^depth - 1 nodes, children before parents, each subtree built in
    its own handle scope (escaping its root), so that only O(depth) local handles are alive."""
    iso.open_scope()
    if depth == 1:
        node = iso.new_object([0, 0], payload=PAYLOAD)
    else:
        left = build_tree(iso, depth - 1)
        node = iso.new_object([left, build_tree(iso, depth - 1)], payload=PAYLOAD)
    escaped = iso.close_scope(escape=node)
    assert escaped is not None
    return escaped


def rates(ev: GcEvent) -> dict[str, Any]:
    pause_s = ev.scavenge_ms / 1e3
    nodes = ev.nodes_copied_in_new + ev.nodes_promoted
    return {"pause_ms": round(pause_s * 1e3, 3), "nodes": nodes, "bytes_copied": ev.words_copied * 8,
            "objects_per_s": round(nodes / pause_s), "bytes_per_s": round(ev.words_copied * 8 / pause_s),
            "objects_scanned": ev.objects_scanned, "words_scanned": ev.words_scanned,
            "slots_visited": ev.slots_visited, "roots_ms": round(ev.scavenge_roots_ms, 3),
            "event_pause_ms": round(ev.pause_ms, 3)}


def measure(depth: int, rounds: int) -> dict[str, Any]:
    """Build and scavenge the tree `rounds` times in a fresh machine; the best copy and promote rounds."""
    nodes = (1 << depth) - 1
    semi = max(1, -(-(nodes * 32 * 2) // MiB)) * MiB
    m = Machine.create(MachineConfig(memory_bytes=256 * MiB, vm_memory=192 * MiB, v8_isolates=1,
                                     v8_max_heap=256 * MiB, v8_page_size=256 << 10))
    try:
        t0 = time.perf_counter()
        warmup.warm()
        warm_s = time.perf_counter() - t0
        v8 = m.v8(0, m.heap(0))
        iso_id = v8.create_isolate(semi_space_size=semi, max_old_space_size=max(8 * MiB, rounds * semi))
        copy: list[dict[str, Any]] = []
        promote: list[dict[str, Any]] = []
        with v8.enter(iso_id) as iso:
            for _ in range(rounds):
                iso.open_scope()
                root = iso.make_persistent(build_tree(iso, depth))
                iso.close_scope()
                copy.append(rates(iso.gc(minor=True)))
                promote.append(rates(iso.gc(minor=True)))
                assert copy[-1]["nodes"] == promote[-1]["nodes"] == nodes, (copy[-1], promote[-1])
                iso.drop(root)
    finally:
        m.destroy()
    return {"jit": jit.JIT_ENABLED, "nodes": nodes, "semi_space_size": semi, "warm_s": round(warm_s, 3),
            "copy": max(copy, key=lambda r: r["objects_per_s"]),
            "promote": max(promote, key=lambda r: r["objects_per_s"])}


def run(depth: int, rounds: int) -> dict[str, Any]:
    on = measure(depth, rounds)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    child = subprocess.run([sys.executable, __file__, "--child", "--depth", str(depth), "--rounds", "1"],
                           env=env, capture_output=True, text=True, check=True)
    off = json.loads(child.stdout)
    ratio = {kind: round(on[kind]["objects_per_s"] / max(1, off[kind]["objects_per_s"]), 1)
             for kind in ("copy", "promote")}
    return {"host": platform.node(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "depth": depth, "jit_on": on, "jit_off": off, "speedup": ratio}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--depth", type=int, default=16, help="the tree's depth (2^depth - 1 nodes)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="bench/results/micro_gc.json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.depth, args.rounds)))
        return
    report = run(args.depth, args.rounds)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    for name in ("jit_on", "jit_off"):
        for kind in ("copy", "promote"):
            r = report[name][kind]
            print(f"{name:7s} {kind:7s}: {r['nodes']:>7,} nodes in {r['pause_ms']:9.2f} ms = "
                  f"{r['objects_per_s'] / 1e6:7.2f} M objects/s, {r['bytes_per_s'] / 1e9:6.3f} GB/s")
    print(f"speedup (compiled / interpreted): copy {report['speedup']['copy']}x, "
          f"promote {report['speedup']['promote']}x")


if __name__ == "__main__":
    main()
