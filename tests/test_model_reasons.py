"""Reason chains: L3 -> L2 -> L1 -> L0, every node citing evidence the engine can return,
texts rendered from those events' fields, session context and the intervention trace."""
from __future__ import annotations

from tests.support.model_streams import ESTABLISHED, StreamBuilder

from gewtui.model.engine import Engine
from gewtui.pb import events_pb2 as E
from gewtui.pb import intervention_pb2, model_pb2


def run(s: StreamBuilder, **kw) -> Engine:
    eng = Engine(**kw)
    for ev in s.events:
        eng.feed(ev)
    return eng


def walk(n, depth=0):
    yield n, depth
    for c in n.children:
        yield from walk(c, depth + 1)


def by_kind(root, kind):
    return [n for n, _ in walk(root) if n.kind == kind]


def test_connection_refused_chain_cites_the_reset_and_the_close():
    s = StreamBuilder()
    c = s.refused("10.0.0.1", "10.0.0.2", 81)
    rst = s.events[1]
    close = s.events[2]
    eng = run(s)
    ch = eng.chain(1)
    root = ch.root
    assert root.layer == model_pb2.L3 and root.flow_id == 1
    [l2] = [n for n in root.children if n.layer == model_pb2.L2]
    assert l2.kind == "connection-refused" and l2.severity == "warning"
    assert list(l2.evidence_event_ids) == [rst.id, close.id]
    assert l2.text == (f"connection to 10.0.0.2:81 refused: reset received (event {rst.id}), then"
                       f" socket TCP_SYN_SENT -> TCP_CLOSE (event {close.id})")
    leaves = [n for n in l2.children]
    assert [n.layer for n in leaves] == [model_pb2.L0, model_pb2.L0]
    assert leaves[0].fields["direction"] == "RESET_RECEIVED"
    assert leaves[0].fields["sock"] == hex(c.sock)
    assert "reset received 10.0.0.1:" in leaves[0].text
    # The lifecycle node ties the close to the reset before it, on the same socket.
    life = [n for n in root.children if n.kind == "lifecycle" and "after a received reset" in n.text]
    assert life and list(life[0].evidence_event_ids) == [close.id, rst.id]
    assert "connection-refused" in root.text and root.severity == "warning"
    assert ch.allowed_interventions == []


def test_every_cited_event_is_returned_by_the_engine_even_after_the_recent_window():
    s = StreamBuilder()
    s.refused("10.0.0.1", "10.0.0.2", 81)
    for _ in range(50):
        s.qdisc("eth5")
    eng = run(s, recent_events=8)
    ch = eng.chain(1)
    ids = {e for n, _ in walk(ch.root) for e in n.evidence_event_ids}
    assert ids and all(eng.event(e) is not None and eng.event(e).id == e for e in ids)
    assert eng.event(20) is None            # neither cited nor recent
    assert eng.event(len(s.events)).id == len(s.events)


def storm() -> tuple[StreamBuilder, Engine]:
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    s.lossy(c, retransmits=6, every_ms=10)
    return s, run(s)


def test_every_l3_reaches_l0_through_l2_or_l1():
    _, eng = storm()
    root = eng.chain(1).root
    assert any(n.layer == model_pb2.L0 for n, _ in walk(root))
    for n, _ in walk(root):
        if n.layer in (model_pb2.L2,):
            assert n.children and all(ch.layer in (model_pb2.L0, model_pb2.L1) for ch in n.children)
        if n.layer == model_pb2.L0:
            assert len(n.evidence_event_ids) == 1 and not n.children


def test_storm_text_is_filled_from_its_evidence():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    ev = s.lossy(c, retransmits=5, every_ms=10)
    retx = [e for e in ev if e.WhichOneof("body") == "retransmit"]
    eng = run(s)
    [l2] = by_kind(eng.chain(1).root, "retransmission-storm")
    span = (retx[-1].ktime_ns - retx[0].ktime_ns) // 1_000_000
    assert l2.text == (f"5 retransmissions to 10.0.0.2:80 within {span} ms, events"
                       f" {retx[0].id}..{retx[-1].id}, first in TCP_ESTABLISHED")
    assert list(l2.evidence_event_ids) == [e.id for e in retx]
    assert eng.chain(1).allowed_interventions == ["drop"]


def test_path_nodes_and_route_change_link_parent_and_child():
    s = StreamBuilder()
    f1 = s.fib("10.0.0.2", device="veth1", gateway="10.0.1.1")
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    f2 = s.fib("10.0.0.2", device="veth2", gateway="10.0.2.1")
    eng = run(s)
    parent, child = eng.chain(1).root, eng.chain(2).root
    assert [n.text for n in parent.children if n.kind == "path"][0] == \
        "route to 10.0.0.2:80 via veth1 gw 10.0.1.1 (table 254)"
    [rc] = [n for n in child.children if n.kind == "route-change"]
    assert rc.text == ("path to 10.0.0.2:80 changed: veth1 gw 10.0.1.1 -> veth2 gw 10.0.2.1"
                       f" (route lookup event {f2.id}; flow 1 -> 2)")
    assert list(rc.evidence_event_ids) == [f2.id]
    [div] = rc.children
    assert div.layer == model_pb2.L1 and div.children[0].layer == model_pb2.L0
    assert div.children[0].fields["device"] == "veth2"
    emerged = [n for n in child.children if n.node_id.endswith("lifecycle/emerged")][0]
    assert "diverged from flow 1" in emerged.text
    assert f1.id in {e for n, _ in walk(parent) for e in n.evidence_event_ids}


def test_qdisc_evidence_says_it_is_per_qdisc_not_per_flow():
    s = StreamBuilder()
    s.routed("10.0.0.1", "10.0.0.2", 80, device="veth7")
    q = s.qdisc("veth7", dropped=3)
    eng = run(s)
    root = eng.chain(1).root
    [l2] = by_kind(root, "queue-drops")
    assert l2.children[0].text.endswith("(per-qdisc counter, not per-flow)")
    ctx = [n for n in root.children if n.node_id.endswith("path/context")]
    assert ctx and list(ctx[0].evidence_event_ids) == [q.id]
    assert "not per flow" in ctx[0].text


def test_lost_records_make_the_session_incomplete_and_note_active_flows():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    t1 = s.t
    s.wait(5)
    lost = s.lost(17, t1=t1, t2=s.t)
    s.transfer(c, 1)
    eng = Engine()
    changes = []
    for ev in s.events:
        changes.extend(eng.feed(ev))
    assert eng.stats["complete"] is False and eng.stats["lost_records"] == 17
    assert [x.kind for x in changes if x.flow_id == 0] == ["lost"]
    root = eng.chain(1).root
    [sess] = [n for n in root.children if n.kind == "session" and n.node_id.endswith("/session")]
    assert "observation incomplete, 17 records lost" in sess.text
    [note] = sess.children
    assert note.text == f"up to 17 records may be missing between {t1} and {lost.lost.window_end_ns} ns (ringbuf-reserve)"
    assert list(note.evidence_event_ids) == [lost.id]
    assert root.fields["complete"] == "false"


def test_loss_before_a_flow_existed_is_not_noted_on_it():
    s = StreamBuilder()
    s.lost(5, t1=s.t - 1000, t2=s.t)
    s.wait(10)
    s.connect("10.0.0.1", "10.0.0.2", 80)
    eng = run(s)
    [sess] = [n for n in eng.chain(1).root.children if n.node_id.endswith("/session")]
    assert list(sess.children) == [] and "0 loss window(s)" in sess.text


def test_intervention_trace_appears_in_the_chain():
    s, eng = storm()
    rec = intervention_pb2.InterventionRecord(intervention_id=7, flow_id=1,
                                              action=intervention_pb2.DROP,
                                              outcome=intervention_pb2.EFFECTIVE)
    rec.gate.at_event_id = s.events[-1].id
    rec.verification.verdict = "no retransmits after the drop"
    rec.verification.evidence_event_ids.append(s.events[-2].id)
    eng.add_intervention(rec)
    ch = eng.chain(1)
    assert list(ch.intervention_ids) == [7]
    [node] = [n for n in ch.root.children if n.kind == "intervention"]
    assert node.text == "intervention 7: DROP EFFECTIVE (no retransmits after the drop)"
    assert sorted(node.evidence_event_ids) == sorted([s.events[-1].id, s.events[-2].id])
    assert all(c.layer == model_pb2.L0 for c in node.children)


def test_lineage_names_sockets_and_processes():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80, tgid=10, comm="curl")
    s.established(c)
    s.owner(c, 11, "curl-child")
    eng = run(s)
    lin = [n for n in eng.chain(1).root.children if n.kind == "lineage"]
    assert lin[0].text == f"1 connection(s); sockets {hex(c.sock)} (ESTABLISHED)"
    assert lin[1].text == "processes: curl[10] via state, curl-child[11] via send"


def test_sockless_reset_and_unattributed_drops_stay_out_of_flows():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    s.reset(c, E.RESET_SENT, state=ESTABLISHED, sock=0)
    s.drop("NO_SOCKET", attribution=E.PACKET_ATTRIBUTION_NONE, ifname="lo")
    eng = run(s)
    f = eng.flow(1)
    assert f.counters.resets_sent == 0 and f.counters.drops == 0
    assert eng.stats["unattributed"] == 2


def test_node_ids_are_unique_within_a_chain():
    s = StreamBuilder()
    c = s.refused("10.0.0.1", "10.0.0.2", 81)
    del c
    s.fib("10.0.0.3", device="veth1")
    d = s.connect("10.0.0.1", "10.0.0.3", 80)
    s.established(d)
    s.lossy(d, 6, 10)
    s.fib("10.0.0.3", device="veth2")
    eng = run(s)
    for ch in eng.chains():
        ids = [n.node_id for n, _ in walk(ch.root)]
        assert len(ids) == len(set(ids)), ids
