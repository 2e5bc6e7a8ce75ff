"""Truthful texts: totals in reason texts equal the flow's counters (not the evidence kept),
no field is left empty, IPv6 addresses are bracketed wherever a port or another address
follows."""
from __future__ import annotations

from gewtui.model.engine import Engine
from gewtui.model.event_text import event_text
from gewtui.pb import events_pb2 as E
from tests.support.model_streams import StreamBuilder


def _fold(events):
    eng = Engine()
    for ev in events:
        eng.feed(ev)
    return eng


def _l2(eng, fid, kind):
    return [n for n in eng.chain(fid).root.children if n.kind == kind]


def test_netfilter_total_is_the_flows_drop_counter_and_no_field_is_empty():
    s = StreamBuilder()
    c = s.connect("10.211.0.2", "10.211.0.1", 80)
    s.established(c)
    for i in range(40):                      # more records than an episode keeps (32)
        s.drop("NETFILTER_DROP", c, ifname="", count=87 + i % 3)
    eng = _fold(s.events)
    f = eng.flows()[0]
    want = sum(87 + i % 3 for i in range(40))
    assert f.counters.drops == want
    (n,) = _l2(eng, f.flow_id, "netfilter-drop")
    assert f"netfilter dropped {want} packet(s)" in n.text, n.text
    assert "in 40 record(s)" in n.text
    assert " on no interface (the kernel named none)" in n.text
    assert "  " not in n.text and "on  " not in n.text
    assert len(n.evidence_event_ids) == 32   # kept evidence is bounded; the total is not


def test_zero_window_sum_covers_every_summary():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    for _ in range(50):
        s.probe(c, zero_window=3)
    eng = _fold(s.events)
    f = eng.flows()[0]
    (n,) = _l2(eng, f.flow_id, "zero-window")
    assert f.counters.zero_window_segments == 150
    assert "150 segments under it in 50 summaries" in n.text, n.text


def test_ipv6_is_bracketed_in_keys_and_event_texts():
    s = StreamBuilder()
    c = s.connect("fd00::1", "fd00::2", 8080)
    s.established(c)
    s.retransmit(c)
    eng = _fold(s.events)
    f = eng.flows()[0]
    assert f.key.startswith("tcp [fd00::1] -> [fd00::2]:8080"), f.key
    txt = event_text(s.events[-1])
    assert "[fd00::1]:" in txt and "-> [fd00::2]:8080" in txt, txt
    fib = E.Event(id=9, ktime_ns=1)
    fib.fib.dst, fib.fib.src, fib.fib.dport, fib.fib.device = (
        bytes.fromhex("fd000000000000000000000000000002"), b"", 80, "veth0")
    assert "* -> [fd00::2]:80" in event_text(fib)


def test_connect_latency_and_srtt_distribution_of_a_flow():
    s = StreamBuilder()
    c1 = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.wait(3)
    s.established(c1)                        # 3.1 ms
    c2 = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.wait(40)
    s.established(c2)                        # 40.1 ms
    p = s.probe(c1)
    p.tcp_probe.srtt_log2_hist.extend([0] * 9 + [4, 6])      # 512-1024 us: 4, 1-2 ms: 6
    p = s.probe(c2)
    p.tcp_probe.srtt_log2_hist.extend([0] * 10 + [5])
    eng = _fold(s.events)
    f = eng.flow(1)
    assert f.connect_latency_min_us == 3100 and f.connect_latency_max_us == 40100
    assert sum(f.connect_latency_log2_hist) == 2
    assert list(f.srtt_log2_hist) == [0] * 9 + [4, 11]
    (lat,) = [n for n in eng.chain(1).root.children if n.kind == "latency"]
    assert lat.text == ("connect latency over 2 connection(s): least 3100 us, median in 2ms-4ms,"
                        " greatest 40100 us; srtt over 15 segment(s): median in 1ms-2ms, highest in 1ms-2ms")


def test_a_socket_seen_mid_handshake_has_no_connect_latency():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.events.pop(0)                          # its SYN_SENT transition was before the session
    c.sock = s.new_sock()
    s.state(c, 2, 1)
    eng = _fold(s.events)
    f = eng.flows()[0]
    assert f.connect_latency_max_us == 0 and not f.connect_latency_log2_hist


def test_srtt_per_peer_over_its_flows_and_in_the_flow_row():
    from gewtui.debugger.view_values import flow_row

    s = StreamBuilder()
    a = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(a)
    b = s.connect("10.0.0.1", "10.0.0.2", 443)          # another service of the same peer
    s.established(b)
    s.probe(a).tcp_probe.srtt_log2_hist.extend([0] * 9 + [3])
    s.probe(b).tcp_probe.srtt_log2_hist.extend([0] * 12 + [5])
    eng = _fold(s.events)
    (lat,) = [n for n in eng.chain(1).root.children if n.kind == "latency"]
    assert lat.text == ("connect latency over 1 connection(s): least 100 us, median in 64us-128us, greatest"
                        " 100 us; srtt over 3 segment(s): median in 512us-1ms, highest in 512us-1ms; to 10.0.0.2"
                        " over its 2 flows: srtt over 8 segment(s): median in 4ms-8ms, highest in 4ms-8ms")
    assert flow_row(eng.flow_summary(2)).srtt == "4ms-8ms"
