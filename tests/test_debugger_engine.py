"""The debugger over the real observation engine and real recording files: breakpoints
on what the engine derives, time travel against straight replays, the filtered export."""
from __future__ import annotations

import pytest

from gewtui.debugger import commands
from gewtui.debugger.checkpoints import CheckpointPolicy
from gewtui.debugger.core import Debugger
from gewtui.debugger.export import filter_recording
from gewtui.debugger.sources import MemorySource
from gewtui.debugger.view_builder import ViewBuilder
from gewtui.model.engine import Engine
from gewtui.recording import open_recording
from tests.support.debugger_support import header, lab_scenario, write_recording
from tests.support.model_streams import StreamBuilder
from tests.support.engine_replay import dump, replay, run, straight

DENSE = CheckpointPolicy(budget_s=0.0, overhead_ratio=0.0, min_events=20)


def test_template_breakpoint_stops_on_the_event_the_template_matched(tmp_path):
    sc = lab_scenario()
    d, ctx = replay(write_recording(tmp_path / "r.gewrec", sc.events))
    run(ctx, "break template retransmission-storm")
    out = run(ctx, "continue")
    assert out[-1].reason == "breakpoint"
    assert d.cursor_event_id() == sc.storm_event == sc.lossy_retransmits[4]
    assert "retransmission-storm" in d.engine.flow(out[-1].flow_id).templates


@pytest.mark.parametrize("bp, attr", [("drop QDISC_DROP", "drop_event"), ("lost", "lost_event"),
                                      ("state CLOSE flow 3", "refused_event")])
def test_breakpoints_on_the_real_engine(tmp_path, bp, attr):
    sc = lab_scenario()
    d, ctx = replay(write_recording(tmp_path / "r.gewrec", sc.events))
    run(ctx, f"break {bp}")
    run(ctx, "continue")
    assert d.cursor_event_id() == getattr(sc, attr)


def test_diverge_breakpoint_stops_on_the_route_change():
    s = StreamBuilder()
    s.fib("10.0.9.2", device="veth1", gateway="10.0.1.1", dport=80, src="10.0.0.1")
    c = s.connect("10.0.0.1", "10.0.9.2", 80)
    s.established(c)
    s.transfer(c, 2)
    fib2 = s.fib("10.0.9.2", device="veth2", gateway="10.0.2.1", dport=80, src="10.0.0.1")
    s.transfer(c, 2)
    d = Debugger(MemorySource(s.events, header()))
    ctx = commands.Context(d, ViewBuilder(d))
    run(ctx, "break diverge")
    out = run(ctx, "continue")
    assert out[-1].reason == "breakpoint" and d.cursor_event_id() == fib2.id
    rows = ctx.views.build().flows
    parent = rows[out[-1].flow_id]
    assert parent.phase == "diverged" and parent.children
    assert rows[parent.children[0]].parent_id == parent.flow_id


def test_back_and_goto_match_straight_replays_of_the_real_engine(tmp_path):
    sc = lab_scenario()
    events = sc.events
    d, ctx = replay(write_recording(tmp_path / "r.gewrec", events), policy=DENSE)
    run(ctx, "goto end")
    assert len(d.checkpoints) >= 2
    for target in (len(events) - 1, 23, 20, 5, 0):
        run(ctx, f"goto {events[target - 1].id}" if target else "goto start")
        assert d.position == target
        assert dump(d.engine) == straight(events, target)
    run(ctx, "back 3")
    assert dump(d.engine) == straight(events, 0) and d.position == 0
    run(ctx, "step 30")
    run(ctx, "back 7")
    assert d.position == 23 and dump(d.engine) == straight(events, 23)


def test_flow_view_shows_the_lost_records_gap_inside_the_timeline(tmp_path):
    sc = lab_scenario()
    d, ctx = replay(write_recording(tmp_path / "r.gewrec", sc.events))
    run(ctx, "goto end")
    out = run(ctx, "flow 2")
    timeline = out[0].detail.timeline
    gaps = [e for e in timeline if e.what == "gap"]
    assert len(gaps) == 1 and gaps[0].event_id == sc.lost_event
    assert gaps[0].text.startswith("up to 3 records may be missing between")
    # Drawn where it happened: after the storm's transitions, before the close.
    ids = [e.event_id for e in timeline]
    assert ids.index(sc.lost_event) == len([i for i in ids if i < sc.lost_event])


def test_step_transition_and_step_flow_on_the_real_engine(tmp_path):
    sc = lab_scenario()
    d, ctx = replay(write_recording(tmp_path / "r.gewrec", sc.events))
    run(ctx, f"goto #{sc.lossy_retransmits[0]}")
    run(ctx, "flow 2")
    run(ctx, "step flow")
    # The next event of flow 2 is its next probe summary: it changes nothing, but the
    # engine attributes it to the flow.
    assert d.cursor_event_id() == sc.lossy_retransmits[0] + 1
    assert d.event_at_cursor().WhichOneof("body") == "tcp_probe"
    run(ctx, "step transition")
    assert d.cursor_event_id() == sc.refused_event - 2       # flow 3 emerges (CLOSE -> SYN_SENT)
    run(ctx, "break flow 2")
    run(ctx, "continue")
    assert d.cursor_event_id() == sc.refused_event + 2        # flow 2's FIN_WAIT1, after flow 3


def test_filter_recording_writes_a_valid_smaller_recording(tmp_path):
    sc = lab_scenario()
    src = write_recording(tmp_path / "r.gewrec", sc.events)
    out = tmp_path / "small.gewrec"
    res = filter_recording(src, out, ["dport 8080"])
    assert 0 < res.events_out < res.events_in == len(sc.events)
    assert res.flows_kept == 1 and res.flows_total == 3
    with open_recording(out, strict=True) as r:
        kept = list(r.iter_events())
        assert r.report.clean
    assert len(kept) == res.events_out
    ids = [e.id for e in kept]
    assert ids == sorted(ids) and sc.storm_event in ids and sc.lost_event in ids
    assert sc.refused_event not in ids
    # The smaller recording replays into the one flow, with its storm.
    e = Engine()
    for ev in kept:
        e.feed(ev)
    [f] = e.flows()
    assert f.peer_port == 8080 and "retransmission-storm" in f.templates


def test_filter_recording_by_template_and_phase(tmp_path):
    sc = lab_scenario()
    src = write_recording(tmp_path / "r.gewrec", sc.events)
    res = filter_recording(src, tmp_path / "a.gewrec", ["template connection-refused"])
    assert res.flows_kept == 1
    res = filter_recording(src, tmp_path / "b.gewrec", ["phase live", "dst 10.0.0.0/8"])
    assert res.flows_kept == 2


def test_export_command_cuts_the_session_with_the_current_filter(tmp_path):
    sc = lab_scenario()
    d, ctx = replay(write_recording(tmp_path / "r.gewrec", sc.events))
    run(ctx, "goto end")
    run(ctx, "filter dst 192.168.0.0/16")
    out = run(ctx, f"export {tmp_path / 'x.gewrec'}")
    assert "1 of 3 flows" in out[0].text
    with open_recording(tmp_path / "x.gewrec") as r:
        kept = list(r.iter_events())
    assert sc.refused_event in [e.id for e in kept] and sc.storm_event not in [e.id for e in kept]


def test_replay_of_a_damaged_recording_reads_what_is_there(tmp_path):
    sc = lab_scenario()
    p = write_recording(tmp_path / "r.gewrec", sc.events)
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) - 7])     # a torn tail
    d, ctx = replay(p)
    run(ctx, "goto end")
    assert 0 < d.position < len(sc.events) and d.log.complete


def test_rows_after_time_travel_equal_rows_built_from_scratch(tmp_path):
    """The view builder only rebuilds rows whose fingerprint moved after back/goto; the
    result must equal building every row anew."""
    from gewtui.debugger import view_values

    sc = lab_scenario()
    d, ctx = replay(write_recording(tmp_path / "r.gewrec", sc.events), policy=DENSE)
    for line in ("goto end", "back 5", "goto #12", "step 20", "back 1", "goto end", "goto start",
                 "goto #30"):
        run(ctx, line)
        rows = dict(ctx.views.build().flows)
        e = Engine(session_id="test-session")
        for ev in sc.events[:d.position]:
            e.feed(ev)
        assert rows == {f.flow_id: view_values.flow_row(f) for f in e.flows()}, line


def test_rows_follow_events_that_only_move_counters():
    """Summaries and single retransmits produce no Change, yet the flow tree's counters
    must follow them step by step (a row rebuilt only for Changes would stay stale)."""
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    s.transfer(c, summaries=4)
    s.retransmit(c)
    d = Debugger(MemorySource(s.events, header()))
    vb = ViewBuilder(d)
    ctx = commands.Context(d, vb)
    run(ctx, "step 2")
    fid = d.engine.flow_ids()[0]
    assert vb.build().flows[fid].segments == 0
    for n in range(3, len(s.events) + 1):
        run(ctx, "step")
        row = vb.build().flows[fid]
        snap = d.engine.flow(fid)
        assert (row.events, row.segments, row.bytes, row.retransmits) == (
            snap.counters.events, snap.counters.segments, snap.counters.bytes,
            snap.counters.retransmits), f"after event {n}"
    assert row.retransmits == 1 and row.segments > 0
    run(ctx, "back 3")      # and back again: rows follow the restored engine
    row = vb.build().flows[fid]
    assert row.retransmits == 0 and row.events == d.engine.flow(fid).counters.events
