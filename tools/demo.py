"""`memsim demo`: the tour. Start a default machine, drive it a little, show what it did, stop.

1. start a server (4 cores, 64 MiB, 4 KiB frames) as a child process;
2. as a library user: allocate, write, read and free one object, and show the errors a
   double free and an out-of-bounds write get;
3. as a load test: a few client processes run the Larson-style load for a few seconds;
4. print the machine's figures (Go MemStats, size classes, caches, locks);
5. the cache: redis-py-style calls, then a short 80/20 load under allkeys-lru and S3-FIFO;
6. virtual memory: a process-like address space, a fault of each kind, its memory map;
7. the managed heap: an isolate, objects orphaned by a closing scope, scavenges and a
   mark-compact as node --trace-gc prints them, process.memoryUsage() before and after;
8. stop it, checking that no shared-memory segment was left behind.
"""

from __future__ import annotations

from rich.console import Console

from memsim.client import Cache, Client, MemsimError, V8Client, VMClient
from memsim.tools.cachebench import run_cache_load
from memsim.tools.loadgen import print_report, run_alloc_load
from memsim.tools.loads import AllocLoad, CacheLoad
from memsim.tools.local import LocalServer
from memsim.tools.report import human, render_stats


def run_demo(*, cores: int, memory: int, clients: int, seconds: float) -> int:
    con = Console()
    con.rule("memsim demo")
    with LocalServer(cores=cores, memory=f"{memory}B") as srv:
        con.print(f"server up at {srv.target}: supervisor pid {srv.pid}, workers {srv.worker_pids}")
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
        demo_cache(con, srv.target, seconds)
        demo_vm(con, srv.target)
        demo_v8(con, srv.target)
        code = srv.stop()
    left = srv.segments_left()  # exactly the segments this server reported it made
    con.rule("stopped")
    con.print(f"server exit code {code}; shared-memory segments left behind: {sorted(left) or 'none'}")
    return 0 if code == 0 and not left else 1


def demo_cache(con: Console, target: str, seconds: float) -> None:
    con.rule("the cache: Redis's commands and policies on the machine's memory")
    with Cache(target) as r:
        r.set("user:1", "ada", ex=60)
        con.print(f"SET user:1 ada EX 60; GET -> {r.get('user:1')!r}, TTL -> {r.ttl('user:1')}; "
                  f"INCR hits -> {r.incr('hits')}")
        p = r.pipeline()
        p.mset({f"k{i}": i for i in range(100)}).mget("k1", "k2", "nope").incr("hits")
        con.print(f"a pipeline (one stream message): {p.execute()[1:]}", markup=False)
        info = r.info()
        con.print(f"used_memory {info['used_memory']} B for {info['db0']['keys']} keys "
                  f"(allocator objects: usable sizes + 48 B of index each)")
    for policy in ("allkeys-lru", "s3fifo"):
        rep = run_cache_load(CacheLoad(target=target, processes=1, seconds=seconds / 2, warmup=2.0,
                                       workload="hotset", keys=20_000, value_size="16", pipeline=250,
                                       config={"maxmemory": "400kb", "maxmemory-policy": policy}, progress=False))
        con.print(f"redis-cli --lru-test workload, maxmemory 400 KB, {policy:12s}: hit ratio "
                  f"{rep['hit_ratio']:.3f}, {rep['server']['evicted_keys']:,} evictions, "
                  f"{rep['ops_per_s']:,.0f} ops/s")
    with Cache(target) as r:
        r.config_set("maxmemory", 0)
        r.flushall()


def demo_vm(con: Console, target: str) -> None:
    con.rule("virtual memory: an address space, its page table and its faults")
    with VMClient(target) as vm:
        sp = vm.create_space(page_table="multilevel", name="demo")
        code = sp.mmap(64 << 10, prot="rx", kind="code", name="text")
        heap = sp.mmap(1 << 20, kind="heap", name="heap")
        stack = sp.mmap(64 << 10, kind="stack", name="main")
        first = sp.translate(heap, write=True)
        again = sp.translate(heap)
        con.print(f"first touch of the heap: {first.fault} fault, {first.levels}-level walk -> frame {first.frame}; "
                  f"again: TLB hit {again.tlb_hit}")
        for i in range(64):
            sp.store(heap + i * 4096, b"page %d" % i)
        sp.store(stack + (64 << 10) - 8, b"ret addr")
        try:
            sp.store(code, b"patch")
        except MemsimError as e:
            con.print(f"store into the code region: [red]{e.code.name}[/red]: {e}")
        u = sp.memory_usage()
        con.print(f"memory_usage: rss {human(u['rss'])}, heapTotal {human(u['heapTotal'])}, heapUsed "
                  f"{human(u['heapUsed'])}, page tables {human(u['pageTables'])} "
                  f"(a 48-bit linear table would need 512 GiB)")
        for r in sp.memory_map():
            con.print(f"  {r['start']:012x}-{r['end']:012x} {r['perms']} {human(r['size']):>9} rss "
                      f"{human(r['rss']):>9}  {r['name']}")
        st = vm.vmstat()
        con.print(f"vmstat: pgfault {st['pgfault']}, pgmajfault {st['pgmajfault']}, pool {st['pool_frames']} frames "
                  f"({st['policy']} replacement); see `memsim vm` and `memsim bench vm`")
        sp.destroy()


def demo_v8(con: Console, target: str) -> None:
    con.rule("the managed heap: V8's generational collector (memsim gc, memsim bench gc)")
    with V8Client(target) as v8:
        iso = v8.create_isolate(semi_space_size=256 << 10, max_old_space_size=4 << 20)
        before = iso.memory_usage()
        with iso.scope():  # a function's frame: its handles are roots until it returns
            sales = iso.new_object([1200, 3400, 800])
            emp = iso.new_object([iso.new_string(b"Ann"), 5000, sales])  # { name, salary, sales }
            bonus = iso.get_field(emp, 1) // 10 + sum(iso.get_field(sales, i) for i in range(3)) // 20
        orphaned = iso.memory_usage()
        con.print(f"calculateBonus() -> {bonus}; heapUsed {before['heapUsed']} B -> {orphaned['heapUsed']} B: "
                  f"the Employee, its name and its sales are garbage once the scope closes")
        keep = iso.make_persistent(iso.new_object(nfields=64))  # a long-lived cache: a global handle
        for round_ in range(120):  # a request handler: short-lived objects, a few kept
            b = iso.batch()
            b.open_scope()
            for k in range(60):
                obj = b.new_object([round_, k], payload=b"request body " * 8)
                if k == 0:
                    b.set_field(keep, round_ % 64, obj)
            b.close_scope()
            b.execute().raise_first()
        major = iso.gc()  # global.gc() with --expose-gc
        events = iso.trace()
        con.print("the isolate's GCs, as node --trace-gc prints them:")
        for ev in events[-4:]:
            con.print("  " + ev.line, markup=False, highlight=False)
        after = iso.memory_usage()
        con.print(f"process.memoryUsage(): heapTotal {human(after['heapTotal'])}, heapUsed {human(after['heapUsed'])} "
                  f"(only what the global handle keeps: {major.live_after} B), rss {human(after['rss'])}; "
                  f"{sum(ev.kind == 'Scavenge' for ev in events)} scavenges, "
                  f"{sum(ev.kind == 'Mark-Compact' for ev in events)} mark-compacts")
        iso.destroy()
