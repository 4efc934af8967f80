"""A page-table kind defined in this file alone, registered, then used by a VM space: mmap, store, load,
faults, reclaim to swap and back, munmap, the reports, recovery's check and repair, destroy.

The kind ("flat") is the simplest table there is: one run of 8-byte entries for the whole space, laid
out in pool frames at creation. Everything the VM knows of it comes through pagetable.PageTable."""

from __future__ import annotations

import numpy as np
import pytest

from memsim.sim.errors import InvalidArgument
from memsim.sim.vm.pagetable import (
    PAGE_TABLES,
    PageTable,
    SpaceShape,
    TableContext,
    frame_run,
    register,
)
from memsim.sim.vm.recovery import check, recover

MiB = 1 << 20
PAGE = 4096


class FlatTable(PageTable):
    default_bits = 22

    def __init__(self, ctx: TableContext):
        super().__init__(ctx)
        self.n = 1 << (int(self.a.sp_bits[self.sp]) - ctx.page_shift)
        self.nframes = -(-self.n * 8 // ctx.frame_size)
        self.base = int(self.a.sp_root[self.sp])
        self.first = self.base * ctx.frame_size // 8
        self.words = ctx.pool.words

    @classmethod
    def create(cls, ctx: TableContext, shape: SpaceShape) -> None:
        n = -(-(1 << (shape.bits - ctx.page_shift)) * 8 // ctx.frame_size)
        base = ctx.alloc(n)
        ctx.pool.zero(base, n)
        ctx.a.sp_root[ctx.space] = base

    def walk(self, vpn: int) -> tuple[int, int]:
        return int(self.words[self.first + vpn]), 1

    def set(self, vpn: int, pte: int) -> None:
        self.words[self.first + vpn] = pte

    def clear_range(self, lo: int, hi: int) -> None:
        self.array_clear(self.words, self.first, self.n, lo, hi)

    def entries(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        return self.array_entries(self.words, self.first, self.n, lo, hi)

    def frames(self) -> np.ndarray:
        return frame_run(self.base, self.nframes)

    def destroy(self) -> None:
        self.ctx.pool.give(self.base, self.nframes)


@pytest.fixture
def flat():
    register("flat", FlatTable)
    try:
        yield FlatTable
    finally:
        PAGE_TABLES.pop("flat")


def stamp(i: int) -> bytes:
    return b"flat page %05d" % i


@pytest.mark.parametrize("machine", [{"vm_memory": MiB, "swap_bytes": 4 * MiB, "cores": 1}], indirect=True)
def test_a_page_table_kind_defined_in_a_test_serves_a_space(machine, flat):
    vm = machine.vm(0)
    free = vm.pool.free_frames()
    sp = vm.create_space("flat", name="flat one")
    table_frames = -(-(1 << (22 - 12)) * 8 // PAGE)
    assert vm.pool.free_frames() == free - table_frames
    st = vm.space_stats(sp)
    assert st["page_table"] == "flat" and st["bits"] == 22 and st["page_table_bytes"] == table_frames * PAGE
    with pytest.raises(InvalidArgument, match="only a multilevel page table has levels"):
        vm.create_space("flat", levels=2)

    # more pages than the pool has frames: reclaim writes some to swap, loads fault them back
    pages = vm.pool.nframes + 100
    addr = vm.mmap(sp, pages * PAGE, name="big")
    for i in range(pages):
        vm.store(sp, addr + i * PAGE, stamp(i))
    assert all(vm.load(sp, addr + i * PAGE, 15) == stamp(i) for i in range(pages))
    stats = vm.vmstat()
    assert stats["pswpout"] > 0 and stats["pgmajfault"] > 0
    t = vm.translate(sp, addr)
    assert t["kind"] == "flat" and t["levels"] in (0, 1)

    usage = vm.memory_usage(sp)
    assert usage["pageTables"] == table_frames * PAGE and usage["swap"] > 0
    (region,) = vm.memory_map(sp)
    assert region["name"] == "big" and region["rss"] + region["swap"] == pages * PAGE
    assert check(vm) == []

    # recovery reaches the kind's frames through the interface: only an unlinked table frame is a leak
    leaked = vm.alloc_table_frames(1)  # as a core killed between taking a table frame and linking it leaves it
    assert check(vm) == [f"frame {leaked}: a page-table frame no table reaches"]
    assert recover(machine.supervisor_vm())["frames_freed"] == 1
    assert check(vm) == []
    assert all(vm.load(sp, addr + i * PAGE, 15) == stamp(i) for i in range(0, pages, 7))

    assert vm.munmap(sp, addr, pages * PAGE) == pages
    assert vm.space_stats(sp)["rss_pages"] == 0 and vm.vmstat()["swap_used"] == 0
    vm.destroy_space(sp)
    assert vm.pool.free_frames() == free and check(vm) == []
