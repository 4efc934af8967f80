"""Every `memsim` command validates its flags before it does anything: a bad value is one
line on stderr that names the flag and the way out, exit code 2, and never a traceback."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest

from memsim.client import Cache
from tests.servers import running_server

pytestmark = pytest.mark.integration  # every test here starts a server

NOWHERE = "127.0.0.1:1"  # nothing listens there: a command that got past its flags would fail differently


def memsim(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "memsim.tools", *args], capture_output=True, text=True,
                          timeout=timeout)


def assert_one_clear_line(out: subprocess.CompletedProcess, *names: str) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and "Error:" not in out.stderr, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


BAD_FLAGS = [
    (["bench", "alloc", "--target", NOWHERE, "-p", "0"], "--processes"),
    (["bench", "alloc", "--target", NOWHERE, "-t", "-1"], "--seconds"),
    (["bench", "alloc", "--target", NOWHERE, "-t", "nan"], "--seconds"),
    (["bench", "alloc", "--target", NOWHERE, "--cross-free", "2"], "--cross-free"),
    (["bench", "alloc", "--target", NOWHERE, "--batch", "0"], "--batch"),
    (["bench", "alloc", "--target", NOWHERE, "--slots", "0"], "--slots"),
    (["bench", "alloc", "--target", NOWHERE, "--min-size", "0"], "--min-size"),
    (["bench", "alloc", "--target", NOWHERE, "--min-size", "2000", "--max-size", "100"], "--min-size"),
    (["demo", "--clients", "0"], "--clients"),
    (["demo", "--cores", "0"], "--cores"),
    (["demo", "--seconds", "-1"], "--seconds"),
    (["demo", "--memory", "lots"], "--memory"),
    (["bench", "cache", "--target", NOWHERE, "-p", "0"], "--processes"),
    (["bench", "cache", "--target", NOWHERE, "-r", "1.5"], "--read-ratio"),
    (["bench", "cache", "--target", NOWHERE, "-P", "0"], "--pipeline"),
    (["bench", "cache", "--target", NOWHERE, "-k", "0"], "--keys"),
    (["bench", "cache", "--target", NOWHERE, "-d", "9-3"], "--value-size"),
    (["bench", "cache", "--target", NOWHERE, "--rate", "-5"], "--rate"),
    (["bench", "cache", "--target", NOWHERE, "--warmup", "-1"], "--warmup"),
    (["bench", "cache", "--target", NOWHERE, "--scan-fraction", "3"], "--scan-fraction"),
    (["bench", "vm", "--target", NOWHERE, "-p", "0"], "--processes"),
    (["bench", "vm", "--target", NOWHERE, "--pages", "0"], "--pages"),
    (["bench", "vm", "--target", NOWHERE, "--batch", "0"], "--batch"),
    (["bench", "vm", "--target", NOWHERE, "--write-ratio", "2"], "--write-ratio"),
    (["serve", "--cores", "0"], "--cores"),
    (["serve", "--port", "70000"], "--port"),
    (["serve", "--tlb-entries", "0"], "--tlb-entries"),
    (["serve", "--khugepaged-ms", "0"], "--khugepaged-ms"),
    (["serve", "--hugetlb-pages", "-1"], "--hugetlb-pages"),
    (["serve", "--scavenge-period", "0"], "--scavenge-period"),
    (["serve", "--start-timeout", "0"], "--start-timeout"),
    (["stats", "--target", NOWHERE, "--timeout", "0"], "--timeout"),
    (["vm", "--target", NOWHERE, "--timeout", "-1"], "--timeout"),
    (["vm", "--target", NOWHERE, "--space", "-1"], "--space"),
    (["cli", "-p", "0", "PING"], "--port"),
    (["cli", "--timeout", "0", "PING"], "--timeout"),
    (["bench", "alloc", "--target", "nonsense"], "--target"),
]


@pytest.mark.parametrize("args, flag", BAD_FLAGS, ids=[" ".join(a[:2] + a[-2:]) for a, _ in BAD_FLAGS])
def test_a_bad_flag_is_one_clear_line(args, flag):
    line = assert_one_clear_line(memsim(*args), flag)
    assert "--help" in line  # the way out


@pytest.mark.parametrize("args, what", [
    (["serve", "--port", "0", "--memory", "8MiB", "--hugetlb-pages", "100"], "--vm-memory"),
    (["serve", "--port", "0", "--memory", "8MiB", "--maxmemory", "64mb"], "heap"),
    (["serve", "--port", "0", "--cores", "1", "--memory", "4MiB", "--start-timeout", "0.001"], "--no-pin"),
])
def test_a_server_that_cannot_start_says_why_in_one_line_and_leaves_nothing(args, what):
    out = memsim(*args)
    assert out.returncode != 0
    # "leaked" is the resource tracker's warning about segments nobody unlinked
    for bad in ("Traceback", "BufferError", "leaked", "Exception ignored"):
        assert bad not in out.stderr, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and what in lines[0], out.stderr
    assert "serving on" not in out.stdout


def test_sizeclasses_json():
    out = subprocess.run([sys.executable, "-m", "memsim.tools", "sizeclasses", "--json"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    classes = json.loads(out.stdout)["classes"]
    assert classes[0]["class"] == 1 and classes[0]["size"] == 8 and len(classes) == 67
    assert all(c["size"] < d["size"] for c, d in itertools.pairwise(classes))


def test_maxmemory_rule_is_the_same_for_serve_and_config_set():
    from memsim.client import InvalidArgument

    refused = memsim("serve", "--port", "0", "--memory", "8MiB", "--maxmemory", "7mb")
    assert refused.returncode == 2, refused.stdout
    with running_server(cores=1, memory="8MiB") as srv, Cache(target=srv.target) as r:
        with pytest.raises(InvalidArgument, match="heap") as ei:
            r.config_set("maxmemory", "7mb")
        r.config_set("maxmemory", "5mb")  # below the heap: accepted by both
    reason = str(ei.value).split(" - ", 1)[1]  # "7340032 bytes is more than this machine's heap of ..."
    assert reason in refused.stderr, (refused.stderr, reason)
    ok = memsim("serve", "--port", "0", "--memory", "8MiB", "--maxmemory", "5mb", "--start-timeout", "0.001")
    assert "heap" not in ok.stderr  # got past the rule (and then gave up starting, on purpose)


def test_bench_cache_restores_the_config_it_changed_and_reports_an_unreachable_rate(tmp_path):
    report = tmp_path / "out.json"
    with running_server(cores=1, memory="16MiB") as srv, Cache(target=srv.target) as r:
        r.config_set("maxmemory", "5mb")
        r.config_set("maxmemory-policy", "allkeys-lfu")
        out = memsim("bench", "cache", "--target", srv.target, "-p", "1", "-t", "0.5", "--warmup", "0", "-k", "500",
                     "--maxmemory", "1mb", "--maxmemory-policy", "s3fifo", "--rate", "1e9", "--no-progress",
                     "--json", str(report), timeout=120)
        assert out.returncode == 0, out.stderr
        assert r.config_get("maxmemory") == {"maxmemory": str(5 << 20)}
        assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lfu"}
    said = out.stderr.splitlines()
    assert any("FLUSHALL" in ln and "--no-flush" in ln for ln in said), out.stderr  # said up front
    assert any("restored" in ln and "maxmemory-policy" in ln for ln in said), out.stderr
    data = json.loads(report.read_text())
    assert data["rate"]["requested"] == 1e9 and 0 < data["rate"]["achieved"] < 1e9
    assert data["server"]["config"]["maxmemory-policy"] == "s3fifo"  # the run itself ran under the bench's config
    assert data["restored"] == {"maxmemory": str(5 << 20), "maxmemory-policy": "allkeys-lfu"}
    assert "achieved" in out.stdout and "requested" in out.stdout


def test_memsim_vm_reads_at_80_columns():
    from memsim.client import VMClient

    with running_server(cores=1, memory="16MiB") as srv, VMClient(srv.target) as vm:
        sp = vm.create_space(page_table="multilevel", name="eighty")
        heap = sp.mmap(1 << 20, kind="heap", name="heap")
        stack = sp.mmap(64 << 10, kind="stack", name="main-thread-stack")
        sp.store(heap, b"x")
        sp.store(stack + (64 << 10) - 8, b"y")
        out = subprocess.run([sys.executable, "-m", "memsim.tools", "vm", "--target", srv.target],
                             capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "80"})
        sp.destroy()
    assert out.returncode == 0, out.stderr
    wide = [ln for ln in out.stdout.splitlines() if len(ln) > 80]
    assert not wide, "\n".join(wide)
    for word in ("pgfault", "pgmajfault", "swap", "TLB", "main-thread-stack", "eighty", "rw-", f"{heap:x}"):
        assert word in out.stdout, (word, out.stdout)
    assert "…" not in out.stdout  # nothing cut short


def test_physical_memory_heap_and_vm_pool_are_named_alike_by_serve_and_stats():
    with running_server(cores=1, memory="16MiB") as srv:
        started = srv.output[-1]
        text = memsim("stats", "--target", srv.target).stdout
        machine = json.loads(memsim("stats", "--target", srv.target, "--json").stdout)["machine"]
    assert machine["heap_bytes"] == 12 << 20 and machine["vm_pool_bytes"] == 4 << 20
    for said in (started, " ".join(text.split())):
        assert "physical memory 16" in said and "heap 12" in said and "VM pool 4" in said, said


def test_a_machine_that_cannot_be_built_is_one_line_and_leaves_no_segment():
    """The swap file goes where MEMSIM_SWAP_DIR says; a directory that is not there fails the
    machine's boot after its segments exist: they must be unlinked, and the error said once."""
    env = {**os.environ, "MEMSIM_SWAP_DIR": "/nonexistent/memsim-swap"}
    for args in (["serve", "--port", "0", "--cores", "1", "--memory", "4MiB"],
                 ["demo", "--cores", "1", "--memory", "4MiB", "--clients", "1", "--seconds", "0.1"]):
        out = subprocess.run([sys.executable, "-m", "memsim.tools", *args], capture_output=True, text=True,
                             timeout=120, env=env)
        assert out.returncode != 0
        for bad in ("Traceback", "leaked", "Exception ignored"):
            assert bad not in out.stderr, out.stderr
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "/nonexistent/memsim-swap" in lines[0], out.stderr
