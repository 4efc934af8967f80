"""Keyed: a slot policy driven by hashable keys, for the trace simulator and the tests.

The policies speak slots (base.py): the keyspace and virtual memory already number their
entries and frames. A trace speaks keys (ints, bytes, (space, vpn) pairs). This adapter is
the owner's half of the bargain done once: a dict from key to slot, a stack of free slots,
and each key's fingerprint for S3-FIFO's ghost. It checks the same preconditions on keys
that the policies check on slots, so that

    p = Keyed(POLICIES["sieve"](1000))
    p.insert(key); p.hit(key); p.remove(key); victim_key = p.evict()

behaves as the key-level policies of old did. A Keyed policy holds at most `slots` keys at
once (the policy's arrays have no more room): create the policy with `slots=` larger than
its capacity if the owner holds more keys than that.

It is private to one process (the dict cannot be shared); the policy under it can be
either kind of storage.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Protocol

from memsim.sim.policies.base import Policy

__all__ = ["Keyed", "KeyedPolicy", "fingerprint"]

_FP_MASK = (1 << 63) - 1


def fingerprint(key: Hashable) -> int:
    """A 63-bit identity of key for S3-FIFO's ghost: hash(key), never 0 (0 means "unknown").

    Stable within one process only (str and bytes hashes are salted per process), which is
    all a private Keyed needs; an owner whose policy is shared across processes must derive
    fingerprints from the key's bytes instead (e.g. a keyed blake2b).
    """
    fp = hash(key) & _FP_MASK
    return fp if fp else _FP_MASK  # hash(0) == 0: move it to a value no small int hashes to


class KeyedPolicy(Protocol):
    """What the trace simulator drives: a policy over hashable keys (Keyed, or a wrapper of one)."""

    def insert(self, key: Hashable) -> None: ...

    def hit(self, key: Hashable) -> None: ...

    def remove(self, key: Hashable) -> None: ...

    def evict(self) -> Hashable: ...

    def __len__(self) -> int: ...

    def __contains__(self, key: object) -> bool: ...


class Keyed:
    """A slot policy seen through hashable keys. See the module doc."""

    def __init__(self, policy: Policy):
        if len(policy):
            raise ValueError(f"Keyed needs an empty policy to own its slots; {policy!r} holds {len(policy)}")
        self.policy = policy
        self._slot: dict[Hashable, int] = {}
        self._key: list[Hashable | None] = [None] * policy.slots
        self._free: list[int] = list(range(policy.slots - 1, -1, -1))  # pop() hands out slot 0 first
        # bound once: these run once per request of a trace
        self._p_insert = policy.insert
        self._p_hit = policy.hit
        self._p_remove = policy.remove
        self._p_evict = policy.evict

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def capacity(self) -> int:
        return self.policy.capacity

    def insert(self, key: Hashable) -> None:
        """A new key entered the cache (ValueError if it is already present, or if every slot is taken)."""
        if key in self._slot:
            raise ValueError(f"key {key!r} is already present: insert() is for new keys, use hit()")
        if not self._free:
            raise ValueError(
                f"all {self.policy.slots} slots hold keys: create the policy with more slots to hold more keys"
            )
        slot = self._free.pop()
        fp = hash(key) & _FP_MASK  # fingerprint(key), inlined: once per miss
        self._p_insert(slot, fp if fp else _FP_MASK)
        self._slot[key] = slot
        self._key[slot] = key

    def hit(self, key: Hashable) -> None:
        """An access to a present key (KeyError if absent)."""
        self._p_hit(self._slot[key])

    def remove(self, key: Hashable) -> None:
        """The owner deleted a present key (KeyError if absent)."""
        slot = self._slot[key]
        self._p_remove(slot)
        del self._slot[key]
        self._key[slot] = None
        self._free.append(slot)

    def evict(self) -> Hashable:
        """Choose a victim, forget it and return its key (KeyError if empty)."""
        slot = self._p_evict()
        key = self._key[slot]
        del self._slot[key]
        self._key[slot] = None
        self._free.append(slot)
        return key

    def run(self, trace: Iterable[Hashable], capacity: int) -> tuple[int, int, int]:
        """(hits, misses, evictions) of the simulator's cache loop on trace (simulate.run's loop).

        The same loop as simulate.run's generic one, with this adapter's bookkeeping inlined:
        it replays millions of requests, and the calls through insert/hit/evict double the cost
        of a request. A victim's slot goes straight to the key that replaces it.
        """
        slot_of, key_in, free = self._slot, self._key, self._free
        lookup = slot_of.get
        p_hit, p_insert, p_evict = self._p_hit, self._p_insert, self._p_evict
        hits = misses = evictions = 0
        for key in trace:
            slot = lookup(key)
            if slot is not None:
                p_hit(slot)
                hits += 1
                continue
            misses += 1
            if len(slot_of) >= capacity:
                slot = p_evict()
                del slot_of[key_in[slot]]
                evictions += 1
            elif free:
                slot = free.pop()
            else:
                raise ValueError(
                    f"all {self.policy.slots} slots hold keys: create the policy with more slots to hold more keys"
                )
            fp = hash(key) & _FP_MASK
            p_insert(slot, fp if fp else _FP_MASK)
            slot_of[key] = slot
            key_in[slot] = key
        return hits, misses, evictions

    def slot_of(self, key: Hashable) -> int:
        """The slot a present key occupies (KeyError if absent): to ask the policy about it."""
        return self._slot[key]

    def key_of(self, slot: int) -> Hashable:
        """The key in an occupied slot (KeyError if the slot is free)."""
        key = self._key[slot]
        if key is None and slot not in self.policy:
            raise KeyError(slot)
        return key

    def keys(self) -> list[Hashable]:
        """The present keys, in no particular order."""
        return list(self._slot)

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, key: object) -> bool:
        return key in self._slot

    def __repr__(self) -> str:
        return f"<Keyed {self.policy!r}>"
