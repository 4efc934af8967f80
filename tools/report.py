"""How the allocator's figures read: a Stats/Info reply as rich tables (`memsim stats`, the demo)
or as plain dicts (`memsim stats --json`), and object listings.

Pure functions over the replies (memsim.v1 messages): they call no server and keep no state.
"""

from __future__ import annotations

from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from memsim.v1 import machine_pb2 as pb

MEMSTATS_FIELDS = ["Alloc", "Sys", "HeapAlloc", "HeapSys", "HeapIdle", "HeapInuse", "HeapReleased", "HeapObjects",
                   "Mallocs", "Frees", "TotalAlloc", "TinyAllocs", "LargeAllocs"]


def human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def to_plain(msg: Message) -> dict:
    """A message as plain dicts/lists/numbers (json_format would turn uint64 into strings)."""
    out: dict = {}
    for f in msg.DESCRIPTOR.fields:
        v = getattr(msg, f.name)
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            out[f.name] = dict(v)
        elif f.is_repeated:
            out[f.name] = [to_plain(x) if isinstance(x, Message) else x for x in v]
        elif isinstance(v, Message):
            out[f.name] = to_plain(v)
        else:
            out[f.name] = v
    return out


def stats_to_dict(st: pb.Stats, info: pb.MachineInfo | None = None, vm_pool_bytes: int | None = None) -> dict:
    d = to_plain(st)
    if info is not None:
        d["machine"] = {"cores": info.cores, "memory_bytes": info.memory_bytes, "frame_size": info.frame_size,
                        "per_core_caches": info.per_core_caches, "global_lock": info.global_lock,
                        "atomics_backend": info.atomics_backend}
        if vm_pool_bytes is not None:
            d["machine"].update(heap_bytes=info.memory_bytes - vm_pool_bytes, vm_pool_bytes=vm_pool_bytes)
    return d


def memory_shares(memory_bytes: int, vm_pool_bytes: int) -> str:
    """Physical memory and its two shares, named as `memsim serve` and the README name them."""
    return (f"physical memory {human(memory_bytes)} = heap {human(memory_bytes - vm_pool_bytes)} (the allocator and "
            f"the cache) + VM pool {human(vm_pool_bytes)} (address spaces)")


def render_stats(st: pb.Stats, info: pb.MachineInfo | None = None, all_classes: bool = False,
                 console: Console | None = None, vm_pool_bytes: int | None = None) -> None:
    con = console or Console()
    ms = st.memstats
    if info is not None:
        memory = (memory_shares(info.memory_bytes, vm_pool_bytes) if vm_pool_bytes is not None
                  else f"physical memory {human(info.memory_bytes)}")
        con.print(f"[bold]machine[/bold]: {info.cores} cores; {memory}; {info.frame_size}-byte frames; "
                  f"per-core caches {'on' if info.per_core_caches else 'off'}, "
                  f"{'one global lock' if info.global_lock else 'a lock per size class'}")
    heap = Table(title="heap (Go MemStats)", show_header=True)
    heap.add_column("field")
    heap.add_column("value", justify="right")
    heap.add_column("", justify="right")
    for f in MEMSTATS_FIELDS:
        v = getattr(ms, f)
        in_bytes = f in ("Alloc", "Sys") or (f.startswith(("Heap", "Total")) and f != "HeapObjects")
        heap.add_row(f, str(v), human(v) if in_bytes else "")
    con.print(heap)
    frames = ", ".join(f"{k} {v}" for k, v in sorted(st.frames.items()))
    con.print(f"Sys = HeapSys + the shared metadata describing the heap. Frames: {frames}; "
              f"heap grows {st.heap_grows}; scavenged pages {st.scavenged_pages}; recovered workers {st.recoveries}")

    by = Table(title="size classes" + ("" if all_classes else " in use"))
    for col in ("size", "Mallocs", "Frees", "live", "spans", "free", "out", "in"):
        by.add_column(col, justify="right")
    central = {c.size: c for c in st.centrals}
    for e in ms.BySize:
        c = central.get(e.Size)
        if not all_classes and e.Mallocs == 0 and (c is None or c.spans == 0):
            continue
        by.add_row(str(e.Size), str(e.Mallocs), str(e.Frees), str(e.Mallocs - e.Frees),
                   str(c.spans if c else 0), str(c.free_objects if c else 0), str(c.remove_range if c else 0),
                   str(c.insert_range if c else 0))
    by.caption = "free = objects in the central list; out/in = batches moved to/from per-core caches"
    con.print(by)

    caches = Table(title="per-core caches (mcache)")
    for col in ("core", "hits", "refills", "flushes", "direct", "tiny", "bad frees"):
        caches.add_column(col, justify="right")
    for mc in st.caches:
        caches.add_row(str(mc.core), str(mc.hits), str(mc.refills), str(mc.flushes), str(mc.central_direct),
                       str(mc.tiny_allocs), str(mc.bad_frees))
    caches.caption = "direct = operations sent straight to mcentral because caches are off"
    con.print(caches)

    locks = Table(title="locks" + ("" if all_classes else " (busiest 12; --all for every lock)"))
    for col in ("lock", "acq", "contended", "%", "wait ms", "max µs", "hold ms"):
        locks.add_column(col, justify="right")
    rows = sorted(st.locks, key=lambda x: -x.acquisitions)
    if not all_classes:
        rows = [lk for lk in rows if lk.acquisitions][:12]
    for lk in rows:
        pct = 100.0 * lk.contended / lk.acquisitions if lk.acquisitions else 0.0
        locks.add_row(lk.name, str(lk.acquisitions), str(lk.contended), f"{pct:.1f}", f"{lk.wait_ns / 1e6:.2f}",
                      f"{lk.max_wait_ns / 1e3:.1f}", f"{lk.hold_ns / 1e6:.1f}")
    con.print(locks)


def render_objects(listing, console: Console | None = None, shown: int = 20) -> None:
    """Live objects: a line per (core, client) with counts and bytes, then the first few objects."""
    con = console or Console()
    groups: dict[tuple[int, str], list[int]] = {}
    for o in listing.objects:
        g = groups.setdefault((o.core, o.client or "-"), [0, 0])
        g[0] += 1
        g[1] += o.size
    t = Table(title=f"live objects: {listing.total}" + (f" (the first {len(listing.objects)} below)"
                                                        if listing.total > len(listing.objects) else ""))
    for col in ("core", "client", "objects", "bytes"):
        t.add_column(col, justify="right" if col in ("objects", "bytes") else "left")
    for (core, client), (n, size) in sorted(groups.items()):
        t.add_row(str(core), client, str(n), human(size))
    con.print(t)
    for o in listing.objects[:shown]:
        con.print(f"  {o.address:#x}  {o.size:>8} B  {o.kind:<5}  core {o.core}  client {o.client or '-'}")
