"""`memsim experiment gc`: the managed heap's pauses and heap size, per workload and collector mode.

A wrapper over `memsim bench gc` (tools/gcbench.py: a server sized for the lanes' heaps, one
isolate per client process, the GC trace read around a measured window), its figures
(tools/gcstats.py: pauses by kind, minimum mutator utilisation) and its plot (tools/gcplot.py's
`draw_workload`: heap over time, pauses by kind). What this adds: the MMU *curve* (utilisation
against window width, Cheng & Blelloch PLDI 2001, the way collectors are compared), the checks,
and the collector-mode axis.

Workloads (tools/gcloads.py, tools/splay.py): GCBench (Boehm's binary trees: short-lived trees
beside a long-lived one), Octane's Splay (a large long-lived tree whose nodes are replaced: old
space fills, mark-compact follows), and a request handler (each request's objects die before
the next scavenge). What to see: the handler's heapUsed drops almost to nothing at each
scavenge; Splay's keeps climbing through scavenges until a Mark-Compact (the long pauses) takes
it back down; MMU at short windows is what those pauses cost a latency-sensitive program.

Collector modes (`--modes`): each is a name and the option strings that select it, and is run on
its own server: `--flag` strings are `memsim serve` flags, `name=value` strings set a field of the
load (tools/loads.py's GcLoad: the switches every lane's isolate is created with). `serial`: V8's
scavenger and mark-compact, stop-the-world on the mutator's core (sim/v8/scavenger.py,
sim/v8/mark_compact.py); `helpers1`, `helpers2`: the scavenge shared with 1 or 2 helper cores
(sim/v8/scavenge_job.py; the server gets a core per helper, more cores than the host has CPUs is
flagged in the JSON, and a table sets the main thread's CPU beside every core's, with the
helpers' objects, steals and CAS failures); `incremental`: incremental marking (sim/v8/
incremental_marking.py): the Mark-Compact's marking runs in steps between the program's own
operations, which count as pauses ("Marking step") and in the MMU; `concurrent`: incremental marking
with a helper core marking the cycle while the program runs (sim/v8/concurrent_marking.py; the
helper's CPU counts in the Mark-Compact's total CPU). A mode added to MODES is run,
tabled and drawn beside them with no other change. `--heaps` adds the heap-size axis: every mode
at multiples of each workload's smallest heap (tools/gcheap.py), compared with serial on the same
heap.

May touch: only the servers it starts.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from memsim.tools.experiments.base import JSON, Check, Context, Experiment, Figure
from memsim.tools.flags import parse_bytes, real, size_text, whole
from memsim.tools.gcheap import PROBE_MESSAGES, MinHeap, multiples, smallest_heap
from memsim.tools.gcstats import GcRecord, LaneRun, worst_mmu
from memsim.tools.loads import GC_WORKLOADS, QUICK_SCALE, QUICK_SEMI_SPACE, GcLoad

# collector mode -> the option strings that select it: `memsim serve` flags, or GcLoad field=value
MODES: dict[str, tuple[str, ...]] = {"serial": (), "helpers1": ("gc_helpers=1",), "helpers2": ("gc_helpers=2",),
                                     "incremental": ("incremental_marking=true",),
                                     "concurrent": ("incremental_marking=true", "concurrent_marking=true",
                                                    "gc_helpers=1")}
MMU_WIDTHS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
SCALE = 1 / 64  # Splay's tree of 125 nodes: old space fills, and mark-compacts, within seconds
SEMI_SPACE = 256 << 10
QUICK_SECONDS = 3.0
QUICK_PROBE_MESSAGES = 20
HANDLER_RESIDUE = 0.10  # "empties": a scavenge keeps (copies or promotes) at most this share of new space


def _names(choices: tuple[str, ...], what: str) -> Callable[[str], list[str]]:
    """A flag's parser: a comma list of names, each one of choices."""
    def parse(text: str) -> list[str]:
        got = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in got if t not in choices]
        if bad or not got:
            raise argparse.ArgumentTypeError(f"{what}: give a comma list of {', '.join(choices)}")
        return got
    return parse


def _positive_bytes(text: str) -> int:
    n = parse_bytes(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text}: give a size above 0 (e.g. 1MiB)")
    return n


def _factors(text: str) -> list[float]:
    """--heaps: a comma list of multiples of the smallest heap, each at least 1."""
    try:
        got = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        got = []
    if not got or not all(1 <= f <= 64 for f in got):
        raise argparse.ArgumentTypeError(f"--heaps {text!r}: give a comma list of multiples from 1 to 64, "
                                         "e.g. 1.5,2,3,4")
    return got


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--modes", type=_names(tuple(MODES), "--modes"), default=["serial"],
                   help=f"collector modes to compare, a comma list of {', '.join(MODES)} (default serial)")
    p.add_argument("--workloads", type=_names(GC_WORKLOADS, "--workloads"), default=list(GC_WORKLOADS),
                   help=f"a comma list of {', '.join(GC_WORKLOADS)} (default all)")
    p.add_argument("--clients", type=whole(1), default=2,
                   help="client processes per workload, each with an isolate (default 2; --quick 1)")
    p.add_argument("--seconds", type=float, default=8.0,
                   help="measured seconds per workload (default 8; --quick 3)")
    p.add_argument("--scale", type=real(0, 1, above=True), default=SCALE,
                   help=f"of Boehm's and Octane's sizes, as `memsim bench gc --scale` (default 1/{1 / SCALE:g}; "
                        "--quick 1/256)")
    p.add_argument("--max-old-space", type=_positive_bytes, default=GcLoad.max_old_space,
                   help=f"each isolate's heap limit (default {size_text(GcLoad.max_old_space)}); with --heaps, the "
                        "ceiling the smallest-heap search starts from")
    p.add_argument("--heaps", type=_factors, default=None,
                   help="heap limits as multiples of each workload's smallest heap, a comma list such as "
                        "1.5,2,3,4 (found first by bisection, tools/gcheap.py); default: --max-old-space as given")
    p.add_argument("--probe-messages", type=whole(1), default=PROBE_MESSAGES,
                   help=f"messages of a workload's run a smallest-heap probe must complete (default {PROBE_MESSAGES}; "
                        f"--quick {QUICK_PROBE_MESSAGES})")
    p.add_argument("--semi-space", type=_positive_bytes, default=SEMI_SPACE,
                   help=f"each isolate's semi-space (default {size_text(SEMI_SPACE)}: small, so that a few seconds "
                        "show many scavenges)")


def run(ctx: Context) -> JSON:
    from memsim.tools.gcbench import own_server, run_workload

    a = ctx.args
    load = GcLoad(clients=a.clients, seconds=a.seconds, scale=a.scale, semi_space=a.semi_space,
                  max_old_space=a.max_old_space, seed=ctx.seed, progress=False)
    if ctx.quick:  # bench gc's smoke sizes, but a window long enough for Splay's mark-compact on a busy host
        load = replace(load, clients=1, seconds=min(a.seconds, QUICK_SECONDS), scale=min(a.scale, QUICK_SCALE),
                       semi_space=min(a.semi_space, QUICK_SEMI_SPACE))
    load.validate()
    minimum = _minimum_heaps(ctx, load, a.workloads) if a.heaps else {}
    # (label, mode, factor, {workload: its max_old_space}): one comparison cell each
    cells = [(mode, mode, None, dict.fromkeys(a.workloads, load.max_old_space)) for mode in a.modes]
    if a.heaps:
        cells = [(f"{mode} {f:g}×", mode, f, {w: multiples(minimum[w].bytes, [f])[0][1] for w in a.workloads})
                 for mode in a.modes for f in a.heaps]
    modes: dict[str, dict[str, Any]] = {}
    servers: dict[str, dict[str, Any]] = {}
    with ctx.progress(len(cells) * len(a.workloads), "modes × heaps × workloads") as step:
        for label, mode, _factor, limits in cells:
            mload = mode_switches(replace(load, max_old_space=max(limits.values())), MODES[mode])
            srv = own_server(mload)
            srv.extra += [o for o in MODES[mode] if o.startswith("--")]
            cpus = os.cpu_count() or 1
            servers[label] = {"gc_helpers": mload.gc_helpers, "cores": srv.cores, "cpus": cpus,
                              "oversubscribed": (srv.cores or 1) > cpus}  # then wall times measure time-sharing
            srv.start(timeout=300)
            try:
                out: dict[str, Any] = {}
                for name in a.workloads:
                    rep = run_workload(replace(mload, target=srv.target, max_old_space=limits[name]), name)
                    runs: list[LaneRun] = rep.pop("_runs")
                    out[name] = {"figures": rep["figures"], "workload": rep["workload"], "max_old_space": limits[name],
                                 "mmu_curve": _mmu_curve(runs), "parallel": _parallel(runs),
                                 "runs": [asdict(r) for r in runs]}
                    step.advance()
            finally:
                srv.stop()
            modes[label] = out
    return {"clients": load.clients, "seconds": load.seconds, "scale": load.scale, "semi_space": load.semi_space,
            "max_old_space": load.max_old_space, "workloads": list(a.workloads), "modes": modes,
            "servers": servers, "cells": {label: {"mode": mode, "heap_factor": f} for label, mode, f, _ in cells},
            "min_heap": {w: asdict(m) for w, m in minimum.items()}}


def mode_switches(load: GcLoad, options: tuple[str, ...]) -> GcLoad:
    """The load with a mode's `field=value` options applied (booleans and integers, by the field's default)."""
    out = replace(load)
    for o in options:
        if o.startswith("--"):
            continue
        name, _, text = o.partition("=")
        default = getattr(load, name)  # AttributeError: MODES names a field GcLoad lacks
        setattr(out, name, text.lower() in ("1", "true", "yes") if isinstance(default, bool) else int(text))
    return out


def _parallel(runs: list[LaneRun]) -> dict[str, float]:
    """The window's scavenges: main-thread and total CPU (every core's), the helpers' share, steals, CAS
    failures: the host-independent side of a parallel scavenge."""
    sc = [e for run in runs for e in run.in_window() if e.kind == "Scavenge"]
    copied = sum(e.nodes_copied_in_new + e.nodes_promoted for e in sc)
    return {"scavenges": len(sc), "main_cpu_ms": sum(e.main_cpu_ms for e in sc),
            "total_cpu_ms": sum(e.total_cpu_ms for e in sc), "pause_ms": sum(e.pause_ms for e in sc),
            "joined": sum(1 for e in sc if e.helpers), "helper_objects": sum(e.helper_objects for e in sc),
            "helper_share": sum(e.helper_objects for e in sc) / copied if copied else 0.0,
            "segments_stolen": sum(e.segments_stolen for e in sc), "cas_failures": sum(e.cas_failures for e in sc),
            "work_words": sum(e.work_words for e in sc), "span_words": sum(e.span_words for e in sc)}


def _minimum_heaps(ctx: Context, load: GcLoad, workloads: list[str]) -> dict[str, MinHeap]:
    """Each workload's smallest heap (tools/gcheap.py), on a server of its own sized for --max-old-space,
    with the serial collector: the baseline every mode's multiples are taken of."""
    from memsim.tools.gcbench import own_server

    messages = min(ctx.args.probe_messages, QUICK_PROBE_MESSAGES) if ctx.quick else ctx.args.probe_messages
    srv = own_server(load).start(timeout=300)
    try:
        with ctx.progress(len(workloads), "smallest heaps") as step:
            out = {}
            for w in workloads:
                out[w] = smallest_heap(srv.target, load, w, messages=messages)
                step.advance()
            return out
    finally:
        srv.stop()


def _mmu_curve(runs: list[LaneRun]) -> list[list[float]]:
    """[width ms, the worst lane's MMU] for each width the window holds."""
    got = worst_mmu(runs, MMU_WIDTHS_MS)
    return [[w, u] for w in MMU_WIDTHS_MS if (u := got[f"{w:g}ms"]) is not None]


def lane_runs(w: JSON) -> list[LaneRun]:
    """A workload's lanes back from the JSON (for the plot and the checks)."""
    return [LaneRun(**{**r, "events": [GcRecord(**e) for e in r["events"]]}) for r in w["runs"]]


def _scavenges(w: JSON) -> list[GcRecord]:
    return [e for run in lane_runs(w) for e in run.in_window() if e.kind == "Scavenge"]


def checks(data: JSON) -> list[Check]:
    out: list[Check] = []
    for mode, ws in data["modes"].items():
        tag = f" ({mode})" if len(data["modes"]) > 1 else ""
        if "handler" in ws:
            # what a scavenge keeps of the new space it found (copied + promoted): the generational
            # hypothesis itself. heapUsed after a scavenge also holds what earlier ones promoted, which
            # only a Mark-Compact frees, so it creeps up with the number of scavenges in the window.
            sc = [e for e in _scavenges(ws["handler"]) if e.new_space_size_at_start]
            worst = max(((e.new_space_survived + e.promoted) / e.new_space_size_at_start for e in sc), default=1.0)
            out.append(Check(f"the handler's new space empties at each scavenge{tag}: each of its {len(sc)} keeps "
                             f"at most {HANDLER_RESIDUE:.0%} of the young objects' bytes it found (worst "
                             f"{worst:.1%})", bool(sc) and worst <= HANDLER_RESIDUE))
        if "splay" in ws:
            counts = ws["splay"]["figures"]["gc_counts"]
            mc = [e for run in lane_runs(ws["splay"]) for e in run.in_window() if e.kind == "Mark-Compact"]
            out.append(Check(f"Splay's pauses include Mark-Compact{tag} ({counts.get('Mark-Compact', 0)} of them, "
                             "each freeing old space)", bool(mc) and all(e.live_after < e.live_before for e in mc)))
        if "splay" in ws and "handler" in ws:
            s, h = (ws[n]["figures"]["survival"]["survival_ratio"] for n in ("splay", "handler"))
            out.append(Check(f"Splay's young objects survive scavenges more than the handler's{tag} "
                             f"({s:.0f} % against {h:.0f} %): its tree is long-lived, a request's objects are not",
                             s > h))
        rising = all(c[0][1] <= c[-1][1] for c in (w["mmu_curve"] for w in ws.values()) if c)
        out.append(Check(f"mutator utilisation rises with the window width for every workload{tag}", rising))
    return out


def summary(data: JSON) -> list[Any]:
    from rich.table import Table

    t = Table(title=f"GC pauses in ms ({data['clients']} client(s) × {data['seconds']:g} s per workload; "
                    f"semi-space {data['semi_space'] >> 10} KiB, old space ≤ {data['max_old_space'] >> 20} MiB)")
    several, heaps = len(data["modes"]) > 1, bool(_factors_of(data))
    for col in (("mode",) if several else ()) + ("workload",) + (("old ≤ MiB",) if heaps else ()) + (
            "kind", "n", "p50", "p99", "max", "GC time", "MMU 10/50/100 ms"):
        t.add_column(col, justify="right")
    for mode, ws in data["modes"].items():
        for name, w in ws.items():
            f = w["figures"]
            mmu = " ".join("-" if (u := f["mmu"].get(k)) is None else f"{u:.2f}" for k in ("10ms", "50ms", "100ms"))
            limit = (f"{w['max_old_space'] / (1 << 20):g}",) if heaps else ()
            for kind, p in f["pauses"].items():
                if kind == "all" or not p["count"]:
                    continue
                short = {"Mark-Compact": "MC", "Marking step": "step"}.get(kind, kind)
                t.add_row(*((mode,) if several else ()), name, *limit, short, str(p["count"]), f"{p['p50_ms']:.1f}",
                          f"{p['p99_ms']:.1f}", f"{p['max_ms']:.1f}", f"{f['gc_time_share']:.1%}", mmu)
    compared = several and "serial" in {c["mode"] for c in data.get("cells", {}).values()}
    extra = [_versus_serial(data)] if compared else []
    if any(m.get("gc_helpers") for m in data.get("servers", {}).values()):
        extra += _parallel_table(data)
    extra += [WORK_SPAN_NOTE] if extra else []
    found = [f"{w}: {m['bytes'] / (1 << 20):g} MiB ({m['probes']} probes; {m['failed_below'] / (1 << 20):g} MiB ran "
             "out of memory)" for w, m in data.get("min_heap", {}).items()]
    return [t, *extra, *(["smallest heaps (max_old_space_size): " + "; ".join(found)] if found else []),
            "MC: Mark-Compact; step: an incremental marking step. MMU: the least share of any window of that "
            "width left to the program (1 = no pause or step in it)."]


def _parallel_table(data: JSON) -> list[Any]:
    from rich.table import Table

    t = Table(title="Scavenges: the main thread's CPU against every core's, and what the helpers did")
    for col in ("mode", "workload", "n", "pause ms", "main CPU ms", "total CPU ms", "joined", "helper objects",
                "helper share", "steals", "CAS lost", "work/span", "span vs serial"):
        t.add_column(col, justify="right")
    for mode, ws in data["modes"].items():
        base = _serial_label(data, mode)
        for name, w in ws.items():
            p = w["parallel"]
            b = data["modes"][base][name]["parallel"] if base else None
            t.add_row(mode, name, str(p["scavenges"]), f"{p['pause_ms']:.1f}", f"{p['main_cpu_ms']:.1f}",
                      f"{p['total_cpu_ms']:.1f}", str(p["joined"]), str(p["helper_objects"]),
                      f"{p['helper_share']:.1%}", str(p["segments_stolen"]), str(p["cas_failures"]),
                      *_work_span_cells(p, b, "scavenges"))
    over = [m for m, s in data["servers"].items() if s["oversubscribed"]]
    return [t, "Sums over the measured window. joined: scavenges a helper core took part in." + (
        f" Oversubscribed ({', '.join(over)}): more cores than the host's {data['servers'][over[0]]['cpus']} CPUs, "
        "so wall times measure time-sharing; the counters do not depend on it." if over else "")]


WORK_SPAN_NOTE = ("work/span: the pauses' work over their span in words (sim/v8/work_span.py; Blumofe & Leiserson's "
                  "parallelism), the speedup a machine with a core per task would give them; span vs serial: span "
                  "per collection over the serial collector's (whose span is its work), the host-independent "
                  "estimate of the pause ratio.")


def _serial_label(data: JSON, label: str) -> str | None:
    """The serial collector's cell on the same heap as `label`'s (None if the run has none)."""
    cells = data.get("cells", {})
    factor = cells.get(label, {}).get("heap_factor")
    return next((lb for lb, c in cells.items() if c["mode"] == "serial" and c["heap_factor"] == factor), None)


def _work_span_cells(mine: JSON, base: JSON | None, count: str) -> tuple[str, str]:
    """work / span, and span per collection against the serial collector's (`count`: the key of the number
    of collections); '-' where a run predates the counters or has no serial base."""
    work, span = mine.get("work_words", 0), mine.get("span_words", 0)
    if not span:
        return "-", "-"
    per = span / max(1, mine.get(count, 0))
    base_per = base.get("span_words", 0) / max(1, base.get(count, 0)) if base else 0
    return f"{work / span:.2f}", f"{per / base_per:.2f}×" if base_per else "-"


def _versus_serial(data: JSON) -> Any:
    """Each mode against the serial collector on the same workload and heap: all pauses' p50/p99/max and
    the collections' CPU on the mutator's core and on all cores, as ratios (below 1: better than serial)."""
    from rich.table import Table

    t = Table(title="against the serial collector, same workload and heap (ratio: mode ÷ serial); CPU per pause, "
                    "since a mode may run more or fewer collections in the same window")
    for col in ("mode", "workload", "p50", "p99", "max", "main CPU ms", "total CPU ms", "work/span", "span vs serial"):
        t.add_column(col, justify="right")
    cells = data["cells"]
    serial = {c["heap_factor"]: label for label, c in cells.items() if c["mode"] == "serial"}
    for label, c in cells.items():
        base_label = serial.get(c["heap_factor"])
        if c["mode"] == "serial" or base_label is None:
            continue
        for name, w in data["modes"][label].items():
            mine, base = (_per_pause(x["figures"]["pauses"]["all"])
                          for x in (w, data["modes"][base_label][name]))

            def versus(key: str, m: JSON = mine, b: JSON = base) -> str:
                return f"{m[key]:.2f} ({m[key] / b[key]:.2f}×)" if b[key] else f"{m[key]:.2f}"
            t.add_row(label, name, *(versus(k) for k in ("p50_ms", "p99_ms", "max_ms", "main_cpu_ms", "total_cpu_ms")),
                      *_work_span_cells(w["figures"]["pauses"]["all"],
                                        data["modes"][base_label][name]["figures"]["pauses"]["all"], "collections"))
    return t


def _per_pause(a: JSON) -> JSON:
    """A mode's "all" pause figures with its CPU sums as means per pause (steps included)."""
    n = a["count"] or 1
    return {**a, "main_cpu_ms": a["main_cpu_ms"] / n, "total_cpu_ms": a["total_cpu_ms"] / n}


def _factors_of(data: JSON) -> list[float]:
    """The heap factors of a --heaps run, in order (empty for one heap per mode)."""
    fs = [c["heap_factor"] for c in data.get("cells", {}).values() if c["heap_factor"] is not None]
    return sorted(set(fs))


def plot_heaps(data: JSON, fig: Figure) -> None:
    """A --heaps run: per workload, pauses and GC time against the heap factor (a line per collector
    mode), and the MMU curves at the tightest heap, where the modes differ most."""
    names, factors = data["workloads"], _factors_of(data)
    by_mode: dict[str, list[tuple[float, JSON]]] = {}
    for label, cell in data["cells"].items():
        by_mode.setdefault(cell["mode"], []).append((cell["heap_factor"], data["modes"][label]))
    rows = (("p50_ms", "pause p50 (ms)"), ("p99_ms", "pause p99 (ms)"), ("max_ms", "longest pause (ms)"),
            ("main_cpu_ms", "main-thread CPU\nper pause (ms)"), ("total_cpu_ms", "CPU of every core\nper pause (ms)"),
            ("gc", "GC share of the window"))
    fig.set_size_inches(15.0, 3.0 * (len(rows) + 1))
    axes = fig.subplots(len(rows) + 1, len(names), squeeze=False)
    for c, name in enumerate(names):
        for r, (key, ylabel) in enumerate(rows):
            ax = axes[r][c]
            for mode, pts in by_mode.items():
                pts = sorted(pts, key=lambda p: p[0])
                ys = [w[name]["figures"]["gc_time_share"] if key == "gc"
                      else _per_pause(w[name]["figures"]["pauses"]["all"])[key] for _, w in pts]
                ax.plot([f for f, _ in pts], ys, marker="o", ms=3, label=mode)
            ax.set_xlabel("heap limit (× the smallest heap)")
            ax.set_ylabel(ylabel)
            ax.set_xticks(factors)
            ax.grid(alpha=0.3)
            if r == 0:
                mb = data["min_heap"][name]["bytes"] / (1 << 20)
                ax.set_title(f"{name} (smallest heap {mb:g} MiB)", fontsize="medium")
        ax = axes[-1][c]
        for mode, pts in by_mode.items():
            tight = min(pts, key=lambda p: p[0])
            curve = tight[1][name]["mmu_curve"]
            ax.plot([p[0] for p in curve], [p[1] for p in curve], marker="o", ms=3, label=f"{mode} {tight[0]:g}×")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("window width (ms)")
        ax.set_ylabel("minimum mutator utilisation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", title="collector, heap", title_fontsize="small")
    axes[0][0].legend(fontsize="small", title="collector", title_fontsize="small")
    fig.suptitle(f"Managed heap, {' against '.join(by_mode)}: pauses, their CPU and GC time against heap size\n"
                 "(multiples of each workload's smallest heap), and MMU at the tightest heap")


COMPARISONS = {"parallel": ("serial", "helpers1", "helpers2"), "marking": ("serial", "incremental", "concurrent")}


def views(data: JSON) -> list[tuple[str, JSON]]:
    """A picture per comparison (serial against parallel scavenging and compaction; stop-the-world against
    incremental and concurrent marking) when a run holds modes of both: its cells cut to that comparison's
    modes."""
    cells = data.get("cells", {})
    present = {c["mode"] for c in cells.values()}
    groups = {name: set(modes) & present for name, modes in COMPARISONS.items()}
    if sum(len(g - {"serial"}) > 0 for g in groups.values()) < 2:
        return []
    out = []
    for name, modes in groups.items():
        keep = {label: c for label, c in cells.items() if c["mode"] in modes}
        out.append((name, {**data, "cells": keep, "modes": {label: data["modes"][label] for label in keep}}))
    return out


def plot(data: JSON, fig: Figure) -> None:
    from memsim.tools.gcplot import draw_workload

    if _factors_of(data):
        plot_heaps(data, fig)
        return
    names, modes = data["workloads"], list(data["modes"])
    rows = 2 * len(modes) + 1
    axes = fig.subplots(rows, len(names), squeeze=False,
                        gridspec_kw={"height_ratios": [3, 2] * len(modes) + [2.5]})
    for m, mode in enumerate(modes):
        for c, name in enumerate(names):
            heap, pauses = axes[2 * m][c], axes[2 * m + 1][c]
            runs = lane_runs(data["modes"][mode][name])
            draw_workload(heap, pauses, name, runs)
            pauses.set_xlim(heap.get_xlim())  # one time axis for the heap and its pauses
            longest = max((e.pause_ms for run in runs for e in run.in_window()), default=1.0)
            pauses.set_ylim(0, longest * 1.1)  # every pause's top in view
            heap.set_ylabel("heap (MiB)")
            heap.set_xlabel("seconds into the measured window")
            if len(modes) > 1:
                heap.set_title(f"{name} ({mode}): heap over time")
    for c, name in enumerate(names):
        ax = axes[-1][c]
        for mode in modes:
            curve = data["modes"][mode][name]["mmu_curve"]
            ax.plot([p[0] for p in curve], [p[1] for p in curve], marker="o", ms=3, label=mode)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("window width (ms)")
        ax.set_ylabel("minimum mutator utilisation")
        ax.set_title(f"{name}: MMU curve", fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", title="collector", title_fontsize="small")
    fig.suptitle("Managed heap: heapUsed (solid) and heapTotal (dashed) over time, each pause by kind, and the MMU "
                 "curve\nthe handler's heap falls to near zero at every scavenge; Splay's climbs until a Mark-Compact")


EXPERIMENT = Experiment(name="gc", help="the managed heap's GC pauses, heap size over time and MMU curve for "
                                        "GCBench, Splay and a request handler, per collector mode",
                        run=run, plot=plot, summary=summary, checks=checks, add_arguments=add_arguments,
                        figsize=(15.0, 10.0), views=views)
