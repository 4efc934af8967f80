"""Shared fixture for the sim/ tests: a small machine, always destroyed."""

from __future__ import annotations

import pytest

from memsim.sim.system import Machine, MachineConfig

MiB = 1 << 20


@pytest.fixture
def machine(request):
    """An 8 MiB, 4-core machine. Parametrize indirectly with a dict to change its config:
    `@pytest.mark.parametrize("machine", [{"per_core_caches": False}], indirect=True)`."""
    overrides = getattr(request, "param", None) or {}
    config = MachineConfig(**{"memory_bytes": 8 * MiB, "cores": 4, **overrides})
    m = Machine.create(config)
    try:
        yield m
    finally:
        m.destroy()
