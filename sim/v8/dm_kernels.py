"""The direct map inside compiled kernels: the same translation as direct_map.py, as njit
functions over plain arrays, so the collectors' loops (scavenger, marking, sweeping) inline it.

    words   the phys segment as int64 (objects.py: words are signed)
    dm      one isolate's `v8_dm` row (int32): heap vpn -> machine frame
    shift   log2(frame size);  wpf  words per frame

A slot or mark bit of heap address va is pool-wide bit `word_index(va) - pool_base * wpf`
(remembered_set.py, marking.py).
"""

from __future__ import annotations

import numpy as np

from memsim.sim.v8.jit import atomic_or, njit
from memsim.sim.v8.layout import HEAP_BASE


@njit
def word_index(dm: np.ndarray, va: int, shift: int, wpf: int) -> int:
    return int(dm[(va - HEAP_BASE) >> shift]) * wpf + ((va & ((1 << shift) - 1)) >> 3)


@njit
def load(words: np.ndarray, dm: np.ndarray, va: int, shift: int, wpf: int) -> int:
    return words[word_index(dm, va, shift, wpf)]


@njit
def store(words: np.ndarray, dm: np.ndarray, va: int, value: int, shift: int, wpf: int) -> None:
    words[word_index(dm, va, shift, wpf)] = value


@njit
def copy_words(words: np.ndarray, dm: np.ndarray, src: int, dst: int, nbytes: int, shift: int, wpf: int) -> None:
    """Copy nbytes (a multiple of 8) from heap address src to dst, word by word across frames."""
    for k in range(0, nbytes, 8):
        words[word_index(dm, dst + k, shift, wpf)] = words[word_index(dm, src + k, shift, wpf)]


@njit
def test_and_set_bit(bits: np.ndarray, bit: int) -> bool:
    """Set a pool-wide bit; True if it was clear (a white object turned grey, a new slot)."""
    w = bit >> 6
    m = np.uint64(1) << np.uint64(bit & 63)
    if bits[w] & m:
        return False
    bits[w] |= m
    return True


@njit
def test_and_set_bit_atomic(bits: np.ndarray, bit: int) -> bool:
    """test_and_set_bit for bitmaps that several cores set at once (a parallel scavenge's slot
    sets, marking's white-to-grey): one `lock or`; True for the one core that turned the bit on."""
    m = np.uint64(1) << np.uint64(bit & 63)
    return (np.uint64(atomic_or(bits, bit >> 6, m)) & m) == np.uint64(0)


@njit
def test_bit(bits: np.ndarray, bit: int) -> bool:
    return (bits[bit >> 6] >> np.uint64(bit & 63)) & np.uint64(1) != 0
