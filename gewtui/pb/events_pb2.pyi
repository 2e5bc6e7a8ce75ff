from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TcpState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TCP_STATE_UNSPECIFIED: _ClassVar[TcpState]
    TCP_ESTABLISHED: _ClassVar[TcpState]
    TCP_SYN_SENT: _ClassVar[TcpState]
    TCP_SYN_RECV: _ClassVar[TcpState]
    TCP_FIN_WAIT1: _ClassVar[TcpState]
    TCP_FIN_WAIT2: _ClassVar[TcpState]
    TCP_TIME_WAIT: _ClassVar[TcpState]
    TCP_CLOSE: _ClassVar[TcpState]
    TCP_CLOSE_WAIT: _ClassVar[TcpState]
    TCP_LAST_ACK: _ClassVar[TcpState]
    TCP_LISTEN: _ClassVar[TcpState]
    TCP_CLOSING: _ClassVar[TcpState]
    TCP_NEW_SYN_RECV: _ClassVar[TcpState]

class AttributionSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTRIBUTION_UNSPECIFIED: _ClassVar[AttributionSource]
    ATTRIBUTION_PROCESS_CONTEXT: _ClassVar[AttributionSource]
    ATTRIBUTION_SOCKET_OWNER: _ClassVar[AttributionSource]
    ATTRIBUTION_NONE: _ClassVar[AttributionSource]

class ResetDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESET_DIRECTION_UNSPECIFIED: _ClassVar[ResetDirection]
    RESET_SENT: _ClassVar[ResetDirection]
    RESET_RECEIVED: _ClassVar[ResetDirection]

class PacketAttribution(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PACKET_ATTRIBUTION_UNSPECIFIED: _ClassVar[PacketAttribution]
    PACKET_ATTRIBUTION_HEADERS: _ClassVar[PacketAttribution]
    PACKET_ATTRIBUTION_SOCKET: _ClassVar[PacketAttribution]
    PACKET_ATTRIBUTION_NONE: _ClassVar[PacketAttribution]
TCP_STATE_UNSPECIFIED: TcpState
TCP_ESTABLISHED: TcpState
TCP_SYN_SENT: TcpState
TCP_SYN_RECV: TcpState
TCP_FIN_WAIT1: TcpState
TCP_FIN_WAIT2: TcpState
TCP_TIME_WAIT: TcpState
TCP_CLOSE: TcpState
TCP_CLOSE_WAIT: TcpState
TCP_LAST_ACK: TcpState
TCP_LISTEN: TcpState
TCP_CLOSING: TcpState
TCP_NEW_SYN_RECV: TcpState
ATTRIBUTION_UNSPECIFIED: AttributionSource
ATTRIBUTION_PROCESS_CONTEXT: AttributionSource
ATTRIBUTION_SOCKET_OWNER: AttributionSource
ATTRIBUTION_NONE: AttributionSource
RESET_DIRECTION_UNSPECIFIED: ResetDirection
RESET_SENT: ResetDirection
RESET_RECEIVED: ResetDirection
PACKET_ATTRIBUTION_UNSPECIFIED: PacketAttribution
PACKET_ATTRIBUTION_HEADERS: PacketAttribution
PACKET_ATTRIBUTION_SOCKET: PacketAttribution
PACKET_ATTRIBUTION_NONE: PacketAttribution

class Attribution(_message.Message):
    __slots__ = ("pid", "tgid", "comm", "cgroup_id", "netns", "source", "uid")
    PID_FIELD_NUMBER: _ClassVar[int]
    TGID_FIELD_NUMBER: _ClassVar[int]
    COMM_FIELD_NUMBER: _ClassVar[int]
    CGROUP_ID_FIELD_NUMBER: _ClassVar[int]
    NETNS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    pid: int
    tgid: int
    comm: str
    cgroup_id: int
    netns: int
    source: AttributionSource
    uid: int
    def __init__(self, pid: _Optional[int] = ..., tgid: _Optional[int] = ..., comm: _Optional[str] = ..., cgroup_id: _Optional[int] = ..., netns: _Optional[int] = ..., source: _Optional[_Union[AttributionSource, str]] = ..., uid: _Optional[int] = ...) -> None: ...

class Tuple(_message.Message):
    __slots__ = ("family", "saddr", "daddr", "sport", "dport", "protocol")
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    SADDR_FIELD_NUMBER: _ClassVar[int]
    DADDR_FIELD_NUMBER: _ClassVar[int]
    SPORT_FIELD_NUMBER: _ClassVar[int]
    DPORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    family: int
    saddr: bytes
    daddr: bytes
    sport: int
    dport: int
    protocol: int
    def __init__(self, family: _Optional[int] = ..., saddr: _Optional[bytes] = ..., daddr: _Optional[bytes] = ..., sport: _Optional[int] = ..., dport: _Optional[int] = ..., protocol: _Optional[int] = ...) -> None: ...

class TcpStateChange(_message.Message):
    __slots__ = ("tuple", "sock", "old_state", "new_state")
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    SOCK_FIELD_NUMBER: _ClassVar[int]
    OLD_STATE_FIELD_NUMBER: _ClassVar[int]
    NEW_STATE_FIELD_NUMBER: _ClassVar[int]
    tuple: Tuple
    sock: int
    old_state: TcpState
    new_state: TcpState
    def __init__(self, tuple: _Optional[_Union[Tuple, _Mapping]] = ..., sock: _Optional[int] = ..., old_state: _Optional[_Union[TcpState, str]] = ..., new_state: _Optional[_Union[TcpState, str]] = ...) -> None: ...

class TcpRetransmit(_message.Message):
    __slots__ = ("tuple", "sock", "state", "err", "synack")
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    SOCK_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERR_FIELD_NUMBER: _ClassVar[int]
    SYNACK_FIELD_NUMBER: _ClassVar[int]
    tuple: Tuple
    sock: int
    state: TcpState
    err: int
    synack: bool
    def __init__(self, tuple: _Optional[_Union[Tuple, _Mapping]] = ..., sock: _Optional[int] = ..., state: _Optional[_Union[TcpState, str]] = ..., err: _Optional[int] = ..., synack: _Optional[bool] = ...) -> None: ...

class TcpReset(_message.Message):
    __slots__ = ("tuple", "sock", "direction", "state", "reason", "reason_name", "sock_cookie")
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    SOCK_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REASON_NAME_FIELD_NUMBER: _ClassVar[int]
    SOCK_COOKIE_FIELD_NUMBER: _ClassVar[int]
    tuple: Tuple
    sock: int
    direction: ResetDirection
    state: TcpState
    reason: int
    reason_name: str
    sock_cookie: int
    def __init__(self, tuple: _Optional[_Union[Tuple, _Mapping]] = ..., sock: _Optional[int] = ..., direction: _Optional[_Union[ResetDirection, str]] = ..., state: _Optional[_Union[TcpState, str]] = ..., reason: _Optional[int] = ..., reason_name: _Optional[str] = ..., sock_cookie: _Optional[int] = ...) -> None: ...

class TcpProbeSummary(_message.Message):
    __slots__ = ("tuple", "sock", "sock_cookie", "window_start_ns", "window_end_ns", "segments", "bytes", "snd_cwnd", "ssthresh", "snd_wnd", "rcv_wnd", "min_snd_wnd", "srtt_us", "max_srtt_us", "zero_window_segments", "zero_window_now", "final", "srtt_log2_hist")
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    SOCK_FIELD_NUMBER: _ClassVar[int]
    SOCK_COOKIE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_NS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_NS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    SND_CWND_FIELD_NUMBER: _ClassVar[int]
    SSTHRESH_FIELD_NUMBER: _ClassVar[int]
    SND_WND_FIELD_NUMBER: _ClassVar[int]
    RCV_WND_FIELD_NUMBER: _ClassVar[int]
    MIN_SND_WND_FIELD_NUMBER: _ClassVar[int]
    SRTT_US_FIELD_NUMBER: _ClassVar[int]
    MAX_SRTT_US_FIELD_NUMBER: _ClassVar[int]
    ZERO_WINDOW_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    ZERO_WINDOW_NOW_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    SRTT_LOG2_HIST_FIELD_NUMBER: _ClassVar[int]
    tuple: Tuple
    sock: int
    sock_cookie: int
    window_start_ns: int
    window_end_ns: int
    segments: int
    bytes: int
    snd_cwnd: int
    ssthresh: int
    snd_wnd: int
    rcv_wnd: int
    min_snd_wnd: int
    srtt_us: int
    max_srtt_us: int
    zero_window_segments: int
    zero_window_now: bool
    final: bool
    srtt_log2_hist: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, tuple: _Optional[_Union[Tuple, _Mapping]] = ..., sock: _Optional[int] = ..., sock_cookie: _Optional[int] = ..., window_start_ns: _Optional[int] = ..., window_end_ns: _Optional[int] = ..., segments: _Optional[int] = ..., bytes: _Optional[int] = ..., snd_cwnd: _Optional[int] = ..., ssthresh: _Optional[int] = ..., snd_wnd: _Optional[int] = ..., rcv_wnd: _Optional[int] = ..., min_snd_wnd: _Optional[int] = ..., srtt_us: _Optional[int] = ..., max_srtt_us: _Optional[int] = ..., zero_window_segments: _Optional[int] = ..., zero_window_now: _Optional[bool] = ..., final: _Optional[bool] = ..., srtt_log2_hist: _Optional[_Iterable[int]] = ...) -> None: ...

class TcpCongState(_message.Message):
    __slots__ = ("tuple", "sock", "ca_state", "ca_state_name")
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    SOCK_FIELD_NUMBER: _ClassVar[int]
    CA_STATE_FIELD_NUMBER: _ClassVar[int]
    CA_STATE_NAME_FIELD_NUMBER: _ClassVar[int]
    tuple: Tuple
    sock: int
    ca_state: int
    ca_state_name: str
    def __init__(self, tuple: _Optional[_Union[Tuple, _Mapping]] = ..., sock: _Optional[int] = ..., ca_state: _Optional[int] = ..., ca_state_name: _Optional[str] = ...) -> None: ...

class SocketDestroy(_message.Message):
    __slots__ = ("tuple", "sock", "sock_cookie")
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    SOCK_FIELD_NUMBER: _ClassVar[int]
    SOCK_COOKIE_FIELD_NUMBER: _ClassVar[int]
    tuple: Tuple
    sock: int
    sock_cookie: int
    def __init__(self, tuple: _Optional[_Union[Tuple, _Mapping]] = ..., sock: _Optional[int] = ..., sock_cookie: _Optional[int] = ...) -> None: ...

class SocketOwner(_message.Message):
    __slots__ = ("tuple", "sock", "previous_tgid", "previous_comm", "via")
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    SOCK_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_TGID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_COMM_FIELD_NUMBER: _ClassVar[int]
    VIA_FIELD_NUMBER: _ClassVar[int]
    tuple: Tuple
    sock: int
    previous_tgid: int
    previous_comm: str
    via: str
    def __init__(self, tuple: _Optional[_Union[Tuple, _Mapping]] = ..., sock: _Optional[int] = ..., previous_tgid: _Optional[int] = ..., previous_comm: _Optional[str] = ..., via: _Optional[str] = ...) -> None: ...

class SkbDrop(_message.Message):
    __slots__ = ("reason", "reason_name", "protocol", "tuple", "attribution", "ifindex", "ifname", "location", "sock", "count", "location_symbol")
    REASON_FIELD_NUMBER: _ClassVar[int]
    REASON_NAME_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    IFINDEX_FIELD_NUMBER: _ClassVar[int]
    IFNAME_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    SOCK_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    LOCATION_SYMBOL_FIELD_NUMBER: _ClassVar[int]
    reason: int
    reason_name: str
    protocol: int
    tuple: Tuple
    attribution: PacketAttribution
    ifindex: int
    ifname: str
    location: int
    sock: int
    count: int
    location_symbol: str
    def __init__(self, reason: _Optional[int] = ..., reason_name: _Optional[str] = ..., protocol: _Optional[int] = ..., tuple: _Optional[_Union[Tuple, _Mapping]] = ..., attribution: _Optional[_Union[PacketAttribution, str]] = ..., ifindex: _Optional[int] = ..., ifname: _Optional[str] = ..., location: _Optional[int] = ..., sock: _Optional[int] = ..., count: _Optional[int] = ..., location_symbol: _Optional[str] = ...) -> None: ...

class QdiscSummary(_message.Message):
    __slots__ = ("ifindex", "ifname", "netns", "handle", "parent", "kind", "window_start_ns", "window_end_ns", "enqueued", "dequeued", "dropped", "backlog_packets", "overlimits", "requeues")
    IFINDEX_FIELD_NUMBER: _ClassVar[int]
    IFNAME_FIELD_NUMBER: _ClassVar[int]
    NETNS_FIELD_NUMBER: _ClassVar[int]
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_NS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_NS_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_FIELD_NUMBER: _ClassVar[int]
    DEQUEUED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_PACKETS_FIELD_NUMBER: _ClassVar[int]
    OVERLIMITS_FIELD_NUMBER: _ClassVar[int]
    REQUEUES_FIELD_NUMBER: _ClassVar[int]
    ifindex: int
    ifname: str
    netns: int
    handle: int
    parent: int
    kind: str
    window_start_ns: int
    window_end_ns: int
    enqueued: int
    dequeued: int
    dropped: int
    backlog_packets: int
    overlimits: int
    requeues: int
    def __init__(self, ifindex: _Optional[int] = ..., ifname: _Optional[str] = ..., netns: _Optional[int] = ..., handle: _Optional[int] = ..., parent: _Optional[int] = ..., kind: _Optional[str] = ..., window_start_ns: _Optional[int] = ..., window_end_ns: _Optional[int] = ..., enqueued: _Optional[int] = ..., dequeued: _Optional[int] = ..., dropped: _Optional[int] = ..., backlog_packets: _Optional[int] = ..., overlimits: _Optional[int] = ..., requeues: _Optional[int] = ...) -> None: ...

class ReceiveQueueFull(_message.Message):
    __slots__ = ("tuple", "sock", "rmem_alloc", "truesize", "sk_rcvbuf", "listen_overflow")
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    SOCK_FIELD_NUMBER: _ClassVar[int]
    RMEM_ALLOC_FIELD_NUMBER: _ClassVar[int]
    TRUESIZE_FIELD_NUMBER: _ClassVar[int]
    SK_RCVBUF_FIELD_NUMBER: _ClassVar[int]
    LISTEN_OVERFLOW_FIELD_NUMBER: _ClassVar[int]
    tuple: Tuple
    sock: int
    rmem_alloc: int
    truesize: int
    sk_rcvbuf: int
    listen_overflow: bool
    def __init__(self, tuple: _Optional[_Union[Tuple, _Mapping]] = ..., sock: _Optional[int] = ..., rmem_alloc: _Optional[int] = ..., truesize: _Optional[int] = ..., sk_rcvbuf: _Optional[int] = ..., listen_overflow: _Optional[bool] = ...) -> None: ...

class FibLookup(_message.Message):
    __slots__ = ("family", "table", "err", "oif", "iif", "src", "dst", "gateway", "sport", "dport", "protocol", "device", "count")
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    ERR_FIELD_NUMBER: _ClassVar[int]
    OIF_FIELD_NUMBER: _ClassVar[int]
    IIF_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    SPORT_FIELD_NUMBER: _ClassVar[int]
    DPORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    family: int
    table: int
    err: int
    oif: int
    iif: int
    src: bytes
    dst: bytes
    gateway: bytes
    sport: int
    dport: int
    protocol: int
    device: str
    count: int
    def __init__(self, family: _Optional[int] = ..., table: _Optional[int] = ..., err: _Optional[int] = ..., oif: _Optional[int] = ..., iif: _Optional[int] = ..., src: _Optional[bytes] = ..., dst: _Optional[bytes] = ..., gateway: _Optional[bytes] = ..., sport: _Optional[int] = ..., dport: _Optional[int] = ..., protocol: _Optional[int] = ..., device: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class NeighUpdate(_message.Message):
    __slots__ = ("family", "device", "address", "lladdr", "old_state", "new_state", "new_state_name")
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LLADDR_FIELD_NUMBER: _ClassVar[int]
    OLD_STATE_FIELD_NUMBER: _ClassVar[int]
    NEW_STATE_FIELD_NUMBER: _ClassVar[int]
    NEW_STATE_NAME_FIELD_NUMBER: _ClassVar[int]
    family: int
    device: str
    address: bytes
    lladdr: bytes
    old_state: int
    new_state: int
    new_state_name: str
    def __init__(self, family: _Optional[int] = ..., device: _Optional[str] = ..., address: _Optional[bytes] = ..., lladdr: _Optional[bytes] = ..., old_state: _Optional[int] = ..., new_state: _Optional[int] = ..., new_state_name: _Optional[str] = ...) -> None: ...

class LostRecords(_message.Message):
    __slots__ = ("count", "cpu", "stage", "window_start_ns", "window_end_ns", "probe")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_NS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_NS_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    count: int
    cpu: int
    stage: str
    window_start_ns: int
    window_end_ns: int
    probe: str
    def __init__(self, count: _Optional[int] = ..., cpu: _Optional[int] = ..., stage: _Optional[str] = ..., window_start_ns: _Optional[int] = ..., window_end_ns: _Optional[int] = ..., probe: _Optional[str] = ...) -> None: ...

class ScopeChange(_message.Message):
    __slots__ = ("what", "netns", "iface", "ifindex", "observation_complete", "detail")
    WHAT_FIELD_NUMBER: _ClassVar[int]
    NETNS_FIELD_NUMBER: _ClassVar[int]
    IFACE_FIELD_NUMBER: _ClassVar[int]
    IFINDEX_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    what: str
    netns: str
    iface: str
    ifindex: int
    observation_complete: bool
    detail: str
    def __init__(self, what: _Optional[str] = ..., netns: _Optional[str] = ..., iface: _Optional[str] = ..., ifindex: _Optional[int] = ..., observation_complete: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class SessionMark(_message.Message):
    __slots__ = ("kind", "detail", "unknown_from_ns", "unknown_to_ns")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FROM_NS_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_TO_NS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    detail: str
    unknown_from_ns: int
    unknown_to_ns: int
    def __init__(self, kind: _Optional[str] = ..., detail: _Optional[str] = ..., unknown_from_ns: _Optional[int] = ..., unknown_to_ns: _Optional[int] = ...) -> None: ...

class TcpInfoSnapshot(_message.Message):
    __slots__ = ("rtt_us", "rttvar_us", "min_rtt_us", "snd_cwnd", "snd_ssthresh", "retransmits", "total_retrans", "unacked", "lost", "last_data_recv_ms", "last_data_sent_ms", "bytes_acked", "bytes_received", "snd_wnd", "ca_state")
    RTT_US_FIELD_NUMBER: _ClassVar[int]
    RTTVAR_US_FIELD_NUMBER: _ClassVar[int]
    MIN_RTT_US_FIELD_NUMBER: _ClassVar[int]
    SND_CWND_FIELD_NUMBER: _ClassVar[int]
    SND_SSTHRESH_FIELD_NUMBER: _ClassVar[int]
    RETRANSMITS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_RETRANS_FIELD_NUMBER: _ClassVar[int]
    UNACKED_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    LAST_DATA_RECV_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_DATA_SENT_MS_FIELD_NUMBER: _ClassVar[int]
    BYTES_ACKED_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    SND_WND_FIELD_NUMBER: _ClassVar[int]
    CA_STATE_FIELD_NUMBER: _ClassVar[int]
    rtt_us: int
    rttvar_us: int
    min_rtt_us: int
    snd_cwnd: int
    snd_ssthresh: int
    retransmits: int
    total_retrans: int
    unacked: int
    lost: int
    last_data_recv_ms: int
    last_data_sent_ms: int
    bytes_acked: int
    bytes_received: int
    snd_wnd: int
    ca_state: int
    def __init__(self, rtt_us: _Optional[int] = ..., rttvar_us: _Optional[int] = ..., min_rtt_us: _Optional[int] = ..., snd_cwnd: _Optional[int] = ..., snd_ssthresh: _Optional[int] = ..., retransmits: _Optional[int] = ..., total_retrans: _Optional[int] = ..., unacked: _Optional[int] = ..., lost: _Optional[int] = ..., last_data_recv_ms: _Optional[int] = ..., last_data_sent_ms: _Optional[int] = ..., bytes_acked: _Optional[int] = ..., bytes_received: _Optional[int] = ..., snd_wnd: _Optional[int] = ..., ca_state: _Optional[int] = ...) -> None: ...

class SocketInventory(_message.Message):
    __slots__ = ("tuple", "sock_cookie", "state", "inode", "uid", "rqueue", "wqueue", "info", "cgroup_id", "index", "total")
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    SOCK_COOKIE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INODE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    RQUEUE_FIELD_NUMBER: _ClassVar[int]
    WQUEUE_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    CGROUP_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    tuple: Tuple
    sock_cookie: int
    state: TcpState
    inode: int
    uid: int
    rqueue: int
    wqueue: int
    info: TcpInfoSnapshot
    cgroup_id: int
    index: int
    total: int
    def __init__(self, tuple: _Optional[_Union[Tuple, _Mapping]] = ..., sock_cookie: _Optional[int] = ..., state: _Optional[_Union[TcpState, str]] = ..., inode: _Optional[int] = ..., uid: _Optional[int] = ..., rqueue: _Optional[int] = ..., wqueue: _Optional[int] = ..., info: _Optional[_Union[TcpInfoSnapshot, _Mapping]] = ..., cgroup_id: _Optional[int] = ..., index: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class NetnsFacts(_message.Message):
    __slots__ = ("netns", "name", "port_lo", "port_hi", "when", "listen_overflows", "listen_drops", "passive_opens", "active_opens", "attempt_fails", "retrans_segs", "estab_resets")
    NETNS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PORT_LO_FIELD_NUMBER: _ClassVar[int]
    PORT_HI_FIELD_NUMBER: _ClassVar[int]
    WHEN_FIELD_NUMBER: _ClassVar[int]
    LISTEN_OVERFLOWS_FIELD_NUMBER: _ClassVar[int]
    LISTEN_DROPS_FIELD_NUMBER: _ClassVar[int]
    PASSIVE_OPENS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_OPENS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FAILS_FIELD_NUMBER: _ClassVar[int]
    RETRANS_SEGS_FIELD_NUMBER: _ClassVar[int]
    ESTAB_RESETS_FIELD_NUMBER: _ClassVar[int]
    netns: int
    name: str
    port_lo: int
    port_hi: int
    when: str
    listen_overflows: int
    listen_drops: int
    passive_opens: int
    active_opens: int
    attempt_fails: int
    retrans_segs: int
    estab_resets: int
    def __init__(self, netns: _Optional[int] = ..., name: _Optional[str] = ..., port_lo: _Optional[int] = ..., port_hi: _Optional[int] = ..., when: _Optional[str] = ..., listen_overflows: _Optional[int] = ..., listen_drops: _Optional[int] = ..., passive_opens: _Optional[int] = ..., active_opens: _Optional[int] = ..., attempt_fails: _Optional[int] = ..., retrans_segs: _Optional[int] = ..., estab_resets: _Optional[int] = ...) -> None: ...

class CgroupInfo(_message.Message):
    __slots__ = ("id", "path", "container", "unit")
    ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    id: int
    path: str
    container: str
    unit: str
    def __init__(self, id: _Optional[int] = ..., path: _Optional[str] = ..., container: _Optional[str] = ..., unit: _Optional[str] = ...) -> None: ...

class Lifecycle(_message.Message):
    __slots__ = ("tuple", "sock", "netns", "task", "owner", "learnt", "items", "ca_state_names", "destroyed", "closer", "final_tuple", "final_netns", "cookie", "counters", "prior", "prior_end_ns", "prior_segments", "prior_bytes", "prior_zw_segments", "prior_hist")
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    SOCK_FIELD_NUMBER: _ClassVar[int]
    NETNS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    LEARNT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    CA_STATE_NAMES_FIELD_NUMBER: _ClassVar[int]
    DESTROYED_FIELD_NUMBER: _ClassVar[int]
    CLOSER_FIELD_NUMBER: _ClassVar[int]
    FINAL_TUPLE_FIELD_NUMBER: _ClassVar[int]
    FINAL_NETNS_FIELD_NUMBER: _ClassVar[int]
    COOKIE_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    PRIOR_FIELD_NUMBER: _ClassVar[int]
    PRIOR_END_NS_FIELD_NUMBER: _ClassVar[int]
    PRIOR_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    PRIOR_BYTES_FIELD_NUMBER: _ClassVar[int]
    PRIOR_ZW_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    PRIOR_HIST_FIELD_NUMBER: _ClassVar[int]
    tuple: Tuple
    sock: int
    netns: int
    task: Attribution
    owner: Attribution
    learnt: Attribution
    items: bytes
    ca_state_names: _containers.RepeatedScalarFieldContainer[str]
    destroyed: bool
    closer: Attribution
    final_tuple: Tuple
    final_netns: int
    cookie: int
    counters: bytes
    prior: bool
    prior_end_ns: int
    prior_segments: int
    prior_bytes: int
    prior_zw_segments: int
    prior_hist: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, tuple: _Optional[_Union[Tuple, _Mapping]] = ..., sock: _Optional[int] = ..., netns: _Optional[int] = ..., task: _Optional[_Union[Attribution, _Mapping]] = ..., owner: _Optional[_Union[Attribution, _Mapping]] = ..., learnt: _Optional[_Union[Attribution, _Mapping]] = ..., items: _Optional[bytes] = ..., ca_state_names: _Optional[_Iterable[str]] = ..., destroyed: _Optional[bool] = ..., closer: _Optional[_Union[Attribution, _Mapping]] = ..., final_tuple: _Optional[_Union[Tuple, _Mapping]] = ..., final_netns: _Optional[int] = ..., cookie: _Optional[int] = ..., counters: _Optional[bytes] = ..., prior: _Optional[bool] = ..., prior_end_ns: _Optional[int] = ..., prior_segments: _Optional[int] = ..., prior_bytes: _Optional[int] = ..., prior_zw_segments: _Optional[int] = ..., prior_hist: _Optional[_Iterable[int]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("id", "ktime_ns", "cpu", "attr", "tcp_state", "retransmit", "reset", "tcp_probe", "cong_state", "destroy", "owner", "skb_drop", "qdisc", "rcvq_full", "fib", "neigh", "lost", "scope_change", "mark", "inventory", "netns_facts", "cgroup", "lifecycle")
    ID_FIELD_NUMBER: _ClassVar[int]
    KTIME_NS_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    ATTR_FIELD_NUMBER: _ClassVar[int]
    TCP_STATE_FIELD_NUMBER: _ClassVar[int]
    RETRANSMIT_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    TCP_PROBE_FIELD_NUMBER: _ClassVar[int]
    CONG_STATE_FIELD_NUMBER: _ClassVar[int]
    DESTROY_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SKB_DROP_FIELD_NUMBER: _ClassVar[int]
    QDISC_FIELD_NUMBER: _ClassVar[int]
    RCVQ_FULL_FIELD_NUMBER: _ClassVar[int]
    FIB_FIELD_NUMBER: _ClassVar[int]
    NEIGH_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    SCOPE_CHANGE_FIELD_NUMBER: _ClassVar[int]
    MARK_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    NETNS_FACTS_FIELD_NUMBER: _ClassVar[int]
    CGROUP_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_FIELD_NUMBER: _ClassVar[int]
    id: int
    ktime_ns: int
    cpu: int
    attr: Attribution
    tcp_state: TcpStateChange
    retransmit: TcpRetransmit
    reset: TcpReset
    tcp_probe: TcpProbeSummary
    cong_state: TcpCongState
    destroy: SocketDestroy
    owner: SocketOwner
    skb_drop: SkbDrop
    qdisc: QdiscSummary
    rcvq_full: ReceiveQueueFull
    fib: FibLookup
    neigh: NeighUpdate
    lost: LostRecords
    scope_change: ScopeChange
    mark: SessionMark
    inventory: SocketInventory
    netns_facts: NetnsFacts
    cgroup: CgroupInfo
    lifecycle: Lifecycle
    def __init__(self, id: _Optional[int] = ..., ktime_ns: _Optional[int] = ..., cpu: _Optional[int] = ..., attr: _Optional[_Union[Attribution, _Mapping]] = ..., tcp_state: _Optional[_Union[TcpStateChange, _Mapping]] = ..., retransmit: _Optional[_Union[TcpRetransmit, _Mapping]] = ..., reset: _Optional[_Union[TcpReset, _Mapping]] = ..., tcp_probe: _Optional[_Union[TcpProbeSummary, _Mapping]] = ..., cong_state: _Optional[_Union[TcpCongState, _Mapping]] = ..., destroy: _Optional[_Union[SocketDestroy, _Mapping]] = ..., owner: _Optional[_Union[SocketOwner, _Mapping]] = ..., skb_drop: _Optional[_Union[SkbDrop, _Mapping]] = ..., qdisc: _Optional[_Union[QdiscSummary, _Mapping]] = ..., rcvq_full: _Optional[_Union[ReceiveQueueFull, _Mapping]] = ..., fib: _Optional[_Union[FibLookup, _Mapping]] = ..., neigh: _Optional[_Union[NeighUpdate, _Mapping]] = ..., lost: _Optional[_Union[LostRecords, _Mapping]] = ..., scope_change: _Optional[_Union[ScopeChange, _Mapping]] = ..., mark: _Optional[_Union[SessionMark, _Mapping]] = ..., inventory: _Optional[_Union[SocketInventory, _Mapping]] = ..., netns_facts: _Optional[_Union[NetnsFacts, _Mapping]] = ..., cgroup: _Optional[_Union[CgroupInfo, _Mapping]] = ..., lifecycle: _Optional[_Union[Lifecycle, _Mapping]] = ...) -> None: ...
