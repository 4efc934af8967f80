"""`memsim experiment thrashing`: fault rate and throughput against the working set, from several client
processes, on a server with a small VM pool and real swap (Denning, "Thrashing: its causes and
prevention", AFIPS FJCC 1968; "The working set model for program behavior", CACM 11(5), 1968).

The server is its own (tools/local.py LocalServer): a small frame pool, swap eight times its size,
no huge pages. Each point of the sweep is one `memsim bench vm` run (tools/vmbench.py on
tools/harness.py): `processes` client processes, each with its own address space of W pages,
touch their pages once (the warm-up), then sweep them in a shuffled order again and again
(`working-set`: every page once per sweep, 30% stores) for `seconds`, through the VM service.
The server's vmstat is read at the harness's barriers exactly around the timed window, so the
fault counts cover only the measured accesses.

Past the knee the rate is not a smooth function of the working set: replacement is global, so a
process that gets ahead keeps its pages recent and the one that faults falls further behind
(Denning's argument for working-set admission over global LRU); which one wins varies from run to
run, and with it the per-access rate. That the sets thrash, from swap, does not vary.

The knee is found in the data: the smallest total working set whose fault rate is above
KNEE_FAULTS per 1000 accesses (below it the sets fit and, warm, nothing faults), placed between
that point and the one before it. The frames the pages can have (the pool less the spaces'
page tables) are read from the server and drawn beside it: the knee should sit there.
"""

from __future__ import annotations

import argparse
from typing import Any

from memsim.sim.policies import policy_names
from memsim.tools.experiments.base import JSON, Check, Context, Experiment, Figure
from memsim.tools.flags import COUNT, SECONDS

PAGE = 4096
KNEE_FAULTS = 10.0  # faults per 1000 accesses: 1%, where "fits" ends
RATIOS = (0.25, 0.5, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0, 3.0)  # total working set / the pool's frames
QUICK_RATIOS = (0.5, 1.5, 2.5)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--processes", type=COUNT, default=4, help="client processes, a space each (default 4)")
    p.add_argument("--frames", type=COUNT, default=256, help="the VM pool's frames (default 256 = 1 MiB)")
    p.add_argument("--seconds", type=SECONDS, default=2.0, help="measured seconds per working-set size (default 2)")
    p.add_argument("--policy", default="twolist", choices=policy_names(),
                   help="page replacement (default twolist, Linux's)")


def run(ctx: Context) -> JSON:
    from memsim.client import VMClient
    from memsim.tools.loads import VmLoad
    from memsim.tools.local import LocalServer
    from memsim.tools.vmbench import run_vm_load

    a = ctx.args
    procs, frames, seconds = (2, 128, 0.6) if ctx.quick else (a.processes, a.frames, a.seconds)
    ratios = QUICK_RATIOS if ctx.quick else RATIOS
    points: list[JSON] = []
    server = LocalServer(cores=2, memory="16MiB", extra=[
        "--vm-memory", str(frames * PAGE), "--swap", str(8 * frames * PAGE), "--vm-policy", a.policy,
        "--thp", "never"])
    with server, ctx.progress(len(ratios), "working-set sizes") as step:
        for ratio in ratios:
            pages = max(1, round(ratio * frames / procs))
            r = run_vm_load(VmLoad(target=server.target, processes=procs, seconds=seconds, pattern="working-set",
                                   pages=pages, page_table="multilevel", seed=ctx.seed, progress=False))
            points.append({"pages_per_process": pages, "working_set": pages * procs,
                           "accesses": r["accesses"], "accesses_per_s": r["accesses_per_s"],
                           "faults_per_1000": r["faults_per_1000"], "major_per_1000": r["major_faults_per_1000"],
                           "pswpin": r["pswpin"], "pswpout": r["pswpout"], "latency_us": r["latency_us"],
                           "errors": r["errors"]})
            step.advance()
        with VMClient(server.target) as vm:
            table_frames = page_table_frames(vm, procs)
            pool = int(vm.vmstat()["pool_frames"])
    knee = find_knee(points)
    return {"processes": procs, "pool_frames": pool, "page_frames": pool - table_frames,
            "table_frames": table_frames, "seconds": seconds, "policy": a.policy, "points": points, "knee": knee}


def page_table_frames(vm: Any, procs: int) -> int:
    """The page-table frames `procs` spaces laid out as the load's (one region of a few pages) hold."""
    spaces = [vm.create_space(page_table="multilevel") for _ in range(procs)]
    try:
        for sp in spaces:
            sp.store(sp.mmap(8 * PAGE, kind="heap"), b"\1")
        return sum(sp.stats().page_table_bytes for sp in spaces) // PAGE
    finally:
        for sp in spaces:
            sp.destroy()


def find_knee(points: list[JSON]) -> JSON | None:
    """The first working set faulting above KNEE_FAULTS per 1000 accesses, and the last one below."""
    for i, p in enumerate(points):
        if p["faults_per_1000"] is not None and p["faults_per_1000"] > KNEE_FAULTS:
            if i == 0:
                return None
            fit = points[i - 1]
            return {"last_fit": fit["working_set"], "first_thrash": p["working_set"],
                    "fit_per_s": max(q["accesses_per_s"] for q in points[:i]),
                    "thrash_per_s": min(q["accesses_per_s"] for q in points[i:])}
    return None


def checks(d: JSON) -> list[Check]:
    k, pts, frames = d["knee"], d["points"], d["page_frames"]
    if k is None:
        return [Check("a knee: the fault rate rises above 1% of accesses past some working set", False)]
    below = [p for p in pts if p["working_set"] <= k["last_fit"]]
    above = [p for p in pts if p["working_set"] >= k["first_thrash"]]
    majors = [p["major_per_1000"] for p in above]
    return [Check(f"the knee: the working sets fit up to {k['last_fit']} pages and thrash from "
                  f"{k['first_thrash']}; the frames for pages are {frames}",
                  k["last_fit"] <= frames * 1.05 and k["first_thrash"] >= frames * 0.95),
            Check(f"below the knee the warm sets hardly fault (at most "
                  f"{max(p['faults_per_1000'] for p in below):.1f} per 1000 accesses)",
                  all(p["faults_per_1000"] <= KNEE_FAULTS for p in below)),
            Check(f"past it every working set faults its pages in from swap: {min(majors):.0f} to {max(majors):.0f} "
                  f"major faults per 1000 accesses, pswpin {min(p['pswpin'] for p in above):,} or more",
                  min(majors) > KNEE_FAULTS and all(p["pswpin"] > 0 for p in above)),
            Check(f"throughput falls past the knee: {k['thrash_per_s']:,.0f} accesses/s against "
                  f"{k['fit_per_s']:,.0f} while the sets fit", k["thrash_per_s"] < 0.8 * k["fit_per_s"]),
            Check("no access failed", all(p["errors"] == 0 for p in pts))]


def summary(d: JSON) -> list[Any]:
    from rich.table import Table

    t = Table(title=f"thrashing: {d['processes']} processes, a pool of {d['pool_frames']} frames "
                    f"({d['page_frames']} for pages), replacement {d['policy']}, {d['seconds']} s per size")
    for col in ("working set (pages)", "x frames", "accesses/s", "faults / 1000", "major / 1000",
                "pswpin", "pswpout", "p99 µs / batch"):
        t.add_column(col, justify="right")
    k = d["knee"]
    for p in d["points"]:
        mark = " ← knee" if k and p["working_set"] == k["first_thrash"] else ""
        t.add_row(f"{p['working_set']}{mark}", f"{p['working_set'] / d['page_frames']:.2f}",
                  f"{p['accesses_per_s']:,.0f}", f"{p['faults_per_1000']:.1f}", f"{p['major_per_1000']:.1f}",
                  f"{p['pswpin']:,}", f"{p['pswpout']:,}", f"{p['latency_us']['p99']:,}")
    return [t, f"knee: fits at {k['last_fit']} pages, thrashes at {k['first_thrash']}" if k else "no knee found"]


def plot(d: JSON, fig: Figure) -> None:
    ax = fig.add_subplot(1, 1, 1)
    pts = d["points"]
    ws = [p["working_set"] for p in pts]
    ax.plot(ws, [p["faults_per_1000"] for p in pts], marker="o", color="tab:red", lw=2, label="page faults")
    ax.plot(ws, [p["major_per_1000"] for p in pts], marker=".", color="tab:red", ls=":", label="of them major (swap)")
    ax.set_xlabel(f"total working set of the {d['processes']} processes (pages of 4 KiB)")
    ax.set_ylabel("page faults per 1000 accesses", color="tab:red")
    ax.set_ylim(bottom=0)
    tp = ax.twinx()
    tp.plot(ws, [p["accesses_per_s"] for p in pts], marker="s", color="tab:blue", lw=2, label="throughput")
    tp.set_ylabel("accesses per second (all processes)", color="tab:blue")
    tp.set_ylim(bottom=0)
    ax.axvline(d["page_frames"], color="gray", ls="--")
    ax.text(d["page_frames"], 0.97, f" {d['page_frames']} frames\n for pages", transform=ax.get_xaxis_transform(),
            va="top", fontsize=8, color="gray")
    k = d["knee"]
    if k:
        ax.axvspan(k["last_fit"], k["first_thrash"], color="orange", alpha=0.25, lw=0)
        ax.annotate("knee: the working sets\nstop fitting", xy=((k["last_fit"] + k["first_thrash"]) / 2, 0),
                    xytext=(0.05, 0.55), textcoords="axes fraction", fontsize=9, color="darkorange",
                    arrowprops={"arrowstyle": "->", "color": "darkorange"})
    lines = ax.get_legend_handles_labels()
    more = tp.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="center right")
    ax.grid(alpha=0.3)
    ax.set_title(f"Thrashing: {d['processes']} client processes sweeping their pages on a {d['pool_frames']}-frame "
                 f"pool with swap ({d['policy']}):\npast the knee their pages fault in from swap and "
                 "throughput collapses", fontsize=10)


EXPERIMENT = Experiment(name="thrashing", help="fault rate and throughput against the working set from several "
                                               "processes on a small VM pool with swap: the knee",
                        run=run, plot=plot, summary=summary, checks=checks, add_arguments=add_arguments,
                        figsize=(9.0, 5.2))
