from memsim.v1 import machine_pb2 as _machine_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class V8Op(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    V8_OP_UNSPECIFIED: _ClassVar[V8Op]
    V8_NEW_OBJECT: _ClassVar[V8Op]
    V8_NEW_STRING: _ClassVar[V8Op]
    V8_NEW_ARRAY_BUFFER: _ClassVar[V8Op]
    V8_SET_FIELD: _ClassVar[V8Op]
    V8_GET_FIELD: _ClassVar[V8Op]
    V8_READ_PAYLOAD: _ClassVar[V8Op]
    V8_WRITE_PAYLOAD: _ClassVar[V8Op]
    V8_READ_BACKING: _ClassVar[V8Op]
    V8_WRITE_BACKING: _ClassVar[V8Op]
    V8_OPEN_SCOPE: _ClassVar[V8Op]
    V8_CLOSE_SCOPE: _ClassVar[V8Op]
    V8_MAKE_PERSISTENT: _ClassVar[V8Op]
    V8_DROP: _ClassVar[V8Op]
    V8_GC: _ClassVar[V8Op]

class ValueTag(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VALUE_NONE: _ClassVar[ValueTag]
    VALUE_SMI: _ClassVar[ValueTag]
    VALUE_HANDLE: _ClassVar[ValueTag]
    VALUE_REF: _ClassVar[ValueTag]
V8_OP_UNSPECIFIED: V8Op
V8_NEW_OBJECT: V8Op
V8_NEW_STRING: V8Op
V8_NEW_ARRAY_BUFFER: V8Op
V8_SET_FIELD: V8Op
V8_GET_FIELD: V8Op
V8_READ_PAYLOAD: V8Op
V8_WRITE_PAYLOAD: V8Op
V8_READ_BACKING: V8Op
V8_WRITE_BACKING: V8Op
V8_OPEN_SCOPE: V8Op
V8_CLOSE_SCOPE: V8Op
V8_MAKE_PERSISTENT: V8Op
V8_DROP: V8Op
V8_GC: V8Op
VALUE_NONE: ValueTag
VALUE_SMI: ValueTag
VALUE_HANDLE: ValueTag
VALUE_REF: ValueTag

class CreateIsolateRequest(_message.Message):
    __slots__ = ("semi_space_size", "max_old_space_size", "growing_factor", "keep", "lease_seconds", "gc_helpers", "incremental_marking", "concurrent_marking")
    SEMI_SPACE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_OLD_SPACE_SIZE_FIELD_NUMBER: _ClassVar[int]
    GROWING_FACTOR_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    GC_HELPERS_FIELD_NUMBER: _ClassVar[int]
    INCREMENTAL_MARKING_FIELD_NUMBER: _ClassVar[int]
    CONCURRENT_MARKING_FIELD_NUMBER: _ClassVar[int]
    semi_space_size: int
    max_old_space_size: int
    growing_factor: float
    keep: bool
    lease_seconds: float
    gc_helpers: int
    incremental_marking: bool
    concurrent_marking: bool
    def __init__(self, semi_space_size: _Optional[int] = ..., max_old_space_size: _Optional[int] = ..., growing_factor: _Optional[float] = ..., keep: _Optional[bool] = ..., lease_seconds: _Optional[float] = ..., gc_helpers: _Optional[int] = ..., incremental_marking: _Optional[bool] = ..., concurrent_marking: _Optional[bool] = ...) -> None: ...

class IsolateRequest(_message.Message):
    __slots__ = ("isolate",)
    ISOLATE_FIELD_NUMBER: _ClassVar[int]
    isolate: int
    def __init__(self, isolate: _Optional[int] = ...) -> None: ...

class ListIsolatesRequest(_message.Message):
    __slots__ = ("mine",)
    MINE_FIELD_NUMBER: _ClassVar[int]
    mine: bool
    def __init__(self, mine: _Optional[bool] = ...) -> None: ...

class IsolateInfo(_message.Message):
    __slots__ = ("isolate", "state", "space", "semi_space_size", "max_old_space_size", "owner", "keep", "holder", "core", "home", "gc_helpers", "incremental_marking", "concurrent_marking")
    ISOLATE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    SEMI_SPACE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_OLD_SPACE_SIZE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    HOME_FIELD_NUMBER: _ClassVar[int]
    GC_HELPERS_FIELD_NUMBER: _ClassVar[int]
    INCREMENTAL_MARKING_FIELD_NUMBER: _ClassVar[int]
    CONCURRENT_MARKING_FIELD_NUMBER: _ClassVar[int]
    isolate: int
    state: str
    space: int
    semi_space_size: int
    max_old_space_size: int
    owner: str
    keep: bool
    holder: int
    core: int
    home: int
    gc_helpers: int
    incremental_marking: bool
    concurrent_marking: bool
    def __init__(self, isolate: _Optional[int] = ..., state: _Optional[str] = ..., space: _Optional[int] = ..., semi_space_size: _Optional[int] = ..., max_old_space_size: _Optional[int] = ..., owner: _Optional[str] = ..., keep: _Optional[bool] = ..., holder: _Optional[int] = ..., core: _Optional[int] = ..., home: _Optional[int] = ..., gc_helpers: _Optional[int] = ..., incremental_marking: _Optional[bool] = ..., concurrent_marking: _Optional[bool] = ...) -> None: ...

class ListIsolatesReply(_message.Message):
    __slots__ = ("isolates",)
    ISOLATES_FIELD_NUMBER: _ClassVar[int]
    isolates: _containers.RepeatedCompositeFieldContainer[IsolateInfo]
    def __init__(self, isolates: _Optional[_Iterable[_Union[IsolateInfo, _Mapping]]] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("smi", "handle")
    SMI_FIELD_NUMBER: _ClassVar[int]
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    smi: int
    handle: int
    def __init__(self, smi: _Optional[int] = ..., handle: _Optional[int] = ...) -> None: ...

class NewObjectRequest(_message.Message):
    __slots__ = ("isolate", "fields", "nfields", "payload", "pretenure")
    ISOLATE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    NFIELDS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PRETENURE_FIELD_NUMBER: _ClassVar[int]
    isolate: int
    fields: _containers.RepeatedCompositeFieldContainer[Value]
    nfields: int
    payload: bytes
    pretenure: bool
    def __init__(self, isolate: _Optional[int] = ..., fields: _Optional[_Iterable[_Union[Value, _Mapping]]] = ..., nfields: _Optional[int] = ..., payload: _Optional[bytes] = ..., pretenure: _Optional[bool] = ...) -> None: ...

class NewStringRequest(_message.Message):
    __slots__ = ("isolate", "data", "pretenure")
    ISOLATE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    PRETENURE_FIELD_NUMBER: _ClassVar[int]
    isolate: int
    data: bytes
    pretenure: bool
    def __init__(self, isolate: _Optional[int] = ..., data: _Optional[bytes] = ..., pretenure: _Optional[bool] = ...) -> None: ...

class NewArrayBufferRequest(_message.Message):
    __slots__ = ("isolate", "byte_length")
    ISOLATE_FIELD_NUMBER: _ClassVar[int]
    BYTE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    isolate: int
    byte_length: int
    def __init__(self, isolate: _Optional[int] = ..., byte_length: _Optional[int] = ...) -> None: ...

class HandleReply(_message.Message):
    __slots__ = ("handle", "core")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    handle: int
    core: int
    def __init__(self, handle: _Optional[int] = ..., core: _Optional[int] = ...) -> None: ...

class HandleRequest(_message.Message):
    __slots__ = ("isolate", "handle")
    ISOLATE_FIELD_NUMBER: _ClassVar[int]
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    isolate: int
    handle: int
    def __init__(self, isolate: _Optional[int] = ..., handle: _Optional[int] = ...) -> None: ...

class SetFieldRequest(_message.Message):
    __slots__ = ("isolate", "handle", "index", "value")
    ISOLATE_FIELD_NUMBER: _ClassVar[int]
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    isolate: int
    handle: int
    index: int
    value: Value
    def __init__(self, isolate: _Optional[int] = ..., handle: _Optional[int] = ..., index: _Optional[int] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...

class SetFieldReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetFieldRequest(_message.Message):
    __slots__ = ("isolate", "handle", "index")
    ISOLATE_FIELD_NUMBER: _ClassVar[int]
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    isolate: int
    handle: int
    index: int
    def __init__(self, isolate: _Optional[int] = ..., handle: _Optional[int] = ..., index: _Optional[int] = ...) -> None: ...

class GetFieldReply(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: Value
    def __init__(self, value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...

class V8ReadRequest(_message.Message):
    __slots__ = ("isolate", "handle", "offset", "length")
    ISOLATE_FIELD_NUMBER: _ClassVar[int]
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    isolate: int
    handle: int
    offset: int
    length: int
    def __init__(self, isolate: _Optional[int] = ..., handle: _Optional[int] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class V8ReadReply(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class V8WriteRequest(_message.Message):
    __slots__ = ("isolate", "handle", "offset", "data")
    ISOLATE_FIELD_NUMBER: _ClassVar[int]
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    isolate: int
    handle: int
    offset: int
    data: bytes
    def __init__(self, isolate: _Optional[int] = ..., handle: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class V8WriteReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Description(_message.Message):
    __slots__ = ("nfields", "payload_len", "type", "space", "byte_length")
    NFIELDS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_LEN_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    BYTE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    nfields: int
    payload_len: int
    type: str
    space: str
    byte_length: int
    def __init__(self, nfields: _Optional[int] = ..., payload_len: _Optional[int] = ..., type: _Optional[str] = ..., space: _Optional[str] = ..., byte_length: _Optional[int] = ...) -> None: ...

class ScopeReply(_message.Message):
    __slots__ = ("depth",)
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    depth: int
    def __init__(self, depth: _Optional[int] = ...) -> None: ...

class CloseScopeRequest(_message.Message):
    __slots__ = ("isolate", "escape")
    ISOLATE_FIELD_NUMBER: _ClassVar[int]
    ESCAPE_FIELD_NUMBER: _ClassVar[int]
    isolate: int
    escape: int
    def __init__(self, isolate: _Optional[int] = ..., escape: _Optional[int] = ...) -> None: ...

class CloseScopeReply(_message.Message):
    __slots__ = ("escaped",)
    ESCAPED_FIELD_NUMBER: _ClassVar[int]
    escaped: int
    def __init__(self, escaped: _Optional[int] = ...) -> None: ...

class DropReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RequestGCRequest(_message.Message):
    __slots__ = ("isolate", "minor")
    ISOLATE_FIELD_NUMBER: _ClassVar[int]
    MINOR_FIELD_NUMBER: _ClassVar[int]
    isolate: int
    minor: bool
    def __init__(self, isolate: _Optional[int] = ..., minor: _Optional[bool] = ...) -> None: ...

class GcEvent(_message.Message):
    __slots__ = ("seq", "kind", "reason", "start_ms", "end_ms", "live_before", "committed_before", "live_after", "committed_after", "pause_ms", "main_cpu_ms", "total_cpu_ms", "scavenge_ms", "scavenge_roots_ms", "mark_ms", "evacuate_ms", "sweep_ms", "allocated", "promoted", "new_space_survived", "nodes_copied_in_new", "nodes_died_in_new", "nodes_promoted", "new_space_size_at_start", "objects_scanned", "words_scanned", "words_copied", "slots_visited", "barrier_slow_paths", "line", "nvp", "collector_reason", "pid", "heap_base", "compacted", "mutator_ms", "average_mu", "current_mu", "promotion_ratio", "average_survival_ratio", "promotion_rate", "new_space_survive_rate", "scavenge_throughput", "compaction_speed", "incremental_ms", "incremental_steps", "incremental_longest_ms", "incremental_walltime_ms", "helpers", "helper_objects", "segments_stolen", "cas_failures", "marking_step_start_ms", "marking_step_ms", "work_words", "span_words", "serial_words")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    LIVE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    LIVE_AFTER_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_AFTER_FIELD_NUMBER: _ClassVar[int]
    PAUSE_MS_FIELD_NUMBER: _ClassVar[int]
    MAIN_CPU_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CPU_MS_FIELD_NUMBER: _ClassVar[int]
    SCAVENGE_MS_FIELD_NUMBER: _ClassVar[int]
    SCAVENGE_ROOTS_MS_FIELD_NUMBER: _ClassVar[int]
    MARK_MS_FIELD_NUMBER: _ClassVar[int]
    EVACUATE_MS_FIELD_NUMBER: _ClassVar[int]
    SWEEP_MS_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_FIELD_NUMBER: _ClassVar[int]
    NEW_SPACE_SURVIVED_FIELD_NUMBER: _ClassVar[int]
    NODES_COPIED_IN_NEW_FIELD_NUMBER: _ClassVar[int]
    NODES_DIED_IN_NEW_FIELD_NUMBER: _ClassVar[int]
    NODES_PROMOTED_FIELD_NUMBER: _ClassVar[int]
    NEW_SPACE_SIZE_AT_START_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_SCANNED_FIELD_NUMBER: _ClassVar[int]
    WORDS_SCANNED_FIELD_NUMBER: _ClassVar[int]
    WORDS_COPIED_FIELD_NUMBER: _ClassVar[int]
    SLOTS_VISITED_FIELD_NUMBER: _ClassVar[int]
    BARRIER_SLOW_PATHS_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    NVP_FIELD_NUMBER: _ClassVar[int]
    COLLECTOR_REASON_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    HEAP_BASE_FIELD_NUMBER: _ClassVar[int]
    COMPACTED_FIELD_NUMBER: _ClassVar[int]
    MUTATOR_MS_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_MU_FIELD_NUMBER: _ClassVar[int]
    CURRENT_MU_FIELD_NUMBER: _ClassVar[int]
    PROMOTION_RATIO_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_SURVIVAL_RATIO_FIELD_NUMBER: _ClassVar[int]
    PROMOTION_RATE_FIELD_NUMBER: _ClassVar[int]
    NEW_SPACE_SURVIVE_RATE_FIELD_NUMBER: _ClassVar[int]
    SCAVENGE_THROUGHPUT_FIELD_NUMBER: _ClassVar[int]
    COMPACTION_SPEED_FIELD_NUMBER: _ClassVar[int]
    INCREMENTAL_MS_FIELD_NUMBER: _ClassVar[int]
    INCREMENTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    INCREMENTAL_LONGEST_MS_FIELD_NUMBER: _ClassVar[int]
    INCREMENTAL_WALLTIME_MS_FIELD_NUMBER: _ClassVar[int]
    HELPERS_FIELD_NUMBER: _ClassVar[int]
    HELPER_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_STOLEN_FIELD_NUMBER: _ClassVar[int]
    CAS_FAILURES_FIELD_NUMBER: _ClassVar[int]
    MARKING_STEP_START_MS_FIELD_NUMBER: _ClassVar[int]
    MARKING_STEP_MS_FIELD_NUMBER: _ClassVar[int]
    WORK_WORDS_FIELD_NUMBER: _ClassVar[int]
    SPAN_WORDS_FIELD_NUMBER: _ClassVar[int]
    SERIAL_WORDS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    kind: str
    reason: str
    start_ms: float
    end_ms: float
    live_before: int
    committed_before: int
    live_after: int
    committed_after: int
    pause_ms: float
    main_cpu_ms: float
    total_cpu_ms: float
    scavenge_ms: float
    scavenge_roots_ms: float
    mark_ms: float
    evacuate_ms: float
    sweep_ms: float
    allocated: int
    promoted: int
    new_space_survived: int
    nodes_copied_in_new: int
    nodes_died_in_new: int
    nodes_promoted: int
    new_space_size_at_start: int
    objects_scanned: int
    words_scanned: int
    words_copied: int
    slots_visited: int
    barrier_slow_paths: int
    line: str
    nvp: str
    collector_reason: str
    pid: int
    heap_base: int
    compacted: int
    mutator_ms: float
    average_mu: float
    current_mu: float
    promotion_ratio: float
    average_survival_ratio: float
    promotion_rate: float
    new_space_survive_rate: float
    scavenge_throughput: float
    compaction_speed: float
    incremental_ms: float
    incremental_steps: int
    incremental_longest_ms: float
    incremental_walltime_ms: float
    helpers: int
    helper_objects: int
    segments_stolen: int
    cas_failures: int
    marking_step_start_ms: _containers.RepeatedScalarFieldContainer[float]
    marking_step_ms: _containers.RepeatedScalarFieldContainer[float]
    work_words: int
    span_words: int
    serial_words: int
    def __init__(self, seq: _Optional[int] = ..., kind: _Optional[str] = ..., reason: _Optional[str] = ..., start_ms: _Optional[float] = ..., end_ms: _Optional[float] = ..., live_before: _Optional[int] = ..., committed_before: _Optional[int] = ..., live_after: _Optional[int] = ..., committed_after: _Optional[int] = ..., pause_ms: _Optional[float] = ..., main_cpu_ms: _Optional[float] = ..., total_cpu_ms: _Optional[float] = ..., scavenge_ms: _Optional[float] = ..., scavenge_roots_ms: _Optional[float] = ..., mark_ms: _Optional[float] = ..., evacuate_ms: _Optional[float] = ..., sweep_ms: _Optional[float] = ..., allocated: _Optional[int] = ..., promoted: _Optional[int] = ..., new_space_survived: _Optional[int] = ..., nodes_copied_in_new: _Optional[int] = ..., nodes_died_in_new: _Optional[int] = ..., nodes_promoted: _Optional[int] = ..., new_space_size_at_start: _Optional[int] = ..., objects_scanned: _Optional[int] = ..., words_scanned: _Optional[int] = ..., words_copied: _Optional[int] = ..., slots_visited: _Optional[int] = ..., barrier_slow_paths: _Optional[int] = ..., line: _Optional[str] = ..., nvp: _Optional[str] = ..., collector_reason: _Optional[str] = ..., pid: _Optional[int] = ..., heap_base: _Optional[int] = ..., compacted: _Optional[int] = ..., mutator_ms: _Optional[float] = ..., average_mu: _Optional[float] = ..., current_mu: _Optional[float] = ..., promotion_ratio: _Optional[float] = ..., average_survival_ratio: _Optional[float] = ..., promotion_rate: _Optional[float] = ..., new_space_survive_rate: _Optional[float] = ..., scavenge_throughput: _Optional[float] = ..., compaction_speed: _Optional[float] = ..., incremental_ms: _Optional[float] = ..., incremental_steps: _Optional[int] = ..., incremental_longest_ms: _Optional[float] = ..., incremental_walltime_ms: _Optional[float] = ..., helpers: _Optional[int] = ..., helper_objects: _Optional[int] = ..., segments_stolen: _Optional[int] = ..., cas_failures: _Optional[int] = ..., marking_step_start_ms: _Optional[_Iterable[float]] = ..., marking_step_ms: _Optional[_Iterable[float]] = ..., work_words: _Optional[int] = ..., span_words: _Optional[int] = ..., serial_words: _Optional[int] = ...) -> None: ...

class NodeMemoryUsage(_message.Message):
    __slots__ = ("rss", "heapTotal", "heapUsed", "external", "arrayBuffers")
    RSS_FIELD_NUMBER: _ClassVar[int]
    HEAPTOTAL_FIELD_NUMBER: _ClassVar[int]
    HEAPUSED_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_FIELD_NUMBER: _ClassVar[int]
    ARRAYBUFFERS_FIELD_NUMBER: _ClassVar[int]
    rss: int
    heapTotal: int
    heapUsed: int
    external: int
    arrayBuffers: int
    def __init__(self, rss: _Optional[int] = ..., heapTotal: _Optional[int] = ..., heapUsed: _Optional[int] = ..., external: _Optional[int] = ..., arrayBuffers: _Optional[int] = ...) -> None: ...

class HeapStatistics(_message.Message):
    __slots__ = ("total_heap_size", "total_heap_size_executable", "total_physical_size", "total_available_size", "used_heap_size", "heap_size_limit", "malloced_memory", "peak_malloced_memory", "does_zap_garbage", "number_of_native_contexts", "number_of_detached_contexts", "total_global_handles_size", "used_global_handles_size", "external_memory")
    TOTAL_HEAP_SIZE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_HEAP_SIZE_EXECUTABLE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PHYSICAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_AVAILABLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    USED_HEAP_SIZE_FIELD_NUMBER: _ClassVar[int]
    HEAP_SIZE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MALLOCED_MEMORY_FIELD_NUMBER: _ClassVar[int]
    PEAK_MALLOCED_MEMORY_FIELD_NUMBER: _ClassVar[int]
    DOES_ZAP_GARBAGE_FIELD_NUMBER: _ClassVar[int]
    NUMBER_OF_NATIVE_CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    NUMBER_OF_DETACHED_CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_GLOBAL_HANDLES_SIZE_FIELD_NUMBER: _ClassVar[int]
    USED_GLOBAL_HANDLES_SIZE_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_MEMORY_FIELD_NUMBER: _ClassVar[int]
    total_heap_size: int
    total_heap_size_executable: int
    total_physical_size: int
    total_available_size: int
    used_heap_size: int
    heap_size_limit: int
    malloced_memory: int
    peak_malloced_memory: int
    does_zap_garbage: int
    number_of_native_contexts: int
    number_of_detached_contexts: int
    total_global_handles_size: int
    used_global_handles_size: int
    external_memory: int
    def __init__(self, total_heap_size: _Optional[int] = ..., total_heap_size_executable: _Optional[int] = ..., total_physical_size: _Optional[int] = ..., total_available_size: _Optional[int] = ..., used_heap_size: _Optional[int] = ..., heap_size_limit: _Optional[int] = ..., malloced_memory: _Optional[int] = ..., peak_malloced_memory: _Optional[int] = ..., does_zap_garbage: _Optional[int] = ..., number_of_native_contexts: _Optional[int] = ..., number_of_detached_contexts: _Optional[int] = ..., total_global_handles_size: _Optional[int] = ..., used_global_handles_size: _Optional[int] = ..., external_memory: _Optional[int] = ...) -> None: ...

class HeapSpaceStatistics(_message.Message):
    __slots__ = ("space_name", "space_size", "space_used_size", "space_available_size", "physical_space_size")
    SPACE_NAME_FIELD_NUMBER: _ClassVar[int]
    SPACE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SPACE_USED_SIZE_FIELD_NUMBER: _ClassVar[int]
    SPACE_AVAILABLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_SPACE_SIZE_FIELD_NUMBER: _ClassVar[int]
    space_name: str
    space_size: int
    space_used_size: int
    space_available_size: int
    physical_space_size: int
    def __init__(self, space_name: _Optional[str] = ..., space_size: _Optional[int] = ..., space_used_size: _Optional[int] = ..., space_available_size: _Optional[int] = ..., physical_space_size: _Optional[int] = ...) -> None: ...

class HeapStatisticsReply(_message.Message):
    __slots__ = ("memory_usage", "heap_statistics", "spaces", "counters", "core")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MEMORY_USAGE_FIELD_NUMBER: _ClassVar[int]
    HEAP_STATISTICS_FIELD_NUMBER: _ClassVar[int]
    SPACES_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    memory_usage: NodeMemoryUsage
    heap_statistics: HeapStatistics
    spaces: _containers.RepeatedCompositeFieldContainer[HeapSpaceStatistics]
    counters: _containers.ScalarMap[str, float]
    core: int
    def __init__(self, memory_usage: _Optional[_Union[NodeMemoryUsage, _Mapping]] = ..., heap_statistics: _Optional[_Union[HeapStatistics, _Mapping]] = ..., spaces: _Optional[_Iterable[_Union[HeapSpaceStatistics, _Mapping]]] = ..., counters: _Optional[_Mapping[str, float]] = ..., core: _Optional[int] = ...) -> None: ...

class GcTraceRequest(_message.Message):
    __slots__ = ("isolate", "after_seq", "max_records")
    ISOLATE_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    MAX_RECORDS_FIELD_NUMBER: _ClassVar[int]
    isolate: int
    after_seq: int
    max_records: int
    def __init__(self, isolate: _Optional[int] = ..., after_seq: _Optional[int] = ..., max_records: _Optional[int] = ...) -> None: ...

class GcTraceReply(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[GcEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[GcEvent, _Mapping]]] = ...) -> None: ...

class V8Batch(_message.Message):
    __slots__ = ("seq", "isolate", "op", "a", "a_tag", "b", "c", "data", "nfields", "nvalues", "fields", "field_tags", "timeout_ms")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ISOLATE_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    A_TAG_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    C_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    NFIELDS_FIELD_NUMBER: _ClassVar[int]
    NVALUES_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    FIELD_TAGS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    isolate: int
    op: _containers.RepeatedScalarFieldContainer[V8Op]
    a: _containers.RepeatedScalarFieldContainer[int]
    a_tag: _containers.RepeatedScalarFieldContainer[ValueTag]
    b: _containers.RepeatedScalarFieldContainer[int]
    c: _containers.RepeatedScalarFieldContainer[int]
    data: _containers.RepeatedScalarFieldContainer[bytes]
    nfields: _containers.RepeatedScalarFieldContainer[int]
    nvalues: _containers.RepeatedScalarFieldContainer[int]
    fields: _containers.RepeatedScalarFieldContainer[int]
    field_tags: _containers.RepeatedScalarFieldContainer[ValueTag]
    timeout_ms: int
    def __init__(self, seq: _Optional[int] = ..., isolate: _Optional[int] = ..., op: _Optional[_Iterable[_Union[V8Op, str]]] = ..., a: _Optional[_Iterable[int]] = ..., a_tag: _Optional[_Iterable[_Union[ValueTag, str]]] = ..., b: _Optional[_Iterable[int]] = ..., c: _Optional[_Iterable[int]] = ..., data: _Optional[_Iterable[bytes]] = ..., nfields: _Optional[_Iterable[int]] = ..., nvalues: _Optional[_Iterable[int]] = ..., fields: _Optional[_Iterable[int]] = ..., field_tags: _Optional[_Iterable[_Union[ValueTag, str]]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class V8BatchReply(_message.Message):
    __slots__ = ("seq", "core", "value", "value_tag", "data", "errors")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VALUE_TAG_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    core: int
    value: _containers.RepeatedScalarFieldContainer[int]
    value_tag: _containers.RepeatedScalarFieldContainer[ValueTag]
    data: _containers.RepeatedScalarFieldContainer[bytes]
    errors: _containers.RepeatedCompositeFieldContainer[_machine_pb2.OpError]
    def __init__(self, seq: _Optional[int] = ..., core: _Optional[int] = ..., value: _Optional[_Iterable[int]] = ..., value_tag: _Optional[_Iterable[_Union[ValueTag, str]]] = ..., data: _Optional[_Iterable[bytes]] = ..., errors: _Optional[_Iterable[_Union[_machine_pb2.OpError, _Mapping]]] = ...) -> None: ...
