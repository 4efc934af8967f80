"""The machine's errors, one per gRPC status code the simulator can produce.

`sim/` knows nothing of gRPC; `server/wire.py` maps each class to its status code by the `code`
attribute (the numeric value of grpc.StatusCode), and the client maps codes back to its own
exception types. Messages are written for a person: what was asked, what was wrong, and
the limit or state that made it wrong.
"""

from __future__ import annotations


class SimError(Exception):
    code = 2  # UNKNOWN


class InvalidArgument(SimError):
    code = 3


class NotFound(SimError):
    code = 5


class ResourceExhausted(SimError):
    code = 8


class FailedPrecondition(SimError):
    code = 9


class OutOfRange(SimError):
    code = 11
