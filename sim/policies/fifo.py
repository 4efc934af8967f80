"""FIFO: evict the entry that entered first; hits change nothing.

The oldest policy there is (the first paging systems, and the baseline of Belady's 1966
study). One queue in insertion order; a hit costs nothing at all, not even a bit, which
is its whole appeal: no metadata update on the read path, so no lock and no shared
cache line, and flash- and log-structured caches that cannot reorder in place use it.

Arrays (base.py explains slots and storage; lists.py the list conventions):
    pol_prev, pol_next  int32[slots + 1]  the queue; index `slots` is its sentinel,
                        next[sentinel] = newest, prev[sentinel] = oldest (the victim);
                        -1 in both = slot not present
    pol_meta            int64[2]          capacity, number of present slots
Invariants: the queue holds exactly the present slots, each once, in insertion order; its
length is pol_meta[SIZE]. The layout and every operation but the hit are LRU's (lru.py): FIFO is
LRU whose hit does not move the slot, so it is written as exactly that.

Properties. FIFO is not a stack algorithm and shows Belady's anomaly: on
1,2,3,4,1,2,5,1,2,3,4,5 it has 9 faults with 3 frames and 10 with 4 (Belady, Nelson and
Shedler, CACM 1969). It ignores popularity entirely, so it is the worst of the usual
policies on skewed traces (.556 misses against LRU's .514 with 0.8 % of the objects cached, on
a 1M-request Zipf 1.0 trace of 100k objects (seed 42) replayed by libCacheSim 0.3.5). The
modern FIFO-based policies keep its cheap hit and fix its blindness with one or two bits:
CLOCK (reinsert if referenced), SIEVE (keep referenced objects in place, a hand that does not
reset) and S3-FIFO (a small probationary FIFO that filters one-hit wonders). Same order as
cachetools.FIFOCache, which it equals exactly.
"""

from __future__ import annotations

from memsim.sim.machine.jit import njit_kernel
from memsim.sim.policies.base import Kernels, State, register
from memsim.sim.policies.lru import LRU, lru_evict, lru_insert, lru_remove


@njit_kernel
def fifo_hit(st: State, slot: int) -> int:
    return 1 if st[0][slot] < 0 else 0  # nothing moves: only the presence check (State: pol_next)


@register("fifo")
class FIFO(LRU):
    kernels = Kernels(lru_insert, fifo_hit, lru_remove, lru_evict, (1,))

    def order(self) -> list[int]:
        """Present slots from newest to oldest (for tests and explanations)."""
        return super().order()
