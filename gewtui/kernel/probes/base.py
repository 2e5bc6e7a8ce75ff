"""What every probe unit shares: the record header and tuple layouts (mirrors of
bpf/gew_common.h), the BTF offsets the common helpers use, and the ProbeUnit description
(attach points, needs, record decoders, can_run).

A probe unit is ``bpf/<name>.c`` plus one module here holding its programs, its record
layouts and its decoders. Nothing in this package imports bcc: ``gew probe list`` and the
capability report use the descriptions without loading anything.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, NamedTuple

from gewtui.pb import events_pb2, session_pb2
from gewtui.runtime.capabilities import BtfNeed, Needs, TracepointNeed

# struct gew_hdr: ktime, kind, ctx, probe, cpu, pid, tgid, uid, netns, cgroup, comm
HDR = struct.Struct("<QHBBIIIIIQ16s")
# struct gew_tuple: saddr[16], daddr[16], sport, dport, family, protocol, pad
TUPLE = struct.Struct("<16s16sHHHBx")
# struct gew_sock's srtt histogram: GEW_SRTT_BUCKETS log2 buckets of u32
SRTT_BUCKETS = 24
HIST = struct.Struct(f"<{SRTT_BUCKETS}I")
# struct gew_sock: tuple and counters, then the srtt histogram at SOCK_HIST (read on its
# own, HIST, where a summary needs it), then 8 bytes of the kernel's own (last_tick, not
# decoded)
SOCK = struct.Struct(f"<40sIIQQQQQQIIIIIIIBBxx{HIST.size}x8x")
SOCK_HIST = SOCK.size - 8 - HIST.size

CTX_PROCESS = 0
CTX_SOFTIRQ = 1
CTX_UNKNOWN = 2

# Per-probe kernel counters (GEW_C_* in gew_common.h).
C_PRODUCED, C_LOST, C_MAPFULL, C_NONETNS, C_RESCUED, C_RACED = range(6)
C_STRIDE = 6
NPROBES = 8

AF_INET = 2
AF_INET6 = 10


def _n(struct_name: str, path: str, define: str) -> BtfNeed:
    return BtfNeed(struct_name, path, define)


# Offsets every unit uses through gew_common.h (namespaces, socket tuples, devices).
CORE_BTF: tuple[BtfNeed, ...] = (
    _n("net", "ns.inum", "GEW_OFF_NET_INUM"),
    _n("task_struct", "nsproxy", "GEW_OFF_TASK_NSPROXY"),
    _n("nsproxy", "net_ns", "GEW_OFF_NSPROXY_NET_NS"),
    _n("sock", "__sk_common.skc_net.net", "GEW_OFF_SOCK_NET"),
    _n("sock", "__sk_common.skc_family", "GEW_OFF_SOCK_FAMILY"),
    _n("sock", "__sk_common.skc_num", "GEW_OFF_SOCK_NUM"),
    _n("sock", "__sk_common.skc_dport", "GEW_OFF_SOCK_DPORT"),
    _n("sock", "__sk_common.skc_rcv_saddr", "GEW_OFF_SOCK_RCV_SADDR"),
    _n("sock", "__sk_common.skc_daddr", "GEW_OFF_SOCK_DADDR"),
    _n("sock", "__sk_common.skc_v6_rcv_saddr", "GEW_OFF_SOCK_V6_RCV_SADDR"),
    _n("sock", "__sk_common.skc_v6_daddr", "GEW_OFF_SOCK_V6_DADDR"),
    _n("net_device", "nd_net.net", "GEW_OFF_NETDEV_NET"),
    _n("net_device", "ifindex", "GEW_OFF_NETDEV_IFINDEX"),
    _n("net_device", "name", "GEW_OFF_NETDEV_NAME"),
    _n("sk_buff", "dev", "GEW_OFF_SKB_DEV"),
)


# A socket's tuple as the TCP tracepoint formats report it (gew_inet_tuple in gew_common.h):
# the raw TCP programs read it from struct inet_sock.
INET_TUPLE_BTF: tuple[BtfNeed, ...] = (
    _n("inet_sock", "inet_saddr", "GEW_OFF_INET_SADDR"),
    _n("inet_sock", "inet_sport", "GEW_OFF_INET_SPORT"),
)


class Header(NamedTuple):
    """struct gew_hdr. ``comm`` stays raw bytes until a decoder needs it (``comm_str``):
    most records come from softirq context and carry none."""

    ktime_ns: int
    kind: int
    ctx: int
    probe: int
    cpu: int
    pid: int
    tgid: int
    uid: int
    netns: int
    cgroup: int
    comm: bytes

    @property
    def comm_str(self) -> str:
        return self.comm.split(b"\0", 1)[0].decode("utf-8", "replace")


_HDR_UNPACK = HDR.unpack_from
_make_header = Header._make


def parse_header(buf: bytes) -> Header:
    return _make_header(_HDR_UNPACK(buf, 0))


def cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def addr_bytes(family: int, raw: bytes) -> bytes:
    """The 4 or 16 meaningful bytes of a 16-byte address field."""
    if family == AF_INET:
        return bytes(raw[:4])
    if family == AF_INET6:
        return bytes(raw[:16])
    return b""


_TUPLE_UNPACK = TUPLE.unpack_from


def fill_tuple(msg: events_pb2.Tuple, raw: bytes, offset: int = 0) -> None:
    """Set a Tuple message in place from a struct gew_tuple (cheaper than build + CopyFrom)."""
    s, d, msg.sport, msg.dport, family, msg.protocol = _TUPLE_UNPACK(raw, offset)
    msg.family = family
    n = 4 if family == AF_INET else 16 if family == AF_INET6 else 0
    msg.saddr = s[:n]
    msg.daddr = d[:n]


def tuple_pb(raw: bytes, offset: int = 0) -> events_pb2.Tuple:
    t = events_pb2.Tuple()
    fill_tuple(t, raw, offset)
    return t


@dataclass(frozen=True)
class SockSnapshot:
    """struct gew_sock as read from a record or from the socket table."""

    tuple: events_pb2.Tuple
    netns: int
    owner_tgid: int
    cookie: int
    first_ns: int
    last_ns: int
    segments: int
    bytes: int
    zw_segments: int
    snd_cwnd: int
    ssthresh: int
    snd_wnd: int
    rcv_wnd: int
    min_snd_wnd: int
    srtt_us: int
    max_srtt_us: int
    zw_now: int
    state: int
    hist: tuple = ()   # the srtt histogram's SRTT_BUCKETS counts


_HIST_UNPACK = HIST.unpack_from


def parse_sock(buf: bytes, offset: int = 0) -> SockSnapshot:
    (t, netns, owner, cookie, first, last, segs, nbytes, zws, cwnd, ssth, swnd, rwnd, minw, srtt,
     maxsrtt, zw, state) = SOCK.unpack_from(buf, offset)
    return SockSnapshot(tuple_pb(t), netns, owner, cookie, first, last, segs, nbytes, zws, cwnd, ssth,
                        swnd, rwnd, minw, srtt, maxsrtt, zw, state, _HIST_UNPACK(buf, offset + SOCK_HIST))


# Slots of gew_witness (GEW_W_* in bpf/gew_common.h).
W_KFREE_SKB = 0


@dataclass(frozen=True)
class Program:
    """One BPF function of a unit and where it attaches. ``typed_fn``: a BTF-typed variant
    of a raw program (gewtui/kernel/probes/typed.py), loaded under ``fn``'s name instead
    where the kernel accepts it."""

    fn: str
    group: str
    name: str
    raw: bool = False
    typed_fn: str = ""
    # the program's slot in gew_witness (bpf/gew_common.h), -1 for none: its runs are held
    # against the tracepoint's own hit counter (gewtui/kernel/witness.py)
    witness: int = -1

    @property
    def attach_point(self) -> str:
        return f"{'raw_tracepoint' if self.raw else 'tracepoint'}:{self.group}:{self.name}"


# A unit's record decoder: (the gewtui.kernel.decode.Decoder running it, header, record) ->
# events. The decoder is typed Any here: decode imports the units, never the other way round.
RecordDecoder = Callable[[Any, Header, bytes], Iterable[events_pb2.Event]]


@dataclass
class ProbeUnit:
    """A probe: its C source, programs, kernel needs, record kinds and decoders."""

    name: str
    probe_id: int
    source: str
    summary: str
    programs: tuple[Program, ...]
    tracepoints: tuple[TracepointNeed, ...]
    btf: tuple[BtfNeed, ...] = ()
    extra: tuple[str, ...] = ("ringbuf", "bcc", "btf", "kernel-headers", "privileges", "tracefs")
    decoders: dict[int, tuple[int, RecordDecoder]] = field(default_factory=dict)  # kind -> (size, fn)
    # fast encoders of the frequent kinds: fast(wire.Encoders) -> {kind: encoder}
    fast: Callable[[object], dict] | None = None
    # Lifecycle hooks, each optional; ``plane`` is the KernelPlane running the unit (its
    # config, decoder, map reads, drain), so the plane names no unit.
    maps: Callable[[object], tuple[str, ...]] | None = None       # maps(config): the unit's maps to pin
    cflags: Callable[[object], dict[str, int]] | None = None      # cflags(config): -D tunables
    programs_for: Callable[[object], tuple["Program", ...]] | None = None  # programs_for(btf)
    start: Callable[[object], None] | None = None        # start(plane): after verify (helpers, decoder hooks)
    tick: Callable[[object, int], None] | None = None    # tick(plane, now): periodic work, in UNITS order
    rescope: Callable[[object], None] | None = None      # rescope(plane): the scope changes after attach
    final: Callable[[object, int], None] | None = None   # final(plane, now): after the last drain
    depends: tuple[str, ...] = ()
    # checks this unit makes beyond its needs (a layout the C copies in one read, ...)
    self_check: Callable[[object], str | None] | None = None
    # -D constants beyond member offsets (bitfield positions, ...), from BTF; raises
    # BTFError when the kernel lacks what they describe (self_check should say so first)
    btf_flags: Callable[[object], dict[str, int]] | None = None

    @property
    def needs(self) -> Needs:
        return Needs(self.name, self.tracepoints, CORE_BTF + self.btf, self.extra)

    def capability_names(self) -> list[str]:
        return self.needs.capability_names()

    def can_run(self, report: session_pb2.CapabilityReport, allow_risky: bool = False,
                btf=None) -> str | None:
        """None when the unit can run; otherwise the reason it cannot, in one line."""
        by_name = {c.name: c for c in report.capabilities}
        for name in self.capability_names():
            c = by_name.get(name)
            if c is None:
                return f"{name}: not in the capability report"
            if c.state == session_pb2.NOT_SUPPORTED:
                return f"{name}: {c.reason}"
            if c.state == session_pb2.SUPPORTED_RISKY and not allow_risky:
                return f"{name} is risky ({c.reason}); needs --allow-risky"
        if self.self_check is not None and btf is not None:
            return self.self_check(btf)
        return None
