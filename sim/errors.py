"""The machine's errors, one per gRPC status code the simulator can produce.

`sim/` knows nothing of gRPC; `server/` maps each class to its status code by the `code`
attribute (the numeric value of grpc.StatusCode), and the client maps codes back to its own
exception types. Messages are written for a person: what was asked, what was wrong, and
the limit or state that made it wrong.
"""

from __future__ import annotations


class SimError(Exception):
    code = 2  # UNKNOWN
    code_name = "UNKNOWN"


class InvalidArgument(SimError):
    code, code_name = 3, "INVALID_ARGUMENT"


class NotFound(SimError):
    code, code_name = 5, "NOT_FOUND"


class ResourceExhausted(SimError):
    code, code_name = 8, "RESOURCE_EXHAUSTED"


class FailedPrecondition(SimError):
    code, code_name = 9, "FAILED_PRECONDITION"


class OutOfRange(SimError):
    code, code_name = 11, "OUT_OF_RANGE"
