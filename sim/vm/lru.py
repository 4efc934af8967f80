"""Page replacement's lists: any sim/policies policy over the pool's frames (Linux: mm/swap.c's LRU
lists, mm/workingset.c's shadow entries).

Owns the policy's arrays (`VMArrays.policy`, laid out by the policy itself) and takes `vm/lru`
around every change of them; it also clears a frame's reverse map (`vm_rmap_space`) in the same
step as it takes the frame out of the policy (`unlist`), so that a reclaimer putting back a frame
it could not lock never sees it half released.

The policy hears of each page's arrival (`insert`, the offline simulator's miss), of each later
access (`touch`, its hit: the simulator can tell it every access, where hardware only sets the
PTE's accessed bit) and names victims (`evict`). It learns each page's identity
(`fingerprint`: the space's incarnation and the vpn, for S3-FIFO's ghost) and, before each
insertion and eviction, its capacity: the frames that can hold pages now (free ones plus the
pages it holds; page tables and the hugetlb reservation are not among them), the size the
offline simulator (sim/policies/simulate.py) calls its cache. A huge page is one entry (its head).

Invariant: a user frame is in the policy iff it holds a mapped small page or the head of a
transparent huge page (recovery.py checks it).
"""

from __future__ import annotations

from memsim.sim.errors import ResourceExhausted
from memsim.sim.machine.locks import SharedLock
from memsim.sim.policies import POLICIES, Policy, fingerprint
from memsim.sim.policies import policy_name as registered_name
from memsim.sim.vm.frames import FramePool
from memsim.sim.vm.layout import HUGE_TAIL, M_POLICY, VMArrays


def policy_name(a: VMArrays) -> str:
    """The policy the machine was booted with (vm_meta[M_POLICY] holds its `policy_id`)."""
    return registered_name(int(a.vm_meta[M_POLICY]))


def make_policy(a: VMArrays, nframes: int, init: bool) -> Policy:
    """The policy over the pool's frames, on its shared arrays: laid out empty (init) or attached."""
    return POLICIES[policy_name(a)](nframes if init else 1, slots=nframes, arrays=a.policy, init=init)


class PageLRU:
    def __init__(self, a: VMArrays, pool: FramePool, lock: SharedLock, huge_pages: int):
        self.a = a
        self.pool = pool
        self.lock = lock
        self.huge_pages = huge_pages
        self.policy = make_policy(a, pool.nframes, init=False)

    def __len__(self) -> int:
        return len(self.policy)

    def __contains__(self, f: int) -> bool:
        return f in self.policy

    def fingerprint(self, sp: int, vpn: int) -> int:
        """The policy's name for page vpn of space sp (base.py's fingerprint). A space slot reused by
        a new space has a new serial, so a policy's memory of evicted pages (S3-FIFO's ghost) dies
        with its space, as Linux's shadow entries live in the mapping itself (mm/workingset.c)."""
        return fingerprint((int(self.a.sp_serial[sp]), vpn))

    def size(self, incoming: int = 0) -> None:
        """Tell the policy its capacity (vm/lru held): the free frames, those of the pages it holds and
        `incoming` taken for pages it is about to hold. Two-list sizes its active list from it, S3-FIFO
        its queues. (A huge page is one entry: with THP the capacity is a hint.)"""
        cap = min(self.pool.nframes, max(1, self.pool.free_frames() + len(self.policy) + incoming))
        if cap != self.policy.capacity:
            self.policy.set_capacity(cap)

    def insert(self, f: int, sp: int, vpn: int) -> None:
        """The page vpn of sp in frame f (taken from the pool) is new to the policy (vm/lru held)."""
        self.size(incoming=1)
        self.policy.insert(f, self.fingerprint(sp, vpn))

    def admit(self, f: int, sp: int, vpn: int) -> None:
        """A page was faulted, split, collapsed or migrated into frame f: the policy's insertion."""
        with self.lock:
            self.insert(f, sp, vpn)

    def putback(self, f: int, sp: int, vpn: int, still_mapped: bool = False) -> None:
        """Give a victim that could not go back to the policy (Linux's putback_lru_page); with
        still_mapped, only if its reverse map still names sp (it was not freed meanwhile)."""
        with self.lock:
            if f not in self.policy and (not still_mapped or int(self.a.vm_rmap_space[f]) == sp):
                self.insert(f, sp, vpn)

    def touch(self, frame: int) -> None:
        """An access that was no fault: the policy's hit. `frame` is machine-wide."""
        with self.lock:
            f = frame - self.pool.base
            if self.a.vm_huge[f] == HUGE_TAIL:  # a huge page ages as one: its head is in the policy
                f -= f % self.huge_pages
            if f in self.policy:
                self.policy.hit(f)

    def evict(self) -> int:
        """The policy's victim, taken out of it."""
        with self.lock:
            if not len(self.policy):
                raise ResourceExhausted(
                    f"out of memory: the VM's {self.pool.nframes} frames hold only page tables; "
                    f"map less or give the machine more VM memory")
            self.size()
            return self.policy.evict()

    def unlist(self, f: int) -> None:
        """Take frame f out of the policy and out of the reverse map in one step under vm/lru."""
        with self.lock:
            if f in self.policy:
                self.policy.remove(f)
            self.a.vm_rmap_space[f] = -1

    def remove(self, f: int) -> None:
        """Take frame f out of the policy (vm/lru held by the caller)."""
        if f in self.policy:
            self.policy.remove(f)
