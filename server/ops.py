"""Executing operations on a core's heap, for unary calls and batches alike.

No gRPC here: this module turns protobuf requests into `Heap` calls and results (or
`SimError`s) back into protobuf replies, so the servicer stays a thin adapter and the batch
path can be measured without the RPC around it.
"""

from __future__ import annotations

from memsim.server.limits import MAX_BATCH_OPS, ReplyBudget
from memsim.server.wire import op_error
from memsim.sim.alloc.heap import Heap
from memsim.sim.alloc.owners import check_client_access
from memsim.sim.errors import InvalidArgument
from memsim.v1 import machine_pb2 as pb

LAYERS = {"tiny": pb.TINY, "mcache": pb.MCACHE, "mcentral": pb.MCENTRAL, "mheap": pb.MHEAP}


def _column(values, n: int, name: str, default: int) -> list[int]:
    if len(values) == 0:
        return [default] * n
    if len(values) != n:
        raise InvalidArgument(f"bad batch: {name} has {len(values)} entries for {n} ops (give none or one per op)")
    return list(values)


def execute_batch(heap: Heap, req: pb.OpBatch, budget: ReplyBudget | None = None, client: int = 0) -> pb.BatchReply:
    """Run every op of the batch in order; an op's failure is reported and the rest go on.
    Its objects are recorded as client entry `client`'s (sim/alloc/owners.py).

    A READ is charged to the reply's budget (limits.py) before it copies anything; one that
    does not fit fails with RESOURCE_EXHAUSTED and the rest of the batch goes on."""
    if budget is None:
        budget = ReplyBudget()
    kinds = list(req.kind)
    n = len(kinds)
    if n > MAX_BATCH_OPS:
        raise InvalidArgument(f"bad batch: {n} ops is more than the {MAX_BATCH_OPS}-op limit")
    addrs = _column(req.address, n, "address", 0)
    sizes = _column(req.size, n, "size", 0)
    offsets = _column(req.offset, n, "offset", 0)
    refs = _column(req.ref, n, "ref", -1)
    payloads = list(req.data)
    if sum(1 for k in kinds if k == pb.WRITE) != len(payloads):
        raise InvalidArgument(f"bad batch: {len(payloads)} data entries for "
                              f"{sum(1 for k in kinds if k == pb.WRITE)} WRITE ops")
    out_addr = [0] * n
    out_layer = [0] * n
    reads: list[bytes] = []
    errors: list[pb.OpError] = []
    wait_ns = 0
    wi = 0
    for i, kind in enumerate(kinds):
        ref = refs[i]
        payload = b""
        if kind == pb.WRITE:  # consume the payload whether or not the write succeeds
            payload = payloads[wi]
            wi += 1
        try:
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
                for _, w in r.lock_waits:
                    wait_ns += w
            elif kind == pb.FREE:
                check_client_access(heap, addr, "free")
                f = heap.free(addr)
                out_layer[i] = LAYERS[f.layer]
                for _, w in f.lock_waits:
                    wait_ns += w
            elif kind == pb.READ:
                check_client_access(heap, addr, "read")
                budget.charge(sizes[i], f"op {i} (READ)")
                try:
                    reads.append(heap.read(addr, offsets[i], sizes[i]))
                except Exception:
                    budget.refund(sizes[i])  # nothing was copied
                    raise
            elif kind == pb.WRITE:
                check_client_access(heap, addr, "write")
                heap.write(addr, offsets[i], payload)
            else:
                raise InvalidArgument(f"op {i}: unknown op kind {kind}")
        except Exception as e:  # noqa: BLE001 - one op's failure is its own error; the batch goes on (wire.op_error)
            if kind == pb.READ:
                reads.append(b"")
            errors.append(op_error(i, e, heap.core))
    return pb.BatchReply(seq=req.seq, core=heap.core, address=out_addr, layer=out_layer, data=reads,
                         errors=errors, lock_wait_ns=wait_ns)

