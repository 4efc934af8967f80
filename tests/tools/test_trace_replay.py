"""`memsim trace replay` (tools/trace_replay.py): what each job computes, the table the command
writes, and its refusals.

Every row must be what the library computes in this process for that policy and size (the compiled
loop, Belady's OPT, the sampled Redis model), so a job that replays the wrong policy, preset or
size, or a merge that mixes rows up, fails; the jobs run in two spawned worker processes, which
read the trace by its path.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from memsim.sim.cache.lrutest import SampledCache
from memsim.sim.policies.simulate import belady, simulate, zipf_trace
from memsim.sim.trace import TraceChunk, write_trace
from memsim.tools.cli import main
from memsim.tools.trace_replay import REDIS_OPS_PER_SECOND, parse_policies, parse_sizes, replay_all

POLICIES = "lru,sieve,s3fifo:libcachesim,lfu,opt,redis-lru-5"


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory):
    keys = zipf_trace(4_000, 600, 0.9, seed=11)
    path = tmp_path_factory.mktemp("replay") / "z.oracleGeneral"
    write_trace(path, [TraceChunk.of(np.asarray(keys, np.int64) * 7919 + 3)], "oracleGeneral")  # sparse ids
    return path, keys


def expected(label: str, keys: list[int], size: int) -> int:
    if label == "opt":
        return belady(keys, size).misses
    if label == "redis-lru-5":
        c = SampledCache(size, "allkeys-lru", 5, ops_per_second=REDIS_OPS_PER_SECOND)
        for k in keys:
            c.access(k, True)
        return c.misses
    name, _, preset = label.partition(":")
    return simulate(name, keys, size, **({"preset": preset} if preset else {})).misses


def test_each_row_is_the_librarys_figure(trace_file):
    path, keys = trace_file
    rows = replay_all(str(path), None, parse_policies(POLICIES), [30, 200], workers=2)
    assert [(r.policy, r.size) for r in rows] == [(p, n) for p in POLICIES.split(",") for n in (30, 200)]
    for r in rows:
        assert r.hits + r.misses == len(keys)
        assert r.misses == expected(r.policy, keys, r.size), r


def test_command_writes_json_table_and_png(trace_file, tmp_path, capsys):
    path, keys = trace_file
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    assert main(["trace", "replay", str(path), "--policies", "lru,opt", "--sizes", "50,0.5", "--workers", "1",
                 "--json", str(out), "--png", str(png)]) == 0
    doc = json.loads(out.read_text())
    footprint = len(set(keys))
    assert doc["footprint"] == footprint and doc["requests"] == len(keys)
    assert doc["sizes"] == sorted({50, round(0.5 * footprint)})
    lru = {r["size"]: r["misses"] for r in doc["rows"] if r["policy"] == "lru"}
    assert lru == {n: simulate("lru", keys, n).misses for n in doc["sizes"]}
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "miss ratio" in capsys.readouterr().out


@pytest.mark.parametrize(("text", "message"), [
    ("nosuch", "unknown policy 'nosuch'"), ("redis-lru-99", "1..64"), ("s3fifo:nosuch", "unknown S3-FIFO preset"),
])
def test_policy_names_refused_with_a_reason(text, message):
    with pytest.raises(ValueError, match=message):
        parse_policies(text)


def test_sizes_are_objects_or_fractions_of_the_footprint():
    assert parse_sizes("10,0.5,10,1.0", 1000) == [10, 500, 1000]
    for bad in ("0", "1.5", ""):
        with pytest.raises(ValueError):
            parse_sizes(bad, 1000)


def test_command_refuses_a_missing_file(tmp_path, capsys):
    assert main(["trace", "replay", str(tmp_path / "none.csv")]) == 2
    assert "none.csv" in capsys.readouterr().err


def test_a_size_that_is_no_number_says_what_a_size_is():
    for bad in ("abc", "1e3", "nan", "inf", "-5", "1.2.3"):
        with pytest.raises(ValueError, match=r"whole number of objects \(1000\) or a fraction"):
            parse_sizes(bad, 1000)
    assert parse_sizes(".5,1.,7", 10) == [5, 7, 10]
