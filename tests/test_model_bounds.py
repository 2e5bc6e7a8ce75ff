"""Bounded memory: what the registry keeps per flow and in total stays bounded, and what it
drops is counted and released from the evidence store."""
from __future__ import annotations

from tests.support.model_streams import StreamBuilder

from gewtui.model.engine import Engine
from gewtui.pb import events_pb2 as E
from gewtui.pb import model_pb2


def run(s, **kw):
    eng = Engine(**kw)
    changes = [c for ev in s.events for c in eng.feed(ev)]
    return eng, changes


def test_evicted_flows_release_their_evidence():
    s = StreamBuilder()
    for i in range(300):
        s.refused("10.0.0.1", f"10.0.{i // 200}.{i % 200 + 1}", 81)
        s.wait(2100)
    eng, _ = run(s, max_terminated=5)
    # 299 ended by silence (the last is still within its window), 5 kept.
    assert eng.stats["flows_live"] == 1 and eng.stats["evicted"] == 294
    # Five kept flows cite a handful of events each; nothing of the evicted ones stays pinned.
    assert eng.stats["pinned_events"] < 60, eng.stats
    for ch in eng.chains():
        for n in _walk(ch.root):
            for e in n.evidence_event_ids:
                assert eng.event(e) is not None


def test_many_reconnects_keep_transitions_and_members_bounded():
    s = StreamBuilder()
    for _ in range(150):
        c = s.connect("10.0.0.1", "10.0.0.2", 80)
        s.established(c)
        s.close(c)
    eng, _ = run(s)
    [f] = eng.flows()
    assert f.counters.connections == 150
    assert len(f.members) <= 5
    tcp = [t for t in f.transitions if t.what == "tcp-state"]
    assert len(tcp) <= 64
    # The first connection's transitions are kept, and the latest.
    assert tcp[0].event_id == s.events[0].id and tcp[-1].event_id == s.events[-2].id
    root = eng.chain(f.flow_id).root
    elided = [n for n in root.children if n.node_id.endswith("lifecycle/elided")]
    assert elided and int(elided[0].fields["elided"]) > 0
    assert eng.stats["pinned_events"] < 200


def test_repeated_matches_become_occurrences_of_the_last_episode():
    s = StreamBuilder()
    for _ in range(10):
        s.refused("10.0.0.1", "10.0.0.2", 81)
        s.wait(100)
    eng, changes = run(s)
    [f] = eng.flows()
    l2 = [n for n in eng.chain(f.flow_id).root.children if n.layer == model_pb2.L2]
    assert [n.kind for n in l2] == ["connection-refused"] * 4
    assert l2[-1].fields["occurrences"] == "7"
    assert sum(c.kind == "template" for c in changes) == 10


def test_passive_children_that_never_name_a_peer_are_bounded():
    s = StreamBuilder(step_us=1)
    lst = s.listen("10.0.0.2", 8080)
    for _ in range(5000):
        blank = s.accept(lst, "0.0.0.0", 0, incomplete_first=False)   # peer never known
        del blank
    eng, _ = run(s)
    held = sum(len(v) for v in eng._reg.pending.values())
    assert len(eng._reg.pending) <= 4096
    # Held ones may still be named; those pushed out are counted as unattributed.
    assert eng.stats["unattributed"] == 5000 - held and held == 4096


def test_gap_marks_and_incomplete_scope_changes_make_the_session_incomplete():
    s = StreamBuilder()
    s.emit("mark", E.SessionMark(kind="ended-without-cleanup", unknown_from_ns=5, unknown_to_ns=9))
    eng, changes = run(s)
    assert eng.stats["complete"] is False and [c.kind for c in changes] == ["lost"]
    s = StreamBuilder()
    s.emit("scope_change", E.ScopeChange(what="iface-removed", iface="veth9", observation_complete=False))
    s.emit("scope_change", E.ScopeChange(what="iface-added", iface="veth8", observation_complete=True))
    eng, changes = run(s)
    assert eng.stats["complete"] is False and [c.kind for c in changes] == ["lost"]


def test_lost_windows_are_kept_bounded():
    s = StreamBuilder()
    for i in range(400):
        s.lost(1)
    eng, _ = run(s)
    assert eng.stats["lost_records"] == 400 and len(eng._reg.lost) <= 256


def _walk(n):
    yield n
    for c in n.children:
        yield from _walk(c)
