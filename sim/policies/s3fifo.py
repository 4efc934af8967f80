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
- from S, oldest first: an entry with frequency >= move_to_main (1) moves to M's head
  (frequency reset to 0) and the scan goes on; the first entry with frequency 0 is the victim, its fingerprint
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
                          by fingerprint (-1 = empty): linear probing from a multiplicative
                          hash of the fingerprint (`home`), deletion by backward shift (no tombstones), load
                          below 1/4
    pol_gcell, pol_ghome  int32[slots]      the pol_ghash cell each ghost node on G sits in, and
                                            its home cell (where its probe starts): dropping G's
                                            oldest then needs no probe and no re-hashing
    pol_ratio             float64[2]        small_ratio, ghost_ratio (-1: M's share), fixed at creation
    pol_meta              int64[15]         capacity, number of present slots, small_capacity,
                          main_capacity, ghost_capacity, |S|, |M|, |G|, first free ghost node,
                          move_to_main, ghost_lookup (0 insert, 1 request), warmup (0 small,
                          1 main), evicted yet, DROPPED (see above), the hash's shift
G is a linked FIFO rather than a ring because a ghost hit removes a fingerprint from the
MIDDLE of G, and which entry G drops next must not change when that happens (a ring with
lazy deletion would count the holes and drop early).
The operations are compiled kernels over these arrays (base.Kernels; `s3_*` below).
Invariants: every present slot is on the queue pol_where names; |S| + |M| = pol_meta[SIZE];
|G| <= ghost_capacity (until a set_capacity() that shrinks it; the next ghost insertion
trims it); every ghost node on G is in the hash set exactly once, and no other is.

Options (the published variants differ by these parameters, not by their idea). Each is stored in
the arrays, so every attached process agrees; `preset="libcachesim"` sets them to libCacheSim's
S3FIFO.c (v0.3.5: DEFAULT_CACHE_PARAMS and its Dec-2024 insert path), with which the miss counts
equal libCacheSim's (tests/sim/policies/test_peers.py). option: default / libcachesim:
- small_ratio 0.1 / 0.1: S's share, max(1, ⌊ratio·capacity⌋); the paper's 10 %.
- move_to_main 1 / 2: S → M at frequency >= this; one hit while in S is the s3fifo.com blog's
  rule, libCacheSim's move-to-main-threshold is 2 (as its S3FIFOv0, the paper's code).
- ghost_ratio None / 0.9: G's size, M's share (None: the paper's "as many entries as M") or
  max(1, ⌊ratio·capacity⌋) (libCacheSim's ghost-size-ratio).
- ghost_lookup "insert" / "request": G is asked at insert(), after the eviction that made room
  (an owner's order: evict, then insert), or as if before it (libCacheSim's S3FIFO_find runs
  before the eviction, so that eviction's ghost entry cannot push the returning key out of G).
- warmup "small" / "main": until the first eviction new entries go to S (which borrows M's room:
  the paper's algorithm), or to M once S is full (libCacheSim's S3FIFO.c since Dec 2024).
"request" is kept exact without the key before the eviction: the eviction records the fingerprint
it pushed out of G (pol_meta's DROPPED), and the insert() that follows treats that fingerprint as
still in G, or, when it finds its own key in G, puts the pushed-out one back at G's oldest end (G
then holds what it would had the lookup come first). One eviction per insert, as in a replay.
Other fixed choices: which queue to evict from is libCacheSim's rule (M when over its share or S
empty), which lets S borrow M's unused space while the cache fills; a 2-bit frequency (libCacheSim
counts higher but compares against at most 3: the same decisions); remove() (DEL, expiry) forgets
the entry without putting it in G: G remembers evictions. libCacheSim refuses an object as large as
S (S3FIFO_can_insert): with unit objects, every capacity below 20; compare above that.

Properties. Every hit is one saturating 2-bit increment, no queue change, so the read
path is as cheap as FIFO's (the paper: 6× LRU throughput at 16 threads); evict() is
amortized O(1) (each S → M move pays for an insertion, each M reinsertion for a hit).
Lower miss ratio than 12 other algorithms on 6,594 traces, lowest mean on 10 of 14 datasets
(Yang et al., SOSP '23); .4186 against LRU's .5144 with 808 objects cached, on a 1M-request
Zipf 1.0 trace of 100k objects (seed 42) replayed by libCacheSim 0.3.5 (this module: .4189 by
default, .4186 with the preset). Its weak spot is the fixed 10 % S: a new key must come back
before a tenth of the cache's worth of newer keys has gone through S, or it is taken for a
one-hit wonder (the ghost then admits it to M on its next request, after that extra miss).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memsim.sim.machine.jit import njit_kernel
from memsim.sim.machine.shm import ArraySpec
from memsim.sim.policies.base import SIZE, CompiledPolicy, Kernels, State, register
from memsim.sim.policies.lists import fill, fill_chain, init_sentinels, walk

MAX_FREQ = 3  # 2 bits

# pol_meta cells after capacity and size
(SMALL_CAP, MAIN_CAP, GHOST_CAP, SMALL_LEN, MAIN_LEN, GHOST_LEN, GHOST_FREE, THRESHOLD, LOOKUP, WARMUP, EVICTED,
 DROPPED, GSHIFT) = range(2, 15)

ABSENT, SMALL, MAIN = 0, 1, 2

LOOKUPS = ("insert", "request")
WARMUPS = ("small", "main")
# every option's default, and libCacheSim's S3FIFO.c values (its DEFAULT_CACHE_PARAMS and insert path)
DEFAULTS: dict[str, Any] = {"small_ratio": 0.1, "move_to_main": 1, "ghost_ratio": None, "ghost_lookup": "insert",
                            "warmup": "small"}
PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(DEFAULTS),
    "libcachesim": {"small_ratio": 0.1, "move_to_main": 2, "ghost_ratio": 0.9, "ghost_lookup": "request",
                    "warmup": "main"},
}

PREV, NEXT, WHERE, FREQ, FP, FPHOME, GFP, GPREV, GNEXT, GHASH, GCELL, GHOME, RATIO, META = range(14)  # State


def ghost_table_bits(slots: int) -> int:
    """log2 of the hash set's size: the smallest power of two >= 4 * slots (at least 8), so
    that the load stays below 1/4 (G holds fewer fingerprints than there are slots): probe
    runs stay short, and on a cold trace every miss both adds and drops a ghost. At load 1/2
    the trace simulator ran ~10 % slower, for 8 bytes per slot less."""
    return max(3, (4 * slots - 1).bit_length())


# -- the kernels: the ghost (a FIFO of fingerprints and a hash set over it), then the policy -----


@njit_kernel
def home(shift: int, fp: int) -> int:
    """fp's home cell: Knuth's multiplicative hash of its folded low 31 bits, top bits of 32. No
    product passes 2^63, so that compiled and interpreted code (NumPy scalars) agree to the bit."""
    x = (fp ^ (fp >> 31)) & 0x7FFFFFFF
    return ((x * 2654435769) & 0xFFFFFFFF) >> shift


@njit_kernel
def ghost_find(table: Any, gfp: Any, fp: int, i: int) -> tuple[int, int]:
    """(hash cell, ghost node) of fp whose home is i, or (the empty cell ending its probe, -1). Hot
    helpers take arrays, not the State: a call LLVM does not inline copies every array of a tuple."""
    mask = len(table) - 1
    while True:
        g = table[i]
        if g < 0 or gfp[g] == fp:
            return i, g
        i = (i + 1) & mask


@njit_kernel
def ghost_unhash(table: Any, gcell: Any, ghome: Any, g: int) -> None:
    """Take ghost node g out of the hash set: empty its cell, shifting the later entries of
    its probe run back (Knuth 6.4, Algorithm R), so that no tombstone is left behind."""
    mask = len(table) - 1
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


@njit_kernel
def unlink(prv: Any, nxt: Any, node: int) -> None:
    p, n = prv[node], nxt[node]  # lists.unlink, without poisoning (the callers relink or poison)
    nxt[p] = n
    prv[n] = p


@njit_kernel
def ghost_drop(st: State, g: int) -> None:
    """Forget ghost node g: out of the hash set, off G, back to the free chain."""
    meta, gnext = st[META], st[GNEXT]
    ghost_unhash(st[GHASH], st[GCELL], st[GHOME], g)
    unlink(st[GPREV], gnext, g)
    st[GPREV][g] = -1
    gnext[g] = meta[GHOST_FREE]
    meta[GHOST_FREE] = g
    meta[GHOST_LEN] -= 1


@njit_kernel
def ghost_add(st: State, fp: int, at: int, newest: bool) -> None:
    """Record fp (whose home cell is `at`) in G, as its newest entry or (newest=False) its oldest,
    dropping G's oldest beyond its share; the fingerprint dropped goes to pol_meta's DROPPED."""
    meta, gprev, gnext, gfp, table = st[META], st[GPREV], st[GNEXT], st[GFP], st[GHASH]
    ghost = len(gprev) - 1  # G's sentinel
    while meta[GHOST_LEN] > meta[GHOST_CAP]:  # only after a set_capacity() that shrank G
        ghost_drop(st, gprev[ghost])
    if meta[GHOST_LEN] >= meta[GHOST_CAP]:
        g = gprev[ghost]  # G is full (its steady state): its oldest node is recycled
        meta[DROPPED] = gfp[g]
        ghost_unhash(table, st[GCELL], st[GHOME], g)
        unlink(gprev, gnext, g)
    else:
        g = meta[GHOST_FREE]
        meta[GHOST_FREE] = gnext[g]
        meta[GHOST_LEN] += 1
    i, h = ghost_find(table, gfp, fp, at)
    if h >= 0:  # the same fingerprint again (a hash collision): keep only the newer
        ghost_drop(st, h)
        i = ghost_find(table, gfp, fp, at)[0]
    gfp[g] = fp
    table[i] = g
    st[GCELL][g] = i
    st[GHOME][g] = at
    if newest:  # lists.push_head: after the sentinel
        first = gnext[ghost]
        gnext[g] = first
        gprev[g] = ghost
        gprev[first] = g
        gnext[ghost] = g
    else:  # lists.link_before the sentinel: the tail
        last = gprev[ghost]
        gprev[g] = last
        gnext[g] = ghost
        gnext[last] = g
        gprev[ghost] = g


@njit_kernel
def push(prv: Any, nxt: Any, queue: int, slot: int) -> None:
    first = nxt[queue]  # lists.push_head
    nxt[slot] = first
    prv[slot] = queue
    prv[first] = slot
    nxt[queue] = slot


@njit_kernel
def s3_insert(st: State, slot: int, fingerprint: int) -> int:
    where, meta = st[WHERE], st[META]
    if where[slot]:
        return 1
    queue = SMALL
    at = 0
    request = meta[LOOKUP] == 1
    if fingerprint:
        at = home(meta[GSHIFT], fingerprint)
        g = ghost_find(st[GHASH], st[GFP], fingerprint, at)[1]
        if g >= 0:  # a key evicted recently from S is back: straight to M
            ghost_drop(st, g)
            queue = MAIN
            dropped = meta[DROPPED]
            if request and dropped:  # asked first, G would have kept what the eviction pushed out
                ghost_add(st, dropped, home(meta[GSHIFT], dropped), False)
        elif request and fingerprint == meta[DROPPED]:
            queue = MAIN  # asked first, G still held it
    meta[DROPPED] = 0
    if queue == SMALL and meta[WARMUP] == 1 and not meta[EVICTED] and meta[SMALL_LEN] >= meta[SMALL_CAP]:
        queue = MAIN
    n = len(where)  # S's sentinel; M's is the next
    push(st[PREV], st[NEXT], n if queue == SMALL else n + 1, slot)
    where[slot] = queue
    st[FREQ][slot] = 0
    st[FP][slot] = fingerprint
    st[FPHOME][slot] = at
    meta[SMALL_LEN if queue == SMALL else MAIN_LEN] += 1
    meta[SIZE] += 1
    return 0


@njit_kernel
def s3_hit(st: State, slot: int) -> int:
    if not st[0][slot]:  # State: (pol_where, pol_freq)
        return 1
    freq = st[1]
    if freq[slot] < MAX_FREQ:
        freq[slot] += 1
    return 0


@njit_kernel
def s3_remove(st: State, slot: int) -> int:
    where, meta, prv, nxt = st[WHERE], st[META], st[PREV], st[NEXT]
    w = where[slot]
    if not w:
        return 1
    unlink(prv, nxt, slot)
    prv[slot] = nxt[slot] = -1
    where[slot] = ABSENT
    st[FREQ][slot] = 0
    meta[SMALL_LEN if w == SMALL else MAIN_LEN] -= 1
    meta[SIZE] -= 1
    return 0


@njit_kernel
def evict_main(prv: Any, nxt: Any, where: Any, freq: Any, meta: Any) -> int:
    main = len(where) + 1
    while True:
        slot = prv[main]  # the tail (M is not empty: s3_evict checked)
        f = freq[slot]
        if f == 0:
            unlink(prv, nxt, slot)
            prv[slot] = nxt[slot] = -1
            where[slot] = ABSENT
            meta[MAIN_LEN] -= 1
            meta[SIZE] -= 1
            return slot
        freq[slot] = f - 1
        if prv[slot] != main:  # reinsert at the head: a 2-bit CLOCK pass (a lone entry stays put)
            unlink(prv, nxt, slot)
            push(prv, nxt, main, slot)


@njit_kernel
def s3_evict(st: State) -> int:
    prv, nxt, freq, where, meta = st[PREV], st[NEXT], st[FREQ], st[WHERE], st[META]
    if meta[SIZE] == 0:
        return -1
    meta[EVICTED] = 1
    if meta[MAIN_LEN] > meta[MAIN_CAP]:
        return evict_main(prv, nxt, where, freq, meta)
    small = len(where)
    threshold = meta[THRESHOLD]
    while True:
        slot = prv[small]  # S's tail, its oldest
        if slot == small:  # S is empty, or every entry of S had been hit and moved to M
            return evict_main(prv, nxt, where, freq, meta)
        unlink(prv, nxt, slot)
        meta[SMALL_LEN] -= 1
        if freq[slot] >= threshold:  # hit enough while in S: on to M's head, frequency reset
            freq[slot] = 0
            push(prv, nxt, small + 1, slot)
            where[slot] = MAIN
            meta[MAIN_LEN] += 1
            continue
        prv[slot] = nxt[slot] = -1
        where[slot] = ABSENT
        freq[slot] = 0
        meta[SIZE] -= 1
        fp = st[FP][slot]
        if fp:
            ghost_add(st, fp, st[FPHOME][slot], True)
        return slot


@register("s3fifo")
class S3FIFO(CompiledPolicy):
    kernels = Kernels(s3_insert, s3_hit, s3_remove, s3_evict, (WHERE, FREQ))

    def __init__(
        self,
        capacity: int,
        *,
        slots: int | None = None,
        arrays: Mapping[str, Any] | None = None,
        init: bool = True,
        preset: str | None = None,
        small_ratio: float | None = None,
        move_to_main: int | None = None,
        ghost_ratio: float | None = None,
        ghost_lookup: str | None = None,
        warmup: str | None = None,
    ):
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"unknown S3-FIFO preset {preset!r}; known: {', '.join(PRESETS)}")
        given = {"small_ratio": small_ratio, "move_to_main": move_to_main, "ghost_ratio": ghost_ratio,
                 "ghost_lookup": ghost_lookup, "warmup": warmup}
        opts = dict(PRESETS[preset] if preset else DEFAULTS)
        opts.update({k: v for k, v in given.items() if v is not None})
        if not 0.0 < opts["small_ratio"] < 1.0:
            raise ValueError(f"small_ratio must be in (0, 1), got {opts['small_ratio']}")
        if opts["move_to_main"] not in (1, 2, 3):
            raise ValueError(f"move_to_main must be 1, 2 or 3 (the frequency has 2 bits), got {opts['move_to_main']}")
        if opts["ghost_ratio"] is not None and not 0.0 < opts["ghost_ratio"] <= 1.0:
            raise ValueError(f"ghost_ratio must be in (0, 1], got {opts['ghost_ratio']}")
        if opts["ghost_lookup"] not in LOOKUPS or opts["warmup"] not in WARMUPS:
            raise ValueError(f"ghost_lookup must be one of {LOOKUPS}, warmup one of {WARMUPS}")
        self._options = opts
        super().__init__(capacity, slots=slots, arrays=arrays, init=init)
        stored = self.options
        for k, v in given.items():
            if (v is not None or preset) and opts[k] != stored[k]:
                raise ValueError(f"{k}={opts[k]!r} but the attached policy has {stored[k]!r}")

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
            ArraySpec("pol_ratio", "float64", (2,)),
            ArraySpec("pol_meta", "int64", (15,)),
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
        self._gshift = max(0, 32 - ghost_table_bits(self.slots))

    def _reset(self) -> None:
        n = self.slots
        init_sentinels(self._prev, self._next, n, 2)
        for a, empty in ((self._where, ABSENT), (self._freq, 0), (self._fp, 0), (self._fphome, 0), (self._gfp, 0),
                         (self._gcell, -1), (self._ghome, -1), (self._gprev, -1), (self._ghash, -1)):
            fill(a, empty)
        fill_chain(self._gnext, n)  # every ghost node free: 0 → 1 → ... → n-1
        self._gprev[n] = self._gnext[n] = n  # G's sentinel: G is empty
        o = self._options
        self._ratio[0] = o["small_ratio"]
        self._ratio[1] = -1.0 if o["ghost_ratio"] is None else o["ghost_ratio"]
        meta = self._meta
        meta[SMALL_LEN] = meta[MAIN_LEN] = meta[GHOST_LEN] = meta[GHOST_FREE] = 0
        meta[THRESHOLD] = o["move_to_main"]
        meta[LOOKUP] = LOOKUPS.index(o["ghost_lookup"])
        meta[WARMUP] = WARMUPS.index(o["warmup"])
        meta[EVICTED] = meta[DROPPED] = 0
        meta[GSHIFT] = self._gshift

    def _resized(self, capacity: int) -> None:
        small = max(1, int(self._ratio[0] * capacity))
        ghost_ratio = float(self._ratio[1])
        meta = self._meta
        meta[SMALL_CAP] = small
        meta[MAIN_CAP] = capacity - small
        meta[GHOST_CAP] = max(1, capacity - small if ghost_ratio < 0 else int(ghost_ratio * capacity))

    @property
    def options(self) -> dict[str, Any]:
        """The options as stored (what every attached process runs with)."""
        g = float(self._ratio[1])
        meta = self._meta
        return {"small_ratio": float(self._ratio[0]), "move_to_main": int(meta[THRESHOLD]),
                "ghost_ratio": None if g < 0 else g, "ghost_lookup": LOOKUPS[int(meta[LOOKUP])],
                "warmup": WARMUPS[int(meta[WARMUP])]}

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

    def _ghost_find(self, fp: int) -> tuple[int, int]:
        i, g = ghost_find(self._ghash, self._gfp, fp, home(self._gshift, fp))
        return int(i), int(g)

    def in_ghost(self, fingerprint: int) -> bool:
        """Whether G remembers this fingerprint (for tests and explanations)."""
        return fingerprint != 0 and self._ghost_find(int(fingerprint))[1] >= 0

    def ghost(self) -> list[int]:
        """G's fingerprints from newest to oldest (for tests and explanations)."""
        return [int(self._gfp[g]) for g in walk(self._gprev, self._gnext, self._ghost, self.slots)[0]]

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
            if s in want and fp and self._fphome[s] != home(self._gshift, fp):
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
            at = home(self._gshift, fp)
            if fp <= 0 or found != g or self._gcell[g] != i or self._ghome[g] != at:
                problems.append(f"ghost node {g} (fingerprint {fp}) is not found by its fingerprint at its cell")
        free, g = 0, int(meta[GHOST_FREE])
        while g >= 0 and free <= n:
            free += 1
            g = int(self._gnext[g])
        if free + len(ghosts) != n:
            problems.append(f"{len(ghosts)} ghost nodes in G + {free} free != the pool's {n}")
        return problems
