"""Size classes: the table Go's rule generates, and the request-size → class lookup."""

from __future__ import annotations

import bisect

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memsim.sim.alloc.sizeclasses import MAX_SMALL_SIZE, PAGE_SIZE, table

T = table()
SIZES = [c.size for c in T.classes]


def row(size: int):
    (c,) = [c for c in T.classes if c.size == size]
    return c


def test_68_entries_including_class_0():
    assert len(T) == 68
    assert len(T.classes) == 67
    assert [c.index for c in T.classes] == list(range(1, 68))
    assert T.by_index[0] is None and T.sizes[0] == 0
    assert T.class_of(MAX_SMALL_SIZE + 1) == 0  # large objects are class 0


def test_sizes_strictly_increase_and_respect_go_limits():
    assert sorted(set(SIZES)) == SIZES
    for c in T.classes:
        assert c.size % 8 == 0
        assert 1 <= c.npages <= 10
        assert 1 <= c.objects <= 1024
        assert c.prev_size == (T.classes[c.index - 2].size if c.index > 1 else 0)


@pytest.mark.parametrize(
    ("index", "size", "npages", "objects", "tail"),
    [
        (1, 8, 1, 1024, 0),
        (2, 16, 1, 512, 0),
        (3, 24, 1, 341, 8),  # 8192 = 341 * 24 + 8
        (4, 32, 1, 256, 0),
        (5, 48, 1, 170, 32),  # 8192 = 170 * 48 + 32
        (11, 144, 1, 56, 128),
        (35, 1408, 2, 11, 896),  # the first two-page class
        (38, 2048, 1, 4, 0),
        (41, 3072, 3, 8, 0),
        (51, 8192, 1, 1, 0),
        (65, 27264, 10, 3, 128),  # the largest span: 10 pages
        (67, 32768, 4, 1, 0),
    ],
)
def test_known_go_rows(index, size, npages, objects, tail):
    c = T.by_index[index]
    assert (c.size, c.npages, c.objects, c.tail_waste) == (size, npages, objects, tail)
    assert c.span_bytes == npages * PAGE_SIZE


def test_last_class_is_32k_one_object_in_four_pages():
    last = T.classes[-1]
    assert (last.index, last.size, last.objects, last.npages) == (67, 32768, 1, 4)


def test_go_max_waste_column():
    # Go's sizeclasses.go header: 87.50 % at 8 B, 43.75 % at 16 B, 29.24 % at 24 B, 12.50 % at 32 KiB.
    assert T.by_index[1].max_waste == pytest.approx(0.8750, abs=5e-5)
    assert T.by_index[2].max_waste == pytest.approx(0.4375, abs=5e-5)
    assert T.by_index[3].max_waste == pytest.approx(0.2924, abs=5e-5)
    assert T.by_index[67].max_waste == pytest.approx(0.1250, abs=5e-5)
    assert max(c.max_waste for c in T.classes if c.size >= 128) <= 0.1666


def test_every_tail_waste_at_most_an_eighth_of_the_span():
    for c in T.classes:
        assert c.tail_waste <= c.span_bytes / 8, c
        assert c.tail_waste == c.span_bytes - c.objects * c.size


def test_span_is_the_smallest_with_an_eighth_tail_waste_before_widening():
    # Classes that were widened to span/objects rounded down to 128 keep their object count,
    # so the smallest span with tail waste <= 1/8 for the final size has at most npages pages.
    for c in T.classes:
        pages = 1
        while (pages * PAGE_SIZE) % c.size > pages * PAGE_SIZE // 8:
            pages += 1
        assert pages <= c.npages, c


def test_mean_rounding_waste_is_go_5_2_percent():
    assert T.mean_rounding_waste() == pytest.approx(0.052, abs=0.001)
    # independent computation over every request size
    total = 0.0
    for s in range(1, MAX_SMALL_SIZE + 1):
        r = SIZES[bisect.bisect_left(SIZES, s)]
        total += (r - s) / r
    assert total / MAX_SMALL_SIZE == pytest.approx(0.052, abs=0.001)


def test_class_of_exhaustive():
    for s in range(1, MAX_SMALL_SIZE + 1):
        cls = T.class_of(s)
        assert SIZES[cls - 1] == SIZES[bisect.bisect_left(SIZES, s)], s


@given(st.integers(min_value=1, max_value=MAX_SMALL_SIZE))
def test_class_of_is_smallest_class_that_fits(size):
    cls = T.class_of(size)
    assert 1 <= cls <= 67
    assert T.size_of(cls) >= size
    assert cls == 1 or T.size_of(cls - 1) < size


@given(st.integers(min_value=MAX_SMALL_SIZE + 1, max_value=1 << 40))
def test_class_of_large_is_zero(size):
    assert T.class_of(size) == 0


def test_batch_sizes():
    for c in T.classes:
        assert 2 <= c.batch <= 32
        if c.size <= 2048:
            assert c.batch == 32, c
    assert T.by_index[39].batch == 28  # 2304 B: 64 KiB / 2304
    assert T.classes[-1].batch == 2
    batches = [c.batch for c in T.classes]
    assert batches == sorted(batches, reverse=True)


def test_format_lists_every_class():
    lines = T.format().splitlines()
    assert len(lines) == 68
    assert lines[-1].split()[:5] == ["67", "32768", "32768", "1", "0"]
