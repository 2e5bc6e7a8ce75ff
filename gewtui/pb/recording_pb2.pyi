from gewtui.pb import events_pb2 as _events_pb2
from gewtui.pb import session_pb2 as _session_pb2
from gewtui.pb import intervention_pb2 as _intervention_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordingHeader(_message.Message):
    __slots__ = ("format_version", "session", "capabilities", "created_unix_ns", "writer", "drop_reasons", "reset_reasons")
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
    format_version: int
    session: _session_pb2.SessionInfo
    capabilities: _session_pb2.CapabilityReport
    created_unix_ns: int
    writer: str
    drop_reasons: _containers.ScalarMap[int, str]
    reset_reasons: _containers.ScalarMap[int, str]
    def __init__(self, format_version: _Optional[int] = ..., session: _Optional[_Union[_session_pb2.SessionInfo, _Mapping]] = ..., capabilities: _Optional[_Union[_session_pb2.CapabilityReport, _Mapping]] = ..., created_unix_ns: _Optional[int] = ..., writer: _Optional[str] = ..., drop_reasons: _Optional[_Mapping[int, str]] = ..., reset_reasons: _Optional[_Mapping[int, str]] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("event", "intervention", "stats", "end")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    INTERVENTION_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    event: _events_pb2.Event
    intervention: _intervention_pb2.InterventionRecord
    stats: _session_pb2.SessionStats
    end: _session_pb2.SessionEnd
    def __init__(self, event: _Optional[_Union[_events_pb2.Event, _Mapping]] = ..., intervention: _Optional[_Union[_intervention_pb2.InterventionRecord, _Mapping]] = ..., stats: _Optional[_Union[_session_pb2.SessionStats, _Mapping]] = ..., end: _Optional[_Union[_session_pb2.SessionEnd, _Mapping]] = ...) -> None: ...
