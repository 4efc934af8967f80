"""Sharding without servers: the hash functions against published vectors, where each command's keys
go, how split replies are put back in order, and the failover state (client/hashring.py,
client/sharding.py, client/sharded.py's side_by_side)."""

from __future__ import annotations

import random

import pytest
from uhashring import HashRing

from memsim.client.errors import InvalidArgument, ServerDown, Unavailable
from memsim.client.hashring import JumpBuckets, KetamaRing, jump_hash, ketama_hash
from memsim.client.rpc import Unary
from memsim.client.sharded import At, side_by_side
from memsim.client.sharding import Shards, plan_command
from memsim.v1 import cache_pb2 as pb

SERVERS = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def keys(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [f"key:{rng.getrandbits(40)}".encode() for _ in range(n)]


# -- the hash functions ----------------------------------------------------------------------------

# (key, buckets, bucket): the reference vectors of dgryski/go-jump's jump_test.go, also ClickHouse's
# tests/queries/0_stateless/00580_consistent_hashing_functions.{sql,reference} (its jumpConsistentHash).
JUMP_VECTORS = [(1, 1, 0), (42, 57, 43), (256, 1024, 520), (0xDEAD10CC, 1, 0), (0xDEAD10CC, 666, 361),
                (16045690984833335023, 255, 237)]


@pytest.mark.parametrize("key, buckets, expected", JUMP_VECTORS)
def test_jump_hash_gives_the_reference_buckets(key, buckets, expected):
    assert jump_hash(key, buckets) == expected


def test_jump_hash_moves_only_the_keys_of_a_bucket_added_last():
    ks = list(range(5000))
    before = [jump_hash(k, 10) for k in ks]
    after = [jump_hash(k, 11) for k in ks]
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert all(a == 10 for _, a in moved)  # every key that moved went to the new bucket
    assert 300 < len(moved) < 620  # about 1/11 of them


# spymemcached's KetamaNodeLocatorTest (testLibKetamaCompat and testLibKetamaCompatTwo): libketama's
# placements. Five servers 127.0.0.1:10000..10004, and eight servers 10.0.1.1..8:11211.
SPY_FIVE = {"36": 2, "10037": 3, "22051": 1, "49044": 4}
SPY_EIGHT = {"0": 1, "233": 7, "466": 3, "699": 1, "932": 6, "1165": 2, "1398": 1, "1631": 6, "1864": 5,
             "2097": 3, "2330": 7, "2563": 3, "2796": 6, "3029": 1, "3262": 2, "3495": 3, "3728": 8, "3961": 4}


def test_ketama_places_keys_as_libketama_does():
    five = KetamaRing([f"127.0.0.1:{10000 + i}" for i in range(5)])
    assert {k: five.node(k.encode()) for k in SPY_FIVE} == {k: f"127.0.0.1:{10000 + i}" for k, i in SPY_FIVE.items()}
    eight = KetamaRing([f"10.0.1.{i}:11211" for i in range(1, 9)])
    assert {k: eight.node(k.encode()) for k in SPY_EIGHT} == {k: f"10.0.1.{i}:11211" for k, i in SPY_EIGHT.items()}


def test_ketama_agrees_with_uhashrings_own_ring():
    ring = HashRing(nodes=SERVERS, hash_fn="ketama")
    ours = KetamaRing(SERVERS)
    ks = keys(3000)
    assert [ours.node(k) for k in ks] == [ring.get_node(k.decode()) for k in ks]
    assert ketama_hash(b"36") == ring.hashi("36")


def test_removing_a_server_moves_its_keys_only_under_ketama_but_others_too_under_jump():
    ks = keys(3000)
    for kind, moves_others in ((KetamaRing, False), (JumpBuckets, True)):
        ring = kind(SERVERS)
        before = {k: ring.node(k) for k in ks}
        ring.remove(SERVERS[1])
        after = {k: ring.node(k) for k in ks}
        assert all(after[k] != SERVERS[1] for k in ks)
        others_moved = [k for k in ks if before[k] != SERVERS[1] and after[k] != before[k]]
        assert bool(others_moved) is moves_others, kind.__name__
        ring.add(SERVERS[1])
        assert {k: ring.node(k) for k in ks} == before  # back as it was


def test_bytes_keys_that_are_not_utf8_are_hashed_as_their_bytes():
    ring = KetamaRing(SERVERS)
    assert ring.node(b"\xff\xfe") == ring.node(b"\xff\xfe")
    assert ketama_hash(b"\xff\xfe") != ketama_hash("\xff\xfe".encode())


# -- where a command's keys go -----------------------------------------------------------------------

def test_mget_is_split_per_server_and_its_replies_come_back_in_the_callers_order():
    shards = Shards(SERVERS)
    ks = keys(40)
    plan = plan_command((b"MGET", *ks), shards)
    assert len(plan.parts) == 3 and {p.server for p in plan.parts} == set(SERVERS)
    for part in plan.parts:
        assert all(shards.home(k) == part.server for k in part.args[1:])
    replies = [[b"v-" + k for k in part.args[1:]] for part in plan.parts]  # each server answers its own keys
    assert plan.merge(plan.parts, replies) == [b"v-" + k for k in ks]


def test_mset_keeps_each_key_with_its_value_and_counting_commands_sum():
    shards = Shards(SERVERS)
    ks = keys(12)
    plan = plan_command((b"MSET", *[x for k in ks for x in (k, b"v-" + k)]), shards)
    for part in plan.parts:
        pairs = list(zip(part.args[1::2], part.args[2::2], strict=True))
        assert all(v == b"v-" + k and shards.home(k) == part.server for k, v in pairs)
    dels = plan_command((b"DEL", *ks), shards)
    assert dels.merge(dels.parts, [len(p.args) - 1 for p in dels.parts]) == 12


def test_commands_without_keys_go_everywhere_or_are_refused():
    shards = Shards(SERVERS)
    assert [p.server for p in plan_command((b"DBSIZE",), shards).parts] == SERVERS
    assert plan_command((b"INFO",), shards).per_server
    assert plan_command((b"CONFIG", b"GET", b"maxmemory"), shards).per_server
    assert not plan_command((b"CONFIG", b"SET", b"maxmemory", b"0"), shards).per_server
    assert len(plan_command((b"ECHO", b"hi"), shards).parts) == 1
    with pytest.raises(InvalidArgument, match="TIME: each server has its own clock"):
        plan_command((b"TIME",), shards)
    with pytest.raises(InvalidArgument, match="HGET: a sharded cache does not know"):
        plan_command((b"HGET", b"h", b"f"), shards)
    assert len(plan_command((b"GET",), shards).parts) == 1  # no key: one server gives the arity error


def test_scan_walks_the_servers_one_after_the_other_and_ends_at_zero():
    shards = Shards(SERVERS)
    plan = plan_command((b"SCAN", b"0", b"COUNT", b"10"), shards)
    assert [(p.server, p.args) for p in plan.parts] == [(SERVERS[0], (b"SCAN", b"0", b"COUNT", b"10"))]
    cursor = int(plan.merge(plan.parts, [[b"5", [b"a"]]])[0])  # server 0 is not done: its cursor 5
    plan = plan_command((b"SCAN", str(cursor).encode()), shards)
    assert [(p.server, p.args[1]) for p in plan.parts] == [(SERVERS[0], b"5")]
    cursor = int(plan.merge(plan.parts, [[b"0", []]])[0])  # server 0 done: server 1 from its start
    plan = plan_command((b"SCAN", str(cursor).encode()), shards)
    assert [(p.server, p.args[1]) for p in plan.parts] == [(SERVERS[1], b"0")]
    plan = plan_command((b"SCAN", b"2"), shards)
    assert plan.merge(plan.parts, [[b"0", [b"z"]]]) == [b"0", [b"z"]]  # the last server done: the end


# -- failover ----------------------------------------------------------------------------------------

def test_strict_mode_refuses_only_the_down_servers_keys_until_it_answers_a_retry():
    clock = Clock()
    shards = Shards(SERVERS, failover="strict", max_failures=2, retry_timeout=5.0, clock=clock)
    ks = keys(300)
    b = SERVERS[1]
    shards.failed(b, Unavailable("refused"))
    assert not shards.is_down(b)
    shards.answered(b)  # an answer between failures: not two in a row
    shards.failed(b, Unavailable("refused"))
    assert not shards.is_down(b)
    shards.failed(b, Unavailable("refused"))
    assert shards.is_down(b) and shards.stats().down == (b,)
    for k in ks:
        if shards.home(k) == b:
            with pytest.raises(ServerDown, match=f"{b} is down .*strict") as e:
                shards.route(k)
            assert e.value.server == b
        else:
            assert shards.route(k) == shards.home(k)
    with pytest.raises(ServerDown):
        shards.serving()  # DBSIZE, KEYS ... would be partial
    assert shards.due() == []
    clock.now = 5.0
    assert shards.due() == [b]
    assert shards.due() == []  # handed out once per retry_timeout
    shards.answered(b)
    st = shards.stats()
    assert (st.failures, st.downs, st.readds, st.moved, st.down) == (3, 1, 1, 0, ())


def test_remove_mode_sends_the_down_servers_keys_to_the_next_server_and_counts_them():
    clock = Clock()
    shards = Shards(SERVERS, failover="remove", max_failures=1, retry_timeout=5.0, clock=clock)
    ks = keys(300)
    b = SERVERS[1]
    mine = [k for k in ks if shards.home(k) == b]
    shards.failed(b, Unavailable("refused"))
    without = KetamaRing([SERVERS[0], SERVERS[2]])
    assert [shards.route(k) for k in ks] == [without.node(k) for k in ks]
    assert [shards.route(k) for k in ks if k not in mine] == [shards.home(k) for k in ks if k not in mine]
    st = shards.stats()
    assert st.moved == len(mine) and {s.server: s.moved_away for s in st.servers} == {
        SERVERS[0]: 0, b: len(mine), SERVERS[2]: 0}
    assert shards.serving() == [SERVERS[0], SERVERS[2]]
    clock.now = 5.0
    assert shards.due() == [b]
    shards.failed(b, Unavailable("still refused"))  # the retry failed: the next one retry_timeout later
    clock.now = 9.0
    assert shards.due() == []
    clock.now = 10.0
    assert shards.due() == [b]
    shards.answered(b)
    assert [shards.route(k) for k in ks] == [shards.home(k) for k in ks]
    assert shards.stats().moved == len(mine)  # back home: no more moves


def test_remove_mode_with_every_server_down_says_so():
    shards = Shards(SERVERS, failover="remove", max_failures=1)
    for s in SERVERS:
        shards.failed(s, Unavailable("refused"))
    for ask in (lambda: shards.route(b"k"), shards.serving, shards.any_up):
        with pytest.raises(ServerDown, match="every server of this sharded cache is down"):
            ask()


def test_remove_mode_under_jump_rehashes_over_the_servers_left():
    shards = Shards(SERVERS, hashing="jump", failover="remove", max_failures=1)
    ks = keys(300)
    shards.failed(SERVERS[0], Unavailable("refused"))
    left = JumpBuckets(SERVERS[1:])
    assert [shards.route(k) for k in ks] == [left.node(k) for k in ks]
    assert shards.stats().servers[1].moved_away > 0  # keys of a server that did not fail moved too


def test_a_sharded_cache_refuses_bad_arguments():
    with pytest.raises(InvalidArgument, match="failover='sometimes'"):
        Shards(SERVERS, failover="sometimes")
    with pytest.raises(InvalidArgument, match="hashing='modulo'"):
        Shards(SERVERS, hashing="modulo")
    with pytest.raises(InvalidArgument, match="each server once"):
        Shards([SERVERS[0], SERVERS[0]])
    with pytest.raises(InvalidArgument, match="at least one server"):
        Shards([])


# -- calls to several servers at once ----------------------------------------------------------------

def test_side_by_side_sends_each_servers_next_call_together_and_keeps_each_outcome_in_its_place():
    def body(name: str, calls: int):
        out = []
        for i in range(calls):
            try:
                out.append((yield Unary("Command", pb.CommandRequest(args=[f"{name}{i}".encode()]))))
            except Unavailable as e:
                out.append(f"failed: {e}")
        if name == "c":
            raise ValueError("c gives up")
        return out

    rounds: list[list[str]] = []

    def perform(calls: list[At]) -> list[object]:
        rounds.append([c.server for c in calls])
        return [Unavailable("gone") if c.server == "b" else c.op.request.args[0] for c in calls]

    fan = side_by_side([("a", body("a", 2)), ("b", body("b", 1)), ("c", body("c", 1))])
    try:
        calls = next(fan)
        while True:
            calls = fan.send(perform(calls))
    except StopIteration as stop:
        a, b, c = stop.value
    assert rounds == [["a", "b", "c"], ["a"]]
    assert a == [b"a0", b"a1"] and b == ["failed: gone"]
    assert isinstance(c, ValueError)


def test_a_command_whose_every_part_was_dropped_raises_the_failure_not_an_empty_merge():
    """failover='remove', max_failures=1, and no server listening (ports where nothing does): each
    server-wide part fails, its server leaves the ring, and its part is dropped. With every part
    dropped DBSIZE was 0 and ECHO an IndexError; the failure itself is the answer."""
    from memsim.client import ShardedCache

    nowhere = ["127.0.0.1:1", "127.0.0.1:9"]
    for ask in ("dbsize", "echo", "pipeline"):
        with ShardedCache(nowhere, failover="remove", max_failures=1, timeout=5) as r:
            if ask == "pipeline":
                p = r.pipeline()
                p.dbsize().echo("x")
                replies = p.execute(raise_on_error=False)
                assert len(replies) == 2 and all(isinstance(e, Unavailable) for e in replies), replies
            else:
                with pytest.raises(Unavailable):
                    getattr(r, ask)(*(["hi"] if ask == "echo" else []))


def test_a_closed_sharded_cache_refuses_a_command_over_several_servers_as_it_does_one_over_one():
    """After close() the thread pool is shut down: a command split over servers raised RuntimeError
    ('cannot schedule new futures after shutdown'); now each server's closed client says ClientClosed."""
    from memsim.client import ShardedCache
    from memsim.client.errors import ClientClosed

    r = ShardedCache(["127.0.0.1:1", "127.0.0.1:9"], timeout=5)
    with pytest.raises(Unavailable):
        r.mget([f"k{i}" for i in range(20)])  # over both servers: the pool is made
    r.close()
    for ask in (lambda: r.get("a"), lambda: r.mget([f"k{i}" for i in range(20)]), r.dbsize):
        with pytest.raises(ClientClosed):
            ask()
