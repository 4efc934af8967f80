"""The Redis protocol's listening sockets, bound by the supervisor before it forks the cores, and the
reservations of the gRPC ports.

Owns the sockets of every core's RESP ports: the shared port (SO_REUSEPORT: one socket per core, the
kernel spreads new connections over them) and the core's own, port + 1 + core. The supervisor binds
them once, keeps them for its whole life and hands each core's pair to the worker it forks for that
core, as pre-forking servers do (Apache's prefork MPM, nginx's master and workers). A core that dies
leaves its sockets open in the supervisor: its own port cannot be taken meanwhile by another
socket (an ephemeral port of any client on the host, which the kernel draws from the same range, made
a restart fail for a minute while that port sat in TIME_WAIT), connections that arrive in between
wait in the backlog, and the core forked again accepts them on the very same sockets.

The gRPC ports cannot be handed over the same way: grpcio binds its own listeners and takes no file
descriptor. For those the supervisor holds a reservation instead (reserve()): a socket bound to the port
with SO_REUSEADDR and SO_REUSEPORT that never listens. A client's connect() then never draws that port
as its ephemeral port, since the kernel skips any port that a bind() has taken (`__inet_hash_connect`
in Linux's net/ipv4/inet_hashtables.c goes to the next port when the port's bind bucket has
fastreuse or fastreuseport >= 0, which only bind() sets); a plain bind() by another program fails;
the core's gRPC server, which sets SO_REUSEPORT too (grpc.so_reuseport, same user), still binds it; and
a socket that never listens is never handed a connection, so a client that connects while the core is
dead is refused and retries, as gRPC's channels do.

Imports nothing but the standard library: the supervisor must not import grpc before it forks.
"""

from __future__ import annotations

import socket


def listen(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A listening TCP socket (SO_REUSEADDR as gRPC's own listeners, SO_REUSEPORT on the shared port)."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((host, port))
        s.listen(511)  # Redis's tcp-backlog
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


def reserve(host: str, port: int) -> socket.socket:
    """A bound socket that never listens, holding `port` for a gRPC server that binds it with
    SO_REUSEPORT (see the header); raises OSError if the port is taken."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((host, port))
    except BaseException:
        s.close()
        raise
    return s


def core_sockets(host: str, port: int, core: int) -> list[socket.socket]:
    """Core `core`'s pair: the shared port's socket, then its own port's; raises OSError (closing what it
    opened) if either is taken."""
    out: list[socket.socket] = []
    try:
        for p, shared in ((port, True), (port + 1 + core, False)):
            out.append(listen(host, p, reuse_port=shared))
    except OSError:
        for s in out:
            s.close()
        raise
    return out
