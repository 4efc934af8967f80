"""The Redis-like cache (issue 3). So far: Redis's approximated eviction (evict.py), pure
functions and a trace-level model; the shared-memory keyspace and commands come next."""
