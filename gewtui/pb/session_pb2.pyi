from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CapabilityState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAPABILITY_STATE_UNSPECIFIED: _ClassVar[CapabilityState]
    NOT_SUPPORTED: _ClassVar[CapabilityState]
    SUPPORTED_RISKY: _ClassVar[CapabilityState]
    FULLY_SUPPORTED: _ClassVar[CapabilityState]
CAPABILITY_STATE_UNSPECIFIED: CapabilityState
NOT_SUPPORTED: CapabilityState
SUPPORTED_RISKY: CapabilityState
FULLY_SUPPORTED: CapabilityState

class Capability(_message.Message):
    __slots__ = ("name", "state", "reason", "needed_by")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NEEDED_BY_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: CapabilityState
    reason: str
    needed_by: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[CapabilityState, str]] = ..., reason: _Optional[str] = ..., needed_by: _Optional[_Iterable[str]] = ...) -> None: ...

class RuntimeInfo(_message.Message):
    __slots__ = ("tool_version", "kernel_release", "machine", "btf", "bcc_version", "headers_path", "headers_release", "headers_match_kernel", "tracefs_mounted", "bpffs_mounted", "root", "python", "tracefs_path", "bpffs_path", "cap_bpf", "cap_sys_admin")
    TOOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    KERNEL_RELEASE_FIELD_NUMBER: _ClassVar[int]
    MACHINE_FIELD_NUMBER: _ClassVar[int]
    BTF_FIELD_NUMBER: _ClassVar[int]
    BCC_VERSION_FIELD_NUMBER: _ClassVar[int]
    HEADERS_PATH_FIELD_NUMBER: _ClassVar[int]
    HEADERS_RELEASE_FIELD_NUMBER: _ClassVar[int]
    HEADERS_MATCH_KERNEL_FIELD_NUMBER: _ClassVar[int]
    TRACEFS_MOUNTED_FIELD_NUMBER: _ClassVar[int]
    BPFFS_MOUNTED_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    PYTHON_FIELD_NUMBER: _ClassVar[int]
    TRACEFS_PATH_FIELD_NUMBER: _ClassVar[int]
    BPFFS_PATH_FIELD_NUMBER: _ClassVar[int]
    CAP_BPF_FIELD_NUMBER: _ClassVar[int]
    CAP_SYS_ADMIN_FIELD_NUMBER: _ClassVar[int]
    tool_version: str
    kernel_release: str
    machine: str
    btf: bool
    bcc_version: str
    headers_path: str
    headers_release: str
    headers_match_kernel: bool
    tracefs_mounted: bool
    bpffs_mounted: bool
    root: bool
    python: str
    tracefs_path: str
    bpffs_path: str
    cap_bpf: bool
    cap_sys_admin: bool
    def __init__(self, tool_version: _Optional[str] = ..., kernel_release: _Optional[str] = ..., machine: _Optional[str] = ..., btf: _Optional[bool] = ..., bcc_version: _Optional[str] = ..., headers_path: _Optional[str] = ..., headers_release: _Optional[str] = ..., headers_match_kernel: _Optional[bool] = ..., tracefs_mounted: _Optional[bool] = ..., bpffs_mounted: _Optional[bool] = ..., root: _Optional[bool] = ..., python: _Optional[str] = ..., tracefs_path: _Optional[str] = ..., bpffs_path: _Optional[str] = ..., cap_bpf: _Optional[bool] = ..., cap_sys_admin: _Optional[bool] = ...) -> None: ...

class CapabilityReport(_message.Message):
    __slots__ = ("runtime", "capabilities", "verdict", "verdict_reason")
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    VERDICT_REASON_FIELD_NUMBER: _ClassVar[int]
    runtime: RuntimeInfo
    capabilities: _containers.RepeatedCompositeFieldContainer[Capability]
    verdict: CapabilityState
    verdict_reason: str
    def __init__(self, runtime: _Optional[_Union[RuntimeInfo, _Mapping]] = ..., capabilities: _Optional[_Iterable[_Union[Capability, _Mapping]]] = ..., verdict: _Optional[_Union[CapabilityState, str]] = ..., verdict_reason: _Optional[str] = ...) -> None: ...

class ScopeEntry(_message.Message):
    __slots__ = ("kind", "value")
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    value: str
    def __init__(self, kind: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Scope(_message.Message):
    __slots__ = ("entries", "netns_inodes", "interfaces", "closed", "closed_reason")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NETNS_INODES_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    CLOSED_REASON_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[ScopeEntry]
    netns_inodes: _containers.RepeatedScalarFieldContainer[int]
    interfaces: _containers.RepeatedScalarFieldContainer[str]
    closed: bool
    closed_reason: str
    def __init__(self, entries: _Optional[_Iterable[_Union[ScopeEntry, _Mapping]]] = ..., netns_inodes: _Optional[_Iterable[int]] = ..., interfaces: _Optional[_Iterable[str]] = ..., closed: _Optional[bool] = ..., closed_reason: _Optional[str] = ...) -> None: ...

class SessionInfo(_message.Message):
    __slots__ = ("instance_id", "session_id", "owner_pid", "owner_start_time", "started_unix_ns", "started_ktime_ns", "scope", "allow_risky", "allow_intervention", "hostname", "probes", "tool_version", "uid", "tty")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_PID_FIELD_NUMBER: _ClassVar[int]
    OWNER_START_TIME_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    STARTED_KTIME_NS_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_RISKY_FIELD_NUMBER: _ClassVar[int]
    ALLOW_INTERVENTION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PROBES_FIELD_NUMBER: _ClassVar[int]
    TOOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    session_id: str
    owner_pid: int
    owner_start_time: int
    started_unix_ns: int
    started_ktime_ns: int
    scope: Scope
    allow_risky: bool
    allow_intervention: bool
    hostname: str
    probes: _containers.RepeatedScalarFieldContainer[str]
    tool_version: str
    uid: int
    tty: str
    def __init__(self, instance_id: _Optional[str] = ..., session_id: _Optional[str] = ..., owner_pid: _Optional[int] = ..., owner_start_time: _Optional[int] = ..., started_unix_ns: _Optional[int] = ..., started_ktime_ns: _Optional[int] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ..., allow_risky: _Optional[bool] = ..., allow_intervention: _Optional[bool] = ..., hostname: _Optional[str] = ..., probes: _Optional[_Iterable[str]] = ..., tool_version: _Optional[str] = ..., uid: _Optional[int] = ..., tty: _Optional[str] = ...) -> None: ...

class SessionStats(_message.Message):
    __slots__ = ("ktime_ns", "events", "lost_records", "observation_complete", "incomplete_reason", "bpf_run_time_ns", "bpf_run_count", "produced", "consumed")
    KTIME_NS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    LOST_RECORDS_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    INCOMPLETE_REASON_FIELD_NUMBER: _ClassVar[int]
    BPF_RUN_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    BPF_RUN_COUNT_FIELD_NUMBER: _ClassVar[int]
    PRODUCED_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_FIELD_NUMBER: _ClassVar[int]
    ktime_ns: int
    events: int
    lost_records: int
    observation_complete: bool
    incomplete_reason: str
    bpf_run_time_ns: int
    bpf_run_count: int
    produced: int
    consumed: int
    def __init__(self, ktime_ns: _Optional[int] = ..., events: _Optional[int] = ..., lost_records: _Optional[int] = ..., observation_complete: _Optional[bool] = ..., incomplete_reason: _Optional[str] = ..., bpf_run_time_ns: _Optional[int] = ..., bpf_run_count: _Optional[int] = ..., produced: _Optional[int] = ..., consumed: _Optional[int] = ...) -> None: ...

class SessionEnd(_message.Message):
    __slots__ = ("ktime_ns", "how", "detail", "stats")
    KTIME_NS_FIELD_NUMBER: _ClassVar[int]
    HOW_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    ktime_ns: int
    how: str
    detail: str
    stats: SessionStats
    def __init__(self, ktime_ns: _Optional[int] = ..., how: _Optional[str] = ..., detail: _Optional[str] = ..., stats: _Optional[_Union[SessionStats, _Mapping]] = ...) -> None: ...
