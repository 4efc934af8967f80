"""`memsim experiment belady`: page faults against frames for every replacement policy, on the machine,
and a search for Belady's anomaly (Belady, Nelson and Shedler, "An anomaly in space-time
characteristics of certain programs running in a paging machine", CACM 12(6), 1969).

What runs where:
- every policy of sim/policies runs ON THE MACHINE: an in-process `Machine` whose VM pool gives
  the one address space exactly F frames for pages (onmachine.py), the reference string replayed
  as loads (the classic string) or stores (the random one: evicted pages are dirty and come back
  from swap); its faults are the VM's pgfault counter. The same string goes through the offline
  simulator (sim/policies/simulate.py) and the two counts must agree;
- OPT (Belady's MIN) only offline: it evicts the page used farthest in the future, which a VM
  cannot know, so it is the simulator's `belady()`, the lower bound of every other curve;
- the anomaly finder draws seeded random strings (5-8 pages, 30-60 references), computes each
  policy's fault curve over 1..pages frames offline and counts the strings where a frame more
  gives more faults; each FIFO anomaly is shrunk (references deleted one at a time while some
  anomaly remains, pages renamed 1, 2, ... in order of first use), the shortest is kept and
  replayed on the machine. LRU and OPT are stack algorithms (Mattson et al., IBM Systems Journal
  9(2), 1970: the pages held with F frames are always among those held with F + 1), so they
  can have no anomaly at all.
"""

from __future__ import annotations

import argparse
from typing import Any

from memsim.tools.experiments.base import JSON, Check, Context, Experiment, Figure
from memsim.tools.flags import COUNT, whole

CLASSIC = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5]
CLASSIC_FRAMES = 7
OPT = "opt"
CHUNK = 250  # finder strings per task: fixed, so the strings drawn do not depend on the workers
FINDER_PAGES = (5, 8)
FINDER_LENGTH = (30, 60)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--length", type=COUNT, default=240, help="references in the random string (default 240)")
    p.add_argument("--pages", type=COUNT, default=16, help="distinct pages of the random string (default 16)")
    p.add_argument("--search", type=whole(0), default=5000,
                   help="random strings the anomaly finder tries (default 5000)")


def online_policies() -> list[str]:
    from memsim.sim.policies import policy_names

    return list(policy_names())


def offline_curve(policy: str, trace: list[int], frames: int) -> list[int]:
    """Faults with 1..frames frames, from the offline simulator (OPT: Belady's MIN)."""
    from memsim.sim.policies.simulate import belady_misses, simulate

    if policy == OPT:
        return [belady_misses(trace, f) for f in range(1, frames + 1)]
    return [simulate(policy, trace, f).misses for f in range(1, frames + 1)]


def machine_curve(job: tuple[str, list[int], int, bool]) -> list[int]:
    """Faults on the machine with 1..frames frames (one machine per frame count)."""
    from memsim.tools.experiments.onmachine import machine_faults

    policy, trace, frames, write = job
    return [machine_faults(policy, trace, f, write) for f in range(1, frames + 1)]


def anomalies(curve: list[int]) -> list[int]:
    """Frame counts F (1-based) at which F + 1 frames fault more than F."""
    return [f + 1 for f in range(len(curve) - 1) if curve[f + 1] > curve[f]]


def renamed(trace: list[int]) -> list[int]:
    """Pages renamed 1, 2, ... in order of first use (the classic string's own naming)."""
    names: dict[int, int] = {}
    return [names.setdefault(p, len(names) + 1) for p in trace]


def shrink(trace: list[int]) -> list[int]:
    """Delete references one at a time while FIFO still shows an anomaly (a local minimum)."""
    pages = len(set(trace))
    smaller = True
    while smaller:
        smaller = False
        for i in range(len(trace)):
            t = trace[:i] + trace[i + 1:]
            if anomalies(offline_curve("fifo", t, len(set(t)) or pages)):
                trace, smaller = t, True
                break
    return renamed(trace)


def search(job: tuple[int, int, list[str]]) -> dict[str, Any]:
    """One chunk of the finder: CHUNK seeded strings; anomalous strings per policy, FIFO's shrunk."""
    import numpy as np

    seed, chunk, policies = job
    rng = np.random.default_rng([seed, 2, chunk])
    counts = dict.fromkeys(policies, 0)
    found: list[list[int]] = []
    for _ in range(CHUNK):
        pages = int(rng.integers(FINDER_PAGES[0], FINDER_PAGES[1] + 1))
        trace = rng.integers(1, pages + 1, size=int(rng.integers(FINDER_LENGTH[0], FINDER_LENGTH[1] + 1))).tolist()
        for policy in policies:
            if anomalies(offline_curve(policy, trace, pages)):
                counts[policy] += 1
                if policy == "fifo":
                    found.append(shrink(trace))
    return {"counts": counts, "found": found}


def run(ctx: Context) -> JSON:
    from memsim.tools.experiments.onmachine import machine_faults

    a = ctx.args
    length, pages, tries = (60, 8, 1000) if ctx.quick else (a.length, a.pages, a.search)
    policies = online_policies()
    rand = (ctx.rng(1).integers(0, pages, size=length) + 1).tolist()
    strings = {"classic": (CLASSIC, CLASSIC_FRAMES, False), "random": (rand, pages, True)}
    jobs = [(p, s, f, w) for s, f, w in strings.values() for p in policies]
    on_machine = ctx.map(machine_curve, jobs, "policies x frames on the machine")
    curves: JSON = {}
    for i, (name, (trace, frames, write)) in enumerate(strings.items()):
        mine = on_machine[i * len(policies):(i + 1) * len(policies)]
        curves[name] = {"trace": trace, "frames": list(range(1, frames + 1)), "write": write,
                        "machine": dict(zip(policies, mine, strict=True)),
                        "offline": {p: offline_curve(p, trace, frames) for p in [*policies, OPT]}}
    chunks = ctx.map(search, [(ctx.seed, c, [*policies, OPT]) for c in range(-(-tries // CHUNK))],
                     "anomaly finder")
    counts = {p: sum(c["counts"][p] for c in chunks) for p in [*policies, OPT]}
    found = [t for c in chunks for t in c["found"]]
    finder: JSON = {"strings": -(-tries // CHUNK) * CHUNK, "pages": list(FINDER_PAGES),
                    "length": list(FINDER_LENGTH), "anomalous": counts, "fifo_found": len(found)}
    if found:
        best = min(found, key=lambda t: (len(t), t))
        curve = offline_curve("fifo", best, len(set(best)))
        f = anomalies(curve)[0]
        finder["shortest"] = {"trace": best, "frames": [f, f + 1], "offline": curve,
                              "machine": [machine_faults("fifo", best, f), machine_faults("fifo", best, f + 1)]}
    return {"policies": policies, "curves": curves, "finder": finder,
            "opt_note": "OPT (Belady's MIN) needs the future: offline only (sim/policies/simulate.py belady)"}


def checks(d: JSON) -> list[Check]:
    c = d["curves"]
    classic = c["classic"]["machine"]["fifo"]
    agree = all(c[s]["machine"][p] == c[s]["offline"][p] for s in c for p in d["policies"])
    runs = sum(len(c[s]["frames"]) for s in c) * len(d["policies"])
    stack = all(not anomalies(c[s]["offline"][p]) for s in c for p in ("lru", OPT))
    opt_least = all(c[s]["offline"][OPT][i] <= min(c[s]["offline"][p][i] for p in d["policies"])
                    for s in c for i in range(len(c[s]["frames"])))
    f = d["finder"]
    out = [Check(f"FIFO on the machine faults {classic[2]} times with 3 frames and {classic[3]} with 4 on "
                 "1,2,3,4,1,2,5,1,2,3,4,5 (Belady's anomaly: 9 -> 10)", classic[2:4] == [9, 10]),
           Check(f"the machine's page faults equal the offline simulator's for every policy and frame count "
                 f"({runs} machine runs)", agree),
           Check("LRU and OPT never fault more with more frames (stack algorithms)", stack),
           Check("OPT faults least at every frame count", opt_least),
           Check(f"the finder found FIFO anomalies in {f['anomalous']['fifo']} of {f['strings']} random strings "
                 f"and none for LRU or OPT", f["anomalous"]["fifo"] > 0 and f["anomalous"]["lru"] == 0
                 and f["anomalous"][OPT] == 0)]
    if "shortest" in f:
        s = f["shortest"]
        out.append(Check(f"the shortest anomaly found ({len(s['trace'])} references) faults "
                         f"{s['machine'][0]} -> {s['machine'][1]} on the machine with {s['frames'][0]} -> "
                         f"{s['frames'][1]} frames", s["machine"][1] > s["machine"][0]))
    return out


def summary(d: JSON) -> list[Any]:
    from rich.table import Table

    out: list[Any] = []
    for name, c in d["curves"].items():
        t = Table(title=f"{name} string ({len(c['trace'])} references{', stores' if c['write'] else ''}): "
                        "page faults by frames, on the machine (= offline; OPT offline only)")
        t.add_column("policy")
        for f in c["frames"]:
            t.add_column(str(f), justify="right")
        for p in [*d["policies"], OPT]:
            row = c["machine"].get(p, c["offline"][p])
            marks = set(anomalies(row))
            t.add_row(p, *[f"[bold red]{v}[/]" if i in marks else str(v) for i, v in enumerate(row)])
        out.append(t)
    f = d["finder"]
    t = Table(title=f"anomaly finder: {f['strings']} random strings of {f['length'][0]}-{f['length'][1]} "
                    f"references over {f['pages'][0]}-{f['pages'][1]} pages")
    t.add_column("policy")
    t.add_column("strings with an anomaly", justify="right")
    for p, n in f["anomalous"].items():
        t.add_row(p, f"{n} ({100 * n / f['strings']:.2f}%)")
    out.append(t)
    if "shortest" in f:
        s = f["shortest"]
        out.append(f"shortest FIFO anomaly found: {','.join(map(str, s['trace']))} ({len(s['trace'])} references, "
                   f"{len(set(s['trace']))} pages): {s['machine'][0]} faults with {s['frames'][0]} frames, "
                   f"{s['machine'][1]} with {s['frames'][1]} (on the machine)")
    out.append(d["opt_note"])
    return out


STYLE = {"fifo": ("tab:red", 2.6), OPT: ("black", 1.6)}


def _curves(ax: Any, c: JSON, policies: list[str]) -> None:
    for p in [*policies, OPT]:
        color, width = STYLE.get(p, (None, 1.0))
        ax.plot(c["frames"], c["machine"].get(p, c["offline"][p]), marker="o", ms=3, lw=width, color=color,
                ls="--" if p == OPT else "-", label=p + (" (offline)" if p == OPT else ""), alpha=0.9)
    ax.set_xlabel("frames for pages")
    ax.set_ylabel("page faults")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)


def _mark(ax: Any, frames: list[int], fifo: list[int]) -> None:
    for f in anomalies(fifo):
        ax.annotate(f"anomaly: {fifo[f - 1]} -> {fifo[f]} faults\nwith {f} -> {f + 1} frames",
                    xy=(f + 1, fifo[f]), xytext=(f + 1.25, fifo[f] - (fifo[f] - fifo[-1]) * 0.6), color="tab:red",
                    fontsize=8, bbox={"fc": "white", "ec": "none", "alpha": 0.85},
                    arrowprops={"arrowstyle": "->", "color": "tab:red"})


def plot(d: JSON, fig: Figure) -> None:
    axes = fig.subplots(2, 2)
    classic, rand = d["curves"]["classic"], d["curves"]["random"]
    ax = axes[0][0]
    _curves(ax, classic, d["policies"])
    _mark(ax, classic["frames"], classic["machine"]["fifo"])
    ax.set_title("1,2,3,4,1,2,5,1,2,3,4,5: only FIFO rises from 3 to 4 frames", fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    ax = axes[0][1]
    _curves(ax, rand, d["policies"])
    _mark(ax, rand["frames"], rand["machine"]["fifo"])
    ax.set_title(f"random string ({len(rand['trace'])} stores, {len(rand['frames'])} pages): OPT the floor",
                 fontsize=9)
    f = d["finder"]
    ax = axes[1][0]
    if "shortest" in f:
        s = f["shortest"]
        frames = list(range(1, len(s["offline"]) + 1))
        ax.plot(frames, s["offline"], marker="o", color="tab:red", lw=2.2, label="fifo")
        ax.plot(frames, offline_curve(OPT, s["trace"], len(frames)), marker="o", ms=3, color="black", ls="--",
                label="opt")
        _mark(ax, frames, s["offline"])
        ax.set_title(f"shortest anomaly found: {','.join(map(str, s['trace']))}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    else:
        ax.text(0.5, 0.5, "no FIFO anomaly found", ha="center", transform=ax.transAxes)
    ax.set_xlabel("frames for pages")
    ax.set_ylabel("page faults")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax = axes[1][1]
    names = list(f["anomalous"])
    shares = [100 * f["anomalous"][p] / f["strings"] for p in names]
    bars = ax.bar(names, shares, color=["tab:red" if p == "fifo" else "tab:gray" for p in names])
    ax.bar_label(bars, labels=[str(f["anomalous"][p]) for p in names], fontsize=7)
    ax.set_ylabel("% of random strings with an anomaly")
    ax.set_title(f"finder: random strings (of {f['strings']}) where a\nframe more faults more "
                 "(LRU, OPT: never)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    fig.suptitle("Belady's anomaly: page faults against frames on memsim's VM", fontsize=12)


EXPERIMENT = Experiment(name="belady", help="page faults against frames for every replacement policy on the "
                                            "machine, and a search for Belady's anomaly",
                        run=run, plot=plot, summary=summary, checks=checks, add_arguments=add_arguments,
                        figsize=(9.0, 6.2))
