"""The trace formats: round trips in every format across chunk boundaries, oracleGeneral's
next_access against a brute-force scan and as libCacheSim reads it back, text keys' ids."""

from __future__ import annotations

import numpy as np
import pytest

from memsim.sim.policies.simulate import zipf_trace
from memsim.sim.trace import (
    FORMATS,
    CsvColumns,
    Op,
    TraceChunk,
    concat,
    guess_format,
    key_id,
    open_trace,
    read_all,
    read_keys,
    write_trace,
)


def _trace(n: int = 5000, seed: int = 3) -> TraceChunk:
    rng = np.random.default_rng(seed)
    keys = np.asarray(zipf_trace(n, 300, 0.9, seed=seed), np.int64)
    return TraceChunk.of(keys, time=np.arange(n) * 7, size=rng.integers(1, 4096, n),
                         op=rng.integers(0, 3, n))


def _chunks(c: TraceChunk, step: int) -> list[TraceChunk]:
    return [c.slice(i, i + step) for i in range(0, len(c), step)]


def _next_brute(keys: np.ndarray) -> np.ndarray:
    nxt = np.full(len(keys), -1, np.int64)
    later: dict[int, int] = {}
    for i in range(len(keys) - 1, -1, -1):
        nxt[i] = later.get(int(keys[i]), -1)
        later[int(keys[i])] = i
    return nxt


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_across_chunks(tmp_path, fmt):
    t = _trace()
    path = tmp_path / f"t.{fmt}"
    assert write_trace(path, _chunks(t, 777), fmt) == len(t)
    assert guess_format(path) == fmt
    chunks = list(open_trace(path, chunk_requests=1000))
    assert [len(c) for c in chunks] == [1000] * 5
    back = read_all(path)
    assert np.array_equal(back.key, t.key)
    assert np.array_equal(read_keys(path), t.key)
    if fmt != "txt":
        assert np.array_equal(back.time, t.time)
        assert np.array_equal(back.size, t.size)
    if fmt == "csv":
        assert np.array_equal(back.op, t.op)


def test_oracle_next_access_is_computed_chunk_by_chunk(tmp_path):
    t = _trace(20000)
    path = tmp_path / "t.oracleGeneral"
    from memsim.sim.trace import oracle

    oracle.write(path, _chunks(t, 3001), chunk_requests=997)  # the backward pass crosses many chunk edges
    back = read_all(path)
    assert open_trace(path).has_next_access
    assert np.array_equal(back.next_access, _next_brute(t.key))
    raw = np.fromfile(path, oracle.RECORD)  # on disk: libCacheSim's 1-based vtime, -1 for none
    expect = _next_brute(t.key)
    assert np.array_equal(raw["next"], np.where(expect < 0, -1, expect + 1))


def test_libcachesim_reads_what_memsim_writes(tmp_path):
    lcs = pytest.importorskip("libcachesim")  # test-only peer (GPL): never imported by the package
    t = _trace(3000)
    path = tmp_path / "t.oracleGeneral"
    write_trace(path, [t], "oracleGeneral")
    reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)
    expect = _next_brute(t.key)
    for i in range(len(t)):
        req = reader.read_one_req()
        assert (req.obj_id, req.obj_size, req.clock_time) == (int(t.key[i]), int(t.size[i]), int(t.time[i]))
        if expect[i] >= 0:  # libCacheSim maps "none" to its own MAX_REUSE_DISTANCE
            assert req.next_access_vtime == expect[i] + 1


def test_csv_header_names_columns_options_and_text_keys(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("obj_size,op,obj_id,timestamp\n10,get,user:1,5\n20,SET,user:2,6\n30,del,17,7\n")
    c = read_all(p)
    assert c.key.tolist() == [key_id("user:1"), key_id("user:2"), 17]
    assert c.size.tolist() == [10, 20, 30] and c.time.tolist() == [5, 6, 7]
    assert c.op.tolist() == [Op.GET, Op.SET, Op.DEL]
    q = tmp_path / "b.data"
    q.write_text("1;x;4\n2;y;8\n")
    c = read_all_with(q, CsvColumns(time=0, key=1, size=2, delimiter=";", header=False))
    assert c.key.tolist() == [key_id("x"), key_id("y")] and c.size.tolist() == [4, 8]
    assert key_id(b"42") == 42 and key_id("a") == key_id(b"a") != key_id("b")


def read_all_with(path, columns):
    return concat(open_trace(path, "csv", columns=columns))


def test_txt_and_refusals(tmp_path):
    p = tmp_path / "k.txt"
    p.write_text("a\n\nb\na\n")
    assert read_keys(p).tolist() == [key_id("a"), key_id("b"), key_id("a")]
    bad = tmp_path / "bad.oracleGeneral"
    bad.write_bytes(b"\0" * 25)
    with pytest.raises(ValueError, match="24-byte"):
        open_trace(bad)
    with pytest.raises(ValueError, match="unknown trace format"):
        open_trace(p, "parquet")


def test_libcachesim_csv_options(tmp_path):
    from memsim.sim.trace.text import parse_columns

    cols = parse_columns("time-col=3,obj-id-col=1,obj-size-col=2,delimiter=;,has-header=false,obj-id-is-num=1")
    assert (cols.key, cols.size, cols.time, cols.delimiter, cols.header) == (0, 1, 2, ";", False)
    assert parse_columns(r"obj-id-col=1,delimiter=\t").delimiter == "\t"
    assert parse_columns("obj-id-col=2,delimiter=,,has-header=true").delimiter == ","
    p = tmp_path / "lcs.txt"
    p.write_text("7;100;1\n8;200;2\n7;100;3\n")
    c = read_all_with(p, cols)
    assert c.key.tolist() == [7, 8, 7] and c.size.tolist() == [100, 200, 100] and c.time.tolist() == [1, 2, 3]
    for bad in ("obj-id-col=0", "obj-size-col=2", "colour=3", "obj-id-col"):
        with pytest.raises(ValueError):
            parse_columns(bad)


def test_numeric_text_keys_have_one_id_whatever_chunk_they_fall_in(tmp_path):
    """A chunk of numeric keys is cast by numpy, a chunk with one other key goes through key_id: the two
    must agree ('+12' was 12 in the first and a hash in the second), and 2^63 (19 digits, past int64)
    must be hashed, not overflow the chunk."""
    keys = ["+12", "1_000", "9223372036854775808", "-9223372036854775809", "-5", "9223372036854775807"]
    p = tmp_path / "k.txt"
    p.write_text("\n".join([*keys, "name"]) + "\n")
    one_chunk = read_keys(p).tolist()
    alone = [k for c in open_trace(p, "txt", chunk_requests=1) for k in c.key.tolist()]
    assert one_chunk == alone
    assert one_chunk[:2] == [12, 1000] and one_chunk[4:6] == [-5, (1 << 63) - 1]
    assert key_id("9223372036854775808") not in (1 << 63, -(1 << 63))


def test_csv_with_a_byte_order_mark_crlf_and_short_rows(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbfkey,size,time\r\nuser:1,10,5\r\n7,20,6\r\n")
    c = read_all(p)  # the mark is not part of the header's first name: 'key' is found, no row is data
    assert c.key.tolist() == [key_id("user:1"), 7] and c.size.tolist() == [10, 20] and c.time.tolist() == [5, 6]
    short = tmp_path / "short.csv"
    short.write_text("time,key,size,op\n1,5,10,get\n2,6\n")
    with pytest.raises(ValueError, match="row 2 has 2 columns"):
        read_all(short)
    bad = tmp_path / "bad.csv"
    bad.write_text("time,key,size,op\n1,5,ten,get\n")
    with pytest.raises(ValueError, match="CSV data rows 1-1"):
        read_all(bad)
