"""drops unit: skb drops with the kernel's reason (names from skb:kfree_skb's format) tied
to a flow by socket or by the packet's own headers, and receive-queue-full events; both
tracepoints attach raw (bpf/drops.c).

A drop whose reason is TCP_LISTEN_OVERFLOW also yields a ReceiveQueueFull event with
listen_overflow set: the listener's accept queue was full. Layouts mirror bpf/drops.c.
"""
from __future__ import annotations

import struct
from typing import Iterable

from gewtui.kernel import wire
from gewtui.kernel.probes.base import HDR, TUPLE, W_KFREE_SKB, Header, Program, ProbeUnit, cstr, fill_tuple
from gewtui.pb import events_pb2
from gewtui.runtime.capabilities import BtfNeed, TracepointNeed

PROBE_ID = 5
K_DROP, K_RCVQ = 9, 10

# after the header: tuple, sk, location, reason, netns, ifindex, protocol, attribution, pad, ifname
DROP = struct.Struct(f"<{TUPLE.size}sQQIIIHBx16s")
# after the header: tuple, sk, netns, rmem_alloc, truesize, sk_rcvbuf
RCVQ = struct.Struct(f"<{TUPLE.size}sQIiIi")

ATTRIBUTION = {
    1: events_pb2.PACKET_ATTRIBUTION_HEADERS,
    2: events_pb2.PACKET_ATTRIBUTION_SOCKET,
    3: events_pb2.PACKET_ATTRIBUTION_NONE,
}


def drop_site(dec, location: int) -> str:
    """A drop location as function+offset, from the ``drop_site`` hook the live session
    installs (gewtui.kernel.kallsyms); "" without one."""
    resolve = dec.hooks.get("drop_site")
    return resolve(location) if resolve is not None and location else ""


def decode_drop(dec, hdr: Header, buf: bytes) -> Iterable[events_pb2.Event]:
    t, sk, location, reason, netns, ifindex, proto, attribution, ifname = DROP.unpack_from(buf, HDR.size)
    how = ATTRIBUTION.get(attribution, events_pb2.PACKET_ATTRIBUTION_UNSPECIFIED)
    tracked = sk if how == events_pb2.PACKET_ATTRIBUTION_SOCKET else 0
    ev = dec.envelope(hdr, tracked, netns, learn_owner=False)
    b = ev.skb_drop
    b.reason = reason
    b.reason_name = dec.vocab.drop_reasons.get(reason, f"reason {reason}")
    b.protocol = proto
    if how != events_pb2.PACKET_ATTRIBUTION_NONE:
        fill_tuple(b.tuple, t)
    b.attribution = how
    b.ifindex = ifindex
    b.ifname = cstr(ifname)
    b.location = location
    b.location_symbol = drop_site(dec, location)
    b.sock = sk
    b.count = 1
    out = [ev]
    if b.reason_name == "TCP_LISTEN_OVERFLOW":
        q = dec.envelope(hdr, tracked, netns, learn_owner=False)
        q.rcvq_full.sock = sk
        q.rcvq_full.listen_overflow = True
        if how != events_pb2.PACKET_ATTRIBUTION_NONE:
            q.rcvq_full.tuple.CopyFrom(b.tuple)
        out.append(q)
    return out


def decode_rcvq(dec, hdr: Header, buf: bytes) -> Iterable[events_pb2.Event]:
    t, sk, netns, rmem, truesize, rcvbuf = RCVQ.unpack_from(buf, HDR.size)
    ev = dec.envelope(hdr, sk, netns, learn_owner=False)
    b = ev.rcvq_full
    fill_tuple(b.tuple, t)
    b.sock = sk
    b.rmem_alloc = rmem
    b.truesize = truesize
    b.sk_rcvbuf = rcvbuf
    return (ev,)


def rx_sk_flags(btf) -> dict[str, int]:
    """GEW_KFREE_RX_SK_ARG=1 when kfree_skb passes the receiving socket (6.12+)."""
    args = btf.raw_tracepoint_args("kfree_skb")
    return {"GEW_KFREE_RX_SK_ARG": int(len(args) >= 4 and args[3] == "struct sock *")}


def fast(enc) -> dict:
    """Fast encoder for drops (see gewtui.kernel.wire); a listen overflow, which also makes
    a ReceiveQueueFull event, goes to decode_drop."""
    dec = enc.dec
    v = dec.vocab
    env, sid, length = dec.envelope_bytes, dec.sock_id, wire.length
    tuples = enc.tuple_fields(P_TUPLE)
    reasons = wire.Cache(lambda r: wire.opt(P_REASON, r) + wire.string_field(
        P_NAME, v.drop_reasons.get(r, f"reason {r}")), 1024)
    overflow = wire.Cache(lambda r: v.drop_reasons.get(r) == "TCP_LISTEN_OVERFLOW", 1024)
    ifaces = wire.Cache(lambda k: wire.opt(P_IFINDEX, k[0]) + wire.string_field(P_IFNAME, cstr(k[1])), 1024)
    socks, locations = wire.field_cache(P_SOCK), wire.field_cache(P_LOC)
    protocols = wire.field_cache(P_PROTO, limit=1024)
    hows = wire.Cache(lambda a: wire.opt(P_HOW, ATTRIBUTION.get(
        a, events_pb2.PACKET_ATTRIBUTION_UNSPECIFIED)), 256)
    sites = wire.Cache(lambda loc: wire.string_field(P_SYMBOL, drop_site(dec, loc)), 4096)
    unpack, at = DROP.unpack_from, HDR.size
    by_socket, unattributed = events_pb2.PACKET_ATTRIBUTION_SOCKET, events_pb2.PACKET_ATTRIBUTION_NONE

    def drop(h: tuple, buf: bytes) -> bytes | None:
        t, sk, location, reason, netns, ifindex, proto, attribution, ifname = unpack(buf, at)
        if overflow[reason]:
            return None   # also a ReceiveQueueFull event: the unit decoder makes both
        how = ATTRIBUTION.get(attribution, events_pb2.PACKET_ATTRIBUTION_UNSPECIFIED)
        body = reasons[reason] + protocols[proto]
        if how != unattributed:
            body += tuples[t]
        body += (hows[attribution] + ifaces[(ifindex, ifname)] + locations[location] + socks[sid(sk)]
                 + P_COUNT + b"\x01" + sites[location])
        return env(h, sk if how == by_socket else 0, netns, False) + B_DROP + length(len(body)) + body

    drop = _native_drop(enc, dict(overflow=overflow, reasons=reasons, hows=hows, ifaces=ifaces, sites=sites)) or drop
    return {K_DROP: drop}


def _native_drop(enc, caches: dict):
    """The ``drop`` encoder's function in C (drops_native.c), over the same decoder state
    and caches, keys and layout handed over here; None where the extension is not built
    (the Python encoder then runs, as in the tests that hold the two together)."""
    try:
        from gewtui.kernel.probes.drops_native import drop_encoder
    except ImportError:
        return None
    dec = enc.dec
    t, sk, location, reason, netns, ifindex, proto, attribution, ifname = (HDR.size + o for o in wire.offsets(DROP))
    tuple_keys, tuple_layout = wire.native_tuple()
    return drop_encoder(
        dict(env=dec.envelope_bytes, sid=dec.sock_id, attribution=ATTRIBUTION, **caches),
        dict(tuple=P_TUPLE, **tuple_keys, proto=P_PROTO, loc=P_LOC, sock=P_SOCK, count=P_COUNT, body=B_DROP),
        dict(size=HDR.size + DROP.size, tup_at=t, sk_at=sk, loc_at=location, reason_at=reason, netns_at=netns,
             ifindex_at=ifindex, proto_at=proto, attr_at=attribution, ifname_at=ifname,
             ifname_size=HDR.size + DROP.size - ifname, unspecified=events_pb2.PACKET_ATTRIBUTION_UNSPECIFIED,
             unattributed=events_pb2.PACKET_ATTRIBUTION_NONE, by_socket=events_pb2.PACKET_ATTRIBUTION_SOCKET,
             **tuple_layout))


B_DROP = wire.tag(events_pb2.Event, "skb_drop")
P_REASON, P_NAME, P_PROTO, P_TUPLE, P_HOW, P_IFINDEX, P_IFNAME, P_LOC, P_SOCK, P_COUNT = wire.keys(
    events_pb2.SkbDrop, "reason", "reason_name", "protocol", "tuple", "attribution", "ifindex", "ifname",
    "location", "sock", "count")
P_SYMBOL = wire.tag(events_pb2.SkbDrop, "location_symbol")   # field 20: after count (10)


UNIT = ProbeUnit(
    name="drops",
    probe_id=PROBE_ID,
    source="drops.c",
    summary="skb drops with the kernel's reason, attributed by socket or packet headers; receive queue full",
    programs=(
        Program("gew_kfree_skb", "skb", "kfree_skb", raw=True, witness=W_KFREE_SKB),
        Program("gew_rcvq_full", "sock", "sock_rcvqueue_full", raw=True),
    ),
    tracepoints=(
        # raw (see bpf/drops.c); rx_sk, the fourth argument (6.12+), is optional: rx_sk_flags
        TracepointNeed("skb", "kfree_skb", raw=True,
                       raw_args=("struct sk_buff *", "void *", "enum skb_drop_reason")),
        TracepointNeed("sock", "sock_rcvqueue_full", raw=True,
                       raw_args=("struct sock *", "struct sk_buff *")),
    ),
    btf=(
        BtfNeed("sk_buff", "protocol", "GEW_OFF_SKB_PROTOCOL"),
        BtfNeed("sk_buff", "head", "GEW_OFF_SKB_HEAD"),
        BtfNeed("sk_buff", "network_header", "GEW_OFF_SKB_NETWORK_HEADER"),
        BtfNeed("sk_buff", "transport_header", "GEW_OFF_SKB_TRANSPORT_HEADER"),
        BtfNeed("sk_buff", "sk", "GEW_OFF_SKB_SK"),
        BtfNeed("sk_buff", "truesize", "GEW_OFF_SKB_TRUESIZE"),
        BtfNeed("sock", "sk_protocol", "GEW_OFF_SOCK_PROTOCOL"),
        BtfNeed("sock", "sk_backlog.rmem_alloc", "GEW_OFF_SOCK_RMEM_ALLOC"),
        BtfNeed("sock", "sk_rcvbuf", "GEW_OFF_SOCK_RCVBUF"),
    ),
    decoders={
        K_DROP: (HDR.size + DROP.size, decode_drop),
        K_RCVQ: (HDR.size + RCVQ.size, decode_rcvq),
    },
    fast=fast,
    depends=("irqctx", "tcp_state"),
    btf_flags=rx_sk_flags,
)
