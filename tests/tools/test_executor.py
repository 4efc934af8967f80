"""tools/executor.py: the process pool by default, a Dask cluster by its scheduler's address, one
interface. The Dask test starts a real local cluster of two worker processes and replays through it:
the table must equal the process pool's (a job that depends on where it runs, or rows lost or
duplicated by the other executor, fails it)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from memsim.sim.policies.simulate import zipf_trace
from memsim.sim.trace import TraceChunk, write_trace
from memsim.tools.executor import ExecutorUnavailable, executor
from memsim.tools.trace_replay import parse_policies, replay_all


def test_process_pool_runs_jobs_in_other_processes():
    with executor(None, 2) as ex:
        pids = set(ex.map(_pid, range(8)))
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def _pid(_: int) -> int:
    return os.getpid()


def test_workers_must_be_positive():
    with pytest.raises(ValueError), executor(None, 0):
        pass


@pytest.mark.integration
def test_dask_cluster_of_two_workers_gives_the_process_pools_table(tmp_path):
    distributed = pytest.importorskip("distributed")
    path = tmp_path / "z.txt"
    write_trace(path, [TraceChunk.of(np.asarray(zipf_trace(5_000, 600, 1.0, seed=3), np.int64))], "txt")
    specs = parse_policies("lru,s3fifo,opt,redis-lfu-5")
    local = replay_all(str(path), "txt", specs, [20, 150], workers=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        dask = replay_all(str(path), "txt", specs, [20, 150], scheduler=cl.scheduler_address)
    assert [(r.policy, r.size, r.hits, r.misses) for r in dask] == [(r.policy, r.size, r.hits, r.misses) for r in local]


def test_no_scheduler_there_is_a_clear_error():
    with pytest.raises(ExecutorUnavailable, match="cannot reach"), executor("tcp://127.0.0.1:9", None):
        pass
