"""`memsim experiment contention`: the allocator's three designs against 1..N client processes.

The designs are the machine's own (`memsim serve` flags, tools/local.py's LocalServer fields):

    per-core caches   Go's design: each core's mcache serves most allocations with no lock; a
                      miss refills a whole span from its size class's mcentral, under that
                      class's lock (runtime/mcache.go refill, runtime/mcentral.go cacheSpan)
    no caches         `--no-caches`: every allocation and free goes to its class's mcentral lock
    global lock       `--global-lock --no-caches`: one lock for every central list and the page
                      heap, and no cache in front of it, as allocators before per-thread caches
                      were (Berger et al., "Hoard", ASPLOS 2000, section 2: a single lock
                      serialises every thread)

For each design a server of N cores is started; then Larson's load (tools/loadgen.py: each step
frees a random victim and allocates in its place, 10 % of frees handed to another process) runs
from p = 1..N real client processes, each pinned to its own core, through the bench harness
(tools/harness.py), so the server's lock counters are read exactly around the timed window. The
figures: ops/s; lock acquisitions per op (every allocator lock: mcentral/*, mheap, or global);
the contended share (acquisitions that found the lock held, sim/machine/locks.py counts them);
the lock wait per op; and the lock table of the busiest locks.

What to expect: with caches, most allocations take no lock at all, so acquisitions per op are a
fraction of the no-cache design's (one or more per op); with one global lock, every core
queues on the same byte, so its contended share is the highest. Wall-clock scaling needs as many
idle CPUs as processes: on a 2-CPU host the server's cores and the client processes share two
CPUs, so throughput flattens past p = 2 whatever the design, and the counters tell the story.

May touch: only the servers it starts (one at a time, stopped before the next).
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from memsim.tools.experiments.base import JSON, Check, Context, Experiment, Figure
from memsim.tools.flags import whole

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# design -> (no_caches, global_lock), LocalServer's fields
DESIGNS: dict[str, tuple[bool, bool]] = {
    "per-core caches": (False, False),
    "no caches": (True, False),
    "global lock": (True, True),
}
COLOURS = {"per-core caches": "tab:green", "no caches": "tab:orange", "global lock": "tab:red"}
LINES = {"per-core caches": ("-", 1.8), "no caches": ("-", 3.5), "global lock": ("--", 1.8)}  # overlaps stay visible
ALLOC_LOCKS = ("mcentral", "mheap", "global")  # the allocator's lock names (sim/alloc/layout.py)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--processes", type=whole(1), default=4,
                   help="the most client processes (1..N are run; the server has N cores) (default 4; --quick 2)")
    p.add_argument("--seconds", type=float, default=3.0,
                   help="measured seconds per design and process count (default 3; --quick 0.3)")
    p.add_argument("--batch", type=whole(1), default=100, help="allocator ops per message (default 100)")


def _sizes(ctx: Context) -> tuple[int, float, int]:
    a = ctx.args
    if ctx.quick:
        return min(a.processes, 2), min(a.seconds, 0.3), 100
    return a.processes, a.seconds, 1000


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    """One run's figures from loadgen's report: throughput and the allocator locks' counters."""
    locks = [lk for lk in report["locks"] if str(lk["name"]).startswith(ALLOC_LOCKS)]
    acq = sum(int(lk["acquisitions"]) for lk in locks)
    contended = sum(int(lk["contended"]) for lk in locks)
    wait_ns = sum(int(lk["wait_ns"]) for lk in locks)
    ops = int(report["ops"])
    busiest = sorted(locks, key=lambda lk: -int(lk["acquisitions"]))[:4]
    return {"ops": ops, "ops_per_s": round(float(report["ops_per_s"]), 1), "errors": int(report["errors"]),
            "acquisitions": acq, "contended": contended, "wait_ns": wait_ns,
            "acquisitions_per_op": round(acq / ops, 4) if ops else 0.0,
            "contended_share": round(contended / acq, 4) if acq else 0.0,
            "wait_us_per_op": round(wait_ns / 1e3 / ops, 4) if ops else 0.0,
            "mcache_hit_rate": round(float(report["mcache_hit_rate"]), 4),
            "locks": [{k: lk[k] for k in ("name", "acquisitions", "contended", "wait_ns")} for lk in busiest]}


def run(ctx: Context) -> JSON:
    from memsim.tools.loadgen import run_alloc_load
    from memsim.tools.loads import AllocLoad
    from memsim.tools.local import LocalServer

    most, seconds, slots = _sizes(ctx)
    counts = list(range(1, most + 1))
    out: dict[str, list[dict[str, Any]]] = {}
    with ctx.progress(len(DESIGNS) * len(counts), "designs × processes") as step:
        for i, (design, (no_caches, global_lock)) in enumerate(DESIGNS.items()):
            rows: list[dict[str, Any]] = []
            with LocalServer(cores=most, no_caches=no_caches, global_lock=global_lock) as srv:
                for p in counts:
                    load = AllocLoad(target=srv.target, processes=p, seconds=seconds, batch=ctx.args.batch,
                                     slots=slots, pin=True, seed=ctx.seed * 100 + i, progress=False)
                    rows.append({"processes": p, **_figures(run_alloc_load(load))})
                    step.advance()
            out[design] = rows
    return {"processes": counts, "seconds": seconds, "batch": ctx.args.batch, "slots": slots,
            "server_cores": most, "host_cpus": os.cpu_count() or 1, "designs": out}


def _last(data: JSON, design: str) -> dict[str, Any]:
    return data["designs"][design][-1]


def checks(data: JSON) -> list[Check]:
    per = {d: _last(data, d) for d in DESIGNS}
    n = data["processes"][-1]
    fewer = all(c["acquisitions_per_op"] < nc["acquisitions_per_op"]
                for c, nc in zip(data["designs"]["per-core caches"], data["designs"]["no caches"], strict=True))
    worst = max(per, key=lambda d: per[d]["contended_share"])
    return [
        Check("per-core caches take fewer lock acquisitions per op than no caches, at every process count "
              f"({per['per-core caches']['acquisitions_per_op']:.3f} against "
              f"{per['no caches']['acquisitions_per_op']:.3f} with {n})", fewer),
        Check(f"the global lock's contended share is the highest of the three with {n} processes "
              f"({per['global lock']['contended_share']:.1%}; highest: {worst})", worst == "global lock"),
        Check("every op succeeded", all(r["errors"] == 0 for rows in data["designs"].values() for r in rows)),
    ]


def summary(data: JSON) -> list[Any]:
    from rich.table import Table

    t = Table(title=f"allocator designs × client processes ({data['seconds']:g} s each, batches of {data['batch']})")
    for col in ("design", "processes", "ops/s", "locks/op", "contended", "wait µs/op", "mcache hits"):
        t.add_column(col, justify="right")
    for design, rows in data["designs"].items():
        for r in rows:
            t.add_row(design, str(r["processes"]), f"{r['ops_per_s']:,.0f}", f"{r['acquisitions_per_op']:.3f}",
                      f"{r['contended_share']:.1%}", f"{r['wait_us_per_op']:.2f}", f"{r['mcache_hit_rate']:.1%}")
    n = data["processes"][-1]
    locks = Table(title=f"busiest allocator locks with {n} processes")
    for col in ("design", "lock", "acquisitions", "contended", "wait ms"):
        locks.add_column(col, justify="right")
    for design in data["designs"]:
        for lk in _last(data, design)["locks"]:
            locks.add_row(design, lk["name"], f"{lk['acquisitions']:,}", f"{lk['contended']:,}",
                          f"{lk['wait_ns'] / 1e6:.1f}")
    note = (f"This host has {data['host_cpus']} CPUs shared by the server's {data['server_cores']} cores and the "
            f"client processes: wall-clock throughput cannot scale past {data['host_cpus']} processes, whatever "
            "the design. The lock counters (acquisitions, contention, wait per op) are the figures to read.")
    return [t, locks, note]


def plot(data: JSON, fig: Figure) -> None:
    counts = data["processes"]
    panels = [("ops_per_s", "allocator ops/s", "throughput: flattens at the host's CPUs", 1.0),
              ("acquisitions_per_op", "lock acquisitions per op (log)", "locks per op: caches skip nearly all", 1.0),
              ("contended_share", "contended acquisitions (%)", "contended share: one lock queues most", 100.0),
              ("wait_us_per_op", "lock wait per op (µs)", "time spent waiting for locks", 1.0)]
    axes = fig.subplots(2, 4, gridspec_kw={"height_ratios": [3, 2]})
    for a in axes[1]:
        a.remove()
    for i, (key, ylabel, title, scale) in enumerate(panels):
        ax = axes[0][i]
        for design, rows in data["designs"].items():
            ls, lw = LINES[design]
            ax.plot(counts, [r[key] * scale for r in rows], marker="o", color=COLOURS[design], ls=ls, lw=lw,
                    label=design)
        ax.set_xlabel("client processes")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize="medium")
        ax.set_xticks(counts)
        if key == "acquisitions_per_op":
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize="small")
    _lock_table(fig.add_subplot(axes[0][0].get_gridspec()[1, :]), data)  # the whole bottom row
    fig.suptitle(f"Allocator lock contention: per-core caches vs no caches vs one global lock "
                 f"({data['host_cpus']}-CPU host, {data['server_cores']} server cores, Larson's load)")


def _lock_table(ax: Axes, data: JSON) -> None:
    """The busiest locks at the largest process count, per design."""
    from matplotlib.transforms import Bbox

    ax.axis("off")
    n = data["processes"][-1]
    rows = [[design, lk["name"], f"{lk['acquisitions']:,}", f"{lk['contended'] / max(1, lk['acquisitions']):.1%}",
             f"{lk['wait_ns'] / 1e6:.1f}"]
            for design in data["designs"] for lk in _last(data, design)["locks"][:3]]
    table = ax.table(cellText=rows, colLabels=["design", "lock", "acquisitions", "contended", "wait (ms)"],
                     cellLoc="center", bbox=Bbox.from_bounds(0.1, 0.0, 0.8, 1.0))
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    ax.set_title(f"lock table: the busiest allocator locks with {n} processes, over {data['seconds']:g} s",
                 fontsize="medium")


EXPERIMENT = Experiment(name="contention", help="the allocator's per-core caches, no caches and one global lock "
                                                "against 1..N client processes: throughput and lock counters",
                        run=run, plot=plot, summary=summary, checks=checks, add_arguments=add_arguments,
                        figsize=(16.0, 8.0))
