"""CLOCK: FIFO with a second chance, one reference bit per entry and a hand.

Corbató's algorithm for Multics ("A paging experiment with the Multics system", 1968),
the textbook approximation of LRU that operating systems can afford: the hardware sets a
page's accessed bit (x86 PTE bit 5) on every access for free, and only the replacement
path reads and clears it. The entries sit on a circle in arrival order; to evict, the hand
looks at the entry under it: referenced → clear the bit and move on (the entry survives one
more revolution), unreferenced → that is the victim.

Here the circle is literally a circle: a doubly linked ring of slots with no sentinel, and
the hand is a slot number. Passing over a referenced entry only clears its bit and
advances the hand (no list write, as in a real clock). A new entry is linked just behind
the hand, i.e. it is the last one the hand will look at, exactly where a ring buffer puts
it (the freed slot, after which the hand advances). This is the same policy as
"FIFO-Reinsertion", and the one libCacheSim calls Clock (1-bit default).

Arrays (base.py explains slots and storage; lists.py the link conventions):
    pol_prev, pol_next  int32[slots]  the ring; next = the direction the hand moves;
                        a lone entry links to itself; -1 in both = slot not present
    pol_ref             int8[slots]   reference bit of each present slot (0 when absent)
    pol_meta            int64[4]      capacity, number of present slots, hand (the slot
                                      under the hand, -1 iff empty), referenced_on_insert
Invariants: the ring through the hand holds exactly the present slots, each once; its
length is pol_meta[SIZE].

Choices: an entry enters with its bit CLEAR (it must be hit once to earn a second chance),
as in libCacheSim and in SIEVE's and S3-FIFO's papers. Setting it at insertion, as a
page fault's own access would in hardware, makes every resident entry look referenced after
a fill and turns the next eviction into a full sweep; pass `referenced_on_insert=True`
for that variant (stored in pol_meta, so that every attached process agrees). One bit
only (libCacheSim's "Clock-2" etc. keep small counters).

Properties. A hit costs one bit write, no list surgery, so it scales like FIFO; misses sit
just below LRU's (.5027 against .5144 with 808 objects cached, on a 1M-request Zipf 1.0 trace
of 100k objects (seed 42) replayed by libCacheSim 0.3.5). The hand is amortized O(1): each
entry it skips had its bit set by an earlier hit. Not a stack algorithm. NOTE: the CLOCK of
OSTEP's homework (paging-policy.py) is a different, randomised policy: each access bumps a
per-page counter capped at 2 and the eviction probes random pages, decrementing, until it
finds a zero (remzi-arpacidusseau/ostep-homework, vm-beyondphys-policy/paging-policy.py);
its numbers will not match these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memsim.sim.machine.jit import njit_kernel
from memsim.sim.machine.shm import ArraySpec
from memsim.sim.policies.base import SIZE, CompiledPolicy, Kernels, State, register
from memsim.sim.policies.lists import fill, init_sentinels

HAND = 2
REF_ON_INSERT = 3

# The kernels (base.Kernels' statuses). State: (pol_prev, pol_next, pol_ref, pol_meta).


@njit_kernel
def clock_insert(st: State, slot: int, fingerprint: int) -> int:
    prv, nxt, ref, meta = st[0], st[1], st[2], st[3]
    if nxt[slot] >= 0:
        return 1
    hand = meta[HAND]
    if hand < 0:
        prv[slot] = nxt[slot] = slot
        meta[HAND] = slot
    else:
        before = prv[hand]  # just behind the hand: the last it will reach (lists.link_before)
        prv[slot] = before
        nxt[slot] = hand
        nxt[before] = slot
        prv[hand] = slot
    ref[slot] = meta[REF_ON_INSERT]
    meta[SIZE] += 1
    return 0


@njit_kernel
def clock_hit(st: State, slot: int) -> int:
    if st[0][slot] < 0:  # State: (pol_next, the bit)
        return 1
    st[1][slot] = 1
    return 0


@njit_kernel
def clock_remove(st: State, slot: int) -> int:
    prv, nxt, ref, meta = st[0], st[1], st[2], st[3]
    n = nxt[slot]
    if n < 0:
        return 1
    if slot == meta[HAND]:  # under the hand: the hand moves on to the next one
        meta[HAND] = -1 if n == slot else n
    p = prv[slot]  # lists.unlink
    nxt[p] = n
    prv[n] = p
    prv[slot] = nxt[slot] = -1
    ref[slot] = 0
    meta[SIZE] -= 1
    return 0


@njit_kernel
def clock_evict(st: State) -> int:
    nxt, ref, meta = st[1], st[2], st[3]
    hand = meta[HAND]
    if hand < 0:
        return -1
    while ref[hand]:
        ref[hand] = 0  # second chance: the bit is cleared and the hand passes on
        hand = nxt[hand]
    meta[HAND] = hand  # the victim is under the hand; removing it moves the hand on
    clock_remove(st, hand)
    return hand


@register("clock")
class Clock(CompiledPolicy):
    kernels = Kernels(clock_insert, clock_hit, clock_remove, clock_evict, (1, 2))

    def __init__(
        self,
        capacity: int,
        *,
        slots: int | None = None,
        arrays: Mapping[str, Any] | None = None,
        init: bool = True,
        referenced_on_insert: bool | None = None,
    ):
        self._option = referenced_on_insert
        super().__init__(capacity, slots=slots, arrays=arrays, init=init)
        if referenced_on_insert is not None and referenced_on_insert != self.referenced_on_insert:
            raise ValueError(
                f"referenced_on_insert={referenced_on_insert} but the attached policy was created with "
                f"{self.referenced_on_insert}"
            )

    @classmethod
    def array_specs(cls, slots: int) -> list[ArraySpec]:
        return [
            ArraySpec("pol_prev", "int32", (slots,)),
            ArraySpec("pol_next", "int32", (slots,)),
            ArraySpec("pol_ref", "int8", (slots,)),
            ArraySpec("pol_meta", "int64", (4,)),
        ]

    def _bind(self, arrays: dict[str, Any]) -> None:
        self._prev = arrays["pol_prev"]
        self._next = arrays["pol_next"]
        self._ref = arrays["pol_ref"]

    def _reset(self) -> None:
        init_sentinels(self._prev, self._next, 0, 0)
        fill(self._ref, 0)
        self._meta[HAND] = -1
        self._meta[REF_ON_INSERT] = int(bool(self._option))

    @property
    def referenced_on_insert(self) -> bool:
        return bool(self._meta[REF_ON_INSERT])

    def referenced(self, slot: int) -> bool:
        """The reference bit of a present slot (KeyError if absent)."""
        if slot not in self:
            raise KeyError(slot)
        return bool(self._ref[slot])

    def order(self) -> list[int]:
        """Present slots from the one under the hand to the one just behind it (for tests)."""
        out: list[int] = []
        node = int(self._meta[HAND])
        while node >= 0 and len(out) < self.slots:
            out.append(node)
            node = int(self._next[node])
            if node == self._meta[HAND]:
                break
        return out

    def __contains__(self, slot: object) -> bool:
        i = self._index(slot)
        return i >= 0 and bool(self._next[i] >= 0)

    def check(self) -> list[str]:
        problems: list[str] = []
        prv, nxt, ref = self._prev, self._next, self._ref
        hand = int(self._meta[HAND])
        ring: list[int] = []
        if hand >= 0:
            if not 0 <= hand < self.slots or nxt[hand] < 0:
                return [f"the hand {hand} is not on a present slot"]
            node = hand
            while True:
                n = int(nxt[node])
                if n < 0 or int(prv[n]) != node:
                    problems.append(f"ring: next[{node}] = {n} has no matching prev")
                    break
                ring.append(node)
                if n == hand or len(ring) > self.slots:
                    break
                node = n
            if len(ring) > self.slots:
                problems.append("ring: no way back to the hand (a cycle that misses it)")
        problems += self._check_size(len(ring))
        on_ring = set(ring)
        for s in range(self.slots):
            if (nxt[s] >= 0) != (s in on_ring):
                problems.append(f"slot {s} has links but is not on the ring" if nxt[s] >= 0 else
                                f"slot {s} is on the ring with next = -1")
            if ref[s] and s not in on_ring:
                problems.append(f"absent slot {s} has its reference bit set")
        return problems
