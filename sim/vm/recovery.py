"""After a worker died mid-operation: find what the VM's shared state says that is not so, and repair it.

A core killed inside a fault, an unmap or a reclaim leaves its locks to the kernel (they are
fcntl locks) and may leave a step half done: a frame taken from the pool but not yet mapped,
a PTE pointing at a frame already given back, a swap slot taken but not yet recorded, a
table page allocated but not yet linked, counts off by one. Every structure here has a
single truth that can be recomputed, as the heap's recovery rebuilds its central lists from
the slot states:

    the page tables       which (space, vpn) maps which frame or swap slot
    the reverse map       which (space, vpn) each user frame belongs to

`recover` takes every VM lock (the machine is otherwise live: other cores wait), then:
1. a present PTE whose frame is still taken but no longer reverse-mapped gets its reverse map
   back (a release or reclaim cut short before the frame went back: the page stays); one whose
   frame is free or another page's is cleared (the unmap or reclaim had got that far);
2. a user frame that no PTE maps is given back to the pool (a fault or a swap-in that had
   taken it), and its swap-cache slot forgotten;
3. a page-table frame that no table reaches is given back (a table page allocated and not yet
   linked); what tables reach is asked of the page-table interface (pagetable.py): each live
   space's `frames()`, each kind's `machine_frames` (the inverted table), whatever the kind, plus
   the table each transparent huge page keeps in reserve (`vm_deposit`);
4. swap slots are exactly those some PTE or swap-cache entry names;
5. each space's rss and swap counts and its hugetlb reservation are recounted, the replacement
   policy is laid out again from the user frames, each under its page's name (their order is
   lost: a crash costs the policy its history), and every space's TLB generation is bumped, so
   no core keeps a translation from before;
6. pins (gup.py): the dead core's short-term ones (`vm_pin_core[core]`, when recover is told which
   core died) are released, as are pins on frames no page maps any more or on a huge page's tail;
   long-term pins (`vm_pin_longterm`) are the space's and stay. Each frame's count (`vm_pincount`)
   is recounted as the sum of its cores' plus its long-term pins, and the machine's (M_PINNED)
   from them. A core killed mid-pin is thereby whole: its row is dropped, whatever it had reached.
`check` reports the same conditions without changing anything (the tests' invariant).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np

from memsim.sim.machine.memory import FRAME_FREE, FRAME_PAGETABLE, FRAME_USER
from memsim.sim.vm import pte as P
from memsim.sim.vm.gup import pinned_frames
from memsim.sim.vm.layout import (
    HUGE_HEAD,
    HUGE_TAIL,
    HUGETLB_HEAD,
    HUGETLB_TAIL,
    M_FREE,
    M_PINNED,
    M_SWAP_USED,
    SP_RSS,
    SP_SWAP,
)
from memsim.sim.vm.lru import make_policy
from memsim.sim.vm.mm import MM
from memsim.sim.vm.pagetable import machine_frames
from memsim.sim.vm.vma import hugetlb_pages_of, regions


def table_entries(vm: MM, sp: int) -> tuple[np.ndarray, np.ndarray]:
    """Every non-zero PTE of space sp: (vpns, ptes) as int64/uint64 arrays (a huge page gives one per page)."""
    t = vm.table(sp)
    visited = t.visited
    out = t.entries(0, 1 << (vm.bits(sp) - vm.shift))
    t.visited = visited  # a check is not a call's walk: pagewalk_entries counts only the calls'
    return out


@dataclass
class Survey:
    """What the shared state says, recomputed from the page tables and the reverse map."""

    bad_ptes: list[tuple[int, int]] = field(default_factory=list)  # (space, vpn): maps what is not its page
    adopt: list[tuple[int, int, int]] = field(default_factory=list)  # (frame, space, vpn): reverse map lost
    mapped: set[int] = field(default_factory=set)  # user frames some PTE maps
    leaked_user: list[int] = field(default_factory=list)
    leaked_tables: list[int] = field(default_factory=list)
    stray: list[int] = field(default_factory=list)  # taken from the pool, no owner recorded
    slots: set[int] = field(default_factory=set)  # swap slots some PTE or swap-cache entry names
    used_slots: set[int] = field(default_factory=set)  # swap slots the slot map says are in use
    rss: dict[int, int] = field(default_factory=dict)
    swap: dict[int, int] = field(default_factory=dict)


def _survey(vm: MM) -> Survey:
    a = vm.a
    base = vm.pool.base
    rmap_s, rmap_v = a.vm_rmap_space, a.vm_rmap_vpn
    s = Survey()
    bad_ptes, adopt, mapped, slots, rss, swap = s.bad_ptes, s.adopt, s.mapped, s.slots, s.rss, s.swap
    # every frame a page table holds, through the interface: the machine's own (the inverted table's),
    # each space's, and the table each transparent huge page keeps in reserve for its split
    table_frames: set[int] = set(machine_frames(a).tolist())
    heads = np.flatnonzero(a.vm_huge == HUGE_HEAD)
    table_frames.update(int(d) for d in a.vm_deposit[heads].tolist() if d >= 0)
    for sp in vm.spaces():
        table_frames.update(vm.table(sp).frames().tolist())
        vpns, ptes = table_entries(vm, sp)
        rss[sp] = swap[sp] = 0
        for vpn, e in zip(vpns.tolist(), ptes.tolist(), strict=True):
            if e & P.P:
                f = P.frame_of(e) - base
                if 0 <= f < vm.pool.nframes and not vm.pool.free_map[f] and int(rmap_s[f]) == -1 \
                        and vm.mem.frame_owner[base + f] == FRAME_USER and f not in mapped:
                    adopt.append((f, sp, vpn))  # a release or reclaim cut short before the frame went back
                    mapped.add(f)
                    rss[sp] += 1
                elif not 0 <= f < vm.pool.nframes or vm.pool.free_map[f] or int(rmap_s[f]) != sp \
                        or int(rmap_v[f]) != vpn or f in mapped:
                    bad_ptes.append((sp, vpn))
                else:
                    mapped.add(f)
                    rss[sp] += 1
            elif P.is_swap(e):
                slots.add(P.swap_slot(e))
                swap[sp] += 1
    owner = vm.mem.frame_owner[base:base + vm.pool.nframes]
    taken = vm.pool.free_map == 0
    user = np.flatnonzero(taken & (owner == FRAME_USER)).tolist()
    reserved = (a.vm_huge == HUGETLB_HEAD) | (a.vm_huge == HUGETLB_TAIL)  # the hugetlb pool: never freed
    s.leaked_user = [f for f in user if f not in mapped and not reserved[f]]
    for f in mapped:
        slot = int(a.vm_frame_swap[f])
        if slot >= 0:
            slots.add(slot)
    tables = np.flatnonzero(taken & (owner == FRAME_PAGETABLE)).tolist()
    s.leaked_tables = [f for f in tables if f not in table_frames]
    s.stray = np.flatnonzero(taken & (owner == FRAME_FREE)).tolist()  # taken, no owner recorded yet
    s.used_slots = set(np.flatnonzero(a.sw_used[: vm.swap.slots]).tolist()) if vm.swap.slots else set()
    return s


def check(vm: MM) -> list[str]:
    """Every inconsistency of the VM's shared state (empty when sound). Take the locks or run quiescent."""
    s = _survey(vm)
    a = vm.a
    out = [f"space {sp}: vpn {vpn:#x} maps a frame that is not its page" for sp, vpn in s.bad_ptes]
    out += [f"frame {f}: mapped by space {sp} at vpn {vpn:#x} but not reverse-mapped" for f, sp, vpn in s.adopt]
    out += [f"frame {f}: a user frame no page maps" for f in s.leaked_user]
    out += [f"frame {f}: a page-table frame no table reaches" for f in s.leaked_tables]
    out += [f"frame {f}: taken from the pool with no owner" for f in s.stray]
    if s.slots != s.used_slots:
        out.append(f"swap: slots in use {len(s.used_slots)}, referenced {len(s.slots)}")
    if int(a.vm_meta[M_SWAP_USED]) != len(s.used_slots):
        out.append(f"swap: the count says {int(a.vm_meta[M_SWAP_USED])}, the map {len(s.used_slots)}")
    if int(a.vm_meta[M_FREE]) != int(vm.pool.free_map.sum()):
        out.append(f"pool: the count says {int(a.vm_meta[M_FREE])} free, the map {int(vm.pool.free_map.sum())}")
    for sp, n in s.rss.items():
        if int(a.sp_stats[sp, SP_RSS]) != n:
            out.append(f"space {sp}: rss says {int(a.sp_stats[sp, SP_RSS])} pages, the table maps {n}")
        if int(a.sp_stats[sp, SP_SWAP]) != s.swap[sp]:
            out.append(f"space {sp}: swap says {int(a.sp_stats[sp, SP_SWAP])} pages, the table has {s.swap[sp]}")
    for sp in vm.spaces():
        spanned = hugetlb_pages_of(vm, regions(vm, sp))
        if int(a.sp_hugetlb[sp]) != spanned:
            out.append(f"space {sp}: {int(a.sp_hugetlb[sp])} huge pages reserved, its hugetlb regions span {spanned}")
    pol = vm.policy
    aging = [f for f in s.mapped if a.vm_huge[f] not in (HUGE_TAIL, HUGETLB_HEAD, HUGETLB_TAIL)]
    # a pinned page may be off the policy (reclaim parked it, gup.py puts it back at the last unpin)
    listed = [f for f in aging if f in pol]
    if len(pol) != len(listed) or any(f not in pol and not a.vm_pincount[f] for f in aging):
        out.append(f"policy: holds {len(pol)} frames, {len(aging)} pages (or huge pages) are mapped")
    out += [f"policy: {p}" for p in pol.check()]
    return out + _check_pins(vm, s)


def _pinnable(vm: MM, s: Survey) -> np.ndarray:
    """Frames that may carry pins: mapped small pages and huge pages' heads."""
    ok = np.zeros(vm.pool.nframes, dtype=bool)
    ok[np.fromiter(s.mapped, dtype=np.int64, count=len(s.mapped))] = True
    return ok & ~np.isin(vm.a.vm_huge, (HUGE_TAIL, HUGETLB_TAIL))


def _check_pins(vm: MM, s: Survey) -> list[str]:
    a = vm.a
    held = a.vm_pin_core.sum(axis=0, dtype=np.int64) + a.vm_pin_longterm
    out = [f"frame {f}: {int(a.vm_pincount[f])} pins, its cores' pins sum to {int(held[f])} with its long-term ones"
           for f in np.flatnonzero(a.vm_pincount != held).tolist()]
    negative = (a.vm_pin_core < 0).any(axis=0) | (a.vm_pin_longterm < 0)
    out += [f"frame {f}: a negative pin count" for f in np.flatnonzero(negative).tolist()]
    out += [f"frame {f}: pinned, but no page maps it (or a huge page's tail)"
            for f in np.flatnonzero((a.vm_pincount != 0) & ~_pinnable(vm, s)).tolist()]
    if int(a.vm_meta[M_PINNED]) != pinned_frames(a):
        out.append(f"pins: the count says {int(a.vm_meta[M_PINNED])} frames pinned, the pin counts {pinned_frames(a)}")
    return out


def recover(vm: MM, core: int | None = None) -> dict[str, int]:
    """Repair the VM after a core died (see the module doc), releasing `core`'s pins if it is given;
    returns what was repaired."""
    a = vm.a
    with ExitStack() as held:
        held.enter_context(vm.locks.spaces)
        for lk in vm.locks.space:
            held.enter_context(lk)
        for lk in (vm.locks.frames, vm.locks.lru, vm.locks.swap, vm.locks.ipt):
            held.enter_context(lk)
        s = _survey(vm)
        cleared = len(s.bad_ptes)
        for sp, vpn in s.bad_ptes:
            vm.table(sp).set(vpn, 0)
        for f, sp, vpn in s.adopt:
            a.vm_rmap_space[f] = sp
            a.vm_rmap_vpn[f] = vpn
        freed = s.leaked_user + s.leaked_tables + s.stray
        for f in freed:
            a.vm_rmap_space[f] = -1
            a.vm_rmap_vpn[f] = -1
            a.vm_frame_swap[f] = -1
            vm.pool.free_map[f] = 1
            vm.mem.frame_owner[vm.pool.base + f] = FRAME_FREE
        reserved_map = (a.vm_huge == HUGETLB_HEAD) | (a.vm_huge == HUGETLB_TAIL)
        for f in range(vm.pool.nframes):
            if reserved_map[f] and f not in s.mapped:
                a.vm_rmap_space[f] = -1
                a.vm_rmap_vpn[f] = -1
            if vm.pool.free_map[f]:
                a.vm_rmap_space[f] = -1
                a.vm_rmap_vpn[f] = -1
                a.vm_frame_swap[f] = -1
                a.vm_huge[f] = 0
                a.vm_deposit[f] = -1
        a.vm_meta[M_FREE] = int(vm.pool.free_map.sum())
        s = _survey(vm)  # again, now that bad entries and leaked frames are gone
        if vm.swap.slots:
            a.sw_used[:] = 0
            for slot in s.slots:
                a.sw_used[slot] = 1
            a.vm_meta[M_SWAP_USED] = len(s.slots)
        for sp in vm.spaces():
            a.sp_stats[sp, SP_RSS] = s.rss.get(sp, 0)
            a.sp_stats[sp, SP_SWAP] = s.swap.get(sp, 0)
            a.sp_hugetlb[sp] = hugetlb_pages_of(vm, regions(vm, sp))
            a.sp_tlbgen[sp] += 1
        pol = make_policy(a, vm.pool.nframes, init=True)
        for f in sorted(s.mapped):
            if a.vm_huge[f] not in (HUGE_TAIL, HUGETLB_HEAD, HUGETLB_TAIL):  # hugetlb pages never age out
                pol.insert(f, vm.lru.fingerprint(int(a.vm_rmap_space[f]), int(a.vm_rmap_vpn[f])))
        vm.lru.policy = pol
        vm.lru.size()
        pins_before = int(a.vm_pincount.sum())
        if core is not None:
            a.vm_pin_core[core] = 0
        unpinnable = ~_pinnable(vm, s)
        a.vm_pin_core[:, unpinnable] = 0
        a.vm_pin_longterm[unpinnable] = 0
        np.maximum(a.vm_pin_core, 0, out=a.vm_pin_core)
        np.maximum(a.vm_pin_longterm, 0, out=a.vm_pin_longterm)
        a.vm_pincount[:] = a.vm_pin_core.sum(axis=0) + a.vm_pin_longterm
        a.vm_meta[M_PINNED] = pinned_frames(a)
    return {"ptes_cleared": cleared, "frames_freed": len(freed),
            "swap_slots_in_use": len(s.slots), "resident_pages": len(s.mapped),
            "pins_released": pins_before - int(a.vm_pincount.sum())}
