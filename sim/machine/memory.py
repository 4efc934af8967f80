"""Physical memory: the machine's frames and the frame table.

The frames are one shared segment of raw bytes, `memory_bytes` long, cut into frames of
`frame_size` bytes (defaults 64 MiB and 4 KiB). The frame table (`frame_owner`, in the
metadata segment) says who holds each frame: nobody, the heap (sim/alloc/pagesource.py), a
page table or a user page of virtual memory (sim/vm). What page replacement knows of a frame
(referenced, active, its list) is the replacement policy's own state (sim/policies), and the
dirty bit is the page-table entry's, as in Linux.

Frame ownership changes only under the lock of the layer that owns the frame (the heap's
lock for heap frames, the VM's pool lock for its frames), so the table itself needs no lock.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.machine.shm import ArraySpec

FRAME_FREE, FRAME_HEAP, FRAME_PAGETABLE, FRAME_USER = 0, 1, 2, 3
FRAME_OWNER_NAMES = {FRAME_FREE: "free", FRAME_HEAP: "heap", FRAME_PAGETABLE: "pagetable", FRAME_USER: "user"}


def frame_specs(memory_bytes: int, frame_size: int) -> list[ArraySpec]:
    return [ArraySpec("frame_owner", "uint8", (memory_bytes // frame_size,))]


class PhysicalMemory:
    """Frames (raw bytes) plus the frame table."""

    def __init__(self, data: np.ndarray, frame_size: int, frame_owner: np.ndarray):
        self.data = data
        self.frame_size = frame_size
        self.size = int(data.shape[0])
        self.frame_owner = frame_owner

    def set_frames(self, lo: int, hi: int, owner: int) -> None:
        self.frame_owner[lo:hi] = owner

    def zero_frames(self, lo: int, hi: int) -> None:
        fs = self.frame_size
        self.data[lo * fs: hi * fs] = 0

    def frames_by_owner(self) -> dict[str, int]:
        counts = np.bincount(self.frame_owner, minlength=len(FRAME_OWNER_NAMES))
        return {FRAME_OWNER_NAMES[i]: int(counts[i]) for i in FRAME_OWNER_NAMES}
