"""bench/micro_gc.py, small: a 255-node tree scavenged compiled and interpreted; the report holds
both runs' rates and work counters and their ratio (speed itself is never asserted)."""

from __future__ import annotations

import json

from bench.micro_gc import main, run


def test_micro_gc_reports_both_runs_and_their_ratio():
    report = run(depth=8, rounds=1)
    for name in ("jit_on", "jit_off"):
        assert report[name]["nodes"] == 255
        for kind in ("copy", "promote"):
            r = report[name][kind]
            assert r["nodes"] == 255 and r["bytes_copied"] == 255 * 32
            assert r["objects_per_s"] > 0 and r["bytes_per_s"] > 0 and r["objects_scanned"] == 255
    assert report["jit_off"]["jit"] is False
    assert set(report["speedup"]) == {"copy", "promote"}


def test_micro_gc_writes_json(tmp_path, monkeypatch, capsys):
    out = tmp_path / "micro_gc.json"
    monkeypatch.setattr("sys.argv", ["micro_gc.py", "--depth", "6", "--rounds", "1", "--out", str(out)])
    main()
    assert json.loads(out.read_text())["jit_on"]["nodes"] == 63
    assert "M objects/s" in capsys.readouterr().out
