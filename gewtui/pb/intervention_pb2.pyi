from gewtui.pb import events_pb2 as _events_pb2
from gewtui.pb import model_pb2 as _model_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InterventionAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTERVENTION_ACTION_UNSPECIFIED: _ClassVar[InterventionAction]
    DROP: _ClassVar[InterventionAction]
    UNDO: _ClassVar[InterventionAction]

class InterventionOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTERVENTION_OUTCOME_UNSPECIFIED: _ClassVar[InterventionOutcome]
    REFUSED: _ClassVar[InterventionOutcome]
    ACTIVE: _ClassVar[InterventionOutcome]
    EFFECTIVE: _ClassVar[InterventionOutcome]
    NO_EFFECT_SEEN: _ClassVar[InterventionOutcome]
    EXPIRED: _ClassVar[InterventionOutcome]
    UNDONE: _ClassVar[InterventionOutcome]
    REMOVED_AT_SESSION_END: _ClassVar[InterventionOutcome]
    REMOVED_AFTER_KILL: _ClassVar[InterventionOutcome]
    FAILED: _ClassVar[InterventionOutcome]
INTERVENTION_ACTION_UNSPECIFIED: InterventionAction
DROP: InterventionAction
UNDO: InterventionAction
INTERVENTION_OUTCOME_UNSPECIFIED: InterventionOutcome
REFUSED: InterventionOutcome
ACTIVE: InterventionOutcome
EFFECTIVE: InterventionOutcome
NO_EFFECT_SEEN: InterventionOutcome
EXPIRED: InterventionOutcome
UNDONE: InterventionOutcome
REMOVED_AT_SESSION_END: InterventionOutcome
REMOVED_AFTER_KILL: InterventionOutcome
FAILED: InterventionOutcome

class GateCondition(_message.Message):
    __slots__ = ("name", "ok", "why")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    WHY_FIELD_NUMBER: _ClassVar[int]
    name: str
    ok: bool
    why: str
    def __init__(self, name: _Optional[str] = ..., ok: _Optional[bool] = ..., why: _Optional[str] = ...) -> None: ...

class GateEvaluation(_message.Message):
    __slots__ = ("conditions", "allowed", "at_event_id", "ktime_ns")
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    AT_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    KTIME_NS_FIELD_NUMBER: _ClassVar[int]
    conditions: _containers.RepeatedCompositeFieldContainer[GateCondition]
    allowed: bool
    at_event_id: int
    ktime_ns: int
    def __init__(self, conditions: _Optional[_Iterable[_Union[GateCondition, _Mapping]]] = ..., allowed: _Optional[bool] = ..., at_event_id: _Optional[int] = ..., ktime_ns: _Optional[int] = ...) -> None: ...

class Verification(_message.Message):
    __slots__ = ("ktime_ns", "dropped_packets", "retransmits_after", "resets_after", "evidence_event_ids", "verdict")
    KTIME_NS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_PACKETS_FIELD_NUMBER: _ClassVar[int]
    RETRANSMITS_AFTER_FIELD_NUMBER: _ClassVar[int]
    RESETS_AFTER_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ktime_ns: int
    dropped_packets: int
    retransmits_after: int
    resets_after: int
    evidence_event_ids: _containers.RepeatedScalarFieldContainer[int]
    verdict: str
    def __init__(self, ktime_ns: _Optional[int] = ..., dropped_packets: _Optional[int] = ..., retransmits_after: _Optional[int] = ..., resets_after: _Optional[int] = ..., evidence_event_ids: _Optional[_Iterable[int]] = ..., verdict: _Optional[str] = ...) -> None: ...

class InterventionRecord(_message.Message):
    __slots__ = ("intervention_id", "unix_ns", "ktime_ns", "uid", "tty", "session_id", "flow_id", "action", "gate", "reason_chain", "tuples", "interfaces", "ttl_ns", "expires_ktime_ns", "outcome", "verification", "detail", "refers_to", "wildcard_port_lo", "wildcard_port_hi")
    INTERVENTION_ID_FIELD_NUMBER: _ClassVar[int]
    UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    KTIME_NS_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    GATE_FIELD_NUMBER: _ClassVar[int]
    REASON_CHAIN_FIELD_NUMBER: _ClassVar[int]
    TUPLES_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    TTL_NS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_KTIME_NS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    REFERS_TO_FIELD_NUMBER: _ClassVar[int]
    WILDCARD_PORT_LO_FIELD_NUMBER: _ClassVar[int]
    WILDCARD_PORT_HI_FIELD_NUMBER: _ClassVar[int]
    intervention_id: int
    unix_ns: int
    ktime_ns: int
    uid: int
    tty: str
    session_id: str
    flow_id: int
    action: InterventionAction
    gate: GateEvaluation
    reason_chain: _model_pb2.ReasonChain
    tuples: _containers.RepeatedCompositeFieldContainer[_events_pb2.Tuple]
    interfaces: _containers.RepeatedScalarFieldContainer[str]
    ttl_ns: int
    expires_ktime_ns: int
    outcome: InterventionOutcome
    verification: Verification
    detail: str
    refers_to: int
    wildcard_port_lo: int
    wildcard_port_hi: int
    def __init__(self, intervention_id: _Optional[int] = ..., unix_ns: _Optional[int] = ..., ktime_ns: _Optional[int] = ..., uid: _Optional[int] = ..., tty: _Optional[str] = ..., session_id: _Optional[str] = ..., flow_id: _Optional[int] = ..., action: _Optional[_Union[InterventionAction, str]] = ..., gate: _Optional[_Union[GateEvaluation, _Mapping]] = ..., reason_chain: _Optional[_Union[_model_pb2.ReasonChain, _Mapping]] = ..., tuples: _Optional[_Iterable[_Union[_events_pb2.Tuple, _Mapping]]] = ..., interfaces: _Optional[_Iterable[str]] = ..., ttl_ns: _Optional[int] = ..., expires_ktime_ns: _Optional[int] = ..., outcome: _Optional[_Union[InterventionOutcome, str]] = ..., verification: _Optional[_Union[Verification, _Mapping]] = ..., detail: _Optional[str] = ..., refers_to: _Optional[int] = ..., wildcard_port_lo: _Optional[int] = ..., wildcard_port_hi: _Optional[int] = ...) -> None: ...
