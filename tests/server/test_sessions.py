"""What a client creates is released when it closes or its lease runs out; work whose caller has gone is undone.

Real servers on loopback (tests/servers.py); the README's own VM sample is run from README.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from memsim.client import AsyncVMClient, VMClient
from tests.servers import running_server

pytestmark = pytest.mark.integration  # every test here starts a server

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_vm_sample(target: str) -> str:
    """The README's VM sample (the python block of its 'Virtual memory' section), aimed at target."""
    section = README.read_text().split("## Virtual memory", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "create_space" in code
    return code.replace("127.0.0.1:50051", target)


# The leases of the renewal tests: renewed every LEASE/3 s, a lease is lost only if no renewal gets
# through for LEASE s; 3 s left too little room on a loaded 2-CPU host (a renewal has LEASE/2 s to answer).
LEASE = 6


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {timeout} s")
        time.sleep(0.2)


def test_readme_vm_sample_runs_many_more_times_than_the_pool_holds():
    # 64 MiB machine: a 16 MiB pool holds three 4 MiB linear tables; the sample makes one per run.
    with running_server(cores=2) as srv:
        sample = readme_vm_sample(srv.target)
        for _ in range(12):
            exec(compile(sample, "README.md", "exec"), {})
        with VMClient(srv.target) as vm:
            assert vm.spaces() == []
        for _ in range(2):  # and as a process of its own, the way a user runs it
            subprocess.run([sys.executable, "-c", sample], check=True, timeout=60)


CHILD = """
import sys, time
from memsim.client import AsyncVMClient, VMClient
vm = VMClient(sys.argv[1], lease=float(sys.argv[2]))
leased = vm.create_space(name="leased")
kept = vm.create_space(name="kept", keep=True)
sp = leased.mmap(1 << 16); leased.store(sp, b"x")
print(leased.id, kept.id, flush=True)
time.sleep(600)
"""


def test_a_killed_clients_spaces_are_released_after_its_lease_and_kept_ones_survive():
    with running_server(cores=2) as srv:
        with VMClient(srv.target) as vm:
            free_before = vm.vmstat()["free_frames"]
        child = subprocess.Popen([sys.executable, "-c", CHILD, srv.target, str(LEASE)], stdout=subprocess.PIPE,
                                 text=True)
        try:
            leased, kept = map(int, child.stdout.readline().split())
            with VMClient(srv.target) as vm:
                time.sleep(LEASE + 1)  # longer than the lease: the child's keepalive renews it meanwhile
                assert {s.space for s in vm.spaces()} == {leased, kept}
                os.kill(child.pid, signal.SIGKILL)
                child.wait(10)
                wait_until(lambda: {s.space for s in vm.spaces()} == {kept}, 20, "the dead client's space released")
                (st,) = vm.spaces()
                assert st.keep and st.name == "kept"
                vm.space(kept).destroy()
                assert vm.vmstat()["free_frames"] == free_before  # every frame of both spaces came back
        finally:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
                child.wait(10)
            child.stdout.close()


def test_close_releases_only_what_the_client_made_and_not_what_it_kept():
    with running_server(cores=2) as srv:
        with VMClient(srv.target) as other:
            theirs = other.create_space(name="theirs")
            with VMClient(srv.target) as vm:
                mine = vm.create_space(name="mine")
                kept = vm.create_space(name="kept", keep=True)
                assert [s.space for s in vm.spaces(mine_only=True)] == [mine.id]  # kept: nobody's
                assert [s.space for s in other.spaces(mine_only=True)] == [theirs.id]
            assert sorted(s.name for s in other.spaces()) == ["kept", "theirs"]
            other.space(kept.id).destroy()
        with VMClient(srv.target) as vm:
            assert vm.spaces() == []


def test_the_asyncio_client_renews_and_releases_too():
    async def run(target: str) -> None:
        async with AsyncVMClient(target, lease=LEASE) as vm:
            sp = await vm.create_space(name="async")
            await asyncio.sleep(LEASE + 1)  # past the lease: only the keepalive task keeps the space
            assert [s.space for s in await vm.spaces(mine_only=True)] == [sp.id]
            kept = await vm.create_space(name="async-kept", keep=True)
        async with AsyncVMClient(target) as vm:
            assert [s.space for s in await vm.spaces()] == [kept.id]
            await (await vm.space(kept.id)).destroy()

    with running_server(cores=2) as srv:
        asyncio.run(run(srv.target))


def test_a_lease_is_renewed_while_the_client_idles():
    with running_server(cores=2) as srv, VMClient(srv.target, lease=LEASE) as vm:
        sp = vm.create_space(name="idle")
        time.sleep(1.5 * LEASE)  # past the lease: the keepalive thread renews it
        assert sp.stats().lease_remaining > 0 and sp.stats().owner == vm.client_id


def test_bad_leases_and_client_ids_are_invalid_argument():
    import grpc

    from memsim.client import InvalidArgument
    from memsim.v1 import machine_pb2 as mpb
    from memsim.v1 import vm_pb2 as pb
    from memsim.v1 import vm_pb2_grpc

    with pytest.raises(InvalidArgument, match="lease"):
        VMClient("127.0.0.1:1", lease=0)
    with running_server(cores=1) as srv, grpc.insecure_channel(srv.target) as ch:
        stub = vm_pb2_grpc.VMStub(ch)
        for bad in ("", "xyz", "0", "8000000000000000", "1" * 17):
            with pytest.raises(grpc.RpcError) as e:
                stub.CreateSpace(pb.CreateSpaceRequest(), metadata=(("memsim-client-id", bad),), timeout=10)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "memsim-client-id" in e.value.details()
        for lease in (-1.0, float("nan"), float("inf"), 1e9):
            with pytest.raises(grpc.RpcError) as e:
                stub.CreateSpace(pb.CreateSpaceRequest(lease_seconds=lease), timeout=10)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "lease_seconds" in e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            stub.Release(mpb.ReleaseRequest(), timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(stub.ListSpaces(pb.ListSpacesRequest(), timeout=10).spaces) == []  # nothing was created
        # No id: a lease nobody renews, so the space goes after one lease unless kept.
        anon = stub.CreateSpace(pb.CreateSpaceRequest(lease_seconds=1), timeout=10)
        kept = stub.CreateSpace(pb.CreateSpaceRequest(keep=True), timeout=10)
        assert anon.owner and not anon.keep and kept.keep and not kept.owner
        wait_until(lambda: [s.space for s in stub.ListSpaces(pb.ListSpacesRequest(), timeout=10).spaces]
                   == [kept.space], 15, "the anonymous space reaped")


BUSY_CORE = """
import sys
from memsim.client import Client
with Client(sys.argv[1], core=0, timeout=60) as c:
    b = c.batch()
    for _ in range(5000):
        r = b.alloc(64); b.free(r)
    while True:
        c.execute(b)  # holds core 0's mutex for tens of milliseconds at a time
"""


@contextmanager
def busy_core(target: str, processes: int = 2) -> Iterator[None]:
    """Core 0 kept busy by other clients, so that a call to it waits for its mutex past a short deadline."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_CORE, target]) for _ in range(processes)]
    try:
        time.sleep(1.5)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait(10)


def heap_in_use(m) -> tuple[int, int]:
    ms = m.stats().memstats
    return ms.HeapAlloc, ms.HeapObjects


def test_an_alloc_whose_caller_timed_out_is_freed_again():
    from memsim.client import Client, DeadlineExceeded

    with running_server(cores=1) as srv, Client(srv.target) as m:
        baseline = heap_in_use(m)
        timed_out = 0
        with busy_core(srv.target), Client(srv.target, core=0, timeout=0.02) as hasty:
            for _ in range(1000):
                try:
                    m.free(hasty.alloc(1000).address)  # answered in time: its caller frees it
                except DeadlineExceeded:
                    timed_out += 1
                if timed_out >= 10:
                    break
        assert timed_out >= 10
        wait_until(lambda: heap_in_use(m) == baseline, 10, "the heap's in-use bytes back to their baseline")



def test_list_objects_shows_each_clients_live_objects_by_core_and_close_frees_them():
    from memsim.client import Client

    with running_server(cores=2) as srv, Client(srv.target) as watcher:
        baseline = heap_in_use(watcher)
        with Client(srv.target, core=0) as a, Client(srv.target, core=1) as b:
            mine = [a.alloc(n) for n in (100, 3000, 100_000)]  # small, small, large
            kept = a.alloc(200, keep=True)
            batch = b.batch()
            for n in (64, 64, 40_000):
                batch.alloc(n)
            theirs = [r.address for r in b.execute(batch).raise_first().results]
            tiny = [b.alloc(5), b.alloc(3)]  # two tiny objects, packed into one of b's 16-byte blocks
            kept_tiny = b.alloc(4, keep=True)  # nobody's: a block of its own
            assert tiny[1].address == tiny[0].address + 5 and kept_tiny.address // 16 != tiny[0].address // 16
            theirs += [t.address for t in tiny]
            listing = a.list_objects(mine=True)
            assert listing.total == 3
            assert sorted((o.address, o.size, o.core, o.client) for o in listing.objects) == \
                sorted((x.address, x.size, 0, a.client_id) for x in mine)
            assert {o.kind for o in listing.objects} == {"small", "large"}
            assert sorted(o.address for o in watcher.list_objects(client=b.client_id).objects) == sorted(theirs)
            on_core1 = watcher.list_objects(core=1).objects
            assert set(theirs) | {kept_tiny.address} <= {o.address for o in on_core1}
            assert not {x.address for x in mine} & {o.address for o in on_core1}
            (k,) = [o for o in watcher.list_objects(core=0).objects if o.address == kept.address]
            assert k.client == "" and k.size == 200
            assert watcher.list_objects(limit=2).total == 10 and len(watcher.list_objects(limit=2).objects) == 2
        assert watcher.list_objects(client=a.client_id).total == 0
        assert watcher.list_objects(client=b.client_id).total == 0
        left = {o.address for o in watcher.list_objects().objects}
        assert left == {kept.address, kept_tiny.address}
        watcher.free(kept.address)
        watcher.free(kept_tiny.address)
        assert heap_in_use(watcher)[1] == baseline[1]  # (core 1 may still hold a tiny block: 16 bytes)
        assert not watcher.stats(check_heap=True).heap_problems


OBJECT_CHILD = """
import sys, time
from memsim.client import Client
m = Client(sys.argv[1], lease=float(sys.argv[2]))
leased = [m.alloc(1000).address for _ in range(50)]
kept = m.alloc(1000, keep=True).address
b = m.batch()
for _ in range(20):
    b.alloc(70_000)
m.execute(b).raise_first()
print(m.client_id, kept, flush=True)
time.sleep(600)
"""


def test_a_killed_clients_objects_are_freed_after_its_lease():
    from memsim.client import Client

    with running_server(cores=2) as srv, Client(srv.target) as watcher:
        baseline = heap_in_use(watcher)
        child = subprocess.Popen([sys.executable, "-c", OBJECT_CHILD, srv.target, str(LEASE)],
                                 stdout=subprocess.PIPE, text=True)
        try:
            cid, kept = child.stdout.readline().split()
            time.sleep(LEASE + 1)  # past the lease: the child's keepalive renews it
            assert watcher.list_objects(client=cid).total == 70
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
            wait_until(lambda: watcher.list_objects(client=cid).total == 0, 20, "the dead client's objects freed")
            watcher.free(int(kept))
            assert heap_in_use(watcher) == baseline
        finally:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
                child.wait(10)
            child.stdout.close()


def test_a_batch_that_ends_after_its_callers_timeout_frees_what_it_allocated():
    from memsim.client import Client, DeadlineExceeded

    with running_server(cores=1) as srv, Client(srv.target) as m:
        baseline = heap_in_use(m)
        timed_out = 0
        with busy_core(srv.target), Client(srv.target, core=0, timeout=0.02) as hasty:
            for _ in range(1000):
                b = hasty.batch()
                b.alloc(100)  # allocated and left live: undone if the reply is lost
                gone = b.alloc(5000)
                b.free(gone)  # freed by the batch itself: must not be freed twice
                b.alloc(70000)
                try:
                    res = hasty.execute(b)
                    for i in (0, 3):
                        m.free(res[i].address)
                except DeadlineExceeded:
                    timed_out += 1
                if timed_out >= 5:
                    break
        assert timed_out >= 5
        wait_until(lambda: heap_in_use(m) == baseline, 10, "the heap's in-use bytes back to their baseline")
        assert not m.stats(check_heap=True).heap_problems


def test_memsim_stats_lists_live_objects_by_core_and_client():
    from memsim.client import Client

    memsim = [sys.executable, "-m", "memsim.tools", "stats"]
    with running_server(cores=2) as srv, Client(srv.target, core=1) as m:
        objs = [m.alloc(n) for n in (100, 200_000)]
        out = subprocess.run([*memsim, "--target", srv.target, "--objects"], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "live objects: 2" in out.stdout and m.client_id in out.stdout and f"{objs[1].address:#x}" in out.stdout
        js = json.loads(subprocess.run([*memsim, "--target", srv.target, "--json", "--client", m.client_id],
                                       capture_output=True, text=True, timeout=60).stdout)
        assert js["objects"]["total"] == 2
        assert sorted((o["address"], o["core"]) for o in js["objects"]["listed"]) == [(o.address, 1) for o in objs]
        bad = subprocess.run([*memsim, "--target", srv.target, "--client", "nothex"], capture_output=True,
                             text=True, timeout=60)
        assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr and "client" in bad.stderr


def test_a_space_created_after_its_caller_gave_up_is_destroyed_again():
    from memsim.client import DeadlineExceeded

    with running_server(cores=1) as srv, VMClient(srv.target) as vm:
        timed_out = 0
        with busy_core(srv.target), VMClient(srv.target, core=0, timeout=0.02) as hasty:
            for _ in range(1000):
                try:
                    sp = hasty.create_space("multilevel", keep=True)  # kept: only the server can undo it
                    vm.space(sp.id).destroy()  # answered: its caller destroys it
                except DeadlineExceeded:
                    timed_out += 1
                if timed_out >= 10:
                    break
        assert timed_out >= 10
        wait_until(lambda: vm.spaces() == [], 10, "no space left behind")


def test_listing_spaces_while_another_core_destroys_them_never_fails():
    # Reaped leases destroy spaces on any core at any time; a listing must skip them, not fail.
    import threading

    from memsim.client import MemsimError

    with running_server(cores=2) as srv:
        stop = threading.Event()

        def churn() -> None:
            with VMClient(srv.target, core=0) as vm:
                while not stop.is_set():
                    vm.create_space("inverted").destroy()

        th = threading.Thread(target=churn)
        th.start()
        errors: list[str] = []
        try:
            with VMClient(srv.target, core=1) as vm:
                for _ in range(3000):
                    try:
                        vm.spaces()
                    except MemsimError as e:
                        errors.append(f"{e.code.name}: {e}")
        finally:
            stop.set()
            th.join(30)
        assert errors == []


def test_the_keepalive_of_a_client_left_open_ends_once_it_holds_nothing_or_the_server_is_gone():
    import threading

    def keepalives() -> int:
        return sum(t.name == "memsim-keepalive" and t.is_alive() for t in threading.enumerate())

    with running_server(cores=1) as srv:
        vm = VMClient(srv.target, lease=1.0)
        sp = vm.create_space()
        assert keepalives() == 1
        sp.destroy()  # holds nothing now
        wait_until(lambda: keepalives() == 0, 10, "the keepalive ended")
        vm.create_space()  # and comes back with the next space
        assert keepalives() == 1
    wait_until(lambda: keepalives() == 0, 10, "the keepalive of a client whose server is gone ended")
    vm.close()


def test_closing_twice_is_harmless():
    from memsim.client import Client

    with running_server(cores=1) as srv:
        m, vm = Client(srv.target), VMClient(srv.target)
        m.alloc(100)
        vm.create_space()
        for _ in range(2):
            m.close()
            vm.close()


def test_the_asyncio_allocator_client_frees_what_it_made_at_close():
    from memsim.client import AsyncClient, Client

    async def run(target: str) -> tuple[int, int]:
        async with AsyncClient(target) as m:
            await m.alloc(300)
            await m.put_value({"a": 1})
            b = m.batch()
            b.alloc(5000)
            await m.execute(b)
            kept = await m.alloc(400, keep=True)
            mine = (await m.list_objects(mine=True)).total
        return mine, kept.address

    with running_server(cores=1) as srv, Client(srv.target) as watcher:
        baseline = heap_in_use(watcher)
        mine, kept = asyncio.run(run(srv.target))
        assert mine == 3  # the 300 and 5000-byte objects and the (tiny) msgpack value
        assert [o.address for o in watcher.list_objects().objects] == [kept]
        watcher.free(kept)
        assert heap_in_use(watcher)[1] == baseline[1]


def test_clients_closing_on_a_core_full_of_their_streams_still_release_at_once():
    from memsim.client import Client
    from memsim.server.limits import MAX_STREAMS

    with running_server(cores=1, memory="4MiB") as srv:
        clients = [Client(srv.target, core=0) for _ in range(MAX_STREAMS)]  # the core's whole stream budget
        for c in clients:
            b = c.batch()
            b.alloc(8)
            b.alloc(100)
            b.execute().raise_first()
        for c in clients:
            c.close()  # its stream first, so that its Release finds a free thread
        with Client(srv.target, core=0) as watcher:
            assert watcher.list_objects().total == 0  # released by close, not by a lease 30 s later


def test_one_caller_cannot_hold_the_client_table_and_a_full_table_still_allocates():
    import grpc

    from memsim.server.sessions import MAX_OBJECT_LEASE_S
    from memsim.sim.alloc.layout import MAX_CLIENTS
    from memsim.v1 import machine_pb2 as mpb
    from memsim.v1 import machine_pb2_grpc

    with running_server(cores=1) as srv, grpc.insecure_channel(srv.target) as ch:
        stub = machine_pb2_grpc.MachineStub(ch)

        def alloc(cid: int, lease: float) -> mpb.AllocReply:
            md = (("memsim-client-id", f"{cid:x}"), ("memsim-lease-seconds", repr(lease)))
            return stub.Alloc(mpb.AllocRequest(size=24), metadata=md, timeout=10)

        with pytest.raises(grpc.RpcError) as e:
            alloc(1, 86_400.0)  # a day-long lease on the shared client table
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"at most {MAX_OBJECT_LEASE_S:.0f}" in e.value.details()
        for cid in range(1, MAX_CLIENTS):  # every entry of the table taken, each by a client of its own
            alloc(cid, MAX_OBJECT_LEASE_S)
        late = alloc(MAX_CLIENTS, 30.0)  # the table is full: the object is nobody's, not refused
        listed = {o.address: o.client for o in stub.ListObjects(mpb.ListObjectsRequest(limit=100_000),
                                                                  timeout=30).objects}
        assert listed[late.address] == ""
        assert sum(1 for c in listed.values() if c) == MAX_CLIENTS - 1


def test_a_client_refuses_at_construction_a_lease_the_server_would_refuse():
    from memsim.client import Client, InvalidArgument, VMClient

    with pytest.raises(InvalidArgument, match="at most 3600"):
        Client("127.0.0.1:1", lease=7200)
    VMClient("127.0.0.1:1", lease=7200).close()  # spaces may be held for up to a day
