"""Serial against parallel compaction on one workload: a forced-compaction Mark-Compact's main-thread
CPU, its CPU across every core, its pause, and the objects a helper core evacuated
(sim/v8/compaction_job.py: PageEvacuationJob and PointersUpdatingJob across cores).

A real server (tools/local.py, 2 cores, every Mark-Compact a forced compaction through the
MEMSIM_TEST_V8_FORCE_COMPACTION hook) runs one isolate on core 0 per mode, gc_helpers 0 then 1: each
round makes `--forests` forests of 8 binary trees of 511 stamped 48-byte nodes, runs a Mark-Compact
(every old page with live objects a candidate), then drops every other tree of the new forests, so
that the next one has half-empty pages to evacuate. The first `--skip` rounds are left out (the old
generation is still small). Per mode: median and max of main CPU, total CPU, pause and the evacuate
phase (GcEvent's figures), bytes compacted, and the helper's objects as a share of the objects moved
(compacted bytes / 48). Times are this host's (2 CPUs shared with other work: see the load printed);
the helper's share of the objects is the host-independent figure.

    python bench/micro_compaction.py [--rounds 12] [--skip 2] [--forests 3] [--out bench/results/micro_compaction.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Any

from memsim.client import V8Client
from memsim.sim.v8.isolate_table import FORCE_COMPACTION_ENV
from memsim.tools.local import LocalServer

MiB = 1 << 20
TREES, NODES, NODE_BYTES = 8, 511, 48


def _forest(iso: Any) -> list[Any]:
    """TREES trees of NODES nodes (heap-ordered, children 2i+1 and 2i+2), a global each."""
    roots = []
    for _ in range(TREES):
        b = iso.batch()
        b.open_scope()
        refs: list[Any] = [None] * NODES
        for i in reversed(range(NODES)):
            kids = [refs[2 * i + 1], refs[2 * i + 2], 0] if 2 * i + 2 < NODES else [0, 0, 0]
            refs[i] = b.new_object(kids, payload=i.to_bytes(16, "little"))
        glob = b.make_persistent(refs[0])
        b.close_scope()
        roots.append(b.execute().raise_first()[glob])
    return roots


def run(helpers: int, rounds: int, skip: int, forests: int) -> dict[str, Any]:
    with LocalServer(cores=2, memory="96MiB", extra=["--vm-memory", "64MiB"]) as srv, \
            V8Client(srv.target, core=0, timeout=120) as v8:
        iso = v8.create_isolate(semi_space_size=1 * MiB, max_old_space_size=16 * MiB, gc_helpers=helpers)
        events = []
        for rnd in range(rounds):
            new = [_forest(iso) for _ in range(forests)]
            ev = iso.gc()
            for roots in new:
                for glob in roots[1::2]:
                    iso.drop(glob)
            if rnd >= skip:
                events.append(ev)

    def fig(values: list[float]) -> dict[str, float]:
        return {"median": round(statistics.median(values), 2), "max": round(max(values), 2)}

    moved = sum(e.compacted // NODE_BYTES for e in events)
    return {"helpers": helpers, "collections": len(events),
            "main_cpu_ms": fig([e.main_cpu_ms for e in events]), "total_cpu_ms": fig([e.total_cpu_ms for e in events]),
            "pause_ms": fig([e.end_ms - e.start_ms for e in events]),
            "evacuate_ms": fig([e.evacuate_ms for e in events]),
            "compacted_bytes": sum(e.compacted for e in events), "objects_moved": moved,
            "helper_objects": sum(e.helper_objects for e in events),
            "helper_share": round(sum(e.helper_objects for e in events) / max(1, moved), 3),
            "collections_with_a_helper": sum(e.helpers > 0 for e in events)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--skip", type=int, default=2)
    ap.add_argument("--forests", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    os.environ[FORCE_COMPACTION_ENV] = "1"  # inherited by the server's workers
    out = {"load_average": os.getloadavg(), "cpus": os.cpu_count(),
           "modes": [run(h, args.rounds, args.skip, args.forests) for h in (0, 1)]}
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
