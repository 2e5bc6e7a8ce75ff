from gewtui.pb import events_pb2 as _events_pb2
from gewtui.pb import intervention_pb2 as _intervention_pb2
from gewtui.pb import model_pb2 as _model_pb2
from gewtui.pb import session_pb2 as _session_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProposalState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROPOSAL_STATE_UNSPECIFIED: _ClassVar[ProposalState]
    PENDING: _ClassVar[ProposalState]
    CONFIRMED: _ClassVar[ProposalState]
    REFUSED_LOCALLY: _ClassVar[ProposalState]
    WITHDRAWN: _ClassVar[ProposalState]
PROPOSAL_STATE_UNSPECIFIED: ProposalState
PENDING: ProposalState
CONFIRMED: ProposalState
REFUSED_LOCALLY: ProposalState
WITHDRAWN: ProposalState

class RuntimeInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RuntimeInfoReply(_message.Message):
    __slots__ = ("runtime", "protocol_version", "server_public_key", "peer_name")
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVER_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    PEER_NAME_FIELD_NUMBER: _ClassVar[int]
    runtime: _session_pb2.RuntimeInfo
    protocol_version: int
    server_public_key: bytes
    peer_name: str
    def __init__(self, runtime: _Optional[_Union[_session_pb2.RuntimeInfo, _Mapping]] = ..., protocol_version: _Optional[int] = ..., server_public_key: _Optional[bytes] = ..., peer_name: _Optional[str] = ...) -> None: ...

class CapabilitiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CompatibilityRequest(_message.Message):
    __slots__ = ("protocol_version", "required_capabilities")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    required_capabilities: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, protocol_version: _Optional[int] = ..., required_capabilities: _Optional[_Iterable[str]] = ...) -> None: ...

class CompatibilityReply(_message.Message):
    __slots__ = ("compatible", "verdict", "reason", "protocol_version", "required")
    COMPATIBLE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    compatible: bool
    verdict: _session_pb2.CapabilityState
    reason: str
    protocol_version: int
    required: _containers.RepeatedCompositeFieldContainer[_session_pb2.Capability]
    def __init__(self, compatible: _Optional[bool] = ..., verdict: _Optional[_Union[_session_pb2.CapabilityState, str]] = ..., reason: _Optional[str] = ..., protocol_version: _Optional[int] = ..., required: _Optional[_Iterable[_Union[_session_pb2.Capability, _Mapping]]] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SessionSummary(_message.Message):
    __slots__ = ("info", "recording", "events", "lost_records", "observation_complete", "incomplete_reason", "ended", "control_socket", "stream_cutoffs", "rejected_requests")
    INFO_FIELD_NUMBER: _ClassVar[int]
    RECORDING_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    LOST_RECORDS_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    INCOMPLETE_REASON_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    CONTROL_SOCKET_FIELD_NUMBER: _ClassVar[int]
    STREAM_CUTOFFS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    info: _session_pb2.SessionInfo
    recording: str
    events: int
    lost_records: int
    observation_complete: bool
    incomplete_reason: str
    ended: bool
    control_socket: str
    stream_cutoffs: int
    rejected_requests: int
    def __init__(self, info: _Optional[_Union[_session_pb2.SessionInfo, _Mapping]] = ..., recording: _Optional[str] = ..., events: _Optional[int] = ..., lost_records: _Optional[int] = ..., observation_complete: _Optional[bool] = ..., incomplete_reason: _Optional[str] = ..., ended: _Optional[bool] = ..., control_socket: _Optional[str] = ..., stream_cutoffs: _Optional[int] = ..., rejected_requests: _Optional[int] = ...) -> None: ...

class ListSessionsReply(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[SessionSummary]
    def __init__(self, sessions: _Optional[_Iterable[_Union[SessionSummary, _Mapping]]] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("from_event_id", "live_only")
    FROM_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    LIVE_ONLY_FIELD_NUMBER: _ClassVar[int]
    from_event_id: int
    live_only: bool
    def __init__(self, from_event_id: _Optional[int] = ..., live_only: _Optional[bool] = ...) -> None: ...

class FlowRequest(_message.Message):
    __slots__ = ("flow_id",)
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    flow_id: int
    def __init__(self, flow_id: _Optional[int] = ...) -> None: ...

class ListInterventionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DropProposal(_message.Message):
    __slots__ = ("proposal_id", "flow_id", "peer", "reason", "unix_ns", "state", "intervention_id")
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INTERVENTION_ID_FIELD_NUMBER: _ClassVar[int]
    proposal_id: int
    flow_id: int
    peer: str
    reason: str
    unix_ns: int
    state: ProposalState
    intervention_id: int
    def __init__(self, proposal_id: _Optional[int] = ..., flow_id: _Optional[int] = ..., peer: _Optional[str] = ..., reason: _Optional[str] = ..., unix_ns: _Optional[int] = ..., state: _Optional[_Union[ProposalState, str]] = ..., intervention_id: _Optional[int] = ...) -> None: ...

class InterventionList(_message.Message):
    __slots__ = ("records", "proposals")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[_intervention_pb2.InterventionRecord]
    proposals: _containers.RepeatedCompositeFieldContainer[DropProposal]
    def __init__(self, records: _Optional[_Iterable[_Union[_intervention_pb2.InterventionRecord, _Mapping]]] = ..., proposals: _Optional[_Iterable[_Union[DropProposal, _Mapping]]] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.Event]
    def __init__(self, events: _Optional[_Iterable[_Union[_events_pb2.Event, _Mapping]]] = ...) -> None: ...

class DropRequest(_message.Message):
    __slots__ = ("flow_id", "reason")
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    flow_id: int
    reason: str
    def __init__(self, flow_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...
