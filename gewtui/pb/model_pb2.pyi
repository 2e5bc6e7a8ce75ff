from gewtui.pb import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlowPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FLOW_PHASE_UNSPECIFIED: _ClassVar[FlowPhase]
    EMERGED: _ClassVar[FlowPhase]
    EVOLVING: _ClassVar[FlowPhase]
    DIVERGED: _ClassVar[FlowPhase]
    TERMINATED: _ClassVar[FlowPhase]

class ReasonLayer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_LAYER_UNSPECIFIED: _ClassVar[ReasonLayer]
    L0: _ClassVar[ReasonLayer]
    L1: _ClassVar[ReasonLayer]
    L2: _ClassVar[ReasonLayer]
    L3: _ClassVar[ReasonLayer]
FLOW_PHASE_UNSPECIFIED: FlowPhase
EMERGED: FlowPhase
EVOLVING: FlowPhase
DIVERGED: FlowPhase
TERMINATED: FlowPhase
REASON_LAYER_UNSPECIFIED: ReasonLayer
L0: ReasonLayer
L1: ReasonLayer
L2: ReasonLayer
L3: ReasonLayer

class PathHop(_message.Message):
    __slots__ = ("event_id", "device", "gateway", "table", "err")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    ERR_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    device: str
    gateway: bytes
    table: int
    err: int
    def __init__(self, event_id: _Optional[int] = ..., device: _Optional[str] = ..., gateway: _Optional[bytes] = ..., table: _Optional[int] = ..., err: _Optional[int] = ...) -> None: ...

class FlowMember(_message.Message):
    __slots__ = ("sock", "tuple", "state", "first_event_id", "last_event_id")
    SOCK_FIELD_NUMBER: _ClassVar[int]
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FIRST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    sock: int
    tuple: _events_pb2.Tuple
    state: _events_pb2.TcpState
    first_event_id: int
    last_event_id: int
    def __init__(self, sock: _Optional[int] = ..., tuple: _Optional[_Union[_events_pb2.Tuple, _Mapping]] = ..., state: _Optional[_Union[_events_pb2.TcpState, str]] = ..., first_event_id: _Optional[int] = ..., last_event_id: _Optional[int] = ...) -> None: ...

class FlowCounters(_message.Message):
    __slots__ = ("events", "retransmits", "resets_sent", "resets_received", "drops", "segments", "bytes", "zero_window_segments", "connections")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    RETRANSMITS_FIELD_NUMBER: _ClassVar[int]
    RESETS_SENT_FIELD_NUMBER: _ClassVar[int]
    RESETS_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    DROPS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    ZERO_WINDOW_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    events: int
    retransmits: int
    resets_sent: int
    resets_received: int
    drops: int
    segments: int
    bytes: int
    zero_window_segments: int
    connections: int
    def __init__(self, events: _Optional[int] = ..., retransmits: _Optional[int] = ..., resets_sent: _Optional[int] = ..., resets_received: _Optional[int] = ..., drops: _Optional[int] = ..., segments: _Optional[int] = ..., bytes: _Optional[int] = ..., zero_window_segments: _Optional[int] = ..., connections: _Optional[int] = ...) -> None: ...

class Transition(_message.Message):
    __slots__ = ("event_id", "ktime_ns", "what", "to")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    KTIME_NS_FIELD_NUMBER: _ClassVar[int]
    WHAT_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    ktime_ns: int
    what: str
    to: str
    def __init__(self, event_id: _Optional[int] = ..., ktime_ns: _Optional[int] = ..., what: _Optional[str] = ..., to: _Optional[str] = ..., **kwargs) -> None: ...

class FlowSnapshot(_message.Message):
    __slots__ = ("flow_id", "parent_flow_id", "child_flow_ids", "phase", "key", "family", "local_addr", "peer_addr", "peer_port", "netns", "tcp_state", "members", "path", "processes", "counters", "first_event_id", "last_event_id", "first_ktime_ns", "last_ktime_ns", "templates", "transitions", "in_scope", "end_reason", "srtt_log2_hist", "connect_latency_log2_hist", "connect_latency_min_us", "connect_latency_max_us", "cgroups", "containers", "units")
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    CHILD_FLOW_IDS_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ADDR_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDR_FIELD_NUMBER: _ClassVar[int]
    PEER_PORT_FIELD_NUMBER: _ClassVar[int]
    NETNS_FIELD_NUMBER: _ClassVar[int]
    TCP_STATE_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    FIRST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_KTIME_NS_FIELD_NUMBER: _ClassVar[int]
    LAST_KTIME_NS_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    IN_SCOPE_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    SRTT_LOG2_HIST_FIELD_NUMBER: _ClassVar[int]
    CONNECT_LATENCY_LOG2_HIST_FIELD_NUMBER: _ClassVar[int]
    CONNECT_LATENCY_MIN_US_FIELD_NUMBER: _ClassVar[int]
    CONNECT_LATENCY_MAX_US_FIELD_NUMBER: _ClassVar[int]
    CGROUPS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    flow_id: int
    parent_flow_id: int
    child_flow_ids: _containers.RepeatedScalarFieldContainer[int]
    phase: FlowPhase
    key: str
    family: int
    local_addr: bytes
    peer_addr: bytes
    peer_port: int
    netns: int
    tcp_state: _events_pb2.TcpState
    members: _containers.RepeatedCompositeFieldContainer[FlowMember]
    path: _containers.RepeatedCompositeFieldContainer[PathHop]
    processes: _containers.RepeatedCompositeFieldContainer[_events_pb2.Attribution]
    counters: FlowCounters
    first_event_id: int
    last_event_id: int
    first_ktime_ns: int
    last_ktime_ns: int
    templates: _containers.RepeatedScalarFieldContainer[str]
    transitions: _containers.RepeatedCompositeFieldContainer[Transition]
    in_scope: bool
    end_reason: str
    srtt_log2_hist: _containers.RepeatedScalarFieldContainer[int]
    connect_latency_log2_hist: _containers.RepeatedScalarFieldContainer[int]
    connect_latency_min_us: int
    connect_latency_max_us: int
    cgroups: _containers.RepeatedScalarFieldContainer[str]
    containers: _containers.RepeatedScalarFieldContainer[str]
    units: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, flow_id: _Optional[int] = ..., parent_flow_id: _Optional[int] = ..., child_flow_ids: _Optional[_Iterable[int]] = ..., phase: _Optional[_Union[FlowPhase, str]] = ..., key: _Optional[str] = ..., family: _Optional[int] = ..., local_addr: _Optional[bytes] = ..., peer_addr: _Optional[bytes] = ..., peer_port: _Optional[int] = ..., netns: _Optional[int] = ..., tcp_state: _Optional[_Union[_events_pb2.TcpState, str]] = ..., members: _Optional[_Iterable[_Union[FlowMember, _Mapping]]] = ..., path: _Optional[_Iterable[_Union[PathHop, _Mapping]]] = ..., processes: _Optional[_Iterable[_Union[_events_pb2.Attribution, _Mapping]]] = ..., counters: _Optional[_Union[FlowCounters, _Mapping]] = ..., first_event_id: _Optional[int] = ..., last_event_id: _Optional[int] = ..., first_ktime_ns: _Optional[int] = ..., last_ktime_ns: _Optional[int] = ..., templates: _Optional[_Iterable[str]] = ..., transitions: _Optional[_Iterable[_Union[Transition, _Mapping]]] = ..., in_scope: _Optional[bool] = ..., end_reason: _Optional[str] = ..., srtt_log2_hist: _Optional[_Iterable[int]] = ..., connect_latency_log2_hist: _Optional[_Iterable[int]] = ..., connect_latency_min_us: _Optional[int] = ..., connect_latency_max_us: _Optional[int] = ..., cgroups: _Optional[_Iterable[str]] = ..., containers: _Optional[_Iterable[str]] = ..., units: _Optional[_Iterable[str]] = ...) -> None: ...

class ReasonNode(_message.Message):
    __slots__ = ("node_id", "layer", "kind", "text", "evidence_event_ids", "children", "severity", "flow_id", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    layer: ReasonLayer
    kind: str
    text: str
    evidence_event_ids: _containers.RepeatedScalarFieldContainer[int]
    children: _containers.RepeatedCompositeFieldContainer[ReasonNode]
    severity: str
    flow_id: int
    fields: _containers.ScalarMap[str, str]
    def __init__(self, node_id: _Optional[str] = ..., layer: _Optional[_Union[ReasonLayer, str]] = ..., kind: _Optional[str] = ..., text: _Optional[str] = ..., evidence_event_ids: _Optional[_Iterable[int]] = ..., children: _Optional[_Iterable[_Union[ReasonNode, _Mapping]]] = ..., severity: _Optional[str] = ..., flow_id: _Optional[int] = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ReasonChain(_message.Message):
    __slots__ = ("flow_id", "at_event_id", "root", "session_id", "allowed_interventions", "intervention_ids")
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    AT_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_INTERVENTIONS_FIELD_NUMBER: _ClassVar[int]
    INTERVENTION_IDS_FIELD_NUMBER: _ClassVar[int]
    flow_id: int
    at_event_id: int
    root: ReasonNode
    session_id: str
    allowed_interventions: _containers.RepeatedScalarFieldContainer[str]
    intervention_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, flow_id: _Optional[int] = ..., at_event_id: _Optional[int] = ..., root: _Optional[_Union[ReasonNode, _Mapping]] = ..., session_id: _Optional[str] = ..., allowed_interventions: _Optional[_Iterable[str]] = ..., intervention_ids: _Optional[_Iterable[int]] = ...) -> None: ...
