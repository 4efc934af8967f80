"""The cache over gRPC, against a real server: commands, errors, limits, pipelines, INFO, the clients.

Keyspace semantics are tested in depth without RPC in test_keyspace.py; here every command
goes through memsim.v1.Cache as a user's program sends it, and the server's figures are
checked against what the test did.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from memsim.client import AsyncCache, Cache, FailedPrecondition, InvalidArgument, ResourceExhausted
from memsim.client.cache import parse_info
from tests.servers import running_server

pytestmark = pytest.mark.integration  # every test here but the INFO parser's uses the module's server

OOM = "OOM command not allowed when used memory > 'maxmemory'."


@pytest.fixture(scope="module")
def server():
    with running_server(cores=2, memory="16MiB", extra=["--max-keys", "20000"]) as srv:
        yield srv


@pytest.fixture
def r(server):
    with Cache(server.target, timeout=30) as c:
        c.config_set("maxmemory", 0)
        c.config_set("maxmemory-policy", "noeviction")
        c.flushall()
        c.config_resetstat()
        yield c


def test_strings_as_redis_py_returns_them(r):
    assert r.set("a", "1") is True and r.get("a") == b"1"
    assert r.set("a", "2", nx=True) is None and r.get("a") == b"1"
    assert r.set("missing", "x", xx=True) is None and r.exists("missing") == 0
    assert r.set("a", "3", xx=True, get=True) == b"1"
    assert r.getset("a", 4) == b"3"
    assert r.incr("a") == 5 and r.incrby("a", 10) == 15 and r.decr("a") == 14 and r.decrby("a", 4) == 10
    assert r.append("s", "ab") == 2 and r.append("s", "cd") == 4 and r.strlen("s") == 4 and r.get("s") == b"abcd"
    assert r.mset({"m1": 1, "m2": b"\x00\xff"}) is True
    assert r.mget("m1", "m2", "nope") == [b"1", b"\x00\xff", None]
    assert r.mget(["m1", "m2"]) == [b"1", b"\x00\xff"]
    assert r.getdel("m1") == b"1" and r.getdel("m1") is None
    assert r.delete("m2", "s", "nope") == 2
    assert r.dbsize() == 1 and r.type("a") == b"string" and r.type("nope") == b"none"
    assert r.ping() is True and r.echo("hi") == b"hi"
    assert r.execute_command("SET", "x", 1) is True and r.execute_command("GET", "x") == b"1"  # redis-py's callbacks
    assert r.keys("*") and sorted(r.keys("[ax]")) == [b"a", b"x"]
    sec, usec = r.time()
    assert abs(sec - time.time()) < 5 and 0 <= usec < 1_000_000


def test_expiry_commands(r):
    r.set("k", "v", ex=100)
    assert 99 <= r.ttl("k") <= 100 and 99_000 <= r.pttl("k") <= 100_000
    assert r.persist("k") is True and r.ttl("k") == -1 and r.persist("k") is False
    assert r.ttl("nope") == -2 and r.expire("nope", 10) is False
    assert r.expire("k", 50, nx=True) is True and r.expire("k", 80, nx=True) is False
    assert r.expire("k", 10, gt=True) is False and r.expire("k", 90, gt=True) is True
    assert r.pexpire("k", 200) is True and r.pttl("k") <= 200
    time.sleep(0.3)
    assert r.get("k") is None and r.exists("k") == 0  # lazily expired
    r.set("past", "v")
    assert r.expire("past", -1) is True and r.exists("past") == 0  # a time in the past deletes
    r.set("at", "v")
    assert r.expireat("at", int(time.time()) + 1000) is True and 990 <= r.ttl("at") <= 1000
    assert r.set("px", "v", px=50) is True
    time.sleep(0.1)
    assert r.get("px") is None
    assert r.info()["expired_keys"] >= 2


@pytest.mark.parametrize("args, text", [
    (["SET", "k"], "ERR wrong number of arguments for 'set' command"),
    (["SET", "k", "v", "NX", "XX"], "ERR syntax error"),
    (["SET", "k", "v", "EX", "0"], "ERR invalid expire time in 'set' command"),
    (["SET", "k", "v", "EX", "ten"], "ERR value is not an integer or out of range"),
    (["SET", "k", "v", "BOGUS"], "ERR syntax error"),
    (["INCR", "text"], "ERR value is not an integer or out of range"),
    (["INCRBY", "n", "1.5"], "ERR value is not an integer or out of range"),
    (["EXPIRE", "k", "10", "NX", "XX"], "ERR NX and XX, GT or LT options at the same time are not compatible"),
    (["NOSUCH", "a"], "ERR unknown command 'NOSUCH', with args beginning with: 'a'"),
    (["CONFIG", "SET", "maxmemory-policy", "lru-ish"], "argument(s) must be one of the following"),
    (["CONFIG", "SET", "no-such-param", "1"], "ERR Unknown option"),
    (["CONFIG", "SET", "maxmemory", "12 parsecs"], "must be a memory value"),
    (["SCAN", "x"], "ERR invalid cursor"),
    (["GET", ""], "bad key"),
])
def test_bad_input_is_invalid_argument_with_redis_text(r, args, text):
    r.set("text", "hello")
    with pytest.raises(InvalidArgument) as e:
        r.execute_command(*args)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and text in str(e.value)
    assert r.get("text") == b"hello" and r.dbsize() == 1  # nothing else changed


def test_noeviction_refuses_writes_with_redis_oom_text_and_reads_still_work(r):
    r.set("keep", "v")
    used = r.info()["used_memory"]
    r.config_set("maxmemory", used + 2000)
    with pytest.raises(ResourceExhausted) as e:
        for i in range(1000):
            r.set(f"k{i}", "x" * 100)
    assert str(e.value) == OOM and e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert r.get("keep") == b"v" and r.delete("keep") == 1  # reads and DEL still work
    info = r.info()
    assert info["used_memory"] <= used + 2000 and info["rejected_calls"] >= 1


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random", "exact-lru", "sieve", "s3fifo"])
def test_used_memory_never_above_maxmemory_after_a_write(r, policy):
    r.config_set("maxmemory-policy", policy)
    r.config_set("maxmemory", "200kb")
    limit = 200 * 1024
    for round_ in range(20):
        p = r.pipeline()
        for i in range(100):
            p.set(f"k{round_}:{i}", "v" * (50 + i))
        p.execute()
        assert r.info("memory")["used_memory"] <= limit
    info = r.info("all")
    assert info["evicted_keys"] > 0 and info[f"evicted_keys_{policy.replace('-', '_')}"] == info["evicted_keys"]
    assert info["maxmemory_policy"] == policy


def test_object_freq_and_idletime(r):
    r.set("k", "v")
    assert r.object("idletime", "k") == 0
    with pytest.raises(FailedPrecondition, match="An LFU maxmemory policy is not selected"):
        r.object("freq", "k")
    r.config_set("maxmemory-policy", "allkeys-lfu")
    r.set("f", "v")
    assert r.object("freq", "f") == 5  # LFU_INIT_VAL
    for _ in range(100):
        r.get("f")
    assert 5 < r.object("freq", "f") <= 20  # redis.conf's LFU table: 10 after 100 hits at lfu-log-factor 10
    with pytest.raises(FailedPrecondition, match="An LFU maxmemory policy is selected"):
        r.object("idletime", "f")
    assert r.object("freq", "nope") is None


def test_config_get_and_set(r):
    r.config_set("maxmemory", "1mb")
    r.config_set("maxmemory-samples", 10)
    got = r.config_get("maxmemory*")
    assert got["maxmemory"] == "1048576" and got["maxmemory-samples"] == "10"
    assert got["maxmemory-policy"] == "noeviction"
    assert r.config_get("lfu-*") == {"lfu-log-factor": "10", "lfu-decay-time": "1"}
    with pytest.raises(InvalidArgument, match="between 1 and 64"):
        r.config_set("maxmemory-samples", 0)
    assert r.config_get("maxmemory-samples")["maxmemory-samples"] == "10"


def test_info_counts_what_the_client_did(r):
    for i in range(10):
        r.set(f"k{i}", i)
    for i in range(15):
        r.get(f"k{i}")
    info = r.info()
    assert info["keyspace_hits"] == 10 and info["keyspace_misses"] == 5
    assert info["db0"] == {"keys": 10, "expires": 0, "avg_ttl": 0}
    assert info["total_commands_processed"] >= 25
    for name in ("used_memory", "used_memory_peak", "maxmemory", "maxmemory_policy", "mem_fragmentation_ratio",
                 "evicted_keys", "expired_keys", "instantaneous_ops_per_sec", "used_memory_rss"):
        assert name in info
    assert info["used_memory_peak"] >= info["used_memory"] > 10 * 48
    locks = r.info("keyspacelocks")
    assert len(locks) == 66 and all(v["acquisitions"] >= 0 for v in locks.values())
    assert sum(v["acquisitions"] for v in locks.values()) >= 25


def test_instantaneous_ops_per_sec_follows_the_load(r):
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        p = r.pipeline()
        for i in range(200):
            p.get(f"x{i}")
        p.execute()
    assert r.info()["instantaneous_ops_per_sec"] > 100


def test_pipeline_reports_each_failure_in_place(r):
    p = r.pipeline()
    p.set("a", 1).incr("a").execute_command("INCR", "a", "extra").get("a").incr("nope")
    out = p.execute(raise_on_error=False)
    assert out[:2] == [True, 2] and isinstance(out[2], InvalidArgument) and out[3:] == [b"2", 1]
    p.set("b", "x").incr("b")
    with pytest.raises(InvalidArgument, match="not an integer"):
        p.execute()
    assert r.get("b") == b"x"  # the rest of the pipeline ran
    assert r.pipeline().execute() == []


def test_large_pipeline_is_split_across_messages(r):
    p = r.pipeline()
    for i in range(12_000):  # more than the 10,000 commands one message may carry
        p.set(f"k{i}", i)
    assert all(x is True for x in p.execute())
    assert r.dbsize() == 12_000 and r.get("k11999") == b"11999"


def test_scan_iter_returns_every_key_once(r):
    keys = {f"user:{i}".encode() for i in range(500)} | {f"other:{i}".encode() for i in range(100)}
    r.mset({k: "v" for k in keys})
    assert sorted(r.scan_iter(count=50)) == sorted(keys)
    assert set(r.scan_iter(match="user:*")) == {k for k in keys if k.startswith(b"user:")}
    assert set(r.scan_iter(match="user:1?")) == {f"user:{i}".encode() for i in range(10, 20)}
    assert list(r.scan_iter(match="*", _type="hash")) == []


def test_msgpack_codec_and_decode_responses(server, r):
    with Cache(server.target, codec="msgpack") as m:
        m.set("obj", {"name": "ada", "tags": [1, 2, None]})
        assert m.get("obj") == {"name": "ada", "tags": [1, 2, None]}
        m.mset({"a": [1], "b": 2.5})
        assert m.mget("a", "b", "c") == [[1], 2.5, None]
    with Cache(server.target, decode_responses=True) as d:
        d.set("s", "héllo")
        assert d.get("s") == "héllo" and list(d.scan_iter(match="s")) == ["s"]
    with pytest.raises(InvalidArgument, match="codec"):
        Cache(server.target, codec="pickle")
    with pytest.raises(InvalidArgument, match="bool"):
        r.set("b", True)


def test_async_client_and_pipeline(server):
    async def go():
        async with AsyncCache(server.target) as a:
            await a.flushall()
            assert await a.set("k", "v") is True and await a.get("k") == b"v"
            p = a.pipeline()
            p.incr("n").incr("n").get("n")
            assert await p.execute() == [1, 2, b"2"]
            assert sorted([k async for k in a.scan_iter()]) == [b"k", b"n"]
            with pytest.raises(InvalidArgument):
                await a.incr("k")
            assert (await a.info())["db0"]["keys"] == 2

    asyncio.run(go())


def test_any_core_serves_any_key(server):
    caches = [Cache(server.target, core=c) for c in range(2)]
    try:
        caches[0].set("shared", "from core 0")
        assert caches[1].get("shared") == b"from core 0"
        caches[1].incr("count")
        caches[0].incr("count")
        assert caches[1].get("count") == b"2"
    finally:
        for c in caches:
            c.close()


def test_workers_survive_garbage_commands(server, r):
    garbage = [[b"\xff\xfe"], [b"SET", b"\x00" * 10, b"v", b"PX", b"-5"], [b"scan", b"99999999999999999999"],
               [b"MSET", b"a"], [b"config", b"get"], [b"OBJECT", b"HELP"], [b"EXPIRE", b"k", b"9" * 30],
               [b"INCRBY", b"n", b"9223372036854775808"]]
    for args in garbage:
        with pytest.raises(InvalidArgument):
            r.execute_command(*args)
    # nothing restarted, both cores still answer, and the heap is sound
    assert not server.alive_workers() or len(server.alive_workers()) == 2
    from memsim.client import Client
    with Client(server.target) as c:
        assert c.stats(check_heap=True).heap_problems == []


def test_info_parse_matches_redis_py_shapes():
    text = "# Memory\r\nused_memory:100\r\nratio:1.5\r\nname:allkeys-lru\r\ndb0:keys=3,expires=1,avg_ttl=0\r\n"
    assert parse_info(text) == {"used_memory": 100, "ratio": 1.5, "name": "allkeys-lru",
                                "db0": {"keys": 3, "expires": 1, "avg_ttl": 0}}


def test_redis_py_constructors_and_exception_names(server):
    from memsim.client import OutOfMemoryError, ResponseError

    host, port = server.target.rsplit(":", 1)
    for c in (Cache(host, int(port), db=0, socket_timeout=10), Cache(host=host, port=int(port)),
              Cache.from_url(f"redis://{host}:{port}/0"), Cache(server.target)):
        with c:
            assert c.ping() is True
    with pytest.raises(InvalidArgument, match="one database"):
        Cache(host, int(port), db=3)
    with Cache(server.target) as c:
        c.set("text", "x")
        with pytest.raises(ResponseError, match="not an integer"):
            c.incr("text")
        assert issubclass(OutOfMemoryError, ResponseError)
        p = c.pipeline()
        p.set("a", 1).incr("text")
        with pytest.raises(ResponseError, match=r"Command # 2 \(INCRBY text 1\) of pipeline caused error"):
            p.execute()
    with pytest.raises(ConnectionError):  # a closed client, or no server: the builtin, as with redis-py
        c.get("a")
    with Cache("127.0.0.1:1", timeout=2) as nobody, pytest.raises(ConnectionError):
        nobody.get("a")


def test_refused_big_values_and_huge_ttls_leave_nothing_behind(server, r):
    from memsim.client import Client

    with Client(server.target) as m:
        before = m.stats().memstats.HeapAlloc
        for _ in range(3):
            with pytest.raises(InvalidArgument, match="string exceeds maximum allowed size"):
                r.set("big", b"x" * (17 << 20))
        r.set("ten", b"y" * (10 << 20))
        with pytest.raises(InvalidArgument, match="string exceeds maximum allowed size"):
            r.append("ten", b"z" * (10 << 20))
        r.delete("ten")
        assert m.stats().memstats.HeapAlloc - before < 1 << 20  # nothing kept for the refused writes
    r.set("k", "v")
    for args in (["SET", "k", "v", "PX", "9223372036854775000"], ["SET", "k", "v", "EX", "9223372036854775"],
                 ["EXPIREAT", "k", "9223372036854775807"], ["PEXPIRE", "k", "9223372036854775000"]):
        with pytest.raises(InvalidArgument, match="invalid expire time"):
            r.execute_command(*args)
    assert r.get("k") == b"v" and r.ttl("k") == -1


def test_lowering_maxmemory_evicts_at_once(r):
    r.config_set("maxmemory-policy", "allkeys-lru")
    p = r.pipeline()
    for i in range(3000):
        p.set(f"k{i}", "v" * 200)
    p.execute()
    assert r.info()["used_memory"] > 400_000
    r.config_set("maxmemory", "200kb")  # evicts for up to tenacity's budget, the cron does the rest
    deadline = time.monotonic() + 60  # not a speed check: the cron runs late on a loaded 2-CPU host
    while r.info()["used_memory"] > 200 * 1024 and time.monotonic() < deadline:
        time.sleep(0.05)
    info = r.info()
    assert info["used_memory"] <= 200 * 1024 and info["evicted_keys"] > 0
    assert r.set("after", "v") is True  # writes go on, no OOM under an allkeys policy
    with pytest.raises(InvalidArgument, match="more than this machine's heap"):
        r.config_set("maxmemory", "1gb")
    with pytest.raises(InvalidArgument, match="argument 'maxmemory-samples'"):
        r.config_set("maxmemory-samples", 100)


def test_a_full_keyspace_evicts_under_an_allkeys_policy(server):
    with running_server(cores=1, memory="8MiB", extra=["--max-keys", "256"]) as small, Cache(small.target) as c:
        with pytest.raises(ResourceExhausted, match="--max-keys"):
            for i in range(400):
                c.set(f"k{i}", i)
        c.config_set("maxmemory-policy", "allkeys-lru")
        for i in range(400, 1000):
            assert c.set(f"k{i}", i) is True
        assert c.dbsize() <= 256 and c.info()["evicted_keys"] > 0 and c.get("k999") == b"999"
