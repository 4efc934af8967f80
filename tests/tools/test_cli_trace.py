"""`memsim trace mrc` and `memsim trace stats` in-process: what they print and write, and the
one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from memsim.sim.policies.simulate import simulate, zipf_trace
from memsim.sim.trace import TraceChunk, write_trace
from memsim.tools.cli import main


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory):
    keys = np.asarray(zipf_trace(20000, 2000, 0.9, seed=4), np.int64)
    path = tmp_path_factory.mktemp("tr") / "z.oracleGeneral"
    write_trace(path, [TraceChunk.of(keys, size=keys % 100 + 1)], "oracleGeneral")
    return path, keys


def test_mrc_json_is_lru_at_each_size(trace_file, tmp_path, capsys):
    path, keys = trace_file
    out = tmp_path / "m.json"
    png = tmp_path / "m.png"
    assert main(["trace", "mrc", str(path), "--sizes", "10", "300", "--json", str(out), "--png", str(png)]) == 0
    doc = json.loads(out.read_text())
    (curve,) = doc["curves"]
    assert curve["sizes"] == [10, 300]
    assert curve["misses"] == [simulate("lru", keys.tolist(), c).misses for c in (10, 300)]
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    assert "miss ratio" in capsys.readouterr().out


def test_mrc_shards_compare_reports_error(trace_file, capsys):
    path, _ = trace_file
    assert main(["trace", "mrc", str(path), "--shards", "0.2", "--compare", "--points", "20", "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c["method"] for c in doc["curves"]] == ["exact", "shards-rate"]
    assert doc["curves"][0]["sizes"] == doc["curves"][1]["sizes"]
    assert 0 <= doc["shards_mae"] < 0.05
    assert main(["trace", "mrc", str(path), "--shards-smax", "300", "--points", "5"]) == 0
    assert "shards-size" in capsys.readouterr().out


def test_stats_json(trace_file, capsys):
    path, keys = trace_file
    assert main(["trace", "stats", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    uniq, counts = np.unique(keys, return_counts=True)
    assert doc["requests"] == len(keys) and doc["objects"] == len(uniq)
    assert doc["one_hit_objects"] == int((counts == 1).sum())
    assert doc["footprint_bytes"] == int((uniq % 100 + 1).sum())
    assert sum(b["requests"] for b in doc["reuse_distance_log2"]) == len(keys) - len(uniq)
    assert doc["ops"] == {"get": len(keys)}
    assert main(["trace", "stats", str(path)]) == 0
    assert "one-hit wonders" in capsys.readouterr().out


def test_refusals(tmp_path, capsys):
    assert main(["trace", "mrc", str(tmp_path / "none.csv")]) == 2
    assert "no trace file" in capsys.readouterr().err
    bad = tmp_path / "bad.oracleGeneral"
    bad.write_bytes(b"x" * 30)
    assert main(["trace", "stats", str(bad)]) == 2
    assert "24-byte" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["trace", "mrc", str(bad), "--shards", "0.1", "--shards-smax", "10"])


def test_csv_options_flag(tmp_path, capsys):
    p = tmp_path / "t.data"
    p.write_text("".join(f"{i};k{i % 3}\n" for i in range(9)))
    assert main(["trace", "stats", str(p), "--format", "csv", "--csv", "time-col=1,obj-id-col=2,delimiter=;",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["objects"] == 3
    with pytest.raises(SystemExit):
        main(["trace", "stats", str(p), "--csv", "colour=1"])


@pytest.mark.parametrize("command", ["mrc", "replay"])
@pytest.mark.parametrize("flag", ["--json", "--png"])
def test_an_output_that_cannot_be_written_is_refused_before_the_work(trace_file, tmp_path, capsys, command, flag):
    path, _ = trace_file
    for out, why in ((tmp_path / "no-such-dir" / "x.out", "there is no directory"), (tmp_path, "is a directory")):
        with pytest.raises(SystemExit) as e:
            main(["trace", command, str(path), flag, str(out)])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and flag in err and why in err, err


def test_a_shards_rate_past_1_names_both_bounds(trace_file, capsys):
    with pytest.raises(SystemExit):
        main(["trace", "mrc", str(trace_file[0]), "--shards", "2"])
    assert "above 0 and at most 1" in capsys.readouterr().err
