"""LFU: evict the entry with the fewest accesses; among equals, the least recently used.

Exact in-cache LFU, the policy of the early file and web caches and the reference point
of Redis's approximated allkeys-lfu (which keeps an 8-bit logarithmic counter that
decays; this one counts exactly and never decays). An entry's count is 1 when it is
inserted and grows by one per hit; it is forgotten with the entry (no history of evicted
keys: "in-cache" LFU, as in cachetools and libCacheSim).

Structure: the O(1) scheme of Shah, Mitra and Matani ("An O(1) algorithm for implementing
the LFU cache eviction scheme", 2010). A doubly linked list of frequency buckets in
increasing count order, each bucket a list of the slots with that count in the order they
reached it. A hit moves a slot from bucket c to the head of bucket c + 1 (created right
after c if missing); an empty bucket is unlinked and freed; the victim is the tail (the
earliest arrival) of the first bucket. No heap, no scan: every operation is O(1).

Arrays (base.py explains slots and storage; lists.py the list conventions). Buckets come
from a pool of `slots` bucket nodes (there are never more buckets than present slots,
since each bucket is non-empty), numbered 0..slots-1:
    pol_prev, pol_next    int32[2 * slots]  the slot lists: slots 0..slots-1, and at index
                          slots + b the sentinel of bucket b's list; next[sentinel] = head
                          (the latest to reach the count), prev[sentinel] = tail (the
                          earliest, evicted first); -1 in both = not present / bucket free
    pol_bucket            int32[slots]      the bucket of each present slot, -1 = absent
    pol_bprev, pol_bnext  int32[slots + 1]  the bucket list in increasing count; index
                          `slots` is its root sentinel (count 0), bnext[root] = the lowest
                          count; a free bucket has bprev = -1 and bnext = the next free one
    pol_bcount            int64[slots + 1]  each bucket's count (root: 0)
    pol_meta              int64[3]          capacity, number of present slots, first free
                                            bucket (-1: none)
The operations are compiled kernels over these arrays (base.Kernels; `lfu_*` below).
Invariants: counts strictly increase along the bucket list; every bucket on it is
non-empty and every present slot is on the list of the bucket pol_bucket names; the lists'
lengths add up to pol_meta[SIZE]; the free chain holds the other buckets.

Tie-breaking, chosen to agree exactly with cachetools.LFUCache (whose source does the
same with its own bucket list): within a count, entries are ordered by the time they
reached that count, and the earliest is evicted. Since an entry's count rises at every
access, the time it reached its count IS its last access, so the rule is "least
frequently used, ties broken by least recently used". (A new entry joins the head of the
count-1 bucket; a hit joins the head of the next bucket; a slot alone in its bucket whose
next count is missing has its bucket's count bumped in place, as cachetools does, which
gives the same order without taking a new bucket.) Any other rule (FIFO by insertion,
random) changes miss counts on real traces by a fraction of a percent, enough to break an
oracle comparison, which is why it is pinned down here and tested against cachetools.

Properties. LFU is a stack algorithm (Mattson et al. 1970), so no Belady anomaly. Under
the independent reference model (a stationary Zipf trace), where popularity is the only
signal, "perfect" LFU, which keeps counts for evicted keys too, is the best online policy;
in-cache LFU forgets and comes close: ~17 % below LRU's misses (.4249 against .5144 with 808
objects cached, on a 1M-request Zipf 1.0 trace of 100k objects (seed 42) replayed by
libCacheSim 0.3.5), on a par with ARC and SIEVE. Its weaknesses are the mirror of LRU's:
counts accumulated in the past pin entries that are no longer popular (cache pollution under
shifting popularity) and new entries, starting at 1, are the first victims; that is why Redis
decays its counter and why W-TinyLFU adds a window and an admission filter.
"""

from __future__ import annotations

from typing import Any

from memsim.sim.machine.jit import njit_kernel
from memsim.sim.machine.shm import ArraySpec
from memsim.sim.policies.base import SIZE, CompiledPolicy, Kernels, State, register
from memsim.sim.policies.lists import fill, fill_chain, init_sentinels, walk

FREE = 2  # pol_meta cell: head of the free bucket chain

# The kernels (base.Kernels' statuses). State: (pol_prev, pol_next, pol_bucket, pol_bprev, pol_bnext,
# pol_bcount, pol_meta); n = len(pol_bucket) slots, bucket b's list sentinel is n + b, the root n.


@njit_kernel
def _link_head(prv: Any, nxt: Any, head: int, node: int) -> None:
    first = nxt[head]  # lists.push_head
    nxt[node] = first
    prv[node] = head
    prv[first] = node
    nxt[head] = node


@njit_kernel
def _new_bucket(st: State, after: int, count: int) -> int:
    """Take a bucket from the free chain and link it after bucket `after` with `count` (-1: none left,
    which cannot happen while the bookkeeping holds: buckets <= present slots)."""
    prv, nxt, bprev, bnext, meta = st[0], st[1], st[3], st[4], st[6]
    b = meta[FREE]
    if b < 0:
        return -1
    meta[FREE] = bnext[b]
    st[5][b] = count
    _link_head(bprev, bnext, after, b)  # lists.link_after
    h = len(st[2]) + b
    prv[h] = nxt[h] = h
    return b


@njit_kernel
def _free_bucket(st: State, b: int) -> None:
    """Unlink an empty bucket from the bucket list and give it back to the free chain."""
    prv, nxt, bprev, bnext, meta = st[0], st[1], st[3], st[4], st[6]
    p, n = bprev[b], bnext[b]
    bnext[p] = n
    bprev[n] = p
    bprev[b] = -1
    h = len(st[2]) + b
    prv[h] = nxt[h] = -1
    bnext[b] = meta[FREE]
    meta[FREE] = b


@njit_kernel
def lfu_insert(st: State, slot: int, fingerprint: int) -> int:
    bucket, bnext, bcount = st[2], st[4], st[5]
    if bucket[slot] >= 0:
        return 1
    n = len(bucket)
    first = bnext[n]
    if bcount[first] != 1:  # the root's count, 0, when no bucket is in use
        first = _new_bucket(st, n, 1)
    _link_head(st[0], st[1], n + first, slot)
    bucket[slot] = first
    st[6][SIZE] += 1
    return 0


@njit_kernel
def lfu_hit(st: State, slot: int) -> int:
    prv, nxt, bucket, bcount = st[0], st[1], st[2], st[5]
    b = bucket[slot]
    if b < 0:
        return 1
    h = len(bucket) + b
    alone = nxt[slot] == h and prv[slot] == h
    c1 = bcount[b] + 1
    nb = st[4][b]
    if bcount[nb] != c1:  # (the root's count 0 is never c + 1)
        if alone:
            bcount[b] = c1  # in place: same order, no bucket taken
            return 0
        nb = _new_bucket(st, b, c1)
    p, x = prv[slot], nxt[slot]  # unlink the slot from b, then make it the head of nb
    nxt[p] = x
    prv[x] = p
    _link_head(prv, nxt, len(bucket) + nb, slot)
    bucket[slot] = nb
    if alone:
        _free_bucket(st, b)
    return 0


@njit_kernel
def lfu_remove(st: State, slot: int) -> int:
    prv, nxt, bucket = st[0], st[1], st[2]
    b = bucket[slot]
    if b < 0:
        return 1
    p, x = prv[slot], nxt[slot]  # lists.unlink
    nxt[p] = x
    prv[x] = p
    prv[slot] = nxt[slot] = -1
    bucket[slot] = -1
    h = len(bucket) + b
    if nxt[h] == h:
        _free_bucket(st, b)
    st[6][SIZE] -= 1
    return 0


@njit_kernel
def lfu_evict(st: State) -> int:
    n = len(st[2])
    b = st[4][n]
    if b == n:
        return -1
    victim = st[0][n + b]  # the tail: the earliest to reach the lowest count
    lfu_remove(st, victim)
    return victim


@register("lfu")
class LFU(CompiledPolicy):
    kernels = Kernels(lfu_insert, lfu_hit, lfu_remove, lfu_evict, (0, 1, 2, 3, 4, 5, 6))

    @classmethod
    def array_specs(cls, slots: int) -> list[ArraySpec]:
        return [
            ArraySpec("pol_prev", "int32", (2 * slots,)),
            ArraySpec("pol_next", "int32", (2 * slots,)),
            ArraySpec("pol_bucket", "int32", (slots,)),
            ArraySpec("pol_bprev", "int32", (slots + 1,)),
            ArraySpec("pol_bnext", "int32", (slots + 1,)),
            ArraySpec("pol_bcount", "int64", (slots + 1,)),
            ArraySpec("pol_meta", "int64", (3,)),
        ]

    def _bind(self, arrays: dict[str, Any]) -> None:
        self._prev = arrays["pol_prev"]
        self._next = arrays["pol_next"]
        self._bucket = arrays["pol_bucket"]
        self._bprev = arrays["pol_bprev"]
        self._bnext = arrays["pol_bnext"]
        self._bcount = arrays["pol_bcount"]
        self._root = self.slots

    def _reset(self) -> None:
        n = self.slots
        init_sentinels(self._prev, self._next, 0, 0)  # bucket sentinels are linked when a bucket is taken
        fill(self._bucket, -1)
        fill(self._bprev, -1)
        fill_chain(self._bnext, n)  # every bucket free: 0 → 1 → ... → n-1
        fill(self._bcount, 0)
        self._bprev[n] = self._bnext[n] = n  # the root, alone: no bucket in use
        self._meta[FREE] = 0

    def count(self, slot: int) -> int:
        """The access count of a present slot (1 after insert, +1 per hit; KeyError if absent)."""
        if slot not in self:
            raise KeyError(slot)
        return int(self._bcount[self._bucket[slot]])

    def buckets(self) -> list[tuple[int, list[int]]]:
        """(count, slots from head to tail) per bucket, lowest count first; for tests and explanations."""
        out: list[tuple[int, list[int]]] = []
        b = int(self._bnext[self._root])
        while b != self._root and len(out) <= self.slots:
            out.append((int(self._bcount[b]), walk(self._prev, self._next, self.slots + b, self.slots)[0]))
            b = int(self._bnext[b])
        return out

    def __contains__(self, slot: object) -> bool:
        i = self._index(slot)
        return i >= 0 and bool(self._bucket[i] >= 0)

    def check(self) -> list[str]:
        n, root = self.slots, self._root
        buckets, problems = walk(self._bprev, self._bnext, root, n)
        counted = 0
        seen: dict[int, int] = {}
        last = 0
        for b in buckets:
            c = int(self._bcount[b])
            if c <= last:
                problems.append(f"bucket {b} has count {c} after count {last}: counts must increase")
            last = c
            members, more = walk(self._prev, self._next, n + b, n)
            problems += more
            if not members:
                problems.append(f"bucket {b} (count {c}) is empty but still linked")
            for s in members:
                if not 0 <= s < n:
                    problems.append(f"bucket {b}'s list reaches {s}, not a slot")
                    continue
                if s in seen:
                    problems.append(f"slot {s} is in buckets {seen[s]} and {b}")
                seen[s] = b
                if self._bucket[s] != b:
                    problems.append(f"slot {s} is on bucket {b}'s list but pol_bucket says {int(self._bucket[s])}")
            counted += len(members)
        problems += self._check_size(counted)
        for s in range(n):
            if self._bucket[s] >= 0 and s not in seen:
                problems.append(f"slot {s} names bucket {int(self._bucket[s])} but is on no bucket list")
        free, b = 0, int(self._meta[FREE])
        while b >= 0 and free <= n:
            if self._bprev[b] != -1:
                problems.append(f"free bucket {b} still has a bprev link")
            free += 1
            b = int(self._bnext[b])
        if free + len(buckets) != n:
            problems.append(f"{len(buckets)} buckets in use + {free} free != the pool's {n}")
        return problems
