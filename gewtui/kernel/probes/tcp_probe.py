"""tcp_probe unit: per-socket segment counters kept in the kernel, turned into
TcpProbeSummary events over windows.

Three sources make summaries, all through ``summarise``: a zero-window edge record from
the kernel, the plane's periodic read of the socket table, and the final counters carried
by tcp_state's destroy record. Each summary covers the segments since the previous one of
the same socket, so summed windows equal the kernel's totals. Layout mirrors
bpf/tcp_probe.c.

The socket's srtt histogram (log2 buckets counted per segment in the kernel, in the
socket's own entry: struct gew_sock) goes into each summary as the window's delta, from the
same copy of the entry as the counters.

The final summary of a socket has a fast encoder (``final_encoder``): tcp_state's destroy
encoder hands it the record's struct gew_sock and gets the summary's wire bytes, what
``summarise(..., final=True)`` and SerializeToString give.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Iterable

from gewtui.kernel import wire
from gewtui.kernel.probes.base import HDR, HIST, SOCK, SOCK_HIST, Header, Program, ProbeUnit, SockSnapshot, parse_sock
from gewtui.pb import events_pb2
from gewtui.runtime.capabilities import BtfNeed, TracepointNeed

PROBE_ID = 3
K_PROBE_ZW = 7

# after the header: sk, struct gew_sock
ZW = struct.Struct(f"<Q{SOCK.size}s")


@dataclass
class _Window:
    segments: int
    bytes: int
    zw_segments: int
    end_ns: int
    hist: tuple = ()


def hist_delta(cur: tuple, prev: tuple) -> list[int]:
    """The window's buckets: the kernel's counts now minus at the previous summary, with
    trailing empty buckets cut."""
    if prev:
        out = [c - p if c > p else 0 for c, p in zip(cur, prev)] + list(cur[len(prev):])
    else:
        out = list(cur)   # counts are unsigned
    n = len(out)
    while n and not out[n - 1]:
        n -= 1
    del out[n:]
    return out


def summarise(dec, sk: int, s: SockSnapshot, ev: events_pb2.Event | None = None, *,
              final: bool = False, force: bool = False) -> events_pb2.Event | None:
    """A summary of what changed for socket ``sk`` since its previous summary, or None
    when nothing did (unless ``final``/``force``). ``ev`` is the envelope to fill (a
    record's); without one the socket owner's attribution is used."""
    windows: dict[int, _Window] = dec.unit_state("tcp_probe")
    prev = windows.get(sk)
    base = prev or _Window(0, 0, 0, s.first_ns)
    dseg = s.segments - base.segments
    if dseg <= 0 and not (final or force):
        return None
    if ev is None:
        ev = dec.about_socket(sk, s.last_ns or dec.clock(), s.netns)
    b = ev.tcp_probe
    b.tuple.CopyFrom(s.tuple)
    b.sock = sk
    b.sock_cookie = s.cookie
    b.window_start_ns = base.end_ns
    b.window_end_ns = s.last_ns
    b.segments = max(dseg, 0)
    b.bytes = max(s.bytes - base.bytes, 0)
    b.snd_cwnd = s.snd_cwnd
    b.ssthresh = s.ssthresh
    b.snd_wnd = s.snd_wnd
    b.rcv_wnd = s.rcv_wnd
    b.min_snd_wnd = s.min_snd_wnd if s.min_snd_wnd != 0xFFFFFFFF else 0
    b.srtt_us = s.srtt_us
    b.max_srtt_us = s.max_srtt_us
    b.zero_window_segments = max(s.zw_segments - base.zw_segments, 0)
    b.zero_window_now = bool(s.zw_now)
    b.final = final
    b.srtt_log2_hist.extend(hist_delta(s.hist, base.hist))
    if final:
        windows.pop(sk, None)
    else:
        windows[sk] = _Window(s.segments, s.bytes, s.zw_segments, s.last_ns, s.hist or base.hist)
    return ev


def decode_zero_window(dec, hdr: Header, buf: bytes) -> Iterable[events_pb2.Event]:
    sk, raw = ZW.unpack_from(buf, HDR.size)
    s = parse_sock(raw)
    ev = summarise(dec, sk, s, dec.envelope(hdr, sk, s.netns, learn_owner=False), force=True)
    return (ev,) if ev is not None else ()


def final_summary(dec, hdr: Header, sk: int, cookie: int, s: SockSnapshot) -> Iterable[events_pb2.Event]:
    """Called by tcp_state's destroy decoder with the socket's last counters."""
    ev = summarise(dec, sk, s, dec.envelope(hdr, sk, s.netns, learn_owner=False), final=True)
    if ev is not None and cookie:
        ev.tcp_probe.sock_cookie = cookie
    return (ev,) if ev is not None else ()


def final_encoder(enc) -> Callable[[bytes, int, int, int, bytes, int], bytes]:
    """The final summary on the capture's path: ``final(env, sk, sock_id, cookie, buf, at)``
    gives the wire bytes (without id and ktime) of what ``final_summary`` makes for the
    struct gew_sock at ``buf[at:]``, its envelope ``env`` being the destroy's. What
    ``summarise(..., final=True)`` does, written out once more for speed (a short
    connection's costliest event): tests/test_decode_fastpath.py and tests/test_capture.py
    hold every byte against the unit decoder. Ends the socket's window like summarise."""
    windows: dict[int, _Window] = enc.dec.unit_state("tcp_probe")
    tuples, socks, length, uv = enc.tuples, enc.socks, wire.length, wire.uvarint
    unpack, hist_at, hist_end = SOCK.unpack_from, SOCK_HIST, SOCK_HIST + HIST.size
    hist_fields = wire.Cache(_hist_field, 4096)   # a short life's histogram, as it repeats
    # fields whose values repeat from one connection to the next, each encoded once (bounded)
    (segs_f, bytes_f, cwnd_f, ssth_f, swnd_f, rwnd_f, minw_f, srtt_f, maxsrtt_f, zws_f) = (
        wire.field_cache(k, limit=4096) for k in (P_SEGS, P_BYTES, P_CWND, P_SSTHRESH, P_SND_WND, P_RCV_WND,
                                                  P_MIN_WND, P_SRTT, P_MAX_SRTT, P_ZW_SEGS))

    def final(env: bytes, sk: int, sid: int, cookie: int, buf: bytes, at: int) -> bytes:
        t, _, _, s_cookie, first, last, segs, nbytes, zws, cwnd, ssth, swnd, rwnd, minw, srtt, maxsrtt, zw, _ = unpack(
            buf, at)
        raw_hist = buf[at + hist_at:at + hist_end].rstrip(b"\0")
        w = windows.pop(sk, None)
        if w is None:
            # the whole life in one window (a short connection): the counts as they are
            hist = hist_fields[raw_hist]
        else:
            first = w.end_ns
            segs, nbytes, zws = max(segs - w.segments, 0), max(nbytes - w.bytes, 0), max(zws - w.zw_segments, 0)
            hist = _packed(hist_delta(HIST.unpack_from(buf, at + hist_at), w.hist)) if raw_hist else b""
        c = cookie or s_cookie
        if minw == 0xFFFFFFFF:
            minw = 0
        body = b"".join((tuples[t], socks[sid], P_COOKIE + uv(c) if c else b"", P_START + uv(first) if first else b"",
                         P_END + uv(last) if last else b"", segs_f[segs], bytes_f[nbytes], cwnd_f[cwnd], ssth_f[ssth],
                         swnd_f[swnd], rwnd_f[rwnd], minw_f[minw], srtt_f[srtt], maxsrtt_f[maxsrtt], zws_f[zws],
                         P_ZW_NOW if zw else b"", P_FINAL, hist))
        return env + B_PROBE + length(len(body)) + body

    return final


def _packed(counts: list[int]) -> bytes:
    """srtt_log2_hist's field: packed varints (nothing when empty)."""
    if not counts:
        return b""
    packed = b"".join(map(wire.uvarint, counts))
    return P_HIST + wire.length(len(packed)) + packed


def _hist_field(raw: bytes) -> bytes:
    """srtt_log2_hist's field from a histogram's bytes with trailing zero bytes cut."""
    n = (len(raw) + 3) // 4
    return _packed(list(struct.unpack(f"<{n}I", raw.ljust(4 * n, b"\0"))))


B_PROBE = wire.tag(events_pb2.Event, "tcp_probe")
(P_COOKIE, P_START, P_END, P_SEGS, P_BYTES, P_CWND, P_SSTHRESH, P_SND_WND, P_RCV_WND, P_MIN_WND, P_SRTT,
 P_MAX_SRTT, P_ZW_SEGS) = wire.keys(
    events_pb2.TcpProbeSummary, "sock_cookie", "window_start_ns", "window_end_ns", "segments", "bytes", "snd_cwnd",
    "ssthresh", "snd_wnd", "rcv_wnd", "min_snd_wnd", "srtt_us", "max_srtt_us", "zero_window_segments")
# a packed repeated field (proto3's default): length-delimited, its varints one after another
P_HIST = wire.uvarint(events_pb2.TcpProbeSummary.DESCRIPTOR.fields_by_name["srtt_log2_hist"].number << 3 | 2)
# the two booleans, true (a false one is left out)
P_ZW_NOW, P_FINAL = (k + b"\x01" for k in wire.keys(events_pb2.TcpProbeSummary, "zero_window_now", "final"))


def periodic(dec, table_items: Iterable[tuple[int, bytes]]) -> list[events_pb2.Event]:
    """Summaries for every socket whose counters moved, from a read of the socket table."""
    out = []
    for sk, raw in table_items:
        ev = summarise(dec, sk, parse_sock(raw))
        if ev is not None:
            out.append(ev)
    return out


def _tick(plane, now: int) -> None:
    """Periodic summaries from a read of the socket table (a lifecycle hook)."""
    items = [(int.from_bytes(k, "little"), v[:SOCK.size]) for k, v in plane.items("gew_socks")]
    for ev in periodic(plane.decoder, items):
        plane.decoder.emit(ev)


def ca_state_flags(btf) -> dict[str, int]:
    """Where icsk_ca_state (a bitfield, so not a plain offset) lies in struct tcp_sock:
    bpf/tcp_probe.c reads its byte to compute tcp_current_ssthresh() as the format did."""
    byte, shift, bits = btf.bitfield("tcp_sock", "inet_conn.icsk_ca_state")
    return {"GEW_ICSK_CA_STATE_BYTE": byte, "GEW_ICSK_CA_STATE_SHIFT": shift,
            "GEW_ICSK_CA_STATE_BITS": bits}


# The tcp_sock members read on every segment; read in one piece when they lie within
# SPAN_MAX bytes of each other (one bpf_probe_read_kernel costs about what six reads of
# four bytes cost less five: the call, not the copy, is the price).
TCP_SOCK_FIELDS = ("snd_cwnd", "snd_ssthresh", "snd_wnd", "rcv_wnd", "srtt_us", "tcp_mstamp")
SPAN_MAX = 1024
# TCP_SKB_CB(skb)'s seq, end_seq and tcp_flags are read in one 16-byte piece
CB_READ = 16


def span_flags(btf) -> dict[str, int]:
    """GEW_TP_SPAN_START/LEN/SIZE: the span of struct tcp_sock holding every member the
    per-segment update reads (from an 8-byte boundary); none when it exceeds SPAN_MAX,
    and the C then reads member by member."""
    parts = [(r.offset, r.size) for r in (btf.member("tcp_sock", f) for f in TCP_SOCK_FIELDS)]
    start = min(o for o, _ in parts) // 8 * 8
    length = max(o + n for o, n in parts) - start
    if length > SPAN_MAX:
        return {}
    return {"GEW_TP_SPAN_START": start, "GEW_TP_SPAN_LEN": length, "GEW_TP_SPAN_SIZE": (length + 7) // 8 * 8}


def btf_flags(btf) -> dict[str, int]:
    return {**ca_state_flags(btf), **span_flags(btf)}


def check_layout(btf) -> str | None:
    try:
        ca_state_flags(btf)
    except Exception as e:
        return f"tcp_sock icsk_ca_state: {e}"
    try:
        seq = btf.member("tcp_skb_cb", "seq").offset
        far = max(btf.member("tcp_skb_cb", "end_seq").offset + 4, btf.member("tcp_skb_cb", "tcp_flags").offset + 1)
    except Exception as e:
        return f"tcp_skb_cb: {e}"
    if seq < 0 or far - seq > CB_READ:
        return f"tcp_skb_cb: seq, end_seq and tcp_flags span {far - seq} bytes (read as {CB_READ})"
    return None


UNIT = ProbeUnit(
    name="tcp_probe",
    probe_id=PROBE_ID,
    source="tcp_probe.c",
    summary="per-segment counters per socket in the kernel; summaries, zero-window edges",
    # typed: direct loads where the kernel takes a tp_btf program (no helper call per read)
    programs=(Program("gew_tcp_probe", "tcp", "tcp_probe", raw=True, typed_fn="gew_tcp_probe_typed"),),
    # raw: a raw program is skipped only when it nests in itself (see bpf/tcp_probe.c); what
    # the format computed comes from struct tcp_sock and sk_buff at BTF offsets
    tracepoints=(
        TracepointNeed("tcp", "tcp_probe", raw=True, raw_args=("struct sock *", "const struct sk_buff *")),
    ),
    btf=(
        BtfNeed("tcp_sock", "snd_cwnd", "GEW_OFF_TCP_SND_CWND"),
        BtfNeed("tcp_sock", "snd_ssthresh", "GEW_OFF_TCP_SND_SSTHRESH"),
        BtfNeed("tcp_sock", "snd_wnd", "GEW_OFF_TCP_SND_WND"),
        BtfNeed("tcp_sock", "rcv_wnd", "GEW_OFF_TCP_RCV_WND"),
        BtfNeed("tcp_sock", "srtt_us", "GEW_OFF_TCP_SRTT_US"),
        BtfNeed("tcp_sock", "tcp_mstamp", "GEW_OFF_TCP_MSTAMP"),
        BtfNeed("sock", "__sk_common.skc_cookie", "GEW_OFF_SOCK_COOKIE"),
        BtfNeed("sk_buff", "cb", "GEW_OFF_SKB_CB"),
        BtfNeed("tcp_skb_cb", "seq", "GEW_OFF_TCB_SEQ"),
        BtfNeed("tcp_skb_cb", "end_seq", "GEW_OFF_TCB_END_SEQ"),
        BtfNeed("tcp_skb_cb", "tcp_flags", "GEW_OFF_TCB_FLAGS"),
    ),
    decoders={K_PROBE_ZW: (HDR.size + ZW.size, decode_zero_window)},
    depends=("irqctx", "tcp_state"),
    self_check=check_layout,
    btf_flags=btf_flags,
    tick=_tick,
)
