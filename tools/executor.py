"""Where sweeps run: a concurrent.futures.Executor, local processes or a Dask cluster.

    with executor(args.scheduler, args.workers) as ex:
        futures = [ex.submit(job, *a) for a in configurations]

`executor(None, workers)` is the standard library's ProcessPoolExecutor (`workers` processes,
default os.cpu_count()), started with the "spawn" method: a job runs in a fresh interpreter, so
nothing the parent holds (gRPC channels, a machine's shared memory, numba's state) is inherited by
accident. `executor("tcp://host:8786", ...)` connects to a running Dask scheduler and hands back
its distributed.Client's `get_executor()`, the same interface (submit, map, Future), so callers
never know which one runs their jobs; `workers` is then the cluster's business and ignored.
Jobs must be picklable top-level functions with picklable arguments; on a cluster, a path in an
argument must name a file that every worker can read.

Dask is optional (the `dask` extra: pip install "memsim[dask]"); asking for a scheduler without it
raises ExecutorUnavailable with that install line. Used by `memsim trace replay` and the
experiments' sweeps. Owns nothing else.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager

__all__ = ["ExecutorUnavailable", "executor"]


class ExecutorUnavailable(RuntimeError):
    """The executor asked for cannot be made (Dask missing, or its scheduler unreachable)."""


@contextmanager
def executor(scheduler: str | None = None, workers: int | None = None) -> Iterator[Executor]:
    """An Executor for the duration of the block: a local process pool, or the Dask cluster whose
    scheduler address is `scheduler` (e.g. tcp://host:8786). Shut down (the pool) or disconnected
    (the client) on exit, after the submitted jobs finish."""
    if scheduler is None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            yield pool
        return
    try:
        import distributed
    except ImportError as e:
        raise ExecutorUnavailable(f"--scheduler needs Dask ({e}); install it: pip install 'memsim[dask]'") from None
    try:
        client = distributed.Client(scheduler, timeout="10s")
    except OSError as e:
        raise ExecutorUnavailable(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
    try:
        yield client.get_executor()
    finally:
        client.close()
