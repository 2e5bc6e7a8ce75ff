"""The decoder's fast path: frequent ring-buffer records straight to serialized L0 events.

Building an Event field by field costs ~150 ns per attribute set with the upb protobuf
runtime (a state-change event needs ~20), while parsing a whole serialized event costs
~0.5 us. So for the record kinds a busy session sees most (state changes, resets,
retransmits, drops, congestion states, destroys) the decoder writes the protobuf wire
format itself and parses it once (``Event.FromString``). What repeats is encoded once and
cached: a tuple, an attribution, a reason name; only times and socket addresses are
encoded per record. Fields follow the unit decoders in gewtui/kernel/probes/ exactly:
``tests/test_decode_fastpath.py`` checks every kind against them on crafted records.

An encoder returns the event's bytes without its id, or None when the record needs what
only the unit decoder does (a second event, a summary): the decoder then runs that one.
No bcc here.
"""
from __future__ import annotations

import struct
from typing import Callable

from gewtui.kernel.probes import drops, tcp_events, tcp_probe, tcp_state
from gewtui.kernel.probes.base import AF_INET, AF_INET6, HDR, SOCK, TUPLE, cstr
from gewtui.pb import events_pb2

_SMALL = [bytes((i,)) for i in range(128)]
_U32 = struct.Struct("<I").pack
_MASK64 = (1 << 64) - 1
_hi_cache: dict[int, bytes] = {}


def _spread28(v: int) -> int:
    """The low 28 bits of v as four 7-bit groups, one per byte (little-endian)."""
    x = v & 0xFFFFFFF
    x = (x & 0x3FFF) | ((x & 0xFFFC000) << 2)
    return (x & 0x007F007F) | ((x & 0x3F803F80) << 1)


def _hi_varint(hi: int) -> bytes:
    """The varint of the groups above the low 28 bits (cached)."""
    if len(_hi_cache) > 4096:
        _hi_cache.clear()
    if hi < 0x10000000:
        v = _short_uvarint(hi)
    else:
        v = _U32(_spread28(hi) | 0x80808080) + _hi_varint(hi >> 28)
    _hi_cache[hi] = v
    return v


def _short_uvarint(v: int) -> bytes:
    if v < 0x80:
        return _SMALL[v]
    if v < 0x4000:
        return bytes(((v & 0x7F) | 0x80, v >> 7))
    if v < 0x200000:
        return _U32(_spread28(v) | 0x8080)[:3]
    return _U32(_spread28(v) | 0x808080)


def uvarint(v: int) -> bytes:
    """Base-128 varint of an unsigned value < 2**64. Seven-bit groups are spread into
    bytes with a few shifts; the groups above the low 28 bits (the high bits of a kernel
    address, which rarely change) come from a cache."""
    if v < 0x10000000:
        return _short_uvarint(v)
    return _U32(_spread28(v) | 0x80808080) + (_hi_cache.get(v >> 28) or _hi_varint(v >> 28))


def ivarint(v: int) -> bytes:
    """int32/int64 fields: negative values are ten-byte two's complement varints."""
    return uvarint(v & _MASK64) if v < 0 else uvarint(v)


def tag(msg: type, name: str) -> bytes:
    """The key bytes of field ``name`` of message class ``msg`` (from its descriptor)."""
    f = msg.DESCRIPTOR.fields_by_name[name]
    length_delimited = f.type in (f.TYPE_MESSAGE, f.TYPE_STRING, f.TYPE_BYTES)
    return uvarint((f.number << 3) | (2 if length_delimited else 0))


def ld(key: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    return key + uvarint(len(payload)) + payload


def string_field(key: bytes, s: str) -> bytes:
    return ld(key, s.encode("utf-8")) if s else b""


# Zero scalars and empty strings are left out, as protobuf's own serializer leaves them
# out: an encoded event is byte for byte what SerializeToString gives for it.
def opt(key: bytes, v: int) -> bytes:
    return key + uvarint(v) if v else b""


class Cache(dict):
    """A dict that forgets everything when it grows past ``limit`` (values are cheap to
    rebuild; a bound keeps a long session's memory flat)."""

    def __init__(self, build: Callable, limit: int = 8192):
        super().__init__()
        self.build = build
        self.limit = limit

    def __missing__(self, key):
        if len(self) >= self.limit:
            self.clear()
        v = self[key] = self.build(key)
        return v


def keys(msg: type, *names: str) -> tuple[bytes, ...]:
    return tuple(tag(msg, n) for n in names)


_TUPLE = TUPLE.unpack_from
_TF_FAMILY, _TF_SADDR, _TF_DADDR, _TF_SPORT, _TF_DPORT, _TF_PROTO = keys(
    events_pb2.Tuple, "family", "saddr", "daddr", "sport", "dport", "protocol")


# Event envelope and body keys.
E = events_pb2.Event
K_CPU, K_ATTR = keys(E, "cpu", "attr")
B_STATE, B_RETRANS, B_RESET, B_CONG, B_DESTROY, B_DROP = keys(
    E, "tcp_state", "retransmit", "reset", "cong_state", "destroy", "skb_drop")
# Field keys inside the bodies (every TCP body has its tuple as field 1, SkbDrop as field 4).
TUPLE1 = tag(events_pb2.TcpStateChange, "tuple")
S_SOCK, S_OLD, S_NEW = keys(events_pb2.TcpStateChange, "sock", "old_state", "new_state")
C_SOCK, C_CA, C_NAME = keys(events_pb2.TcpCongState, "sock", "ca_state", "ca_state_name")
D_SOCK, D_COOKIE = keys(events_pb2.SocketDestroy, "sock", "sock_cookie")
R_SOCK, R_STATE, R_ERR, R_SYNACK = keys(events_pb2.TcpRetransmit, "sock", "state", "err", "synack")
T_SOCK, T_DIR, T_STATE, T_REASON, T_NAME, T_COOKIE = keys(
    events_pb2.TcpReset, "sock", "direction", "state", "reason", "reason_name", "sock_cookie")
P_REASON, P_NAME, P_PROTO, P_TUPLE, P_HOW, P_IFINDEX, P_IFNAME, P_LOC, P_SOCK, P_COUNT = keys(
    events_pb2.SkbDrop, "reason", "reason_name", "protocol", "tuple", "attribution", "ifindex", "ifname",
    "location", "sock", "count")
if not S_SOCK == C_SOCK == D_SOCK == R_SOCK == T_SOCK:
    raise ImportError("wire: the TCP bodies no longer share the sock field's number")
SENT, RECEIVED = _SMALL[events_pb2.RESET_SENT], _SMALL[events_pb2.RESET_RECEIVED]
HOW_SOCKET, HOW_NONE = events_pb2.PACKET_ATTRIBUTION_SOCKET, events_pb2.PACKET_ATTRIBUTION_NONE

_HDR = HDR.size
_STATE = tcp_state.STATE.unpack_from
_CONG = tcp_state.CONG.unpack_from
# destroy: sk, cookie, then from struct gew_sock its tuple, netns and (after owner, cookie,
# first_ns, last_ns) its segment count
_DESTROY_S = struct.Struct(f"<QQ{TUPLE.size}sI28xQ{SOCK.size - TUPLE.size - 4 - 28 - 8}x")
if _DESTROY_S.size != tcp_state.DESTROY.size:
    raise ImportError("wire: the destroy layout no longer matches tcp_state.DESTROY")
_DESTROY = _DESTROY_S.unpack_from
_RETRANS = tcp_events.RETRANS.unpack_from
_RESET = tcp_events.RESET.unpack_from
_DROP = drops.DROP.unpack_from
_state = tcp_state._state


_LEN = [uvarint(n) for n in range(1024)]


def _len(n: int) -> bytes:
    return _LEN[n] if n < 1024 else uvarint(n)


def _field_cache(key: bytes, encode: Callable = uvarint, limit: int = 8192) -> Cache:
    """value -> key + encode(value), built once per value."""
    return Cache(lambda v: key + encode(v) if v else b"", limit)


def _state_field(key: bytes) -> Cache:
    return Cache(lambda v: key + _SMALL[_state(v)] if _state(v) else b"", 1024)


class Encoders:
    """One decoder's caches and encoders; ``table()`` maps record kinds to encoders for
    the units the decoder runs. Every value that repeats (tuples, sockets, states, reason
    names, code locations) is looked up as a ready-made field."""

    def __init__(self, dec):
        self.dec = dec
        v = dec.vocab
        self.tuples = TupleFields(TUPLE1)
        self.drop_tuples = TupleFields(P_TUPLE)
        self.socks = _field_cache(S_SOCK)      # field 2 of every TCP body (checked at import)
        self.old_states, self.new_states = _state_field(S_OLD), _state_field(S_NEW)
        self.r_states, self.t_states = _state_field(R_STATE), _state_field(T_STATE)
        self.drop_reasons = Cache(lambda r: opt(P_REASON, r) + string_field(
            P_NAME, v.drop_reasons.get(r, f"reason {r}")), 1024)
        self.overflow = Cache(lambda r: v.drop_reasons.get(r) == "TCP_LISTEN_OVERFLOW", 1024)
        self.reset_reasons = Cache(lambda r: opt(T_REASON, r) + string_field(
            T_NAME, v.reset_reasons.get(r, f"reason {r}")), 1024)
        self.ca = Cache(lambda c: opt(C_CA, c) + string_field(C_NAME, v.ca_states.get(c, str(c))), 1024)
        self.ifaces = Cache(lambda k: opt(P_IFINDEX, k[0]) + string_field(P_IFNAME, cstr(k[1])), 1024)
        self.drop_socks = _field_cache(P_SOCK)
        self.locations = _field_cache(P_LOC)
        self.protocols = _field_cache(P_PROTO, limit=1024)
        self.hows = Cache(lambda a: opt(P_HOW, drops.ATTRIBUTION.get(
            a, events_pb2.PACKET_ATTRIBUTION_UNSPECIFIED)), 256)

    def tuple_payload(self, raw: bytes) -> bytes:
        """A struct gew_tuple as a serialized Tuple (see TupleFields)."""
        return self.tuples.payload(raw)

    def table(self) -> dict[int, Callable[[tuple, bytes], bytes | None]]:
        """kind -> encoder(header tuple, record) for the units the decoder runs. The
        encoders are closures over the caches (a local lookup instead of an attribute
        lookup per field: this runs once per record)."""
        dec = self.dec
        env, forget = dec.envelope_bytes, dec.forget_socket
        tuples, drop_tuples, socks = self.tuples, self.drop_tuples, self.socks
        old_states, new_states, r_states, t_states = self.old_states, self.new_states, self.r_states, self.t_states
        ca_fields, reset_reasons, drop_reasons, overflow = self.ca, self.reset_reasons, self.drop_reasons, self.overflow
        hows, ifaces, locations, drop_socks, protocols = self.hows, self.ifaces, self.locations, self.drop_socks, \
            self.protocols
        summaries = tcp_probe.PROBE_ID in dec.unit_names

        def state(h: tuple, buf: bytes) -> bytes:
            t, sk, netns, old, new = _STATE(buf, _HDR)
            body = tuples[t] + socks[sk] + old_states[old] + new_states[new]
            n = len(body)
            return env(h, sk, netns) + B_STATE + (_LEN[n] if n < 1024 else uvarint(n)) + body

        def cong(h: tuple, buf: bytes) -> bytes:
            t, sk, netns, ca = _CONG(buf, _HDR)
            body = tuples[t] + socks[sk] + ca_fields[ca]
            return env(h, sk, netns) + B_CONG + _len(len(body)) + body

        def destroy(h: tuple, buf: bytes) -> bytes | None:
            sk, cookie, t, netns, segments = _DESTROY(buf, _HDR)
            if segments and summaries:
                return None   # with the final tcp_probe summary: the unit decoder makes both events
            body = tuples[t] + socks[sk] + (D_COOKIE + uvarint(cookie) if cookie else b"")
            out = env(h, sk, netns, False) + B_DESTROY + _len(len(body)) + body
            forget(sk)
            return out

        def retrans(h: tuple, buf: bytes) -> bytes:
            t, sk, netns, state, err, synack = _RETRANS(buf, _HDR)
            body = (tuples[t] + socks[sk] + r_states[state] + (R_ERR + ivarint(err) if err else b"")
                    + (R_SYNACK + b"\x01" if synack else b""))
            # a SYN-ACK retransmit names the request socket, which has no owner of its own
            return env(h, 0 if synack else sk, netns) + B_RETRANS + _len(len(body)) + body

        def reset(h: tuple, buf: bytes) -> bytes:
            t, sk, cookie, netns, state, reason, direction = _RESET(buf, _HDR)
            sent = direction == 1
            body = tuples[t] + socks[sk] + T_DIR + (SENT if sent else RECEIVED) + t_states[state]
            if sent:
                body += reset_reasons[reason]     # fields 5, 6: before the cookie (7)
            if cookie:
                body += T_COOKIE + uvarint(cookie)
            n = len(body)
            # a sent reset may name a request or timewait socket: only tracked sockets have owners
            return env(h, sk, netns, not sent) + B_RESET + (_LEN[n] if n < 1024 else uvarint(n)) + body

        def drop(h: tuple, buf: bytes) -> bytes | None:
            t, sk, location, reason, netns, ifindex, proto, attribution, ifname = _DROP(buf, _HDR)
            if overflow[reason]:
                return None   # also a ReceiveQueueFull event: the unit decoder makes both
            how = drops.ATTRIBUTION.get(attribution, events_pb2.PACKET_ATTRIBUTION_UNSPECIFIED)
            body = drop_reasons[reason] + protocols[proto]
            if how != HOW_NONE:
                body += drop_tuples[t]
            body += (hows[attribution] + ifaces[(ifindex, ifname)] + locations[location] + drop_socks[sk]
                     + P_COUNT + b"\x01")
            return env(h, sk if how == HOW_SOCKET else 0, netns, False) + B_DROP + _len(len(body)) + body

        names = set(dec.unit_names.values())
        out: dict[int, Callable[[tuple, bytes], bytes | None]] = {}
        if "tcp_state" in names:
            out.update({tcp_state.K_STATE: state, tcp_state.K_CONG: cong, tcp_state.K_DESTROY: destroy})
        if "tcp_events" in names:
            out.update({tcp_events.K_RETRANS: retrans, tcp_events.K_RESET_SENT: reset,
                        tcp_events.K_RESET_RECV: reset})
        if "drops" in names:
            out[drops.K_DROP] = drop
        return out


class TupleFields(dict):
    """raw struct gew_tuple -> a Tuple field (key, length, payload), as base.fill_tuple
    would set it: 4 or 16 address bytes by family, zero fields left out as protobuf
    writes them. Every connection brings new tuples, so a first sight is built from
    cached parts (addresses, ports) in one call."""

    limit = 8192

    def __init__(self, key: bytes):
        super().__init__()
        self.key = key
        self.addrs = Cache(_addr_fields, 1024)
        self.sports = _field_cache(_TF_SPORT, limit=65536)
        self.dports = _field_cache(_TF_DPORT, limit=65536)
        self.protos = _field_cache(_TF_PROTO, limit=256)

    def payload(self, raw: bytes) -> bytes:
        s, d, sport, dport, family, proto = _TUPLE(raw, 0)
        out = self.addrs[(family, s, d)]
        if sport:
            out += self.sports[sport]
        if dport:
            out += self.dports[dport]
        if proto:
            out += self.protos[proto]
        return out

    def __missing__(self, raw: bytes) -> bytes:
        p = self.payload(raw)
        v = self.key + _LEN[len(p)] + p
        if len(self) >= self.limit:
            self.clear()
        self[raw] = v
        return v


def _addr_fields(key: tuple) -> bytes:
    family, s, d = key
    n = 4 if family == AF_INET else 16 if family == AF_INET6 else 0
    out = _TF_FAMILY + uvarint(family) if family else b""
    if n:
        out += _TF_SADDR + _SMALL[n] + s[:n] + _TF_DADDR + _SMALL[n] + d[:n]
    return out
