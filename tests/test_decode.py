"""Decoding crafted ring-buffer records into L0 events (no kernel): envelopes, ids,
attribution rules, each record kind, summaries and folding, and refusal of bad records."""
import socket
import struct

import pytest

from gewtui.kernel.decode import Decoder, Vocab
from gewtui.kernel.probes import UNITS, drops, owner, queue, route, tcp_events, tcp_probe, tcp_state
from gewtui.kernel.probes.base import HDR, SOCK, TUPLE
from gewtui.pb import events_pb2 as E
from gewtui.runtime.tracefs import Tracefs
from tests.support.kernel_records import DATA, with_hist

SK, SK2 = 0xFFFF888000001000, 0xFFFF888000002000
NS_SOCK, NS_TASK = 4026532001, 4026531840
A, B = socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")


@pytest.fixture
def dec():
    vocab = Vocab.from_kernel(Tracefs(str(DATA)))
    vocab.ca_states = {0: "Open", 4: "Loss"}
    out = []
    d = Decoder(UNITS, vocab, out.append, clock=lambda: 999)
    d.out = out
    return d


def hdr(kind, ctx=0, pid=0, comm=b"", cpu=1, t=1000, netns=NS_TASK, probe=1):
    if ctx:
        pid, comm, netns = 0, b"", 0
    return HDR.pack(t, kind, ctx, probe, cpu, pid, pid, 1000 if pid else 0, netns, 77 if pid else 0, comm)


def tup(s=A, d=B, sport=40000, dport=80, family=2, proto=6):
    return TUPLE.pack(s.ljust(16, b"\0"), d.ljust(16, b"\0"), sport, dport, family, proto)


def sock_blob(segments=0, nbytes=0, first=100, last=200, zw=0, zws=0, netns=NS_SOCK, min_wnd=0xFFFFFFFF):
    return SOCK.pack(tup(), netns, 0, 55, first, last, segments, nbytes, zws, 10, 20, 30, 40, min_wnd, 50, 60, zw, 1)


def state_rec(sk=SK, old=7, new=2, **h):
    return hdr(tcp_state.K_STATE, **h) + tcp_state.STATE.pack(tup(), sk, NS_SOCK, old, new)


def test_process_context_envelope_and_state_change(dec):
    assert dec.record(state_rec(pid=42, comm=b"curl")) == 1
    ev = dec.out[0]
    assert ev.id == 1 and ev.ktime_ns == 1000 and ev.cpu == 1
    a = ev.attr
    assert (a.pid, a.tgid, a.comm, a.uid, a.cgroup_id, a.netns) == (42, 42, "curl", 1000, 77, NS_TASK)
    assert a.source == E.ATTRIBUTION_PROCESS_CONTEXT
    s = ev.tcp_state
    # the socket is named by the session's opaque id, never by its kernel address
    assert (s.old_state, s.new_state, s.sock) == (E.TCP_CLOSE, E.TCP_SYN_SENT, 1)
    assert (s.tuple.saddr, s.tuple.daddr, s.tuple.sport, s.tuple.dport) == (A, B, 40000, 80)
    assert s.tuple.family == 2 and s.tuple.protocol == 6


def test_softirq_events_take_the_socket_owner_or_nothing(dec):
    dec.record(state_rec(pid=42, comm=b"curl"))
    dec.record(state_rec(old=2, new=1, ctx=1))            # same socket, softirq
    dec.record(state_rec(sk=SK2, old=10, new=3, ctx=1))   # a socket nobody acted on yet
    owned, unknown = dec.out[1], dec.out[2]
    assert owned.attr.source == E.ATTRIBUTION_SOCKET_OWNER
    assert (owned.attr.tgid, owned.attr.comm, owned.attr.netns) == (42, "curl", NS_TASK)
    assert unknown.attr.source == E.ATTRIBUTION_NONE
    assert (unknown.attr.pid, unknown.attr.comm) == (0, "")
    assert unknown.attr.netns == NS_SOCK    # the socket's namespace, a kernel fact
    assert [e.id for e in dec.out] == [1, 2, 3]


def test_bad_records_are_counted_never_raised(dec):
    good = state_rec(pid=1)
    assert dec.record(good[:-1]) == 0                    # layout drift: one byte short
    assert dec.record(good + b"\0") == 0                 # or long
    assert dec.record(b"\1\2\3") == 0                    # shorter than a header
    assert dec.record(hdr(250) + b"\0" * 64) == 0        # unknown kind
    assert dec.decode_errors == 4 and dec.consumed == 4 and dec.out == []
    assert dec.record(good) == 1 and dec.out[0].id == 1  # ids only for events


def test_destroy_emits_final_probe_summary_and_forgets_owner(dec):
    dec.record(state_rec(pid=42, comm=b"srv"))
    dec.record(hdr(tcp_state.K_DESTROY, ctx=1) + tcp_state.DESTROY.pack(SK, 4242, sock_blob(segments=3, nbytes=300)))
    destroy, final = dec.out[1], dec.out[2]
    assert destroy.destroy.sock == dec.out[0].tcp_state.sock != SK and destroy.destroy.sock_cookie == 4242
    assert destroy.attr.source == E.ATTRIBUTION_SOCKET_OWNER and destroy.attr.tgid == 42
    p = final.tcp_probe
    assert p.final and p.segments == 3 and p.bytes == 300 and p.sock_cookie == 4242
    assert SK not in dec.owners
    # nothing counted: no summary
    dec.record(hdr(tcp_state.K_DESTROY, ctx=1) + tcp_state.DESTROY.pack(SK2, 1, sock_blob()))
    assert dec.out[-1].WhichOneof("body") == "destroy"


def test_probe_windows_add_up_to_the_kernel_totals(dec):
    assert tcp_probe.periodic(dec, [(SK, sock_blob(segments=0))]) == []
    w1 = tcp_probe.periodic(dec, [(SK, sock_blob(segments=5, nbytes=500, last=300))])
    assert tcp_probe.periodic(dec, [(SK, sock_blob(segments=5, nbytes=500, last=300))]) == []  # unchanged
    w2 = tcp_probe.periodic(dec, [(SK, sock_blob(segments=9, nbytes=700, last=400, zws=2, min_wnd=0))])
    (fin,) = tcp_probe.final_summary(dec, dec_hdr(), SK, 0, parse(sock_blob(segments=10, nbytes=750, last=500, zws=2)))
    windows = [w1[0].tcp_probe, w2[0].tcp_probe, fin.tcp_probe]
    assert [w.segments for w in windows] == [5, 4, 1]
    assert sum(w.bytes for w in windows) == 750
    assert [(w.window_start_ns, w.window_end_ns) for w in windows] == [(100, 300), (300, 400), (400, 500)]
    assert windows[0].min_snd_wnd == 0 and windows[1].zero_window_segments == 2
    assert windows[2].final and windows[2].zero_window_segments == 0


def test_srtt_histogram_windows_come_with_the_socket_entry(dec):
    """The histogram travels in struct gew_sock: each summary holds the buckets counted since
    the socket's previous one, whichever record or table read carried the entry."""
    first = [0] * 9 + [4, 6]
    (w1,) = tcp_probe.periodic(dec, [(SK, with_hist(sock_blob(segments=10, last=300), first))])
    zw = with_hist(sock_blob(segments=12, last=350, zw=1, zws=1), [0] * 9 + [5, 7])
    dec.record(hdr(tcp_probe.K_PROBE_ZW, ctx=1, probe=3) + tcp_probe.ZW.pack(SK, zw))
    last = with_hist(sock_blob(segments=15, last=400, zws=1), [0] * 9 + [5, 9, 0, 1])
    dec.record(hdr(tcp_state.K_DESTROY, ctx=1) + tcp_state.DESTROY.pack(SK, 0, last))
    w2, fin = dec.out[0].tcp_probe, dec.out[2].tcp_probe
    assert list(w1.tcp_probe.srtt_log2_hist) == first
    assert list(w2.srtt_log2_hist) == [0] * 9 + [1, 1]
    assert fin.final and list(fin.srtt_log2_hist) == [0] * 9 + [0, 2, 0, 1]
    assert [w1.tcp_probe.segments, w2.segments, fin.segments] == [10, 2, 3]
    # a socket whose segments came before any RTT sample: an empty histogram
    dec.record(hdr(tcp_state.K_DESTROY, ctx=1) + tcp_state.DESTROY.pack(SK2, 0, sock_blob(segments=2)))
    assert dec.out[-1].tcp_probe.final and not dec.out[-1].tcp_probe.srtt_log2_hist


def dec_hdr():
    from gewtui.kernel.probes.base import parse_header
    return parse_header(hdr(tcp_state.K_DESTROY, ctx=1))


def parse(blob):
    from gewtui.kernel.probes.base import parse_sock
    return parse_sock(blob)


def test_zero_window_edge_record(dec):
    dec.record(hdr(tcp_probe.K_PROBE_ZW, ctx=1, probe=3) + tcp_probe.ZW.pack(SK, sock_blob(segments=2, zw=1, zws=1)))
    p = dec.out[0].tcp_probe
    assert p.zero_window_now and p.zero_window_segments == 1 and not p.final


def test_resets_and_retransmits(dec):
    dec.record(hdr(tcp_events.K_RESET_SENT, ctx=1, probe=2)
               + tcp_events.RESET.pack(tup(), 0, 0, NS_SOCK, 0, 1, 1))
    dec.record(hdr(tcp_events.K_RESET_RECV, pid=9, comm=b"cli", probe=2)
               + tcp_events.RESET.pack(tup(), SK, 77, NS_SOCK, 2, 0, 2))
    dec.record(hdr(tcp_events.K_RETRANS, ctx=1, probe=2)
               + tcp_events.RETRANS.pack(tup(), SK, NS_SOCK, 1, 0, 0))
    sent, recv, rt = (e for e in dec.out)
    assert sent.reset.direction == E.RESET_SENT and sent.reset.reason_name == "NO_SOCKET" and sent.reset.sock == 0
    assert sent.attr.source == E.ATTRIBUTION_NONE and sent.attr.netns == NS_SOCK
    assert recv.reset.direction == E.RESET_RECEIVED and recv.reset.sock_cookie == 77 and recv.reset.reason_name == ""
    assert rt.retransmit.state == E.TCP_ESTABLISHED and rt.attr.tgid == 9   # owner learnt from the reset


@pytest.mark.parametrize("fast", [True, False])
def test_a_child_born_where_a_dying_socket_was_named_gets_its_own_id(fast):
    # a server socket is destroyed; a drop on it as it dies (QUEUE_PURGE) names its address
    # once more; the memory then serves a child the listener clones (LISTEN -> SYN_RECV):
    # a new life, a new id, or the child would pass for the dead connection
    vocab = Vocab.from_kernel(Tracefs(str(DATA)))
    out = []
    d = Decoder(UNITS, vocab, out.append, clock=lambda: 999, fast=fast)
    d.record(state_rec(sk=SK, old=10, new=3))
    d.record(state_rec(sk=SK, old=3, new=1))
    dead = out[-1].tcp_state.sock
    d.record(hdr(tcp_state.K_DESTROY) + tcp_state.DESTROY.pack(SK, 0, sock_blob()))
    d.record(hdr(drops.K_DROP, ctx=1, probe=5) + drops.DROP.pack(
        tup(), SK, 0xFFFFFFFF81000000, vocab.drop_reason_value("QUEUE_PURGE"), NS_SOCK, 3, 0x0800, 2, b"veth0"))
    named = out[-1].skb_drop.sock
    d.record(state_rec(sk=SK, old=10, new=3))                    # a child at the same address
    child = out[-1].tcp_state.sock
    assert len({dead, named, child}) == 3 and 0 not in (dead, named, child)
    d.record(state_rec(sk=SK, old=3, new=1))
    assert out[-1].tcp_state.sock == child


def test_drop_reasons_attribution_and_listen_overflow(dec):
    reasons = dec.vocab.drop_reasons
    nf = dec.vocab.drop_reason_value("NETFILTER_DROP")
    lo = dec.vocab.drop_reason_value("TCP_LISTEN_OVERFLOW")
    assert reasons[nf] == "NETFILTER_DROP"
    rec = lambda reason, how, sk=0: (hdr(drops.K_DROP, ctx=1, probe=5) + drops.DROP.pack(
        tup(), sk, 0xFFFFFFFF81000000, reason, NS_SOCK, 3, 0x0800, how, b"veth0"))
    dec.record(rec(nf, 1))
    dec.record(rec(nf, 3))
    dec.record(rec(lo, 2, SK))
    hdrs, none, ovf, q = dec.out
    assert hdrs.skb_drop.reason_name == "NETFILTER_DROP" and hdrs.skb_drop.tuple.dport == 80
    assert hdrs.skb_drop.attribution == E.PACKET_ATTRIBUTION_HEADERS and hdrs.skb_drop.ifname == "veth0"
    assert none.skb_drop.attribution == E.PACKET_ATTRIBUTION_NONE and not none.skb_drop.HasField("tuple")
    assert ovf.skb_drop.attribution == E.PACKET_ATTRIBUTION_SOCKET
    assert q.rcvq_full.listen_overflow and q.rcvq_full.sock == ovf.skb_drop.sock and q.rcvq_full.sock not in (0, SK)
    dec.record(hdr(drops.K_DROP, ctx=1, probe=5) + drops.DROP.pack(tup(), 0, 0, 60000, 0, 0, 0, 3, b""))
    assert dec.out[-1].skb_drop.reason_name == "reason 60000"   # unknown values are never named


def test_fib_folding_reports_previous_result_counts(dec):
    def fib(dev, count, prev, err=0):
        return hdr(route.K_FIB, ctx=1, probe=7, cpu=0) + route.FIB.pack(
            2, 254, err, 0, 1, NS_SOCK, A.ljust(16, b"\0"), B.ljust(16, b"\0"), b"\0" * 16,
            0, 53, 17, 0, dev, count, prev)
    dec.record(fib(b"eth0", 1, 0))
    dec.record(fib(b"eth1", 1, 7))     # result changed; 7 lookups still had eth0
    first, folded, second = dec.out
    assert folded.fib.device == "eth0" and folded.fib.count == 7
    assert second.fib.device == "eth1" and second.fib.count == 1 and second.fib.dst == B
    key = route.FIB_KEY.pack(NS_SOCK, 254, 2, 0, A.ljust(16, b"\0"), B.ljust(16, b"\0"))
    vals = [route.FIB_VAL.pack(1, 1, 3, 0), route.FIB_VAL.pack(1, 1, 0, 0)]   # cpu 0 folded 3
    (flushed,) = route.flush(dec, [(key, vals)], 5000)
    assert flushed.fib.device == "eth1" and flushed.fib.count == 3 and flushed.cpu == 0


def test_qdisc_summaries_are_window_deltas_over_cpus(dec):
    def q(enq, deq, last, drops_, base_drops=2, init=1, in_scope=1):
        return queue.QSTAT.pack(enq, deq, last, 3, 0x10000, 0xFFFFFFFF, NS_SOCK, 1, 100, drops_, 0, 4,
                                init, in_scope, b"tbf", b"veth0", 0, 0, base_drops, 0, 0)
    first = queue.summaries(dec, [(1, [q(10, 8, 50, 5), q(4, 4, 60, 6), q(0, 0, 0, 0, init=0)])], 1000)
    s = first[0].qdisc
    assert (s.enqueued, s.dequeued, s.dropped) == (14, 12, 4)   # drops since the baseline (2)
    assert (s.kind, s.ifname, s.netns, s.window_start_ns, s.window_end_ns) == ("tbf", "veth0", NS_SOCK, 0, 1000)
    assert queue.summaries(dec, [(1, [q(10, 8, 50, 5), q(4, 4, 60, 6)])], 2000) == []
    (again,) = queue.summaries(dec, [(1, [q(11, 9, 70, 9), q(4, 4, 60, 6)])], 3000)
    assert (again.qdisc.enqueued, again.qdisc.dropped, again.qdisc.window_start_ns) == (1, 3, 1000)
    assert queue.summaries(dec, [(2, [q(5, 5, 1, 0, in_scope=0)])], 4000) == []


def test_owner_and_neighbour(dec):
    dec.record(state_rec(pid=42, comm=b"old"))
    dec.record(hdr(owner.K_OWNER, pid=43, comm=b"new", probe=4) + owner.OWNER.pack(tup(), SK, NS_SOCK, 42, 1))
    o = dec.out[-1]
    assert o.owner.previous_tgid == 42 and o.owner.previous_comm == "old" and o.owner.via == "send"
    assert dec.owners[SK].tgid == 43
    dec.record(hdr(route.K_NEIGH, ctx=1, probe=7) + route.NEIGH.pack(
        2, NS_SOCK, 3, 1, 2, 6, B.ljust(16, b"\0"), b"\xaa" * 6 + b"\0" * 26, b"veth0"))
    n = dec.out[-1].neigh
    assert n.address == B and n.lladdr == b"\xaa" * 6 and n.new_state_name == "reachable"


def test_congestion_state_names(dec):
    dec.record(hdr(tcp_state.K_CONG, ctx=1) + tcp_state.CONG.pack(tup(), SK, NS_SOCK, 4))
    assert dec.out[0].cong_state.ca_state_name == "Loss"


def test_ipv6_tuple_keeps_sixteen_bytes(dec):
    a6 = socket.inet_pton(socket.AF_INET6, "fd00::1")
    b6 = socket.inet_pton(socket.AF_INET6, "fd00::2")
    dec.record(hdr(tcp_state.K_STATE, pid=1) + tcp_state.STATE.pack(tup(a6, b6, family=10), SK, 0, 7, 2))
    t = dec.out[0].tcp_state.tuple
    assert (t.saddr, t.daddr, t.family) == (a6, b6, 10)


def test_sockets_are_named_by_opaque_ids_one_per_life(dec):
    """No event carries a kernel address; a quiet socket keeps its id however many other
    addresses pass by; a new life at an address (leaving CLOSE, or after a destroy) gets a
    new id."""
    dec.sock_id_limit = 4
    dec.record(state_rec(sk=SK, old=7, new=2))                   # connect: a life begins
    dec.record(state_rec(sk=SK, old=2, new=1))
    first = dec.out[0].tcp_state.sock
    assert first and first == dec.out[1].tcp_state.sock
    for i in range(20):                                           # resets naming 20 timewait sockets
        dec.record(hdr(tcp_events.K_RESET_SENT, probe=2)
                   + tcp_events.RESET.pack(tup(), 0xFFFF888000100000 + 64 * i, 0, NS_SOCK, 6, 2, 1))
    dec.record(state_rec(sk=SK, old=1, new=4))
    assert dec.out[-1].tcp_state.sock == first                    # still the same socket
    dec.record(hdr(tcp_state.K_DESTROY) + tcp_state.DESTROY.pack(SK, 0, sock_blob()))
    assert dec.out[-1].destroy.sock == first
    dec.record(state_rec(sk=SK, old=7, new=2))                    # the address serves a new socket
    second = dec.out[-1].tcp_state.sock
    dec.record(state_rec(sk=SK, old=7, new=10))                   # and another life without a destroy
    assert len({first, second, dec.out[-1].tcp_state.sock}) == 3
    assert all(getattr(e, e.WhichOneof("body")).sock < 2**32 for e in dec.out)
