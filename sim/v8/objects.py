"""Heap objects as words: V8's tagging (`smi.h`, `objects/tagged.h`), the map word and its
forwarding form (`MapWord::FromForwardingAddress`), instance types and sizes.

Every object is 8-byte aligned little-endian words in the machine's memory:

    word 0      the map word: a header (low bit 1) or, during a GC, a forwarding address (low bit 0)
    words 1..n  n tagged fields
    then        payload_len raw bytes, rounded up to a word

A tagged field is a Smi `value << 32` (x64 without pointer compression: the low 32 bits are 0,
so the low bit is 0) or a reference `address | 1`. A header packs what V8 keeps in the map:
bit 0 = 1, bits 1-5 the instance type, bits 8-31 nfields, bits 32-63 payload_len. One load of the
map word thus gives the object's size and whether it was forwarded, which is what a copying
collector needs (and Orinoco compare-and-swaps from that loaded value).

Instance types: JS_OBJECT (fields and an optional payload), BYTE_ARRAY (strings and byte arrays:
payload only), JS_ARRAY_BUFFER (two Smi fields: byte length and the backing store's extension row),
FREE_SPACE (a free-list block: its word 1 is the next block's address, untagged) and FILLER (dead
space of any size from one word). There are no age bits (the age mark gives age, new_space.py)
and no mark bits (marking.py keeps them in a bitmap, as V8 does).

Words are handled as signed int64 everywhere (the phys segment viewed as int64): a negative Smi is
then a negative word and `word >> 32` its value, and numba never mixes signed and unsigned types
(which it would widen to float). Headers stay positive because payload_len < 2^31. Every function
here is plain integer arithmetic, usable from Python and from numba kernels.
"""

from __future__ import annotations

from memsim.sim.v8.jit import njit

JS_OBJECT, BYTE_ARRAY, JS_ARRAY_BUFFER, FREE_SPACE, FILLER = 1, 2, 3, 4, 5
TYPE_NAMES = {JS_OBJECT: "object", BYTE_ARRAY: "string", JS_ARRAY_BUFFER: "array_buffer",
              FREE_SPACE: "free_space", FILLER: "filler"}

SMI_MIN, SMI_MAX = -(1 << 31), (1 << 31) - 1
MAX_NFIELDS = (1 << 24) - 1
MAX_PAYLOAD = (1 << 31) - 1  # so that a header's top bit is clear: words are int64 everywhere


@njit
def smi(value: int) -> int:
    """The tagged word of a small integer (range-checked by the caller)."""
    return value << 32


@njit
def smi_value(word: int) -> int:
    return word >> 32


@njit
def is_smi(word: int) -> bool:
    return (word & 1) == 0


@njit
def tag(addr: int) -> int:
    return addr | 1


@njit
def untag(word: int) -> int:
    return word & ~1


@njit
def header(itype: int, nfields: int, payload_len: int) -> int:
    return (payload_len << 32) | (nfields << 8) | (itype << 1) | 1


@njit
def is_forwarded(map_word: int) -> bool:
    return (map_word & 1) == 0


@njit
def itype_of(map_word: int) -> int:
    return (map_word >> 1) & 31


@njit
def nfields_of(map_word: int) -> int:
    return (map_word >> 8) & 0xFFFFFF


@njit
def payload_len_of(map_word: int) -> int:
    return map_word >> 32


@njit
def size_of(map_word: int) -> int:
    """The object's size in bytes from its header: 8 + 8 * nfields + payload rounded up to a word."""
    return 8 + 8 * ((map_word >> 8) & 0xFFFFFF) + (((map_word >> 32) + 7) & ~7)


def object_size(nfields: int, payload_len: int) -> int:
    return 8 + 8 * nfields + ((payload_len + 7) & ~7)


def filler(size: int) -> int:
    """The header of a FILLER covering `size` bytes (a multiple of 8, at least one word)."""
    return header(FILLER, 0, size - 8)


def free_space(size: int) -> int:
    """The header of a FREE_SPACE block of `size` bytes (its word 1 holds the next block)."""
    return header(FREE_SPACE, 0, size - 8)
