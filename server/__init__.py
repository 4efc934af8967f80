"""The server: a supervisor and one gRPC worker per core over the machine (imports sim/ and the protos,
never client/ or tools/).

    supervisor.py      creates the machine, forks and restarts the cores, runs the scavenger, cleans up
    worker.py          one core's gRPC server: the services, health, reflection, its background loops
    servicer.py, ops.py  memsim.v1.Machine (the allocator) and its batch executor
    cache_servicer.py  memsim.v1.Cache and each core's serverCron
    vm_servicer.py     memsim.v1.VM and khugepaged
    wire.py            every method's registration: decoding errors, the one status mapping, the stream
                       gate, the batch driver
    limits.py          every wire limit and the reply budgets
    sessions.py        client ids, leases, the reaper
    periodic.py        Periodic, the base of a core's background loops
"""
