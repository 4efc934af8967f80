"""How `memsim trace mrc` and `memsim trace stats` read: rich tables, JSON, and the curve's PNG.

Owns: rendering `sim/trace`'s Curve and TraceStats. Pure: reads records, prints or writes one file.
matplotlib is imported only when a PNG is asked for (gcplot.py's PlotUnavailable names the fix).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table

from memsim.sim.trace.mrc import Curve
from memsim.sim.trace.stats import TraceStats
from memsim.tools.gcplot import pyplot
from memsim.tools.report import human

ROWS = 12  # a curve's table shows this many sizes, evenly picked; --json has them all


def render_curves(curves: Sequence[Curve], error: float | None, console: Console | None = None) -> None:
    con = console or Console()
    first = curves[0]
    t = Table(title=f"LRU miss ratio, {first.requests:,} requests, footprint {first.footprint:,.0f} objects",
              box=box.SIMPLE_HEAD)
    t.add_column("cache size (objects)", justify="right")
    for c in curves:
        t.add_column(c.method + (f" R={c.rate:.4g}" if c.rate < 1 else ""), justify="right")
    n = len(first.sizes)
    step = max(1, -(-n // ROWS))
    rows = sorted({*range(0, n, step), n - 1})
    for i in rows:
        t.add_row(f"{int(first.sizes[i]):,}", *(f"{float(c.miss_ratio[i]):.4f}" for c in curves))
    con.print(t)
    if error is not None:
        con.print(f"SHARDS mean absolute error against the exact curve: {error:.5f}")


def render_stats(s: TraceStats, console: Console | None = None) -> None:
    con = console or Console()
    t = Table(title="trace", box=box.SIMPLE_HEAD, show_header=False)
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row("requests", f"{s.requests:,}")
    t.add_row("objects (footprint)", f"{s.objects:,}")
    t.add_row("footprint bytes", human(s.footprint_bytes))
    t.add_row("requested bytes", human(s.request_bytes))
    t.add_row("one-hit wonders", f"{s.one_hit_objects:,} ({s.one_hit_share:.1%} of objects)")
    t.add_row("cold misses", f"{s.cold_misses:,}")
    for op, n in s.ops.items():
        t.add_row(f"op {op}", f"{n:,} ({n / max(s.requests, 1):.1%})")
    con.print(t)
    h = Table(title="reuse (stack) distance", box=box.SIMPLE_HEAD)
    h.add_column("distance", justify="right")
    h.add_column("requests", justify="right")
    h.add_column("share", justify="right")
    for k, n in enumerate(s.reuse_log2):
        h.add_row(f"{1 << k:,}-{(2 << k) - 1:,}", f"{n:,}", f"{n / max(s.requests, 1):.1%}")
    h.add_row("first request", f"{s.cold_misses:,}", f"{s.cold_misses / max(s.requests, 1):.1%}")
    con.print(h)


def write_mrc_png(path: str, curves: Sequence[Curve], title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    for c in curves:
        label = c.method + (f" (R={c.rate:.3g})" if c.rate < 1 else "")
        ax.plot(c.sizes, c.miss_ratio, label=label, linestyle="-" if c.method == "exact" else "--")
    ax.set_xlabel("cache size (objects)")
    ax.set_ylabel("LRU miss ratio")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
