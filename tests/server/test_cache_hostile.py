"""Hostile input to the cache over gRPC: each is answered with Redis's error or Redis's answer, at once,
and neither wedges a core nor aborts a pipeline.

Redis's behaviour is the reference: its glob matcher (src/util.c stringmatchlen) is linear in
practice and accepts reversed ranges; its integer parser (string2ll) refuses anything that is not
a 64-bit decimal with "value is not an integer or out of range", however long.
"""

from __future__ import annotations

import threading

import grpc
import pytest

from memsim.client import Cache, InvalidArgument, ResourceExhausted
from memsim.server.cache_servicer import execute_within
from memsim.server.limits import ReplyBudget
from memsim.sim.cache.commands import Commands
from memsim.sim.cache.evict import OOMError
from tests.servers import running_server

pytestmark = pytest.mark.integration  # every test here but one uses the module's server

NOT_INT = "ERR value is not an integer or out of range"
HUGE = "9" * 5000  # more digits than Python's int() converts (4,300) by default


@pytest.fixture(scope="module")
def server():
    with running_server(cores=2, memory="16MiB", extra=["--max-keys", "4096"]) as srv:
        yield srv


@pytest.fixture
def r(server):
    with Cache(server.target, core=0, timeout=20) as c:
        c.config_set("maxmemory", 0)
        c.config_set("maxmemory-policy", "noeviction")
        c.flushall()
        yield c


def test_a_pathological_pattern_answers_and_leaves_the_stripe_to_other_cores(server, r):
    key = b"a" * 200
    r.set(key, "v")
    got: dict[str, object] = {}

    def keys() -> None:
        try:
            got["keys"] = r.keys("*?*?*?*?*?*?*?b")
            got["scan"] = r.scan(0, match="*?*?*?*?*?*?*?b", count=1000)
        except Exception as e:  # noqa: BLE001 - reported below
            got["error"] = e

    t = threading.Thread(target=keys)
    t.start()
    with Cache(server.target, core=1, timeout=10) as other:  # another core, the same key's stripe
        for i in range(20):
            other.set(key, i)
            assert other.get(key) == str(i).encode()
    t.join(30)
    assert not t.is_alive() and "error" not in got, got
    assert got["keys"] == [] and got["scan"] == (0, [])
    assert r.keys("*?*?*?*?*?*?*?a") == [key] and r.ping() is True


def test_a_reversed_range_is_the_same_range(r):
    r.mset({"m": 1, "a": 2, "A": 3})
    cursor, keys = r.execute_command("SCAN", "0", "MATCH", "[z-a]")
    assert cursor == b"0" and sorted(keys) == [b"a", b"m"]
    assert r.execute_command("KEYS", "[b-a]") == [b"a"] and r.keys("[n-z]") == []


def test_config_get_with_a_reversed_range(r):
    assert r.config_get("[z-a]axmemory") == {"maxmemory": "0"}
    assert r.config_get("MAXMEMORY-P*") == {"maxmemory-policy": "noeviction"}  # CONFIG GET ignores case


@pytest.mark.parametrize("args", [
    ["INCRBY", "n", HUGE], ["DECRBY", "n", HUGE], ["INCRBY", "n", "-" + HUGE], ["SET", "n", "v", "EX", HUGE],
    ["SET", "n", "v", "PXAT", HUGE], ["EXPIRE", "n", HUGE], ["PEXPIREAT", "n", HUGE], ["EXPIREAT", "n", "-" + HUGE],
    ["SCAN", "0", "COUNT", HUGE], ["INCR", "huge"], ["DECR", "huge"], ["INCRBY", "huge", "1"],
    ["INCRBY", "n", "1" + "0" * 19], ["INCRBY", "n", "+1"], ["INCRBY", "n", " 1"], ["INCRBY", "n", "1_0"],
    ["INCRBY", "n", "01"], ["INCRBY", "n", "-0"], ["INCRBY", "n", "١"],
])
def test_integers_of_any_length_are_redis_not_an_integer(r, args):
    r.set("n", "5")
    r.set("huge", HUGE)
    with pytest.raises(InvalidArgument) as e:
        r.execute_command(*args)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and NOT_INT in str(e.value)
    assert r.get("n") == b"5" and r.ttl("n") == -1 and r.get("huge") == HUGE.encode()


@pytest.mark.parametrize("param, value, text", [
    ("maxmemory", HUGE, "argument must be a memory value"),
    ("maxmemory", HUGE + "mb", "argument must be a memory value"),
    ("lfu-log-factor", HUGE, "argument couldn't be parsed into an integer"),
    ("lfu-decay-time", "-" + HUGE, "argument couldn't be parsed into an integer"),
    ("maxmemory-samples", "1" + "0" * 30, "argument couldn't be parsed into an integer"),
])
def test_config_set_of_a_huge_integer_is_invalid_argument(r, param, value, text):
    before = r.config_get("*")
    with pytest.raises(InvalidArgument, match=text):
        r.config_set(param, value)
    assert r.config_get("*") == before


def test_no_failure_aborts_a_pipeline(r):
    p = r.pipeline()
    p.set("a", 1).incrby("a", HUGE).incr("a").expire("a", HUGE).scan(0, count=HUGE).keys("[z-a]")
    p.config_set("maxmemory", HUGE).set("huge", HUGE).incr("huge").get("a")
    out = p.execute(raise_on_error=False)
    assert out[0] is True and out[2] == 2 and out[5] == [b"a"] and out[7] is True and out[9] == b"2"
    for i in (1, 3, 4, 6, 8):
        assert isinstance(out[i], InvalidArgument), (i, out[i])
    assert r.ping() is True


@pytest.mark.parametrize("args, want", [
    (["EXPIRE", "k", "100", "NX", "NX"], 1),  # Redis takes a flag twice
    (["EXPIRE", "k", "100", "GT", "GT"], 0),
    (["EXPIREAT", "k", "-9223372036854775"], 1),  # in the past: deleted, as Redis does
    (["EXPIRE", "k", "-9223372036854775"], 1),
    (["PEXPIRE", "k", "-9223372036854775808"], 1),
])
def test_expire_options_and_bounds_as_redis(r, args, want):
    r.set("k", "v")
    assert r.execute_command(*args) == want


@pytest.mark.parametrize("args, text", [
    (["EXPIRE", "k", "100", "FOO", "NX"], "ERR Unsupported option FOO"),
    (["EXPIRE", "k", "100", "NX", "BAR"], "ERR Unsupported option BAR"),
    (["EXPIRE", "k", "ten", "FOO"], "ERR Unsupported option FOO"),  # Redis looks at the options first
    (["EXPIREAT", "k", "-9223372036854776"], "ERR invalid expire time in 'expireat' command"),
    (["EXPIRE", "k", "9223372036854776"], "ERR invalid expire time in 'expire' command"),
])
def test_expire_errors_name_what_redis_names(r, args, text):
    r.set("k", "v")
    with pytest.raises(InvalidArgument) as e:
        r.execute_command(*args)
    assert str(e.value) == text and r.get("k") == b"v" and r.ttl("k") == -1


def test_many_long_patterns_in_one_command_are_refused_or_only_the_last_compiled(server, r):
    long = "*" + "[a-z]?" * 10_000  # 60 KB, under the one-pattern limit; compiling one takes about 0.1 s
    r.set("k", "v")
    with Cache(server.target, core=0, timeout=5) as c:  # 200 compiles would take 20 s
        args = ["SCAN", "0"] + ["MATCH", long + "x"] * 200 + ["MATCH", "k"]  # 12 MB: Redis keeps the last
        assert c.execute_command(*args) == [b"0", [b"k"]]
        with pytest.raises(InvalidArgument, match=r"CONFIG GET patterns of \d+ bytes in all"):
            c.execute_command("CONFIG", "GET", *[long + str(i) for i in range(200)])
        assert c.config_get("maxmemory") == {"maxmemory": "0"}


def test_info_names_each_section_once_however_often_it_is_asked_for(r):
    text = r.execute_command("INFO", *["memory"] * 5000, callback=lambda x: x)
    assert text.count(b"# Memory") == 1 and b"# Server" not in text
    both = r.execute_command("INFO", "memory", "all", "memory", callback=lambda x: x)
    assert both.count(b"# Memory") == 1 and both.count(b"# Server") == 1 and b"# Evictions" in both


@pytest.mark.parametrize("args, text", [
    (["lfu-log-factor", "5", "maxmemory-samples", "100"], "between 1 and 64"),
    (["maxmemory-samples", "10", "maxmemory-samples", "0"], "duplicate parameter"),
    (["maxmemory-policy", "allkeys-lru", "maxmemory", "1000gb"], "more than this machine's heap"),
])
def test_config_set_of_several_is_all_or_nothing(r, args, text):
    before = r.config_get("*")
    with pytest.raises(InvalidArgument, match=text):
        r.execute_command("CONFIG", "SET", *args)
    assert r.config_get("*") == before


@pytest.mark.parametrize("cursor", [HUGE, "-1", "+1", " 1", "1_0", "18446744073709551616"])
def test_a_cursor_that_is_no_64_bit_number_is_redis_invalid_cursor(r, cursor):
    with pytest.raises(InvalidArgument, match=r"^ERR invalid cursor$"):
        r.execute_command("SCAN", cursor)


def test_a_pathological_match_on_a_long_key_answers_within_the_deadline(server, r):
    # 1 MiB of 'a' against 16,000 [ab] and a 'c': every start matches 16,000 bytes and then fails,
    # 16 billion byte tests (about 18 s) were it matched to the end; the match budget refuses it first.
    key = b"a" * (1 << 20)
    pattern = b"*" + b"[ab]" * 16_000 + b"c*"
    r.set(key, "v")
    with Cache(server.target, core=0, timeout=5) as c:
        with pytest.raises(ResourceExhausted, match=r"step.*use SCAN"):
            c.keys(pattern)
        with pytest.raises(ResourceExhausted, match="step"):
            c.scan(0, match=pattern, count=1)
        assert c.keys(b"a*") == [key] and c.scan(0, match=b"*a", count=1000) == (0, [key])
        assert c.ping() is True


def test_a_failing_set_get_gives_back_the_reply_bytes_it_was_charged(machine):
    cmds = Commands(machine.keyspace(machine.heap(0)))
    value = b"x" * (1 << 20)
    cmds.execute([b"SET", b"k", value])
    cmds.execute([b"CONFIG", b"SET", b"maxmemory", b"1", b"maxmemory-policy", b"noeviction"])
    budget = ReplyBudget(limit=(1 << 20) + 4096)
    with pytest.raises(OOMError):
        execute_within(cmds, [b"SET", b"k", b"v", b"GET"], budget)
    assert budget.used == 0  # refused before it copied anything: nothing of it stays charged
    assert execute_within(cmds, [b"GET", b"k"], budget) == value


def test_a_pipeline_of_pathological_scans_answers_within_the_deadline(server, r):
    # Each SCAN alone stops at its own budget (~0.1 s); 100 of them in one message, under the core's
    # mutex, would hold it for 10 s or more without the message's shared budget.
    key = b"a" * (1 << 20)
    pattern = b"*" + b"[ab]" * 200 + b"c*"  # 1 MiB x 201 tests: 200 million, over one command's budget
    r.set(key, "v")
    with Cache(server.target, core=0, timeout=5) as c:
        p = c.pipeline()
        for _ in range(100):
            p.scan(0, match=pattern, count=1)
        out = p.execute(raise_on_error=False)
        assert len(out) == 100 and all(isinstance(x, ResourceExhausted) for x in out), out[:3]
        assert "pipeline message" in str(out[-1])
        assert c.scan(0, match=b"a*", count=1000) == (0, [key])
