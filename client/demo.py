"""`memsim demo`: the tour. Start a default machine, drive it a little, show what it did, stop.

1. start a server (4 cores, 64 MiB, 4 KiB frames) as a child process;
2. as a library user: allocate, write, read and free one object, and show the errors a
   double free and an out-of-bounds write get;
3. as a load test: a few client processes run the Larson-style load for a few seconds;
4. print the machine's figures (Go MemStats, size classes, caches, locks) and stop it,
   checking that no shared-memory segment was left behind.
"""

from __future__ import annotations

from rich.console import Console

from memsim.client import Client, MemsimError
from memsim.client.loadgen import AllocLoad, print_report, run_alloc_load
from memsim.client.local import LocalServer
from memsim.client.report import human, render_stats


def run_demo(cores: int = 4, memory: int = 64 << 20, clients: int = 3, seconds: float = 3.0) -> int:
    con = Console()
    con.rule("memsim demo")
    with LocalServer(cores=cores, memory=f"{memory}B") as srv:
        con.print(f"server up at {srv.target}: supervisor pid {srv.proc.pid}, workers {srv.worker_pids}")
        with Client(srv.target) as m:
            a = m.alloc(100)
            con.print(f"alloc(100) -> {a.address:#x}: size class {a.size_class} ({a.usable_size} B slot), "
                      f"served by {a.layer} on core {a.core}")
            m.write(a.address, b"hello, machine")
            con.print(f"write + read back: {m.read(a.address, 14)!r}")
            t = [m.alloc(n) for n in (1, 3, 8)]
            con.print("tiny objects packed into one 16-byte block: "
                      + ", ".join(f"{x.size} B at {x.address:#x} ({x.layer})" for x in t))
            big = m.alloc(100_000)
            con.print(f"alloc(100000) -> {big.address:#x}: large object, {big.usable_size} B of pages "
                      f"straight from the {big.layer}")
            for what, call in (("write past the end of the 1-byte object", lambda: m.write(t[0].address, b"xx")),
                               ("alloc(0)", lambda: m.alloc(0)),
                               ("double free", lambda: (m.free(a.address), m.free(a.address)))):
                try:
                    call()
                except MemsimError as e:
                    con.print(f"{what}: [red]{e.code.name}[/red]: {e}")
            for x in (*t, big):
                m.free(x.address)
        con.rule(f"load: {clients} client processes × {seconds:g} s (Larson-style, batches of 100, one core each)")
        report = run_alloc_load(AllocLoad(target=srv.target, processes=clients, seconds=seconds, batch=100,
                                          slots=500, cross_free=0.1, pin=True, progress=True))
        print_report(report)
        with Client(srv.target) as m:
            render_stats(m.stats(), m.info(), console=con)
            st = m.stats().memstats
        con.print(f"the load freed everything it allocated: HeapObjects {st.HeapObjects}; HeapAlloc "
                  f"{human(st.HeapAlloc)} is the 16-byte tiny blocks the cores still hold, as Go's Ps do; "
                  f"HeapInuse {human(st.HeapInuse)} stays while per-core caches hold free objects")
        code = srv.stop()
    left = srv.segments_left()  # exactly the segments this server reported it made
    con.rule("stopped")
    con.print(f"server exit code {code}; shared-memory segments left behind: {sorted(left) or 'none'}")
    return 0 if code == 0 and not left else 1
