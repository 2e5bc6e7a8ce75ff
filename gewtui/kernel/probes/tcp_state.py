"""tcp_state unit: TCP state changes, socket destruction (with the final tcp_probe
summary) and congestion-state changes. Also maintains the in-scope socket table the other
TCP units look sockets up in. Layouts mirror bpf/tcp_state.c.

With the lifecycle on (the default), a socket's transitions, owner changes and returns to
congestion state Open are held in the kernel and cross as one K_LIFE record, at its destroy
or earlier (bpf/tcp_state.c says when). ``decode_life`` expands it into exactly the events
the per-event records would have made: each held item is rebuilt as the record its
per-event path emits (same header, same body) and decoded by that kind's own decoder, so
no field mapping is written twice and both paths agree by construction.
"""
from __future__ import annotations

import struct
from typing import Iterable

from gewtui.kernel import wire
from gewtui.kernel.probes import owner, tcp_probe, typed
from gewtui.kernel.probes.base import (C_RACED, C_STRIDE, CTX_PROCESS, HDR, INET_TUPLE_BTF, SOCK, TUPLE, Header,
                                      Program, ProbeUnit, fill_tuple, parse_sock)
from gewtui.pb import events_pb2
from gewtui.recording import lifecycle
from gewtui.runtime.capabilities import BtfNeed, TracepointNeed

PROBE_ID = 1
K_STATE, K_DESTROY, K_CONG = 1, 2, 3
K_LIFE = 14

# after the header: tuple, sk, netns, oldstate, newstate, pad[2]
STATE = struct.Struct(f"<{TUPLE.size}sQIBBxx")
# after the header: sk, cookie, struct gew_sock
DESTROY = struct.Struct(f"<QQ{SOCK.size}s")
# after the header: tuple, sk, netns, ca_state, pad[3]
CONG = struct.Struct(f"<{TUPLE.size}sQIBxxx")

# Lifecycle (GEW_LIFECYCLE): struct gew_life_item, gew_life_task, gew_life, gew_rec_life.
LIFE_ITEMS = 8                               # GEW_LIFE_ITEMS
LIFE_STATE, LIFE_OWNER, LIFE_CONG = lifecycle.ITEM_STATE, lifecycle.ITEM_OWNER, lifecycle.ITEM_CONG
# ktime, cpu, aux (previous owner), sport, dport, kind, ctx, a, b: the layout every reader
# of a Lifecycle event reads (gewtui.recording.lifecycle)
LIFE_ITEM = lifecycle.ITEM
# pid, tgid, uid, netns, cgroup, comm
LIFE_TASK = struct.Struct("<IIIIQ16s")
# n, seq, netns, has_task, pad[3], task, tuple, items, added (the kernel's own check), pad,
# busy (the entry's lock)
LIFE = struct.Struct(f"<IIIB3x{LIFE_TASK.size}s{TUPLE.size}s{LIFE_ITEMS * LIFE_ITEM.size}s4x4x8x")
LIFE_TAIL = 16                               # added, pad, busy: after the items
LIFE_ITEMS_AT = LIFE.size - LIFE_TAIL - LIFE_ITEMS * LIFE_ITEM.size   # offset of items[0] in struct gew_life
# after the header: sk, cookie, final, why, pad[6], struct gew_life, struct gew_sock
REC_LIFE = struct.Struct(f"<QQBB6x{LIFE.size}s{SOCK.size}s")
LIFE_WHY = {1: "close", 2: "full", 3: "task", 4: "addresses", 5: "anomaly", 6: "asked", 7: "new-life", 8: "first"}
_NO_TASK = (0, 0, 0, 0, 0, bytes(16))


_TCP_STATES = frozenset(events_pb2.TcpState.values())


def _state(v: int) -> int:
    # the proto numbers TCP states as the kernel does; unknown values map to UNSPECIFIED
    return v if v in _TCP_STATES else events_pb2.TCP_STATE_UNSPECIFIED


_CLOSE, _LISTEN, _SYN_RECV = events_pb2.TCP_CLOSE, events_pb2.TCP_LISTEN, events_pb2.TCP_SYN_RECV


def born(old: int, new: int) -> bool:
    """Whether a transition begins a new life at the socket's address (the rule of
    gewtui.model.identity.born: out of CLOSE, or a listener's child LISTEN -> SYN_RECV).
    Either way a new socket id: the address may have been freed and reused since the
    kernel last named it (after a destroy, a drop on the dying socket can name it once
    more)."""
    return old == _CLOSE or (old == _LISTEN and new == _SYN_RECV)


def decode_state(dec, hdr: Header, buf: bytes) -> Iterable[events_pb2.Event]:
    t, sk, netns, old, new = STATE.unpack_from(buf, HDR.size)
    if born(old, new):
        dec.renew_socket(sk)    # a new life at this address: a new socket id
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


def fast(enc) -> dict:
    """Fast encoders for K_STATE, K_CONG and K_DESTROY (see gewtui.kernel.wire)."""
    dec = enc.dec
    v = dec.vocab
    env, forget, sid, renew, live = (dec.envelope_bytes, dec.forget_socket, dec.sock_id, dec.renew_socket,
                                     dec.live_sock_id)
    tuples, socks, length = enc.tuples, enc.socks, wire.length
    old_states, new_states = _state_fields(S_OLD), _state_fields(S_NEW)
    ca_fields = wire.Cache(lambda c: wire.opt(C_CA, c) + wire.string_field(C_NAME, v.ca_states.get(c, str(c))),
                           1024)
    summaries = tcp_probe.PROBE_ID in dec.unit_names
    unpack_state, unpack_cong, unpack_destroy, at = STATE.unpack_from, CONG.unpack_from, _DESTROY.unpack_from, HDR.size
    def state(h: tuple, buf: bytes) -> bytes:
        t, sk, netns, old, new = unpack_state(buf, at)
        if born(old, new):
            renew(sk)       # a new life at this address: a new socket id
        body = tuples[t] + socks[live(sk)] + old_states[old] + new_states[new]
        return env(h, sk, netns) + B_STATE + length(len(body)) + body

    def cong(h: tuple, buf: bytes) -> bytes:
        t, sk, netns, ca = unpack_cong(buf, at)
        body = tuples[t] + socks[sid(sk)] + ca_fields[ca]
        return env(h, sk, netns) + B_CONG + length(len(body)) + body

    final_summary = tcp_probe.final_encoder(enc) if summaries else None

    def destroy(h: tuple, buf: bytes) -> bytes | list:
        sk, cookie, t, netns, segments = unpack_destroy(buf, at)
        e, s = env(h, sk, netns, False), sid(sk)
        body = tuples[t] + socks[s] + (D_COOKIE + wire.uvarint(cookie) if cookie else b"")
        out = e + B_DESTROY + length(len(body)) + body
        forget(sk)
        if segments and final_summary is not None:
            # and the socket's final tcp_probe summary (same envelope): two events, numbered
            # in this order by the decoder
            return [(h[0], out), (h[0], final_summary(e, sk, s, cookie, buf, _DESTROY_SOCK))]
        return out

    return {K_STATE: state, K_CONG: cong, K_DESTROY: destroy,
            K_LIFE: _native_encoder(enc) or _life_encoder(enc)}


def _state_fields(key: bytes) -> wire.Cache:
    return wire.Cache(lambda v: wire.opt(key, _state(v)), 1024)


B_STATE, B_CONG, B_DESTROY = wire.keys(events_pb2.Event, "tcp_state", "cong_state", "destroy")
S_OLD, S_NEW = wire.keys(events_pb2.TcpStateChange, "old_state", "new_state")
C_CA, C_NAME = wire.keys(events_pb2.TcpCongState, "ca_state", "ca_state_name")
D_COOKIE = wire.tag(events_pb2.SocketDestroy, "sock_cookie")
# destroy, as the fast path reads it: sk, cookie, then from struct gew_sock its tuple, netns
# and (after owner, cookie, first_ns, last_ns) its segment count
_DESTROY = struct.Struct(f"<QQ{TUPLE.size}sI28xQ{SOCK.size - TUPLE.size - 4 - 28 - 8}x")
_DESTROY_SOCK = HDR.size + 16   # where a destroy record's struct gew_sock begins (after sk, cookie)
if _DESTROY.size != DESTROY.size:
    raise ImportError("tcp_state: the fast destroy layout no longer matches DESTROY")


def _life_encoder(enc):
    """K_LIFE on the capture's path (the decoder hands over bytes): the record as one
    ``Lifecycle`` event, its items as the kernel laid them out, returned as ``(count,
    payload)``: the decoder numbers it for the ``count`` events it stands for, which every
    reader expands (gewtui.recording.lifecycle). So a short connection costs the capture
    two records' work, not one per transition. It returns None, and ``decode_life`` runs
    item by item, for a record whose items the kernel delivered before in part or where a
    new life begins after the first item (both rare), and when the events are wanted as
    objects (no ``raw_sink``)."""
    dec = enc.dec
    tuples, length = enc.tuples, wire.length
    owners, task_attr, task_owner = dec.owners, dec._task_attr, dec._task_owner
    sid, live, renew = dec.sock_id, dec.live_sock_id, dec.renew_socket
    unpack_task = LIFE_TASK.unpack_from
    uvarint, at, item_size = wire.uvarint, HDR.size, LIFE_ITEM.size
    names = _names_block(dec.vocab.ca_states)
    state, close, listen = bytes((LIFE_STATE,)), bytes((events_pb2.TCP_CLOSE,)), bytes((events_pb2.TCP_LISTEN,))

    seen: dict[int, int] = dec.unit_state("tcp_state.life")
    windows = dec.unit_state("tcp_probe")          # the socket's last summary window, if any
    summaries, forget, cpus, process = tcp_probe.PROBE_ID in dec.unit_names, dec.forget_socket, dec._cpu, CTX_PROCESS
    final_head, sock_end = _FINAL_HEAD.unpack_from, _SOCK_AT + SOCK.size
    counters_len = length(SOCK.size)
    netns_f = wire.field_cache(L_NETNS, limit=1024)
    head, task_at, tup_at, items_at, sock_at = _REC_HEAD.unpack_from, _TASK_AT, _TUP_AT, _ITEMS_AT, _SOCK_AT
    tup_end = tup_at + TUPLE.size

    def life(h: tuple, buf: bytes) -> tuple | list | None:
        if dec.raw_sink is None:
            return None
        # the fields it needs, read where they lie (no copy of the whole entry)
        sk, cookie, final, _why, n, seq, netns, has_task = head(buf, at)
        if n > LIFE_ITEMS:
            raise ValueError(f"lifecycle record holds {n} items (at most {LIFE_ITEMS})")
        held = buf[items_at:items_at + n * item_size]
        olds = held[LIFE_A_AT::item_size]
        if (seq and seen.get(sk, 0) > seq) or olds.find(close, 1) >= 0 or olds.find(listen, 1) >= 0:
            return None      # rare (a new life after the first item, a listener's close): decode_life, item by item
        if not n and not final:
            seen[sk] = seq
            return []
        if n:
            kinds = held[LIFE_KIND_AT::item_size]
            if held[LIFE_KIND_AT] == LIFE_STATE and born(olds[0], held[LIFE_B_AT]):
                renew(sk)        # a new life at this address: a new socket id
            # a socket with a state change keeps its id until its destroy
            sock_id = live(sk) if state in kinds else sid(sk)
        else:
            sock_id = sid(sk) if final else 0
        o = owners.get(sk)
        # (a new socket id each connection: encoded, not cached)
        body = tuples[buf[tup_at:tup_end]] + (S_SOCK + uvarint(sock_id) if sock_id else b"") + netns_f[netns]
        if has_task:
            key = unpack_task(buf, task_at)
            if key[1]:
                body += L_TASK + task_attr[key][1:]
        else:
            key = None
        if o is not None:
            body += L_OWNER + o.attr_field[1:]
        if key is not None and key[1] and 0 in held[LIFE_CTX_AT::item_size]:
            # its first item in process context makes the task the socket's owner
            if o is None or o.tgid != key[1] or o.pid != key[0]:
                o = owners[sk] = task_owner[key]
                body += L_LEARNT + o.attr_field[1:]
        if n:
            body += L_ITEMS + length(len(held)) + held
        body += names
        count = n
        if final:
            # its destroy and final summary: the fields they need, the counters as they came
            seen.pop(sk, None)
            s_tuple, s_netns, segments = final_head(buf, sock_at)
            body += L_DESTROYED + (L_CLOSER + task_attr[h[5:]][1:] if h[2] == process and h[6] else b"")
            body += (L_FTUPLE + tuples[s_tuple][1:] + (L_FNETNS + uvarint(s_netns) if s_netns else b"")
                     + (L_COOKIE + uvarint(cookie) if cookie else b""))
            count += 1
            if segments and summaries:
                body += L_COUNTERS + counters_len + buf[sock_at:sock_end]
                w = windows.pop(sk, None)
                if w is not None:
                    body += (L_PRIOR + (L_PEND + uvarint(w.end_ns) if w.end_ns else b"")
                             + (L_PSEGS + uvarint(w.segments) if w.segments else b"")
                             + (L_PBYTES + uvarint(w.bytes) if w.bytes else b"")
                             + (L_PZWS + uvarint(w.zw_segments) if w.zw_segments else b""))
                    if w.hist:
                        packed = b"".join(map(uvarint, w.hist))
                        body += L_PHIST + length(len(packed)) + packed
                count += 1
            forget(sk)
        else:
            seen[sk] = seq + n
        if not count:
            return []
        return count, cpus[h[4]] + lifecycle.K_LIFE + length(len(body)) + body

    return life


def _names_block(ca: dict[int, str]) -> bytes:
    """The Lifecycle's ca_state_names field, every value up to the largest the kernel names."""
    return b"".join(wire.ld(L_NAMES, ca.get(i, str(i)).encode("utf-8")) for i in range(max(ca) + 1)) if ca else b""


def _native_encoder(enc):
    """``_life_encoder``'s function in C (tcp_state_native.c), over the same decoder state,
    keys and layouts, handed over here; None where the extension is not built (the Python
    encoder then runs, as it does in the tests that hold the two against each other)."""
    try:
        from gewtui.kernel.probes.tcp_state_native import encoder
    except ImportError:
        return None
    dec = enc.dec
    sk, cookie, final, _why, n, seq, netns, has_task = wire.offsets(_REC_HEAD)
    pid, tgid, uid, tnetns, cgroup, comm = wire.offsets(LIFE_TASK)
    _tuple, final_netns, final_segments = wire.offsets(_FINAL_HEAD)
    at = HDR.size
    objects = dict(dec=dec, seen=dec.unit_state("tcp_state.life"), windows=dec.unit_state("tcp_probe"),
                   owners=dec.owners, task_attr=dec._task_attr, task_owner=dec._task_owner, cpus=dec._cpu,
                   sid=dec.sock_id, live=dec.live_sock_id, renew=dec.renew_socket, forget=dec.forget_socket,
                   born=born)
    tuple_keys, tuple_layout = wire.native_tuple()
    keys = dict(tuple=wire.TUPLE1, **tuple_keys, netns=L_NETNS,
                sock=S_SOCK, task=L_TASK, owner=L_OWNER, learnt=L_LEARNT, items=L_ITEMS,
                names=_names_block(dec.vocab.ca_states),
                destroyed=L_DESTROYED, closer=L_CLOSER, ftuple=L_FTUPLE, fnetns=L_FNETNS, cookie=L_COOKIE,
                counters=L_COUNTERS, prior=L_PRIOR, pend=L_PEND, psegs=L_PSEGS, pbytes=L_PBYTES, pzws=L_PZWS,
                phist=L_PHIST, life=lifecycle.K_LIFE)
    layout = dict(size=HDR.size + REC_LIFE.size, sk_at=at + sk, cookie_at=at + cookie, final_at=at + final,
                  n_at=at + n, seq_at=at + seq, netns_at=at + netns, has_task_at=at + has_task, task_at=_TASK_AT,
                  pid_at=pid, tgid_at=tgid, uid_at=uid, tnetns_at=tnetns, cgroup_at=cgroup, comm_at=comm,
                  comm_size=LIFE_TASK.size - comm, **tuple_layout, tup_at=_TUP_AT, items_at=_ITEMS_AT,
                  item_size=LIFE_ITEM.size, max_items=LIFE_ITEMS, kind_at=LIFE_KIND_AT, ctx_at=LIFE_CTX_AT,
                  a_at=LIFE_A_AT, b_at=LIFE_B_AT, sock_at=_SOCK_AT, sock_size=SOCK.size,
                  final_netns_at=final_netns, final_segments_at=final_segments, life_state=LIFE_STATE,
                  tcp_close=events_pb2.TCP_CLOSE, tcp_listen=events_pb2.TCP_LISTEN, ctx_process=CTX_PROCESS,
                  summaries=tcp_probe.PROBE_ID in dec.unit_names)
    return encoder(objects, keys, layout)


S_SOCK = wire.S_SOCK
L_NETNS, L_ITEMS, L_NAMES = wire.keys(events_pb2.Lifecycle, "netns", "items", "ca_state_names")
L_TASK, L_OWNER, L_LEARNT = wire.keys(events_pb2.Lifecycle, "task", "owner", "learnt")
L_CLOSER, L_FTUPLE, L_FNETNS, L_COOKIE, L_COUNTERS, L_PEND, L_PSEGS, L_PBYTES, L_PZWS = wire.keys(
    events_pb2.Lifecycle, "closer", "final_tuple", "final_netns", "cookie", "counters", "prior_end_ns",
    "prior_segments", "prior_bytes", "prior_zw_segments")
# a packed repeated field (proto3's default): length-delimited, its varints one after another
L_PHIST = wire.uvarint(events_pb2.Lifecycle.DESCRIPTOR.fields_by_name["prior_hist"].number << 3 | 2)
L_DESTROYED, L_PRIOR = (k + b"\x01" for k in wire.keys(events_pb2.Lifecycle, "destroyed", "prior"))
if SOCK.size != lifecycle.COUNTERS_SIZE:
    raise ImportError("tcp_state: struct gew_sock no longer matches the lifecycle's COUNTERS")
# from struct gew_sock: its tuple, netns, then (after owner, cookie, first_ns, last_ns) segments
_FINAL_HEAD = struct.Struct(f"<{TUPLE.size}sI28xQ")
if wire.keys(events_pb2.Lifecycle, "tuple", "sock") != (wire.TUPLE1, wire.S_SOCK):
    raise ImportError("tcp_state: Lifecycle no longer has tuple and sock as fields 1 and 2")
# offsets of kind, ctx and a in struct gew_life_item
LIFE_KIND_AT, LIFE_CTX_AT, LIFE_A_AT, LIFE_B_AT = 20, 21, 22, 23
# struct gew_rec_life read in place: sk, cookie, final, why, then gew_life's n, seq, netns,
# has_task; where its task, tuple, items and gew_sock lie in the record
_REC_HEAD = struct.Struct("<QQBB6xIIIB3x")
_TASK_AT = HDR.size + _REC_HEAD.size
_TUP_AT = _TASK_AT + LIFE_TASK.size
_ITEMS_AT = _TUP_AT + TUPLE.size
_SOCK_AT = HDR.size + REC_LIFE.size - SOCK.size
if _ITEMS_AT != HDR.size + 24 + LIFE_ITEMS_AT or _SOCK_AT != _ITEMS_AT + LIFE_ITEMS * LIFE_ITEM.size + LIFE_TAIL:
    raise ImportError("tcp_state: the lifecycle record's offsets no longer match REC_LIFE")




def decode_life(dec, hdr: Header, buf: bytes) -> list[events_pb2.Event]:
    """A lifecycle record: its held items in order, then (final) the socket's destroy and
    last tcp_probe summary, each decoded from the per-event record it stands for."""
    sk, cookie, final, _why, life, sock = REC_LIFE.unpack_from(buf, HDR.size)
    n, seq, netns, has_task, task, tup, items = LIFE.unpack(life)
    if n > LIFE_ITEMS:
        raise ValueError(f"lifecycle record holds {n} items (at most {LIFE_ITEMS})")
    # items are numbered per socket life: a flush userspace asked for may race one the
    # kernel made, and an item seen twice is dropped here
    seen: dict[int, int] = dec.unit_state("tcp_state.life")
    skip = 0 if seq == 0 else max(0, seen.get(sk, 0) - seq)
    task_fields = LIFE_TASK.unpack(task) if has_task else _NO_TASK
    saddr, daddr, _, _, family, protocol = TUPLE.unpack(tup)
    pack_hdr, pack_tuple = HDR.pack, TUPLE.pack
    out: list[events_pb2.Event] = []
    for i in range(skip, n):
        ktime, cpu, aux, sport, dport, kind, ctx, a, b = LIFE_ITEM.unpack_from(items, i * LIFE_ITEM.size)
        who = task_fields if ctx == CTX_PROCESS else _NO_TASK
        t = pack_tuple(saddr, daddr, sport, dport, family, protocol)
        if kind == LIFE_STATE:
            rec = pack_hdr(ktime, K_STATE, ctx, PROBE_ID, cpu, *who) + STATE.pack(t, sk, netns, a, b)
        elif kind == LIFE_OWNER:
            rec = (pack_hdr(ktime, owner.K_OWNER, ctx, owner.PROBE_ID, cpu, *who)
                   + owner.OWNER.pack(t, sk, netns, aux, a))
        elif kind == LIFE_CONG:
            rec = pack_hdr(ktime, K_CONG, ctx, PROBE_ID, cpu, *who) + CONG.pack(t, sk, netns, a)
        else:
            raise ValueError(f"lifecycle item kind {kind}")
        out.extend(dec.expand(rec))
    if final:
        seen.pop(sk, None)
        rec = pack_hdr(hdr.ktime_ns, K_DESTROY, *hdr[2:]) + DESTROY.pack(sk, cookie, sock)
        out.extend(dec.expand(rec))
    else:
        seen[sk] = seq + n
    return out


decode_life.sock_ids = True   # its events come from dec.expand, ids already in place

# -- lifecycle hooks (see base.ProbeUnit) --------------------------------------------------
LIFE_MAPS = ("gew_life", "gew_life_zero")
# gew_life's item count and its first item's time; gew_sock's segment count (after tuple,
# netns, owner, cookie, first_ns, last_ns)
_LIFE_HEAD = struct.Struct(f"<I{LIFE_ITEMS_AT - 4}xQ").unpack_from
# n, seq and (at the entry's end) the atomic count of the items it held
_LIFE_COUNTS = struct.Struct(f"<II{LIFE.size - 8 - LIFE_TAIL}xI{LIFE_TAIL - 4}x").unpack_from
_SOCK_SEGMENTS = struct.Struct(f"<{TUPLE.size}xIIQQQQ").unpack_from


def _maps(config) -> tuple[str, ...]:
    return LIFE_MAPS if config.lifecycle else ()


def _cflags(config) -> dict[str, int]:
    return {"GEW_LIFECYCLE": int(config.lifecycle), "GEW_MAX_LIFE": config.max_life or config.max_socks}


def _start(plane) -> None:
    if plane.config.lifecycle:
        # loaded, never attached: run on request (_ask)
        plane.unit_data("tcp_state")["asked"] = plane.load_helper("gew_life_asked", "tcp_state")


def _ask(plane, now: int, everything: bool = False) -> None:
    """Have the kernel hand over what sockets hold in their lifecycle entries when it is
    older than ``life_hold_ms`` (a long connection then shows live), when a summary of the
    socket is about to be made (its transitions come first; units tick in UNITS order, this
    one before tcp_probe) or, ``everything``, before the tables are reset and at the
    session's last tick; then decode those records at once."""
    fd = plane.unit_data("tcp_state").get("asked")
    if fd is None or plane.state not in ("attached", "stopped"):
        return
    # stopped: the programs are off their tracepoints and the session's last tick runs; what
    # open sockets still hold crosses now or never
    everything = everything or plane.state == "stopped"
    hold = plane.config.life_hold_ms * 1_000_000
    active = set()
    if not everything and tcp_probe.UNIT.name in plane.units:
        active = {k for k, v in plane.items("gew_socks") if _SOCK_SEGMENTS(v, 0)[-1]}
    asked = 0
    for k, v in plane.items("gew_life"):
        n, first_ktime = _LIFE_HEAD(v, 0)
        if n and (everything or now - first_ktime >= hold or k in active):
            typed.run_raw(fd, int.from_bytes(k, "little"))
            asked += 1
            if not asked % 1024:
                plane.drain()     # many sockets at once: the ring buffer must not fill
    if asked:
        plane.drain()
    if plane.state == "stopped":
        _count_left(plane)


def _count_left(plane) -> None:
    """Before the entries go with the session (or a rescope clears them): the kernel's own
    check (gew_life_end) for lives that outlast the entries. Each entry's atomic count of
    its items is held against the items that crossed, and any item still held (added after
    the hand-over) is about to be dropped; both are counted as the kernel counts a race
    (GEW_C_RACED, on the first CPU's slot), so the next loss accounting reports them."""
    left = 0
    for _k, v in plane.items("gew_life"):
        n, seq, added = _LIFE_COUNTS(v, 0)
        d = (added - seq - n) & 0xFFFFFFFF        # u32 counters, as the kernel keeps them
        left += n + min(d, 0x100000000 - d)
    if left:
        t = plane.table("gew_counters")
        key = t.Key(PROBE_ID * C_STRIDE + C_RACED)
        per_cpu = t.getvalue(key)
        per_cpu[0] += left
        t[key] = per_cpu


def _rescope(plane) -> None:
    if plane.config.lifecycle:
        _ask(plane, 0, everything=True)
        _count_left(plane)
        plane.table("gew_life").clear()


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
        K_LIFE: (HDR.size + REC_LIFE.size, decode_life),
    },
    fast=fast,
    maps=_maps,
    cflags=_cflags,
    start=_start,
    tick=_ask,
    rescope=_rescope,
    depends=("irqctx",),
)
