from memsim.v1 import machine_pb2 as _machine_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VmOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VM_OP_UNSPECIFIED: _ClassVar[VmOp]
    VM_LOAD: _ClassVar[VmOp]
    VM_STORE: _ClassVar[VmOp]
    VM_TRANSLATE: _ClassVar[VmOp]
VM_OP_UNSPECIFIED: VmOp
VM_LOAD: VmOp
VM_STORE: VmOp
VM_TRANSLATE: VmOp

class CreateSpaceRequest(_message.Message):
    __slots__ = ("page_table", "bits", "levels", "level_bits", "name", "keep", "lease_seconds")
    PAGE_TABLE_FIELD_NUMBER: _ClassVar[int]
    BITS_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    LEVEL_BITS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    page_table: str
    bits: int
    levels: int
    level_bits: int
    name: str
    keep: bool
    lease_seconds: float
    def __init__(self, page_table: _Optional[str] = ..., bits: _Optional[int] = ..., levels: _Optional[int] = ..., level_bits: _Optional[int] = ..., name: _Optional[str] = ..., keep: _Optional[bool] = ..., lease_seconds: _Optional[float] = ...) -> None: ...

class SpaceRequest(_message.Message):
    __slots__ = ("space",)
    SPACE_FIELD_NUMBER: _ClassVar[int]
    space: int
    def __init__(self, space: _Optional[int] = ...) -> None: ...

class ListSpacesRequest(_message.Message):
    __slots__ = ("mine",)
    MINE_FIELD_NUMBER: _ClassVar[int]
    mine: bool
    def __init__(self, mine: _Optional[bool] = ...) -> None: ...

class ListSpacesReply(_message.Message):
    __slots__ = ("spaces",)
    SPACES_FIELD_NUMBER: _ClassVar[int]
    spaces: _containers.RepeatedCompositeFieldContainer[SpaceStats]
    def __init__(self, spaces: _Optional[_Iterable[_Union[SpaceStats, _Mapping]]] = ...) -> None: ...

class MmapRequest(_message.Message):
    __slots__ = ("space", "length", "prot", "kind", "name", "fixed", "address", "huge", "hugetlb")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    PROT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FIXED_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HUGE_FIELD_NUMBER: _ClassVar[int]
    HUGETLB_FIELD_NUMBER: _ClassVar[int]
    space: int
    length: int
    prot: int
    kind: str
    name: str
    fixed: bool
    address: int
    huge: bool
    hugetlb: bool
    def __init__(self, space: _Optional[int] = ..., length: _Optional[int] = ..., prot: _Optional[int] = ..., kind: _Optional[str] = ..., name: _Optional[str] = ..., fixed: _Optional[bool] = ..., address: _Optional[int] = ..., huge: _Optional[bool] = ..., hugetlb: _Optional[bool] = ...) -> None: ...

class MmapReply(_message.Message):
    __slots__ = ("address",)
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    address: int
    def __init__(self, address: _Optional[int] = ...) -> None: ...

class MunmapRequest(_message.Message):
    __slots__ = ("space", "address", "length")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    space: int
    address: int
    length: int
    def __init__(self, space: _Optional[int] = ..., address: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class MunmapReply(_message.Message):
    __slots__ = ("pages_freed",)
    PAGES_FREED_FIELD_NUMBER: _ClassVar[int]
    pages_freed: int
    def __init__(self, pages_freed: _Optional[int] = ...) -> None: ...

class MprotectRequest(_message.Message):
    __slots__ = ("space", "address", "length", "prot")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    PROT_FIELD_NUMBER: _ClassVar[int]
    space: int
    address: int
    length: int
    prot: int
    def __init__(self, space: _Optional[int] = ..., address: _Optional[int] = ..., length: _Optional[int] = ..., prot: _Optional[int] = ...) -> None: ...

class MprotectReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LoadRequest(_message.Message):
    __slots__ = ("space", "address", "length")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    space: int
    address: int
    length: int
    def __init__(self, space: _Optional[int] = ..., address: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class LoadReply(_message.Message):
    __slots__ = ("data", "core")
    DATA_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    core: int
    def __init__(self, data: _Optional[bytes] = ..., core: _Optional[int] = ...) -> None: ...

class StoreRequest(_message.Message):
    __slots__ = ("space", "address", "data")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    space: int
    address: int
    data: bytes
    def __init__(self, space: _Optional[int] = ..., address: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class StoreReply(_message.Message):
    __slots__ = ("core",)
    CORE_FIELD_NUMBER: _ClassVar[int]
    core: int
    def __init__(self, core: _Optional[int] = ...) -> None: ...

class PinUserPagesRequest(_message.Message):
    __slots__ = ("space", "address", "npages", "write", "longterm")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NPAGES_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    LONGTERM_FIELD_NUMBER: _ClassVar[int]
    space: int
    address: int
    npages: int
    write: bool
    longterm: bool
    def __init__(self, space: _Optional[int] = ..., address: _Optional[int] = ..., npages: _Optional[int] = ..., write: _Optional[bool] = ..., longterm: _Optional[bool] = ...) -> None: ...

class PinUserPagesReply(_message.Message):
    __slots__ = ("frames", "core")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedScalarFieldContainer[int]
    core: int
    def __init__(self, frames: _Optional[_Iterable[int]] = ..., core: _Optional[int] = ...) -> None: ...

class UnpinUserPagesRequest(_message.Message):
    __slots__ = ("space", "frames", "longterm")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    LONGTERM_FIELD_NUMBER: _ClassVar[int]
    space: int
    frames: _containers.RepeatedScalarFieldContainer[int]
    longterm: bool
    def __init__(self, space: _Optional[int] = ..., frames: _Optional[_Iterable[int]] = ..., longterm: _Optional[bool] = ...) -> None: ...

class UnpinUserPagesReply(_message.Message):
    __slots__ = ("core",)
    CORE_FIELD_NUMBER: _ClassVar[int]
    core: int
    def __init__(self, core: _Optional[int] = ...) -> None: ...

class TranslateRequest(_message.Message):
    __slots__ = ("space", "address", "write")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    space: int
    address: int
    write: bool
    def __init__(self, space: _Optional[int] = ..., address: _Optional[int] = ..., write: _Optional[bool] = ...) -> None: ...

class Translation(_message.Message):
    __slots__ = ("frame", "levels", "tlb_hit", "fault", "page_table", "core")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    TLB_HIT_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TABLE_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    frame: int
    levels: int
    tlb_hit: bool
    fault: str
    page_table: str
    core: int
    def __init__(self, frame: _Optional[int] = ..., levels: _Optional[int] = ..., tlb_hit: _Optional[bool] = ..., fault: _Optional[str] = ..., page_table: _Optional[str] = ..., core: _Optional[int] = ...) -> None: ...

class MemoryUsageReply(_message.Message):
    __slots__ = ("rss", "heapTotal", "heapUsed", "external", "page_tables", "swap")
    RSS_FIELD_NUMBER: _ClassVar[int]
    HEAPTOTAL_FIELD_NUMBER: _ClassVar[int]
    HEAPUSED_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_FIELD_NUMBER: _ClassVar[int]
    PAGE_TABLES_FIELD_NUMBER: _ClassVar[int]
    SWAP_FIELD_NUMBER: _ClassVar[int]
    rss: int
    heapTotal: int
    heapUsed: int
    external: int
    page_tables: int
    swap: int
    def __init__(self, rss: _Optional[int] = ..., heapTotal: _Optional[int] = ..., heapUsed: _Optional[int] = ..., external: _Optional[int] = ..., page_tables: _Optional[int] = ..., swap: _Optional[int] = ...) -> None: ...

class Region(_message.Message):
    __slots__ = ("start", "end", "size", "rss", "swap", "perms", "kind", "name", "huge_pages", "pinned")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    RSS_FIELD_NUMBER: _ClassVar[int]
    SWAP_FIELD_NUMBER: _ClassVar[int]
    PERMS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HUGE_PAGES_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    size: int
    rss: int
    swap: int
    perms: str
    kind: str
    name: str
    huge_pages: int
    pinned: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ..., size: _Optional[int] = ..., rss: _Optional[int] = ..., swap: _Optional[int] = ..., perms: _Optional[str] = ..., kind: _Optional[str] = ..., name: _Optional[str] = ..., huge_pages: _Optional[int] = ..., pinned: _Optional[int] = ...) -> None: ...

class MemoryMapReply(_message.Message):
    __slots__ = ("regions",)
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    regions: _containers.RepeatedCompositeFieldContainer[Region]
    def __init__(self, regions: _Optional[_Iterable[_Union[Region, _Mapping]]] = ...) -> None: ...

class SpaceStats(_message.Message):
    __slots__ = ("space", "page_table", "bits", "name", "page_table_bytes", "rss_pages", "swap_pages", "minflt", "majflt", "tlb_hits", "tlb_misses", "tlb_hit_ratio", "accesses", "owner", "keep", "lease_remaining")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TABLE_FIELD_NUMBER: _ClassVar[int]
    BITS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_TABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    RSS_PAGES_FIELD_NUMBER: _ClassVar[int]
    SWAP_PAGES_FIELD_NUMBER: _ClassVar[int]
    MINFLT_FIELD_NUMBER: _ClassVar[int]
    MAJFLT_FIELD_NUMBER: _ClassVar[int]
    TLB_HITS_FIELD_NUMBER: _ClassVar[int]
    TLB_MISSES_FIELD_NUMBER: _ClassVar[int]
    TLB_HIT_RATIO_FIELD_NUMBER: _ClassVar[int]
    ACCESSES_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    LEASE_REMAINING_FIELD_NUMBER: _ClassVar[int]
    space: int
    page_table: str
    bits: int
    name: str
    page_table_bytes: int
    rss_pages: int
    swap_pages: int
    minflt: int
    majflt: int
    tlb_hits: int
    tlb_misses: int
    tlb_hit_ratio: float
    accesses: int
    owner: str
    keep: bool
    lease_remaining: float
    def __init__(self, space: _Optional[int] = ..., page_table: _Optional[str] = ..., bits: _Optional[int] = ..., name: _Optional[str] = ..., page_table_bytes: _Optional[int] = ..., rss_pages: _Optional[int] = ..., swap_pages: _Optional[int] = ..., minflt: _Optional[int] = ..., majflt: _Optional[int] = ..., tlb_hits: _Optional[int] = ..., tlb_misses: _Optional[int] = ..., tlb_hit_ratio: _Optional[float] = ..., accesses: _Optional[int] = ..., owner: _Optional[str] = ..., keep: _Optional[bool] = ..., lease_remaining: _Optional[float] = ...) -> None: ...

class VmStatRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VmStatReply(_message.Message):
    __slots__ = ("counters", "policy", "core")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    counters: _containers.ScalarMap[str, int]
    policy: str
    core: int
    def __init__(self, counters: _Optional[_Mapping[str, int]] = ..., policy: _Optional[str] = ..., core: _Optional[int] = ...) -> None: ...

class VmBatch(_message.Message):
    __slots__ = ("seq", "op", "space", "address", "length", "data")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    seq: int
    op: _containers.RepeatedScalarFieldContainer[VmOp]
    space: _containers.RepeatedScalarFieldContainer[int]
    address: _containers.RepeatedScalarFieldContainer[int]
    length: _containers.RepeatedScalarFieldContainer[int]
    data: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, seq: _Optional[int] = ..., op: _Optional[_Iterable[_Union[VmOp, str]]] = ..., space: _Optional[_Iterable[int]] = ..., address: _Optional[_Iterable[int]] = ..., length: _Optional[_Iterable[int]] = ..., data: _Optional[_Iterable[bytes]] = ...) -> None: ...

class VmBatchReply(_message.Message):
    __slots__ = ("seq", "core", "data", "fault", "tlb_hit", "frame", "errors", "levels")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    TLB_HIT_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    core: int
    data: _containers.RepeatedScalarFieldContainer[bytes]
    fault: _containers.RepeatedScalarFieldContainer[int]
    tlb_hit: _containers.RepeatedScalarFieldContainer[bool]
    frame: _containers.RepeatedScalarFieldContainer[int]
    errors: _containers.RepeatedCompositeFieldContainer[_machine_pb2.OpError]
    levels: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, seq: _Optional[int] = ..., core: _Optional[int] = ..., data: _Optional[_Iterable[bytes]] = ..., fault: _Optional[_Iterable[int]] = ..., tlb_hit: _Optional[_Iterable[bool]] = ..., frame: _Optional[_Iterable[int]] = ..., errors: _Optional[_Iterable[_Union[_machine_pb2.OpError, _Mapping]]] = ..., levels: _Optional[_Iterable[int]] = ...) -> None: ...
