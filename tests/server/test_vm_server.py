"""Virtual memory over gRPC, against real servers: the client, the CLI, the benchmark, Belady on the machine,
pinned pages (PinUserPages / UnpinUserPages: sim/vm/gup.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import grpc
import pytest

from memsim.client import (
    AsyncVMClient,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
    VMClient,
)
from tests.servers import running_server

pytestmark = pytest.mark.integration  # every test here starts a server

BELADY = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5]
KiB = 1024


@pytest.fixture(scope="module")
def server():
    with running_server(cores=2, memory="16MiB", extra=["--vm-memory", "1MiB", "--vm-policy", "clock"]) as srv:
        yield srv


def test_spaces_of_every_kind_map_store_load_and_report(server):
    with VMClient(server.target) as vm:
        for kind, bits in (("linear", 24), ("hybrid", 24), ("multilevel", 48), ("inverted", 48)):
            sp = vm.create_space(page_table=kind, bits=bits, name=f"p-{kind}")
            code = sp.mmap(8 * KiB, prot="rx", kind="code", name="text")
            heap = sp.mmap(64 * KiB, kind="heap")
            stack = sp.mmap(16 * KiB, kind="stack")
            sp.store(heap + 100, b"hello " + kind.encode())
            assert sp.load(heap + 100, 6 + len(kind)) == b"hello " + kind.encode()
            first = sp.translate(heap + 4096 * 3, write=True)
            assert first.fault == "minor" and not first.tlb_hit and first.levels >= 1
            again = sp.translate(heap + 4096 * 3)
            assert again.tlb_hit and again.fault == "none" and again.frame == first.frame
            assert again.page_table == kind
            use = sp.memory_usage()
            assert use["heapTotal"] == 64 * KiB and use["heapUsed"] == 2 * 4096 and use["rss"] >= use["heapUsed"]
            regions = sp.memory_map()
            assert [r["kind"] for r in regions] == ["code", "heap", "guard", "stack"]
            assert regions[0]["perms"] == "r-xp" and regions[1]["rss"] == 2 * 4096
            with pytest.raises(FailedPrecondition, match="protection fault") as e:
                sp.store(code, b"x")
            assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
            with pytest.raises(FailedPrecondition, match="guard page"):
                sp.store(stack - 1, b"x")
            with pytest.raises(OutOfRange, match="not in any region") as e:
                sp.load(heap + 64 * KiB + 4096 * 10, 1)
            assert e.value.code == grpc.StatusCode.OUT_OF_RANGE
            st = sp.stats()
            assert st.page_table == kind and st.minflt >= 2 and st.page_table_bytes > 0
            sp.destroy()
        with pytest.raises(NotFound):
            vm.space(99)
        with pytest.raises(InvalidArgument):
            vm.create_space(page_table="radix")


def test_batches_and_asyncio(server):
    with VMClient(server.target) as vm:
        sp = vm.create_space()
        a = sp.mmap(32 * KiB, kind="heap")
        b = sp.batch()
        for i in range(8):
            b.store(a + i * 4096, b"page%d" % i)
        for i in range(8):
            b.load(a + i * 4096, 5)
        b.translate(a).load(a + (1 << 40), 1)
        r = b.execute()
        assert r.results[8:16] == [b"page%d" % i for i in range(8)]
        assert r.results[16].tlb_hit and len(r.errors) == 1 and r.errors[0][0] == 17
        big = sp.mmap(21 << 20, kind="heap")
        b = sp.batch()
        b.load(big, 20 << 20).load(big, 20 << 20).load(a, 5)  # the second passes the 24 MiB reply budget
        r = b.execute()
        # over budget is RESOURCE_EXHAUSTED, as for the allocator's batches (it was INVALID_ARGUMENT)
        assert len(r.results[0]) == 20 << 20 and isinstance(r.results[1], ResourceExhausted)
        assert r.results[2] == b"page0"
        with pytest.raises(InvalidArgument):
            sp.load(-1, 1)
        with pytest.raises(InvalidArgument):
            vm.create_space(bits=-1)
        sp.destroy()

    async def go():
        async with AsyncVMClient(server.target) as avm:
            s = await avm.create_space(page_table="inverted")
            x = await s.mmap(8 * KiB, kind="heap")
            await s.store(x, b"async")
            assert await s.load(x, 5) == b"async"
            bt = s.batch()
            bt.load(x, 5).translate(x)
            res = await bt.execute()
            assert res[0] == b"async" and res[1].tlb_hit
            assert (await s.memory_usage())["heapUsed"] == 4096
            assert (await avm.vmstat())["pgfault"] > 0
            await s.destroy()

    asyncio.run(go())


def test_vmstat_uses_linux_names(server):
    with VMClient(server.target) as vm:
        st = vm.vmstat()
    for name in ("pgfault", "pgmajfault", "pswpin", "pswpout", "pgscan", "pgsteal", "thp_fault_alloc",
                 "thp_collapse_alloc", "thp_split_page", "compact_stall", "compact_success"):
        assert name in st
    assert st["policy"] == "clock" and st["pool_frames"] == 256


def test_memsim_vm_cli_prints_spaces_and_json(server):
    with VMClient(server.target) as vm:
        sp = vm.create_space(page_table="hybrid", bits=24, name="shown")
        sp.store(sp.mmap(16 * KiB, kind="heap", name="the-heap"), b"x")
        out = subprocess.run([sys.executable, "-m", "memsim.tools", "vm", "--target", server.target],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "vmstat" in out.stdout and "shown" in out.stdout and "the-heap" in out.stdout
        js = subprocess.run([sys.executable, "-m", "memsim.tools", "vm", "--target", server.target, "--json",
                             "--space", str(sp.id)], capture_output=True, text=True, timeout=60)
        data = json.loads(js.stdout)
        assert [s["name"] for s in data["spaces"]] == ["shown"]
        assert data["spaces"][0]["memory_map"][0]["name"] == "the-heap"
        sp.destroy()


def bench(target: str, pattern: str, pages: int, processes: int = 2) -> dict:
    out = subprocess.run([sys.executable, "-m", "memsim.tools", "bench", "vm", "--target", target, "-p",
                          str(processes), "-t", "1.5", "--pattern", pattern, "--pages", str(pages), "--json",
                          "/dev/stdout", "--quiet", "--no-progress"], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_working_set_larger_than_memory_thrashes():
    # 96 pool frames; two processes with 24 pages each fit, with 160 each they do not.
    with running_server(cores=2, memory="8MiB", extra=["--vm-memory", "384KiB", "--vm-policy", "lru"]) as srv:
        fits = bench(srv.target, "working-set", 24)
        thrashes = bench(srv.target, "working-set", 160)
    assert fits["errors"] == thrashes["errors"] == 0
    assert fits["major_faults_per_1000"] == 0 and fits["pswpout"] == 0
    assert thrashes["major_faults_per_1000"] > 100 and thrashes["pswpin"] > 0  # nearly every access faults
    assert thrashes["tlb_hit_ratio"] < fits["tlb_hit_ratio"]


def belady_faults(policy: str, frames: int) -> int:
    # A 16-bit space with a linear table (one frame): the rest of the pool is the page frames.
    pool = (frames + 1) * 4 * KiB
    with running_server(cores=1, memory="8MiB", extra=["--vm-memory", f"{pool}", "--vm-policy", policy]) as srv, \
            VMClient(srv.target) as vm:
        sp = vm.create_space(page_table="linear", bits=16)
        base = sp.mmap(6 * 4096)
        before = vm.vmstat()["pgfault"]
        for page in BELADY:
            sp.load(base + page * 4096, 1)
        return vm.vmstat()["pgfault"] - before


def test_beladys_anomaly_through_the_server():
    assert (belady_faults("fifo", 3), belady_faults("fifo", 4)) == (9, 10)
    assert (belady_faults("lru", 3), belady_faults("lru", 4)) == (10, 8)


# -- pinned pages (sim/vm/gup.py) ----------------------------------------------------------------

PAGE_4K = 4 * KiB


def test_pin_and_unpin_through_the_server(server):
    with VMClient(server.target, core=0) as vm, VMClient(server.target, core=1) as other:
        sp = vm.create_space(name="v8 heap")
        ro = sp.mmap(2 * PAGE_4K, prot="r")
        heap = sp.mmap(16 * PAGE_4K, kind="heap")  # (nothing mapped after it)
        sp.store(heap, b"before")
        frames, core = sp.pin_user_pages(heap, 8)
        assert core == 0 and len(frames) == 8 and frames[0] == sp.translate(heap).frame
        assert sum(r["pinned"] for r in sp.memory_map()) == 8 * PAGE_4K
        st = vm.vmstat()
        assert st["nr_foll_pin_acquired"] == 8 and st["pinned_frames"] == 8 and st["pin_limit_frames"] == 64
        with pytest.raises(FailedPrecondition, match="pinned"):
            sp.munmap(heap, PAGE_4K)
        with pytest.raises(FailedPrecondition, match="does not allow writing"):
            sp.pin_user_pages(ro, 1)
        with pytest.raises(OutOfRange, match="not mapped"):
            sp.pin_user_pages(heap + 15 * PAGE_4K, 4)
        big = vm.create_space()
        with pytest.raises(ResourceExhausted, match="pin limit of 64 frames"):
            big.pin_user_pages(big.mmap(80 * PAGE_4K), 80)  # 56 more fit
        with pytest.raises(FailedPrecondition, match="core 1"):
            other.space(sp.id).unpin_user_pages(frames)  # pins belong to the core that took them
        assert vm.vmstat()["pinned_frames"] == 8  # every refusal above pinned nothing
        sp.unpin_user_pages(frames)
        assert sp.munmap(heap, PAGE_4K) == 1
        st = vm.vmstat()
        assert st["pinned_frames"] == 0 and st["nr_foll_pin_released"] == st["nr_foll_pin_acquired"] == 8


def test_a_long_term_pin_through_the_server_is_released_from_another_core(server):
    with VMClient(server.target, core=0) as vm, VMClient(server.target, core=1) as other:
        sp = vm.create_space(name="isolate heap")
        heap = sp.mmap(4 * PAGE_4K, kind="heap")
        frames, core = sp.pin_user_pages(heap, 4, longterm=True)
        assert core == 0 and vm.vmstat()["pinned_frames"] == 4
        with pytest.raises(FailedPrecondition, match="core 1"):
            other.space(sp.id).unpin_user_pages(frames)  # not core 1's short-term pins
        other.space(sp.id).unpin_user_pages(frames, longterm=True)  # the space's: any core releases them
        assert vm.vmstat()["pinned_frames"] == 0

def test_a_closing_client_s_spaces_take_their_pins_with_them(server):
    with VMClient(server.target, core=1) as vm:
        sp = vm.create_space()
        _, core = sp.pin_user_pages(sp.mmap(4 * PAGE_4K), 4)
        assert core == 1 and vm.vmstat()["pinned_frames"] == 4
    with VMClient(server.target) as vm:
        assert vm.vmstat()["pinned_frames"] == 0
