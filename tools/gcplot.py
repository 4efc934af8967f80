"""`memsim bench gc --png`: heap size and GC pauses over the measured window, one column per workload.

Top: heapUsed (solid) and heapTotal (dashed) of each lane's isolate, the sawtooth of allocation
and reclamation (tools/gcstats.py's heap_series). Below: every pause at the time it began, its
height the pause in ms, one colour per GC kind (the colours V8's own tools give no convention
for, so: Scavenge blue, Mark-Compact red). Pure: reads LaneRuns, writes one file.

matplotlib is imported only here and only when a PNG is asked for, with the Agg backend (no
display); a missing matplotlib is a clear error naming the fix, not a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memsim.tools.gcstats import KINDS, MARKING_STEP, LaneRun, heap_series

if TYPE_CHECKING:
    from matplotlib.axes import Axes

KIND_COLOURS = {"Scavenge": "tab:blue", "Mark-Compact": "tab:red"}
OTHER_COLOUR = "tab:green"
MiB = float(1 << 20)


class PlotUnavailable(RuntimeError):
    """matplotlib cannot be imported."""


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display), or PlotUnavailable naming the fix; every
    PNG of the tools (this one, `memsim trace`'s) imports matplotlib through here, only when drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PlotUnavailable(f"--png needs matplotlib ({e}); install it: pip install matplotlib") from None
    return plt


def write_png(path: str, workloads: Sequence[tuple[str, Sequence[LaneRun]]]) -> None:
    """Plot each (workload, lanes) as a column of two panels and save the figure as a PNG at path."""
    plt = pyplot()
    cols = max(1, len(workloads))
    fig, axes = plt.subplots(2, cols, figsize=(6.0 * cols, 7.0), squeeze=False, sharex="col",
                             gridspec_kw={"height_ratios": [3, 2]})
    for c, (name, runs) in enumerate(workloads):
        draw_workload(axes[0][c], axes[1][c], name, runs)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def draw_workload(heap: Axes, pauses: Axes, name: str, runs: Sequence[LaneRun]) -> None:
    """One workload's two panels: heap over time on `heap`, its pauses by kind on `pauses`
    (also what `memsim experiment gc` draws each workload's column with)."""
    for i, run in enumerate(runs):
        colour = f"C{i % 10}"
        pts = heap_series(run)
        ts = [p[0] for p in pts]
        heap.plot(ts, [p[1] / MiB for p in pts], color=colour, lw=1.2, label=f"lane {run.lane} heapUsed")
        heap.plot(ts, [p[2] / MiB for p in pts], color=colour, lw=1.0, ls="--", drawstyle="steps-post",
                  label=f"lane {run.lane} heapTotal")
    heap.set_title(f"{name}: heap over time")
    heap.set_ylabel("MiB")
    heap.grid(alpha=0.3)
    if runs:
        heap.legend(fontsize="x-small", loc="best", ncol=2)
    kinds = sorted({r.kind for run in runs for r in run.in_window()},
                   key=lambda k: (KINDS.index(k) if k in KINDS else len(KINDS), k))
    for kind in kinds:
        xs = [(r.start_ms - run.t0_ms) / 1000.0 for run in runs for r in run.in_window() if r.kind == kind]
        ys = [r.pause_ms for run in runs for r in run.in_window() if r.kind == kind]
        colour = KIND_COLOURS.get(kind, OTHER_COLOUR)
        pauses.vlines(xs, 0, ys, color=colour, lw=0.8, alpha=0.6)
        pauses.scatter(xs, ys, color=colour, s=8, label=f"{kind} ({len(xs)})")
    steps = [((float(s) - run.t0_ms) / 1000.0, float(ms)) for run in runs for r in run.in_window() for s, ms in r.steps
             if run.t0_ms <= s <= run.t1_ms]
    if steps:  # incremental marking's steps: pauses of the mutator too
        pauses.scatter([x for x, _ in steps], [y for _, y in steps], color=OTHER_COLOUR, s=6, marker="x",
                       label=f"{MARKING_STEP} ({len(steps)})")
    pauses.set_ylabel("pause (ms)")
    pauses.set_xlabel("seconds into the measured window")
    pauses.grid(alpha=0.3)
    if kinds or steps:
        pauses.legend(fontsize="small", loc="upper left")
