"""/metrics over HTTP for the whole machine, served by the supervisor.

Owns the HTTP listener and its thread (prometheus_client's `start_http_server`: a WSGI server on a
daemon thread, one short-lived thread per scrape) and the lock that keeps a scrape and a fork apart.
Touches nothing of the machine itself: the collector (server/metrics.py) reads the shared arrays.

Why the supervisor and not core 0: the supervisor already maps every shared array, runs no request of
any client (a scrape never takes CPU from a simulated core or waits behind its mutex), and outlives
every worker, so /metrics stays up while a core is dead and being restarted, and reports the restart.
It imports no gRPC (metrics.py and prometheus_client import none), as supervisor.py requires.

Fork safety: the supervisor forks a worker again after a crash while this thread runs. A forked child
keeps only the forking thread, so a lock another thread held at the fork stays held in the child for
ever. The collector's `paused` lock is held for a whole scrape and by the supervisor around each fork
(`Supervisor._fork_worker`), so no child is forked in the middle of a scrape; the child then closes its
copy of the listening socket (`close_in_child`), so that only the supervisor ever owns the port. The
first workers are forked before the listener exists.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from memsim.server.metrics import MachineCollector

DEFAULT_METRICS_PORT = 9121  # redis_exporter's port: the one Redis users' scrape configs already name


class MetricsExporter:
    def __init__(self, collector: MachineCollector, host: str, port: int):
        self.collector = collector
        # A registry of its own: the default one would add the supervisor's process and GC figures.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.host = host

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    @property
    def paused(self) -> threading.Lock:
        """Held by a scrape for its whole collection; the supervisor holds it around a fork."""
        return self.collector.paused

    def close_in_child(self) -> None:
        """In a freshly forked worker: drop the inherited copy of the listening socket."""
        self._server.socket.close()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
