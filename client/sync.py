"""The synchronous allocator client.

    from memsim.client import Client
    with Client("127.0.0.1:50051") as m:          # any core (SO_REUSEPORT picks one)
        a = m.alloc(100)
        m.write(a.address, b"hello")
        m.read(a.address, 5)                       # b'hello'
        m.free(a.address)
        b = m.batch()                              # many ops, one message, one core
        r = b.alloc(64); b.write(r, b"x" * 64); b.read(r, 64); b.free(r)
        b.execute()

`core=N` connects to that core's own port (port + 1 + N) instead of the shared one. Every
unary call carries a deadline (the client's `timeout`, 10 s by default, or the call's own
`timeout=`); a batch waits for its reply at most as long. Batches ride one long-lived
bidirectional stream per client.

What a client allocates is its own: `close()` frees it, and if the process dies without
closing, the server does once the client's lease (`lease=`, 30 s) runs out (client/session.py).
`alloc(size, keep=True)` makes an object nobody's, to outlive the client; `Client(keep=True)`
makes all of them so (for clients that hand objects to others to free). `list_objects()`
shows what is live, by core and by client, to find leaks.

The methods are client/machine.py's `MachineCommands`, shared with `AsyncClient`; this module
adds only the blocking transport (client/connection.py's `Connection`).
"""

from __future__ import annotations

from memsim.client.connection import Connection
from memsim.client.machine import MachineCommands
from memsim.client.types import Batch, BatchResult


class Client(MachineCommands, Connection):
    """A connection to a memsim server's allocator (any core, or `core=N` for that core's own port).

    Calls raise the typed exceptions of `memsim.client.errors`; each has a deadline of
    `timeout` seconds. `batch()` builds many operations for one round trip on a stream.
    """

    def batch(self) -> Batch[BatchResult]:
        """A batch whose `execute()` runs on this client."""
        return Batch(self.execute)
