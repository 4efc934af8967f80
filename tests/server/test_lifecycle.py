"""Integration: starting, stopping, killing workers, and the two experiment switches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from memsim.client import Client, MemsimError
from memsim.tools.local import LocalServer
from tests.servers import lock_waiters, page_heap_locked, running_server

pytestmark = pytest.mark.integration  # every test here starts a server


def test_sigterm_and_sigint_stop_cleanly_and_unlink_everything():
    for sig in (signal.SIGTERM, signal.SIGINT):
        srv = LocalServer(cores=2, memory="8MiB").start()
        assert all(os.path.exists(f"/dev/shm/{n}") for n in srv.segments)
        with Client(srv.target) as c:
            c.alloc(100)  # leave something allocated: shutdown must not care
        srv.proc.send_signal(sig)
        assert srv.proc.wait(15) == 0
        assert srv.segments_left() == []
        assert srv.alive_workers() == []
        assert any("shared memory unlinked" in line for line in srv.output)


def test_killed_worker_is_restarted_and_the_heap_stays_consistent():
    with running_server(cores=2, memory="16MiB") as srv:
        victim_pid = srv.worker_pids[1]
        # Core 1 holds objects in its cache and a live object; then it is killed mid-life.
        with Client(srv.target, core=1) as c:
            live = c.alloc(200, keep=True).address  # kept: it must outlive this client too
            c.write(live, b"survivor")
            for _ in range(3):
                b = c.batch()
                refs = [b.alloc(64) for _ in range(50)]
                for r in refs[:40]:
                    b.free(r)
                b.execute().raise_first()
        os.kill(victim_pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("restarted as pid" in ln for ln in srv.output):
            time.sleep(0.1)
        assert any("restarted as pid" in ln for ln in srv.output), "".join(srv.output)
        with Client(srv.target, core=1) as c:
            st = c.stats(check_heap=True)
            assert st.heap_problems == []
            assert st.recoveries == 1
            assert c.read(live, 8) == b"survivor"  # allocated objects outlive the core that made them
            c.free(live)
            assert c.info().core == 1
            a = c.alloc(64)  # the restarted core serves again
            c.free(a.address)
        assert victim_pid not in srv.alive_workers()


def test_a_killed_cores_grpc_port_stays_held_until_its_successor_serves_on_it():
    """The supervisor holds every gRPC port with a never-listening SO_REUSEPORT socket
    (server/listeners.py reserve): from core 1's death to its successor's start no other socket can
    bind core 1's own port (a client's ephemeral port once took a dead core's RESP port and failed the
    restart for a minute), and the successor binds it beside the reservation. Without the reservation
    the probes bind it in the window (several hundred milliseconds: the fork and grpc's start)."""
    import socket

    with running_server(cores=2, memory="16MiB") as srv:
        own = srv.port + 2  # core 1's
        os.kill(srv.worker_pids[1], signal.SIGKILL)
        probes, bound = 0, []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("restarted as pid" in ln for ln in srv.output):
            probe = socket.socket()
            try:
                probe.bind(("127.0.0.1", own))
                bound.append(time.monotonic())
            except OSError:
                pass
            finally:
                probe.close()
            probes += 1
            time.sleep(0.002)
        assert any("restarted as pid" in ln for ln in srv.output), "".join(srv.output)
        assert probes > 0 and bound == [], f"{len(bound)} of {probes} probes bound core 1's port while it was dead"
        with Client(srv.target, core=1) as c:
            assert c.info().core == 1
            c.free(c.alloc(64).address)


def test_kill_during_load_leaves_no_torn_state():
    with running_server(cores=2, memory="16MiB") as srv:
        load = subprocess.Popen([sys.executable, "-m", "memsim.tools", "bench", "alloc", "--target", srv.target,
                                 "--processes", "2", "--seconds", "4", "--pin", "--no-progress", "--quiet"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(2.0)
        os.kill(srv.worker_pids[0], signal.SIGKILL)
        out, _ = load.communicate(timeout=120)
        assert load.returncode == 0, out  # errors from the killed core are counted, not fatal
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("restarted as pid" in ln for ln in srv.output):
            time.sleep(0.1)
        with Client(srv.target, core=1) as c:
            st = c.stats(check_heap=True)
        assert st.heap_problems == []
        assert st.recoveries == 1
        ms = st.memstats
        assert ms.HeapIdle + ms.HeapInuse == ms.HeapSys and ms.HeapAlloc <= ms.HeapInuse
        assert ms.Mallocs - ms.Frees == ms.HeapObjects


def test_ports_in_use_is_a_clear_error():
    with running_server(cores=1, memory="4MiB") as srv:
        out = subprocess.run([sys.executable, "-m", "memsim.tools", "serve", "--port", str(srv.port), "--cores", "1",
                              "--memory", "4MiB"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 2
        assert "are not all free" in out.stderr


def test_full_dev_shm_is_a_clear_error():
    from memsim.sim.machine.shm import SharedMemoryFull, _create

    with pytest.raises(SharedMemoryFull) as ei:
        _create("memsim-test-too-big", 1 << 46)
    assert "give the machine less --memory" in ei.value.strerror
    assert not os.path.exists("/dev/shm/memsim-test-too-big")


def test_bad_machine_config_is_rejected():
    out = subprocess.run([sys.executable, "-m", "memsim.tools", "serve", "--port", "0", "--memory", "1000"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "memory 1000 must be" in out.stderr


@pytest.mark.parametrize("no_caches, global_lock", [(True, False), (False, True)])
def test_experiment_switches(no_caches, global_lock):
    with running_server(cores=2, memory="8MiB", no_caches=no_caches, global_lock=global_lock) as srv, \
            Client(srv.target, core=0) as c:
        info = c.info()
        assert info.per_core_caches is not no_caches and info.global_lock is global_lock
        names = [lk.name for lk in c.stats().locks if not lk.name.startswith(("keyspace/", "vm/", "v8/"))]
        if global_lock:
            assert names == ["global"]
        else:
            assert names[0] == "mheap" and "mcentral/80B" in names
        before = {lk.name: lk.acquisitions for lk in c.stats().locks}
        b = c.batch()
        refs = [b.alloc(80) for _ in range(20)]
        for r in refs:
            b.free(r)
        b.execute().raise_first()
        after = {lk.name: lk.acquisitions for lk in c.stats().locks}
        lock = "global" if global_lock else "mcentral/80B"
        taken = after[lock] - before[lock]
        if no_caches:
            assert taken >= 40  # every alloc and every free went to mcentral under its lock
        else:
            assert 1 <= taken <= 4  # batches of 32: a refill or two


def test_client_errors_are_typed():
    with running_server(cores=1, memory="4MiB") as srv, Client(srv.target) as c:
        try:
            c.free(1)
        except MemsimError as e:
            assert e.code.name == "FAILED_PRECONDITION"
        else:
            pytest.fail("free(1) did not fail")


def test_scavenger_returns_idle_pages_to_the_machine():
    extra = ["--scavenge-idle", "0.2", "--scavenge-period", "0.2"]
    with running_server(cores=1, memory="16MiB", extra=extra) as srv, Client(srv.target) as c:
        held = [c.alloc(200_000).address for _ in range(20)]
        c.write(held[0], b"dirty")
        heap_frames = c.stats().frames["heap"]
        for a in held:
            c.free(a)
        deadline = time.monotonic() + 15
        st = c.stats()
        while time.monotonic() < deadline and st.memstats.HeapReleased < 20 * 200_000:
            time.sleep(0.2)
            st = c.stats()
        assert st.memstats.HeapReleased >= 20 * 200_000
        assert st.frames["heap"] < heap_frames and st.frames["free"] > 0  # frames went back to the machine
        assert st.memstats.HeapSys == c.stats().memstats.HeapSys  # addresses stay reserved
        again = c.alloc(200_000)
        assert c.stats().memstats.HeapReleased < st.memstats.HeapReleased  # reuse re-commits
        assert c.read(again.address, 5) == b"\0" * 5


def test_supervisor_killed_takes_its_workers_and_segments_with_it():
    srv = LocalServer(cores=2, memory="8MiB").start()
    try:
        os.kill(srv.proc.pid, signal.SIGKILL)  # no chance to clean up: the workers must notice
        srv.proc.wait(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (srv.alive_workers() or srv.segments_left()):
            time.sleep(0.1)
        assert srv.alive_workers() == []
        assert srv.segments_left() == []  # the resource tracker unlinked them once the workers exited
    finally:
        for pid in srv.alive_workers():
            os.kill(pid, signal.SIGKILL)


def test_a_core_full_of_idle_streams_refuses_another_stream_at_once_serves_unary_calls_then_recovers():
    from memsim.client import ResourceExhausted
    from memsim.server.limits import MAX_STREAMS

    with running_server(cores=1, memory="4MiB") as srv:
        clients = [Client(srv.target, core=0, timeout=10) for _ in range(MAX_STREAMS)]
        try:
            for c in clients:  # each keeps its batch stream, and so a server thread, open
                b = c.batch()
                b.alloc(8)
                b.execute()
            # refused within the client's 5 s deadline, not queued behind the idle streams
            with Client(srv.target, core=0, timeout=5) as extra:
                with pytest.raises(ResourceExhausted, match="open streams"):
                    b = extra.batch()
                    b.alloc(8)
                    b.execute()
                assert extra.info().core == 0  # unary calls keep their own threads
        finally:
            for c in clients:
                c.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                with Client(srv.target, core=0, timeout=5) as c:
                    b = c.batch()
                    b.alloc(8)
                    assert b.execute()[0].ok
                break
            except ResourceExhausted:
                assert time.monotonic() < deadline, "streams were not released"
                time.sleep(0.2)


def test_supervisor_killed_while_a_worker_is_busy_takes_it_and_the_segments_with_it():
    import threading

    srv = LocalServer(cores=2, memory="8MiB").start()
    worker = srv.worker_pids[0]
    client = Client(srv.target, core=0, timeout=60)
    try:
        # Keep core 0 inside a call for as long as the test likes: a large object needs the page
        # heap's lock, which this process holds.
        with page_heap_locked(worker):
            def wait_for_the_heap() -> None:
                with pytest.raises(MemsimError):  # the server dies under it
                    client.alloc(1 << 20)

            threading.Thread(target=wait_for_the_heap, daemon=True).start()
            deadline = time.monotonic() + 20
            while worker not in lock_waiters():
                assert time.monotonic() < deadline, "core 0 never waited for the page heap's lock"
                time.sleep(0.05)
            os.kill(srv.proc.pid, signal.SIGKILL)
            srv.proc.wait(10)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (srv.alive_workers() or srv.segments_left()):
                time.sleep(0.1)
            assert srv.alive_workers() == [], "a busy worker outlived its supervisor"
            assert srv.segments_left() == []
    finally:
        for pid in srv.alive_workers():
            os.kill(pid, signal.SIGKILL)
        client.close()


def test_restart_on_the_same_port_right_after_a_stop_with_a_client_connected():
    from memsim.server.supervisor import pick_port

    port = pick_port("127.0.0.1", 2)
    with running_server(cores=1, memory="4MiB", extra=["--port", str(port)]) as srv, Client(srv.target) as c:
        b = c.batch()
        b.alloc(100)
        b.execute().raise_first()  # an open batch stream: the server closes that connection first,
        srv.stop()  # so the server's side lingers in TIME_WAIT for a minute
    with running_server(cores=1, memory="4MiB", extra=["--port", str(port)]) as again, Client(again.target) as c:
        assert again.port == port
        assert c.alloc(100).size == 100


def test_a_server_started_again_on_its_port_takes_a_free_metrics_port():
    """tools/local.py's restart (the sharded client's failover tests) passes a fixed --port, which made the
    metrics port the default 9121: taken by anyone else on the host, the restart failed."""
    import socket

    from memsim.server.exporter import DEFAULT_METRICS_PORT

    holder = socket.socket()
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("127.0.0.1", DEFAULT_METRICS_PORT))
            holder.listen()
        except OSError:
            pass  # someone holds it already: the case itself
        srv = LocalServer(cores=1, memory="8MiB").start()
        port = srv.port
        assert srv.stop() == 0
        srv.start()  # on the same gRPC port
        try:
            with pytest.raises(RuntimeError, match="running already"):
                srv.start()  # a second start while running would orphan this server and its segments
            assert srv.port == port
            with Client(srv.target) as c:
                assert c.alloc(64)
        finally:
            assert srv.stop() == 0
    finally:
        holder.close()
