"""The cache's counters and gauges, as Redis's src/server.c keeps them for INFO: hits, misses, commands,
rejected calls, expired and evicted keys, used_memory_peak, instantaneous_ops_per_sec.

Owns: the INFO counters of ks_core (K_HITS ... K_READ_RETRIES: each core counts in its own row),
ks_evicted (read here; evict.py counts), ks_gauge[G_PEAK] and ks_inst (each core samples its own
row). No lock: every counter row has one writer, and the peak is a racy max, fine for a gauge.
The text INFO prints from these is info.py's.
"""

from __future__ import annotations

from memsim.sim.cache.db import Db
from memsim.sim.cache.layout import (
    G_PEAK,
    I_LAST_COMMANDS,
    I_LAST_MS,
    I_NEXT,
    I_SAMPLES,
    INST_SAMPLES,
    K_COMMANDS,
    STAT_COLUMNS,
)


class Stats(Db):
    def stat(self, column: int) -> int:
        return int(self.a.ks_core[:, column].sum())

    def evicted_keys(self) -> int:
        return int(self.a.ks_evicted.sum())

    def used_memory_peak(self) -> int:
        """Redis's peak: raised by whoever looks (the cron, INFO); a racy max is fine for a gauge."""
        used = self.used_memory()
        if used > int(self.a.ks_gauge[G_PEAK]):
            self.a.ks_gauge[G_PEAK] = used
        return int(self.a.ks_gauge[G_PEAK])

    def reset_stats(self) -> None:
        """CONFIG RESETSTAT: zero the counters (not the keys, the bytes, or the peak's meaning)."""
        a = self.a
        for col in STAT_COLUMNS:
            a.ks_core[:, col] = 0
        a.ks_evicted[:] = 0
        a.ks_inst[:, I_SAMPLES:] = 0
        a.ks_gauge[G_PEAK] = self.used_memory()

    def sample_ops(self, now_ms: int) -> None:
        """trackInstantaneousMetric() for this core, run by its cron every 100 ms: one ops/s sample."""
        row = self.a.ks_inst[self.heap.core]
        done = int(self.stats[K_COMMANDS])
        last_t = int(row[I_LAST_MS])
        if last_t and now_ms > last_t:
            row[I_SAMPLES + int(row[I_NEXT]) % INST_SAMPLES] = (done - int(row[I_LAST_COMMANDS])) * 1000 // \
                (now_ms - last_t)
            row[I_NEXT] = (int(row[I_NEXT]) + 1) % INST_SAMPLES
        row[I_LAST_MS], row[I_LAST_COMMANDS] = now_ms, done

    def instantaneous_ops_per_sec(self) -> int:
        """The sum over cores of each core's mean of its last 16 samples (Redis: getInstantaneousMetric)."""
        return int(self.a.ks_inst[:, I_SAMPLES:].sum() // INST_SAMPLES)
