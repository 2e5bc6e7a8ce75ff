"""tcp_state unit: TCP state changes, socket destruction (with the final tcp_probe
summary) and congestion-state changes. Also maintains the in-scope socket table the other
TCP units look sockets up in. Layouts mirror bpf/tcp_state.c.
"""
from __future__ import annotations

import struct
from typing import Iterable

from gewtui.kernel.probes import tcp_probe
from gewtui.kernel.probes.base import (HDR, INET_TUPLE_BTF, SOCK, TUPLE, Header, Program, ProbeUnit, fill_tuple,
                                      parse_sock)
from gewtui.pb import events_pb2
from gewtui.runtime.capabilities import BtfNeed, TracepointNeed

PROBE_ID = 1
K_STATE, K_DESTROY, K_CONG = 1, 2, 3

# after the header: tuple, sk, netns, oldstate, newstate, pad[2]
STATE = struct.Struct(f"<{TUPLE.size}sQIBBxx")
# after the header: sk, cookie, struct gew_sock
DESTROY = struct.Struct(f"<QQ{SOCK.size}s")
# after the header: tuple, sk, netns, ca_state, pad[3]
CONG = struct.Struct(f"<{TUPLE.size}sQIBxxx")


_TCP_STATES = frozenset(events_pb2.TcpState.values())


def _state(v: int) -> int:
    # the proto numbers TCP states as the kernel does; unknown values map to UNSPECIFIED
    return v if v in _TCP_STATES else events_pb2.TCP_STATE_UNSPECIFIED


def decode_state(dec, hdr: Header, buf: bytes) -> Iterable[events_pb2.Event]:
    t, sk, netns, old, new = STATE.unpack_from(buf, HDR.size)
    ev = dec.envelope(hdr, sk, netns)
    b = ev.tcp_state
    fill_tuple(b.tuple, t)
    b.sock = sk
    b.old_state = _state(old)
    b.new_state = _state(new)
    return (ev,)


def decode_destroy(dec, hdr: Header, buf: bytes) -> Iterable[events_pb2.Event]:
    sk, cookie, raw = DESTROY.unpack_from(buf, HDR.size)
    s = parse_sock(raw)
    ev = dec.envelope(hdr, sk, s.netns, learn_owner=False)
    ev.destroy.tuple.CopyFrom(s.tuple)
    ev.destroy.sock = sk
    ev.destroy.sock_cookie = cookie
    out = [ev]
    if s.segments and tcp_probe.PROBE_ID in dec.unit_names:
        out.extend(tcp_probe.final_summary(dec, hdr, sk, cookie, s))
    dec.forget_socket(sk)
    return out


def decode_cong(dec, hdr: Header, buf: bytes) -> Iterable[events_pb2.Event]:
    t, sk, netns, ca = CONG.unpack_from(buf, HDR.size)
    ev = dec.envelope(hdr, sk, netns)
    b = ev.cong_state
    fill_tuple(b.tuple, t)
    b.sock = sk
    b.ca_state = ca
    b.ca_state_name = dec.vocab.ca_states.get(ca, str(ca))
    return (ev,)


UNIT = ProbeUnit(
    name="tcp_state",
    probe_id=PROBE_ID,
    source="tcp_state.c",
    summary="TCP state changes, socket destroy (final counters), congestion-state changes",
    programs=(
        Program("gew_tcp_set_state", "sock", "inet_sock_set_state", raw=True),
        Program("gew_tcp_destroy", "tcp", "tcp_destroy_sock", raw=True),
        Program("gew_tcp_cong", "tcp", "tcp_cong_state_set", raw=True),
    ),
    # raw: a raw program is skipped only when it nests in itself (see bpf/tcp_state.c)
    tracepoints=(
        TracepointNeed("sock", "inet_sock_set_state", raw=True,
                       raw_args=("const struct sock *", "const int", "const int")),
        TracepointNeed("tcp", "tcp_destroy_sock", raw=True, raw_args=("struct sock *",)),
        TracepointNeed("tcp", "tcp_cong_state_set", raw=True, raw_args=("struct sock *", "const u8")),
    ),
    btf=INET_TUPLE_BTF + (
        BtfNeed("sock", "sk_protocol", "GEW_OFF_SOCK_PROTOCOL"),
        BtfNeed("sock", "__sk_common.skc_cookie", "GEW_OFF_SOCK_COOKIE"),
    ),
    decoders={
        K_STATE: (HDR.size + STATE.size, decode_state),
        K_DESTROY: (HDR.size + DESTROY.size, decode_destroy),
        K_CONG: (HDR.size + CONG.size, decode_cong),
    },
    depends=("irqctx",),
)
