from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Layer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LAYER_UNSPECIFIED: _ClassVar[Layer]
    TINY: _ClassVar[Layer]
    MCACHE: _ClassVar[Layer]
    MCENTRAL: _ClassVar[Layer]
    MHEAP: _ClassVar[Layer]

class OpKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OP_UNSPECIFIED: _ClassVar[OpKind]
    ALLOC: _ClassVar[OpKind]
    FREE: _ClassVar[OpKind]
    READ: _ClassVar[OpKind]
    WRITE: _ClassVar[OpKind]
LAYER_UNSPECIFIED: Layer
TINY: Layer
MCACHE: Layer
MCENTRAL: Layer
MHEAP: Layer
OP_UNSPECIFIED: OpKind
ALLOC: OpKind
FREE: OpKind
READ: OpKind
WRITE: OpKind

class LockWait(_message.Message):
    __slots__ = ("lock", "wait_ns")
    LOCK_FIELD_NUMBER: _ClassVar[int]
    WAIT_NS_FIELD_NUMBER: _ClassVar[int]
    lock: str
    wait_ns: int
    def __init__(self, lock: _Optional[str] = ..., wait_ns: _Optional[int] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SizeClass(_message.Message):
    __slots__ = ("index", "size", "npages", "objects", "tail_waste", "max_waste", "batch")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    NPAGES_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    TAIL_WASTE_FIELD_NUMBER: _ClassVar[int]
    MAX_WASTE_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    index: int
    size: int
    npages: int
    objects: int
    tail_waste: int
    max_waste: float
    batch: int
    def __init__(self, index: _Optional[int] = ..., size: _Optional[int] = ..., npages: _Optional[int] = ..., objects: _Optional[int] = ..., tail_waste: _Optional[int] = ..., max_waste: _Optional[float] = ..., batch: _Optional[int] = ...) -> None: ...

class MachineInfo(_message.Message):
    __slots__ = ("cores", "memory_bytes", "frame_size", "heap_page_size", "per_core_caches", "global_lock", "core", "port", "size_classes", "atomics_backend", "arena_base")
    CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    FRAME_SIZE_FIELD_NUMBER: _ClassVar[int]
    HEAP_PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PER_CORE_CACHES_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_LOCK_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    SIZE_CLASSES_FIELD_NUMBER: _ClassVar[int]
    ATOMICS_BACKEND_FIELD_NUMBER: _ClassVar[int]
    ARENA_BASE_FIELD_NUMBER: _ClassVar[int]
    cores: int
    memory_bytes: int
    frame_size: int
    heap_page_size: int
    per_core_caches: bool
    global_lock: bool
    core: int
    port: int
    size_classes: _containers.RepeatedCompositeFieldContainer[SizeClass]
    atomics_backend: str
    arena_base: int
    def __init__(self, cores: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., frame_size: _Optional[int] = ..., heap_page_size: _Optional[int] = ..., per_core_caches: _Optional[bool] = ..., global_lock: _Optional[bool] = ..., core: _Optional[int] = ..., port: _Optional[int] = ..., size_classes: _Optional[_Iterable[_Union[SizeClass, _Mapping]]] = ..., atomics_backend: _Optional[str] = ..., arena_base: _Optional[int] = ...) -> None: ...

class AllocRequest(_message.Message):
    __slots__ = ("size", "keep")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    size: int
    keep: bool
    def __init__(self, size: _Optional[int] = ..., keep: _Optional[bool] = ...) -> None: ...

class ListObjectsRequest(_message.Message):
    __slots__ = ("core", "client", "mine", "limit")
    CORE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    MINE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    core: int
    client: str
    mine: bool
    limit: int
    def __init__(self, core: _Optional[int] = ..., client: _Optional[str] = ..., mine: _Optional[bool] = ..., limit: _Optional[int] = ...) -> None: ...

class LiveObject(_message.Message):
    __slots__ = ("address", "size", "core", "client", "kind")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    address: int
    size: int
    core: int
    client: str
    kind: str
    def __init__(self, address: _Optional[int] = ..., size: _Optional[int] = ..., core: _Optional[int] = ..., client: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class ListObjectsReply(_message.Message):
    __slots__ = ("objects", "total")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[LiveObject]
    total: int
    def __init__(self, objects: _Optional[_Iterable[_Union[LiveObject, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RenewReply(_message.Message):
    __slots__ = ("spaces", "objects", "isolates")
    SPACES_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    ISOLATES_FIELD_NUMBER: _ClassVar[int]
    spaces: int
    objects: bool
    isolates: int
    def __init__(self, spaces: _Optional[int] = ..., objects: _Optional[bool] = ..., isolates: _Optional[int] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReleaseReply(_message.Message):
    __slots__ = ("spaces", "objects", "isolates")
    SPACES_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    ISOLATES_FIELD_NUMBER: _ClassVar[int]
    spaces: _containers.RepeatedScalarFieldContainer[int]
    objects: int
    isolates: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, spaces: _Optional[_Iterable[int]] = ..., objects: _Optional[int] = ..., isolates: _Optional[_Iterable[int]] = ...) -> None: ...

class AllocReply(_message.Message):
    __slots__ = ("address", "size", "usable_size", "size_class", "layer", "core", "lock_waits")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    USABLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SIZE_CLASS_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    LOCK_WAITS_FIELD_NUMBER: _ClassVar[int]
    address: int
    size: int
    usable_size: int
    size_class: int
    layer: Layer
    core: int
    lock_waits: _containers.RepeatedCompositeFieldContainer[LockWait]
    def __init__(self, address: _Optional[int] = ..., size: _Optional[int] = ..., usable_size: _Optional[int] = ..., size_class: _Optional[int] = ..., layer: _Optional[_Union[Layer, str]] = ..., core: _Optional[int] = ..., lock_waits: _Optional[_Iterable[_Union[LockWait, _Mapping]]] = ...) -> None: ...

class FreeRequest(_message.Message):
    __slots__ = ("address",)
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    address: int
    def __init__(self, address: _Optional[int] = ...) -> None: ...

class FreeReply(_message.Message):
    __slots__ = ("layer", "core", "lock_waits")
    LAYER_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    LOCK_WAITS_FIELD_NUMBER: _ClassVar[int]
    layer: Layer
    core: int
    lock_waits: _containers.RepeatedCompositeFieldContainer[LockWait]
    def __init__(self, layer: _Optional[_Union[Layer, str]] = ..., core: _Optional[int] = ..., lock_waits: _Optional[_Iterable[_Union[LockWait, _Mapping]]] = ...) -> None: ...

class ReadRequest(_message.Message):
    __slots__ = ("address", "offset", "length")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    address: int
    offset: int
    length: int
    def __init__(self, address: _Optional[int] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class ReadReply(_message.Message):
    __slots__ = ("data", "core")
    DATA_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    core: int
    def __init__(self, data: _Optional[bytes] = ..., core: _Optional[int] = ...) -> None: ...

class WriteRequest(_message.Message):
    __slots__ = ("address", "offset", "data")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    address: int
    offset: int
    data: bytes
    def __init__(self, address: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class WriteReply(_message.Message):
    __slots__ = ("core",)
    CORE_FIELD_NUMBER: _ClassVar[int]
    core: int
    def __init__(self, core: _Optional[int] = ...) -> None: ...

class OpBatch(_message.Message):
    __slots__ = ("seq", "kind", "address", "size", "offset", "data", "ref", "timeout_ms")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    kind: _containers.RepeatedScalarFieldContainer[OpKind]
    address: _containers.RepeatedScalarFieldContainer[int]
    size: _containers.RepeatedScalarFieldContainer[int]
    offset: _containers.RepeatedScalarFieldContainer[int]
    data: _containers.RepeatedScalarFieldContainer[bytes]
    ref: _containers.RepeatedScalarFieldContainer[int]
    timeout_ms: int
    def __init__(self, seq: _Optional[int] = ..., kind: _Optional[_Iterable[_Union[OpKind, str]]] = ..., address: _Optional[_Iterable[int]] = ..., size: _Optional[_Iterable[int]] = ..., offset: _Optional[_Iterable[int]] = ..., data: _Optional[_Iterable[bytes]] = ..., ref: _Optional[_Iterable[int]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class OpError(_message.Message):
    __slots__ = ("index", "code", "message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    code: int
    message: str
    def __init__(self, index: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class BatchReply(_message.Message):
    __slots__ = ("seq", "core", "address", "layer", "data", "errors", "lock_wait_ns", "expired")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    LOCK_WAIT_NS_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    core: int
    address: _containers.RepeatedScalarFieldContainer[int]
    layer: _containers.RepeatedScalarFieldContainer[Layer]
    data: _containers.RepeatedScalarFieldContainer[bytes]
    errors: _containers.RepeatedCompositeFieldContainer[OpError]
    lock_wait_ns: int
    expired: bool
    def __init__(self, seq: _Optional[int] = ..., core: _Optional[int] = ..., address: _Optional[_Iterable[int]] = ..., layer: _Optional[_Iterable[_Union[Layer, str]]] = ..., data: _Optional[_Iterable[bytes]] = ..., errors: _Optional[_Iterable[_Union[OpError, _Mapping]]] = ..., lock_wait_ns: _Optional[int] = ..., expired: _Optional[bool] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ("check_heap",)
    CHECK_HEAP_FIELD_NUMBER: _ClassVar[int]
    check_heap: bool
    def __init__(self, check_heap: _Optional[bool] = ...) -> None: ...

class MemStats(_message.Message):
    __slots__ = ("HeapAlloc", "HeapSys", "HeapIdle", "HeapInuse", "HeapReleased", "HeapObjects", "Mallocs", "Frees", "TotalAlloc", "TinyAllocs", "LargeAllocs", "BySize", "Alloc", "Sys")
    HEAPALLOC_FIELD_NUMBER: _ClassVar[int]
    HEAPSYS_FIELD_NUMBER: _ClassVar[int]
    HEAPIDLE_FIELD_NUMBER: _ClassVar[int]
    HEAPINUSE_FIELD_NUMBER: _ClassVar[int]
    HEAPRELEASED_FIELD_NUMBER: _ClassVar[int]
    HEAPOBJECTS_FIELD_NUMBER: _ClassVar[int]
    MALLOCS_FIELD_NUMBER: _ClassVar[int]
    FREES_FIELD_NUMBER: _ClassVar[int]
    TOTALALLOC_FIELD_NUMBER: _ClassVar[int]
    TINYALLOCS_FIELD_NUMBER: _ClassVar[int]
    LARGEALLOCS_FIELD_NUMBER: _ClassVar[int]
    BYSIZE_FIELD_NUMBER: _ClassVar[int]
    ALLOC_FIELD_NUMBER: _ClassVar[int]
    SYS_FIELD_NUMBER: _ClassVar[int]
    HeapAlloc: int
    HeapSys: int
    HeapIdle: int
    HeapInuse: int
    HeapReleased: int
    HeapObjects: int
    Mallocs: int
    Frees: int
    TotalAlloc: int
    TinyAllocs: int
    LargeAllocs: int
    BySize: _containers.RepeatedCompositeFieldContainer[BySizeEntry]
    Alloc: int
    Sys: int
    def __init__(self, HeapAlloc: _Optional[int] = ..., HeapSys: _Optional[int] = ..., HeapIdle: _Optional[int] = ..., HeapInuse: _Optional[int] = ..., HeapReleased: _Optional[int] = ..., HeapObjects: _Optional[int] = ..., Mallocs: _Optional[int] = ..., Frees: _Optional[int] = ..., TotalAlloc: _Optional[int] = ..., TinyAllocs: _Optional[int] = ..., LargeAllocs: _Optional[int] = ..., BySize: _Optional[_Iterable[_Union[BySizeEntry, _Mapping]]] = ..., Alloc: _Optional[int] = ..., Sys: _Optional[int] = ...) -> None: ...

class BySizeEntry(_message.Message):
    __slots__ = ("Size", "Mallocs", "Frees")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MALLOCS_FIELD_NUMBER: _ClassVar[int]
    FREES_FIELD_NUMBER: _ClassVar[int]
    Size: int
    Mallocs: int
    Frees: int
    def __init__(self, Size: _Optional[int] = ..., Mallocs: _Optional[int] = ..., Frees: _Optional[int] = ...) -> None: ...

class LockStat(_message.Message):
    __slots__ = ("name", "acquisitions", "contended", "wait_ns", "max_wait_ns", "owner_switches", "hold_ns")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACQUISITIONS_FIELD_NUMBER: _ClassVar[int]
    CONTENDED_FIELD_NUMBER: _ClassVar[int]
    WAIT_NS_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_NS_FIELD_NUMBER: _ClassVar[int]
    OWNER_SWITCHES_FIELD_NUMBER: _ClassVar[int]
    HOLD_NS_FIELD_NUMBER: _ClassVar[int]
    name: str
    acquisitions: int
    contended: int
    wait_ns: int
    max_wait_ns: int
    owner_switches: int
    hold_ns: int
    def __init__(self, name: _Optional[str] = ..., acquisitions: _Optional[int] = ..., contended: _Optional[int] = ..., wait_ns: _Optional[int] = ..., max_wait_ns: _Optional[int] = ..., owner_switches: _Optional[int] = ..., hold_ns: _Optional[int] = ...) -> None: ...

class CacheStat(_message.Message):
    __slots__ = ("core", "hits", "refills", "flushes", "central_direct", "tiny_allocs", "bad_frees")
    CORE_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    REFILLS_FIELD_NUMBER: _ClassVar[int]
    FLUSHES_FIELD_NUMBER: _ClassVar[int]
    CENTRAL_DIRECT_FIELD_NUMBER: _ClassVar[int]
    TINY_ALLOCS_FIELD_NUMBER: _ClassVar[int]
    BAD_FREES_FIELD_NUMBER: _ClassVar[int]
    core: int
    hits: int
    refills: int
    flushes: int
    central_direct: int
    tiny_allocs: int
    bad_frees: int
    def __init__(self, core: _Optional[int] = ..., hits: _Optional[int] = ..., refills: _Optional[int] = ..., flushes: _Optional[int] = ..., central_direct: _Optional[int] = ..., tiny_allocs: _Optional[int] = ..., bad_frees: _Optional[int] = ...) -> None: ...

class CentralStat(_message.Message):
    __slots__ = ("size", "spans", "free_objects", "remove_range", "insert_range", "span_allocs", "span_frees")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    FREE_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_RANGE_FIELD_NUMBER: _ClassVar[int]
    INSERT_RANGE_FIELD_NUMBER: _ClassVar[int]
    SPAN_ALLOCS_FIELD_NUMBER: _ClassVar[int]
    SPAN_FREES_FIELD_NUMBER: _ClassVar[int]
    size: int
    spans: int
    free_objects: int
    remove_range: int
    insert_range: int
    span_allocs: int
    span_frees: int
    def __init__(self, size: _Optional[int] = ..., spans: _Optional[int] = ..., free_objects: _Optional[int] = ..., remove_range: _Optional[int] = ..., insert_range: _Optional[int] = ..., span_allocs: _Optional[int] = ..., span_frees: _Optional[int] = ...) -> None: ...

class Stats(_message.Message):
    __slots__ = ("memstats", "locks", "caches", "centrals", "frames", "core", "recoveries", "heap_grows", "scavenged_pages", "heap_checked", "heap_problems")
    class FramesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    MEMSTATS_FIELD_NUMBER: _ClassVar[int]
    LOCKS_FIELD_NUMBER: _ClassVar[int]
    CACHES_FIELD_NUMBER: _ClassVar[int]
    CENTRALS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    RECOVERIES_FIELD_NUMBER: _ClassVar[int]
    HEAP_GROWS_FIELD_NUMBER: _ClassVar[int]
    SCAVENGED_PAGES_FIELD_NUMBER: _ClassVar[int]
    HEAP_CHECKED_FIELD_NUMBER: _ClassVar[int]
    HEAP_PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    memstats: MemStats
    locks: _containers.RepeatedCompositeFieldContainer[LockStat]
    caches: _containers.RepeatedCompositeFieldContainer[CacheStat]
    centrals: _containers.RepeatedCompositeFieldContainer[CentralStat]
    frames: _containers.ScalarMap[str, int]
    core: int
    recoveries: int
    heap_grows: int
    scavenged_pages: int
    heap_checked: bool
    heap_problems: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, memstats: _Optional[_Union[MemStats, _Mapping]] = ..., locks: _Optional[_Iterable[_Union[LockStat, _Mapping]]] = ..., caches: _Optional[_Iterable[_Union[CacheStat, _Mapping]]] = ..., centrals: _Optional[_Iterable[_Union[CentralStat, _Mapping]]] = ..., frames: _Optional[_Mapping[str, int]] = ..., core: _Optional[int] = ..., recoveries: _Optional[int] = ..., heap_grows: _Optional[int] = ..., scavenged_pages: _Optional[int] = ..., heap_checked: _Optional[bool] = ..., heap_problems: _Optional[_Iterable[str]] = ...) -> None: ...

class MonitorRequest(_message.Message):
    __slots__ = ("seconds", "limit", "space")
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    seconds: float
    limit: int
    space: int
    def __init__(self, seconds: _Optional[float] = ..., limit: _Optional[int] = ..., space: _Optional[int] = ...) -> None: ...

class MonitorBatch(_message.Message):
    __slots__ = ("core", "time_ns", "key", "size", "op", "lost")
    CORE_FIELD_NUMBER: _ClassVar[int]
    TIME_NS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    core: int
    time_ns: _containers.RepeatedScalarFieldContainer[int]
    key: _containers.RepeatedScalarFieldContainer[int]
    size: _containers.RepeatedScalarFieldContainer[int]
    op: _containers.RepeatedScalarFieldContainer[int]
    lost: int
    def __init__(self, core: _Optional[int] = ..., time_ns: _Optional[_Iterable[int]] = ..., key: _Optional[_Iterable[int]] = ..., size: _Optional[_Iterable[int]] = ..., op: _Optional[_Iterable[int]] = ..., lost: _Optional[int] = ...) -> None: ...
