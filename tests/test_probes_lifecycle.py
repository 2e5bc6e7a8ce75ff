"""Lifecycle records on the real kernel (bpf/tcp_state.c, GEW_LIFECYCLE): a socket's
transitions held in the kernel and handed over as one record expand to exactly the events
the per-event path makes for the same connections (both planes attached at once, on the
same traffic); a lifecycle entry that does not fit is a counted loss that makes the
session incomplete; a long connection shows live; sockets are named by opaque ids.
"""
from __future__ import annotations

import collections
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from gewtui.kernel.probes import DEFAULT
from gewtui.pb import events_pb2
from tests.support.probes_support import body, entered, free_port, require_root, running_plane, veth_pair

E = events_pb2
KERNEL_ADDRESS = 0xFFFF800000000000
LIFE_KINDS = ("tcp_state", "owner", "cong_state", "destroy")


def _listener(net, port: int) -> socket.socket:
    with entered(net.b):
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((net.ip_b, port))
        srv.listen(64)
    return srv


def _serve(net, port: int, n: int, hold: float = 0.0) -> tuple[socket.socket, threading.Thread]:
    srv = _listener(net, port)

    def run():
        for _ in range(n):
            c, _ = srv.accept()
            c.recv(16)
            c.sendall(b"pong")
            if hold:
                time.sleep(hold)
            c.close()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return srv, th


def _short_connections(net, port: int, n: int) -> None:
    with entered(net.a):
        for _ in range(n):
            k = socket.create_connection((net.ip_b, port), timeout=5)
            k.sendall(b"ping")
            k.recv(16)
            k.close()


def _refused(net, port: int) -> None:
    with entered(net.a), pytest.raises(ConnectionRefusedError):
        socket.create_connection((net.ip_b, port), timeout=5).close()


@contextlib.contextmanager
def _held(tag: str, subnet: int, n: int = 1):
    """A lifecycle plane with no summary tick (whose hand-overs would order and empty the
    entries too) and ``n`` connections left open: (collector, net, clients, accepted,
    port, the first client's key in gew_socks). Everything closed on every path."""
    from gewtui.kernel.plane import PlaneConfig

    with veth_pair(tag, subnet) as net:
        cfg = PlaneConfig(lifecycle=True, summary_interval_ms=60_000, life_hold_ms=60_000)
        with running_plane(DEFAULT, net, cfg) as c:
            port = free_port()
            srv = _listener(net, port)
            ks, accepted = [], []
            try:
                with entered(net.a):
                    ks += [socket.create_connection((net.ip_b, port), timeout=5) for _ in range(n)]
                accepted += [srv.accept()[0] for _ in range(n)]
                c.settle(0.3)
                sport = ks[0].getsockname()[1]
                key = [k for k, v in c.plane.table("gew_socks").items() if v.t.sport == sport and v.t.dport == port]
                assert len(key) == 1, "the client's socket is not in the table"
                yield c, net, ks, accepted, port, key[0]
            finally:
                for s in ks + accepted + [srv]:
                    s.close()


def _lives(events) -> dict[tuple, list[tuple]]:
    """Per connection (family, local, remote address and port as the last state change
    saw them): its lifecycle events in order, each as what it says, without its id, its
    kernel time (each plane reads the clock itself) or its socket id."""
    by_sock: dict[int, list] = collections.defaultdict(list)
    for ev in events:
        k = body(ev)
        if k not in LIFE_KINDS:
            continue
        b = getattr(ev, k)
        if k == "cong_state" and b.ca_state != 0:
            continue          # anomalies cross at once on both paths
        by_sock[b.sock].append(ev)
    out = {}
    for evs in by_sock.values():
        last = [e.tcp_state.tuple for e in evs if body(e) == "tcp_state"][-1]
        key = (last.family, last.saddr, last.sport, last.daddr, last.dport)
        rows = []
        for e in evs:
            k = body(e)
            b = getattr(e, k)
            a = e.attr
            what = {"tcp_state": lambda: (b.old_state, b.new_state),
                    "owner": lambda: (b.previous_tgid, b.previous_comm, b.via),
                    "cong_state": lambda: (b.ca_state, b.ca_state_name),
                    "destroy": lambda: (b.sock_cookie,)}[k]()
            rows.append((k, what, b.tuple.SerializeToString(), e.cpu, a.source, a.pid, a.tgid, a.comm, a.uid,
                         a.cgroup_id, a.netns))
        out.setdefault(key, []).append((rows, [e.ktime_ns for e in evs]))
    return out


def _flows(events) -> list[tuple]:
    """What the flow engine concludes from a stream, less ids and times."""
    from gewtui.model.engine import Engine

    eng = Engine()
    for ev in events:
        eng.feed(ev)
    # each plane ends at its own moment: one last event well past every silence window
    # makes both engines decide every idle flow, so only what the events say is compared
    end = max(ev.ktime_ns for ev in events) + 10 * 10**9
    eng.feed(events_pb2.Event(id=events[-1].id + 1, ktime_ns=end, mark=events_pb2.SessionMark(kind="stopped")))
    return sorted((f.key, f.phase, f.tcp_state, f.counters.connections, f.counters.resets_received,
                   f.counters.segments, f.counters.bytes, tuple(f.templates), f.end_reason,
                   tuple(sorted((p.tgid, p.comm) for p in f.processes))) for f in eng.flows())


@pytest.mark.parametrize("as_bytes", [False, True], ids=["events", "capture-bytes"])
def test_lifecycle_records_expand_to_the_per_event_transitions(as_bytes):
    """Both paths attached at once, on the same short connections, a refused one and a
    listener: every connection's transitions, owner changes, congestion returns to Open and
    destroy come out the same, in the same order, with the same attribution; the lifecycle
    path hands them over in at most two records per connection and side. ``capture-bytes``:
    the lifecycle plane's decoder hands over bytes as a session's capture does (a record
    becomes one Lifecycle event), and the readers' expansion gives the events back."""
    require_root()
    from gewtui.kernel.plane import PlaneConfig
    from gewtui.recording import lifecycle

    n = 12
    with veth_pair("lcy", 96 if as_bytes else 92) as net:
        with running_plane(DEFAULT, net, PlaneConfig(lifecycle=True)) as life, \
                running_plane(DEFAULT, net, PlaneConfig(lifecycle=False)) as per_event:
            compact = []
            if as_bytes:
                def take(raw, out=life.events):
                    if lifecycle.is_lifecycle(raw):
                        compact.append(raw)
                    out.extend(E.Event.FromString(r) for r in lifecycle.expand_all([raw]))

                life.plane.decoder.raw_sink = take
            port = free_port()
            srv, th = _serve(net, port, n)
            _short_connections(net, port, n)
            th.join(10)
            srv.close()
            _refused(net, free_port())
            time.sleep(0.2)
            for c in (life, per_event):
                c.settle(1.5)
            life_stats, pe_stats = life.plane.stats(), per_event.plane.stats()
            from gewtui.kernel.transport import read_counters
            life_records = read_counters(life.plane.bpf).produced
            pe_records = read_counters(per_event.plane.bpf).produced
            a, b = _lives(life.events), _lives(per_event.events)
            life_events, pe_events = list(life.events), list(per_event.events)
    assert life_stats.observation_complete and pe_stats.observation_complete, (
        life_stats.incomplete_reason, pe_stats.incomplete_reason)
    if as_bytes:
        assert len(compact) >= 2 * n       # the connections' closes, each one event on the wire
        assert [e.id for e in life_events] == list(range(1, len(life_events) + 1))
    assert len(a) >= 2 * n + 2           # both sides of each connection, the listener, the refused one
    assert a.keys() == b.keys()
    for key in a:
        (rows_a, times_a), = a[key]
        (rows_b, times_b), = b[key]
        assert rows_a == rows_b, key
        # each plane's program reads the clock itself, one after the other on the same CPU
        assert all(abs(x - y) < 5_000_000 for x, y in zip(times_a, times_b)), key
    # a reset crosses at once, after what its socket held: the refused connection's events
    # keep the kernel's order on the lifecycle path too
    refused = [e for e in life_events if body(e) == "reset" and e.reset.direction == E.RESET_RECEIVED]
    assert len(refused) == 1
    sock = refused[0].reset.sock
    order = [(body(e), getattr(e, body(e)).new_state if body(e) == "tcp_state" else 0)
             for e in life_events if body(e) in ("tcp_state", "reset", "destroy")
             and getattr(e, body(e)).sock == sock]
    assert order == [("tcp_state", E.TCP_SYN_SENT), ("reset", 0), ("tcp_state", E.TCP_CLOSE), ("destroy", 0)]
    # and the model concludes the same from both streams
    assert _flows(life_events) == _flows(pe_events)
    kinds = collections.Counter(r[0] for rows in a.values() for (rs, _) in rows for r in rs)
    assert kinds["tcp_state"] >= 9 * n and kinds["destroy"] >= 2 * n and kinds["owner"] >= n
    # fewer records for the same truth: the per-event path makes one per lifecycle event;
    # the lifecycle path two per socket (its first transition, then the rest at its close)
    from gewtui.kernel.probes import owner, tcp_state

    def congested(events):   # congestion states other than Open cross at once on both paths
        return sum(1 for e in events if body(e) == "cong_state" and e.cong_state.ca_state != 0)

    sockets = sum(len(v) for v in a.values())
    assert (pe_records[tcp_state.PROBE_ID] + pe_records.get(owner.PROBE_ID, 0)
            == sum(kinds.values()) + congested(pe_events))
    assert owner.PROBE_ID not in life_records
    # a congestion record may also hand over what its socket held: at most one more each
    assert 2 * sockets + congested(life_events) <= life_records[tcp_state.PROBE_ID] <= (
        2 * sockets + 2 * congested(life_events))


def test_a_zero_window_edge_comes_after_what_its_socket_held():
    """A zero-window edge crosses at once, and what its socket's lifecycle holds (here the
    client's SYN_SENT -> ESTABLISHED, held since its first transition crossed) is handed
    over first, so the socket's events keep the kernel's order. A real zero window brings
    retransmits and congestion changes that hand the socket's items over first anyway; so
    the socket's table entry is told it last saw a zero window, and one segment from the
    server makes the edge (the window it sees is open) with nothing else about that
    socket crossing before it. The summary tick, which also hands held items over, is kept
    out of the way."""
    require_root()
    with _held("lzw", 91) as (life, net, (k,), (c,), port, key):
        table = life.plane.table("gew_socks")
        entry = table[key]
        assert entry.zw_now == 0
        entry.zw_now = 1
        table[key] = entry
        c.sendall(b"x")
        life.settle(0.5)
        k.close()
        c.close()
        life.settle(0.5)
        st = life.plane.stats()
        events = list(life.events)
    assert st.observation_complete, st.incomplete_reason
    client = [e.tcp_state.sock for e in events if body(e) == "tcp_state"
              and e.tcp_state.new_state == E.TCP_SYN_SENT and e.tcp_state.tuple.dport == port]
    assert len(client) == 1, client
    seen = [e for e in events if body(e) in ("tcp_state", "tcp_probe") and getattr(e, body(e)).sock == client[0]]
    order = [(body(e), e.tcp_state.new_state if body(e) == "tcp_state" else e.tcp_probe.final) for e in seen]
    # its first transition, what it held (ESTABLISHED), the edge's summary (not final), ...
    assert order[:3] == [("tcp_state", E.TCP_SYN_SENT), ("tcp_state", E.TCP_ESTABLISHED), ("tcp_probe", False)], order
    assert ("tcp_probe", True) in order[3:]        # ... and at its close, its final summary
    assert seen[1].ktime_ns <= seen[2].ktime_ns


def test_a_long_connection_shows_live():
    """A connection that stays open is handed over while it lives (the summary tick asks
    for what was held longer than life_hold_ms), not only at its close."""
    require_root()
    from gewtui.kernel.plane import PlaneConfig

    with veth_pair("lcl", 93) as net:
        with running_plane(DEFAULT, net, PlaneConfig(lifecycle=True, life_hold_ms=100)) as c:
            port = free_port()
            srv, th = _serve(net, port, 1, hold=5.0)
            with entered(net.a):
                k = socket.create_connection((net.ip_b, port), timeout=5)
                k.sendall(b"ping")
                k.recv(16)
            t0 = time.monotonic()
            try:
                seen = c.poll_until(lambda evs: any(
                    body(e) == "tcp_state" and e.tcp_state.new_state == E.TCP_ESTABLISHED
                    and port in (e.tcp_state.tuple.sport, e.tcp_state.tuple.dport) for e in evs), timeout=3.0)
                waited = time.monotonic() - t0
                closed = any(body(e) == "destroy" and port in (e.destroy.tuple.sport, e.destroy.tuple.dport)
                             for e in c.events)
            finally:
                k.close()
                th.join(10)
                srv.close()
    assert seen and not closed, "the established connection was not shown before its close"
    assert waited < 2.5


@pytest.mark.parametrize("raced", [False, True], ids=["whole", "raced"])
def test_what_open_sockets_hold_crosses_when_the_session_ends(raced):
    """A connection still open when the session stops: its transitions held in the kernel
    (each side's move to ESTABLISHED; no tick asked for them) cross at the session's last
    tick, after the programs are detached, instead of
    being dropped with the tables. ``raced``: the client's entry is told it held one item
    more than it did (as after two CPUs raced on it); its life has not ended, yet the last
    tick holds its count against what crossed, and the session says it is incomplete."""
    require_root()
    from gewtui.kernel.plane import PlaneConfig

    with veth_pair("lse", 88) as net:
        port = free_port()
        srv = _listener(net, port)
        try:
            # no tick (whose hand-over would empty the entries before the stop)
            cfg = PlaneConfig(lifecycle=True, summary_interval_ms=60_000, life_hold_ms=60_000)
            with running_plane(DEFAULT, net, cfg) as c:
                with entered(net.a):
                    k = socket.create_connection((net.ip_b, port), timeout=5)
                a, _ = srv.accept()
                c.settle(0.1)
                held = c.plane.table("gew_life")
                assert sum(v.n for v in held.values()) >= 2     # both ESTABLISHED moves, held
                if raced:
                    sport = k.getsockname()[1]
                    key = [key for key, v in c.plane.table("gew_socks").items() if v.t.sport == sport]
                    entry = held[key[0]]
                    entry.added += 1
                    held[key[0]] = entry
            st = c.plane.stats()
            k.close()
            a.close()
        finally:
            srv.close()
    if raced:
        assert st.raced == 1 and not st.observation_complete, st
        assert [(e.lost.stage, e.lost.count) for e in c.events if body(e) == "lost"] == [("raced", 1)]
    else:
        assert st.observation_complete, st.incomplete_reason
    moves = [(e.tcp_state.old_state, e.tcp_state.new_state) for e in c.events if body(e) == "tcp_state"
             and port in (e.tcp_state.tuple.sport, e.tcp_state.tuple.dport)]
    assert moves.count((E.TCP_SYN_SENT, E.TCP_ESTABLISHED)) == 1, moves
    assert moves.count((E.TCP_SYN_RECV, E.TCP_ESTABLISHED)) == 1, moves


def test_a_rescope_checks_the_entries_it_clears():
    """A scope change hands over what every socket holds and clears the lifecycle table:
    the lives it cuts short are checked as a session's end checks them (an entry told it
    held one item more than crossed counts one `raced` item)."""
    require_root()
    with _held("lrs", 87) as (c, net, ks, accepted, port, key):
        lives = c.plane.table("gew_life")
        entry = lives[key]
        entry.added += 1
        lives[key] = entry
        c.plane.set_scope(c.plane.scope)
        st = c.plane.stats()
        assert len(lives) == 0
    assert st.raced == 1 and not st.observation_complete, st


def test_a_new_life_at_the_address_checks_the_life_before():
    """A refused connect leaves the socket in CLOSE, open; connecting it again begins a new
    life at the same kernel address, without a destroy between. What the first life held
    crosses before the new life's first transition (under a new socket id), and the kernel
    checks the first life's count there: told it held one item more, it counts one."""
    require_root()
    from gewtui.kernel.plane import PlaneConfig

    with veth_pair("lnl", 86) as net:
        cfg = PlaneConfig(lifecycle=True, summary_interval_ms=60_000, life_hold_ms=60_000)
        port, closed = free_port(), free_port()
        srv = _listener(net, port)
        try:
            with running_plane(DEFAULT, net, cfg) as c:
                with entered(net.a):
                    k = socket.socket()
                    with pytest.raises(ConnectionRefusedError):
                        k.connect((net.ip_b, closed))
                    c.settle(0.2)
                    lives = c.plane.table("gew_life")
                    key = [key for key, v in c.plane.table("gew_socks").items() if v.t.dport == closed]
                    assert len(key) == 1, "the refused socket is not in the table"
                    entry = lives[key[0]]
                    assert entry.n == 1 and entry.added == entry.seq + 1   # its SYN_SENT -> CLOSE, held
                    entry.added += 1
                    lives[key[0]] = entry
                    k.connect((net.ip_b, port))
                a, _ = srv.accept()
                c.settle(0.3)
                st = c.plane.stats()
                k.close()
                a.close()
        finally:
            srv.close()
    assert st.raced == 1 and not st.observation_complete, st
    moves = [(e.tcp_state.sock, e.tcp_state.old_state, e.tcp_state.new_state) for e in c.events
             if body(e) == "tcp_state" and e.tcp_state.tuple.dport in (port, closed)]
    first = [m for m in moves if m[1:] == (E.TCP_CLOSE, E.TCP_SYN_SENT)]
    assert len(first) == 2 and first[0][0] != first[1][0]          # two lives, two socket ids
    old, new = first[0][0], first[1][0]
    assert [m[1:] for m in moves if m[0] == old] == [(E.TCP_CLOSE, E.TCP_SYN_SENT), (E.TCP_SYN_SENT, E.TCP_CLOSE)]
    assert moves.index((old, E.TCP_SYN_SENT, E.TCP_CLOSE)) < moves.index((new, E.TCP_CLOSE, E.TCP_SYN_SENT))


def test_a_lifecycle_entry_that_does_not_fit_is_a_counted_loss():
    """gew_life sized for two sockets, four connections open at once: the sockets that
    find no entry lose their transitions, counted map-full, and the session says it is
    incomplete (and a LostRecords event says where)."""
    require_root()
    from gewtui.kernel.plane import PlaneConfig

    with veth_pair("lco", 94) as net:
        with running_plane(("tcp_state",), net, PlaneConfig(lifecycle=True, max_life=2)) as c:
            port = free_port()
            srv = _listener(net, port)
            with entered(net.a):
                ks = [socket.create_connection((net.ip_b, port), timeout=5) for _ in range(4)]
            accepted = [srv.accept()[0] for _ in range(4)]
            c.settle(1.3)
            st = c.plane.stats()
            for s in ks + accepted + [srv]:
                s.close()
            c.settle(0.5)
            lost = [e for e in c.events if body(e) == "lost"]
    assert st.map_full > 0
    assert not st.observation_complete and "did not fit a kernel map" in st.incomplete_reason
    assert any(e.lost.stage == "map-full" and e.lost.probe == "tcp_state" and e.lost.count > 0 for e in lost)


def test_an_item_the_kernel_lost_to_racing_cpus_is_a_counted_loss():
    """Should two programs ever change one lifecycle entry at once (its lock given up on,
    see below), one item could overwrite another. The entry counts its items atomically and
    the kernel holds that count against the items that crossed when the life ends: here
    the client's entry is told it held one item more than it did, as after such a race, and
    its close makes the session say it is incomplete, with a LostRecords event of stage
    "raced". The connection beside it, left alone, crosses whole."""
    require_root()
    with _held("lrc", 89, n=2) as (c, net, ks, accepted, port, key):
        before = c.plane.stats()
        lives = c.plane.table("gew_life")
        entry = lives[key]
        assert entry.added == entry.seq + entry.n > 0
        entry.added += 1
        lives[key] = entry
        for s in ks + accepted:
            s.close()
        c.settle(0.8)
        st = c.plane.stats()
    # (loss notices go out at each summary tick, here at the plane's close)
    lost = [e for e in c.events if body(e) == "lost"]
    assert before.observation_complete and before.raced == 0
    assert st.raced == 1
    assert not st.observation_complete
    assert "1 lifecycle items lost or handed over twice while CPUs raced on one socket's entry" in st.incomplete_reason
    assert [(e.lost.stage, e.lost.probe, e.lost.count) for e in lost] == [("raced", "tcp_state", 1)]


def test_an_item_that_finds_its_entry_busy_is_counted_and_overwrites_nothing():
    """Entries are changed under a lock (a compare-and-swap word: an owner change in process
    context and a state change in softirq on another CPU can reach one entry at once). A
    program that cannot take it in its bounded tries (it interrupted the holder on the
    holder's own CPU) keeps nothing and counts a raced loss. Here the client's entry is
    held busy, as by such a holder, and the client closes: none of its closing transitions
    is kept, each is counted, the session is incomplete; what the entry held before still
    crosses with its destroy; the server's side crosses whole."""
    require_root()
    with _held("lbz", 87) as (c, net, ks, accepted, port, key):
        lives = c.plane.table("gew_life")
        entry = lives[key]
        assert entry.busy == 0 and entry.n == 1        # its SYN_SENT -> ESTABLISHED, held
        entry.busy = 1
        lives[key] = entry
        ks[0].close()
        c.settle(0.3)
        accepted[0].close()
        c.settle(0.8)
        st = c.plane.stats()
    lost = [e for e in c.events if body(e) == "lost"]
    states = collections.defaultdict(list)
    for e in c.events:
        if body(e) == "tcp_state":
            t = e.tcp_state.tuple
            side = "server" if t.sport == port else "client"
            states[side].append((e.tcp_state.old_state, e.tcp_state.new_state))
    assert states["client"] == [(E.TCP_CLOSE, E.TCP_SYN_SENT), (E.TCP_SYN_SENT, E.TCP_ESTABLISHED)]
    accepted_side = [m for m in states["server"] if E.TCP_LISTEN not in m]     # not the listener's
    assert accepted_side == [(E.TCP_SYN_RECV, E.TCP_ESTABLISHED), (E.TCP_ESTABLISHED, E.TCP_CLOSE_WAIT),
                             (E.TCP_CLOSE_WAIT, E.TCP_LAST_ACK), (E.TCP_LAST_ACK, E.TCP_CLOSE)]
    assert st.raced >= 2 and not st.observation_complete      # FIN_WAIT1, FIN_WAIT2, ...
    assert [(e.lost.stage, e.lost.probe) for e in lost] == [("raced", "tcp_state")]
    assert sum(e.lost.count for e in lost) == st.raced


def test_a_hand_over_asked_of_a_busy_entry_waits_for_the_next_ask():
    """Userspace's hand-over (gew_life_asked, run for entries held past life_hold_ms) takes
    the entry's lock too: asked while the entry is busy it hands nothing over and loses
    nothing; asked again once the entry is free, the held item crosses."""
    require_root()
    from gewtui.kernel.probes import tcp_state

    with _held("lba", 86) as (c, net, ks, accepted, port, key):
        lives = c.plane.table("gew_life")
        entry = lives[key]
        assert entry.n == 1
        entry.busy = 1
        lives[key] = entry
        tcp_state._ask(c.plane, time.monotonic_ns(), everything=True)
        c.settle(0.2)
        assert lives[key].n == 1
        entry = lives[key]
        entry.busy = 0
        lives[key] = entry
        tcp_state._ask(c.plane, time.monotonic_ns(), everything=True)
        c.settle(0.2)
        assert lives[key].n == 0
        st = c.plane.stats()
    assert st.raced == 0 and st.observation_complete
    assert [(e.tcp_state.old_state, e.tcp_state.new_state) for e in c.events if body(e) == "tcp_state"
            and e.tcp_state.tuple.dport == port][:2] == [(E.TCP_CLOSE, E.TCP_SYN_SENT),
                                                         (E.TCP_SYN_SENT, E.TCP_ESTABLISHED)]


def test_recordings_name_sockets_by_opaque_ids(tmp_path):
    """gew session apply, real traffic: no event in the recording carries a kernel
    address as its socket, and one connection keeps one id from its first transition to
    its destroy."""
    require_root()
    from gewtui.recording.reader import RecordingReader

    gew = os.path.join(os.path.dirname(sys.executable), "gew")
    rec = tmp_path / "ids.gewrec"
    with veth_pair("lci", 95) as net:
        p = subprocess.Popen([gew, "session", "apply", "--scope", f"netns={net.b}", "--duration", "6",
                              "--record", str(rec)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not rec.exists() and time.monotonic() < deadline and p.poll() is None:
                time.sleep(0.1)
            time.sleep(0.5)
            port = free_port()
            srv, th = _serve(net, port, 5)
            _short_connections(net, port, 5)
            th.join(10)
            srv.close()
        finally:
            _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    socks: dict[int, set] = collections.defaultdict(set)
    n = 0
    with RecordingReader(rec) as r:
        for ev in r.iter_events():
            k = body(ev)
            b = getattr(ev, k)
            if hasattr(b, "sock") and b.sock:
                n += 1
                assert b.sock < KERNEL_ADDRESS, (k, hex(b.sock))
                if k in ("tcp_state", "destroy") and port in (b.tuple.sport, b.tuple.dport):
                    socks[b.sock].add((b.tuple.sport, b.tuple.dport) if k == "destroy" else None)
    assert n > 0
    # the server side of each connection (the listener's destroy has no peer port), one id
    # from its first transition to its destroy
    destroyed = [s for s, seen in socks.items() if any(x is not None and x[1] for x in seen)]
    assert len(destroyed) == 5
    assert all(None in socks[s] for s in destroyed)
