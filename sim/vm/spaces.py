"""Address spaces: creating one (Linux's mm_alloc and mm_init, kernel/fork.c) and tearing one down
(exit_mmap, mm/mmap.c).

A space is a slot of the space table (`sp_*`, MAX_SPACES of them) with a page table of one of
the registered kinds (kinds.py). Creating one checks every field first (`shape`: the width, and
the levels only a radix tree has), then, under `vm/spaces` and the slot's lock, writes the slot
and lays the table out through its kind's `create`. The slot's serial (`sp_serial`) names this
incarnation: table objects built for an older one are not reused (mm.py), and the policy's
memory of its pages dies with it (lru.py).

Touches: the slot's `sp_*` and `vma_count` (under vm/spaces and the slot's lock), the
machine-wide serial (`vm_meta[M_SPACE_SERIAL]`, under vm/spaces); destroying releases the
space's pins (gup.py), frees every page (memory.zap_range) and the table's frames.
Lock order: vm/spaces -> vm/space/<i> -> the rest.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from memsim.sim.vm.gup import release_space_pins
from memsim.sim.vm.kinds import PAGE_TABLE_DEFAULT
from memsim.sim.vm.layout import M_SPACE_SERIAL, MAX_SPACES, SYSTEM_ISOLATE
from memsim.sim.vm.memory import zap_range
from memsim.sim.vm.mm import MM, store_name
from memsim.sim.vm.pagetable import MAX_BITS, SpaceShape, check_kind, kind_id


def shape(mm: MM, page_table: str, bits: int | None, levels: int | None, level_bits: int | None) -> SpaceShape:
    """Every create_space field checked before anything changes."""
    kind = check_kind(page_table)
    for field, value in (("bits", bits), ("levels", levels), ("level_bits", level_bits)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise InvalidArgument(f"{field} must be an integer, got {value!r}")
    if bits is None:
        bits = kind.default_bits
    if not mm.shift + 2 <= bits <= MAX_BITS:
        raise InvalidArgument(f"bits (the address width) is {bits}: it must be between {mm.shift + 2} "
                              f"and {MAX_BITS} (0 = the default: 32 for linear and hybrid, 48 otherwise)")
    return kind.shape(bits, levels, level_bits, mm.shift)


def create_space(mm: MM, page_table: str = PAGE_TABLE_DEFAULT, bits: int | None = None, levels: int | None = None,
                 level_bits: int | None = None, name: str = "", owner: int = 0, lease: float = 0.0,
                 now: float = 0.0, system: int = 0) -> int:
    """A new address space; levels and level_bits (multilevel only) default to x86-64's 9-bit levels,
    as many as the width needs. owner != 0 holds it on a lease of `lease` seconds from `now`
    (leases.py). system=SYSTEM_ARENA (or True) makes it the machine's own (the allocator's arena with heap_in_vm),
    SYSTEM_ISOLATE an isolate's managed heap (sim/v8): see check_client_may_change."""
    geometry = shape(mm, page_table, bits, levels, level_bits)
    if not 0 <= owner < 1 << 63 or (owner and not 0 < lease < float("inf")):
        raise InvalidArgument(f"owner {owner} needs a positive, finite lease (got {lease})")
    if not isinstance(name, str):
        raise InvalidArgument(f"name must be a string, got {type(name).__name__}")
    a = mm.a
    with mm.locks.spaces:
        free = np.flatnonzero(a.sp_state == 0)
        if not free.size:
            raise ResourceExhausted(f"all {MAX_SPACES} address spaces are in use")
        sp = int(free[0])
        with mm.locks.space[sp]:
            a.sp_kind[sp] = kind_id(page_table)
            a.sp_bits[sp] = geometry.bits
            a.sp_levels[sp] = geometry.levels
            a.sp_level_bits[sp] = geometry.level_bits
            a.sp_stats[sp] = 0
            a.vma_count[sp] = 0
            store_name(a.sp_name[sp], name)
            a.sp_owner[sp], a.sp_lease[sp], a.sp_expiry[sp] = owner, lease, now + lease
            a.sp_system[sp] = system
            a.sp_tlbgen[sp] += 1
            a.vm_meta[M_SPACE_SERIAL] += 1
            a.sp_serial[sp] = a.vm_meta[M_SPACE_SERIAL]
            a.sp_hugetlb[sp] = 0
            check_kind(page_table).create(mm.ctx(sp), geometry)
            a.sp_state[sp] = 1
        return sp


def destroy_space(mm: MM, sp: int) -> None:
    mm.check_space(sp)
    with mm.locks.spaces, mm.locks.space[sp]:
        mm.check_space(sp)  # again, under the lock: another destroy may have come first
        destroy_locked(mm, sp)


def destroy_locked(mm: MM, sp: int) -> None:
    """Tear down space sp (vm/spaces and its lock held). Its pins go first: an exit drops them (gup.py)."""
    a = mm.a
    release_space_pins(mm, sp)
    for r in range(int(a.vma_count[sp])):
        zap_range(mm, sp, int(a.vma_start[sp, r]) >> mm.shift, int(a.vma_end[sp, r]) >> mm.shift)
    mm.table(sp).destroy()
    a.vma_count[sp] = 0
    a.sp_state[sp] = 0
    a.sp_owner[sp] = 0
    a.sp_system[sp] = 0
    a.sp_tlbgen[sp] += 1
    mm.forget_table(sp)


def check_client_may_change(mm: MM, sp: int, what: str) -> None:
    """Refuse a client's change (store, mmap, munmap, mprotect, destroy) of one of the machine's own
    spaces: the allocator's arena (heap_in_vm) is changed only by the allocator, through its page
    source, which knows what its bytes mean; a client may still load, translate and read the
    reports, as a process may read /proc/kcore but not write it. An isolate's managed heap
    (SYSTEM_ISOLATE, sim/v8) is the same: its words are objects only the isolate may change."""
    if isinstance(sp, int) and 0 <= sp < MAX_SPACES and mm.a.sp_system[sp]:
        whose = ("an isolate's managed heap (sim/v8)" if mm.a.sp_system[sp] == SYSTEM_ISOLATE
                 else "the allocator's heap arena, --heap-in-vm")
        raise FailedPrecondition(f"{what} in address space {sp} refused: it is the machine's own ({whose}); "
                                 f"clients may load from it, not change it")
