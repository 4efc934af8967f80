"""The Machine service's batch executor: a batch message's ops on a core's heap.

No gRPC here: this module turns an `OpBatch` into `Heap` calls and their results (or each op's
`SimError`) back into a `BatchReply`, so the servicer stays a thin adapter and the batch path
can be measured without the RPC around it. `wire.batch_stream` runs it under the core's mutex,
one message at a time; `wire.run_ops` makes one op's failure that op's error. `LAYERS` is the
wire's name for the layer that served an allocation or free, for the unary calls too.
"""

from __future__ import annotations

from memsim.server.limits import MAX_BATCH_OPS, ReplyBudget
from memsim.server.wire import batch_column, check_batch_size, run_ops
from memsim.sim.alloc.heap import Heap
from memsim.sim.alloc.owners import check_client_access
from memsim.sim.errors import InvalidArgument
from memsim.v1 import machine_pb2 as pb

LAYERS = {"tiny": pb.TINY, "mcache": pb.MCACHE, "mcentral": pb.MCENTRAL, "mheap": pb.MHEAP}


def execute_batch(heap: Heap, req: pb.OpBatch, budget: ReplyBudget | None = None, client: int = 0) -> pb.BatchReply:
    """The Machine service's batch executor (wire.batch_stream): every op of the batch in order; an
    op's failure is reported and the rest go on. Its objects are recorded as client entry `client`'s
    (sim/alloc/owners.py).

    A READ is charged to the reply's budget (limits.py) before it copies anything; one that
    does not fit fails with RESOURCE_EXHAUSTED and the rest of the batch goes on."""
    if budget is None:
        budget = ReplyBudget()
    kinds = list(req.kind)
    n = len(kinds)
    check_batch_size(n, MAX_BATCH_OPS)
    addrs = batch_column(req.address, n, "address", 0)
    sizes = batch_column(req.size, n, "size", 0)
    offsets = batch_column(req.offset, n, "offset", 0)
    refs = batch_column(req.ref, n, "ref", -1)
    payloads = list(req.data)
    writes = kinds.count(pb.WRITE)
    if writes != len(payloads):
        raise InvalidArgument(f"bad batch: {len(payloads)} data entries for {writes} WRITE ops")
    next_payload = iter(payloads)
    # A WRITE's payload is its own whether or not the write succeeds.
    payload_of = [next(next_payload) if kind == pb.WRITE else b"" for kind in kinds]
    out_addr = [0] * n
    out_layer: list[pb.Layer] = [pb.LAYER_UNSPECIFIED] * n
    reads: list[bytes] = []
    wait_ns = 0

    def op(i: int) -> None:
        nonlocal wait_ns
        kind, ref = kinds[i], refs[i]
        if kind == pb.READ:
            reads.append(b"")  # one slot per READ, empty if it fails
        if ref >= 0:
            if ref >= i:
                raise InvalidArgument(f"op {i}: ref {ref} must name an earlier op of the batch")
            addr = out_addr[ref]
            if addr == 0:
                raise InvalidArgument(f"op {i}: ref {ref} names an op that allocated nothing")
        else:
            addr = addrs[i]
        if kind == pb.ALLOC:
            r = heap.malloc(sizes[i], client)
            out_addr[i] = r.address
            out_layer[i] = LAYERS[r.layer]
            wait_ns += sum(w for _, w in r.lock_waits)
        elif kind == pb.FREE:
            check_client_access(heap, addr, "free")
            f = heap.free(addr)
            out_layer[i] = LAYERS[f.layer]
            wait_ns += sum(w for _, w in f.lock_waits)
        elif kind == pb.READ:
            check_client_access(heap, addr, "read")
            budget.charge(sizes[i], f"op {i} (READ)")
            try:
                reads[-1] = heap.read(addr, offsets[i], sizes[i])
            except Exception:
                budget.refund(sizes[i])  # nothing was copied
                raise
        elif kind == pb.WRITE:
            check_client_access(heap, addr, "write")
            heap.write(addr, offsets[i], payload_of[i])
        else:
            raise InvalidArgument(f"op {i}: unknown op kind {kind}")

    errors = run_ops(n, op, heap.core)
    return pb.BatchReply(seq=req.seq, core=heap.core, address=out_addr, layer=out_layer, data=reads,
                         errors=errors, lock_wait_ns=wait_ns)
