from gewtui.pb import events_pb2 as _events_pb2
from gewtui.pb import session_pb2 as _session_pb2
from gewtui.pb import intervention_pb2 as _intervention_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordingHeader(_message.Message):
    __slots__ = ("format_version", "session", "capabilities", "created_unix_ns", "writer", "drop_reasons", "reset_reasons", "clock_offset_ns", "port_ranges")
    class DropReasonsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    class ResetReasonsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    WRITER_FIELD_NUMBER: _ClassVar[int]
    DROP_REASONS_FIELD_NUMBER: _ClassVar[int]
    RESET_REASONS_FIELD_NUMBER: _ClassVar[int]
    CLOCK_OFFSET_NS_FIELD_NUMBER: _ClassVar[int]
    PORT_RANGES_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    session: _session_pb2.SessionInfo
    capabilities: _session_pb2.CapabilityReport
    created_unix_ns: int
    writer: str
    drop_reasons: _containers.ScalarMap[int, str]
    reset_reasons: _containers.ScalarMap[int, str]
    clock_offset_ns: int
    port_ranges: _containers.RepeatedCompositeFieldContainer[NetnsPortRange]
    def __init__(self, format_version: _Optional[int] = ..., session: _Optional[_Union[_session_pb2.SessionInfo, _Mapping]] = ..., capabilities: _Optional[_Union[_session_pb2.CapabilityReport, _Mapping]] = ..., created_unix_ns: _Optional[int] = ..., writer: _Optional[str] = ..., drop_reasons: _Optional[_Mapping[int, str]] = ..., reset_reasons: _Optional[_Mapping[int, str]] = ..., clock_offset_ns: _Optional[int] = ..., port_ranges: _Optional[_Iterable[_Union[NetnsPortRange, _Mapping]]] = ...) -> None: ...

class NetnsPortRange(_message.Message):
    __slots__ = ("netns", "name", "lo", "hi")
    NETNS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LO_FIELD_NUMBER: _ClassVar[int]
    HI_FIELD_NUMBER: _ClassVar[int]
    netns: int
    name: str
    lo: int
    hi: int
    def __init__(self, netns: _Optional[int] = ..., name: _Optional[str] = ..., lo: _Optional[int] = ..., hi: _Optional[int] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("event", "intervention", "stats", "end", "checkpoint")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    INTERVENTION_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    event: _events_pb2.Event
    intervention: _intervention_pb2.InterventionRecord
    stats: _session_pb2.SessionStats
    end: _session_pb2.SessionEnd
    checkpoint: EngineCheckpoint
    def __init__(self, event: _Optional[_Union[_events_pb2.Event, _Mapping]] = ..., intervention: _Optional[_Union[_intervention_pb2.InterventionRecord, _Mapping]] = ..., stats: _Optional[_Union[_session_pb2.SessionStats, _Mapping]] = ..., end: _Optional[_Union[_session_pb2.SessionEnd, _Mapping]] = ..., checkpoint: _Optional[_Union[EngineCheckpoint, _Mapping]] = ...) -> None: ...

class EngineCheckpoint(_message.Message):
    __slots__ = ("events", "last_event_id", "last_ktime_ns", "last_event", "first_ktime_ns", "resume_offset", "prev_offset", "model", "templates", "part", "parts", "first_offset", "state")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_KTIME_NS_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_FIELD_NUMBER: _ClassVar[int]
    FIRST_KTIME_NS_FIELD_NUMBER: _ClassVar[int]
    RESUME_OFFSET_FIELD_NUMBER: _ClassVar[int]
    PREV_OFFSET_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    PART_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    FIRST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    events: int
    last_event_id: int
    last_ktime_ns: int
    last_event: bytes
    first_ktime_ns: int
    resume_offset: int
    prev_offset: int
    model: str
    templates: str
    part: int
    parts: int
    first_offset: int
    state: bytes
    def __init__(self, events: _Optional[int] = ..., last_event_id: _Optional[int] = ..., last_ktime_ns: _Optional[int] = ..., last_event: _Optional[bytes] = ..., first_ktime_ns: _Optional[int] = ..., resume_offset: _Optional[int] = ..., prev_offset: _Optional[int] = ..., model: _Optional[str] = ..., templates: _Optional[str] = ..., part: _Optional[int] = ..., parts: _Optional[int] = ..., first_offset: _Optional[int] = ..., state: _Optional[bytes] = ...) -> None: ...
