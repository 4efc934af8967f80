"""`memsim experiment page-tables`: what each page-table kind of sim/vm costs in memory, per space and
for N spaces, and in memory references on every TLB miss.

Every figure is read off real spaces of an in-process machine (onmachine.py), never computed from
a formula: a space's bytes are its kind's own `table_bytes()` (the frames its table holds in the
VM pool; for the inverted table, its share: the entries its resident pages use), the machine-wide
inverted table is `vmstat()["ipt_frames"]` frames, and the walk cost is the VM's own counters,
pt_walk_levels / pt_walks (the table reads the MMU made per walk), over random loads that miss
the TLB. The textbook figure the linear kind must meet is stated and checked: a 32-bit space with
4 KiB pages has 2^32 / 2^12 = 2^20 entries of 4 bytes, 4 MiB allocated whole at creation
(pt_linear.py), so 100 such spaces hold 400 MiB (OSTEP ch. 20, "Paging: smaller tables").

Two measurements per configuration (kind and address width):
- growth: one space (a little code, a stack at the top, a heap mapped and touched in stages)
  and its table's bytes after each stage;
- N spaces: spaces of one small process layout each, created one by one on a machine whose pool
  is the same for every kind (big enough for the linear tables), the total read at checkpoints;
  then random loads over all their pages, with the TLB flushed, for the walk counters.
"""

from __future__ import annotations

import argparse
from typing import Any

from memsim.tools.experiments.base import JSON, Check, Context, Experiment, Figure
from memsim.tools.flags import COUNT

MiB = 1 << 20
PAGE = 4096
CODE_PAGES, STACK_PAGES = 16, 8
# label -> (kind, address bits); multilevel levels follow the width (9 bits a level, as x86-64)
CONFIGS: dict[str, tuple[str, int]] = {
    "linear 32-bit": ("linear", 32),
    "hybrid 32-bit": ("hybrid", 32),
    "multilevel 32-bit (3 levels)": ("multilevel", 32),
    "multilevel 48-bit (4 levels, x86-64)": ("multilevel", 48),
    "multilevel 57-bit (5 levels)": ("multilevel", 57),
    "inverted 48-bit": ("inverted", 48),
}
LINEAR_32_BYTES = (1 << (32 - 12)) * 4  # 2^20 four-byte entries: the textbook 4 MiB
WALK_LOADS = 2000  # random loads at each checkpoint (the TLB, 64 entries, holds few of the pages)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spaces", type=COUNT, default=100, help="address spaces at the most (default 100)")
    p.add_argument("--pages", type=COUNT, default=64, help="heap pages each of the N spaces touches (default 64)")
    p.add_argument("--grow", type=COUNT, default=16384,
                   help="heap pages the one growing space reaches (default 16384 = 64 MiB)")


def checkpoints(top: int) -> list[int]:
    return sorted({n for n in (1, 2, 5, 10, 20, 50, 100, 200) if n < top} | {top})


def layout(vm: Any, sp: int, heap_pages: int) -> list[tuple[int, int]]:
    """Map code, a stack and a heap of heap_pages in space sp and touch every page: (start, pages) each."""
    maps = [(vm.mmap(sp, CODE_PAGES * PAGE, kind="code"), CODE_PAGES),
            (vm.mmap(sp, STACK_PAGES * PAGE, kind="stack"), STACK_PAGES)]
    if heap_pages:
        maps.append((vm.mmap(sp, heap_pages * PAGE, kind="heap"), heap_pages))
    for start, n in maps:
        touch(vm, sp, start, n)
    return maps


def touch(vm: Any, sp: int, start: int, n: int) -> None:
    for i in range(n):
        vm.store(sp, start + i * PAGE, b"\1")


def growth(job: tuple[str, list[int]]) -> list[int]:
    """One space of the configuration; its table's bytes once its heap has reached each of `stages` pages."""
    from memsim.sim.system import MachineConfig
    from memsim.tools.experiments.onmachine import machine

    label, stages = job
    kind, bits = CONFIGS[label]
    pool = LINEAR_32_BYTES // PAGE + stages[-1] + 512  # room for a linear table, the pages and any tables
    with machine(MachineConfig(memory_bytes=(pool * PAGE) // MiB * MiB + 2 * MiB, cores=1,
                               vm_memory=pool * PAGE, thp="never")) as vm:
        sp = vm.create_space(kind, bits=bits)
        layout(vm, sp, 0)
        out, have = [], 0
        for pages in stages:
            touch(vm, sp, vm.mmap(sp, (pages - have) * PAGE, kind="heap"), pages - have)
            have = pages
            out.append(vm.table(sp).table_bytes())
        return out


def many(job: tuple[str, int, int, list[int], int, int]) -> JSON:
    """Up to `spaces` spaces of the configuration on one machine (pool of `pool` frames): at each
    checkpoint the total table bytes, and the walk counters over random loads with the TLB flushed."""
    import numpy as np

    from memsim.sim.system import MachineConfig
    from memsim.tools.experiments.onmachine import machine

    label, spaces, pages, marks, pool, seed = job
    kind, bits = CONFIGS[label]
    rng = np.random.default_rng([seed, 3])
    out: JSON = {"totals": [], "own": [], "refs_per_walk": [], "max_refs": [], "walks": []}
    with machine(MachineConfig(memory_bytes=(pool * PAGE) // MiB * MiB + 2 * MiB, cores=1, vm_memory=pool * PAGE,
                               thp="never", swap_bytes=0)) as vm:
        where: list[tuple[int, int, int]] = []
        for n in range(1, spaces + 1):
            sp = vm.create_space(kind, bits=bits)
            where += [(sp, start, count) for start, count in layout(vm, sp, pages)]
            if n not in marks:
                continue
            own = sum(vm.table(s).table_bytes() for s in vm.spaces())
            out["own"].append(own)
            out["totals"].append((own if kind != "inverted" else 0) + vm.vmstat()["ipt_frames"] * PAGE)
            vm.tlb.flush()
            before = vm.vmstat()
            levels = []
            for r in rng.integers(0, len(where), size=WALK_LOADS).tolist():
                sp, start, count = where[r]
                levels.append(vm.translate(sp, start + int(rng.integers(count)) * PAGE)["levels"])
            after = vm.vmstat()
            walks, refs = after["pt_walks"] - before["pt_walks"], after["pt_walk_levels"] - before["pt_walk_levels"]
            out["walks"].append(walks)
            out["refs_per_walk"].append(refs / walks if walks else 0.0)
            out["max_refs"].append(max(levels))
        out["ipt_bytes"] = vm.vmstat()["ipt_frames"] * PAGE
        out["per_space"] = out["own"][-1] / spaces
    return out


def run(ctx: Context) -> JSON:
    a = ctx.args
    spaces, pages = (8, 16) if ctx.quick else (a.spaces, a.pages)
    top = 1024 if ctx.quick else a.grow
    stages = sorted({s for s in (16, 64, 256, 1024, 4096, 16384, 65536) if s < top} | {top})
    marks = checkpoints(spaces)
    per_space_pages = pages + CODE_PAGES + STACK_PAGES + 1  # (+1: a stack's guard page holds no frame)
    pool = spaces * (LINEAR_32_BYTES // PAGE + per_space_pages + 16) + 256  # the same pool for every kind
    labels = list(CONFIGS)
    grown = ctx.map(growth, [(label, stages) for label in labels], "growing one space")
    counted = ctx.map(many, [(label, spaces, pages, marks, pool, ctx.seed) for label in labels], "N spaces")
    return {"configs": {label: {"kind": CONFIGS[label][0], "bits": CONFIGS[label][1], "growth": g, **m}
                        for label, g, m in zip(labels, grown, counted, strict=True)},
            "stages": stages, "spaces": marks, "pages_per_space": pages + CODE_PAGES + STACK_PAGES,
            "pool_bytes": pool * PAGE, "linear_32_formula_bytes": LINEAR_32_BYTES,
            "formula": "linear, 32 bits, 4 KiB pages: 2^32 / 2^12 = 2^20 entries x 4 B = 4 MiB per space, "
                       "allocated whole at creation; N spaces: N x 4 MiB (100 -> 400 MiB)"}


def _mib(n: float) -> str:
    return f"{n / MiB:,.2f} MiB" if n >= MiB / 4 else f"{n / 1024:,.1f} KiB"


def checks(d: JSON) -> list[Check]:
    c = d["configs"]
    lin = c["linear 32-bit"]
    n = d["spaces"][-1]
    ml = [c[k] for k in c if c[k]["kind"] == "multilevel"]
    inv = c["inverted 48-bit"]
    out = [Check(f"a 32-bit linear table is {_mib(lin['growth'][0])} per space, touched or not "
                 f"(2^20 entries x 4 B), and {n} spaces hold {_mib(lin['totals'][-1])} (= {n} x 4 MiB)",
                 set(lin["growth"]) == {LINEAR_32_BYTES} and lin["totals"][-1] == n * LINEAR_32_BYTES),
           Check("every other kind costs a small fraction of the linear table for the same spaces",
                 all(c[k]["totals"][-1] * 4 < lin["totals"][-1] for k in c if c[k]["kind"] != "linear")),
           Check("the inverted table is one table for the machine: the same bytes for 1 and for "
                 f"{n} spaces", len(set(c["inverted 48-bit"]["totals"])) == 1),
           Check("a multilevel walk reads one entry per level (3, 4, 5) on a TLB miss; linear and hybrid one",
                 [set(m["refs_per_walk"]) for m in ml] == [{3.0}, {4.0}, {5.0}]
                 and set(lin["refs_per_walk"]) == set(c["hybrid 32-bit"]["refs_per_walk"]) == {1.0}),
           Check(f"an inverted walk reads the anchor, then its chain: {inv['refs_per_walk'][0]:.2f} references "
                 f"with 1 space, {inv['refs_per_walk'][-1]:.2f} with {n} (the hash spreads the spaces: chains "
                 "grow with the table's load, not with the number of spaces)",
                 inv["refs_per_walk"][0] >= 2.0 and inv["refs_per_walk"][-1] < inv["refs_per_walk"][0] + 1.0)]
    return out


def summary(d: JSON) -> list[Any]:
    from rich.table import Table

    n = d["spaces"][-1]
    t = Table(title=f"page tables: {n} spaces of {d['pages_per_space']} touched pages each "
                    f"(pool {_mib(d['pool_bytes'])}), walks over random loads that miss the TLB")
    for col in ("kind", "one space, growing heap", f"per space ({n})", f"{n} spaces, total",
                f"refs per walk, 1 -> {n} spaces", "max refs"):
        t.add_column(col, justify="left" if col == "kind" else "right")
    for label, c in d["configs"].items():
        grow = f"{_mib(c['growth'][0])} -> {_mib(c['growth'][-1])}"
        t.add_row(label, grow, _mib(c["per_space"]) + (" (share)" if c["kind"] == "inverted" else ""),
                  _mib(c["totals"][-1]) + (" (one table)" if c["kind"] == "inverted" else ""),
                  f"{c['refs_per_walk'][0]:.2f} -> {c['refs_per_walk'][-1]:.2f}", str(c["max_refs"][-1]))
    return [t, d["formula"], f"growing space: heap of {d['stages'][0]} -> {d['stages'][-1]} pages "
                             f"(+ {CODE_PAGES} code, {STACK_PAGES} stack)"]


COLORS = ["tab:red", "tab:orange", "tab:blue", "tab:green", "tab:purple", "tab:brown"]


def plot(d: JSON, fig: Figure) -> None:
    ax1, ax2, ax3 = fig.subplots(1, 3)
    labels = list(d["configs"])
    for color, label in zip(COLORS, labels, strict=False):
        c = d["configs"][label]
        pages = [s + CODE_PAGES + STACK_PAGES for s in d["stages"]]
        ax1.plot(pages, [b / 1024 for b in c["growth"]], marker="o", ms=3, color=color,
                 label=label + (" (its share)" if c["kind"] == "inverted" else ""))
        ax2.plot(d["spaces"], [b / MiB for b in c["totals"]], marker="o", ms=3, color=color, label=label)
    ax1.set(xscale="log", yscale="log", xlabel="pages touched in the space", ylabel="page-table KiB (one space)")
    ax1.set_title("one space: linear pays 4 MiB up front,\nthe others grow with what is mapped", fontsize=9)
    ax1.legend(fontsize=6.5, loc="lower right")
    ax2.set(xscale="log", yscale="log", xlabel="address spaces", ylabel="page-table MiB (all spaces)")
    lin = d["configs"]["linear 32-bit"]["totals"]
    n = d["spaces"][-1]
    ax2.annotate(f"{lin[-1] / MiB:.0f} MiB for {n} linear\n32-bit spaces ({n} x 4 MiB)", xy=(n, lin[-1] / MiB),
                 xytext=(0.05, 0.9), textcoords="axes fraction", fontsize=8, color="tab:red",
                 arrowprops={"arrowstyle": "->", "color": "tab:red"})
    ax2.set_title(f"N spaces of {d['pages_per_space']} pages: inverted is\none table for the machine, flat in N",
                  fontsize=9)
    for color, label in zip(COLORS, labels, strict=False):
        ax3.plot(d["spaces"], d["configs"][label]["refs_per_walk"], marker="o", ms=3, color=color, label=label)
    inv = d["configs"]["inverted 48-bit"]["refs_per_walk"]
    ax3.annotate("inverted: anchor + hash chain;\nchains grow with the table's load,\n"
                 "not with the number of spaces",
                 xy=(n, inv[-1]), xytext=(0.04, 0.62), textcoords="axes fraction", fontsize=7.5, color="tab:brown",
                 arrowprops={"arrowstyle": "->", "color": "tab:brown"})
    ax3.set(xscale="log", yscale="log", xlabel="address spaces", ylabel="memory references per TLB-miss walk")
    ax3.set_title("the price on every TLB miss:\nlinear, hybrid 1; radix 1 per level", fontsize=9)
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3, which="both")
    for ax in (ax2, ax3):
        ax.set_xticks(d["spaces"], [str(n) for n in d["spaces"]])
        ax.minorticks_off()
    top = max(max(c["refs_per_walk"]) for c in d["configs"].values())
    ax3.set_yticks([y for y in (1, 2, 3, 4, 5, 10, 20, 50, 100, 200) if y <= top * 1.2],
                   [str(y) for y in (1, 2, 3, 4, 5, 10, 20, 50, 100, 200) if y <= top * 1.2])
    fig.suptitle("Page tables: memory per space and for N spaces, and the walk each pays on a TLB miss",
                 fontsize=11)


EXPERIMENT = Experiment(name="page-tables", help="page-table bytes per space and for N spaces for each kind "
                                                 "(linear, hybrid, multilevel, inverted), and the walk cost",
                        run=run, plot=plot, summary=summary, checks=checks, add_arguments=add_arguments,
                        figsize=(11.0, 4.6))
