"""TCP probe units on the real kernel: state lifecycle, refused connects and resets,
tcp_probe summaries, retransmits, socket owners, IPv6, and scope filtering by namespace.
One plane (compiled once) watches the gewt namespaces of this module."""
import os
import socket
import subprocess
import threading
import time

import pytest

from gewtui.kernel.plane import KernelPlane, PlaneConfig, ScopeFilter
from gewtui.pb import events_pb2 as E
from tests.support.probes_support import (Collector, addr, entered, in_ns, of, require_root, states, veth_pair)

pytestmark = [pytest.mark.root]


@pytest.fixture(scope="module")
def net():
    require_root()
    with veth_pair("tcp", 41) as n:
        with veth_pair("oth", 42) as other:
            n.other = other
            yield n


@pytest.fixture(scope="module")
def col(net):
    events = []
    plane = KernelPlane(None, PlaneConfig(summary_interval_ms=200), on_event=events.append)
    try:
        plane.stage()
        plane.verify()
        # the module's pair is in scope; the "other" pair is not
        plane.set_scope(ScopeFilter(netns_inodes=(net.inode_a, net.inode_b)))
        plane.attach()
        c = Collector(plane, events)
        yield c
    finally:
        plane.close()
    st = plane.stats()
    assert st.decode_errors == 0, "C and Python record layouts disagree"
    assert st.produced == st.consumed + st.lost


def _server(ns: str, host: str, port: int, family=socket.AF_INET):
    with entered(ns):
        s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(16)
    return s


def _connect(ns: str, host: str, port: int, family=socket.AF_INET, timeout=3.0):
    with entered(ns):
        c = socket.socket(family, socket.SOCK_STREAM)
        c.settimeout(timeout)
        try:
            c.connect((host, port))
        except BaseException:
            c.close()
            raise
    return c


def test_full_lifecycle_of_a_connection(net, col):
    port = 20101
    srv = _server(net.b, net.ip_b, port)
    c = _connect(net.a, net.ip_b, port)
    a, _ = srv.accept()
    c.sendall(b"hello")
    assert a.recv(5) == b"hello"
    c.close()
    a.close()
    srv.close()
    want = [(E.TCP_CLOSE, E.TCP_SYN_SENT), (E.TCP_SYN_SENT, E.TCP_ESTABLISHED),
            (E.TCP_LISTEN, E.TCP_SYN_RECV), (E.TCP_SYN_RECV, E.TCP_ESTABLISHED),
            (E.TCP_ESTABLISHED, E.TCP_FIN_WAIT1), (E.TCP_ESTABLISHED, E.TCP_CLOSE_WAIT),
            (E.TCP_CLOSE_WAIT, E.TCP_LAST_ACK)]
    assert col.poll_until(lambda evs: all(w in states(evs, port) for w in want)), states(col.events, port)
    assert col.poll_until(lambda evs: len(of(evs, "destroy", port)) >= 2)
    ev = of(col.events, "tcp_state", port)[0]
    t = ev.tcp_state.tuple
    assert t.family == socket.AF_INET and t.protocol == 6
    assert {t.saddr, t.daddr} <= {addr(net.ip_a), addr(net.ip_b), b"\0\0\0\0"}
    # ids are monotonic in delivery order, times come from the kernel clock
    ids = [e.id for e in col.events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(e.ktime_ns > 0 for e in col.events)


def test_connect_to_closed_port_syn_sent_close_and_resets(net, col):
    port = 20102
    with pytest.raises(ConnectionRefusedError):
        _connect(net.a, net.ip_b, port)
    assert col.poll_until(lambda evs: (E.TCP_SYN_SENT, E.TCP_CLOSE) in states(evs, port)), states(col.events, port)
    assert col.poll_until(lambda evs: any(e.reset.direction == E.RESET_RECEIVED for e in of(evs, "reset", port)))
    sent = [e for e in of(col.events, "reset", port) if e.reset.direction == E.RESET_SENT]
    assert sent, "the server side's kernel sent a reset without a socket"
    assert sent[0].reset.sock == 0 and sent[0].reset.reason_name == "NO_SOCKET"
    recv = [e for e in of(col.events, "reset", port) if e.reset.direction == E.RESET_RECEIVED][0]
    assert recv.reset.tuple.dport == port and recv.reset.sock != 0


def test_ipv6_connection(net, col):
    port = 20103
    srv = _server(net.b, net.ip6_b, port, socket.AF_INET6)
    c = _connect(net.a, net.ip6_b, port, socket.AF_INET6)
    a, _ = srv.accept()
    for s in (c, a, srv):
        s.close()
    assert col.poll_until(lambda evs: (E.TCP_SYN_SENT, E.TCP_ESTABLISHED) in states(evs, port))
    t = of(col.events, "tcp_state", port)[0].tcp_state.tuple
    assert t.family == socket.AF_INET6
    assert addr(net.ip6_b) in (t.saddr, t.daddr)


def test_tcp_probe_summaries_count_received_segments(net, col):
    port = 20104
    srv = _server(net.b, net.ip_b, port)
    c = _connect(net.a, net.ip_b, port)
    a, _ = srv.accept()
    payload = b"x" * 200_000
    got = 0

    def reader():
        nonlocal got
        while got < len(payload):
            chunk = a.recv(65536)
            if not chunk:
                break
            got += len(chunk)

    t = threading.Thread(target=reader)
    t.start()
    c.sendall(payload)
    t.join(10)
    assert got == len(payload)
    # a periodic summary while the connection is open
    assert col.poll_until(lambda evs: any(e.tcp_probe.bytes for e in of(evs, "tcp_probe", port)))
    c.close()
    a.close()
    srv.close()
    assert col.poll_until(lambda evs: any(e.tcp_probe.final for e in of(evs, "tcp_probe", port)))
    # the server socket received the payload: its summaries' windows add up to it exactly
    server_side = [e.tcp_probe for e in of(col.events, "tcp_probe", port) if e.tcp_probe.tuple.sport == port]
    assert sum(p.bytes for p in server_side) == len(payload)
    assert sum(1 for p in server_side if p.final) == 1
    for p in server_side:
        assert p.window_end_ns >= p.window_start_ns
        assert p.srtt_us > 0 and p.snd_cwnd > 0
    # every segment counted in the kernel's srtt histogram (srtt is known from the handshake
    # on), its windows adding up like the segments; the bucket of the last srtt holds some
    assert sum(sum(p.srtt_log2_hist) for p in server_side) == sum(p.segments for p in server_side)
    last = server_side[-1]
    top = max(i for p in server_side for i, n in enumerate(p.srtt_log2_hist) if n)
    assert top >= last.max_srtt_us.bit_length() - 1 >= 0


def test_retransmits_when_the_path_drops_data(net, col):
    port = 20105
    srv = _server(net.b, net.ip_b, port)
    c = _connect(net.a, net.ip_b, port)
    a, _ = srv.accept()
    rule = f"tcp dport {port} tcp flags & (syn|fin|rst) == 0 drop"
    in_ns(net.b, "nft", "add table inet gewt; add chain inet gewt in { type filter hook input priority 0; }; "
                        f"add rule inet gewt in {rule}")
    try:
        c.sendall(b"lost data")
        assert col.poll_until(lambda evs: of(evs, "retransmit", port), timeout=6)
        # the retransmission timeout puts the sender's congestion state into Loss
        assert col.poll_until(lambda evs: any(e.cong_state.ca_state_name == "Loss"
                                              for e in of(evs, "cong_state", port)), timeout=3)
    finally:
        in_ns(net.b, "nft", "delete table inet gewt", check=False)
        for s in (c, a, srv):
            s.close()
    r = of(col.events, "retransmit", port)[0].retransmit
    assert r.tuple.dport == port and r.state == E.TCP_ESTABLISHED and not r.synack
    # the dropped segments are attributed to their flow by their own headers
    drops = [e.skb_drop for e in of(col.events, "skb_drop", port) if e.skb_drop.reason_name == "NETFILTER_DROP"]
    assert drops and drops[0].attribution in (E.PACKET_ATTRIBUTION_HEADERS, E.PACKET_ATTRIBUTION_SOCKET)


def test_other_namespace_is_not_delivered(net, col):
    port = 20106
    o = net.other
    srv = _server(o.b, o.ip_b, port)
    c = _connect(o.a, o.ip_b, port)
    a, _ = srv.accept()
    for s in (c, a, srv):
        s.close()
    closed = port + 50
    with pytest.raises(ConnectionRefusedError):
        _connect(o.a, o.ip_b, closed)
    # a connection in scope right after, so a delivered out-of-scope event would be here
    port_in = 20107
    srv = _server(net.b, net.ip_b, port_in)
    c = _connect(net.a, net.ip_b, port_in)
    a, _ = srv.accept()
    for s in (c, a, srv):
        s.close()
    assert col.poll_until(lambda evs: (E.TCP_SYN_SENT, E.TCP_ESTABLISHED) in states(evs, port_in))
    col.settle(0.3)
    foreign = {o.inode_a, o.inode_b}
    leaked = [e for e in col.events if {port, closed} & _ports(e) or e.attr.netns in foreign]
    assert not leaked, leaked[:3]


def _ports(ev) -> set[int]:
    b = getattr(ev, ev.WhichOneof("body") or "mark")
    t = getattr(b, "tuple", None)
    out = {t.sport, t.dport} if t is not None else set()
    if ev.WhichOneof("body") == "fib":
        out |= {b.sport, b.dport}
    return out


def test_prefix_and_port_scope_in_the_kernel(net, col):
    """Kinds combine with AND, values with OR: only the v4 connection to the scoped
    address and port is delivered (this test narrows the module's scope, so it runs last)."""
    col.plane.set_scope(ScopeFilter(netns_inodes=(net.inode_a, net.inode_b),
                                    prefixes=(f"{net.ip_b}/32", "fd00:dead::/64"), ports=(20110, 20112)))
    try:
        for port, host, fam in ((20110, net.ip_b, socket.AF_INET), (20111, net.ip_b, socket.AF_INET),
                                (20112, net.ip6_b, socket.AF_INET6)):
            srv = _server(net.b, host, port, fam)
            c = _connect(net.a, host, port, fam)
            a, _ = srv.accept()
            for s in (c, a, srv):
                s.close()
        assert col.poll_until(lambda evs: (E.TCP_SYN_SENT, E.TCP_ESTABLISHED) in states(evs, 20110))
        col.settle(0.3)
        assert states(col.events, 20111) == []   # address in scope, port not
        assert states(col.events, 20112) == []   # port in scope, address not
    finally:
        col.plane.set_scope(ScopeFilter(netns_inodes=(net.inode_a, net.inode_b)))
