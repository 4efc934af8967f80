"""Virtual memory as one core's callers see it: the system-call surface over the modules of sim/vm.

One `VM` object per core process (like Heap and Keyspace), made by `Machine.vm(core)`; it is
the core's MM (mm.py: the shared arrays, locks, pool, swap, policy, TLB) and each of its methods
is one module's function, named where Linux keeps it:

    create_space, destroy_space, ...   spaces.py   (kernel/fork.c mm_alloc, mm/mmap.c exit_mmap)
    renew, release, reap, ...          leases.py
    regions, region_at                 vma.py      (vm_area_struct, find_vma)
    mmap, munmap                       mmap.py     (mm/mmap.c)
    mprotect                           mprotect.py (mm/mprotect.c)
    discard                            madvise.py  (MADV_DONTNEED)
    load, store, translate             memory.py   (mm/memory.c handle_mm_fault)
    pin_user_pages, unpin_user_pages   gup.py      (mm/gup.c, FOLL_PIN)
    reclaim_one                        vmscan.py   (mm/vmscan.c)
    memory_usage, memory_map, ...      task_mmu.py (fs/proc/task_mmu.c, mm/vmstat.c)

`boot` lays the VM's shared state out when the machine is created, before any core runs.
Locks, their order and every shared array: layout.py.
"""

from __future__ import annotations

from memsim.sim.errors import InvalidArgument
from memsim.sim.machine.memory import PhysicalMemory
from memsim.sim.vm import gup, leases, madvise, memory, mmap, mprotect, spaces, task_mmu, vmscan
from memsim.sim.vm.frames import FramePool
from memsim.sim.vm.hugepage import reserve_hugetlb
from memsim.sim.vm.kinds import PAGE_TABLE_DEFAULT, THP_MODES
from memsim.sim.vm.layout import HUGE_FRAMES, M_FREE, M_PIN_LIMIT, M_POLICY, M_SWAP_SLOTS, M_THP, VMArrays
from memsim.sim.vm.lru import make_policy
from memsim.sim.vm.mm import MM
from memsim.sim.vm.vma import R, Region, W, region_at, regions


class VM(MM):
    def alloc_table_frames(self, n: int) -> int:
        return vmscan.alloc_table_frames(self, n)  # a table that needs frames may reclaim pages for them

    # -- spaces and leases ---------------------------------------------------------------------

    def create_space(self, page_table: str = PAGE_TABLE_DEFAULT, bits: int | None = None, levels: int | None = None,
                     level_bits: int | None = None, name: str = "", owner: int = 0, lease: float = 0.0,
                     now: float = 0.0, system: int = 0) -> int:
        return spaces.create_space(self, page_table, bits, levels, level_bits, name, owner, lease, now, system)

    def destroy_space(self, sp: int) -> None:
        spaces.destroy_space(self, sp)

    def check_client_may_change(self, sp: int, what: str) -> None:
        spaces.check_client_may_change(self, sp, what)

    def renew(self, owner: int, now: float) -> int:
        return leases.renew(self, owner, now)

    def destroy_if_held(self, sp: int, owner: int, expired_at: float | None = None) -> bool:
        return leases.destroy_if_held(self, sp, owner, expired_at)

    def release(self, owner: int) -> list[int]:
        return leases.release(self, owner)

    def expired(self, now: float) -> list[int]:
        return leases.expired(self, now)

    def reap(self, now: float) -> list[int]:
        return leases.reap(self, now)

    # -- regions: mmap, munmap, mprotect, madvise ----------------------------------------------

    def regions(self, sp: int) -> list[Region]:
        return regions(self, sp)

    def region_at(self, sp: int, addr: int) -> Region | None:
        return region_at(self, sp, addr)

    def mmap(self, sp: int, length: int, prot: int = R | W, kind: str = "anon", name: str = "",
             addr: int | None = None, guard: bool = True, huge: bool = False, hugetlb: bool = False) -> int:
        """Map a region; returns its start. A stack gets a guard page below it (its own region).
        huge=True is madvise(MADV_HUGEPAGE): the region may get transparent huge pages (hugepage.py)
        and starts on a huge page; hugetlb=True is MAP_HUGETLB: whole huge pages from the boot-time
        reservation, set aside at mmap (refused if the reservation cannot cover them), never swapped."""
        return mmap.mmap(self, sp, length, prot, kind, name, addr, guard, huge, hugetlb)

    def munmap(self, sp: int, addr: int, length: int) -> int:
        return mmap.munmap(self, sp, addr, length)

    def mprotect(self, sp: int, addr: int, length: int, prot: int) -> None:
        mprotect.mprotect(self, sp, addr, length, prot)

    def discard(self, sp: int, addr: int, length: int) -> int:
        return madvise.discard(self, sp, addr, length)

    # -- the access path -----------------------------------------------------------------------

    def load(self, sp: int, addr: int, length: int) -> bytes:
        return memory.access(self, sp, addr, length)

    def store(self, sp: int, addr: int, data: bytes) -> None:
        memory.access(self, sp, addr, len(data), bytes(data))

    def translate(self, sp: int, addr: int, write: bool = False) -> memory.Translation:
        return memory.translate(self, sp, addr, write)

    def pin_user_pages(self, sp: int, addr: int, npages: int, write: bool = True,
                       longterm: bool = False) -> list[int]:
        """Fault in and pin npages pages from addr; their machine-wide frames (gup.py)."""
        return gup.pin_user_pages(self, sp, addr, npages, write, longterm)

    def unpin_user_pages(self, sp: int, frames: list[int], longterm: bool = False) -> None:
        gup.unpin_user_pages(self, sp, frames, longterm)

    def reclaim_one(self) -> bool:
        return vmscan.reclaim_one(self)

    def page_fingerprint(self, sp: int, vpn: int) -> int:
        return self.lru.fingerprint(sp, vpn)

    # -- reports -------------------------------------------------------------------------------

    def memory_usage(self, sp: int) -> task_mmu.MemoryUsage:
        return task_mmu.memory_usage(self, sp)

    def memory_map(self, sp: int) -> list[task_mmu.RegionUsage]:
        return task_mmu.memory_map(self, sp)

    def space_stats(self, sp: int) -> task_mmu.SpaceStats:
        return task_mmu.space_stats(self, sp)

    def vmstat(self) -> dict[str, int]:
        return task_mmu.vmstat(self)


def boot(a: VMArrays, mem: PhysicalMemory, pool_base: int, pool_frames: int, swap_slots: int, policy: int,
         thp: str, hugetlb_pages: int) -> None:
    """Lay the VM's shared state out, empty, before any core runs: the pool (the frames from pool_base),
    swap's slot count, the policy (its `policy_id`), the THP mode and the hugetlb
    reservation (refused if the pool cannot hold that many huge pages)."""
    FramePool.initialise(a.vm_free, a.vm_meta, pool_base, pool_frames)
    if not pool_frames:
        a.vm_free[:] = 0
    a.vm_meta[M_SWAP_SLOTS] = swap_slots if pool_frames else 0
    a.vm_meta[M_POLICY] = policy
    a.vm_meta[M_THP] = THP_MODES.index(thp)
    reserved = 0
    if hugetlb_pages:
        got = reserve_hugetlb(a, mem.frame_owner, hugetlb_pages)
        if got < hugetlb_pages:
            raise InvalidArgument(f"hugetlb_pages {hugetlb_pages}: only {got} huge pages of {HUGE_FRAMES} "
                                  f"frames fit the VM's {pool_frames}-frame pool")
        a.vm_meta[M_FREE] = int(a.vm_free.sum())
        reserved = got * HUGE_FRAMES
    # of the frames reclaim can use: the hugetlb reservation is never reclaimed, so it is not counted
    a.vm_meta[M_PIN_LIMIT] = (pool_frames - reserved) // gup.PIN_SHARE
    for rows in (a.vm_rmap_space, a.vm_rmap_vpn, a.vm_frame_swap, a.vm_deposit, a.sd_anchor, a.sd_space, a.sd_next):
        rows.fill(-1)
    make_policy(a, max(1, pool_frames), init=True)
