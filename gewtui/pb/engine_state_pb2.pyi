from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegistryState(_message.Message):
    __slots__ = ("shape", "ints", "big", "heap")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    INTS_FIELD_NUMBER: _ClassVar[int]
    BIG_FIELD_NUMBER: _ClassVar[int]
    HEAP_FIELD_NUMBER: _ClassVar[int]
    shape: bytes
    ints: _containers.RepeatedScalarFieldContainer[int]
    big: _containers.RepeatedScalarFieldContainer[int]
    heap: bytes
    def __init__(self, shape: _Optional[bytes] = ..., ints: _Optional[_Iterable[int]] = ..., big: _Optional[_Iterable[int]] = ..., heap: _Optional[bytes] = ...) -> None: ...

class InterventionState(_message.Message):
    __slots__ = ("flow_id", "record", "event_ids")
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    flow_id: int
    record: bytes
    event_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, flow_id: _Optional[int] = ..., record: _Optional[bytes] = ..., event_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class EngineState(_message.Message):
    __slots__ = ("registry", "ring", "interventions")
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    RING_FIELD_NUMBER: _ClassVar[int]
    INTERVENTIONS_FIELD_NUMBER: _ClassVar[int]
    registry: RegistryState
    ring: _containers.RepeatedScalarFieldContainer[bytes]
    interventions: _containers.RepeatedCompositeFieldContainer[InterventionState]
    def __init__(self, registry: _Optional[_Union[RegistryState, _Mapping]] = ..., ring: _Optional[_Iterable[bytes]] = ..., interventions: _Optional[_Iterable[_Union[InterventionState, _Mapping]]] = ...) -> None: ...
