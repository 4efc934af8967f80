"""The Redis protocol's request parsers and reply encoding, without a server (server/resp_parse.py, resp_reply.py).

The two parsers must agree on every read the fast one accepts, and the slow one must refuse
what Redis refuses with Redis's own text before it waits for the payload."""

from __future__ import annotations

import subprocess
import sys

import hiredis
import pytest

from memsim.server.resp_parse import MAX_BULK, PROTO_INLINE_MAX_SIZE, fast_parse, parse, split_args
from memsim.server.resp_reply import RespMap, Verbatim, encode, error_line

SET = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n"


def test_fast_and_slow_parsers_agree_on_whole_commands():
    data = SET * 3 + b"*1\r\n$4\r\nPING\r\n"
    fast = fast_parse(hiredis.Reader(), data)
    slow = parse(data)
    assert fast == slow.commands == [[b"SET", b"k", b"hello"]] * 3 + [[b"PING"]]
    assert slow.used == len(data) and slow.error is None


@pytest.mark.parametrize("data", [
    SET[:-3],  # cut at the end of the read
    b"PING\r\n",  # inline
    SET + b"PING\r\n",  # inline after a multibulk command
    b"*1\r\n:1\r\n",  # an integer where a bulk string belongs
    b"*2\r\n$3\r\nGET\r\n*1\r\n$1\r\na\r\n",  # a nested array
    b"*3\r\n$3\r\nSET\r\n",  # cut at a header's end
    b"*1\r\n$4\r\nPI",  # cut inside a bulk string
    b"*1\r",  # cut inside a header
])
def test_fast_parser_declines_all_but_whole_bulk_commands(data):
    assert fast_parse(hiredis.Reader(), data) is None


def test_fast_parser_skips_empty_commands():
    assert fast_parse(hiredis.Reader(), b"*0\r\n" + PING_FIRST + b"*0\r\n") == [[b"PING"]]
    assert fast_parse(hiredis.Reader(), b"*0\r\n") == []


def test_fast_parser_leaves_huge_counts_to_parse_before_hiredis_allocates_them():
    """hiredis allocates a declared array whole: under a 1 GiB address-space limit a count of 2e9 (16 GB of
    list) is a MemoryError, unless fast_parse declines the read first and parse refuses it."""
    code = ("import resource, hiredis; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
            "from memsim.server.resp_parse import fast_parse, parse; "
            "data = b'*1\\r\\n$4\\r\\nPING\\r\\n*2\\r\\n*2000000000\\r\\n'; "
            "assert fast_parse(hiredis.Reader(), data) is None; "
            "assert fast_parse(hiredis.Reader(), b'*2\\r\\n' * 1000 + b'*200000\\r\\n') is None; "
            "print(parse(b'*2000000000\\r\\n').error)")
    assert fast_parse(hiredis.Reader(), SET * 1000) == [[b"SET", b"k", b"hello"]] * 1000  # the hot path stays
    assert fast_parse(hiredis.Reader(), b"*2\r\n$1\r\na\r\n$8\r\nx*999999\r\n") == [[b"a", b"x*999999"]]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "invalid multibulk length", out.stderr[-2000:]


def test_a_command_sent_in_pieces_resumes_where_it_stopped():
    first = parse(SET[:25])
    assert first.commands == [] and first.used == 0 and first.partial is not None
    assert first.partial.args == [b"SET", b"k"]
    rest = parse(SET + b"PING\r\n", first.partial)
    assert rest.commands == [[b"SET", b"k", b"hello"], [b"PING"]] and rest.used == len(SET) + 6


@pytest.mark.parametrize(("data", "message"), [
    (b"*1\r\n$2147483648\r\n", "invalid bulk length"),
    (b"*1\r\n$%d\r\n" % (MAX_BULK + 1), "invalid bulk length"),
    (b"*1\r\n$-5\r\n", "invalid bulk length"),
    (b"*1\r\n$03\r\nabc\r\n", "invalid bulk length"),  # string2ll: no leading zeros
    (b"*1048577\r\n", "invalid multibulk length"),
    (b"*x\r\n", "invalid multibulk length"),
    (b"*1\r\n:1\r\n", "expected '$', got ':'"),
    (b"*" + b"1" * (PROTO_INLINE_MAX_SIZE + 1), "too big mbulk count string"),
    (b"*1\r\n$" + b"1" * (PROTO_INLINE_MAX_SIZE + 1), "too big bulk count string"),
    (b"GET " + b"k" * PROTO_INLINE_MAX_SIZE, "too big inline request"),
    (b'SET "a\r\n', "unbalanced quotes in request"),
    (b'SET "a"b\r\n', "unbalanced quotes in request"),
])
def test_redis_protocol_errors(data, message):
    p = parse(PING_FIRST + data)
    assert p.commands == [[b"PING"]] and p.used == len(PING_FIRST)  # what came before still runs
    assert str(p.error) == message


PING_FIRST = b"*1\r\n$4\r\nPING\r\n"


def test_inline_commands_as_sdssplitargs_reads_them():
    assert split_args(b'set  k "a b\\x41\\n" \'it\\\'s\'') == [b"set", b"k", b"a bA\n", b"it's"]
    assert split_args(b"   ") == []
    p = parse(b"\r\n\nPING\r\nECHO x\n")
    assert p.commands == [[b"PING"], [b"ECHO", b"x"]]  # empty lines are skipped, as Redis does


def test_unfinished_lines_wait_for_more():
    for data in (b"*3\r", b"*3\r\n$3\r\nSE", b"PIN", b"*3\r\n$3"):
        p = parse(data)
        assert p.error is None and p.commands == [] and p.used == 0


def test_replies_in_resp2_and_resp3():
    def enc(r, resp3=False):
        out = bytearray()
        encode(out, r, resp3)
        return bytes(out)

    assert enc(b"v") == b"$1\r\nv\r\n" and enc("OK") == b"+OK\r\n" and enc(7) == b":7\r\n"
    assert enc(None) == b"$-1\r\n" and enc(None, True) == b"_\r\n"
    assert enc([b"a", None, 1]) == b"*3\r\n$1\r\na\r\n$-1\r\n:1\r\n"
    assert enc(RespMap({b"k": b"v"})) == b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n"
    assert enc(RespMap({b"k": b"v"}), True) == b"%1\r\n$1\r\nk\r\n$1\r\nv\r\n"
    assert enc(Verbatim(b"x:1"), True) == b"=7\r\ntxt:x:1\r\n" and enc(Verbatim(b"x:1")) == b"$3\r\nx:1\r\n"


def test_error_lines_keep_redis_codes_and_stay_one_line():
    assert error_line("WRONGTYPE Operation against a key") == b"-WRONGTYPE Operation against a key\r\n"
    assert error_line("OOM command not allowed") == b"-OOM command not allowed\r\n"
    assert error_line("reply too large:\r\nsplit it") == b"-ERR reply too large:  split it\r\n"
