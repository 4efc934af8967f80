"""The managed heap's kernels take their decorators and atomics from the machine's one numba
import, sim/machine/jit.py (the replacement policies' kernels use it too, and sim/v8 imports the VM,
which imports the policies: the import lives below both)."""

from memsim.sim.machine.jit import (
    JIT_ENABLED,
    atomic_add,
    atomic_and,
    atomic_cas,
    atomic_load,
    atomic_or,
    njit,
    njit_kernel,
)

__all__ = ["JIT_ENABLED", "atomic_add", "atomic_and", "atomic_cas", "atomic_load", "atomic_or", "njit", "njit_kernel"]
