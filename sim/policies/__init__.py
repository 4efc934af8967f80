"""Replacement policies: one module per policy, one interface (base.Policy), one registry.

    from memsim.sim.policies import POLICIES, Keyed
    p = POLICIES["sieve"](capacity=1000)          # over slots 0..999, private storage
    p.insert(slot, fingerprint); p.hit(slot); p.remove(slot); victim = p.evict()
    k = Keyed(POLICIES["sieve"](1000))            # the same over hashable keys

    # in shared memory, several processes, one lock held by the caller:
    specs = POLICIES["sieve"].array_specs(slots)  # lay these out in a SharedRegion, then
    p = POLICIES["sieve"](capacity, slots=slots, arrays=region.arrays, init=True)   # creator
    p = POLICIES["sieve"](capacity, slots=slots, arrays=region.arrays, init=False)  # others

Modules: base.py (Policy, CompiledPolicy and its Kernels, the registry, policy ids), lists.py (the
linked lists most use), one per policy (lru, fifo, lfu, clock, twolist, sieve, s3fifo; all but lfu
are numba kernels), keyed.py (the same over hashable keys), simulate.py (the trace simulator,
Belady's OPT, Zipf traces), compiled.py (the compiled replay loop over the kernels, OPT compiled).

Used by the Redis-like cache (its exact and modern policies), by virtual memory's page
replacement, and by the trace simulator (`simulate.py`). A new policy is a new module plus
one import line below.
"""

from memsim.sim.policies import clock, fifo, lfu, lru, s3fifo, sieve, twolist  # noqa: F401  (they register)
from memsim.sim.policies.base import POLICIES, ArraySpec, Policy, policy_id, policy_name, policy_names, register
from memsim.sim.policies.keyed import Keyed, KeyedPolicy, fingerprint

__all__ = [
    "POLICIES",
    "ArraySpec",
    "Keyed",
    "KeyedPolicy",
    "Policy",
    "fingerprint",
    "policy_id",
    "policy_name",
    "policy_names",
    "register",
]
