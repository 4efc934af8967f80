"""`memsim experiment thp`: transparent huge pages, never / madvise / always (sim/vm/hugepage.py): the TLB
reach they buy, the page walks they save, and the latency spikes direct compaction costs.

Two measurements, each on an in-process machine per mode (onmachine.py; no khugepaged thread runs
there, so every huge page below is a fault-time one):

- reach: a 48-bit multilevel space with two heap regions of the same size, one advised
  (mmap huge=True: MADV_HUGEPAGE) and one not, every page touched, then random loads over both
  with the TLB flushed first. The TLB hit ratio and the table reads per access and per walk are
  the VM's counters (tlb_hit, tlb_miss, pt_walks, pt_walk_levels); madvise gives huge pages to
  the advised half only, always to both, never to neither. A huge page's walk ends at the PMD
  (3 reads instead of 4), and one TLB entry covers 512 pages.
- spikes: the pool is fragmented first: a filler space (a "data" region, never huge) fills it,
  then gives back every page but those in every 16th frame of most 2 MiB windows, so no aligned
  free run is left there; the last few windows stay free. A heap then grows one 2 MiB range at a
  time while random stores go over what it has so far, each access timed (perf_counter_ns and
  thread_time_ns around the VM call). The latency plotted and checked is the simulating thread's
  CPU time for the access (CLOCK_THREAD_CPUTIME_ID): what the access itself cost, without the
  host's other processes preempting it (on a shared host those are spikes of their own); the
  wall-clock time is kept beside it. An access that raised compact_stall is a direct-compaction
  stall (Linux's __alloc_pages_direct_compact: the faulting task itself migrates pages to empty
  a window); thp_fault_alloc without a stall is a huge page taken from a free run; pgfault alone
  a 4 KiB fault. Times vary run to run; the counts do not.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from memsim.tools.experiments.base import JSON, Check, Context, Experiment, Figure
from memsim.tools.flags import COUNT

MiB = 1 << 20
PAGE = 4096
HUGE = 512  # pages per huge page (HUGE_FRAMES)
MODES = ("never", "madvise", "always")
KEEP_EVERY = 16  # the filler keeps one page in this many frames of a fragmented window
FREE_WINDOWS = 4  # aligned windows left wholly free: the first huge faults need no compaction
SPIKE_MODES = ("never", "always")
EVENTS = ("compaction", "huge fault", "4 KiB fault", "access")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--region-mib", type=COUNT, default=16, help="MiB of each of the two regions (default 16)")
    p.add_argument("--loads", type=COUNT, default=20000, help="random loads measured per mode (default 20000)")
    p.add_argument("--huge-pages", type=COUNT, default=12,
                   help="2 MiB ranges the growing heap reaches in the spikes run (default 12)")


def reach(job: tuple[str, int, int, int]) -> JSON:
    """TLB hit ratio and walk cost of random loads over an advised and a plain region, in one mode."""
    import numpy as np

    from memsim.sim.system import MachineConfig
    from memsim.tools.experiments.onmachine import machine

    mode, region_mib, loads, seed = job
    pool = 2 * region_mib * MiB + 8 * MiB
    with machine(MachineConfig(memory_bytes=pool + 4 * MiB, cores=1, vm_memory=pool, thp=mode, vm_policy="lru",
                               swap_bytes=0)) as vm:
        sp = vm.create_space("multilevel")
        size = region_mib * MiB
        plain = vm.mmap(sp, size + 2 * MiB, kind="heap")  # (aligned below, so that always maps it all huge)
        regions = [vm.mmap(sp, size, kind="heap", huge=True), -(-plain // (2 * MiB)) * 2 * MiB]
        for base in regions:
            for i in range(size // PAGE):
                vm.store(sp, base + i * PAGE, b"\1")
        huge = vm.vmstat()["huge_pages"]
        rng = np.random.default_rng([seed, 4])
        addrs = [regions[r] + p * PAGE for r, p in zip(rng.integers(0, 2, size=loads).tolist(),
                                                        rng.integers(0, size // PAGE, size=loads).tolist(),
                                                        strict=True)]
        vm.tlb.flush()
        before = vm.vmstat()
        t0 = time.perf_counter_ns()
        for addr in addrs:
            vm.load(sp, addr, 8)
        ns = (time.perf_counter_ns() - t0) / loads
        d = {k: v - before[k] for k, v in vm.vmstat().items() if k in before}
    walks = d["pt_walks"]
    return {"mode": mode, "huge_pages": huge, "loads": loads, "counters": {k: d[k] for k in (
            "tlb_hit", "tlb_miss", "pt_walks", "pt_walk_levels", "pgfault")},
            "tlb_hit_ratio": d["tlb_hit"] / (d["tlb_hit"] + d["tlb_miss"]),
            "refs_per_access": d["pt_walk_levels"] / loads,
            "refs_per_walk": d["pt_walk_levels"] / walks if walks else 0.0, "ns_per_access": round(ns)}


def fragment(vm: Any, windows: int) -> tuple[int, int]:
    """Fill the pool with a filler space's small pages, then give back all but one page in KEEP_EVERY
    frames of every window below the last FREE_WINDOWS. Returns (pages kept, windows fragmented)."""
    filler = vm.create_space("multilevel", name="filler")
    n = vm.pool.free_frames() - 64  # (room for the tables)
    base = vm.mmap(filler, n * PAGE, kind="data")
    # its page tables first (a page per 2 MiB), so that they sit together in the lowest window, as Linux
    # keeps unmovable allocations in pageblocks of their own (mm/page_alloc.c, migratetypes): a table
    # frame in every window would leave compaction nothing it may empty
    for i in [*range(0, n, HUGE), *range(n)]:
        vm.store(filler, base + i * PAGE, b"\1")
    fragmented = windows - FREE_WINDOWS
    drop = []
    for i in range(n):
        f = vm.translate(filler, base + i * PAGE)["frame"] - vm.pool.base
        if not (f // HUGE < fragmented and f % KEEP_EVERY == 0):
            drop.append(i)
    runs: list[list[int]] = []
    for i in drop:
        if runs and runs[-1][1] == i:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1])
    for lo, hi in runs:
        vm.discard(filler, base + lo * PAGE, (hi - lo) * PAGE)
    return n - len(drop), fragmented


def spikes(job: tuple[str, int, int, int]) -> JSON:
    """Every access of a heap growing a 2 MiB range at a time on a fragmented pool: its latency, its event."""
    import numpy as np

    from memsim.sim.system import MachineConfig
    from memsim.sim.vm.layout import S
    from memsim.tools.experiments.onmachine import machine

    mode, ranges, per_range, seed = job
    windows = ranges + FREE_WINDOWS + 2
    with machine(MachineConfig(memory_bytes=(windows + 2) * 2 * MiB, cores=1, vm_memory=windows * 2 * MiB,
                               thp=mode, vm_policy="lru", swap_bytes=0)) as vm:
        kept, fragmented = fragment(vm, windows)
        sp = vm.create_space("multilevel", name="heap")
        base = vm.mmap(sp, (ranges + 1) * 2 * MiB, kind="heap")
        base = -(-base // (2 * MiB)) * 2 * MiB  # the first whole huge page of the region
        rng = np.random.default_rng([seed, 5])
        stat = vm.stat
        cols = [S["compact_stall"], S["thp_fault_alloc"], S["pgfault"]]
        lat: list[float] = []
        wall: list[float] = []
        event: list[int] = []
        at: list[float] = []
        t_start = time.perf_counter_ns()
        before = vm.vmstat()
        for r in range(ranges):
            for k in range(per_range):
                page = 0 if k == 0 else int(rng.integers(0, (r + 1) * HUGE))  # k == 0: the new range's first touch
                addr = base + (r * HUGE if k == 0 else page) * PAGE
                c0 = stat[cols].copy()
                t0, cpu0 = time.perf_counter_ns(), time.thread_time_ns()
                vm.store(sp, addr, b"\2")
                cpu1, t1 = time.thread_time_ns(), time.perf_counter_ns()
                c = stat[cols] - c0
                lat.append(round((cpu1 - cpu0) / 1000, 1))
                wall.append(round((t1 - t0) / 1000, 1))
                at.append(round((t0 - t_start) / 1e6, 3))
                event.append(0 if c[0] else 1 if c[1] else 2 if c[2] else 3)
        after = vm.vmstat()
        d = {k: after[k] - before[k] for k in ("compact_stall", "compact_success", "compact_migrate_pages",
                                               "thp_fault_alloc", "thp_fault_fallback", "pgfault", "tlb_hit",
                                               "tlb_miss")}
    return {"mode": mode, "latency_us": lat, "wall_us": wall, "at_ms": at, "event": event, "counters": d,
            "filler_pages_kept": kept, "windows": windows, "fragmented_windows": fragmented}


def run(ctx: Context) -> JSON:
    a = ctx.args
    region_mib, loads, ranges = (4, 3000, 6) if ctx.quick else (a.region_mib, a.loads, a.huge_pages)
    per_range = 300 if ctx.quick else 600
    reached = ctx.map(reach, [(m, region_mib, loads, ctx.seed) for m in MODES], "TLB reach per mode")
    spiked = ctx.map(spikes, [(m, ranges, per_range, ctx.seed) for m in SPIKE_MODES], "compaction spikes")
    return {"reach": {r["mode"]: r for r in reached}, "spikes": {s["mode"]: s for s in spiked},
            "region_mib": region_mib, "ranges": ranges, "per_range": per_range, "events": list(EVENTS)}


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if s else 0.0


def _by_event(s: JSON, e: int) -> list[float]:
    return [x for x, ev in zip(s["latency_us"], s["event"], strict=True) if ev == e]


def checks(d: JSON) -> list[Check]:
    r = d["reach"]
    hit = [r[m]["tlb_hit_ratio"] for m in MODES]
    refs = [r[m]["refs_per_access"] for m in MODES]
    always = d["spikes"]["always"]
    stalls, plain = _by_event(always, 0), _by_event(always, 3)
    c = always["counters"]
    return [Check(f"TLB hit ratio rises never < madvise < always ({hit[0]:.3f} < {hit[1]:.3f} < {hit[2]:.3f})",
                  hit[0] < hit[1] < hit[2]),
            Check(f"page-table reads per access fall never > madvise > always ({refs[0]:.2f} > {refs[1]:.2f} > "
                  f"{refs[2]:.2f})", refs[0] > refs[1] > refs[2]),
            Check("a huge page's walk ends at the PMD: always walks 3 reads, never 4",
                  round(r["always"]["refs_per_walk"], 6) in (0.0, 3.0) and r["never"]["refs_per_walk"] == 4.0),
            Check(f"on the fragmented pool, THP always stalled in direct compaction {c['compact_stall']} times "
                  f"({c['compact_migrate_pages']} pages migrated), never not once",
                  c["compact_stall"] > 0 and c["compact_migrate_pages"] > 0
                  and d["spikes"]["never"]["counters"]["compact_stall"] == 0),
            Check(f"a compaction stall is a spike: median {_median(stalls):,.0f} µs against "
                  f"{_median(plain):,.0f} µs for an ordinary access", _median(stalls) > 5 * _median(plain))]


def summary(d: JSON) -> list[Any]:
    from rich.table import Table

    t = Table(title=f"TLB reach: random loads over an advised and a plain {d['region_mib']} MiB heap region")
    for col in ("THP", "huge pages", "TLB hit ratio", "table reads / access", "reads / walk", "ns / access"):
        t.add_column(col, justify="left" if col == "THP" else "right")
    for m, r in d["reach"].items():
        t.add_row(m, str(r["huge_pages"]), f"{r['tlb_hit_ratio']:.3f}", f"{r['refs_per_access']:.2f}",
                  f"{r['refs_per_walk']:.2f}", f"{r['ns_per_access']:,}")
    s = Table(title=f"latency on a fragmented pool: a heap growing {d['ranges']} x 2 MiB, "
                    f"{d['per_range']} accesses per range")
    for col in ("THP", "event", "accesses", "median µs (CPU)", "max µs (CPU)", "median µs (wall)"):
        s.add_column(col, justify="left" if col in ("THP", "event") else "right")
    for m, sp in d["spikes"].items():
        for e, name in enumerate(EVENTS):
            xs = _by_event(sp, e)
            if xs:
                walls = [w for w, ev in zip(sp["wall_us"], sp["event"], strict=True) if ev == e]
                s.add_row(m, name, str(len(xs)), f"{_median(xs):,.1f}", f"{max(xs):,.1f}", f"{_median(walls):,.1f}")
    c = d["spikes"]["always"]["counters"]
    return [t, s, f"always: compact_stall {c['compact_stall']}, compact_success {c['compact_success']}, "
                  f"pages migrated {c['compact_migrate_pages']}, thp_fault_alloc {c['thp_fault_alloc']}, "
                  f"fallbacks {c['thp_fault_fallback']}"]


MARK = {0: ("tab:red", "X", 70), 1: ("tab:green", "^", 40), 2: ("black", ".", 8), 3: ("tab:blue", ".", 4)}


def plot(d: JSON, fig: Figure) -> None:
    ax1, ax2 = fig.add_subplot(2, 3, 1), fig.add_subplot(2, 3, 4)
    ax3 = fig.add_subplot(2, 3, (2, 6))  # the two right columns, both rows
    r = d["reach"]
    colors = ["tab:gray", "tab:orange", "tab:blue"]
    b = ax1.bar(MODES, [r[m]["tlb_hit_ratio"] for m in MODES], color=colors)
    ax1.bar_label(b, labels=[f"{r[m]['tlb_hit_ratio']:.2f}" for m in MODES], fontsize=8)
    ax1.set(ylim=(0, 1.15), ylabel="TLB hit ratio")
    ax1.set_title(f"TLB reach, random loads over 2 x {d['region_mib']} MiB\n(one region advised)", fontsize=9)
    b = ax2.bar(MODES, [r[m]["refs_per_access"] for m in MODES], color=colors)
    ax2.bar_label(b, labels=[f"{r[m]['refs_per_access']:.2f}" for m in MODES], fontsize=8)
    ax2.set(ylim=(0, 4.8), ylabel="page-table reads per access", xlabel="THP mode")
    ax2.set_title("page-walk cost: 4 reads a 4 KiB walk, 3 a huge one", fontsize=8)
    never = d["spikes"]["never"]
    ax3.scatter(never["at_ms"], never["latency_us"], s=3, marker=".", color="silver", linewidths=0,
                label=f"never: every access ({len(never['event'])}; 4 KiB faults)")
    always = d["spikes"]["always"]
    for e in (3, 2, 1, 0):
        pts = [(t, x) for t, x, ev in zip(always["at_ms"], always["latency_us"], always["event"], strict=True)
               if ev == e]
        if pts:
            color, marker, size = MARK[e]
            ax3.scatter([p[0] for p in pts], [p[1] for p in pts], s=size, marker=marker, color=color,
                        label=f"always: {EVENTS[e]} ({len(pts)})", zorder=3 if e < 2 else 2, linewidths=0)
    stalls = [(t, x) for t, x, ev in zip(d["spikes"]["always"]["at_ms"], d["spikes"]["always"]["latency_us"],
                                         d["spikes"]["always"]["event"], strict=True) if ev == 0]
    if stalls:
        t, x = max(stalls, key=lambda p: p[1])
        c = d["spikes"]["always"]["counters"]
        ax3.annotate(f"direct compaction: {c['compact_stall']} stalls ({c['compact_success']} found a run),\n"
                     f"{c['compact_migrate_pages']} pages migrated inside the faulting access", xy=(t, x),
                     xytext=(0.3, 0.74), textcoords="axes fraction",
                     fontsize=8, color="tab:red", arrowprops={"arrowstyle": "->", "color": "tab:red"})
    ax3.set(yscale="log", xlabel="time since the heap started growing (ms)", ylabel="latency of one access (µs of CPU)")
    free_runs = d["spikes"]["always"]["event"].count(1)
    ax3.set_title(f"THP always on a fragmented pool, a heap growing 2 MiB at a time: {free_runs} new ranges\n"
                  f"find a free run, {len(stalls)} stall in compaction (THP never: 4 KiB faults, grey)", fontsize=9)
    ax3.legend(fontsize=7, loc="lower right")
    ax3.grid(alpha=0.3, which="both")
    fig.suptitle("Transparent huge pages: TLB reach and walk cost, and the latency spikes of compaction",
                 fontsize=11)


EXPERIMENT = Experiment(name="thp", help="TLB hit ratio and page-walk cost with THP never / madvise / always, "
                                         "and the latency spikes direct compaction causes",
                        run=run, plot=plot, summary=summary, checks=checks, add_arguments=add_arguments,
                        figsize=(11.0, 5.6))
