"""Fixtures of the managed heap's tests: a real machine with a small VM pool and 64 KiB heap pages
(the smallest V8 page size memsim allows, so that tiny isolates still have several pages)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memsim.sim.system import Machine, MachineConfig
from memsim.sim.v8 import V8

MiB = 1 << 20
PAGE = 64 << 10


@pytest.fixture
def machine() -> Iterator[Machine]:
    m = Machine.create(MachineConfig(vm_memory=16 * MiB, v8_page_size=PAGE, v8_isolates=4))
    try:
        yield m
    finally:
        m.destroy()


@pytest.fixture
def v8(machine: Machine) -> V8:
    return machine.v8(0, machine.heap(0))
