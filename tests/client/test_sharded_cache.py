"""ShardedCache and AsyncShardedCache (client/sharded.py, client/sharded_aio.py) over three real servers:
each key on the server its hash names, commands split and merged, pipelines, and failover when one
server is stopped (SIGTERM to its supervisor) mid-run and later started again on its port."""

from __future__ import annotations

import asyncio

import pytest
from uhashring import HashRing

from memsim.client import AsyncShardedCache, Cache, InvalidArgument, ServerDown, ShardedCache, Unavailable
from memsim.client.hashring import JumpBuckets, KetamaRing
from tests.servers import running_servers

pytestmark = pytest.mark.integration

KEYS = [f"k{i}" for i in range(60)]


class Clock:
    """The sharded client's clock for retry_timeout, moved by the test (the servers keep real time)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fill(r: ShardedCache, victim: str) -> tuple[list[str], list[str]]:
    """Every key written: those on `victim`, and the others."""
    r.mset({k: f"v-{k}" for k in KEYS})
    lost = [k for k in KEYS if r.get_node(k) == victim]
    kept = [k for k in KEYS if k not in lost]
    assert len(lost) > 3 and kept
    return lost, kept


@pytest.fixture(scope="module")
def servers():
    with running_servers(3, cores=1, memory="16MiB", extra=["--max-keys", "1024"]) as srvs:
        yield srvs


@pytest.fixture
def targets(servers):
    ts = [s.target for s in servers]
    with ShardedCache(ts) as r:
        r.flushall()
    return ts


@pytest.fixture
def direct(targets):
    """Each server's own client, to see where a key really is."""
    clients = {t: Cache(target=t) for t in targets}
    yield clients
    for c in clients.values():
        c.close()


@pytest.mark.parametrize("hashing", ["ketama", "jump"])
def test_each_key_lives_on_the_server_its_hash_names(targets, direct, hashing):
    ring = KetamaRing(targets) if hashing == "ketama" else JumpBuckets(targets)
    with ShardedCache(targets, hashing=hashing) as r:
        for k in KEYS:
            assert r.set(k, f"v-{k}") is True
        for k in KEYS:
            home = r.get_node(k)
            assert home == ring.node(k.encode())
            assert {t: c.get(k) for t, c in direct.items()} == {t: f"v-{k}".encode() if t == home else None
                                                                for t in targets}
            assert r.get(k) == f"v-{k}".encode()
        assert all(c.dbsize() > 0 for c in direct.values()) and r.dbsize() == len(KEYS)
    if hashing == "ketama":  # the ring memcached clients build over the same servers agrees
        assert all(HashRing(nodes=targets, hash_fn="ketama").get_node(k) == r.get_node(k) for k in KEYS)


def test_multi_key_commands_and_pipelines_are_split_per_server_and_answered_in_order(targets, direct):
    with ShardedCache(targets, decode_responses=True) as r:
        assert r.mset({k: f"v-{k}" for k in KEYS}) is True
        asked = [*KEYS[::-3], "missing", KEYS[1]]
        assert r.mget(asked) == [None if k == "missing" else f"v-{k}" for k in asked]
        assert r.exists(KEYS[0], KEYS[1], "missing", KEYS[0]) == 3
        assert r.delete(KEYS[0], KEYS[1], KEYS[2], "missing") == 3
        assert all(c.get(k) is None for c in direct.values() for k in KEYS[:3])
        with r.pipeline() as p:
            p.set("n", 1).incr("n").get(KEYS[5]).mget(KEYS[3], "missing", KEYS[4])
            p.incr(KEYS[6]).delete(KEYS[7], KEYS[8])
            replies = p.execute(raise_on_error=False)
        assert replies[:4] == [True, 2, f"v-{KEYS[5]}", [f"v-{KEYS[3]}", None, f"v-{KEYS[4]}"]]
        assert isinstance(replies[4], InvalidArgument) and str(replies[4]).startswith(f"Command # 5 (INCRBY {KEYS[6]}")
        assert replies[5] == 2
        p = r.pipeline()
        p.get(KEYS[9]).incr(KEYS[10])
        with pytest.raises(InvalidArgument, match=r"Command # 2 .* not an integer"):
            p.execute()


def test_commands_without_keys_go_to_every_server_and_are_merged(targets, direct):
    with ShardedCache(targets) as r:
        r.mset({k: k for k in KEYS})
        assert r.dbsize() == len(KEYS) == sum(c.dbsize() for c in direct.values())
        assert sorted(r.keys("*")) == sorted(k.encode() for k in KEYS)
        scanned = list(r.scan_iter(count=7))
        assert sorted(scanned) == sorted(k.encode() for k in KEYS)  # every key once, over all three
        assert sorted(r.scan_iter(match="k1*")) == sorted(k.encode() for k in KEYS if k.startswith("k1"))
        info = r.info("keyspace")
        assert set(info) == set(targets) and sum(i["db0"]["keys"] for i in info.values()) == len(KEYS)
        assert r.config_set("maxmemory-policy", "allkeys-lru") is True
        assert r.config_get("maxmemory-policy") == {t: {"maxmemory-policy": "allkeys-lru"} for t in targets}
        assert r.ping() is True and r.echo("hi") == b"hi"
        with pytest.raises(InvalidArgument, match="TIME: each server has its own clock"):
            r.time()
        assert r.client(targets[0]).time()[0] > 0
        assert r.flushall() is True and r.dbsize() == 0


def test_the_asyncio_client_routes_and_merges_the_same_way(targets, direct):
    async def run() -> None:
        async with AsyncShardedCache(targets) as r:
            assert await r.mset({k: f"v-{k}" for k in KEYS}) is True
            assert await r.mget(KEYS) == [f"v-{k}".encode() for k in KEYS]
            assert await r.dbsize() == len(KEYS)
            p = r.pipeline()
            p.incr("n").get(KEYS[0]).delete(KEYS[1], KEYS[2])
            assert await p.execute() == [1, f"v-{KEYS[0]}".encode(), 2]
            assert sorted([k async for k in r.scan_iter()]) == sorted(k.encode() for k in [*KEYS[3:], KEYS[0], "n"])
            assert r.get_node(KEYS[0]) == KetamaRing(targets).node(KEYS[0].encode())

    asyncio.run(run())
    assert direct[KetamaRing(targets).node(b"n")].get("n") == b"1"


def test_strict_failover_refuses_the_stopped_servers_keys_and_only_them_until_it_is_back(servers, targets):
    clock = Clock()
    victim = servers[1]
    with ShardedCache(targets, failover="strict", max_failures=2, retry_timeout=30.0, clock=clock) as r:
        lost, kept = fill(r, victim.target)
        assert victim.stop() == 0 and not victim.segments_left()  # SIGTERM to its supervisor
        raised = []
        for k in lost:
            with pytest.raises(Unavailable) as e:
                r.get(k)
            raised.append(type(e.value))
        assert raised[:2] == [Unavailable, Unavailable]  # two calls failed: counted
        assert set(raised[2:]) == {ServerDown}  # then down: refused without a call
        assert [r.get(k) for k in kept] == [f"v-{k}".encode() for k in kept]  # the others' keys are served
        assert r.mget(kept) == [f"v-{k}".encode() for k in kept]
        with pytest.raises(ServerDown, match=f"{victim.target} is down"):
            r.mget(KEYS)
        with pytest.raises(ServerDown):
            r.dbsize()  # a count without one server would be wrong
        with r.pipeline() as p:
            p.get(kept[0]).get(lost[0]).set(kept[1], "x")
            got = p.execute(raise_on_error=False)
        assert got[0] == f"v-{kept[0]}".encode() and isinstance(got[1], ServerDown) and got[2] is True
        st = r.stats()
        assert (st.failures, st.downs, st.readds, st.moved, st.down) == (2, 1, 0, 0, (victim.target,))
        clock.now = 30.0  # its retry is due, but it is still stopped: the retry fails
        with pytest.raises(ServerDown):
            r.get(lost[0])
        assert r.stats().failures == 3
        victim.start()  # a new server on the same port (a new machine: it holds nothing)
        clock.now = 45.0
        with pytest.raises(ServerDown):
            r.get(lost[0])  # the next retry is 30 s after the failed one
        clock.now = 60.0
        assert r.get(lost[0]) is None  # retried, answered, back in: its keys go to it again
        assert r.set(lost[0], "again") is True and r.client(victim.target).get(lost[0]) == b"again"
        st = r.stats()
        assert (st.downs, st.readds, st.down) == (1, 1, ())


def test_remove_failover_moves_the_stopped_servers_keys_to_the_next_server_and_back(servers, targets, direct):
    clock = Clock()
    victim = servers[2]
    with ShardedCache(targets, failover="remove", max_failures=2, retry_timeout=30.0, clock=clock) as r:
        lost, kept = fill(r, victim.target)
        assert victim.stop() == 0
        with pytest.raises(Unavailable):
            r.get(lost[0])  # the first failure is counted and raised
        with r.pipeline() as p:  # the second marks the server down: its part goes at once to the next server
            p.get(lost[1]).get(kept[0])
            assert p.execute() == [None, f"v-{kept[0]}".encode()]
        assert r.stats().down == (victim.target,)
        assert r.get(lost[2]) is None  # served (a miss) by the next server, without a call to the stopped one
        assert [r.get(k) for k in kept] == [f"v-{k}".encode() for k in kept]  # nobody else's key moved
        left = KetamaRing([t for t in targets if t != victim.target])
        assert r.mset({k: f"w-{k}" for k in lost}) is True  # written after the move ...
        assert r.mget(KEYS) == [f"{'w' if k in lost else 'v'}-{k}".encode() for k in KEYS]  # ... and read back
        for k in lost:
            assert r.get_node(k) == left.node(k.encode())
            assert direct[left.node(k.encode())].get(k) == f"w-{k}".encode()
        assert r.dbsize() == len(KEYS)  # the two servers up: their own keys and the moved ones
        st = r.stats()
        assert st.moved == 2 * len(lost) + 2 and {s.server: s.moved_away for s in st.servers} == {
            t: st.moved if t == victim.target else 0 for t in targets}
        victim.start()
        clock.now = 30.0
        assert r.get(lost[0]) is None  # back in: the key goes home, to a new empty machine
        r.set(lost[0], "home")
        assert r.client(victim.target).get(lost[0]) == b"home"
        st2 = r.stats()
        assert (st2.downs, st2.readds, st2.down, st2.moved) == (1, 1, (), st.moved)


def test_the_asyncio_client_fails_over_and_re_adds_the_same_way(servers, targets):
    clock = Clock()
    victim = servers[0]

    async def run() -> None:
        async with AsyncShardedCache(targets, failover="remove", max_failures=1, retry_timeout=5.0, clock=clock) as r:
            await r.mset({k: f"v-{k}" for k in KEYS})
            lost = [k for k in KEYS if r.get_node(k) == victim.target]
            kept = [k for k in KEYS if k not in lost]
            assert victim.stop() == 0
            assert await r.get(lost[0]) is None  # the first failure marks it down: sent to the next server
            assert await r.mget(kept) == [f"v-{k}".encode() for k in kept]
            assert (r.stats().downs, r.stats().moved) == (1, 1)
            victim.start()
            clock.now = 5.0
            await r.set(lost[0], "home")  # retried on a new channel, back in, and the key goes home
            assert await r.client(victim.target).get(lost[0]) == b"home"
            assert (r.stats().readds, r.stats().down) == (1, ())

    asyncio.run(run())
