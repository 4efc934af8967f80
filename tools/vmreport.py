"""`memsim vm`: the machine's vmstat and every address space, readably (or as JSON).

    memsim vm [--target HOST:PORT] [--space N] [--json]

For each space: its page table (kind, width, bytes), rss and swap, faults, TLB hit ratio, and
its memory map as smaps/vmmap show one (range, size, rss, swap, permissions, kind, name).
"""

from __future__ import annotations

import json
import sys

from memsim.client import MemsimError, VMClient
from memsim.tools.report import human


def collect(vm: VMClient, only: int | None) -> dict:
    stats = vm.vmstat()
    spaces = []
    for st in vm.spaces():
        if only is not None and st.space != only:
            continue
        sp = vm.space(st.space)
        spaces.append({"space": st.space, "page_table": st.page_table, "bits": st.bits, "name": st.name,
                       "page_table_bytes": st.page_table_bytes, "rss_pages": st.rss_pages,
                       "swap_pages": st.swap_pages, "minflt": st.minflt, "majflt": st.majflt,
                       "tlb_hits": st.tlb_hits, "tlb_misses": st.tlb_misses,
                       "tlb_hit_ratio": round(st.tlb_hit_ratio, 4), "accesses": st.accesses,
                       "memory_usage": sp.memory_usage(), "memory_map": sp.memory_map()})
    return {"vmstat": stats, "spaces": spaces}


def render(data: dict) -> None:
    """Readable at 80 columns: vmstat as name/value pairs, each space as a line of figures and
    a memory map whose empty columns (swap, huge pages) are left out."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    con = Console()  # the terminal's width, or $COLUMNS, or 80 for a pipe
    v = data["vmstat"]
    hits, misses = v["tlb_hit"], v["tlb_miss"]
    pairs = [("pool frames", v["pool_frames"]), ("free frames", v["free_frames"]),
             ("swap used", f"{v['swap_used']}/{v['swap_slots']}"), ("pgfault", v["pgfault"]),
             ("pgmajfault", v["pgmajfault"]), ("pswpin", v["pswpin"]), ("pswpout", v["pswpout"]),
             ("pgscan", v["pgscan"]), ("pgsteal", v["pgsteal"]),
             ("TLB hit ratio", f"{hits / (hits + misses):.3f}" if hits + misses else "-"),
             ("TLB shootdowns", v["tlb_shootdowns"]), ("THP huge pages", v["huge_pages"]),
             ("hugetlb free", v["hugetlb_pages_free"])]
    t = Table(title=f"vmstat (replacement: {v.get('policy')}, page {v['page_size']} B)", box=box.SIMPLE,
              show_header=False)
    for _ in range(3):
        t.add_column(no_wrap=True)
        t.add_column(justify="right", no_wrap=True)
    for i in range(0, len(pairs), 3):
        row = pairs[i:i + 3] + [("", "")] * (3 - len(pairs[i:i + 3]))
        t.add_row(*(str(x) for pair in row for x in pair))
    con.print(t)
    if not data["spaces"]:
        con.print("no address spaces (create one with VMClient.create_space)")
    for s in data["spaces"]:
        u = s["memory_usage"]
        con.print(f"\n[bold]space {s['space']}[/bold] {s['name'] or ''}: {s['page_table']} page table, "
                  f"{s['bits']}-bit, table {human(s['page_table_bytes'])}; rss {human(u['rss'])}, "
                  f"swap {human(u['swap'])}, heapTotal {human(u['heapTotal'])}, heapUsed {human(u['heapUsed'])}; "
                  f"faults {s['minflt']} minor / {s['majflt']} major; TLB hit ratio {s['tlb_hit_ratio']:.3f}")
        regions = s["memory_map"]
        cols = ["range", "size", "rss"]
        if any(r["swap"] for r in regions):
            cols.append("swap")
        cols += ["perms", "kind"]
        if any(r["huge_pages"] for r in regions):
            cols.append("huge")
        cols.append("name")
        m = Table(show_header=True, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        for col in cols:
            m.add_column(col, justify="right" if col in ("size", "rss", "swap", "huge") else "left",
                         no_wrap=col != "name", overflow="fold")
        for r in regions:
            cells = {"range": f"{r['start']:x}-{r['end']:x}", "size": human(r["size"]), "rss": human(r["rss"]),
                     "swap": human(r["swap"]), "perms": r["perms"], "kind": r["kind"],
                     "huge": str(r["huge_pages"]), "name": r["name"]}
            m.add_row(*(cells[c] for c in cols))
        con.print(m)


def main_vm(target: str, space: int | None, as_json: bool, timeout: float) -> int:
    try:
        with VMClient(target, timeout=timeout) as vm:
            data = collect(vm, space)
            if space is not None and not data["spaces"]:
                print(f"memsim vm: {target}: no address space {space}", file=sys.stderr)
                return 1
    except MemsimError as e:
        print(f"memsim vm: {target}: {e.code.name}: {e}", file=sys.stderr)
        if e.code.name == "UNAVAILABLE":
            print("is a server running there? point at it with --target HOST:PORT", file=sys.stderr)
        if e.code.name == "UNIMPLEMENTED":
            print("that server has no virtual memory: start it with --vm-memory", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        render(data)
    return 0
