"""The Locust plug-in (memsim.tools.locust_users) and examples/locustfile.py: Locust itself, headless,
against a live server, in one process and with --processes 2; and the two facts the module relies on.

Locust monkey-patches the process that imports it, so everything that imports it runs in a child."""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.servers import metrics_url, parse, running_server, scrape, value

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "examples" / "locustfile.py"
NAMES = {("Machine", n) for n in ("Alloc", "Write", "Read", "Free")} | \
    {("Cache", n) for n in ("GET", "SET", "MGET", "pipeline")} | \
    {("VM", n) for n in ("CreateSpace", "mmap", "store", "load")}


def run_python(code: str, timeout: float = 60) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         timeout=timeout, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_neither_the_package_nor_the_cli_imports_locust():
    out = run_python("""
        import sys
        import memsim.tools, memsim.client, memsim.server
        from memsim.tools.cli import build_parser
        build_parser().parse_args(["serve"])
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("locust", "gevent")
                     or m == "memsim.tools.locust_users"))
    """)
    assert out.strip() == "[]"


def test_a_call_blocked_in_grpc_lets_the_other_greenlets_run():
    """init_gevent's point: a call waiting on a server that never answers (a listener that accepts
    nothing) must not stall the hub, or every other user (and the lease keepalives) stalls with it."""
    out = run_python("""
        import socket, time
        import memsim.tools.locust_users  # Locust's monkey-patching, then grpc's init_gevent
        import gevent
        from memsim.client import Cache, DeadlineExceeded

        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        gaps = []

        def ticker():
            last = time.perf_counter()
            for _ in range(60):
                gevent.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        t = gevent.spawn(ticker)
        try:
            with Cache(target="127.0.0.1:%d" % silent.getsockname()[1], timeout=0.5) as c:
                c.get("x")
        except DeadlineExceeded:
            pass
        t.join()
        print(max(gaps))
    """)
    assert float(out.strip()) < 0.25  # ticks every 10 ms went on during the 500 ms call


def locust_stats(prefix: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """(type, name) -> (requests, failures), from Locust's own --csv file."""
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {(r["Type"], r["Name"]): (int(r["Request Count"]), int(r["Failure Count"]))
                for r in csv.DictReader(f) if r["Name"] != "Aggregated"}


@pytest.mark.integration
@pytest.mark.parametrize("processes", [None, 2], ids=["one-process", "processes-2"])
def test_locust_headless_counts_every_request_and_none_fails(tmp_path, processes):
    with running_server(cores=2, memory="32MiB") as srv:
        url = metrics_url(srv)
        _, before = parse(scrape(url)[1])
        cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "4", "-r", "4",
               "-t", "4s", "--host", srv.target, "--csv", str(tmp_path / "run"), "--only-summary"]
        if processes:
            cmd += ["--processes", str(processes)]
        t0 = time.monotonic()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        ran = time.monotonic() - t0
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]  # Locust exits 1 on any failure
        _, after = parse(scrape(url)[1])
    assert ran >= 4, f"--run-time 4s ended after {ran:.1f} s"  # the loop's clock was brought up to date
    stats = locust_stats(tmp_path / "run")
    assert set(stats) == NAMES, stats
    assert all(fails == 0 for _, fails in stats.values()), stats
    assert all(n > 0 for n, _ in stats.values()), stats
    # The server saw the cache's lookups Locust counted: a GET is one, an MGET or a pipeline ten. A user
    # stopped mid-call is not counted by Locust though the server may have run the call.
    lookups = stats[("Cache", "GET")][0] + 10 * (stats[("Cache", "MGET")][0] + stats[("Cache", "pipeline")][0])
    served = sum(value(after, f"memsim_keyspace_{k}_total") - value(before, f"memsim_keyspace_{k}_total")
                 for k in ("hits", "misses"))
    assert lookups <= served <= lookups + 10 * 4
