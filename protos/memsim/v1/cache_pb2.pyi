from memsim.v1 import machine_pb2 as _machine_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CommandRequest(_message.Message):
    __slots__ = ("args",)
    ARGS_FIELD_NUMBER: _ClassVar[int]
    args: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, args: _Optional[_Iterable[bytes]] = ...) -> None: ...

class CommandReply(_message.Message):
    __slots__ = ("reply", "core")
    REPLY_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    reply: bytes
    core: int
    def __init__(self, reply: _Optional[bytes] = ..., core: _Optional[int] = ...) -> None: ...

class CommandBatch(_message.Message):
    __slots__ = ("seq", "args", "argc")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    ARGC_FIELD_NUMBER: _ClassVar[int]
    seq: int
    args: _containers.RepeatedScalarFieldContainer[bytes]
    argc: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, seq: _Optional[int] = ..., args: _Optional[_Iterable[bytes]] = ..., argc: _Optional[_Iterable[int]] = ...) -> None: ...

class ReplyBatch(_message.Message):
    __slots__ = ("seq", "core", "replies", "errors")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    core: int
    replies: bytes
    errors: _containers.RepeatedCompositeFieldContainer[_machine_pb2.OpError]
    def __init__(self, seq: _Optional[int] = ..., core: _Optional[int] = ..., replies: _Optional[bytes] = ..., errors: _Optional[_Iterable[_Union[_machine_pb2.OpError, _Mapping]]] = ...) -> None: ...
