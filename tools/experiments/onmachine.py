"""The experiments' in-process machine: a `Machine` (sim/system.py) made for one measurement and
destroyed after it, and a reference string of page numbers replayed on one of its address spaces.

The VM experiments that need no concurrency (belady, page-tables, thp) run on the machine itself,
in the experiment's own process: the same code a server's core runs (sim/vm), without gRPC in the
way of the per-access timings. Each machine is its own pair of shared-memory segments, unlinked by
`destroy()` (the context manager's exit), so nothing outlives a run.

Frames for pages: a pool of F + 1 frames with one 21-bit linear space gives exactly F frames to
pages, since that space's whole table is one frame (512 four-byte entries, pt_linear.py); the
parity test (tests/sim/vm/test_vm_policy_parity.py) holds the machine to the offline simulator
under that arrangement.

Touches: nothing but the machines it makes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from memsim.sim.system import Machine, MachineConfig
from memsim.sim.vm.vm import VM

MiB = 1 << 20
PAGE = 4096
PAGE_FRAME_SPACE_BITS = 21  # a linear table of 2^(21-12) 4-byte entries: one frame


@contextmanager
def machine(config: MachineConfig) -> Iterator[VM]:
    """Core 0's VM of a fresh machine made from config, destroyed on the way out."""
    m = Machine.create(config)
    try:
        yield m.vm(0)
    finally:
        m.destroy()


def page_frames_machine(frames: int, policy: str, pages: int) -> MachineConfig:
    """A machine whose one 21-bit linear space gets exactly `frames` frames for its pages, replaced
    by `policy`, with swap for `pages` pages (so dirty pages go to swap and come back)."""
    return MachineConfig(memory_bytes=8 * MiB, cores=1, vm_memory=(frames + 1) * PAGE, vm_policy=policy,
                         swap_bytes=(pages + 8) * PAGE)


def replay(vm: VM, trace: Sequence[int], write: bool) -> int:
    """Touch page trace[0], trace[1], ... of a new 21-bit linear space (stores if `write`, so that
    evicted pages are dirty and come back from swap: major faults); the page faults it took."""
    sp = vm.create_space("linear", bits=PAGE_FRAME_SPACE_BITS)
    base = vm.mmap(sp, (max(trace) + 1) * PAGE)
    before = vm.vmstat()["pgfault"]
    for page in trace:
        if write:
            vm.store(sp, base + page * PAGE, page.to_bytes(4, "little"))
        else:
            vm.load(sp, base + page * PAGE, 1)
    faults = vm.vmstat()["pgfault"] - before
    vm.destroy_space(sp)
    return faults


def machine_faults(policy: str, trace: Sequence[int], frames: int, write: bool = False) -> int:
    """Page faults of the machine replacing with `policy` in `frames` frames, replaying trace."""
    with machine(page_frames_machine(frames, policy, max(trace) + 1)) as vm:
        return replay(vm, trace, write)
