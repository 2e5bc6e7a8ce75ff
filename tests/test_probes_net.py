"""Drops, routing and queue probe units on the real kernel, in a gewt namespace pair:
nftables drops attributed to their tuple, UDP drops, FIB lookups (v4/v6) folded by result
and changing with the route, neighbour updates, qdisc summaries and qdisc drops."""
import socket
import time

import pytest

from gewtui.kernel.plane import PlaneConfig
from gewtui.pb import events_pb2 as E
from tests.support.probes_support import addr, entered, in_ns, of, require_root, running_plane, veth_pair

pytestmark = [pytest.mark.root]


@pytest.fixture(scope="module")
def net():
    require_root()
    with veth_pair("net", 44) as n:
        yield n


@pytest.fixture(scope="module")
def col(net):
    with running_plane(["drops", "route", "queue", "tcp_state"], net,
                       PlaneConfig(summary_interval_ms=200)) as c:
        yield c
    st = c.plane.stats()
    assert st.decode_errors == 0 and st.produced == st.consumed + st.lost


def _udp_send(ns: str, host: str, port: int, n: int = 1, size: int = 64, family=socket.AF_INET):
    with entered(ns):
        s = socket.socket(family, socket.SOCK_DGRAM)
        try:
            for _ in range(n):
                try:
                    s.sendto(b"u" * size, (host, port))
                except OSError:
                    pass   # a full qdisc may refuse (ENOBUFS): that is the point of some tests
        finally:
            s.close()


def test_nftables_drop_is_attributed_to_the_tuple(net, col):
    port = 20401
    in_ns(net.b, "nft", "add table inet gewtd; add chain inet gewtd in { type filter hook input priority 0; }; "
                        f"add rule inet gewtd in tcp dport {port} drop")
    try:
        with entered(net.a):
            c = socket.socket()
            c.settimeout(0.5)
            with pytest.raises(OSError):
                c.connect((net.ip_b, port))
            c.close()

        def found(evs):
            return [e for e in of(evs, "skb_drop", port) if e.skb_drop.reason_name == "NETFILTER_DROP"]
        assert col.poll_until(found)
    finally:
        in_ns(net.b, "nft", "delete table inet gewtd", check=False)
    d = found(col.events)[0]
    b = d.skb_drop
    assert b.attribution == E.PACKET_ATTRIBUTION_HEADERS
    assert (b.tuple.saddr, b.tuple.daddr, b.tuple.dport, b.tuple.protocol) == (addr(net.ip_a), addr(net.ip_b), port, 6)
    assert b.protocol == 0x0800 and b.ifname == net.veth_b and b.ifindex > 0
    assert b.location != 0 and b.count == 1
    # dropped in the server's namespace, in softirq: no task named
    assert d.attr.netns == net.inode_b and d.attr.source == E.ATTRIBUTION_NONE


def test_udp_to_a_closed_port_ipv6_drop_names_no_socket(net, col):
    port = 20402
    _udp_send(net.a, net.ip6_b, port, family=socket.AF_INET6)

    def found(evs):
        return [e for e in of(evs, "skb_drop", port) if e.skb_drop.tuple.family == socket.AF_INET6]
    assert col.poll_until(found)
    b = found(col.events)[0].skb_drop
    assert b.reason_name == "NO_SOCKET" and b.tuple.protocol == 17
    assert b.tuple.daddr == addr(net.ip6_b) and b.protocol == 0x86DD


def test_fib_lookups_fold_and_follow_the_route(net, col):
    port, dst = 20403, "10.99.44.7"
    in_ns(net.a, "ip", "route", "add", "10.99.44.0/24", "dev", net.veth_a)
    n = 40
    with entered(net.a):
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect((dst, port))   # a route lookup, no packet
            s.close()
    in_ns(net.a, "ip", "route", "replace", "10.99.44.0/24", "dev", "lo")
    with entered(net.a):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((dst, port))
        s.close()

    def lookups(evs):
        return [e.fib for e in of(evs, "fib", port) if e.fib.dst == addr(dst)]
    assert col.poll_until(lambda evs: {"lo", net.veth_a} <= {f.device for f in lookups(evs)})
    via_veth = [f for f in lookups(col.events) if f.device == net.veth_a]
    assert via_veth[0].family == socket.AF_INET and via_veth[0].err == 0 and via_veth[0].protocol == 17
    # folded in the kernel: fewer records than lookups; the counts are flushed at close,
    # so here they are at most what happened
    assert len(via_veth) < n
    assert all(f.count >= 1 for f in via_veth)
    fib_ev = [e for e in of(col.events, "fib", port)][0]
    assert fib_ev.attr.netns == net.inode_a   # connect() ran in the namespace: task's netns
    in_ns(net.a, "ip", "route", "del", "10.99.44.0/24", check=False)


def test_fib_lookup_names_the_gateway_and_the_flow(net, col):
    """The flow's fields and the chosen next hop's gateway, each read from the kernel's
    structures (bpf/route.c reads them as spans): a route via a gateway on the veth."""
    port, dst = 20405, "10.99.46.9"
    in_ns(net.a, "ip", "route", "add", "10.99.46.0/24", "via", net.ip_b, "dev", net.veth_a)
    try:
        with entered(net.a):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((net.ip_a, 0))
            sport = s.getsockname()[1]
            s.connect((dst, port))
            s.close()

        def lookups(evs):
            return [e.fib for e in of(evs, "fib", port) if e.fib.dst == addr(dst) and e.fib.err == 0]
        assert col.poll_until(lambda evs: lookups(evs))
        f = lookups(col.events)[0]
        assert (f.family, f.gateway, f.device, f.protocol) == (socket.AF_INET, addr(net.ip_b), net.veth_a, 17)
        assert (f.src, f.sport, f.dport) == (addr(net.ip_a), sport, port)
    finally:
        in_ns(net.a, "ip", "route", "del", "10.99.46.0/24", check=False)


def test_fib6_lookup_and_unreachable_error(net, col):
    port = 20404
    with entered(net.a):
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.connect((net.ip6_b, port))
        s.close()
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        with pytest.raises(OSError):
            s.connect(("fd99::1", port))   # no route in this namespace
        s.close()

    def v6(evs):
        # folded per destination, not per port: an earlier lookup of ip6_b may stand for this one
        return [e.fib for e in of(evs, "fib") if e.fib.family == socket.AF_INET6]
    main = 254   # the local table (255) is looked up first and misses for both
    assert col.poll_until(lambda evs: any(f.dst == addr(net.ip6_b) and f.table == main for f in v6(evs))
                          and any(f.dst == addr("fd99::1") and f.table == main for f in v6(evs)))
    ok = [f for f in v6(col.events) if f.dst == addr(net.ip6_b) and f.table == main][0]
    assert ok.device == net.veth_a and ok.err == 0
    bad = [f for f in v6(col.events) if f.dst == addr("fd99::1") and f.table == main][0]
    assert bad.err < 0


def test_neighbour_resolution_is_reported(net, col):
    in_ns(net.a, "ip", "neigh", "flush", "dev", net.veth_a)
    _udp_send(net.a, net.ip_b, 20405)

    def found(evs):
        return [e.neigh for e in evs if e.WhichOneof("body") == "neigh" and e.neigh.address == addr(net.ip_b)]
    assert col.poll_until(lambda evs: any(n.new_state_name == "reachable" for n in found(evs)))
    n = [x for x in found(col.events) if x.new_state_name == "reachable"][0]
    assert n.device == net.veth_a and n.family == socket.AF_INET and len(n.lladdr) == 6


def test_qdisc_summary_and_qdisc_drops(net, col):
    port = 20406
    in_ns(net.a, "tc", "qdisc", "add", "dev", net.veth_a, "root", "handle", "7e:", "tbf", "rate", "1mbit",
          "burst", "3000", "limit", "3000")
    ifindex = int(in_ns(net.a, "cat", f"/sys/class/net/{net.veth_a}/ifindex").stdout)
    try:
        _udp_send(net.a, net.ip_b, port, n=200, size=1000)

        def summaries(evs):
            return [e.qdisc for e in evs if e.WhichOneof("body") == "qdisc" and e.qdisc.ifname == net.veth_a]
        assert col.poll_until(lambda evs: sum(q.dropped for q in summaries(evs)) > 0
                              and sum(q.dequeued for q in summaries(evs)) > 0, timeout=6)
        q = summaries(col.events)
        assert q[0].kind == "tbf" and q[0].netns == net.inode_a and q[0].ifindex == ifindex
        # handle and parent read from struct Qdisc: 7e: as given, parent TC_H_ROOT
        assert (q[0].handle, q[0].parent) == (0x7E0000, 0xFFFFFFFF)
        assert sum(x.enqueued for x in q) + sum(x.dropped for x in q) >= 100
        drops = [e.skb_drop for e in of(col.events, "skb_drop", port) if e.skb_drop.reason_name.startswith("QDISC")]
        assert drops, "enqueue-time drops show up in kfree_skb with a QDISC_* reason"
        assert drops[0].attribution in (E.PACKET_ATTRIBUTION_HEADERS, E.PACKET_ATTRIBUTION_SOCKET)
        assert drops[0].tuple.dport == port
        col.settle(0.5)
        before = len(summaries(col.events))
    finally:
        in_ns(net.a, "tc", "qdisc", "del", "dev", net.veth_a, "root", check=False)
    # the qdisc's destruction is reported with a last summary window
    assert col.poll_until(lambda evs: len(summaries(evs)) > before)
    last = summaries(col.events)[-1]
    assert last.kind == "tbf" and last.window_end_ns >= last.window_start_ns
