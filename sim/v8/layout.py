"""The managed heap's constants and shared arrays, and which lock guards each (V8's src/heap/,
`globals.h` and `memory-chunk-layout.h`, laid out on the machine).

An isolate (one V8 engine instance, as a Node process has one) is a row of every `iso_*` array and
a VM address space whose three regions are its heap (HEAP_BASE upwards):

    new space           2 x semi_space_size    two semispaces of pages (new_space.py)
    old space           max_old_space_size + 25 % slack, pages committed on demand (old_space.py)
    large-object space  max_old_space_size + one page, runs of pages (large_object_space.py)

A heap page (V8's MemoryChunk, `v8_page_size`, 256 KiB by default) is page-aligned in that space;
its frames are pinned for as long as the page is committed and reached through the direct map
`v8_dm` (direct_map.py). `page_slot` = (address - HEAP_BASE) >> page_shift indexes the `pg_*` rows.

    array            shape                    lock                meaning
    iso_state        (I,) int8                v8/isolates         FREE, CREATING, LIVE, LOST, DESTROYING
    iso_phase        (I,) int8                v8/isolate/<i>      what the holder is doing (IDLE outside a call)
    iso_holder       (I,) int16               v8/isolate/<i>      the core inside the locker, -1 none
    iso_epoch        (I,) int64               v8/isolate/<i>      bumped by every GC and commit (cached views)
    iso_cfg          (I, NCFG) int64          v8/isolates         C_* below: sizes, space, owner, test flags
    iso_lease        (I, 2) float64           v8/isolates         lease seconds, expiry
    iso_top          (I, NTOP) int64          v8/isolate/<i>      T_* below: allocation tops and limits
    iso_free         (I, NCAT) int64          v8/isolate/<i>      the old-space free list's category heads
    v8_dm            (I, max_heap/frame) i32  v8/isolate/<i>      the direct map: heap vpn -> machine frame
    pg_space         (I, slots) int8          v8/isolate/<i>      which space a page slot is committed to
    pg_allocated     (I, slots) int64         v8/isolate/<i>      bytes of objects on an old page
    pg_live          (I, slots) int64         v8/isolate/<i>      live bytes found by the last marking
    pg_lo_size       (I, slots) int64         v8/isolate/<i>      a large object's size, on its first page
    pg_slots         (I, slots, 2) int64      v8/isolate/<i>      recorded slots per page (OLD_TO_NEW, OLD_TO_OLD)
    v8_markbits      (pool words / 64,) u64   frame's isolate     one bit per word of the VM pool (marking.py)
    v8_slots         (2, pool words / 64) u64 frame's isolate     slot sets, one bit per pool word (remembered_set.py)
    hs_*, gh_*       (I, handles)             v8/isolate/<i>      handle scopes and global handles (handles.py)
    ext_*            (I, EXT)                 v8/isolate/<i>      ArrayBuffer backing stores (array_buffer_sweeper.py)
    tr_*, iso_ctr    (I, ...)                 v8/isolate/<i>      the GC tracer's ring, open event, running
                                                                  figures and counters (tracer.py)
    wl_*             (I, ...)                 v8/isolate/<i>/worklist  a collection's segmented worklists
                                                                  (worklist.py; a task's own segments: the task)
    gc_task          (I, MAX_TASKS, 48) int64 the task            a collection task's state, LABs and counters
                                                                  (scavenge_kernels.py's task row)
    gc_job           (I, NJOB) int64          atomics             a posted parallel job (gc_job.py's J_*)
    gc_item          (I, NITEM, 4) int64      atomics (claim)     its work items: claim, kind, lo, hi (gc_job.py)
    gc_lablog        (I, MAX_TASKS, NLABLOG, 2) the task          a task's promotion LABs this job (lo, hi)
    v8_blackbits     (pool words / 64,) u64   frame's isolate     marking's second colour: black = marked and
                                                                  visited, grey = marked and not (marking.py)
    iso_marking      (I, NMARK) int64         v8/isolate/<i>      an incremental marking cycle: M_* below
                                                                  (incremental_marking.py)
    wm_*             (I, ...)                 v8/isolate/<i>/worklist  the marking worklist (worklist.py's
                                                                  second pool; it outlives a call)
    tr_steps, tr_inc (I, ...)                 v8/isolate/<i>      marking steps: a ring and the cycle's sums
                                                                  (tracer_incremental.py)

The bitmaps are indexed by physical frame, machine-wide: a frame belongs to at most one isolate's
committed page at a time, so the isolate's locker guards its rows too, and no per-isolate sizing is
needed (V8's MarkingBitmap and SlotSet, one bit per tagged slot, keyed by the frame instead of the
chunk).

Lock order: v8/gc/<core> -> v8/isolates -> v8/isolate/<i> -> v8/isolate/<i>/gcalloc -> the allocator's
locks (backing stores) -> the VM's locks (pinning, discard, memory_usage); v8/isolate/<i>/worklist (the
worklists' global pool) is a leaf. v8/gc/<core> is held by a core while it is in a parallel job (main
or helper) and only ever probed by others, never waited for (gc_job.py); gcalloc guards old space's
free list and page commits while a job's tasks refill their promotion LABs.
All are the machine's fcntl byte locks, released by the kernel if their holder dies; recovery
(isolate_table.py) finds a phase other than IDLE and knows.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from memsim.sim.errors import InvalidArgument
from memsim.sim.machine.shm import ArraySpec
from memsim.sim.v8.tracer import TracerArrays, tracer_specs
from memsim.sim.v8.tracer_incremental import step_specs
from memsim.sim.v8.worklist import MAX_TASKS, WorklistArrays, marking_specs, worklist_specs

KiB, MiB = 1 << 10, 1 << 20
HEAP_BASE = 1 << 30  # the heap's first address in the isolate's space (V8 reserves a cage; any aligned base works)
SPACE_BITS = 40  # the isolate's address space: a 1 TiB multilevel space, mapped only where the heap is
CHUNK_HEADER = 64  # bytes at the start of every page: MemoryChunk's flags and bounds (memory_chunk.py)
WORD = 8
OLD_SLACK = 4  # old space's region is max_old_space_size + 1/OLD_SLACK: evacuation commits before it releases

# Isolate states (iso_state) and phases (iso_phase)
FREE, CREATING, LIVE, LOST, DESTROYING = range(5)
STATE_NAMES = ("free", "creating", "live", "lost", "destroying")
(IDLE, MUTATOR, SCAVENGE, MC_MARK, MC_EVACUATE, MC_UPDATE, MC_SWEEP, MC_RELEASE, MC_MARK_STEP) = range(9)
PHASE_NAMES = ("idle", "mutator", "Scavenge", "Mark-Compact (mark)", "Mark-Compact (evacuate)",
               "Mark-Compact (update pointers)", "Mark-Compact (sweep)", "Mark-Compact (release)",
               "an incremental marking step")

# iso_cfg columns
(C_SEMI, C_MAX_OLD, C_GROWING, C_SPACE, C_OWNER, C_HOME, C_BARRIER_OFF, C_FORCE_COMPACTION, C_VERIFY,
 C_CREATED_NS, C_LOST_PHASE, C_LOST_CORE, C_TEST_TASKS, C_TEST_RACE, C_TEST_NO_CAS) = range(15)
C_HELPERS = 15  # scavenge helpers: 0 = serial, -1 = V8's NumberOfScavengeTasks rule, n = at most n (gc_job.py)
NCFG = 24
# incremental marking (incremental_marking.py): C_INCREMENTAL 1 = start marking at the allocation limit
# instead of a Mark-Compact; C_MARKING_BARRIER_OFF (sim-only, like C_BARRIER_OFF) skips the marking
# barrier; C_STEP_BYTES a step's budget in bytes marked (0 = V8's 1 ms at the measured marking speed)
C_INCREMENTAL, C_MARKING_BARRIER_OFF, C_STEP_BYTES = 16, 17, 18
# concurrent marking (concurrent_marking.py): C_CONCURRENT 1 = a cycle starts at the allocation limit (as
# C_INCREMENTAL does) and helper cores mark while the mutator runs
C_CONCURRENT = 19
# compaction's abort-for-testing hook (compaction_job.py, V8's COMPACTION_WAS_ABORTED_FOR_TESTING): n + 1
# makes the middle evacuation candidate abort after n objects moved (0 = off)
C_TEST_ABORT = 23
# C_GROWING holds the fixed growing factor x 1000 (0 = V8's dynamic HeapGrowingFactor).
# Test hooks of the scavenger's parallel kernel, run in one process (scavenger.py): C_TEST_TASKS tasks
# (0 or 1: one) take turns, C_TEST_RACE stops each copy between its body and its forwarding CAS so the
# next task races it, C_TEST_NO_CAS forwards with a plain store instead (what the CAS prevents).

# iso_top columns
(T_TO_SPACE, T_NEW_TOP, T_NEW_LIMIT, T_AGE_MARK, T_NEW_USED, T_OLD_TOP, T_OLD_LIMIT, T_OLD_LIMIT_BYTES,
 T_ALLOCATED, T_SCAN, T_PROMO_START, T_OLD_PAGES, T_LO_BYTES, T_OLD_COMMITTED, T_BARRIER_SLOW) = range(15)
NTOP = 16
# T_TO_SPACE: which semispace (0/1) is to-space; T_NEW_TOP/LIMIT: the bump pointer and its page's end;
# T_AGE_MARK: V8's age mark (objects below it in to-space survived one scavenge); T_NEW_USED: bytes of
# objects in new space; T_OLD_TOP/LIMIT: old space's linear allocation area; T_OLD_LIMIT_BYTES: the
# old generation's allocation limit (heap_controller.py); T_ALLOCATED: bytes allocated since the
# last GC; T_OLD_PAGES: committed old pages; T_LO_BYTES: bytes of large objects;
# T_OLD_COMMITTED: committed bytes of old and large-object pages (against max_old_space_size);
# T_BARRIER_SLOW: write-barrier slow paths since the last GC

# The old-space free list's categories (V8's FreeListMany::categories_min, in bytes): a block is on
# the category of the largest minimum it reaches.
FREE_LIST_CATEGORIES = (24, 32, 48, 64, 80, 96, 112, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768,
                        65536, 131072, 262144)
NCAT = len(FREE_LIST_CATEGORIES)
MIN_FREE_BLOCK = FREE_LIST_CATEGORIES[0]  # smaller gaps become fillers, counted as wasted

# iso_marking columns: the cycle's state (OFF, MARKING), the bytes of young allocation left before the
# young observer's next step, the old generation's size at the last step (its growth, promotions
# included, is the old observer's count), whether the worklist overflowed (grey objects to rescan);
# concurrent marking's helpers over the cycle: their CPU ns, the objects they marked, the cores (a mask)
M_STATE, M_YOUNG_LEFT, M_OLD_AT_STEP, M_OVERFLOWED, M_HELPER_CPU_NS, M_HELPER_OBJECTS, M_HELPER_CORES = range(7)
NMARK = 8
MARKING_OFF, MARKING_ON = 0, 1

# Spaces (pg_space)
NO_SPACE, NEW_SPACE, OLD_SPACE, LO_SPACE = range(4)
SPACE_NAMES = ("", "new_space", "old_space", "large_object_space")

GC_TASK_COLUMNS = 48  # a collection task's row: scavenge_kernels.py's task_row
NJOB = 32  # gc_job's columns (gc_job.py's J_*)
NITEM = 1024  # work items per job (gc_job.py)
NLABLOG = 64  # promotion LABs a task logs per job; more and a dead helper's objects cannot be found
OLD_TO_NEW, OLD_TO_OLD = 0, 1  # remembered-set types (V8's RememberedSetType)
EXT_PER_ISOLATE = 4096  # ArrayBuffer backing stores one isolate may hold at once
SCOPE_DEPTH = 1024  # nested handle scopes


@dataclass(frozen=True)
class V8Geometry:
    """The sizes every module derives from the machine's configuration."""

    isolates: int
    page_size: int
    max_heap: int
    handles: int
    frame_size: int
    pool_base: int  # the VM pool's first machine frame
    pool_frames: int

    @property
    def page_shift(self) -> int:
        return self.page_size.bit_length() - 1

    @property
    def frame_shift(self) -> int:
        return self.frame_size.bit_length() - 1

    @property
    def slots(self) -> int:
        """Page slots of one isolate's reservation."""
        return self.max_heap // self.page_size

    @property
    def dm_entries(self) -> int:
        return self.max_heap // self.frame_size

    @property
    def frames_per_page(self) -> int:
        return self.page_size // self.frame_size

    @property
    def words_per_frame(self) -> int:
        return self.frame_size // WORD

    @property
    def max_regular_object(self) -> int:
        """V8's kMaxRegularHeapObjectSize: larger objects go to the large-object space."""
        return self.page_size // 2

    @property
    def bitmap_words(self) -> int:
        return max(1, self.pool_frames * self.words_per_frame // 64)


def check_geometry(page_size: int, max_heap: int, isolates: int, handles: int, frame_size: int) -> None:
    if page_size < 64 * KiB or page_size > MiB or page_size & (page_size - 1):
        raise InvalidArgument(f"v8_page_size {page_size} must be a power of two from 64 KiB to 1 MiB")
    if page_size % frame_size or frame_size < 512:
        raise InvalidArgument(f"v8_page_size {page_size} must be whole frames of {frame_size} bytes")
    if max_heap < 4 * page_size or max_heap % page_size or max_heap > 1 << 32:
        raise InvalidArgument(f"v8_max_heap {max_heap} must be whole pages of {page_size} bytes, at least 4 and "
                              f"at most 4 GiB")
    if not 1 <= isolates <= 256:
        raise InvalidArgument(f"v8_isolates {isolates} must be between 1 and 256")
    if not 64 <= handles <= 1 << 22:
        raise InvalidArgument(f"v8_handles {handles} must be between 64 and {1 << 22}")


def v8_specs(g: V8Geometry) -> list[ArraySpec]:
    i, s, h = g.isolates, g.slots, g.handles
    return [
        ArraySpec("iso_state", "int8", (i,)),
        ArraySpec("iso_phase", "int8", (i,)),
        ArraySpec("iso_holder", "int16", (i,)),
        ArraySpec("iso_epoch", "int64", (i,)),
        ArraySpec("iso_cfg", "int64", (i, NCFG)),
        ArraySpec("iso_lease", "float64", (i, 2)),
        ArraySpec("iso_top", "int64", (i, NTOP)),
        ArraySpec("iso_free", "int64", (i, NCAT)),
        ArraySpec("v8_dm", "int32", (i, g.dm_entries)),
        ArraySpec("pg_space", "int8", (i, s)),
        ArraySpec("pg_allocated", "int64", (i, s)),
        ArraySpec("pg_live", "int64", (i, s)),
        ArraySpec("pg_lo_size", "int64", (i, s)),
        ArraySpec("pg_slots", "int64", (i, s, 2)),
        ArraySpec("v8_markbits", "uint64", (g.bitmap_words,)),
        ArraySpec("v8_slots", "uint64", (2, g.bitmap_words)),
        ArraySpec("hs_slot", "int64", (i, h)),  # a local handle's tagged value (a root)
        ArraySpec("hs_stamp", "uint32", (i, h)),
        ArraySpec("hs_top", "int64", (i,)),
        ArraySpec("hs_scopes", "int64", (i, SCOPE_DEPTH)),  # the saved tops of the open scopes
        ArraySpec("hs_depth", "int64", (i,)),
        ArraySpec("hs_serial", "uint32", (i,)),  # the last stamp given out (kept across incarnations)
        ArraySpec("gh_slot", "int64", (i, h)),  # a global handle's tagged value (a root while used)
        ArraySpec("gh_stamp", "uint32", (i, h)),
        ArraySpec("gh_used", "uint8", (i, h)),
        ArraySpec("ext_addr", "int64", (i, EXT_PER_ISOLATE)),  # the backing store's address in sim/alloc's heap
        ArraySpec("ext_len", "int64", (i, EXT_PER_ISOLATE)),
        ArraySpec("ext_state", "int8", (i, EXT_PER_ISOLATE)),  # array_buffer_sweeper.py's FREE/YOUNG/OLD
        ArraySpec("ext_mark", "int8", (i, EXT_PER_ISOLATE)),
        *tracer_specs(i),
        *worklist_specs(i),
        ArraySpec("gc_task", "int64", (i, MAX_TASKS, GC_TASK_COLUMNS)),
        ArraySpec("gc_job", "int64", (i, NJOB)),
        ArraySpec("gc_item", "int64", (i, NITEM, 4)),
        ArraySpec("gc_lablog", "int64", (i, MAX_TASKS, NLABLOG, 2)),
        ArraySpec("v8_blackbits", "uint64", (g.bitmap_words,)),
        ArraySpec("iso_marking", "int64", (i, NMARK)),
        *marking_specs(i),
        *step_specs(i),
    ]


@dataclass
class V8Arrays:
    """Typed handles on the arrays above (views into the machine's meta segment)."""

    iso_state: np.ndarray
    iso_phase: np.ndarray
    iso_holder: np.ndarray
    iso_epoch: np.ndarray
    iso_cfg: np.ndarray
    iso_lease: np.ndarray
    iso_top: np.ndarray
    iso_free: np.ndarray
    v8_dm: np.ndarray
    pg_space: np.ndarray
    pg_allocated: np.ndarray
    pg_live: np.ndarray
    pg_lo_size: np.ndarray
    pg_slots: np.ndarray
    v8_markbits: np.ndarray
    v8_slots: np.ndarray
    hs_slot: np.ndarray
    hs_stamp: np.ndarray
    hs_top: np.ndarray
    hs_scopes: np.ndarray
    hs_depth: np.ndarray
    hs_serial: np.ndarray
    gh_slot: np.ndarray
    gh_stamp: np.ndarray
    gh_used: np.ndarray
    ext_addr: np.ndarray
    ext_len: np.ndarray
    ext_state: np.ndarray
    ext_mark: np.ndarray
    gc_task: np.ndarray
    gc_job: np.ndarray
    gc_item: np.ndarray
    gc_lablog: np.ndarray
    v8_blackbits: np.ndarray
    iso_marking: np.ndarray
    tr_steps: np.ndarray
    tr_inc: np.ndarray
    tracer: TracerArrays  # tracer.py's own arrays (tr_*, iso_ctr)
    worklists: WorklistArrays  # worklist.py's segments (wl_*)
    marking: WorklistArrays  # the marking worklist's segments (wm_*)

    @classmethod
    def from_region(cls, region: dict[str, np.ndarray]) -> V8Arrays:
        return cls(**{f.name: region[f.name] for f in fields(cls) if f.name not in ("tracer", "worklists", "marking")},
                   tracer=TracerArrays.from_region(region), worklists=WorklistArrays.from_region(region),
                   marking=WorklistArrays.from_region(region, "wm"))


def v8_lock_names(isolates: int, cores: int = 0) -> list[str]:
    return (["v8/isolates"] + [f"v8/isolate/{i}" for i in range(isolates)]
            + [f"v8/isolate/{i}/worklist" for i in range(isolates)]
            + [f"v8/isolate/{i}/gcalloc" for i in range(isolates)] + [f"v8/gc/{c}" for c in range(cores)])
