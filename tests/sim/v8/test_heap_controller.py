"""V8's heap growing controller (sim/v8/heap_controller.py): the growing factor's formula, its special
cases and clamps, MaxGrowingFactor's interpolation, and the old generation's limit."""

from __future__ import annotations

import pytest

from memsim.sim.errors import InvalidArgument
from memsim.sim.v8.heap_controller import (
    K_MAX_SIZE,
    K_MIN_GROWING_FACTOR,
    K_MIN_SIZE,
    MB,
    heap_growing_factor,
    max_growing_factor,
    old_generation_allocation_limit,
)

MU = 0.97


def formula(r: float) -> float:
    return r * (1 - MU) / (r * (1 - MU) - MU)


@pytest.mark.parametrize("gc_speed, mutator_speed", [(100_000, 1_000), (50_000, 1_000), (200, 5), (1e6, 3e3)])
def test_factor_is_v8s_formula_inside_the_clamps(gc_speed, mutator_speed):
    f = heap_growing_factor(gc_speed, mutator_speed, 4.0)
    assert f == pytest.approx(min(4.0, max(K_MIN_GROWING_FACTOR, formula(gc_speed / mutator_speed))))
    assert K_MIN_GROWING_FACTOR <= f <= 4.0


def test_factor_values():
    assert heap_growing_factor(100, 1, 4.0) == pytest.approx(3 / 2.03)  # R = 100: 1.478
    assert heap_growing_factor(100, 1, 1.3) == 1.3  # above the max: a >= b * max
    assert heap_growing_factor(10_000, 1, 4.0) == K_MIN_GROWING_FACTOR  # a fast GC: 1.0033 -> 1.1
    assert heap_growing_factor(30, 1, 4.0) == 4.0  # R(1-MU) < MU: b < 0, no factor reaches the target
    assert heap_growing_factor(0, 1000, 2.5) == 2.5  # nothing measured yet: V8 returns max_factor
    assert heap_growing_factor(1000, 0, 2.5) == 2.5
    # Just above the pole R = MU / (1 - MU) = 32.33 the formula exceeds any max: V8 takes the max.
    assert heap_growing_factor(33, 1, 4.0) == 4.0
    assert heap_growing_factor(40, 1, 4.0) == 4.0  # formula 5.22, over the max
    assert heap_growing_factor(60, 1, 4.0) == pytest.approx(formula(60))  # 1.8 / 0.83 = 2.17
    with pytest.raises(InvalidArgument):
        heap_growing_factor(1, 1, 5.0)
    with pytest.raises(InvalidArgument):
        heap_growing_factor(-1, 1, 2.0)


def test_max_growing_factor_interpolates_between_1_3_and_4():
    assert max_growing_factor(8 * MB) == 1.3  # every heap up to kMinSize
    assert max_growing_factor(K_MIN_SIZE) == 1.3
    assert max_growing_factor((K_MIN_SIZE + K_MAX_SIZE) // 2) == pytest.approx(1.65)
    assert max_growing_factor(K_MAX_SIZE - 1) == pytest.approx(2.0, abs=1e-6)
    assert max_growing_factor(K_MAX_SIZE) == 4.0  # kHighFactor from kMaxSize on
    assert (K_MIN_SIZE, K_MAX_SIZE) == (256 * MB, 2048 * MB)  # x64: kHeapLimitMultiplier 2
    with pytest.raises(InvalidArgument):
        max_growing_factor(-1)


def test_old_generation_limit():
    page = 256 << 10
    assert old_generation_allocation_limit(4 * MB, 1.5, page, 64 * MB) == 6 * MB  # live * F
    assert old_generation_allocation_limit(100_000, 1.1, page, 64 * MB) == 100_000 + 2 * page  # the minimum step
    assert old_generation_allocation_limit(7 * MB, 1.3, page, 8 * MB) == 8 * MB  # capped at the max
    assert old_generation_allocation_limit(0, 4.0, page, 8 * MB) == 2 * page
    for live in range(0, 9 * MB, MB // 3):
        limit = old_generation_allocation_limit(live, 1.3, page, 8 * MB)
        assert min(live, 8 * MB) <= limit <= 8 * MB
    with pytest.raises(InvalidArgument):
        old_generation_allocation_limit(MB, 0.9, page, 8 * MB)
    with pytest.raises(InvalidArgument):
        old_generation_allocation_limit(MB, 1.5, 0, 8 * MB)
