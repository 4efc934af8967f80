"""The supervisor's warm-up (sim/v8/warmup.py) leaves nothing for a core's first GC to compile:
after it, a realistic workload's scavenges and mark-compacts add no numba specialisation."""

from __future__ import annotations

from memsim.sim.v8 import evacuation_kernels, jit, mark_kernels, objects, scavenge_kernels, warmup


def specialisations() -> dict[str, int]:
    kernels = (scavenge_kernels, mark_kernels, evacuation_kernels, objects)
    return {f"{mod.__name__}.{name}": len(fn.signatures) for mod in kernels
            for name in dir(mod) if hasattr(fn := getattr(mod, name), "signatures")}


def test_after_the_warm_up_a_gc_compiles_nothing(machine, v8):
    warmup.warm()
    before = specialisations()
    if jit.JIT_ENABLED:  # the pool's overflow rescan, which the workload below never reaches, is compiled too
        assert before["memsim.sim.v8.scavenge_kernels.rescan"] >= 1
        assert before["memsim.sim.v8.evacuation_kernels.evacuate_page"] >= 1  # the warm-up's forced compaction
    iso_id = v8.create_isolate(semi_space_size=4 * 64 << 10, max_old_space_size=32 * 64 << 10)
    with v8.enter(iso_id) as iso:
        keep = iso.make_persistent(iso.new_object(nfields=64))
        for r in range(40):
            iso.open_scope()
            for k in range(60):
                o = iso.new_object([r, k], payload=b"request body" * 8)
                if k == 0:
                    iso.set_field(keep, r % 64, o)
            iso.new_array_buffer(64)
            iso.close_scope()
        iso.gc(minor=True)
        iso.testing(force_compaction=True)
        iso.gc()
    assert specialisations() == before
