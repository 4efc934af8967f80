"""Capture from a live server (Cache.Monitor, VM.Monitor on every core, merged by time): the
records match what was sent, core by core; the file written replays; a reader that cannot keep
up loses records and is told exactly how many; `memsim trace capture` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest

from memsim.client import Cache, VMClient
from memsim.client.connection import core_target
from memsim.client.monitor import Capture
from memsim.sim.policies.simulate import simulate
from memsim.sim.trace import Op, key_id, open_trace, read_all
from memsim.sim.trace.monitor import MAX_LIMIT
from memsim.tools.capture import write_capture
from memsim.tools.cli import main
from memsim.v1 import machine_pb2 as mpb
from memsim.v1.cache_pb2_grpc import CacheStub
from tests.servers import running_server

pytestmark = pytest.mark.integration  # every test here starts a server

WINDOW = 6.0  # seconds each capture records: the loads below take a fraction of it


@pytest.fixture(scope="module")
def server():
    with running_server(cores=2, memory="16MiB", extra=["--vm-memory", "1MiB"]) as srv:
        yield srv


def _load(target: str, core: int, n: int, sent: list[bytes]) -> None:
    """n commands pipelined on core `core`'s own port: SETs then GETs of keys of its own."""
    keys = [f"c{core}:k{i % 50}".encode() for i in range(n)]
    with Cache(target, core=core) as r:
        p = r.pipeline()
        for i, k in enumerate(keys):
            p.set(k, b"v" * (i % 7 + 1)) if i % 3 == 0 else p.get(k)
        p.execute()
    sent.extend(keys)


def test_cache_capture_on_two_cores_matches_and_replays(server, tmp_path):
    sent: list[list[bytes]] = [[], []]
    with Capture(server.target, "cache", seconds=WINDOW) as cap:
        t0 = time.monotonic()
        loads = [threading.Thread(target=_load, args=(server.target, c, 900 + 300 * c, sent[c])) for c in (0, 1)]
        for t in loads:
            t.start()
        for t in loads:
            t.join()
        assert time.monotonic() - t0 < WINDOW  # the load ran inside the window
        rec = cap.result()
    assert rec.per_core == {0: 900, 1: 1200} and rec.lost == {0: 0, 1: 0}
    assert len(rec) == 2100
    assert (np.diff(rec.time_ns) >= 0).all()  # merged by time
    for c in (0, 1):  # each core's records are its commands, in the order sent
        mine = rec.key[np.isin(rec.key, [key_id(k) for k in set(sent[c])])]
        assert mine.tolist() == [key_id(k) for k in sent[c]]
    assert sorted(set(rec.op.tolist())) == [Op.GET, Op.SET]
    path = tmp_path / "cap.oracleGeneral"
    summary = write_capture(rec, str(path), "oracleGeneral")
    assert summary.records == 2100
    back = read_all(path)
    assert back.key.tolist() == rec.key.tolist()
    assert back.time[0] == 0 and (np.diff(back.time) >= 0).all()
    hits = simulate("lru", back.key.tolist(), 100)  # the file replays: 100 distinct keys, all fit
    assert hits.misses == 100
    assert main(["trace", "mrc", str(path), "--sizes", "10", "100", "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["curves"][0]["misses"][1] == 100


def test_slow_reader_loses_records_and_is_told_how_many(server):
    sent: list[bytes] = []
    with Capture(server.target, "cache", seconds=WINDOW, limit=16, cores=1) as cap:
        _load(server.target, 0, 3000, sent)  # one pipeline: thousands of records between two drains
        rec = cap.result()
    assert rec.lost[0] > 0
    assert len(rec) + rec.lost[0] == 3000  # every record is either delivered or counted lost


def test_space_capture_records_every_page_access_from_both_cores(server):
    with VMClient(server.target) as owner:
        sp = owner.create_space()
        base = sp.mmap(16 * 4096)
        page = 4096
        with Capture(server.target, "vm", seconds=WINDOW, space=sp.id) as cap:
            for core in (0, 1):
                with VMClient(server.target, core=core) as vm:
                    s = vm.space(sp.id)
                    for i in range(8):
                        s.store(base + (core * 8 + i) * page, b"z")
                    s.load(base, 1)
            rec = cap.result()
    assert rec.per_core == {0: 9, 1: 9}
    vpn0 = base // page
    assert sorted(rec.key[rec.op == Op.SET].tolist()) == list(range(vpn0, vpn0 + 16))
    assert rec.key[rec.op == Op.GET].tolist() == [vpn0, vpn0]
    assert set(rec.size.tolist()) == {page}


def test_memsim_trace_capture_writes_a_trace(server, tmp_path):
    out = tmp_path / "live.csv"
    stop = threading.Event()

    def load() -> None:
        with Cache(server.target) as r:
            while not stop.is_set():
                r.set(b"cli-key", b"v")
                r.get(b"cli-key")

    t = threading.Thread(target=load)
    t.start()
    try:
        done = subprocess.run([sys.executable, "-m", "memsim.tools", "trace", "capture", "--cache", "--seconds", "1.5",
                               "--out", str(out), "--target", server.target, "--json"],
                              capture_output=True, text=True, timeout=60)
    finally:
        stop.set()
        t.join()
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["format"] == "csv" and summary["records"] > 0
    trace = next(iter(open_trace(out)))
    assert len(trace) == summary["records"] and set(trace.key.tolist()) == {key_id(b"cli-key")}


def test_monitor_arguments_at_extremes_get_clear_status_codes(server):
    """seconds of 0, negative, NaN, infinite or past the server's limit and a limit past MAX_LIMIT are
    INVALID_ARGUMENT; a core's captures together buffer at most MAX_LIMIT records, so one past it is
    RESOURCE_EXHAUSTED before its buffers exist, and the core serves captures again once that one ends."""
    def first(ch: grpc.Channel, **kw: float) -> grpc.StatusCode | None:
        call = CacheStub(ch).Monitor(mpb.MonitorRequest(**kw), timeout=20)
        try:
            next(call)
        except grpc.RpcError as e:
            return e.code()
        call.cancel()
        return None

    with grpc.insecure_channel(core_target(server.target, 0)) as ch:
        for seconds in (0.0, -1.0, float("nan"), float("inf"), 1e9):
            assert first(ch, seconds=seconds) == grpc.StatusCode.INVALID_ARGUMENT, seconds
        assert first(ch, seconds=1, limit=MAX_LIMIT + 1) == grpc.StatusCode.INVALID_ARGUMENT
        assert first(ch, seconds=1, limit=2**32 - 1) == grpc.StatusCode.INVALID_ARGUMENT
        with Capture(server.target, "cache", seconds=2, limit=MAX_LIMIT, cores=1):
            assert first(ch, seconds=1, limit=1) == grpc.StatusCode.RESOURCE_EXHAUSTED
        deadline = time.monotonic() + 10  # the closed capture's stream sees its cancellation within a poll
        while (code := first(ch, seconds=0.5, limit=MAX_LIMIT)) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert code is None
