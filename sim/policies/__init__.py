"""Replacement policies: one module per policy, one interface (base.Policy), one registry.

    from memsim.sim.policies import POLICIES
    p = POLICIES["sieve"](capacity=1000)   # then p.insert / p.hit / p.remove / p.evict

Used by the Redis-like cache (its exact and modern policies), by virtual memory's page
replacement, and by the trace simulator (`simulate.py`). A new policy is a new module plus
one import line below.
"""

from memsim.sim.policies import clock, fifo, lfu, lru, s3fifo, sieve, twolist  # noqa: F401  (they register)
from memsim.sim.policies.base import POLICIES, Policy, register

__all__ = ["POLICIES", "Policy", "register"]
