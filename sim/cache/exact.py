"""memsim's exact and modern eviction policies (`sim/policies`) over the keyspace's entries.

Redis approximates LRU and LFU by sampling because an exact policy needs a list threaded
through every key and an update of it on every access. Here that list exists: one policy
from `sim/policies` (exact LRU, exact LFU, FIFO, Clock, two-list, SIEVE, S3-FIFO), its slots
being the keyspace's entry indices, its whole state in shared arrays, driven by every core
under one lock, `keyspace/policy` (Linux's lru_lock for its page lists plays the same part).

Events, reported by the keyspace (keyspace.py):
    a new key's entry        insert(entry, fingerprint of the key)   in _touch(new=True)
    a read or overwrite      hit(entry) if the entry is in the policy
    a delete (DEL, expiry,   remove(entry) if the entry is in the policy, FIRST in
      eviction, FLUSHALL)      _unlink_and_free, before the key's object is freed
    eviction (evictor)       evict() -> entry, then the victim's key is read, all under the
                             policy lock; the entry is deleted afterwards under its stripe lock

Lock order: a stripe lock, then the policy lock, which is a leaf: nothing else is taken while
it is held, and the evictor takes it holding nothing. Why reading the victim's key under
the policy lock is safe: an entry is removed from the policy before its key object is freed,
by a core that needs this lock to do so; so while we hold it, an entry the policy just gave
us still holds its key. The delete that follows re-finds the key under its stripe lock; if
the key went away meanwhile (DEL, expiry, another core's eviction) that is a miss and the
evictor goes on; if it was set again meanwhile (a new entry), the fresh copy is evicted, which
a stale choice in Redis's pool can do too. An entry the evictor took out of the policy but
has not yet deleted gets no hit() (it is not in the policy): a benign race, costing at most
the victim's one last access.

Only one policy's state exists at a time. All policies' arrays are laid out once, at the
size of the largest user of each name (`pol_prev` is slots+1 long for LRU, 2*slots for
LFU...), each policy seeing prefix views. Switching to an exact policy (CONFIG SET
maxmemory-policy) holds every stripe lock, lays the new policy out and inserts every live
entry in the order of its 24-bit LRU/LFU field, so an LRU starts from Redis's recency
estimate; switching away just stops reporting events.

The sizing hint `capacity` (S3-FIFO's 10 % small queue, the two-list's active share) is set
to the number of keys each time an eviction starts: the cache is full then, and that is how
many keys fit at the current sizes. Until the first eviction nobody knows how many keys
maxmemory will hold, and the hint is the keyspace's entry count (the most it could hold).
"""

from __future__ import annotations

import numpy as np

from memsim.sim.machine.shm import ArraySpec
from memsim.sim.policies import POLICIES, Policy

FIRST_EXACT_ID = 8  # policy ids below are Redis's (evict.py), from here memsim's (config.py)
EXACT_IDS = {8: "lru", 9: "lfu", 10: "fifo", 11: "clock", 12: "twolist", 13: "sieve", 14: "s3fifo"}
PREFIX = "kspol_"  # region names: kspol_<the policy's own array name>


def exact_specs(slots: int) -> list[ArraySpec]:
    """Every array any exact policy needs, once per name, at the largest size asked for."""
    union: dict[str, ArraySpec] = {}
    for impl in EXACT_IDS.values():
        for s in POLICIES[impl].array_specs(slots):
            have = union.get(s.name)
            if have is not None and np.dtype(have.dtype) != np.dtype(s.dtype):
                raise TypeError(f"policy array {s.name} is {have.dtype} in one policy and {s.dtype} in another")
            if have is None or s.shape[0] > have.shape[0]:
                union[s.name] = ArraySpec(PREFIX + s.name, s.dtype, s.shape)
    return list(union.values())


def fingerprint(key_hash: int) -> int:
    """The key's 63-bit identity for S3-FIFO's ghost (never 0, which means unknown)."""
    return (key_hash >> 1) or 1


class ExactPolicies:
    """One core's views of the shared policy state: a Policy object per id, attached on first use."""

    def __init__(self, region: dict[str, np.ndarray], slots: int):
        self.region = region
        self.slots = slots
        self._views: dict[int, Policy] = {}

    def _arrays(self, cls: type[Policy]) -> dict[str, np.ndarray]:
        return {s.name: self.region[PREFIX + s.name][:s.shape[0]] for s in cls.array_specs(self.slots)}

    def get(self, pid: int) -> Policy:
        """The policy with this id, attached to the shared state (which must be laid out for it)."""
        view = self._views.get(pid)
        if view is None:
            cls = POLICIES[EXACT_IDS[pid]]
            view = cls(1, slots=self.slots, arrays=self._arrays(cls), init=False)
            self._views[pid] = view
        return view

    def lay_out(self, pid: int, entries: list[int], fingerprints: list[int]) -> Policy:
        """Initialise the shared state for policy pid holding `entries` (oldest first). Caller holds
        every stripe lock and the policy lock."""
        cls = POLICIES[EXACT_IDS[pid]]
        pol = cls(self.slots, slots=self.slots, arrays=self._arrays(cls), init=True)
        for e, fp in zip(entries, fingerprints, strict=True):
            pol.insert(e, fp)
        self._views = {pid: pol}
        return pol
