"""Engine surface: changes, stats, determinism, checkpoint/restore for time travel."""
from __future__ import annotations

import os
import time

from tests.support.model_streams import StreamBuilder

from gewtui.model.changes import KINDS, Change
from gewtui.model.engine import Engine
from gewtui.pb import events_pb2 as E


def mixed_stream() -> StreamBuilder:
    s = StreamBuilder()
    s.healthy("10.0.0.1", "10.0.0.2", 80)
    s.refused("10.0.0.1", "10.0.0.3", 81)
    s.fib("10.0.0.4", device="veth1")
    c = s.connect("10.0.0.1", "10.0.0.4", 80)
    s.established(c)
    s.lossy(c, 7, 20)
    s.qdisc("veth1", dropped=2)
    s.fib("10.0.0.4", device="veth2")
    s.zero_window(c)
    s.lost(3)
    s.owner(c, 77, "other")
    s.wait(2500)
    s.healthy("10.0.0.1", "10.0.0.2", 80)
    s.peer_reset(c)
    return s


def dump(eng: Engine) -> bytes:
    parts = [f.SerializeToString(deterministic=True) for f in eng.flows()]
    parts += [c.SerializeToString(deterministic=True) for c in eng.chains()]
    return b"|".join(parts)


def test_feed_returns_changes_of_known_kinds():
    eng = Engine()
    seen = set()
    for ev in mixed_stream().events:
        out = eng.feed(ev)
        assert isinstance(out, list)
        for c in out:
            assert isinstance(c, Change) and c.kind in KINDS
            assert c.event_id == ev.id
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in c.detail.items())
            seen.add(c.kind)
    assert {"emerge", "evolve", "diverge", "terminate", "template", "tcp-state", "path",
            "owner", "lost"} <= seen


def test_stats():
    s = mixed_stream()
    eng = Engine()
    for ev in s.events:
        eng.feed(ev)
    st = eng.stats
    assert st["events"] == len(s.events)
    assert st["flows_live"] + st["flows_terminated"] == len(eng.flows())
    assert st["lost_records"] == 3 and st["complete"] is False and st["evicted"] == 0


def test_same_stream_twice_gives_byte_identical_snapshots_and_chains():
    events = mixed_stream().events
    a, b = Engine(), Engine()
    for ev in events:
        a.feed(ev)
    for ev in [E.Event.FromString(e.SerializeToString()) for e in events]:
        b.feed(ev)
    assert dump(a) == dump(b) and dump(a)


def test_restore_then_replay_equals_straight_replay_at_every_cut():
    events = mixed_stream().events
    straight = Engine()
    for ev in events:
        straight.feed(ev)
    want = dump(straight)
    for cut in range(0, len(events), 7):
        eng = Engine()
        for ev in events[:cut]:
            eng.feed(ev)
        cp = eng.checkpoint()
        for ev in events[cut:]:
            eng.feed(ev)                      # the original moves on; the checkpoint must not
        r = Engine.restore(cp)
        changes_r = [c for ev in events[cut:] for c in r.feed(ev)]
        assert dump(r) == want, cut
        r2 = Engine.restore(cp)               # a checkpoint restores any number of times
        changes_r2 = [c for ev in events[cut:] for c in r2.feed(ev)]
        assert changes_r == changes_r2


def test_checkpoint_is_independent_of_later_queries_and_feeds():
    s = mixed_stream()
    eng = Engine()
    for ev in s.events[:30]:
        eng.feed(ev)
    cp = eng.checkpoint()
    before = dump(Engine.restore(cp))
    for ev in s.events[30:]:
        eng.feed(ev)
    eng.chains()
    assert dump(Engine.restore(cp)) == before
    assert cp.event_id == s.events[29].id


def test_end_terminates_live_flows():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    eng = Engine()
    for ev in s.events:
        eng.feed(ev)
    out = eng.end()
    assert [x.kind for x in out] == ["terminate"] and out[0].detail["reason"] == "session-end"
    assert eng.stats["flows_live"] == 0


def test_events_without_a_body_or_flow_are_harmless():
    eng = Engine()
    assert eng.feed(E.Event(id=1, ktime_ns=5)) == []
    assert eng.feed(E.Event(id=2, ktime_ns=6, destroy=E.SocketDestroy(sock=9))) == []
    assert eng.flows() == [] and eng.stats["events"] == 2


def test_checkpoint_and_restore_are_fast_with_many_terminated_flows():
    s = StreamBuilder(step_us=10)
    for i in range(2000):
        s.refused("10.0.0.1", f"10.{i // 250}.{i % 250}.1", 81)
    s.wait(3000)
    live = [s.connect("10.0.0.1", f"10.9.{i // 250}.{i % 250}", 80) for i in range(200)]
    for c in live:
        s.established(c)
    eng = Engine()
    for ev in s.events:
        eng.feed(ev)
    assert eng.stats["flows_terminated"] == 2000
    t0 = time.perf_counter()
    cp = eng.checkpoint()
    Engine.restore(cp)
    took = time.perf_counter() - t0
    # Terminated flows are shared, not copied: this is a few ms; allow a loaded CI box 50x.
    assert took < 0.5, took


def test_flow_summary_equals_the_snapshot_in_every_field_it_has():
    """The listing's cheap snapshot: the fields it sets are the full snapshot's, over the
    golden lab recordings' flows at several points."""
    import glob

    from gewtui.recording import open_recording

    paths = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "data", "golden", "*.gewrec")))
    assert paths
    compared = 0
    for path in paths:
        eng = Engine()
        with open_recording(path) as r:
            for k, ev in enumerate(r.iter_events()):
                eng.feed(ev)
                if k % 5:
                    continue
                for fid in eng.flow_ids():
                    full, summ = eng.flow(fid), eng.flow_summary(fid)
                    for fd, value in summ.ListFields():
                        assert getattr(full, fd.name) == value, (path, fid, fd.name)
                    assert not summ.members and not summ.transitions and not summ.path
                    compared += 1
    assert compared > 100
