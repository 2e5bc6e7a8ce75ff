"""Property tests on random constructed streams: evidence exists and satisfies its template,
every L3 reaches L0, lifecycles never go backwards, replay is deterministic (also from any
checkpoint), and healthy traffic matches nothing."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.model_streams import ESTABLISHED, SYN_SENT, StreamBuilder

from gewtui.model.engine import Engine
from gewtui.pb import events_pb2 as E
from gewtui.pb import model_pb2

PEERS = ["10.0.0.2", "10.0.0.3", "fd00::2"]
PORTS = [80, 443]
DEVICES = ["veth1", "veth2"]
REASONS = ["QDISC_DROP", "NETFILTER_DROP", "TCP_LISTEN_OVERFLOW", "IP_OUTNOROUTES", "NO_SOCKET",
           "SOCKET_RCVBUFF"]

ACTION = st.one_of(
    st.tuples(st.just("connect"), st.integers(0, 2), st.integers(0, 1)),
    st.tuples(st.just("established"), st.integers(0, 7)),
    st.tuples(st.just("transfer"), st.integers(0, 7)),
    st.tuples(st.just("close"), st.integers(0, 7), st.booleans()),
    st.tuples(st.just("retransmit"), st.integers(0, 7), st.integers(0, 8)),
    st.tuples(st.just("refused"), st.integers(0, 7)),
    st.tuples(st.just("route"), st.integers(0, 7), st.sampled_from(DEVICES)),
    st.tuples(st.just("syn-retransmit"), st.integers(0, 7)),
    st.tuples(st.just("reset"), st.integers(0, 7), st.booleans()),
    st.tuples(st.just("zero-window"), st.integers(0, 7)),
    st.tuples(st.just("owner"), st.integers(0, 7), st.integers(1, 3)),
    st.tuples(st.just("drop"), st.integers(0, 7), st.sampled_from(REASONS), st.booleans()),
    st.tuples(st.just("qdisc"), st.sampled_from(DEVICES), st.integers(0, 3)),
    st.tuples(st.just("fib"), st.integers(0, 2), st.sampled_from(DEVICES)),
    st.tuples(st.just("fib-err"), st.integers(0, 2), st.sampled_from([-101, -113, -11])),
    st.tuples(st.just("lost"), st.integers(1, 50)),
    st.tuples(st.just("wait"), st.sampled_from([1, 50, 900, 2500])),
    st.tuples(st.just("rcvq"), st.integers(0, 7), st.booleans()),
    st.tuples(st.just("destroy"), st.integers(0, 7)),
)


def build(actions, healthy_only: bool = False) -> list[E.Event]:
    s = StreamBuilder()
    conns = []
    for a in actions:
        op = a[0]
        if op == "connect":
            peer = PEERS[a[1]]
            local = "fd00::1" if ":" in peer else "10.0.0.1"
            conns.append(s.connect(local, peer, PORTS[a[2]]))
            continue
        if op == "wait":
            s.wait(a[1])
            continue
        if op == "qdisc":
            s.qdisc(a[1], dropped=a[2])
            continue
        if op == "fib":
            s.fib(PEERS[a[1]], device=a[2], dport=80)
            continue
        if op == "fib-err":
            s.fib(PEERS[a[1]], err=a[2], dport=80)
            continue
        if op == "lost":
            s.lost(a[1])
            continue
        if not conns:
            continue
        c = conns[a[1] % len(conns)]
        if op == "established":
            s.established(c)
        elif op == "transfer":
            s.transfer(c, 1)
        elif op == "close":
            s.close(c, active=a[2])
        elif op == "retransmit":
            for _ in range(a[2]):
                s.retransmit(c)
        elif op == "refused":
            s.reset(c, E.RESET_RECEIVED)
            s.state(c, SYN_SENT, 7)
        elif op == "route":       # a route, then another: the flow (if live) diverges
            s.fib(c.peer, device=a[2], dport=c.pport)
            s.transfer(c, 1)
            s.fib(c.peer, device=DEVICES[1 - DEVICES.index(a[2])], dport=c.pport)
        elif op == "syn-retransmit":
            s.retransmit(c, state=SYN_SENT)
        elif op == "reset":
            s.reset(c, E.RESET_RECEIVED if a[2] else E.RESET_SENT, state=ESTABLISHED)
        elif op == "zero-window":
            s.probe(c, zero_window=3, now=True)
        elif op == "owner":
            s.owner(c, 100 + a[2], f"p{a[2]}")
        elif op == "drop":
            s.drop(a[2], c, reverse=a[3])
        elif op == "rcvq":
            s.rcvq_full(c, listen_overflow=a[2])
        elif op == "destroy":
            s.destroy(c)
    return s.events


def walk(n):
    yield n
    for c in n.children:
        yield from walk(c)


def dump(eng):
    return [f.SerializeToString(deterministic=True) for f in eng.flows()] + \
        [c.SerializeToString(deterministic=True) for c in eng.chains()]


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.lists(ACTION, min_size=3, max_size=80))
def test_evidence_exists_and_satisfies_its_template_and_every_l3_reaches_l0(actions):
    events = build(actions)
    eng = Engine(recent_events=16)       # small window: evidence must be pinned, not recent
    phases: dict[int, int] = {}
    for ev in events:
        eng.feed(ev)
        for f in eng.flows():
            # Lifecycle never goes backwards.
            assert f.phase >= phases.get(f.flow_id, model_pb2.EMERGED)
            phases[f.flow_id] = f.phase
    tpls = eng.templates
    for ch in eng.chains():
        root = ch.root
        assert root.layer == model_pb2.L3
        nodes = list(walk(root))
        assert any(n.layer == model_pb2.L0 for n in nodes)
        for n in nodes:
            for eid in n.evidence_event_ids:
                ev = eng.event(eid)
                assert ev is not None and ev.id == eid
            if n.layer == model_pb2.L2:
                tpl = tpls[n.kind]
                assert n.evidence_event_ids
                for eid in n.evidence_event_ids:
                    assert tpl.pattern.matches(eng.event(eid)), (n.kind, eng.event(eid))
                assert any(x.layer == model_pb2.L0 for x in walk(n))
            if n.layer == model_pb2.L0:
                assert len(n.evidence_event_ids) == 1
                assert n.kind == eng.event(n.evidence_event_ids[0]).WhichOneof("body")
        assert len({n.node_id for n in nodes}) == len(nodes)
        assert set(ch.root.fields["templates"].split(",")) - {""} <= set(tpls.ids())


@SETTINGS
@given(st.lists(ACTION, min_size=3, max_size=80), st.integers(0, 1000))
def test_replay_is_deterministic_from_start_and_from_any_checkpoint(actions, cut_seed):
    events = build(actions)
    a, b = Engine(), Engine()
    ca = [c for ev in events for c in a.feed(ev)]
    cb = [c for ev in events for c in b.feed(ev)]
    assert ca == cb
    assert dump(a) == dump(b)
    cut = cut_seed % (len(events) + 1)
    c = Engine()
    for ev in events[:cut]:
        c.feed(ev)
    r = Engine.restore(c.checkpoint())
    for ev in events[cut:]:
        r.feed(ev)
    assert dump(r) == dump(a)


HEALTHY = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1), st.integers(0, 4),
                             st.sampled_from([1, 100, 2500]), st.booleans()), min_size=1, max_size=12)


@SETTINGS
@given(HEALTHY)
def test_no_template_fires_on_healthy_request_response_traffic(plan):
    s = StreamBuilder()
    for peer_i, port_i, summaries, gap, active in plan:
        peer = PEERS[peer_i]
        local = "fd00::1" if ":" in peer else "10.0.0.1"
        s.fib(peer, device="veth1", dport=PORTS[port_i])
        c = s.connect(local, peer, PORTS[port_i])
        s.established(c)
        s.transfer(c, summaries)
        s.close(c, active=active)
        s.qdisc("veth1", dropped=0)
        s.wait(gap)
    eng = Engine()
    changes = [c for ev in s.events for c in eng.feed(ev)]
    assert [c for c in changes if c.kind == "template"] == []
    assert all(not f.templates for f in eng.flows())


def expected_refs(reg) -> dict[int, int]:
    """Every citation the registry holds, counted: what the evidence store's reference
    counts must equal (no leak, no early release)."""
    from collections import Counter
    c = Counter()
    for f in reg.flows.values():
        c.update(f.cited())
    c.update(h[0] for h in reg.routes.values())
    for ctx in reg.ifctx.values():
        c.update(e for _, e in ctx.notable)
    c.update(reg.context)
    c.update(x[0] for x in reg.lost)
    for held in reg.pending.values():
        c.update(held)
    return dict(c)


@SETTINGS
@given(st.lists(ACTION, min_size=3, max_size=80), st.integers(1, 4))
def test_evidence_reference_counts_match_the_citations_held(actions, keep):
    eng = Engine(max_terminated=keep, recent_events=16)
    for ev in build(actions):
        eng.feed(ev)
        reg = eng._reg
        assert reg.ref_counts() == expected_refs(reg)
        # a count is kept only for events held more than once, and only while pinned
        assert all(n > 1 and e in reg.pinned for e, n in reg.refs.items())
    eng.end()
    assert eng._reg.ref_counts() == expected_refs(eng._reg)
