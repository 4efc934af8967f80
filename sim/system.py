"""The machine: its configuration, its two shared segments and its lock file, and the
per-core views built on them.

`Machine.create()` is called once, by the supervisor (or by a test), before any core exists.
It makes:
    memsim-<token>-phys   the physical memory (raw bytes)
    memsim-<token>-meta   every shared structure: frame table, lock counters, the heap's
                          page/span/slot arrays and per-core counters
    a lock file           anonymous (unlinked at once), one byte per lock
Cores are then forked from the creating process and call `machine.heap(core)` to build
their private view; nothing is attached by name, so nothing can outlive `destroy()` except
through a crash of the creator itself, and even then Python's resource tracker unlinks the
two segments.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from memsim.sim.alloc.heap import Heap, lock_names
from memsim.sim.alloc.layout import MAX_CORES, HeapArrays, heap_specs
from memsim.sim.alloc.pagesource import ARENA_BASE, FlatPhysicalSource
from memsim.sim.alloc.sizeclasses import PAGE_SIZE
from memsim.sim.cache.config import POLICY_IDS, maxmemory_over_heap
from memsim.sim.cache.db import KeyspaceArrays
from memsim.sim.cache.evict import Evictor
from memsim.sim.cache.keyspace import Keyspace, boot_keyspace, keyspace_specs
from memsim.sim.cache.layout import keyspace_lock_names
from memsim.sim.errors import FailedPrecondition, InvalidArgument
from memsim.sim.machine.doorbell import Doorbells
from memsim.sim.machine.locks import LockTable, lock_specs, make_lock_file
from memsim.sim.machine.memory import PhysicalMemory, frame_specs
from memsim.sim.machine.shm import SharedBytes, SharedRegion, new_token, segment_name
from memsim.sim.policies import POLICIES, policy_id, policy_names
from memsim.sim.v8.isolate_table import V8
from memsim.sim.v8.layout import V8Arrays, V8Geometry, check_geometry, v8_lock_names, v8_specs
from memsim.sim.vm.heapsource import HEAP_SPACE, SpacePageSource
from memsim.sim.vm.kinds import THP_DEFAULT, THP_MODES
from memsim.sim.vm.layout import HUGE_FRAMES, VMArrays, vm_lock_names, vm_specs
from memsim.sim.vm.swap import make_swap_file
from memsim.sim.vm.vm import VM
from memsim.sim.vm.vm import boot as boot_vm

KiB, MiB = 1 << 10, 1 << 20


VM_SHARE = 4  # `memsim serve` without --vm-memory gives 1/VM_SHARE of the machine to the VM's pool


def default_vm_memory(memory_bytes: int, frame_size: int) -> int:
    """`memsim serve`'s VM pool when none is asked for: 1/VM_SHARE of the machine, in whole frames
    and whole heap pages, so that the heap below the pool is whole pages too. A MachineConfig made
    without vm_memory has no virtual memory at all (vm_memory=0), as the allocator's and the
    cache's tests want."""
    unit = max(frame_size, PAGE_SIZE)
    return memory_bytes // VM_SHARE // unit * unit


@dataclass(frozen=True)
class MachineConfig:
    memory_bytes: int = 64 * MiB
    frame_size: int = 4096
    cores: int = 4
    per_core_caches: bool = True
    global_lock: bool = False
    max_keys: int = 65536  # entries of the cache's keyspace (sim/cache/db.py)
    maxmemory: int = 0  # the cache's limit in bytes at start (0 = none); CONFIG SET changes it later
    maxmemory_policy: str = "noeviction"  # any name of sim/cache/config.py's maxmemory_policies()
    vm_memory: int = 0  # the last vm_memory bytes of physical memory are virtual memory's frame pool
    vm_policy: str = "twolist"  # page replacement over that pool: any sim/policies name (Linux: two lists)
    swap_bytes: int | None = None  # the swap file's size (default: 4x vm_memory)
    tlb_entries: int = 64  # per core (Skylake's L1 DTLB)
    tlb_ways: int = 4
    thp: str = THP_DEFAULT  # transparent huge pages: one of sim/vm/kinds.py's THP_MODES (sim/vm/hugepage.py)
    hugetlb_pages: int = 0  # explicit huge pages set aside at boot (vm.nr_hugepages), for mmap(hugetlb=True)
    heap_in_vm: bool = False  # the allocator's arena is an address space of the VM (sim/vm/heapsource.py)
    heap_virtual_bytes: int | None = None  # with heap_in_vm: the arena's size (default: the whole memory)
    khugepaged_ms: int = 1000  # how often a worker's khugepaged scans (Linux: scan_sleep_millisecs 10000)
    v8_isolates: int = 16  # managed heaps (sim/v8) the machine can hold at once; they need vm_memory
    v8_page_size: int = 256 * KiB  # a heap page (V8's MemoryChunk: 256 KiB); objects above half of it are large
    v8_max_heap: int = 64 * MiB  # the most address space one isolate's heap may reserve
    v8_handles: int = 8192  # local handles, and global handles, per isolate

    @property
    def heap_bytes(self) -> int:
        """The allocator's arena: the memory below the VM's pool, in whole heap pages; or, with
        heap_in_vm, a virtual arena in an address space (it may exceed the physical pool)."""
        if self.heap_in_vm:
            return (self.heap_virtual_bytes or self.memory_bytes) // PAGE_SIZE * PAGE_SIZE
        return (self.memory_bytes - self.vm_memory) // PAGE_SIZE * PAGE_SIZE

    @property
    def swap_slots(self) -> int:
        swap = 4 * self.vm_memory if self.swap_bytes is None else self.swap_bytes
        return swap // self.frame_size

    def validate(self) -> None:
        fs = self.frame_size
        if fs < 512 or fs > 2 * MiB or fs & (fs - 1):
            raise InvalidArgument(f"frame size {fs} must be a power of two between 512 B and 2 MiB")
        m = self.memory_bytes
        if m < MiB or m % PAGE_SIZE or m % fs:
            raise InvalidArgument(
                f"memory {m} must be at least 1 MiB and a multiple of the frame size and of the heap's 8 KiB page")
        if m > 8 << 30:
            raise InvalidArgument(f"memory {m} is above this simulator's 8 GiB limit")
        if not 1 <= self.cores <= MAX_CORES:
            raise InvalidArgument(f"cores {self.cores} must be between 1 and {MAX_CORES}")
        if not 64 <= self.max_keys <= 1 << 26:
            raise InvalidArgument(f"max_keys {self.max_keys} must be between 64 and {1 << 26}")
        if self.maxmemory < 0:
            raise InvalidArgument(f"maxmemory {self.maxmemory} must be 0 (no limit) or a number of bytes")
        if self.vm_memory < 0 or self.vm_memory % self.frame_size or self.vm_memory > self.memory_bytes - MiB:
            raise InvalidArgument(f"vm_memory {self.vm_memory} must be whole frames of {self.frame_size} bytes and "
                                  f"leave at least 1 MiB of the {self.memory_bytes} bytes to the heap")
        if self.vm_policy not in POLICIES:
            raise InvalidArgument(f"vm_policy {self.vm_policy!r} is not one of: {', '.join(policy_names())}")
        if self.swap_bytes is not None and (self.swap_bytes < 0 or self.swap_bytes > 64 << 30):
            raise InvalidArgument(f"swap_bytes {self.swap_bytes} must be between 0 and 64 GiB")
        if not (1 <= self.tlb_ways <= self.tlb_entries <= 65536 and self.tlb_entries % self.tlb_ways == 0):
            raise InvalidArgument(f"a TLB of {self.tlb_entries} entries cannot be {self.tlb_ways}-way")
        if self.heap_in_vm and not self.vm_memory:
            raise InvalidArgument("heap_in_vm needs virtual memory: give vm_memory (the heap's pages come from it)")
        if self.heap_in_vm and not MiB <= self.heap_bytes <= 8 << 30:
            raise InvalidArgument(f"heap_virtual_bytes {self.heap_bytes} must be between 1 MiB and 8 GiB")
        if self.thp not in THP_MODES:
            raise InvalidArgument(f"thp {self.thp!r} is not one of {', '.join(THP_MODES)}")
        too_big = maxmemory_over_heap(self.maxmemory, self.heap_bytes)
        if too_big:
            raise InvalidArgument(f"maxmemory: {too_big} (the rest of the {self.memory_bytes}-byte physical memory is "
                                  f"the VM pool); give less --maxmemory, more --memory or less --vm-memory")
        pool_frames = self.vm_memory // self.frame_size
        if self.hugetlb_pages < 0 or self.hugetlb_pages > pool_frames // HUGE_FRAMES:
            raise InvalidArgument(
                f"hugetlb_pages {self.hugetlb_pages}: the VM pool of {pool_frames} frames holds "
                f"{pool_frames // HUGE_FRAMES} huge pages of {HUGE_FRAMES} frames; give more --vm-memory "
                f"({HUGE_FRAMES * self.frame_size} bytes per huge page) or fewer --hugetlb-pages")
        if self.vm_memory:
            check_geometry(self.v8_page_size, self.v8_max_heap, self.v8_isolates, self.v8_handles, self.frame_size)
        if self.maxmemory_policy not in POLICY_IDS:
            raise InvalidArgument(f"maxmemory-policy {self.maxmemory_policy!r} is not one of: {', '.join(POLICY_IDS)}")

    def as_dict(self) -> dict[str, int | bool | str | None]:
        return asdict(self)


class Machine:
    def __init__(self, config: MachineConfig):
        config.validate()
        self.config = config
        self.token = new_token()
        self.creator_pid = os.getpid()
        names, alias = lock_names(config.global_lock)
        names = names + keyspace_lock_names() + vm_lock_names() + (
            v8_lock_names(config.v8_isolates, config.cores) if config.vm_memory else [])
        self._lock_names, self._lock_alias = names, alias
        self.pool_frames = config.vm_memory // config.frame_size
        policy_specs = POLICIES[config.vm_policy].array_specs(max(1, self.pool_frames))
        specs = (frame_specs(config.memory_bytes, config.frame_size) + lock_specs(len(names))
                 + heap_specs(config.heap_bytes, config.cores) + keyspace_specs(config.max_keys, config.cores)
                 + vm_specs(max(1, self.pool_frames), config.swap_slots, config.cores, policy_specs))
        self.v8_geometry = V8Geometry(config.v8_isolates, config.v8_page_size, config.v8_max_heap, config.v8_handles,
                                      config.frame_size, config.memory_bytes // config.frame_size - self.pool_frames,
                                      self.pool_frames)
        if self.pool_frames:
            specs += v8_specs(self.v8_geometry)
        self._views: list[Heap] = []
        self._vm_views: dict[tuple[int, int], VM] = {}
        self._destroyed = False
        self.lock_fd = self.swap_fd = -1
        self.doorbells = Doorbells(0)  # one per core, made in _boot (before any fork: sim/machine/doorbell.py)
        self.phys = SharedBytes(segment_name(self.token, "phys"), config.memory_bytes)
        try:
            self.meta = SharedRegion.create(segment_name(self.token, "meta"), specs)
        except BaseException:
            self.phys.close()
            self.phys.unlink()
            raise
        try:
            self._boot(config)
        except BaseException:
            self.destroy()  # a machine that failed to boot leaves nothing behind in /dev/shm
            raise

    def _boot(self, config: MachineConfig) -> None:
        """Everything after the two segments exist: the lock file, the arrays' initial state, the VM."""
        self.lock_fd = make_lock_file()
        self.doorbells = Doorbells(config.cores)
        self.memory = PhysicalMemory(self.phys.data, config.frame_size, self.meta["frame_owner"])
        self.arrays = HeapArrays.from_region(self.meta.arrays)
        self.arrays.initialise()
        self.ks_arrays = KeyspaceArrays.from_region(self.meta.arrays)
        boot_keyspace(self.ks_arrays, config.maxmemory, config.maxmemory_policy)
        self.swap_fd = make_swap_file(config.swap_slots, config.frame_size) if self.pool_frames else -1
        self._boot_vm()
        if config.heap_in_vm:  # space 0: the heap's arena, mapped (not touched) before any core runs
            boot = self.supervisor_vm()
            sp = boot.create_space("multilevel", bits=48, name="go heap", system=True)
            boot.mmap(sp, config.heap_bytes, kind="heap", name="arena", addr=ARENA_BASE)

    def _boot_vm(self) -> None:
        """The VM's pool (the frames above the heap), its swap and its replacement policy, empty."""
        cfg = self.config
        boot_vm(VMArrays.from_region(self.meta.arrays), self.memory,
                cfg.memory_bytes // cfg.frame_size - self.pool_frames, self.pool_frames, cfg.swap_slots,
                policy_id(cfg.vm_policy), cfg.thp, cfg.hugetlb_pages)

    def vm(self, core: int) -> VM:
        """Virtual memory as `core` sees it (call in the core's own process): one view per core and
        process, shared by the VM service and a heap in an address space, so the core has one TLB."""
        if not self.pool_frames:
            raise FailedPrecondition("this machine has no virtual memory: start it with vm_memory > 0 "
                                     "(memsim serve --vm-memory 16MiB)")
        key = (os.getpid(), core)
        view = self._vm_views.get(key)
        if view is None:
            view = VM(VMArrays.from_region(self.meta.arrays), self.memory, self.locks(core + 1), self.swap_fd, core,
                      tlb_entries=self.config.tlb_entries, tlb_ways=self.config.tlb_ways)
            self._vm_views[key] = view
        return view

    def v8(self, core: int, heap: Heap) -> V8:
        """The managed heaps as `core` sees them (call in the core's own process): isolates live in
        address spaces of the VM and keep ArrayBuffers' backing stores in `heap`, the core's allocator."""
        return V8(V8Arrays.from_region(self.meta.arrays), self.v8_geometry, self.phys.data.view(np.int64),
                  self.phys.data, self.vm(core), heap, self.locks(core + 1), core, self.doorbells)

    def supervisor_v8(self) -> V8:
        """The supervisor's view (releasing isolates of dead clients, reports)."""
        return V8(V8Arrays.from_region(self.meta.arrays), self.v8_geometry, self.phys.data.view(np.int64),
                  self.phys.data, self.supervisor_vm(), self.supervisor_heap(), self.locks(0), self.config.cores)

    def supervisor_vm(self) -> VM:
        """The supervisor's view (recovery, reports): its own lock owner and vmstat row."""
        return VM(VMArrays.from_region(self.meta.arrays), self.memory, self.locks(0), self.swap_fd, self.config.cores,
                  tlb_entries=self.config.tlb_entries, tlb_ways=self.config.tlb_ways)

    @classmethod
    def create(cls, config: MachineConfig | None = None) -> Machine:
        return cls(config or MachineConfig())

    @property
    def segment_names(self) -> list[str]:
        return [self.phys.name, self.meta.name]

    def locks(self, owner_id: int) -> LockTable:
        """A lock table for one process (lock depth is per process)."""
        return LockTable(self.lock_fd, self.meta["lock_stats"], self._lock_names, self._lock_alias, owner_id)

    def _heap_source(self, vm_view: Callable[[], VM]) -> FlatPhysicalSource | SpacePageSource:
        if self.config.heap_in_vm:
            return SpacePageSource(vm_view(), HEAP_SPACE)
        return FlatPhysicalSource(self.memory, self.config.heap_bytes)

    def heap(self, core: int) -> Heap:
        """The heap as `core` sees it. Call in the core's own process, once."""
        if not 0 <= core < self.config.cores:
            raise InvalidArgument(f"core {core} does not exist (the machine has {self.config.cores})")
        source = self._heap_source(lambda: self.vm(core))
        h = Heap(core, self.arrays, source, self.locks(core + 1), self.phys.data,
                 self.config.heap_bytes // PAGE_SIZE, per_core_caches=self.config.per_core_caches)
        self._views.append(h)
        return h

    def keyspace(self, heap: Heap) -> Keyspace:
        """The cache's keyspace as the core owning `heap` sees it (call in that core's process),
        with its evictor attached (run by the command dispatcher, sim/cache/commands.py, before every
        denyoom command)."""
        ks = Keyspace(self.ks_arrays, heap.locks, heap)
        ks.attach_evictor(Evictor(ks, seed=heap.core))
        return ks

    def supervisor_heap(self) -> Heap:
        """A view for the supervisor's own work (scavenging, recovery, stats): core 0's
        counters row is never written through it except by recovery bookkeeping."""
        source = self._heap_source(self.supervisor_vm)
        h = Heap(0, self.arrays, source, self.locks(0), self.phys.data,
                 self.config.heap_bytes // PAGE_SIZE, per_core_caches=self.config.per_core_caches)
        self._views.append(h)
        return h

    def destroy(self) -> None:
        """Unmap and (in the creating process) unlink everything. Idempotent."""
        if self._destroyed:
            return
        self._destroyed = True
        # Every view of the segments this machine holds goes before they are unmapped: a view still
        # alive would keep its segment mapped (shm.py's close detaches rather than fail).
        self._views.clear()
        self._vm_views.clear()
        with contextlib.suppress(AttributeError):  # a machine that failed to boot has not made them all
            del self.memory, self.arrays, self.ks_arrays  # in the order _boot makes them
        owner = os.getpid() == self.creator_pid
        for seg in (self.meta, self.phys):
            seg.close()
            if owner:
                seg.unlink()
        self.doorbells.close()
        if self.lock_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.lock_fd)
        if self.swap_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.swap_fd)

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()
