"""Prometheus /metrics: the collector over an in-process machine, and a live server scraped over HTTP
and read with prometheus_client's own parser (server/metrics.py, server/exporter.py)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from memsim.client import Cache, Client, V8Client, VMClient
from memsim.server.exporter import MAX_SCRAPES
from memsim.server.metrics import MachineCollector
from memsim.sim.cache.commands import Commands
from memsim.sim.system import Machine
from tests.servers import metrics_url, parse, running_server, scrape, value

KiB, MiB = 1 << 10, 1 << 20


def in_process_scrape(machine: Machine) -> str:
    view = machine.supervisor_heap()
    reg = CollectorRegistry(auto_describe=False)
    reg.register(MachineCollector(machine, view, machine.keyspace(view)))
    return generate_latest(reg).decode()


@pytest.mark.parametrize("machine", [{"memory_bytes": 16 * MiB, "vm_memory": 4 * MiB}], indirect=True)
def test_collector_reads_an_in_process_machine_and_takes_no_lock(machine):
    heap = machine.heap(0)
    cmds = Commands(machine.keyspace(heap))
    cmds.execute([b"SET", b"user:secret-key", b"v" * 100])
    cmds.execute([b"GET", b"user:secret-key"])
    cmds.execute([b"GET", b"absent"])
    objs = [heap.malloc(200).address for _ in range(10)]
    for a in objs[:4]:
        heap.free(a)
    vm = machine.vm(1)
    sp = vm.create_space()
    addr = vm.mmap(sp, 64 * KiB)
    for page in range(3):
        vm.store(sp, addr + page * 4096, b"x")

    before = machine.locks(0).snapshot()
    text = in_process_scrape(machine)
    assert machine.locks(0).snapshot() == before  # a scrape takes no lock of the machine
    types, s = parse(text)
    assert "secret-key" not in text  # no key becomes a label or a value
    assert types["memsim_keyspace_hits"] == "counter" and types["memsim_memory_used_bytes"] == "gauge"
    assert types["memsim_vmstat_pgfault"] == "unknown"  # node_exporter's vmstat fields are untyped
    assert value(s, "memsim_keyspace_hits_total") == 1 and value(s, "memsim_keyspace_misses_total") == 1
    assert value(s, "memsim_commands_processed_total") == 3
    assert value(s, "memsim_core_commands_processed_total", core="0") == 3
    assert value(s, "memsim_db_keys", db="db0") == 1
    assert value(s, "memsim_memory_used_bytes") == machine.keyspace(heap).used_memory() > 100
    # Go's memory classes partition the total, as runtime/metrics' do
    classes = ("heap_objects", "heap_unused", "heap_free", "heap_released", "metadata_other")
    assert sum(value(s, f"memsim_go_memory_classes_{c}_bytes") for c in classes) == \
        value(s, "memsim_go_memory_classes_total_bytes")
    objects = value(s, "memsim_go_gc_heap_allocs_objects_total") - value(s, "memsim_go_gc_heap_frees_objects_total")
    tiny = value(s, "memsim_go_gc_heap_tiny_allocs_objects_total")  # the 15-byte key is one
    assert objects <= value(s, "memsim_go_gc_heap_objects_objects") <= objects + tiny and tiny >= 1
    assert value(s, "memsim_go_gc_heap_frees_objects_total") >= 4
    assert value(s, "memsim_vmstat_pgfault") >= 3 and value(s, "memsim_core_page_faults_total", core="1") >= 3
    assert value(s, "memsim_vm_spaces") == 1
    assert value(s, "memsim_lock_acquisitions_total", lock="mheap") >= 1
    lock_labels = {dict(k[1])["lock"] for k in s if k[0] == "memsim_lock_acquisitions_total"}
    assert lock_labels <= set(machine._lock_names)  # the machine's fixed lock table, nothing else
    assert value(s, "memsim_v8_isolates", state="free") == machine.config.v8_isolates


# -- a live server ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    with running_server(cores=2, memory="64MiB") as srv:
        yield srv


@pytest.mark.integration
def test_a_live_scrape_moves_with_the_work(server):
    url = metrics_url(server)
    ctype, text0 = scrape(url)
    assert ctype.startswith("text/plain")
    types, s0 = parse(text0)
    with Cache(server.target) as c:
        for i in range(10):
            c.set(f"k{i}", b"v" * 50)
        got = [c.get(f"k{i}") for i in range(13)]  # 10 hits, 3 misses
    assert got.count(None) == 3
    _, s1 = parse(scrape(url)[1])
    assert value(s1, "memsim_keyspace_hits_total") - value(s0, "memsim_keyspace_hits_total") == 10
    assert value(s1, "memsim_keyspace_misses_total") - value(s0, "memsim_keyspace_misses_total") == 3
    assert value(s1, "memsim_commands_processed_total") - value(s0, "memsim_commands_processed_total") >= 23
    assert value(s1, "memsim_db_keys", db="db0") == 10

    with Client(server.target) as m:
        objs = [m.alloc(300) for _ in range(40)]
        for o in objs[:15]:
            m.free(o)
        _, s2 = parse(scrape(url)[1])
    def moved(name: str) -> float:
        return value(s2, name) - value(s1, name)

    assert moved("memsim_go_gc_heap_allocs_objects_total") == 40
    assert moved("memsim_go_gc_heap_frees_objects_total") == 15
    assert moved("memsim_go_memory_classes_heap_objects_bytes") >= 25 * 300

    with VMClient(server.target) as vm:
        sp = vm.create_space()
        base = sp.mmap(64 * KiB)
        for page in range(4):
            sp.store(base + page * 4096, b"y")
        _, s3 = parse(scrape(url)[1])
        assert value(s3, "memsim_vm_spaces") == value(s2, "memsim_vm_spaces") + 1
    assert value(s3, "memsim_vmstat_pgfault") - value(s2, "memsim_vmstat_pgfault") >= 4

    with V8Client(server.target) as v8:
        iso = v8.create_isolate(semi_space_size=256 * KiB, max_old_space_size=4 * MiB)
        iso.gc(minor=True)
        iso.gc()
        types, s4 = parse(scrape(url)[1])
        n = str(iso.id)
        assert value(s4, "memsim_nodejs_gc_duration_seconds_count", isolate=n, kind="minor") >= 1
        assert value(s4, "memsim_nodejs_gc_duration_seconds_count", isolate=n, kind="major") >= 1
        assert value(s4, "memsim_nodejs_gc_duration_seconds_bucket", isolate=n, kind="major", le="+Inf") >= 1
        assert value(s4, "memsim_nodejs_heap_size_total_bytes", isolate=n) >= 2 * 256 * KiB
        assert value(s4, "memsim_v8_isolates", state="live") >= 1
    assert types["memsim_nodejs_gc_duration_seconds"] == "histogram"
    assert types["memsim_lock_wait_seconds"] == "counter"

    # the Redis-protocol front end's connections, as redis_exporter names Redis's
    with socket.create_connection(("127.0.0.1", server.resp_port), timeout=10) as conn:
        conn.sendall(b"PING\r\n")
        assert conn.recv(64) == b"+PONG\r\n"
        _, s5 = parse(scrape(url)[1])
        assert value(s5, "memsim_connected_clients") == 1
        assert value(s5, "memsim_connections_received_total") - value(s4, "memsim_connections_received_total") == 1
        assert value(s5, "memsim_net_input_bytes_total") - value(s4, "memsim_net_input_bytes_total") == 6
        assert value(s5, "memsim_net_output_bytes_total") - value(s4, "memsim_net_output_bytes_total") == 7
    assert types["memsim_go_memory_classes_total_bytes"] == "gauge"


@pytest.mark.integration
def test_promtool_checks_the_exposition(server):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    with V8Client(server.target) as v8, Cache(server.target) as c:  # every kind of family has samples
        v8.create_isolate(semi_space_size=256 * KiB, max_old_space_size=4 * MiB).gc()
        c.set("k", b"v")
        text = scrape(metrics_url(server))[1]
    assert "memsim_nodejs_gc_duration_seconds_bucket{" in text and "memsim_lock_acquisitions_total{" in text
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.integration
def test_scrapes_go_on_while_a_core_is_killed_and_forked_again():
    """The exporter's thread runs in the supervisor that forks the dead core again: scrapes during the
    restart must neither block the fork nor break the new worker, and the new worker must not hold the
    metrics port."""
    with running_server(cores=2, memory="16MiB", extra=["--vm-memory", "2MiB"]) as srv:
        url = metrics_url(srv)
        victim = srv.worker_pids[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        scrapes = 0
        while time.monotonic() < deadline and not any("restarted as pid" in line for line in srv.output):
            parse(scrape(url)[1])
            scrapes += 1
        assert any("restarted as pid" in line for line in srv.output), "".join(srv.output)
        new = srv.worker_pids[-1]
        port = url.split(":")[2].split("/")[0]
        held = subprocess.run(["ss", "-ltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
        assert f"pid={new}," not in held and f"pid={srv.pid}," in held
        with Cache(srv.target) as c:  # the machine still serves
            c.set("after", b"1")
            assert c.get("after") == b"1"
        assert scrapes >= 1 and "memsim_commands_processed_total" in scrape(url)[1]


@pytest.mark.integration
def test_idle_connections_cannot_pile_threads_up_in_the_supervisor():
    """prometheus_client's server gives every connection a thread for as long as it stays open: 40
    connections that never send a request held 40 supervisor threads for ever. At most MAX_SCRAPES
    are served at once (more are closed at once), and once the idle ones go, scrapes are served again."""
    with running_server(cores=1, memory="16MiB") as srv:
        url = metrics_url(srv)
        host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)

        def threads() -> int:
            with open(f"/proc/{srv.pid}/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))

        before = threads()
        idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(40)]
        time.sleep(1)
        assert threads() <= before + MAX_SCRAPES, f"{threads() - before} threads for 40 idle connections"
        for s in idle:
            s.close()
        deadline = time.monotonic() + 10  # each slot is given back as its handler sees the close
        while True:
            try:
                assert "memsim_commands_processed_total" in scrape(url)[1]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
