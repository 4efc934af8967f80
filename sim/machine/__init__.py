"""The machine's hardware, as the other layers see it.

    shm.py      shared-memory segments holding named NumPy arrays (and their pitfalls)
    memory.py   physical memory: frames and the frame table
    locks.py    fcntl record locks with jemalloc-style counters, released by the kernel when a holder dies
    atomics.py  compare-and-swap on shared arrays (libatomic through ctypes)
    jit.py      the one import of numba: njit / njit_kernel, cached on disk
"""
