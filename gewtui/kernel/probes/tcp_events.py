"""tcp_events unit: retransmits (data and SYN-ACK) and resets (sent, received).

All four tracepoints attach raw (see bpf/tcp_events.c). Reset reason names come from
tcp:tcp_send_reset's format at runtime; the reason itself is the raw `enum sk_rst_reason`
argument (6.10+), read as the 4-byte value the format describes. The capability
"tcp_send_reset:reason-enum" states this. Layouts mirror bpf/tcp_events.c.
"""
from __future__ import annotations

import struct
from typing import Iterable

from gewtui.kernel import wire
from gewtui.kernel.probes.base import HDR, INET_TUPLE_BTF, TUPLE, Header, Program, ProbeUnit, fill_tuple
from gewtui.kernel.probes.tcp_state import _state
from gewtui.pb import events_pb2, session_pb2
from gewtui.runtime.capabilities import BtfNeed, TracepointNeed
from gewtui.runtime.tracefs import FormatError, Tracefs

PROBE_ID = 2
K_RETRANS, K_RESET_SENT, K_RESET_RECV = 4, 5, 6
ENUM_CAPABILITY = "tcp_send_reset:reason-enum"

# after the header: tuple, sk, netns, state, err, synack, pad[3]
RETRANS = struct.Struct(f"<{TUPLE.size}sQIiiBxxx")
# after the header: tuple, sk, cookie, netns, state, reason, direction, pad[3]
RESET = struct.Struct(f"<{TUPLE.size}sQQIiIBxxx")


def decode_retrans(dec, hdr: Header, buf: bytes) -> Iterable[events_pb2.Event]:
    t, sk, netns, state, err, synack = RETRANS.unpack_from(buf, HDR.size)
    # a SYN-ACK retransmit names the request socket, which has no owner of its own
    ev = dec.envelope(hdr, 0 if synack else sk, netns)
    b = ev.retransmit
    fill_tuple(b.tuple, t)
    b.sock = sk
    b.state = _state(state)
    b.err = err
    b.synack = bool(synack)
    return (ev,)


def decode_reset(dec, hdr: Header, buf: bytes) -> Iterable[events_pb2.Event]:
    t, sk, cookie, netns, state, reason, direction = RESET.unpack_from(buf, HDR.size)
    sent = direction == 1
    # a sent reset may name a request or timewait socket: only tracked sockets have owners
    ev = dec.envelope(hdr, sk, netns, learn_owner=not sent)
    b = ev.reset
    fill_tuple(b.tuple, t)
    b.sock = sk
    b.direction = events_pb2.RESET_SENT if sent else events_pb2.RESET_RECEIVED
    b.state = _state(state)
    b.sock_cookie = cookie
    if sent:
        b.reason = reason
        b.reason_name = dec.vocab.reset_reasons.get(reason, f"reason {reason}")
    return (ev,)


def reset_enum_capability(tf: Tracefs) -> session_pb2.Capability:
    """How tcp_send_reset's `enum sk_rst_reason` field is handled, in one of three states."""
    c = session_pb2.Capability(name=ENUM_CAPABILITY, needed_by=["tcp_events"])
    try:
        fmt = tf.read("tcp", "tcp_send_reset")
    except FormatError as e:
        c.state, c.reason = session_pb2.NOT_SUPPORTED, str(e)
        return c
    f = fmt.fields.get("reason")
    if f is None:
        c.state, c.reason = session_pb2.FULLY_SUPPORTED, "format has no reason field (pre-6.10): nothing to work around"
    elif f.size != 4:
        c.state, c.reason = session_pb2.NOT_SUPPORTED, f"reason field is {f.size} bytes, probe reads 4"
    elif not fmt.symbols.get("reason"):
        c.state, c.reason = (session_pb2.SUPPORTED_RISKY,
                             f"'{f.type}' read as 4 bytes, but the format names no reason values")
    else:
        how = "the raw tracepoint argument read as its 4-byte value"
        c.state = session_pb2.FULLY_SUPPORTED
        c.reason = (f"'{f.type}' (4 bytes): {how}; {len(fmt.symbols['reason'])} reason names "
                    f"read from the format")
    return c


def rst_reason_flags(btf) -> dict[str, int]:
    """GEW_RST_REASON_ARG=1 when tcp_send_reset passes a reason (6.10+): a third argument,
    an enum of 4 bytes, which the program reads as a u32."""
    args = btf.raw_tracepoint_args("tcp_send_reset")
    return {"GEW_RST_REASON_ARG": int(len(args) >= 3 and args[2].endswith("enum sk_rst_reason"))}


def fast(enc) -> dict:
    """Fast encoders for retransmits and resets (see gewtui.kernel.wire)."""
    dec = enc.dec
    v = dec.vocab
    env, sid, tuples, socks, length = dec.envelope_bytes, dec.sock_id, enc.tuples, enc.socks, wire.length
    r_states = wire.Cache(lambda s: wire.opt(R_STATE, _state(s)), 1024)
    t_states = wire.Cache(lambda s: wire.opt(T_STATE, _state(s)), 1024)
    reasons = wire.Cache(lambda r: wire.opt(T_REASON, r) + wire.string_field(
        T_NAME, v.reset_reasons.get(r, f"reason {r}")), 1024)
    unpack_retrans, unpack_reset, at = RETRANS.unpack_from, RESET.unpack_from, HDR.size

    syn_sent, hooks = events_pb2.TCP_SYN_SENT, dec.hooks

    def retrans(h: tuple, buf: bytes) -> bytes:
        t, sk, netns, state, err, synack = unpack_retrans(buf, at)
        if _state(state) == syn_sent and "syn_retransmit" in hooks:
            hooks["syn_retransmit"](netns)   # a handshake timing out (the inventory reads counters)
        body = (tuples[t] + socks[sid(sk)] + r_states[state] + (R_ERR + wire.ivarint(err) if err else b"")
                + (R_SYNACK + b"\x01" if synack else b""))
        # a SYN-ACK retransmit names the request socket, which has no owner of its own
        return env(h, 0 if synack else sk, netns) + B_RETRANS + length(len(body)) + body

    def reset(h: tuple, buf: bytes) -> bytes:
        t, sk, cookie, netns, state, reason, direction = unpack_reset(buf, at)
        sent = direction == 1
        body = tuples[t] + socks[sid(sk)] + T_DIR + (SENT if sent else RECEIVED) + t_states[state]
        if sent:
            body += reasons[reason]     # fields 5, 6: before the cookie (7)
        if cookie:
            body += T_COOKIE + wire.uvarint(cookie)
        # a sent reset may name a request or timewait socket: only tracked sockets have owners
        return env(h, sk, netns, not sent) + B_RESET + length(len(body)) + body

    reset = _native_reset(enc, reset_states=t_states, reasons=reasons) or reset
    return {K_RETRANS: retrans, K_RESET_SENT: reset, K_RESET_RECV: reset}


def _native_reset(enc, reset_states, reasons):
    """The ``reset`` encoder's function in C (tcp_events_native.c), over the same decoder
    state and caches, keys and layout handed over here; None where the extension is not
    built (the Python encoder then runs, as in the tests that hold the two together)."""
    try:
        from gewtui.kernel.probes.tcp_events_native import reset_encoder
    except ImportError:
        return None
    dec = enc.dec
    t, sk, cookie, netns, state, reason, direction = (HDR.size + o for o in wire.offsets(RESET))
    tuple_keys, tuple_layout = wire.native_tuple()
    return reset_encoder(
        dict(env=dec.envelope_bytes, sid=dec.sock_id, states=reset_states, reasons=reasons),
        dict(tuple=wire.TUPLE1, **tuple_keys, sock=wire.S_SOCK, dir=T_DIR, sent=SENT, received=RECEIVED,
             cookie=T_COOKIE, body=B_RESET),
        dict(size=HDR.size + RESET.size, tup_at=t, sk_at=sk, cookie_at=cookie, netns_at=netns, state_at=state,
             reason_at=reason, dir_at=direction, dir_sent=1, **tuple_layout))


B_RETRANS, B_RESET = wire.keys(events_pb2.Event, "retransmit", "reset")
R_STATE, R_ERR, R_SYNACK = wire.keys(events_pb2.TcpRetransmit, "state", "err", "synack")
T_DIR, T_STATE, T_REASON, T_NAME, T_COOKIE = wire.keys(
    events_pb2.TcpReset, "direction", "state", "reason", "reason_name", "sock_cookie")
SENT, RECEIVED = wire.SMALL[events_pb2.RESET_SENT], wire.SMALL[events_pb2.RESET_RECEIVED]


UNIT = ProbeUnit(
    name="tcp_events",
    probe_id=PROBE_ID,
    source="tcp_events.c",
    summary="retransmits (data, SYN-ACK) and resets sent/received, with reset reasons",
    programs=(
        Program("gew_tcp_retrans", "tcp", "tcp_retransmit_skb", raw=True),
        Program("gew_tcp_retrans_synack", "tcp", "tcp_retransmit_synack", raw=True),
        Program("gew_tcp_send_reset", "tcp", "tcp_send_reset", raw=True),
        Program("gew_tcp_recv_reset", "tcp", "tcp_receive_reset", raw=True),
    ),
    # raw: a raw program is skipped only when it nests in itself (see bpf/tcp_events.c)
    tracepoints=(
        TracepointNeed("tcp", "tcp_retransmit_skb", raw=True,
                       raw_args=("const struct sock *", "const struct sk_buff *", "int")),
        TracepointNeed("tcp", "tcp_retransmit_synack", raw=True,
                       raw_args=("const struct sock *", "const struct request_sock *")),
        # the reason argument (6.10+) is optional: rst_reason_flags
        TracepointNeed("tcp", "tcp_send_reset", raw=True,
                       raw_args=("const struct sock *", "const struct sk_buff *")),
        TracepointNeed("tcp", "tcp_receive_reset", raw=True, raw_args=("struct sock *",)),
    ),
    btf=INET_TUPLE_BTF + (
        BtfNeed("sock", "__sk_common.skc_state", "GEW_OFF_SOCK_STATE"),
        BtfNeed("sock", "__sk_common.skc_cookie", "GEW_OFF_SOCK_COOKIE"),
        BtfNeed("sk_buff", "head", "GEW_OFF_SKB_HEAD"),
        BtfNeed("sk_buff", "data", "GEW_OFF_SKB_DATA"),
        BtfNeed("sk_buff", "network_header", "GEW_OFF_SKB_NETWORK_HEADER"),
    ),
    btf_flags=rst_reason_flags,
    extra=("ringbuf", "bcc", "btf", "kernel-headers", "privileges", "tracefs", ENUM_CAPABILITY),
    decoders={
        K_RETRANS: (HDR.size + RETRANS.size, decode_retrans),
        K_RESET_SENT: (HDR.size + RESET.size, decode_reset),
        K_RESET_RECV: (HDR.size + RESET.size, decode_reset),
    },
    fast=fast,
    depends=("irqctx", "tcp_state"),
)

