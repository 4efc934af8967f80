"""`memsim vm`: the machine's vmstat and every address space, readably (or as JSON).

    memsim vm [--target HOST:PORT] [--space N] [--json]

For each space: its page table (kind, width, bytes), rss and swap, faults, TLB hit ratio, and
its memory map as smaps/vmmap show one (range, size, rss, swap, permissions, kind, name).
"""

from __future__ import annotations

import json
import sys

from memsim.client.errors import MemsimError
from memsim.client.vm import VMClient


def human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


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
    from rich.console import Console
    from rich.table import Table

    con = Console(width=None if sys.stdout.isatty() else 160)  # a pipe gets whole rows, not 80 columns
    v = data["vmstat"]
    t = Table(title=f"vmstat (replacement: {v.get('policy')}, page {v['page_size']} B)")
    for col in ("pool frames", "free", "swap used/slots", "pgfault", "pgmajfault", "pswpin", "pswpout", "pgscan",
                "pgsteal", "TLB hit ratio", "shootdowns", "huge pages (THP / hugetlb free)"):
        t.add_column(col, justify="right", no_wrap=True)
    hits, misses = v["tlb_hit"], v["tlb_miss"]
    t.add_row(str(v["pool_frames"]), str(v["free_frames"]), f"{v['swap_used']}/{v['swap_slots']}",
              str(v["pgfault"]), str(v["pgmajfault"]), str(v["pswpin"]), str(v["pswpout"]), str(v["pgscan"]),
              str(v["pgsteal"]), f"{hits / (hits + misses):.3f}" if hits + misses else "-",
              str(v["tlb_shootdowns"]), f"{v['huge_pages']} / {v['hugetlb_pages_free']}")
    con.print(t)
    if not data["spaces"]:
        con.print("no address spaces (create one with VMClient.create_space)")
    for s in data["spaces"]:
        u = s["memory_usage"]
        con.print(f"\n[bold]space {s['space']}[/bold] {s['name'] or ''} - {s['page_table']} page table, "
                  f"{s['bits']}-bit, table {human(s['page_table_bytes'])}; rss {human(u['rss'])}, "
                  f"swap {human(u['swap'])}, heapTotal {human(u['heapTotal'])}, heapUsed {human(u['heapUsed'])}; "
                  f"faults {s['minflt']} minor / {s['majflt']} major; TLB hit ratio {s['tlb_hit_ratio']:.3f}")
        m = Table(show_header=True)
        for col in ("range", "size", "rss", "swap", "perms", "kind", "huge", "name"):
            m.add_column(col, justify="right" if col in ("size", "rss", "swap", "huge") else "left", no_wrap=True)
        for r in s["memory_map"]:
            m.add_row(f"{r['start']:012x}-{r['end']:012x}", human(r["size"]), human(r["rss"]), human(r["swap"]),
                      r["perms"], r["kind"], str(r["huge_pages"]), r["name"])
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
