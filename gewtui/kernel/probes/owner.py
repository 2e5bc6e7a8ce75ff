"""owner unit: the process acting on each in-scope TCP socket, seen in process context
(sendmsg/recvmsg, raw tracepoints). A record crosses only when a socket's owner changes;
the decoder's owner table then attributes that socket's softirq events. Layout mirrors
bpf/owner.c.
"""
from __future__ import annotations

import struct
from typing import Iterable

from gewtui.kernel.probes.base import HDR, TUPLE, Header, Program, ProbeUnit, fill_tuple
from gewtui.pb import events_pb2
from gewtui.runtime.capabilities import BtfNeed, TracepointNeed

PROBE_ID = 4
K_OWNER = 8
VIA = {1: "send", 2: "recv"}

# after the header: tuple, sk, netns, prev_tgid, via, pad[7]
OWNER = struct.Struct(f"<{TUPLE.size}sQIIB7x")


def decode_owner(dec, hdr: Header, buf: bytes) -> Iterable[events_pb2.Event]:
    t, sk, netns, prev_tgid, via = OWNER.unpack_from(buf, HDR.size)
    previous = dec.owners.get(sk)
    ev = dec.envelope(hdr, sk, netns)   # process context: learns the new owner
    b = ev.owner
    fill_tuple(b.tuple, t)
    b.sock = sk
    b.previous_tgid = prev_tgid if prev_tgid != 0xFFFFFFFF else 0
    if previous is not None and previous.tgid == b.previous_tgid:
        b.previous_comm = previous.comm
    b.via = VIA.get(via, str(via))
    return (ev,)


# raw: (struct sock *, int ret, int flags); family and protocol come from the socket
_LEN_ARGS = ("struct sock *", "int", "int")

UNIT = ProbeUnit(
    name="owner",
    probe_id=PROBE_ID,
    source="owner.c",
    summary="socket owners from send/recv in process context (attribution of softirq events)",
    programs=(
        Program("gew_sock_send", "sock", "sock_send_length", raw=True),
        Program("gew_sock_recv", "sock", "sock_recv_length", raw=True),
    ),
    tracepoints=(
        TracepointNeed("sock", "sock_send_length", raw=True, raw_args=_LEN_ARGS),
        TracepointNeed("sock", "sock_recv_length", raw=True, raw_args=_LEN_ARGS),
    ),
    btf=(BtfNeed("sock", "sk_protocol", "GEW_OFF_SOCK_PROTOCOL"),),
    decoders={K_OWNER: (HDR.size + OWNER.size, decode_owner)},
    depends=("irqctx", "tcp_state"),
)
