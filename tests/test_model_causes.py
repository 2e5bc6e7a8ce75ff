"""Golden tests of the cause rules (gewtui/model/causes/*.toml): for each rule a stream where
the cause is physically tied to the effect (the link's text is compared whole, and it cites
the events on both sides), and one where the cause is present but not tied (no link, and L3
says "cause not observed")."""
from __future__ import annotations

import pytest

from gewtui.model.causes import CauseRuleError, load_rules, packaged_rules, parse_rule
from gewtui.model.engine import Engine
from gewtui.model.templates import TemplateError, load_templates
from gewtui.pb import events_pb2 as E
from tests.support.model_streams import ESTABLISHED, LISTEN, SYN_SENT, Conn, StreamBuilder

SERVER_NS = 4026532999


def _fold(s):
    eng = Engine()
    for ev in s.events:
        eng.feed(ev)
    return eng


def _links(eng, fid=None):
    """(kind, rule, text, evidence ids) of every L3 cause node of the flows."""
    out = []
    for ch in eng.chains():
        if fid is not None and ch.flow_id != fid:
            continue
        for n in ch.root.children:
            if n.kind in ("cause", "cause-not-observed"):
                out.append((n.kind, n.fields.get("rule", n.fields.get("rules", "")), n.text,
                            list(n.evidence_event_ids), ch.flow_id))
    return out


def _only(links, kind, effect=None):
    return [x for x in links if x[0] == kind and (effect is None or effect in x[2])]


# -- drops -> retransmissions ------------------------------------------------------------------
def _drops_then_storm(gap_ms: float):
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    drop = s.drop("NETFILTER_DROP", c, ifname="veth0", count=25, netns=SERVER_NS)
    s.wait(gap_ms)
    storm = s.lossy(c, retransmits=6, every_ms=50)
    return s, drop, storm


def test_drops_explain_a_retransmission_storm():
    s, drop, storm = _drops_then_storm(100)
    links = _links(_fold(s))
    (link,) = _only(links, "cause")
    retx = [e for e in storm if e.WhichOneof("body") == "retransmit"][0]
    assert link[1] == "drops-retransmissions"
    assert link[2] == (
        f"retransmission-storm on flow 1 because 25 of its packets were dropped (netfilter-drop:"
        f" NETFILTER_DROP at no location recorded in netns {SERVER_NS} on veth0); drop event"
        f" {drop.id} came 150.2 ms before retransmit event {retx.id}")
    assert link[3] == [drop.id, retx.id]


def test_drops_long_before_the_storm_are_not_its_cause():
    s, _drop, _storm = _drops_then_storm(20_000)    # beyond the rule's 10 s window
    links = _links(_fold(s))
    assert not _only(links, "cause")
    (nc,) = _only(links, "cause-not-observed")
    assert nc[2].startswith("cause not observed: retransmission-storm (events ")
    assert nc[2].endswith("no drop of this flow's packets (netfilter, receive queue); nor listen overflow"
                          " at the peer's listener (ListenOverflows unchanged or not read); nor queue drop"
                          " on this flow's path; nor route change of this flow tied to it"), nc[2]


def _other_end(same_connection: bool):
    """Client and server of one conversation observed in two namespaces; netfilter drops in
    the server's namespace are counted on the server's flow."""
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80, lport=40001)
    s.established(c)
    lst = Conn("10.0.0.2", 80, "0.0.0.0", 0, s.new_sock(), SERVER_NS, 500, "nginx")
    s.state(lst, 7, LISTEN)
    srv = s.accept(lst, "10.0.0.1", 40001, incomplete_first=False)
    other = Conn("10.0.0.2", 80, "10.0.0.1", 40002, s.new_sock(), SERVER_NS, 500, "nginx")
    s.state(other, 3, ESTABLISHED)
    drop = s.drop("NETFILTER_DROP", srv if same_connection else other, reverse=True, count=7,
                  netns=SERVER_NS)
    storm = s.lossy(c, retransmits=6, every_ms=50)
    return s, drop, [e for e in storm if e.WhichOneof("body") == "retransmit"]


def test_drops_at_the_other_end_of_the_same_connection_explain_its_retransmissions():
    s, drop, retx = _other_end(True)
    eng = _fold(s)
    (link,) = [x for x in _only(_links(eng), "cause") if x[4] == 1]
    assert link[2] == (
        f"retransmission-storm on flow 1 because packets of its connection were dropped at the other"
        f" end (netfilter-drop: NETFILTER_DROP at no location recorded in netns {SERVER_NS} on veth0; 7"
        f" packet(s) dropped there in all, counted on flow 3); drop event {drop.id} names this"
        f" connection and came 50.2 ms before retransmit event {retx[0].id}")


def test_drops_of_another_connection_at_the_other_end_are_not_tied():
    s, _drop, _retx = _other_end(False)
    links = _links(_fold(s), 1)
    assert not _only(links, "cause")
    assert _only(links, "cause-not-observed", "retransmission-storm")


# -- queue drops on the path -> retransmissions --------------------------------------------
def _queue(dev: str):
    s = StreamBuilder()
    s.fib("10.0.0.2", device="veth7")
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    q = s.qdisc(dev, dropped=12, overlimits=30)
    storm = s.lossy(c, retransmits=6, every_ms=50)
    return s, q, storm


def test_queue_drops_on_the_path_explain_retransmissions():
    s, q, storm = _queue("veth7")
    (link,) = _only(_links(_fold(s)), "cause")
    assert link[1] == "queue-drops-retransmissions"
    assert "because a queue on its path dropped packets (" in link[2]
    assert "on veth7" in link[2] and "counted per interface, not per flow" in link[2]
    assert link[3][0] == q.id


def test_queue_drops_off_the_path_are_not_tied():
    s, _q, _storm = _queue("veth9")                   # another interface: not this flow's path
    links = _links(_fold(s))
    assert not _only(links, "cause")
    assert _only(links, "cause-not-observed", "retransmission-storm")


# -- route change -> retransmissions -----------------------------------------------------------
def test_retransmissions_after_the_route_moved_are_tied_to_the_route_change():
    s = StreamBuilder()
    s.fib("10.0.0.2", device="veth1")
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    s.transfer(c, 1)
    moved = s.fib("10.0.0.2", device="veth2")
    storm = s.lossy(c, retransmits=6, every_ms=50)
    retx = [e for e in storm if e.WhichOneof("body") == "retransmit"][0]
    eng = _fold(s)
    (link,) = _only(_links(eng), "cause")
    assert link[1] == "route-change-effects" and link[4] == 2      # on the child flow
    assert link[2] == (f"retransmission-storm on flow 2 50.2 ms after the route to 10.0.0.2:80 moved to"
                       f" veth2 (route lookup event {moved.id}, effect event {retx.id})")
    assert link[3] == [moved.id, retx.id]


def test_a_storm_before_the_route_moved_is_not_caused_by_it():
    s = StreamBuilder()
    s.fib("10.0.0.2", device="veth1")
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    s.lossy(c, retransmits=6, every_ms=50)
    s.fib("10.0.0.2", device="veth2")                # the route moves after the storm
    links = _links(_fold(s))
    assert not _only(links, "cause")
    assert _only(links, "cause-not-observed", "retransmission-storm")


# -- zero window -> stall ----------------------------------------------------------------------
def _zw_and_loss(same_socket: bool):
    s = StreamBuilder()
    a = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(a)
    b = a
    if not same_socket:
        b = s.connect("10.0.0.1", "10.0.0.2", 80)   # a second connection of the same flow
        s.established(b)
    zw = s.probe(a, segments=2, zero_window=2)
    s.wait(300)
    loss = s._c(b, "cong_state", E.TcpCongState(tuple=b.tuple(), sock=b.sock, ca_state=4,
                                                  ca_state_name="Loss"))
    return s, zw, loss


def test_a_zero_window_explains_a_stall_of_the_same_connection():
    s, zw, loss = _zw_and_loss(True)
    (link,) = _only(_links(_fold(s)), "cause")
    assert link[1] == "zero-window-stall"
    assert link[2] == (f"stall on flow 1 because the peer 10.0.0.2:80 closed its receive window on the"
                       f" same connection (summary event {zw.id}, 300.1 ms before event {loss.id})")


def test_a_zero_window_on_another_connection_does_not_explain_a_stall():
    s, _zw, _loss = _zw_and_loss(False)
    links = _links(_fold(s))
    assert not _only(links, "cause")
    (nc,) = _only(links, "cause-not-observed", "stall")
    assert nc[2].endswith("; nor route change of this flow; nor zero window on the same connection tied"
                          " to it"), nc[2]
    assert "no drop of this flow's packets" in nc[2]


# -- listen overflow -> handshake timeout -----------------------------------------------------
def _overflow(after: int):
    s = StreamBuilder()
    before = s.facts(netns=SERVER_NS, name="server", listen_overflows=5)
    lst = Conn("10.0.0.2", 80, "0.0.0.0", 0, 7, SERVER_NS, 500, "nginx")
    s.inventory(lst, LISTEN)
    s.handshake_timeout("10.0.0.1", "10.0.0.2", 80)
    # as a live session does: the counters read again after the SYN retransmits
    later = s.facts(netns=SERVER_NS, name="server", when="handshake-timeout", listen_overflows=after)
    return s, before, later


def test_listen_overflows_rising_explain_a_handshake_timeout():
    s, before, later = _overflow(9)
    eng = _fold(s)
    (link,) = _only(_links(eng), "cause")
    assert link[1] == "listen-overflow-handshake"
    ht = [e for e in s.events if e.WhichOneof("body") == "retransmit"][0]
    assert link[2] == (f"handshake-timeout on flow 2 because the listener on its peer's port (flow 1,"
                       f" netns {SERVER_NS}) overflowed: ListenOverflows rose by 4 between events"
                       f" {before.id} and {later.id}, around event {ht.id}")
    assert link[3] == [before.id, later.id, ht.id]


def test_an_unchanged_listen_overflows_counter_is_no_cause():
    s, _b, _l = _overflow(5)
    links = _links(_fold(s))
    assert not _only(links, "cause")
    (nc,) = _only(links, "cause-not-observed", "handshake-timeout")
    assert "listen overflow at the peer's listener (ListenOverflows unchanged or not read)" in nc[2]


def _overflow_then_storm(after: int):
    # the listener dropped the handshake's last ACK: the client is ESTABLISHED and retransmits
    s = StreamBuilder()
    before = s.facts(netns=SERVER_NS, name="server", listen_overflows=5)
    s.inventory(Conn("0.0.0.0", 80, "0.0.0.0", 0, 7, SERVER_NS, 500, "nginx"), LISTEN)
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    storm = s.lossy(c, retransmits=6, every_ms=200)
    later = s.facts(netns=SERVER_NS, name="server", when="end", listen_overflows=after)
    return s, before, later, [e for e in storm if e.WhichOneof("body") == "retransmit"]


def test_listen_overflows_explain_retransmissions_of_a_connection_the_listener_dropped():
    s, before, later, retx = _overflow_then_storm(6)
    (link,) = _only(_links(_fold(s)), "cause")
    assert link[1] == "listen-overflow-stall"
    assert link[2] == (f"retransmission-storm on flow 2 because the listener on its peer's port (flow 1,"
                       f" netns {SERVER_NS}) overflowed and dropped handshakes it had answered:"
                       f" ListenOverflows rose by 1 between events {before.id} and {later.id}, around"
                       f" event {retx[0].id}")


def test_a_listener_on_another_port_is_not_tied():
    s, *_ = _overflow_then_storm(6)
    s.events[1].inventory.tuple.sport = 8080           # the listener is on 8080, the flow on 80
    links = _links(_fold(s))
    assert not _only(links, "cause")
    assert _only(links, "cause-not-observed", "retransmission-storm")


# -- netfilter reject -> refused -----------------------------------------------------------------
def _refused(tied: bool):
    s = StreamBuilder()
    other = s.connect("10.0.0.1", "10.0.0.2", 8081)
    c = s.connect("10.0.0.1", "10.0.0.2", 8081)
    drop = s.drop("NETFILTER_DROP", c if tied else other, reverse=True, netns=SERVER_NS)
    s.reset(c, E.RESET_RECEIVED, state=SYN_SENT)
    end = s.state(c, SYN_SENT, 7)
    return s, drop, end


def test_a_netfilter_reject_explains_the_refused_connection():
    s, drop, end = _refused(True)
    (link,) = _only(_links(_fold(s)), "cause")
    assert link[1] == "netfilter-reject-refused"
    assert link[2] == (f"connection-refused on flow 1 because netfilter rejected the attempt: its packet"
                       f" was dropped (NETFILTER_DROP in netns {SERVER_NS}, event {drop.id}) 0.2 ms before"
                       f" the attempt ended after the reset (tcp_state event {end.id})")
    assert link[3] == [drop.id, end.id]


def test_a_netfilter_drop_of_another_connection_does_not_explain_a_refusal():
    s, _drop, _rst = _refused(False)
    links = _links(_fold(s))
    assert not _only(links, "cause")
    assert _only(links, "cause-not-observed", "connection-refused")


# -- the rules as data ---------------------------------------------------------------------------
def test_packaged_rules_cover_the_required_pairs():
    pairs = {(c, e) for r in packaged_rules() for c in r.causes for e in r.effects}
    for need in [("netfilter-drop", "retransmission-storm"), ("netfilter-drop", "handshake-timeout"),
                 ("queue-drops", "retransmission-storm"), ("route-change", "peer-reset"),
                 ("route-change", "retransmission-storm"), ("route-change", "stall"),
                 ("zero-window", "stall"), ("listen-overflow", "handshake-timeout"),
                 ("netfilter-drop", "connection-refused")]:
        assert need in pairs, need


@pytest.mark.parametrize("data,msg", [
    ({"id": "x"}, "causes: missing"),
    ({"id": "x", "causes": ["nope"], "effects": ["stall"], "tie": "flow", "window_ms": 5, "text": "t",
      "unobserved": "u"}, "causes: unknown template 'nope'"),
    ({"id": "x", "causes": ["stall"], "effects": ["stall"], "tie": "near", "window_ms": 5, "text": "t",
      "unobserved": "u"}, "tie: must be one of socket, flow, listener"),
    ({"id": "x", "causes": ["stall"], "effects": ["stall"], "tie": "flow", "window_ms": 5, "text": "{guess}",
      "unobserved": "u"}, "text: unknown placeholder {guess}"),
])
def test_bad_rules_are_one_line_errors(data, msg):
    with pytest.raises(CauseRuleError) as ei:
        parse_rule(data, "my/x.toml", known=load_templates().ids())
    assert msg in str(ei.value) and "\n" not in str(ei.value)


def test_user_rules_come_from_a_causes_subdirectory(tmp_path):
    (tmp_path / "causes").mkdir()
    (tmp_path / "stall.toml").write_text((load_templates().get("stall").source and
                                          open(load_templates().get("stall").source).read()))
    (tmp_path / "causes" / "zero-window-stall.toml").write_text(
        'id = "zero-window-stall"\ncauses = ["zero-window"]\neffects = ["stall"]\ntie = "socket"\n'
        'window_ms = 100\ntext = "narrow: {effect} after {cause}"\nunobserved = "zero window"\n')
    with pytest.raises(TemplateError, match="packaged cause rule; replacing it needs --override-template zero-window-stall"):
        load_templates([tmp_path], allow_override=["stall"])
    ts = load_templates([tmp_path], allow_override=["stall", "zero-window-stall"])
    r = {x.id: x for x in ts.causes}["zero-window-stall"]
    assert r.window_ns == 100_000_000
    eng = Engine(templates=ts)
    s, _zw, _loss = _zw_and_loss(True)                 # 300 ms apart: beyond the user's 100 ms
    for ev in s.events:
        eng.feed(ev)
    assert not _only(_links(eng), "cause")
    assert load_rules(known=ts.ids())                  # the packaged ones still load alone
