"""memsim's tools: the `memsim` command, benchmarks, the demo, the REPL and the report printers.

Tools may import the client library, `server/` (to start one, and for `memsim serve`'s defaults) and
`sim/` (for its tables: MachineConfig, the replacement policies, THP modes, page-table kinds); nothing
under `sim/`, `server/` or `client/` imports them (tests/project/test_imports.py).
"""
