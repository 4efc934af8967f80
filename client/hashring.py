"""Which server holds a key: ketama's continuum (the default) and jump consistent hashing.

Owns: the key hashes (ketama's and jump's), `KetamaRing` (the continuum, built by uhashring so that it
is libketama's), `JumpBuckets`, and `Ring`, what both offer the sharded client: `node(key)`, `remove`,
`add`. Touches nothing else: no I/O, no state beyond the ring.

Ketama (libketama, RJ/ketama `ketama.c`; twemproxy `nc_ketama.c`; spymemcached's KetamaNodeLocator)
hashes each server's "host:port-i" (i < 40 per unit of weight) with MD5 and places 4 points per digest
on a 32-bit circle; a key goes to the first point at or after the little-endian first 4 bytes of its
own MD5, wrapping to the first point. Removing a server removes only its points: its keys go to the
next server on the circle and no other key moves. Keys are hashed as their bytes (libketama hashes
the C string, twemproxy the key as sent), so a bytes key that is not UTF-8 hashes as other clients
hash it too; the lookup is libketama's and twemproxy's (the first point >= the hash: `bisect_left`),
which uhashring's own `get_node` (`bisect`, the first point > the hash) differs from only for a key
whose hash equals a point exactly.

Jump (Lamping & Veach 2014, "A Fast, Minimal Memory, Consistent Hash Algorithm", arXiv:1406.2294,
Figure 1) maps a 64-bit key to one of n buckets with no table at all, and moves only 1/n of the keys
when the n-th bucket is added or removed: but only the LAST bucket can go. Removing a bucket in the
middle means re-hashing over the remaining n-1, which moves keys of servers that did not fail; hence
ketama is the default, and jump is for a fixed set of shards. A key's 64 bits are those Guava's
`Hashing.consistentHash(Hashing.md5().hashBytes(key), n)` uses: the first 8 bytes of its MD5, little-endian.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from typing import Protocol

from uhashring import HashRing

MASK64 = (1 << 64) - 1
JUMP_MULTIPLIER = 2862933555777941757  # the paper's 64-bit linear congruential generator


def ketama_hash(key: bytes) -> int:
    """libketama's ketama_hashi(): the first 4 bytes of MD5, little-endian."""
    return int.from_bytes(hashlib.md5(key).digest()[:4], "little")


def jump_key(key: bytes) -> int:
    """A key's 64 bits for jump: MD5's first 8 bytes, little-endian (Guava's HashCode.padToLong)."""
    return int.from_bytes(hashlib.md5(key).digest()[:8], "little")


def jump_hash(key: int, buckets: int) -> int:
    """JumpConsistentHash(key, num_buckets), the paper's Figure 1, in 64-bit arithmetic."""
    if buckets <= 0:
        raise ValueError(f"jump_hash needs at least one bucket, got {buckets}")
    b, j = -1, 0
    key &= MASK64
    while j < buckets:
        b = j
        key = (key * JUMP_MULTIPLIER + 1) & MASK64
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


class Ring(Protocol):
    """Where a key goes among the servers that are in: all at first, fewer after `remove`."""

    def node(self, key: bytes) -> str: ...

    def remove(self, name: str) -> None: ...

    def add(self, name: str) -> None: ...


class KetamaRing:
    """libketama's continuum over `names` ("host:port", equal weights), uhashring building it."""

    def __init__(self, names: list[str]):
        self._ring = HashRing(nodes=list(names), hash_fn="ketama")
        self._points: list[int] = []
        self._owners: list[str] = []
        self._refresh()

    def _refresh(self) -> None:
        points = self._ring.get_points()  # [(point, name)], sorted by point
        self._points = [p for p, _ in points]
        self._owners = [n for _, n in points]

    def node(self, key: bytes) -> str:
        if not self._points:
            raise LookupError("the ring is empty")
        i = bisect_left(self._points, ketama_hash(key))
        return self._owners[i if i < len(self._points) else 0]

    def remove(self, name: str) -> None:
        self._ring.remove_node(name)
        self._refresh()

    def add(self, name: str) -> None:
        self._ring.add_node(name)
        self._refresh()


class JumpBuckets:
    """Jump hash over the servers that are in, in the order they were given: bucket i is the i-th."""

    def __init__(self, names: list[str]):
        self._all = list(names)
        self._in = list(names)

    def node(self, key: bytes) -> str:
        if not self._in:
            raise LookupError("no bucket is in")
        return self._in[jump_hash(jump_key(key), len(self._in))]

    def remove(self, name: str) -> None:
        """Re-hash over the others: every key of a bucket after `name` may move too (see the module doc)."""
        self._in.remove(name)

    def add(self, name: str) -> None:
        live = set(self._in) | {name}
        self._in = [n for n in self._all if n in live]


HASHINGS = ("ketama", "jump")


def make_ring(hashing: str, names: list[str]) -> Ring:
    if hashing == "ketama":
        return KetamaRing(names)
    if hashing == "jump":
        return JumpBuckets(names)
    raise ValueError(f"hashing={hashing!r}: the choices are {HASHINGS}")
