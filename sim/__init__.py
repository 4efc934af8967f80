"""The simulated machine, pure Python and NumPy over shared memory, no gRPC: machine/ (segments,
frames, locks, CAS), alloc/ (Go's allocator), policies/ (replacement policies, the trace simulator),
cache/ (Redis's keyspace), vm/ (Linux's virtual memory), system.py (MachineConfig, Machine),
errors.py (one SimError per status code). It imports nothing of server/, client/ or tools/.
"""
