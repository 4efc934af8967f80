"""How the managed heap's figures read: `memsim bench gc`'s report and `memsim gc`'s isolates, as rich
tables for a reader who knows Node's output.

`assemble` makes the report of one workload from its lanes' results (tools/gcbench.py runs them);
`print_bench` renders a whole report (a dict, as its JSON holds it). `render_isolates`
renders what `collect` read from a server: for each isolate Node's process.memoryUsage(),
v8.getHeapStatistics() and v8.getHeapSpaceStatistics() under their own names and in bytes (as Node
prints them, with a readable size beside), the collector's counters, and the last --trace-gc
lines verbatim. Pure functions over plain dicts, except `collect` and `main_gc`, which call the server.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table

from memsim.tools import gcstats, harness
from memsim.tools.flags import server_error
from memsim.tools.gcstats import KINDS, LaneRun
from memsim.tools.report import human

if TYPE_CHECKING:
    from memsim.client import Isolate

TRACE_LINES = 20  # --trace-gc lines `memsim gc` shows per isolate


@dataclass
class LaneResult:
    run: LaneRun
    histogram: bytes
    messages: int
    ops: int
    workload: dict[str, Any]
    counters: dict[str, Any]


def assemble(workload: str, got: list[LaneResult]) -> dict[str, Any]:
    """The report of one workload from its lanes' results (pure: tests feed it synthetic lanes)."""
    runs = [r.run for r in got]
    hist = harness.merge(r.histogram for r in got)
    elapsed = max((run.seconds for run in runs), default=0.0)
    ops = sum(r.ops for r in got)
    return {
        "figures": gcstats.summarise(runs),
        "client": {"messages": sum(r.messages for r in got), "ops": ops,
                   "ops_per_s": round(ops / elapsed, 1) if elapsed else 0.0,
                   "latency_us": {**harness.latency(hist, ("p50", "p99", "max")), "per": "message"}},
        "workload": _workload_figures(workload, got, runs, elapsed),
        "lanes": [{"lane": r.run.lane, "gcs": len(r.run.in_window()), "mmu": gcstats.lane_mmu(r.run),
                   "allocated_bytes": gcstats.allocated_in_window(r.run), "lost_events": r.run.lost_events,
                   "workload": r.workload, "counters": r.counters} for r in got],
        "events": [{"lane": run.lane, "t_s": round((e.start_ms - run.t0_ms) / 1000, 4), **asdict(e)}
                   for run in runs for e in run.in_window()],
        "heap": [{"lane": run.lane, "series": [list(p) for p in gcstats.heap_series(run)]} for run in runs],
        "_runs": runs,  # for the PNG; not written to JSON
    }


def _workload_figures(name: str, got: list[LaneResult], runs: list[LaneRun], elapsed: float) -> dict[str, Any]:
    if name == "splay":
        samples = [ms for r in got for ms in r.workload["run_ms"]]
        pauses = [e.pause_ms for run in runs for e in run.in_window()]
        return {"runs": len(samples), "tree_size": got[0].workload["tree_size"] if got else 0,
                "rms_pause_ms": round(gcstats.rms(pauses), 3), "rms_run_ms": round(gcstats.rms(samples), 3)}
    if name == "handler":
        requests = sum(r.workload["requests"] for r in got)
        return {"requests": requests, "requests_per_s": round(requests / elapsed, 1) if elapsed else 0.0,
                "cached": sum(r.workload["cached"] for r in got),
                "cache_entries": got[0].workload["cache_entries"] if got else 0}
    out = {k: v for k, v in (got[0].workload if got else {}).items() if k not in ("passes", "trees")}
    return {**out, "passes": sum(r.workload["passes"] for r in got), "trees": sum(r.workload["trees"] for r in got)}




def scale_text(scale: float) -> str:
    """--scale as a reader thinks of it: 1/16 rather than 0.0625."""
    inverse = 1 / scale
    return f"1/{round(inverse)}" if scale < 1 and abs(inverse - round(inverse)) < 1e-9 else f"{scale:g}"


def _ms(v: float) -> str:
    return f"{v:,.2f}"


def _rate(v: float) -> str:
    """Per second, in the unit that reads best."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= size:
            return f"{v / size:.2f}{unit}"
    return f"{v:.0f}"


def pause_table(pauses: Mapping[str, Mapping[str, float]], title: str) -> Table:
    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for col in ("kind", "count", "p50 ms", "p95 ms", "p99 ms", "max ms", "total ms"):
        t.add_column(col, justify="left" if col == "kind" else "right", no_wrap=True)
    for kind, p in pauses.items():
        t.add_row(kind, f"{int(p['count']):,}", *(_ms(p[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms",
                                                                        "total_ms")))
    return t


def _mmu_text(mmu: Mapping[str, float | None]) -> str:
    return " / ".join("-" if u is None else f"{u * 100:.1f}%" for u in mmu.values())


def _throughput(pauses: Mapping[str, Mapping[str, float]]) -> str:
    """Per GC kind: objects moved and bytes copied per second of pause."""
    out = []
    for k, p in pauses.items():
        if k != "all" and p["count"]:
            moved = f"{_rate(p['objects_per_s'])} objects/s, " if p["objects_per_s"] else ""
            out.append(f"{k} {moved}{human(int(p['bytes_per_s']))}/s")
    return "; ".join(out)


def print_bench(report: dict[str, Any], console: Console | None = None) -> None:
    """Each workload as a table of figures (readable at 80 columns) and a table of pauses by kind."""
    con = console or Console()
    ld = report["load"]
    for name, r in report["workloads"].items():
        f, c, w = r["figures"], r["client"], r["workload"]
        s, lat = f["survival"], c["latency_us"]
        t = Table(title=f"gc {name}: {ld['clients']} isolates x {f['seconds']:g} s; semi-space "
                        f"{human(ld['semi_space'])}, max-old-space {human(ld['max_old_space'])}, "
                        f"scale {scale_text(ld['scale'])}",
                  box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
        t.add_column("figure", no_wrap=True)
        t.add_column("value")
        counts = ", ".join(f"{k} {n:,}" for k, n in f["gc_counts"].items())
        rows = [("allocation", f"{f['allocation_mib_s']:,.2f} MiB/s, {human(f['allocated_bytes'])} in all"),
                ("GCs", f"{counts}; {f['gc_time_share'] * 100:.1f}% of the time"),
                ("survival / promotion", f"{s['survival_ratio']:.1f}% / {s['promotion_ratio']:.1f}% of new space "
                                         f"at scavenges"),
                ("promoted / copied", f"{human(s['promoted'])} promoted, {human(s['new_space_survived'])} kept in new "
                                      f"space, {human(int(f['pauses']['all']['bytes_copied']))} copied in all"),
                ("GC throughput", _throughput(f["pauses"]) or "-"),
                ("MMU 10 / 50 / 100 ms", _mmu_text(f["mmu"])),
                ("client", f"{c['ops_per_s']:,.0f} ops/s; per message p50 {lat['p50'] / 1000:,.2f} ms, "
                           f"p99 {lat['p99'] / 1000:,.2f} ms")]
        rows += _workload_rows(name, w)
        if f["lost_events"]:
            rows.append(("lost GC events", f"{f['lost_events']} left the trace ring unread"))
        for k, v in rows:
            t.add_row(k, v)
        con.print(t)
        con.print(pause_table(f["pauses"], f"{name}: pauses by kind"))


def _workload_rows(name: str, w: Mapping[str, Any]) -> list[tuple[str, str]]:
    if name == "splay":
        return [("Splay", f"{w['runs']:,} runs of 80 modifications, tree of {w['tree_size']:,} nodes"),
                ("SplayLatency (RMS)", f"GC pauses {w['rms_pause_ms']:.2f} ms, runs {w['rms_run_ms']:.1f} ms")]
    if name == "handler":
        return [("requests", f"{w['requests']:,} ({w['requests_per_s']:,.0f}/s), {w['cached']:,} cached "
                             f"(cache of {w['cache_entries']:,})")]
    return [("GCBench", f"stretch depth {w['stretch_depth']}, long-lived depth {w['long_lived_depth']}, trees to "
                        f"depth {w['max_depth']}, array {w['array_size']:,} doubles; {w['trees']:,} trees, "
                        f"{w['passes']} whole passes")]


# -- memsim gc --------------------------------------------------------------------------------------------------

def _bytes_table(title: str, values: Mapping[str, int | float]) -> Table:
    """Name / bytes / readable, as Node prints process.memoryUsage() (bytes) with a size beside."""
    t = Table(title=title, box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
    t.add_column("name")
    t.add_column("value", justify="right")
    t.add_column("", justify="right", style="dim")
    for k, v in values.items():
        n = int(v)
        bytes_like = isinstance(v, int) and not k.startswith(("number_of", "does_"))
        t.add_row(k, f"{n:,}" if isinstance(v, int) else f"{v:g}", human(n) if bytes_like and n >= 1024 else "")
    return t


SPACE_FIELDS = {"space_size": "size", "space_used_size": "used", "space_available_size": "available",
                "physical_space_size": "physical"}  # V8's names, and the short column headers


def space_table(spaces: list[Mapping[str, Any]]) -> Table:
    """One row per space in node's order; the columns are V8's fields under short headers (the title
    names them in full), so the table reads at 80 columns."""
    t = Table(title=f"v8.getHeapSpaceStatistics(): {', '.join(SPACE_FIELDS)}", box=box.SIMPLE_HEAD,
              title_justify="left")
    t.add_column("space_name", no_wrap=True)
    for header in SPACE_FIELDS.values():
        t.add_column(header, justify="right", no_wrap=True)
    for s in spaces:
        t.add_row(str(s["space_name"]), *(f"{int(s[c]):,}" for c in SPACE_FIELDS))
    return t


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, int | float]:
    """Nested counters as one level of dotted names (pauses.Scavenge.p99_ms)."""
    out: dict[str, int | float] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, name + "."))
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[name] = v
    return out


PAUSE_STATS = ("count", "total_ms", "p50", "p99", "max")  # the tracer's PauseStats, per kind


def pause_rows(flat: Mapping[str, int | float]) -> dict[str, dict[str, int | float]]:
    """The tracer's per-kind pause figures out of the flattened counters (pause_ms.<kind>.<stat>)."""
    kinds: dict[str, dict[str, int | float]] = {}
    for name, v in flat.items():
        head, _, rest = name.partition(".")
        kind, _, stat = rest.rpartition(".")
        if head == "pause_ms" and kind and stat in PAUSE_STATS:
            kinds.setdefault(kind, {})[stat] = v
    return kinds


def counters_tables(counters: Mapping[str, Any]) -> list[Table]:
    """GC counts and pause percentiles by kind (what `--trace-gc` readers look for first), then every
    other counter (bytes allocated, copied and promoted, the work counters, mu, survival)."""
    flat = flatten(counters)
    kinds = pause_rows(flat)
    out: list[Table] = []
    if kinds:
        t = Table(title="GCs by kind", box=box.SIMPLE_HEAD, title_justify="left")
        for col in ("kind", "count", "total ms", "p50 ms", "p99 ms", "max ms"):
            t.add_column(col, justify="left" if col == "kind" else "right")
        for kind, st in sorted(kinds.items(), key=lambda ks: (ks[0] not in KINDS, KINDS.index(ks[0])
                                                               if ks[0] in KINDS else 0, ks[0])):
            t.add_row(kind, _figure(st.get("count", 0)), *(_ms(st.get(k, 0)) for k in PAUSE_STATS[1:]))
        out.append(t)
    t = Table(title="collector counters", box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
    t.add_column("counter")
    t.add_column("value", justify="right")
    for k, v in flat.items():
        if not k.startswith(("pause_ms.", "gc_count.")) or not kinds:
            t.add_row(k, _figure(v))
    out.append(t)
    return out


def _figure(v: int | float) -> str:
    """A counter as a reader wants it: whole numbers with separators, others to 3 places."""
    return f"{int(v):,}" if float(v).is_integer() else f"{v:,.3f}"


def render_isolates(data: dict[str, Any], console: Console | None = None) -> None:
    con = console or Console()
    if not data["isolates"]:
        con.print("no isolates (create one with V8Client.create_isolate)")
    for iso in data["isolates"]:
        info = iso["info"]
        where = f"running on core {info['holder']}" if info.get("holder", -1) >= 0 else "idle"
        owner = "kept" if info.get("keep") else f"owner {info.get('owner') or '-'}"
        con.print(f"\n[bold]isolate {info['isolate']}[/bold]: {info.get('state', 'live')}, {where}, {owner}; "
                  f"semi-space {human(int(info.get('semi_space_size', 0)))}, max-old-space "
                  f"{human(int(info.get('max_old_space_size', 0)))}")
        if "memory_usage" not in iso:
            con.print(f"  no figures: {iso.get('error', 'the isolate is not live')}")
            continue
        con.print(_bytes_table("process.memoryUsage()", iso["memory_usage"]))
        con.print(_bytes_table("v8.getHeapStatistics()", iso["heap_statistics"]))
        con.print(space_table(iso["heap_space_statistics"]))
        for table in counters_tables(iso["counters"]):
            con.print(table)
        lines = iso["trace"]
        con.print(f"--trace-gc (the last {len(lines)})" if lines else "--trace-gc: no GC yet")
        for line in lines:
            con.print(line, markup=False, highlight=False, soft_wrap=True)


def collect(target: str, isolate: int | None, timeout: float, lines: int = TRACE_LINES) -> dict[str, Any]:
    """Every isolate of the server (or one): its info, Node's and V8's figures, counters, last trace lines."""
    from memsim.client import FailedPrecondition, NotFound, V8Client

    out: list[dict[str, Any]] = []
    with V8Client(target, timeout=timeout) as v8:
        for info in v8.isolates():
            if isolate is not None and info.isolate != isolate:
                continue
            entry: dict[str, Any] = {"info": asdict(info)}
            out.append(entry)
            if info.state != "live":
                continue
            try:
                iso = v8.isolate(info.isolate)
                st = iso.stats()
                entry.update(memory_usage=st.memory_usage, heap_statistics=st.heap_statistics,
                             heap_space_statistics=st.spaces, counters=st.counters,
                             trace=trace_tail(iso, lines, int(st.counters.get("last_seq", 0))))
            except (FailedPrecondition, NotFound) as e:  # destroyed or lost since the listing
                entry["error"] = str(e)
    return {"isolates": out}


def trace_tail(iso: Isolate, n: int, last_seq: int = 0) -> list[str]:
    """The last n --trace-gc lines the isolate's ring holds (reading from last_seq - n when known)."""
    lines: list[str] = []
    seq = max(0, last_seq - n)
    while True:
        got = iso.trace(after_seq=seq, max_records=128)
        if not got:
            return lines
        lines = (lines + [e.line for e in got])[-n:]
        seq = got[-1].seq
        if len(got) < 128:
            return lines


def main_gc(target: str, isolate: int | None, as_json: bool, timeout: float) -> int:
    from memsim.client import MemsimError

    try:
        data = collect(target, isolate, timeout)
    except MemsimError as e:
        return server_error("gc", target, e, e.code.name)
    if isolate is not None and not data["isolates"]:
        print(f"memsim gc: {target}: no isolate {isolate}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        render_isolates(data)
    return 0
