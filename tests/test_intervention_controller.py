"""The intervention controller over fakes: gate → execute → log → verify → expire / undo,
rollback on failure, removal on session end, scope loss and recording failure, and a replay
that can never get a controller."""
from __future__ import annotations

import pytest

from gewtui.errors import GateRefused, UsageError
from gewtui.intervene import controller as ctl
from gewtui.intervene.classifier import DenyTuple
from gewtui.intervene.controller import (DropFailed, InterventionController, ReplayInert,
                                         parse_ttl)
from gewtui.intervene.targets import (Attachment, attachments_for, deny_entries, flow_key,
                                      member_tuples)
from gewtui.intervene.gate import Confirmation
from gewtui.intervene.log import Actor
from gewtui.pb import events_pb2, intervention_pb2 as ipb

from tests.support.intervention_fakes import (ARGV, SID, Clock, FakeBackend, FakeEngine,
                                              FakeRecorder, FakeSession, Itf, deny_tuple,
                                              make_chain, make_flow, tup)


@pytest.fixture
def world():
    clock = Clock()
    s, e, r, b = FakeSession(), FakeEngine(), FakeRecorder(), FakeBackend()
    for fid in (1, 2):
        e.flows[fid] = make_flow(fid)
        e.chains[fid] = make_chain(fid)
    c = InterventionController(s, e, r, backend=b, ttl_s=60, clock=clock, argv=ARGV,
                               actor=Actor(1000, "/dev/pts/3", 1000))
    return c, s, e, r, b, clock


def conf(clock, fid, typed=None, sid=SID):
    return Confirmation(typed=str(fid) if typed is None else typed, flow_id=fid,
                        session_id=sid, created_ns=clock())


def outcomes(recs):
    return [ipb.InterventionOutcome.Name(r.outcome) for r in recs]


def test_drop_executes_logs_and_denies_only_the_flow(world):
    c, s, e, r, b, clock = world
    rec = c.request_drop(1, conf(clock, 1))
    assert rec.outcome == ipb.ACTIVE and rec.action == ipb.DROP
    # one entry for the connection even though both of its sockets are members; no listener
    assert set(b.map) == {deny_tuple(1)}
    assert b.attached == {Attachment("ns-a", "veth-a", 4001)}
    assert list(rec.interfaces) == ["ns-a/veth-a"]
    assert (rec.uid, rec.tty, rec.session_id, rec.flow_id) == (1000, "/dev/pts/3", SID, 1)
    assert rec.gate.allowed and len(rec.gate.conditions) == 6
    assert rec.reason_chain.flow_id == 1 and rec.reason_chain.allowed_interventions == ["drop"]
    assert rec.ttl_ns == 60 * 10**9 and rec.expires_ktime_ns == clock() + 60 * 10**9
    assert r.records == [rec] and r.flushes >= 1
    assert e.interventions == [rec]
    assert not b.hit(deny_tuple(2))            # another flow's packets pass


def test_refusal_is_logged_and_touches_nothing(world):
    c, s, e, r, b, clock = world
    s.lost = 4
    with pytest.raises(GateRefused) as ei:
        c.request_drop(1, conf(clock, 1))
    assert "complete" in ei.value.message
    assert outcomes(r.records) == ["REFUSED"] and e.interventions == r.records
    assert [x.name for x in r.records[0].gate.conditions if not x.ok] == ["complete"]
    assert b.calls == [] and b.map == {}


def test_refusal_without_any_backend_loads_nothing(monkeypatch):
    import gewtui.intervene.backend as backend_mod

    def boom(*a, **k):
        raise AssertionError("a refused drop must not load the classifier")

    monkeypatch.setattr(backend_mod, "KernelDropBackend", boom)
    s, e = FakeSession(allow_intervention=False), FakeEngine()
    e.flows[1], e.chains[1] = make_flow(1), make_chain(1)
    c = InterventionController(s, e, None, argv=ARGV)
    with pytest.raises(GateRefused):
        c.request_drop(1, Confirmation.typed_now("1", 1, SID))
    c.tick()
    c.close()


def test_confirmation_for_one_flow_never_drops_another(world):
    c, s, e, r, b, clock = world
    k = conf(clock, 1)
    with pytest.raises(GateRefused) as ei:
        c.request_drop(2, k)
    assert "confirmation" in ei.value.message
    # typed the other flow's id into flow 2's dialog
    with pytest.raises(GateRefused):
        c.request_drop(2, Confirmation("1", 2, SID, clock()))
    assert b.map == {}
    # and the confirmation was used up by the refused attempt
    with pytest.raises(GateRefused):
        c.request_drop(1, k)
    assert b.map == {}
    assert c.request_drop(1, conf(clock, 1)).outcome == ipb.ACTIVE
    assert set(b.map) == {deny_tuple(1)}


def test_second_drop_on_same_flow_is_refused(world):
    c, s, e, r, b, clock = world
    c.request_drop(1, conf(clock, 1))
    with pytest.raises(UsageError):
        c.request_drop(1, conf(clock, 1))


def test_verification_no_effect_then_effective(world):
    c, s, e, r, b, clock = world
    c.request_drop(1, conf(clock, 1))
    clock.advance(1)
    assert c.tick() == []                         # too early to say "no effect"
    clock.advance(3)
    (v1,) = c.tick()
    assert v1.outcome == ipb.NO_EFFECT_SEEN and v1.verification.dropped_packets == 0
    assert c.tick() == []                         # no change, no new record
    # the client retransmits into the drop; the engine saw it as well
    assert b.hit(deny_tuple(1), 3)
    ev = events_pb2.Event(id=77, ktime_ns=clock())
    ev.retransmit.tuple.CopyFrom(tup(1))
    c.observe(ev)
    e.flows[1].counters.retransmits += 2
    (v2,) = c.tick()
    assert v2.outcome == ipb.EFFECTIVE
    assert v2.intervention_id == v1.intervention_id
    assert v2.verification.dropped_packets == 3
    assert v2.verification.retransmits_after == 2
    assert list(v2.verification.evidence_event_ids) == [77]
    assert "effective" in v2.verification.verdict


def test_evidence_ignores_other_flows_and_earlier_events(world):
    c, s, e, r, b, clock = world
    c.request_drop(1, conf(clock, 1))
    for i, (t, k) in enumerate([(tup(2), clock()), (tup(1), clock() - 1)]):
        ev = events_pb2.Event(id=100 + i, ktime_ns=k)
        ev.reset.tuple.CopyFrom(t)
        c.observe(ev)
    b.hit(deny_tuple(1))
    assert c.tick() == []            # packets dropped, no reaction seen yet: keep watching
    clock.advance(c.verify_after_ns / 1e9)
    (v,) = c.tick()
    assert v.outcome == ipb.EFFECTIVE
    assert list(v.verification.evidence_event_ids) == [] and v.verification.resets_after == 0


def test_an_effective_verdict_cites_the_flows_reaction_once_it_is_seen(world):
    c, s, e, r, b, clock = world
    c.request_drop(1, conf(clock, 1))
    b.hit(deny_tuple(1))
    assert c.tick() == []
    ev = events_pb2.Event(id=200, ktime_ns=clock())
    ev.retransmit.tuple.CopyFrom(tup(1))
    c.observe(ev)
    (v,) = c.tick()
    assert v.outcome == ipb.EFFECTIVE and list(v.verification.evidence_event_ids) == [200]


def test_ttl_expiry_removes_on_time(world):
    c, s, e, r, b, clock = world
    c.request_drop(1, conf(clock, 1))
    b.hit(deny_tuple(1), 5)
    clock.advance(59.9)
    assert [x.outcome for x in c.tick()] == [ipb.EFFECTIVE]
    assert c.active()[0].remaining_s == pytest.approx(0.1, abs=1e-6)
    clock.advance(0.1)
    (end,) = c.tick()
    assert end.outcome == ipb.EXPIRED and end.action == ipb.UNDO and end.refers_to == 1
    assert end.verification.dropped_packets == 5
    assert b.map == {} and b.attached == set() and c.active() == []


def test_undo_and_shared_interfaces(world):
    c, s, e, r, b, clock = world
    c.request_drop(1, conf(clock, 1))
    c.request_drop(2, conf(clock, 2))
    assert len(b.attached) == 1 and b.calls.count("attach ns-a/veth-a") == 1
    u = c.undo(flow_id=1)
    assert u.outcome == ipb.UNDONE and u.refers_to == 1
    assert set(b.map) == {deny_tuple(2)}
    assert b.attached                               # flow 2 still needs the filter
    c.undo()                                        # the latest one
    assert b.map == {} and b.attached == set()
    with pytest.raises(UsageError):
        c.undo()


def test_close_removes_everything_once(world):
    c, s, e, r, b, clock = world
    c.request_drop(1, conf(clock, 1))
    c.request_drop(2, conf(clock, 2))
    c.close(detail="sigterm")
    ends = [x for x in r.records if x.action == ipb.UNDO]
    assert sorted(x.refers_to for x in ends) == [1, 2]
    assert all(x.outcome == ipb.REMOVED_AT_SESSION_END and "sigterm" in x.detail for x in ends)
    assert b.map == {} and b.attached == set() and b.closed
    n = len(r.records)
    c.close()
    assert len(r.records) == n
    with pytest.raises(UsageError):
        c.request_drop(1, conf(clock, 1))


def test_attach_failure_rolls_back(world):
    c, s, e, r, b, clock = world
    e.flows[1] = make_flow(1, devices=())            # path unknown: every scoped iface of ns-a
    b.fail_attach = "lo"
    with pytest.raises(DropFailed) as ei:
        c.request_drop(1, conf(clock, 1))
    assert "rolled back" in ei.value.message
    assert b.map == {} and b.attached == set()
    assert outcomes(r.records) == ["FAILED"]


def test_recording_failure_at_execution_rolls_back(world):
    c, s, e, r, b, clock = world
    r.break_it()
    with pytest.raises(DropFailed):
        c.request_drop(1, conf(clock, 1))
    assert b.map == {} and b.attached == set()
    assert outcomes(e.interventions) == ["FAILED"]


def test_recording_failure_mid_drop_removes_it(world):
    c, s, e, r, b, clock = world
    c.request_drop(1, conf(clock, 1))
    r.break_it()
    (end,) = c.tick()
    assert end.outcome == ipb.FAILED and "unlogged" in end.detail
    assert b.map == {} and b.attached == set()
    assert e.interventions[-1] is end                # still shown, though not recorded


def test_interface_gone_removes_bound_drop(world):
    c, s, e, r, b, clock = world
    e.flows[2] = make_flow(2, netns=4002, devices=("veth-b",))
    c.request_drop(1, conf(clock, 1))
    c.request_drop(2, conf(clock, 2))
    ev = events_pb2.Event(id=9, ktime_ns=clock())
    ev.scope_change.what, ev.scope_change.netns, ev.scope_change.iface = "iface-removed", "ns-b", "veth-b"
    c.observe(ev)
    assert [d.flow_id for d in c.active()] == [1]
    end = r.records[-1]
    assert end.refers_to == 2 and end.outcome == ipb.FAILED and "ns-b/veth-b" in end.detail


def test_replay_source_can_never_get_a_controller(monkeypatch):
    import gewtui.intervene.backend as backend_mod
    import gewtui.intervene.classifier as clf_mod

    def boom(*a, **k):
        raise AssertionError("kernel touched")

    monkeypatch.setattr(backend_mod, "KernelDropBackend", boom)
    monkeypatch.setattr(clf_mod, "DenyClassifier", boom)

    class Replay:
        session_id = SID
        allow_intervention = True        # as a recording's SessionInfo may claim
        replay = True

    for src in (Replay(), object(), None):
        with pytest.raises(ReplayInert):
            InterventionController(src, FakeEngine(), None, argv=ARGV)
    live_but_replay = FakeSession()
    live_but_replay.replay = True
    with pytest.raises(ReplayInert):
        InterventionController(live_but_replay, FakeEngine(), None, argv=ARGV)


def test_member_tuples_and_attachments():
    f = make_flow(3, devices=("veth-b", "veth-a"), v6=True)
    assert member_tuples(f) == [deny_tuple(3, fam=10)]
    scoped = [Itf("ns-a", 4001, "veth-a"), Itf("ns-a", 4001, "lo"), Itf("ns-b", 4002, "veth-b")]
    assert [a.label for a in attachments_for(f, scoped)] == ["ns-a/veth-a"]
    f2 = make_flow(3, devices=())
    assert [a.label for a in attachments_for(f2, scoped)] == ["ns-a/veth-a", "ns-a/lo"]
    f3 = make_flow(3, netns=9999)
    assert attachments_for(f3, scoped) == []         # never outside the scope


@pytest.mark.parametrize("text, secs", [("300", 300), ("90s", 90), ("5m", 300), ("1h", 3600),
                                        (2.5, 2.5)])
def test_parse_ttl(text, secs):
    assert parse_ttl(text) == secs


@pytest.mark.parametrize("bad", ["0", "-5", "25h", "5x", "", "m"])
def test_parse_ttl_refuses(bad):
    with pytest.raises(UsageError):
        parse_ttl(bad)


def test_default_ttl_is_five_minutes():
    assert ctl.DEFAULT_TTL_S == 300


def _member(f, t, state, last):
    f.members.add(sock=len(f.members) + 10, tuple=t, state=state, last_event_id=last)


def test_closed_connections_are_not_denied():
    from gewtui.pb import model_pb2

    live, dead, reused = tup(1, sport=41001), tup(1, sport=41002), tup(1, sport=41003)
    f = model_pb2.FlowSnapshot(flow_id=1, in_scope=True)
    _member(f, live, events_pb2.TCP_ESTABLISHED, 10)
    _member(f, dead, events_pb2.TCP_CLOSE, 20)
    _member(f, dead, events_pb2.TCP_STATE_UNSPECIFIED, 25)   # a late summary of the dead one
    _member(f, reused, events_pb2.TCP_TIME_WAIT, 30)
    _member(f, reused, events_pb2.TCP_SYN_SENT, 40)          # the port reused afterwards
    assert member_tuples(f) == [deny_tuple(1, sport=41001), deny_tuple(1, sport=41003)]


def test_flow_with_only_closed_connections_fails_cleanly(world):
    c, s, e, r, b, clock = world
    f = e.flows[1]
    for m in f.members:
        m.state, m.last_event_id = events_pb2.TCP_CLOSE, 50
    with pytest.raises(DropFailed, match="no live connection and no flow key"):
        c.request_drop(1, conf(clock, 1))
    assert outcomes(r.records) == ["FAILED"] and b.calls == []


# -- flow keys: the drop follows the flow's reconnects -----------------------------------

def test_client_flow_key_replaces_covered_connections():
    f = make_flow(1, identity=True)
    key = DenyTuple(2, 6, bytes([10, 0, 1, 1]), bytes([10, 0, 1, 2]), 0, 8080)
    assert flow_key(f) == key
    assert deny_entries(f) == [key]                 # the connection (port 40000) is covered
    # a connection from a fixed, non-ephemeral local port is not covered: kept exact
    _member(f, tup(1, sport=1000), events_pb2.TCP_ESTABLISHED, 60)
    assert deny_entries(f) == [key, deny_tuple(1, sport=1000)]


def test_flow_key_takes_the_namespaces_port_range():
    f = make_flow(1, identity=True)
    wide = (1024, 65000)
    key = flow_key(f, wide)
    assert key.ephemeral == wide
    # a connection from local port 1000 stays exact; one from 2000 is the key's in this namespace
    _member(f, tup(1, sport=1000), events_pb2.TCP_ESTABLISHED, 60)
    _member(f, tup(1, sport=2000), events_pb2.TCP_ESTABLISHED, 61)
    assert deny_entries(f, wide) == [key, deny_tuple(1, sport=1000)]
    assert deny_entries(f) == [key, deny_tuple(1, sport=1000), deny_tuple(1, sport=2000)]


def test_a_drop_uses_the_range_the_engine_read_for_the_flows_namespace(world):
    c, s, e, r, b, clock = world
    e.flows[1] = make_flow(1, identity=True)
    e.port_ranges[e.flows[1].netns] = (1024, 65000)
    e.port_ranges[e.flows[1].netns + 1] = (2000, 3000)      # another namespace's: not used
    rec = c.request_drop(1, conf(clock, 1))
    keys = [t for t in b.map if t.is_flow_key]
    assert len(keys) == 1 and keys[0].ephemeral == (1024, 65000)
    # the audit says what the key's port 0 stood for, in the drop and in the drop's end
    assert (rec.wildcard_port_lo, rec.wildcard_port_hi) == (1024, 65000)
    assert any(t.sport == 0 or t.dport == 0 for t in rec.tuples)
    c.undo(flow_id=1)
    end = [x for x in r.records if x.action == ipb.UNDO]
    assert len(end) == 1 and (end[0].wildcard_port_lo, end[0].wildcard_port_hi) == (1024, 65000)
    from gewtui.recording.export import intervention_text
    assert " 10.0.1.1>10.0.1.2:8080 (a side without a port: any port 1024-65000)" in intervention_text(rec)


def test_a_drop_of_exact_connections_only_names_no_port_range(world):
    c, s, e, r, b, clock = world
    rec = c.request_drop(1, conf(clock, 1))        # no flow key: every tuple has both ports
    assert all(t.sport and t.dport for t in rec.tuples)
    assert (rec.wildcard_port_lo, rec.wildcard_port_hi) == (0, 0)
    from gewtui.recording.export import intervention_text
    assert "without a port" not in intervention_text(rec)


def test_server_flow_key():
    from gewtui.pb import model_pb2

    server_view = events_pb2.Tuple(family=2, saddr=bytes([10, 0, 1, 2]), daddr=bytes([10, 0, 1, 1]),
                                   sport=8080, dport=40000, protocol=6)
    f = model_pb2.FlowSnapshot(flow_id=3, family=2, local_addr=server_view.saddr,
                               peer_addr=server_view.daddr, key="tcp 10.0.1.2:8080 <- 10.0.1.1 netns 1")
    _member(f, server_view, events_pb2.TCP_ESTABLISHED, 5)
    assert flow_key(f) == DenyTuple(2, 6, server_view.saddr, server_view.daddr, 8080, 0)


@pytest.mark.parametrize("key, peer_port", [
    ("tcp 10.0.1.1:40000 <-> 10.0.1.2:45000 netns 1", 45000),   # exact-tuple flow
    ("tcp listen 10.0.1.1:8080 netns 1", 0),                    # listener
    ("tcp 10.0.1.1 -> 10.0.1.2:45000 netns 1", 45000),          # ephemeral service port
    ("", 8080),                                                  # no key rendered
])
def test_no_flow_key(key, peer_port):
    f = make_flow(1, identity=True)
    f.key, f.peer_port = key, peer_port
    assert flow_key(f) is None


def test_drop_with_flow_key_counts_reconnects_as_evidence(world):
    c, s, e, r, b, clock = world
    e.flows[1] = make_flow(1, identity=True)
    rec = c.request_drop(1, conf(clock, 1))
    assert [(t.sport, t.dport) for t in rec.tuples] == [(0, 8080)]
    ev = events_pb2.Event(id=91, ktime_ns=clock())
    ev.retransmit.tuple.CopyFrom(tup(1, sport=45001))       # a reconnect, new ephemeral port
    c.observe(ev)
    other = events_pb2.Event(id=92, ktime_ns=clock())
    other.retransmit.tuple.CopyFrom(tup(1, sport=45001, dport=8081))   # another service
    c.observe(other)
    b.map[next(iter(b.map))][0] += 1     # the key's counter (the fake map has no wildcards)
    (v,) = c.tick()
    assert list(v.verification.evidence_event_ids) == [91]
