"""Redis's active expire cycle (sim/cache/expire.py) on the shared keyspace."""

from __future__ import annotations

import pytest

from memsim.sim.cache.expire import active_expire_cycle, cycle_parameters
from memsim.sim.cache.layout import K_EXPIRED
from memsim.sim.system import Machine, MachineConfig


class Clock:
    def __init__(self, t: int = 10**12):
        self.t = t

    def __call__(self) -> int:
        return self.t


@pytest.fixture
def ks():
    m = Machine.create(MachineConfig(memory_bytes=16 * (1 << 20), cores=2, max_keys=8192))
    try:
        k = m.keyspace(m.heap(0))
        k.clock = Clock()
        yield k
    finally:
        m.destroy()


def test_redis_cycle_parameters():
    assert cycle_parameters(1, 10) == (20, 0.025, 10)  # 20 keys, 25 ms at hz 10, 10 % stale
    assert cycle_parameters(10, 10) == (65, 0.043, 1)
    with pytest.raises(ValueError):
        cycle_parameters(0, 10)


def test_cycle_removes_expired_keys_nobody_reads(ks):
    now = ks.clock.t
    for i in range(2000):
        ks.set(f"dead:{i}".encode(), b"x", expire_at_ms=now + 10)
    for i in range(500):
        ks.set(f"alive:{i}".encode(), b"y", expire_at_ms=now + 10**9)
    for i in range(500):
        ks.set(f"plain:{i}".encode(), b"z")
    ks.clock.t += 11
    total = 0
    for _ in range(50):  # a few seconds of hz-10 cycles
        st = active_expire_cycle(ks)
        total += st.expired
        if st.expired == 0:
            break
    assert total == int(ks.a.ks_core[:, K_EXPIRED].sum())
    assert total >= 1900  # the cycle stops once under 10 % stale: most, not necessarily all
    assert ks.dbsize() == 3000 - total
    assert all(ks.get(f"alive:{i}".encode()) == b"y" for i in range(500))
    assert all(ks.get(f"plain:{i}".encode()) == b"z" for i in range(500))


def test_cycle_stops_at_its_time_limit(ks):
    now = ks.clock.t
    for i in range(3000):
        ks.set(f"dead:{i}".encode(), b"x", expire_at_ms=now + 1)
    ks.clock.t += 2
    st = active_expire_cycle(ks, hz=10**7)  # a 25 ns budget: out at the first check
    assert st.timed_out and st.loops == 16 and st.expired < 3000


def test_cycle_with_no_ttl_keys_does_nothing(ks):
    for i in range(100):
        ks.set(f"k{i}".encode(), b"v")
    st = active_expire_cycle(ks)
    assert st.expired == 0 and st.loops == 1 and ks.dbsize() == 100
