"""S3-FIFO: a small FIFO to filter one-hit wonders, a main FIFO with a 2-bit CLOCK, a ghost FIFO.

Yang, Zhang, Qiu, Yue and Rashmi, "FIFO queues are all you need for cache eviction",
SOSP '23 (s3fifo.com; Thesys-lab/sosp23-s3fifo). The observation behind it: in web and
key-value traces most objects are requested once in a short window, so a cache should
demote new objects quickly and spend its space on those that come back. Three queues:

- S, small FIFO, 10 % of the capacity: probation for new entries;
- M, main FIFO, the other 90 %: entries that proved themselves, with CLOCK-style reinsertion;
- G, ghost FIFO of KEYS only (no data, no slot), as many entries as M holds: keys recently
  dropped from S, so that a key that comes back soon after goes straight to M.

Each resident entry has a frequency of 2 bits (0..3): a hit adds one, capped at 3.
insert(slot, fingerprint): to M if the fingerprint is in G (removing it from G; the
frequency starts at 0), else to S. A ghost hit is still a miss: the owner had to fetch
the data.
evict(): from M if M holds more than its share or S is empty, else from S:
- from S, oldest first: an entry with frequency >= 1 moves to M's head (frequency reset to
  0) and the scan goes on; the first entry with frequency 0 is the victim, its fingerprint
  goes to G (G drops its oldest when full);
- from M, oldest first: an entry with frequency > 0 is reinserted at M's head with its
  frequency decremented (a 2-bit CLOCK: a popular entry survives up to 3 passes); the
  first entry at 0 is the victim.
A move S → M during an S-scan may leave M above its share; the next evict() then takes
from M. Every evict() returns exactly one victim, as the owner's loop expects.

The ghost remembers FINGERPRINTS (the owner's 63-bit identity of the key, passed to
insert), not slots: a slot is reused by another key as soon as its entry is evicted.
Fingerprint 0 means "unknown": such an entry is never recorded in G nor looked up there
(so an owner that passes none gets S3-FIFO without its ghost, rather than every new entry
mistaken for a returning one). Two keys with one fingerprint are one key to G (a 63-bit
hash makes that a curiosity); G then keeps only the newer.

Arrays (base.py explains slots and storage; lists.py the list conventions):
    pol_prev, pol_next    int32[slots + 2]  S and M, sharing the link arrays; index `slots`
                          is S's sentinel, `slots + 1` M's; next[sentinel] = head (newest),
                          prev[sentinel] = tail (oldest); -1 in both = not present
    pol_where             int8[slots]       0 absent, 1 in S, 2 in M
    pol_freq              int8[slots]       the 2-bit frequency of a present slot (0 if absent)
    pol_fp                int64[slots]      the fingerprint of the key in each present slot
    pol_fphome            int32[slots]      its home cell in pol_ghash, hashed once at insert
                                            (the lookup needs it) and reused when it is ghosted
    pol_gfp               int64[slots]      ghost node g's fingerprint (G has at most slots
                                            entries: its share never exceeds the capacity)
    pol_gprev, pol_gnext  int32[slots + 1]  G's FIFO over ghost nodes, sentinel `slots`, same
                          conventions; a free ghost node has gprev = -1 and gnext = the next
                          free one
    pol_ghash             int32[2^k >= 4*slots]  open-addressing hash set of the ghost nodes
                          by fingerprint (-1 = empty): linear probing from a Fibonacci hash
                          of the fingerprint, deletion by backward shift (no tombstones), load
                          below 1/4
    pol_gcell, pol_ghome  int32[slots]      the pol_ghash cell each ghost node on G sits in, and
                                            its home cell (where its probe starts): dropping G's
                                            oldest then needs no probe and no re-hashing
    pol_ratio             float64[1]        small_ratio, fixed when the policy is created
    pol_meta              int64[9]          capacity, number of present slots, small_capacity,
                          main_capacity, ghost_capacity, |S|, |M|, |G|, first free ghost node
G is a linked FIFO rather than a ring because a ghost hit removes a fingerprint from the
MIDDLE of G, and which entry G drops next must not change when that happens (a ring with
lazy deletion would count the holes and drop early).
Invariants: every present slot is on the queue pol_where names; |S| + |M| = pol_meta[SIZE];
|G| <= ghost_capacity (until a set_capacity() that shrinks it; the next ghost insertion
trims it); every ghost node on G is in the hash set exactly once, and no other is.

Choices (the published variants differ):
- Move to M at frequency >= 1, i.e. one hit while in S, as the s3fifo.com blog
  describes it ("paper/blog rule"). libCacheSim's S3FIFOv0 (the paper's code) defaults to
  move-to-main-threshold=2, and its Oct-2024 S3FIFO rework also inserts into M while the
  cache is not yet full; both are other points in the design space.
- Which queue to evict from: libCacheSim's rule (M when over its share or S empty), which
  lets S borrow M's unused space while the cache fills, rather than testing S against
  its 10 % target, which needs a second eviction (from M) inside the same call whenever
  an S → M move overflows M.
- Sizes: S = max(1, ⌊0.1·capacity⌋) (small_ratio), M's share = capacity − S,
  G = M's share (at least 1); recomputed by set_capacity().
- remove() (DEL, expiry) forgets the entry without putting it in G: G remembers evictions.

Properties. Every hit is one saturating 2-bit increment, no queue change, so the read
path is as cheap as FIFO's (the paper: 6× LRU throughput at 16 threads); evict() is
amortized O(1) (each S → M move pays for an insertion, each M reinsertion for a hit).
Lower miss ratio than 12 other algorithms on 6,594 traces, lowest mean on 10 of 14 datasets
(Yang et al., SOSP '23); .4186 against LRU's .5144 with 808 objects cached, on a 1M-request
Zipf 1.0 trace of 100k objects (seed 42) replayed by libCacheSim 0.3.5 (this module: .4189;
libCacheSim's figure is its reworked S3FIFO). Its weak spot is the fixed 10 % S: a new key
must come back before about a tenth of the cache's worth of newer keys has gone through S, or
it is taken for a one-hit wonder; the ghost then admits it to M on its next request, at the
price of that extra miss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memsim.sim.machine.shm import ArraySpec
from memsim.sim.policies.base import FINGERPRINT_LIMIT, SIZE, Policy, register
from memsim.sim.policies.lists import fill, fill_chain, init_sentinels, unlink, walk

MAX_FREQ = 3  # 2 bits

# pol_meta cells after capacity and size
SMALL_CAP, MAIN_CAP, GHOST_CAP, SMALL_LEN, MAIN_LEN, GHOST_LEN, GHOST_FREE = range(2, 9)

ABSENT, SMALL, MAIN = 0, 1, 2

_FIB = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: Knuth's multiplicative hash spreads sequential ids
_MASK64 = (1 << 64) - 1


def ghost_table_bits(slots: int) -> int:
    """log2 of the hash set's size: the smallest power of two >= 4 * slots (at least 8), so
    that the load stays below 1/4 (G holds fewer fingerprints than there are slots): probe
    runs stay short, and on a cold trace every miss both adds and drops a ghost. At load 1/2
    the trace simulator ran ~10 % slower, for 8 bytes per slot less."""
    return max(3, (4 * slots - 1).bit_length())


@register("s3fifo")
class S3FIFO(Policy):
    def __init__(
        self,
        capacity: int,
        *,
        slots: int | None = None,
        arrays: Mapping[str, Any] | None = None,
        init: bool = True,
        small_ratio: float | None = None,
    ):
        if small_ratio is not None and not 0.0 < small_ratio < 1.0:
            raise ValueError(f"small_ratio must be in (0, 1), got {small_ratio}")
        self._option = 0.1 if small_ratio is None else float(small_ratio)
        super().__init__(capacity, slots=slots, arrays=arrays, init=init)
        if small_ratio is not None and small_ratio != self.small_ratio:
            raise ValueError(f"small_ratio={small_ratio} but the attached policy has {self.small_ratio}")

    @classmethod
    def array_specs(cls, slots: int) -> list[ArraySpec]:
        return [
            ArraySpec("pol_prev", "int32", (slots + 2,)),
            ArraySpec("pol_next", "int32", (slots + 2,)),
            ArraySpec("pol_where", "int8", (slots,)),
            ArraySpec("pol_freq", "int8", (slots,)),
            ArraySpec("pol_fp", "int64", (slots,)),
            ArraySpec("pol_fphome", "int32", (slots,)),
            ArraySpec("pol_gfp", "int64", (slots,)),
            ArraySpec("pol_gprev", "int32", (slots + 1,)),
            ArraySpec("pol_gnext", "int32", (slots + 1,)),
            ArraySpec("pol_ghash", "int32", (1 << ghost_table_bits(slots),)),
            ArraySpec("pol_gcell", "int32", (slots,)),
            ArraySpec("pol_ghome", "int32", (slots,)),
            ArraySpec("pol_ratio", "float64", (1,)),
            ArraySpec("pol_meta", "int64", (9,)),
        ]

    def _bind(self, arrays: dict[str, Any]) -> None:
        self._prev = arrays["pol_prev"]
        self._next = arrays["pol_next"]
        self._where = arrays["pol_where"]
        self._freq = arrays["pol_freq"]
        self._fp = arrays["pol_fp"]
        self._fphome = arrays["pol_fphome"]
        self._gfp = arrays["pol_gfp"]
        self._gprev = arrays["pol_gprev"]
        self._gnext = arrays["pol_gnext"]
        self._ghash = arrays["pol_ghash"]
        self._gcell = arrays["pol_gcell"]
        self._ghome = arrays["pol_ghome"]
        self._ratio = arrays["pol_ratio"]
        self._small = self.slots  # the sentinels
        self._main = self.slots + 1
        self._ghost = self.slots  # G's sentinel, in its own link arrays
        bits = ghost_table_bits(self.slots)
        self._gshift = 64 - bits
        self._gmask = (1 << bits) - 1

    def _reset(self) -> None:
        n = self.slots
        init_sentinels(self._prev, self._next, n, 2)
        for a, empty in ((self._where, ABSENT), (self._freq, 0), (self._fp, 0), (self._fphome, 0), (self._gfp, 0),
                         (self._gcell, -1), (self._ghome, -1), (self._gprev, -1), (self._ghash, -1)):
            fill(a, empty)
        fill_chain(self._gnext, n)  # every ghost node free: 0 → 1 → ... → n-1
        self._gprev[n] = self._gnext[n] = n  # G's sentinel: G is empty
        self._ratio[0] = self._option
        meta = self._meta
        meta[SMALL_LEN] = meta[MAIN_LEN] = meta[GHOST_LEN] = 0
        meta[GHOST_FREE] = 0

    def _resized(self, capacity: int) -> None:
        small = max(1, int(self._ratio[0] * capacity))
        meta = self._meta
        meta[SMALL_CAP] = small
        meta[MAIN_CAP] = capacity - small
        meta[GHOST_CAP] = max(1, capacity - small)

    @property
    def small_ratio(self) -> float:
        return float(self._ratio[0])

    @property
    def small_capacity(self) -> int:
        return int(self._meta[SMALL_CAP])

    @property
    def main_capacity(self) -> int:
        return int(self._meta[MAIN_CAP])

    @property
    def ghost_capacity(self) -> int:
        return int(self._meta[GHOST_CAP])

    # -- the ghost: a FIFO of fingerprints and a hash set over it ---------------------------------

    def _ghost_find(self, fp: int) -> tuple[int, int]:
        """(hash cell, ghost node) of fingerprint fp, or (the empty cell that ends its probe, -1)."""
        table, gfp, mask = self._ghash, self._gfp, self._gmask
        i = ((fp * _FIB) & _MASK64) >> self._gshift
        while True:
            g = table[i]
            if g < 0 or gfp[g] == fp:
                return i, g
            i = (i + 1) & mask

    def _ghost_unhash(self, g: int) -> None:
        """Take ghost node g out of the hash set: empty its cell, shifting the later entries of
        its probe run back (Knuth 6.4, Algorithm R), so that no tombstone is left behind."""
        table, gcell, ghome, mask = self._ghash, self._gcell, self._ghome, self._gmask
        i = j = gcell[g]
        while True:
            j = (j + 1) & mask
            h = table[j]
            if h < 0:
                break
            # h may move back to i only if i lies on its probe path, from its home to j cyclically
            if ((j - ghome[h]) & mask) >= ((j - i) & mask):
                table[i] = h
                gcell[h] = i
                i = j
        table[i] = -1
        gcell[g] = ghome[g] = -1

    def _ghost_drop(self, g: int) -> None:
        """Forget ghost node g: out of the hash set, off G, back to the free chain."""
        self._ghost_unhash(g)
        gprev, gnext, meta = self._gprev, self._gnext, self._meta
        unlink(gprev, gnext, g)
        gnext[g] = meta[GHOST_FREE]
        meta[GHOST_FREE] = g
        meta[GHOST_LEN] -= 1

    def _ghost_add(self, fp: int, home: int) -> None:
        """Record the fingerprint (whose hash cell is home) of an entry evicted from S as G's newest,
        dropping G's oldest beyond its share."""
        meta, gprev, gnext, ghost = self._meta, self._gprev, self._gnext, self._ghost
        length, cap = meta[GHOST_LEN], meta[GHOST_CAP]
        if length >= cap:
            while length > cap:  # only after a set_capacity() that shrank G
                self._ghost_drop(gprev[ghost])
                length -= 1
            # G is full (its steady state): its oldest node is recycled for the new fingerprint
            g = gprev[ghost]
            self._ghost_unhash(g)
            p = gprev[g]  # lists.unlink, inlined: once per miss on a cold trace
            gnext[p] = ghost
            gprev[ghost] = p
        else:
            g = meta[GHOST_FREE]
            meta[GHOST_FREE] = gnext[g]
            meta[GHOST_LEN] += 1
        table, gfp, mask = self._ghash, self._gfp, self._gmask
        i = home  # _ghost_find, inlined
        while True:
            h = table[i]
            if h < 0:
                break
            if gfp[h] == fp:  # the same fingerprint again (a hash collision): keep only the newer
                self._ghost_drop(h)
                i = self._ghost_find(fp)[0]
                break
            i = (i + 1) & mask
        gfp[g] = fp
        table[i] = g
        self._gcell[g] = i
        self._ghome[g] = home
        first = gnext[ghost]  # lists.push_head, inlined
        gnext[g] = first
        gprev[g] = ghost
        gprev[first] = g
        gnext[ghost] = g

    def in_ghost(self, fingerprint: int) -> bool:
        """Whether G remembers this fingerprint (for tests and explanations)."""
        return fingerprint != 0 and self._ghost_find(int(fingerprint))[1] >= 0

    def ghost(self) -> list[int]:
        """G's fingerprints from newest to oldest (for tests and explanations)."""
        return [int(self._gfp[g]) for g in walk(self._gprev, self._gnext, self._ghost, self.slots)[0]]

    # -- the policy ------------------------------------------------------------------------------

    def insert(self, slot: int, fingerprint: int = 0) -> None:
        if not 0 <= slot < self.slots:
            raise self._out_of_range(slot)
        if self._where[slot]:
            raise self._present(slot)
        meta = self._meta
        queue, where, length = self._small, SMALL, SMALL_LEN
        home = 0
        if fingerprint:
            fingerprint = int(fingerprint)  # a NumPy scalar would overflow in the hash
            if not 0 < fingerprint < FINGERPRINT_LIMIT:
                raise ValueError(f"fingerprint {fingerprint} must be in [0, 2**63)")
            table, gfp, mask = self._ghash, self._gfp, self._gmask
            home = i = ((fingerprint * _FIB) & _MASK64) >> self._gshift  # _ghost_find, inlined: once per miss
            while True:
                g = table[i]
                if g < 0:
                    break
                if gfp[g] == fingerprint:  # a key evicted recently from S is back: straight to M
                    self._ghost_drop(g)
                    queue, where, length = self._main, MAIN, MAIN_LEN
                    break
                i = (i + 1) & mask
        prv, nxt = self._prev, self._next
        first = nxt[queue]  # lists.push_head, inlined
        nxt[slot] = first
        prv[slot] = queue
        prv[first] = slot
        nxt[queue] = slot
        self._where[slot] = where
        self._freq[slot] = 0
        self._fp[slot] = fingerprint
        self._fphome[slot] = home
        meta[length] += 1
        meta[SIZE] += 1

    def hit(self, slot: int) -> None:
        if not 0 <= slot < self.slots:
            raise self._out_of_range(slot)
        if not self._where[slot]:
            raise KeyError(slot)
        freq = self._freq
        f = freq[slot]
        if f < MAX_FREQ:
            freq[slot] = f + 1

    def remove(self, slot: int) -> None:
        if not 0 <= slot < self.slots:
            raise self._out_of_range(slot)
        w = self._where[slot]
        if not w:
            raise KeyError(slot)
        unlink(self._prev, self._next, slot)
        self._where[slot] = ABSENT
        self._freq[slot] = 0
        meta = self._meta
        meta[SMALL_LEN if w == SMALL else MAIN_LEN] -= 1
        meta[SIZE] -= 1

    def evict(self) -> int:
        # S's scan is inlined here, and its list operations (lists.pop_tail, push_head): it runs
        # once per miss of the trace simulator
        prv, nxt, freq, where, meta = self._prev, self._next, self._freq, self._where, self._meta
        if meta[SIZE] == 0:
            raise self._empty()
        meta[SIZE] -= 1
        if meta[MAIN_LEN] > meta[MAIN_CAP]:
            return self._evict_main()
        small, main = self._small, self._main
        while True:
            slot = prv[small]  # S's tail, its oldest
            if slot == small:
                return self._evict_main()  # S is empty, or every entry of S had been hit and moved to M
            p = prv[slot]
            nxt[p] = small
            prv[small] = p
            meta[SMALL_LEN] -= 1
            if freq[slot]:  # hit while in S: on to M's head, frequency reset
                freq[slot] = 0
                first = nxt[main]
                nxt[slot] = first
                prv[slot] = main
                prv[first] = slot
                nxt[main] = slot
                where[slot] = MAIN
                meta[MAIN_LEN] += 1
                continue
            prv[slot] = nxt[slot] = -1
            where[slot] = ABSENT
            fp = self._fp[slot]
            if fp:
                self._ghost_add(int(fp), int(self._fphome[slot]))
            return int(slot)

    def _evict_main(self) -> int:
        prv, nxt, freq, main = self._prev, self._next, self._freq, self._main
        while True:
            slot = prv[main]  # the tail (M is not empty: evict() checked)
            f = freq[slot]
            if f == 0:
                p = prv[slot]
                nxt[p] = main
                prv[main] = p
                prv[slot] = nxt[slot] = -1
                self._where[slot] = ABSENT
                self._meta[MAIN_LEN] -= 1
                return int(slot)
            freq[slot] = f - 1
            if prv[slot] != main:  # reinsert at the head: a 2-bit CLOCK pass (a lone entry stays put)
                p = prv[slot]
                nxt[p] = main
                prv[main] = p
                first = nxt[main]
                nxt[slot] = first
                prv[slot] = main
                prv[first] = slot
                nxt[main] = slot

    def queue_of(self, slot: int) -> str:
        """'small', 'main' or 'none': where the policy keeps slot (in_ghost() asks about keys)."""
        if slot not in self:
            return "none"
        return "small" if self._where[slot] == SMALL else "main"

    def frequency(self, slot: int) -> int:
        """The 2-bit frequency of a present slot (KeyError if absent)."""
        if slot not in self:
            raise KeyError(slot)
        return int(self._freq[slot])

    def queues(self) -> tuple[list[int], list[int]]:
        """(S, M), each from head (newest) to tail (oldest); for tests and explanations."""
        return (walk(self._prev, self._next, self._small, self.slots)[0],
                walk(self._prev, self._next, self._main, self.slots)[0])

    def __contains__(self, slot: object) -> bool:
        i = self._index(slot)
        return i >= 0 and bool(self._where[i])

    def check(self) -> list[str]:
        n, meta = self.slots, self._meta
        small, problems = walk(self._prev, self._next, self._small, n)
        main, more = walk(self._prev, self._next, self._main, n)
        problems += more
        problems += self._check_size(len(small) + len(main))
        if (len(small), len(main)) != (meta[SMALL_LEN], meta[MAIN_LEN]):
            problems.append(f"pol_meta says |S| = {int(meta[SMALL_LEN])}, |M| = {int(meta[MAIN_LEN])}; "
                            f"the queues hold {len(small)}, {len(main)}")
        want = {s: SMALL for s in small} | {s: MAIN for s in main}
        if len(want) != len(small) + len(main):
            problems.append("a slot is in both S and M")
        for s in range(n):
            if self._where[s] != want.get(s, ABSENT):
                problems.append(f"slot {s}: pol_where = {int(self._where[s])}, the queues say {want.get(s, ABSENT)}")
            if not 0 <= self._freq[s] <= MAX_FREQ or (self._freq[s] and s not in want):
                problems.append(f"slot {s}: frequency {int(self._freq[s])} out of range or on an absent slot")
            fp = int(self._fp[s])
            if s in want and fp and self._fphome[s] != ((fp * _FIB) & _MASK64) >> self._gshift:
                problems.append(f"slot {s}: pol_fphome is not the home cell of its fingerprint {fp}")
        ghosts, more = walk(self._gprev, self._gnext, self._ghost, n)
        problems += more
        if len(ghosts) != meta[GHOST_LEN]:
            problems.append(f"pol_meta says |G| = {int(meta[GHOST_LEN])}, G holds {len(ghosts)}")
        hashed = [int(g) for g in self._ghash if g >= 0]
        if sorted(hashed) != sorted(ghosts):
            problems.append(f"the ghost hash set holds nodes {sorted(hashed)}, G holds {sorted(ghosts)}")
        for g in ghosts:
            fp = int(self._gfp[g])
            i, found = self._ghost_find(fp)
            home = ((fp * _FIB) & _MASK64) >> self._gshift
            if fp <= 0 or found != g or self._gcell[g] != i or self._ghome[g] != home:
                problems.append(f"ghost node {g} (fingerprint {fp}) is not found by its fingerprint at its cell")
        free, g = 0, int(meta[GHOST_FREE])
        while g >= 0 and free <= n:
            free += 1
            g = int(self._gnext[g])
        if free + len(ghosts) != n:
            problems.append(f"{len(ghosts)} ghost nodes in G + {free} free != the pool's {n}")
        return problems
