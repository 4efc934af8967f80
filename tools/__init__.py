"""memsim's tools: the `memsim` command, benchmarks, the demo, the REPL and the report printers.

    cli.py, cli_bench.py, flags.py  the `memsim` command: its parser, the bench flags, flag types
    loads.py      the load records (AllocLoad, CacheLoad, VmLoad): every bench default
    harness.py    the one multi-process benchmark harness (spawn, barrier, merged HdrHistograms, JSON)
    loadgen.py, cachebench.py, vmbench.py  the allocator, cache and VM loads
    demo.py (`memsim demo`), repl.py (`memsim cli`), report.py (`memsim stats`), vmreport.py (`memsim vm`)
    local.py      a server as a child process, for programs and tests

Tools may import the client library, `server/` (to start one, and for `memsim serve`'s defaults) and
`sim/` (for its tables: MachineConfig, the replacement policies, THP modes, page-table kinds); nothing
under `sim/`, `server/` or `client/` imports them (tests/project/test_imports.py).
"""
