"""The fuzz campaign of bench/fuzz.py, short and seeded: every method of every service, and its invariants.

300 calls per service (Machine, Cache, VM, health, reflection) of structured, mutated and junk
requests against a real server; then no INTERNAL or UNKNOWN from memsim's code, no worker
died or was recovered, every stamp (allocator objects, cache keys, VM pages written before the
run) reads back intact, the heap check is clean and every core still answers a health check and a PING.
The full campaign is `python bench/fuzz.py --calls 10000 --seed 1 --json fuzz.json`.
"""

from __future__ import annotations

import pytest

from bench.fuzz import (
    SERVER_EXTRA,
    SERVICES,
    STAMP_KEY_PREFIX,
    CacheFuzz,
    Campaign,
    MachineFuzz,
    VmFuzz,
    run_campaign,
)
from memsim.v1 import cache_pb2, vm_pb2
from memsim.v1 import machine_pb2 as mpb
from tests.servers import running_server

CALLS = 300


@pytest.mark.integration
def test_short_campaign_keeps_every_invariant():
    with running_server(cores=2, memory="64MiB", extra=list(SERVER_EXTRA)) as srv:
        pids = sorted(srv.alive_workers())
        report = run_campaign(seed=8, calls=CALLS, target=srv.target, deadline=5.0, max_seconds=120, log=lambda s: None)
        assert sorted(srv.alive_workers()) == pids, "a worker died during the campaign"
    assert report.calls == dict.fromkeys(SERVICES, CALLS)
    # Every method of every service was called: they come from the descriptors, not from a list here.
    for name, sd in SERVICES.items():
        assert set(report.histogram[name]) == {m.name for m in sd.methods}, name
    assert report.stamps == {"alloc": {"intact": 24}, "cache": {"intact": 48}, "vm": {"intact": 64}}
    firsts = {f.kind: f for f in reversed(report.memsim_findings())}
    bad = [f"{n} x {f.service}.{f.method} {f.code}, first call {f.index} (seed {f.seed}, {f.mode}): {f.message[:160]}"
           for kind, n in report.finding_counts.items() if (f := firsts.get(kind)) is not None]
    assert not bad, "INTERNAL/UNKNOWN from memsim:\n" + "\n".join(bad)
    assert report.violations() == []


@pytest.mark.integration
def test_a_call_is_the_same_request_for_the_same_seed_and_index():
    with running_server(cores=1, memory="16MiB") as srv:
        made = []
        for _ in range(2):
            c = Campaign(srv.target, seed=5, calls=0, log=lambda s: None)
            c.connect()
            calls = (c.make_call(s, i) for s in SERVICES for i in range(60))
            made.append([(mode, md.name, raw, metadata) for mode, md, raw, _, metadata in calls])
            c.close()
        assert made[0] == made[1]
        other = Campaign(srv.target, seed=6, calls=0, log=lambda s: None)
        other.connect()
        assert [other.make_call("Cache", i)[2] for i in range(60)] != [r for _, _, r, _ in made[0][60:120]]
        other.close()


@pytest.mark.integration
def test_damaged_stamps_are_reported():
    """The check after the run can fail: overwrite one object, delete one key, and it says so."""
    with running_server(cores=2, memory="16MiB") as srv:
        c = Campaign(srv.target, seed=3, calls=0, log=lambda s: None)
        c.connect()
        c.stamp()
        obj = next(s for s in c.stamps if s.kind == "alloc" and s.length == 100)
        c.unary(c.cores[0], "Machine", "Write", mpb.WriteRequest(address=obj.where["address"], offset=50, data=b"!"))
        c.unary(c.cores[1], "Cache", "Command", cache_pb2.CommandRequest(args=[b"DEL", STAMP_KEY_PREFIX + b"7"]))
        c.verify()
        c.close()
        assert c.report.stamps["alloc"] == {"intact": 23, "damaged": 1}
        assert c.report.stamps["cache"] == {"intact": 47, "damaged": 1}
        assert len(c.report.stamp_failures) == 2
        assert any("100 bytes written, 100 read back" in f for f in c.report.stamp_failures)
        assert any("TTL -2 where none was set" in f for f in c.report.stamp_failures)
        assert c.report.violations()


def test_no_call_is_sent_that_would_change_a_stamp():
    """The campaign spares its stamps (else damage would say nothing about the server)."""
    info = mpb.MachineInfo(cores=2, memory_bytes=1 << 20, arena_base=0xC000000000)
    m = MachineFuzz(info)
    m.protected.append((0xC000000100, 0xC000000110))
    assert m.harmful("Free", mpb.FreeRequest(address=0xC000000108))
    assert not m.harmful("Free", mpb.FreeRequest(address=0xC000000110))
    assert m.harmful("Batch", mpb.OpBatch(kind=[mpb.ALLOC, mpb.WRITE], address=[0, 0xC000000100], data=[b"x"]))
    assert not m.harmful("Batch", mpb.OpBatch(kind=[mpb.READ], address=[0xC000000100]))
    assert not m.harmful("Batch", mpb.OpBatch(kind=[mpb.ALLOC, mpb.FREE], address=[0, 0xC000000100], ref=[-1, 0]))
    c = CacheFuzz(info, [b"get", b"flushall", b"del"])
    assert b"flushall" not in c.commands
    stamp = STAMP_KEY_PREFIX + b"3"
    for args in ([b"del", b"a", stamp], [b"FLUSHDB"], [b"CONFIG", b"SET", b"maxmemory", b"1mb"], [b"set", stamp, b"v"]):
        assert c.command_harmful(args), args
    for args in ([b"GET", stamp], [b"CONFIG", b"SET", b"maxmemory", b"abc"], [b"CONFIG", b"SET", b"maxmemory", b"0"],
                 [b"CONFIG", b"SET", b"maxmemory", b"1" * 4400], [b"del", b"a"]):
        assert not c.command_harmful(args), args
    assert c.harmful("Pipeline", cache_pb2.CommandBatch(args=[b"GET", b"a", b"DEL", stamp], argc=[2, 2]))
    v = VmFuzz(info)
    v.protected.add(4)
    assert v.harmful("Store", vm_pb2.StoreRequest(space=4, address=4096, data=b"x"))
    assert v.harmful("Mmap", vm_pb2.MmapRequest(space=4, length=4096, fixed=True))
    assert not v.harmful("Mmap", vm_pb2.MmapRequest(space=4, length=4096))
    assert v.harmful("Batch", vm_pb2.VmBatch(op=[vm_pb2.VM_LOAD, vm_pb2.VM_STORE], space=[1, 4], address=[0, 0],
                                             data=[b"x"]))
    assert not v.harmful("Load", vm_pb2.LoadRequest(space=4, address=4096, length=8))
