"""memsim's tools: the `memsim` command, benchmarks, the demo, the REPL and the report printers.

Tools may import the client library (and, to start a server, `server/`); nothing imports them.
"""
