"""Redis's approximated eviction (sim/cache/evict.py) against Redis's own figures.

The figures are Redis's: the LFU counter table of redis.conf's LFU section (the counter after N
hits for each lfu-log-factor), the 24-bit LRU clock in seconds (src/server.h LRU_BITS and
LRU_CLOCK_RESOLUTION), the 16-entry eviction pool (src/evict.c EVPOOL_SIZE), and the accuracy
ordering of redis-cli --lru-test: samples 1 is random eviction, 5 is a couple of points under
exact LRU, 10 closer still, LFU above LRU.
"""

from __future__ import annotations

import random
from collections import OrderedDict

import pytest

from memsim.sim.cache.evict import (
    EVPOOL_SIZE,
    LFU_INIT_VAL,
    LRU_CLOCK_MAX,
    EvictionPool,
    estimate_idle_ms,
    lfu_decr_and_return,
    lfu_log_incr,
    lfu_pack,
    lfu_touch,
    lru_clock,
)
from memsim.sim.cache.lrutest import SampledCache, lru_test_trace, power_law_rand


def test_lru_clock_is_24_bits_of_seconds_and_idle_survives_one_wrap():
    assert lru_clock(5_500) == 5
    assert lru_clock((LRU_CLOCK_MAX + 1) * 1000) == 0  # wraps after 2^24 s, about 194 days
    assert estimate_idle_ms(100, 130) == 30_000
    assert estimate_idle_ms(LRU_CLOCK_MAX - 10, 5) == 15_000  # the clock wrapped once


def counter_after(hits: int, factor: int, seeds: range) -> float:
    total = 0
    for seed in seeds:
        rng = random.Random(seed)
        c = LFU_INIT_VAL
        for _ in range(hits):
            c = lfu_log_incr(c, factor, rng.random())
        total += c
    return total / len(seeds)


@pytest.mark.parametrize("factor, hits, redis_table, tolerance", [
    (10, 100, 10, 2.5), (10, 1000, 18, 4), (10, 100_000, 142, 12),
    (1, 100, 18, 4), (1, 1000, 49, 8),
    (100, 100, 8, 2.5), (100, 1000, 11, 2.5), (100, 100_000, 49, 5),
])
def test_lfu_counter_grows_like_redis_table(factor, hits, redis_table, tolerance):
    # Redis's table is one run of a random process; the mean of a few seeds must be near it.
    assert abs(counter_after(hits, factor, range(4)) - redis_table) <= tolerance


def test_lfu_counter_saturates_at_255_and_new_keys_start_at_5():
    assert counter_after(1_000_000, 10, range(1)) == 255
    assert lfu_log_incr(255, 10, 0.0) == 255
    assert lfu_log_incr(LFU_INIT_VAL, 10, 0.999) == LFU_INIT_VAL + 1  # at or below 5: always


def test_lfu_decays_one_per_decay_time_and_handles_minute_wrap():
    f = lfu_pack(100, 20)
    assert lfu_decr_and_return(f, 1, 103) == 17
    assert lfu_decr_and_return(f, 2, 103) == 19
    assert lfu_decr_and_return(f, 0, 10_000) == 20  # decay switched off
    assert lfu_decr_and_return(f, 1, 100 + 500) == 0
    assert lfu_decr_and_return(lfu_pack(0xFFFF - 2, 20), 1, 1) == 17  # 16-bit minutes wrapped
    assert lfu_touch(f, 10, 1, 103, 0.0) == lfu_pack(103, 18)  # decay to 17, then +1, stamped now


def test_pool_keeps_the_16_best_in_order_and_drops_the_worst():
    pool = EvictionPool()
    pool.populate((f"k{i}", i) for i in range(20))
    assert len(pool) == EVPOOL_SIZE
    assert pool.scores == list(range(4, 20))  # 0..3 were pushed out by better samples
    pool.populate([("low", 1)])  # not better than anything in a full pool
    assert "low" not in pool.keys
    pool.populate([("mid", 10)])
    assert pool.scores[0] == 5 and "mid" in pool.keys and len(pool) == EVPOOL_SIZE


def test_pool_pops_best_existing_and_discards_stale_entries():
    pool = EvictionPool()
    pool.populate([("a", 1), ("b", 50), ("c", 30), ("gone", 99)])
    assert pool.pop_best(lambda k: k != "gone") == "b"
    assert pool.keys == ["a", "c"]  # "gone" was discarded on the way
    assert pool.pop_best(lambda k: False) is None and len(pool) == 0


def test_power_law_is_the_80_20_rule():
    rng = random.Random(3)
    draws = [power_law_rand(rng, 1, 10_000, 6.2) for _ in range(50_000)]
    assert min(draws) >= 1 and max(draws) <= 10_000
    share = sum(1 for d in draws if d <= 2_000) / len(draws)
    assert 0.75 <= share <= 0.85


def exact_lru_hit_ratio(trace, capacity: int) -> float:
    d: OrderedDict = OrderedDict()
    hits = 0
    for k, write in trace:
        if k in d:
            d.move_to_end(k)
            hits += 1
        elif write:
            if len(d) >= capacity:
                d.popitem(last=False)
            d[k] = True
    return hits / len(trace)


def sampled_hit_ratio(trace, capacity: int, policy: str, samples: int) -> float:
    c = SampledCache(capacity, policy, samples=samples, seed=11)
    for k, write in trace:
        c.access(k, write)
    assert len(c.keys) <= capacity and c.evictions > 0
    return c.hits / len(trace)


def test_sampled_lru_tracks_exact_lru_on_the_lru_test_workload():
    # redis-cli --lru-test scaled down 50x: 20k keys, cache of 22 %, 250 SET + 250 GET cycles.
    trace = lru_test_trace(20_000, cycles=400, seed=5)
    cap = 4_400
    exact = exact_lru_hit_ratio(trace, cap)
    s1 = sampled_hit_ratio(trace, cap, "allkeys-lru", 1)
    s5 = sampled_hit_ratio(trace, cap, "allkeys-lru", 5)
    s10 = sampled_hit_ratio(trace, cap, "allkeys-lru", 10)
    rnd = sampled_hit_ratio(trace, cap, "allkeys-random", 5)
    lfu = sampled_hit_ratio(trace, cap, "allkeys-lfu", 5)
    assert s1 < s5 <= s10 + 0.003
    assert exact - 0.03 <= s5 <= exact + 0.005  # at the lru-test's full 1M keys: 72.3 % hits against exact LRU's 74.4 %
    assert exact - 0.015 <= s10 <= exact + 0.005
    assert abs(s1 - rnd) < 0.015  # one sample is random eviction
    assert lfu > s5  # on a stable 80/20 popularity, frequency beats recency
