"""/metrics over HTTP for the whole machine, served by the supervisor.

Owns the HTTP listener and its thread (prometheus_client's WSGI app and threading server, as its
`start_http_server` builds them, one short-lived thread per scrape) and the lock that keeps a scrape
and a fork apart. Bounds, which start_http_server has not: a connection that sends nothing for
`SCRAPE_TIMEOUT_S` is dropped, and at most `MAX_SCRAPES` are served at once (one more is closed at
once), so idle or slow connections cannot pile threads up in the supervisor, whose threads and
process slots a worker's restart (a fork) needs.
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

import socket
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from memsim.server.metrics import MachineCollector

DEFAULT_METRICS_PORT = 9121  # redis_exporter's port: the one Redis users' scrape configs already name
SCRAPE_TIMEOUT_S = 10.0  # Prometheus's default scrape_timeout: a scrape silent for longer is over anyway
MAX_SCRAPES = 16  # connections served at once: a few Prometheus servers and people, with room


_Request = socket.socket | tuple[bytes, socket.socket]  # socketserver's request (a TCP server's: the socket)
_Address = tuple[str, int]


class _Handler(WSGIRequestHandler):
    timeout = SCRAPE_TIMEOUT_S  # socketserver.StreamRequestHandler sets it on the connection's socket

    def log_message(self, format: str, *args: object) -> None:  # as prometheus_client's: no line per scrape
        pass


class _Server(ThreadingWSGIServer):
    """prometheus_client's thread-per-connection server, with at most MAX_SCRAPES threads."""

    slots: threading.BoundedSemaphore

    def process_request(self, request: _Request, client_address: _Address) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: _Request, client_address: _Address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def start_server(host: str, port: int, registry: CollectorRegistry) -> tuple[WSGIServer, threading.Thread]:
    """prometheus_client's start_http_server, bounded (the module header)."""
    class Server(_Server):
        address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        slots = threading.BoundedSemaphore(MAX_SCRAPES)

    httpd = make_server(host, port, make_wsgi_app(registry), Server, handler_class=_Handler)
    thread = threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True)
    thread.start()
    return httpd, thread


class MetricsExporter:
    def __init__(self, collector: MachineCollector, host: str, port: int):
        self.collector = collector
        # A registry of its own: the default one would add the supervisor's process and GC figures.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_server(host, port, self.registry)
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
