"""Lifecycle records expanded into the L0 events they stand for.

Place in the pipeline: the capture writes a short connection's lifecycle (its transitions,
owner changes and returns to congestion state Open, held in the kernel and handed over in one
ring-buffer record, bpf/tcp_state.c) as one Event whose body is a ``Lifecycle`` (see
proto/gewyvern/v1/events.proto): a few fields and the kernel's items as they came, so the
capture does per connection what it does per record, not per transition. Every reader, the
recording's and the live engine's, expands such an event here, before anything above the
recording sees it, into exactly the events the per-event path records for the same kernel
facts: the same ids (a lifecycle event with id N stands for N, N+1, ...), times, CPUs,
attribution and bodies, byte for byte (tests/test_lifecycle_wire.py holds both paths
against each other on random records).

Attribution follows the decoder's rule (gewtui.kernel.decode): an item made in process
context is the task's (source PROCESS) and makes the task the socket's owner; any other item
is the socket's owner's (SOCKET_OWNER) when one is known, else nobody's, in the socket's
namespace. The capture states the owner before the first item (``owner``) and the one the
first process-context item makes (``learnt``), so the expansion needs no session state.

A lifecycle from a recording is hostile input like any record: at most MAX_ITEMS items and
counters of their exact size, items whole, addresses and names no longer than a capture
writes them, or ValueError (the reader's undecodable record).

Speed: ``expand`` runs in C (``lifecycle_native.c``, built with the package) for events in
the form the capture writes, checked whole; anything else, and every event when the module
is not built, takes ``expand_reference`` below, the Python expansion that defines the result
(tests/test_lifecycle_native.py holds the two against each other).
"""
from __future__ import annotations

import struct

from gewtui.pb import events_pb2
from gewtui.pbwire import Cache, keys, length, tag, uvarint

# struct gew_life_item (bpf/tcp_state.c): ktime, cpu, aux, sport, dport, kind, ctx, a, b
ITEM = struct.Struct("<QIIHHBBBB")
ITEM_STATE, ITEM_OWNER, ITEM_CONG = 1, 2, 3
CTX_PROCESS = 0
NO_PREVIOUS = 0xFFFFFFFF              # an owner change with no previous owner
VIA = {1: "send", 2: "recv"}          # how a new owner acted on the socket (bpf/owner.c)
MAX_ITEMS = 64
# A capture writes addresses of 4 or 16 bytes and names (a task's, a congestion state's) of at
# most 16 kernel bytes, 48 once decoded with replacement characters; each output event
# repeats them, so a crafted longer one would multiply a record's size by its event count
MAX_ADDR, MAX_NAME = 16, 64

_E = events_pb2.Event
K_ID, K_KTIME, K_CPU, K_ATTR = keys(_E, "id", "ktime_ns", "cpu", "attr")
K_LIFE = tag(_E, "lifecycle")
B_STATE, B_OWNER, B_CONG = keys(_E, "tcp_state", "owner", "cong_state")
T_TUPLE, T_SOCK = keys(events_pb2.TcpStateChange, "tuple", "sock")
S_OLD, S_NEW = keys(events_pb2.TcpStateChange, "old_state", "new_state")
O_PREV, O_COMM, O_VIA = keys(events_pb2.SocketOwner, "previous_tgid", "previous_comm", "via")
C_CA, C_NAME = keys(events_pb2.TcpCongState, "ca_state", "ca_state_name")
for _body in (events_pb2.SocketOwner, events_pb2.TcpCongState):
    if keys(_body, "tuple", "sock") != (T_TUPLE, T_SOCK):
        raise ImportError(f"lifecycle: {_body.__name__} no longer has tuple and sock as fields 1 and 2")
if len(K_ATTR) != 1 or len(K_LIFE) != 2:
    raise ImportError("lifecycle: Event.attr or Event.lifecycle changed its key size")
B_DESTROY, B_PROBE = keys(_E, "destroy", "tcp_probe")
D_COOKIE = tag(events_pb2.SocketDestroy, "sock_cookie")
(P_COOKIE, P_START, P_END, P_SEGS, P_BYTES, P_CWND, P_SSTHRESH, P_SND_WND, P_RCV_WND, P_MIN_WND, P_SRTT,
 P_MAX_SRTT, P_ZW_SEGS) = keys(
    events_pb2.TcpProbeSummary, "sock_cookie", "window_start_ns", "window_end_ns", "segments", "bytes", "snd_cwnd",
    "ssthresh", "snd_wnd", "rcv_wnd", "min_snd_wnd", "srtt_us", "max_srtt_us", "zero_window_segments")
P_ZW_NOW, P_FINAL = (k + b"\x01" for k in keys(events_pb2.TcpProbeSummary, "zero_window_now", "final"))
# a packed repeated field: length-delimited, its varints one after another
P_HIST = uvarint(events_pb2.TcpProbeSummary.DESCRIPTOR.fields_by_name["srtt_log2_hist"].number << 3 | 2)
for _body in (events_pb2.SocketDestroy, events_pb2.TcpProbeSummary):
    if keys(_body, "tuple", "sock") != (T_TUPLE, T_SOCK):
        raise ImportError(f"lifecycle: {_body.__name__} no longer has tuple and sock as fields 1 and 2")
# struct gew_sock (bpf/gew_common.h) as a destroy leaves it: its tuple (skipped), netns, owner
# tgid, cookie, first and last segment times, segments, bytes, zero-window segments, cwnd,
# ssthresh, send and receive windows, the least send window, srtt, most srtt, zero window now,
# TCP state; then the srtt histogram (log2 buckets) and a kernel-only field
COUNTERS = struct.Struct("<40xIIQQQQQQIIIIIIIBB2x")
HIST = struct.Struct("<24I")
COUNTERS_SIZE = COUNTERS.size + HIST.size + 8
_TCP_STATES = frozenset(events_pb2.TcpState.values())
# the fields small values make, ready-made: a CPU; a state change's old and new state (the
# kernel's numbering; a value the proto does not name is left out, as UNSPECIFIED)
_CPUS = [K_CPU + uvarint(c) if c else b"" for c in range(256)]
_OLDS = [S_OLD + uvarint(v) if v and v in _TCP_STATES else b"" for v in range(256)]
_NEWS = [S_NEW + uvarint(v) if v and v in _TCP_STATES else b"" for v in range(256)]
_NONE = events_pb2.ATTRIBUTION_NONE
# where the body's key can be in a capture's lifecycle event: after an id and a time (each a
# varint of at most ten bytes)
_WINDOW = 24


def is_lifecycle(raw: bytes) -> bool:
    """Whether the serialized Event ``raw`` is a lifecycle (cheap for every other event: one
    search of its first bytes, then a walk of its envelope only if that finds the key)."""
    return raw.find(K_LIFE, 2, _WINDOW) >= 0 and _body_key(raw) == K_LIFE


def _body_key(raw: bytes) -> bytes:
    """The key of the first field after the envelope's id, time, CPU and attribution."""
    j, n = 0, len(raw)
    while j < n:
        k = raw[j]
        if k in (0x08, 0x10, 0x18):           # id, ktime_ns, cpu: varints
            j += 1
            while j < n and raw[j] & 0x80:
                j += 1
            j += 1
        elif k == K_ATTR[0]:
            size, j = _varint(raw, j + 1)
            j += size
        else:
            return raw[j:j + 2]
    return b""


def _varint(raw: bytes, j: int) -> tuple[int, int]:
    v = shift = 0
    while j < len(raw) and shift < 64:
        b = raw[j]
        v |= (b & 0x7F) << shift
        j += 1
        if b < 0x80:
            break
        shift += 7
    return v, j


def expand_all(raws: list[bytes]) -> list[bytes]:
    """``raws`` with every lifecycle replaced by the events it stands for (the same list
    when there is none)."""
    out = None
    find = bytes.find
    for i, r in enumerate(raws):
        if find(r, K_LIFE, 2, _WINDOW) >= 0 and _body_key(r) == K_LIFE:
            if out is None:
                out = raws[:i]
            out += expand(r)
        elif out is not None:
            out.append(r)
    return raws if out is None else out


def count(raw: bytes) -> int:
    """How many events the serialized Event ``raw`` stands for."""
    if not is_lifecycle(raw):
        return 1
    life = _E.FromString(raw).lifecycle
    return len(life.items) // ITEM.size + (1 + bool(life.counters) if life.destroyed else 0)


def _attr(msg: events_pb2.Attribution) -> bytes:
    p = msg.SerializeToString()
    return K_ATTR + length(len(p)) + p


# nobody's attribution in a namespace: the same few bytes for every socket there
_NOBODY = Cache(lambda netns: _attr(events_pb2.Attribution(netns=netns, source=_NONE)), 1024)
_BYTES = [bytes((b,)) for b in range(256)]


def _ids(first: int, n: int) -> list[bytes]:
    """The id fields of ``n`` consecutive events from ``first``: while the low seven bits
    do not carry, each is the first's varint with its first byte counted up."""
    v = uvarint(first)
    b0, low = v[0], first & 0x7F
    if low + n <= 0x80:
        tail = v[1:]
        return [K_ID + _BYTES[b0 + i] + tail for i in range(n)]
    return [K_ID + uvarint(first + i) for i in range(n)]


def expand(raw: bytes) -> list[bytes]:
    """The serialized events the lifecycle ``raw`` stands for, in order, each numbered."""
    if _native is not None:
        out = _native(raw)
        if out is not None:
            return out
    return expand_reference(raw)


def expand_reference(raw: bytes) -> list[bytes]:
    """``expand`` in Python: what the C walk must give, and what takes any event it declines."""
    ev = _E.FromString(raw)
    life = ev.lifecycle
    items = life.items
    n, rest = divmod(len(items), ITEM.size)
    if rest or n > MAX_ITEMS:
        raise ValueError(f"lifecycle record with {len(items)} item bytes")
    first = ev.id
    _check_sizes(life)
    tup = life.tuple
    tuple_p = tup.SerializeToString()
    tuple_f = T_TUPLE + length(len(tuple_p)) + tuple_p
    tuples = {(tup.sport, tup.dport): tuple_f}
    sock_f = T_SOCK + uvarint(life.sock) if life.sock else b""
    task = _attr(life.task) if life.HasField("task") else None
    owner, who = (_attr(life.owner), life.owner) if life.HasField("owner") else (None, None)
    learnt = (_attr(life.learnt), life.learnt) if life.HasField("learnt") else None
    nobody = _NOBODY[life.netns]
    names = life.ca_state_names
    out: list[bytes] = []
    ids = _ids(first, n)
    unpack = ITEM.unpack_from
    cpus, olds, news = _CPUS, _OLDS, _NEWS
    for i in range(n):
        ktime, cpu, aux, sport, dport, kind, ctx, a, b = unpack(items, i * ITEM.size)
        previous = who
        if ctx == CTX_PROCESS and task is not None:
            attr = task
            if learnt is not None:
                owner, who = learnt
                learnt = None
        else:
            attr = owner if owner is not None else nobody
        t = tuples.get((sport, dport))
        if t is None:
            t2 = events_pb2.Tuple()
            t2.CopyFrom(tup)
            t2.sport, t2.dport = sport, dport
            p = t2.SerializeToString()
            t = tuples[(sport, dport)] = T_TUPLE + length(len(p)) + p
        if kind == ITEM_STATE:
            body = t + sock_f + olds[a] + news[b]
            key = B_STATE
        elif kind == ITEM_OWNER:
            prev_tgid = aux if aux != NO_PREVIOUS else 0
            body = t + sock_f + (O_PREV + uvarint(prev_tgid) if prev_tgid else b"")
            if previous is not None and previous.tgid == prev_tgid and previous.comm:
                comm = previous.comm.encode("utf-8")
                body += O_COMM + length(len(comm)) + comm
            via = VIA.get(a, str(a)).encode()
            body += O_VIA + length(len(via)) + via
            key = B_OWNER
        elif kind == ITEM_CONG:
            name = (names[a] if a < len(names) else str(a)).encode("utf-8")
            body = t + sock_f + (C_CA + uvarint(a) if a else b"") + (C_NAME + length(len(name)) + name if name else b"")
            key = B_CONG
        else:
            raise ValueError(f"lifecycle item kind {kind}")
        out.append(ids[i] + (K_KTIME + uvarint(ktime) if ktime else b"")
                   + (cpus[cpu] if cpu < 256 else K_CPU + uvarint(cpu)) + attr + key + length(len(body)) + body)
    if life.destroyed:
        out += _destroy(ev, life, first + n, sock_f, owner, nobody_in=life.final_netns)
    return out


def _check_sizes(life: events_pb2.Lifecycle) -> None:
    """Refuse addresses and names longer than a capture writes (see MAX_ADDR)."""
    addrs = (life.tuple.saddr, life.tuple.daddr, life.final_tuple.saddr, life.final_tuple.daddr)
    names = [getattr(life, k).comm for k in ("task", "owner", "learnt", "closer")] + list(life.ca_state_names)
    if max(map(len, addrs)) > MAX_ADDR or any(len(n.encode("utf-8")) > MAX_NAME for n in names):
        raise ValueError("lifecycle record with an address or a name longer than a capture writes")


def _destroy(ev: events_pb2.Event, life: events_pb2.Lifecycle, next_id: int, sock_f: bytes,
             owner: bytes | None, nobody_in: int) -> list[bytes]:
    """The socket's destroy and, with ``counters``, its final summary: what the per-event
    path's destroy record makes (gewtui.kernel.probes.tcp_state, tcp_probe.summarise)."""
    if life.HasField("closer"):
        attr = _attr(life.closer)
    else:
        attr = owner if owner is not None else _NOBODY[nobody_in]
    env_tail = ((K_KTIME + uvarint(ev.ktime_ns) if ev.ktime_ns else b"") + (K_CPU + uvarint(ev.cpu) if ev.cpu else b"")
                + attr)
    ft = life.final_tuple.SerializeToString()
    tuple_f = T_TUPLE + length(len(ft)) + ft
    cookie = life.cookie
    body = tuple_f + sock_f + (D_COOKIE + uvarint(cookie) if cookie else b"")
    out = [K_ID + uvarint(next_id) + env_tail + B_DESTROY + length(len(body)) + body]
    raw = life.counters
    if not raw:
        return out
    if len(raw) != COUNTERS_SIZE:
        raise ValueError(f"lifecycle record with {len(raw)} bytes of counters")
    (_, _, s_cookie, start, end, segs, nbytes, zws, cwnd, ssth, swnd, rwnd, minw, srtt, maxsrtt, zw,
     _) = COUNTERS.unpack_from(raw, 0)
    hist = HIST.unpack_from(raw, COUNTERS.size)
    if life.prior:
        start = life.prior_end_ns
        segs, nbytes = max(segs - life.prior_segments, 0), max(nbytes - life.prior_bytes, 0)
        zws = max(zws - life.prior_zw_segments, 0)
        prev = life.prior_hist
        buckets = [max(c - (prev[i] if i < len(prev) else 0), 0) for i, c in enumerate(hist)] if any(hist) else []
    else:
        buckets = list(hist)
    while buckets and not buckets[-1]:
        buckets.pop()
    c = cookie or s_cookie
    if minw == 0xFFFFFFFF:
        minw = 0
    body = [tuple_f, sock_f]
    for key, v in ((P_COOKIE, c), (P_START, start), (P_END, end), (P_SEGS, segs), (P_BYTES, nbytes), (P_CWND, cwnd),
                   (P_SSTHRESH, ssth), (P_SND_WND, swnd), (P_RCV_WND, rwnd), (P_MIN_WND, minw), (P_SRTT, srtt),
                   (P_MAX_SRTT, maxsrtt), (P_ZW_SEGS, zws)):
        if v:
            body.append(key + uvarint(v))
    if zw:
        body.append(P_ZW_NOW)
    body.append(P_FINAL)
    if buckets:
        packed = b"".join(map(uvarint, buckets))
        body.append(P_HIST + length(len(packed)) + packed)
    b = b"".join(body)
    out.append(K_ID + uvarint(next_id + 1) + env_tail + B_PROBE + length(len(b)) + b)
    return out


def _load_native():
    try:
        from gewtui.recording.lifecycle_native import configure, expand as native
    except ImportError:
        return None          # not built (a source tree run without installing): the reference
    configure(bytes(1 if v and v in _TCP_STATES else 0 for v in range(256)), _NONE)
    return native


_native = _load_native()
# whether expand runs in C (gew's --version and the tests say so)
NATIVE = _native is not None
