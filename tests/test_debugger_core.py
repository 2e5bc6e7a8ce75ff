"""The debugger core's mechanics over constructed L0 streams: cursor motions, time travel
through checkpoints, breakpoints, filters, and the live model (pause freezes the view only).

These run on the small deterministic ToyEngine (tests/support/debugger_support.py) so they test the
cursor, not the observation plane's rules; tests/test_debugger_engine.py runs the same
debugger over the real engine.
"""
from __future__ import annotations

import pytest

from gewtui.debugger import commands
from gewtui.debugger.checkpoints import CheckpointPolicy
from tests.support.debugger_support import STORM_EVENT_ID, big_stream, toy_scenario
from tests.support.toy_debugger import PushSource, flows_state, fresh_state, make, run

DENSE = CheckpointPolicy(budget_s=0.0, overhead_ratio=0.0, min_events=50)


# ---- motions ------------------------------------------------------------------------------

def test_step_and_back_move_the_cursor_one_event_at_a_time():
    d, ctx = make()
    assert d.position == 0 and d.state == "paused"
    run(ctx, "step")
    assert d.position == 1 and d.cursor_event_id() == 1
    run(ctx, "step 3")
    assert d.cursor_event_id() == 4
    run(ctx, "back")
    assert d.cursor_event_id() == 3
    run(ctx, "back 2")
    assert d.cursor_event_id() == 1
    run(ctx, "back 10")
    assert d.position == 0


def test_goto_by_id_time_start_and_end():
    events = toy_scenario()
    d, ctx = make(events)
    run(ctx, "goto #12")
    assert d.cursor_event_id() == 12
    run(ctx, "goto 5")
    assert d.cursor_event_id() == 5
    run(ctx, "goto end")
    assert d.cursor_event_id() == len(events) and d.log.complete
    # +T counts from the session's first event; events are 1 ms apart.
    run(ctx, "goto +2.5ms")
    assert d.cursor_event_id() == 3
    run(ctx, "goto @%d" % events[6].ktime_ns)
    assert d.cursor_event_id() == 7
    run(ctx, "goto start")
    assert d.position == 0


def test_goto_past_the_end_of_a_replay_stops_at_the_end():
    d, ctx = make()
    out = run(ctx, "goto #999")
    assert d.cursor_event_id() == 16
    assert any(getattr(o, "reason", "") == "end" for o in out)


def test_continue_runs_to_the_end_without_breakpoints():
    d, ctx = make()
    out = run(ctx, "continue")
    assert d.position == 16 and out[-1].reason == "end"


def test_step_flow_and_step_transition():
    d, ctx = make()
    run(ctx, "goto #5")                       # flow 2 emerges
    run(ctx, "flow 2")
    run(ctx, "step flow")
    assert d.cursor_event_id() == 6
    run(ctx, "goto #10")
    run(ctx, "step flow")                      # skips flow 3's events 13-14 and the drop
    assert d.cursor_event_id() == 15
    run(ctx, "goto #6")
    run(ctx, "step transition")                # retransmits are not transitions
    assert d.cursor_event_id() == 13
    run(ctx, "back transition")
    assert d.cursor_event_id() == 6


def test_step_flow_needs_a_selected_flow():
    d, ctx = make()
    out = commands.execute(ctx, "step flow")
    assert out[0].level == "error" and "flow N" in out[0].text


# ---- time travel --------------------------------------------------------------------------

@pytest.mark.parametrize("target", [0, 1, 49, 50, 51, 777, 1999, 2999])
def test_back_lands_on_the_same_state_as_a_fresh_replay(target):
    events = list(big_stream(3000, flows=120))
    d, ctx = make(events, policy=DENSE)
    run(ctx, "goto end")
    assert len(d.checkpoints) > 10               # the dense policy really checkpointed
    run(ctx, f"back {3000 - target}")
    assert d.position == target
    assert flows_state(d.engine) == fresh_state(events, target)


def test_back_then_forward_again_matches_a_fresh_replay():
    events = list(big_stream(2000, flows=50))
    d, ctx = make(events, policy=DENSE)
    run(ctx, "goto end")
    run(ctx, "back 1500")
    run(ctx, "step 700")
    assert d.position == 1200
    assert flows_state(d.engine) == fresh_state(events, 1200)


def test_checkpoints_are_taken_only_once_per_position():
    events = list(big_stream(1000, flows=10))
    d, ctx = make(events, policy=DENSE)
    run(ctx, "goto end")
    taken = d.checkpoints.taken
    run(ctx, "back 900")
    run(ctx, "goto end")
    assert d.checkpoints.taken == taken


# ---- breakpoints --------------------------------------------------------------------------

@pytest.mark.parametrize("bp, event_id", [
    ("template retransmission-storm", STORM_EVENT_ID),
    ("state CLOSE", 4),
    ("state TCP_ESTABLISHED flow 3", 14),
    ("state terminated", 4),
    ("drop QDISC_DROP", 11),
    ("drop SKB_DROP_REASON_QDISC_DROP", 11),
    ("flow 3", 13),
    ("lost", 12),
])
def test_breakpoint_stops_on_the_right_event(bp, event_id):
    d, ctx = make()
    run(ctx, f"break {bp}")
    out = run(ctx, "continue")
    assert out[-1].reason == "breakpoint", out
    assert d.cursor_event_id() == event_id
    assert out[-1].event_id == event_id


def test_breakpoints_enable_disable_delete_and_list():
    d, ctx = make()
    run(ctx, "break state CLOSE")
    run(ctx, "break lost")
    run(ctx, "disable 1")
    out = run(ctx, "continue")
    assert d.cursor_event_id() == 12 and "breakpoint 2" in out[-1].text
    table = run(ctx, "break")[0]
    assert [r[:3] for r in table.rows] == [("1", "no", "state CLOSE"), ("2", "yes", "lost")]
    assert table.rows[1][3] == "1"                      # one hit
    run(ctx, "enable")
    run(ctx, "continue")
    assert d.cursor_event_id() == 16                    # flow 2 closes
    run(ctx, "delete 1")
    assert [b.number for b in d.breakpoints] == [2]
    run(ctx, "goto start")
    out = run(ctx, "continue")
    assert d.cursor_event_id() == 12


def test_reverse_goes_back_to_the_previous_breakpoint_hit():
    d, ctx = make()
    run(ctx, "break state CLOSE")
    run(ctx, "goto end")
    run(ctx, "reverse")
    # From the end (#16 is itself a CLOSE), the previous hit is #4.
    assert d.cursor_event_id() == 4


@pytest.mark.parametrize("line, why", [
    ("break state NOPE", "unknown TCP state"),
    ("break template", "needs an argument"),
    ("break template no-such-template", "unknown template"),
    ("break diverge now", "takes no argument"),
    ("break wibble", "unknown breakpoint kind"),
    ("enable 9", "no breakpoint 9"),
])
def test_bad_breakpoints_are_refused_with_a_reason(line, why):
    d, ctx = make()
    out = commands.execute(ctx, line)
    assert out[0].level == "error" and why in out[0].text


def test_duplicate_breakpoint_is_refused():
    d, ctx = make()
    run(ctx, "break lost")
    out = commands.execute(ctx, "break lost")
    assert out[0].level == "error" and "already" in out[0].text


# ---- filters ------------------------------------------------------------------------------

def visible(ctx):
    return sorted(ctx.views.build().flows)


def test_filters_narrow_the_flows_and_combine():
    d, ctx = make()
    run(ctx, "goto end")
    assert visible(ctx) == [1, 2, 3]
    run(ctx, "filter dst 192.168.0.0/16")
    assert visible(ctx) == [3]
    run(ctx, "filter dst 10.0.0.0/8")            # same kind: OR
    assert visible(ctx) == [1, 2, 3]
    run(ctx, "filter port 8080")                 # another kind: AND
    assert visible(ctx) == [2]
    run(ctx, "filter clear port")
    run(ctx, "filter clear")
    run(ctx, "filter phase terminated")
    assert visible(ctx) == [1, 2]
    run(ctx, "filter clear")
    run(ctx, "filter template retransmission-storm")
    assert visible(ctx) == [2]


def test_step_with_a_filter_stops_only_on_matching_flows_and_session_events():
    d, ctx = make()
    run(ctx, "filter dport 443")
    run(ctx, "step")
    assert d.cursor_event_id() == 12              # lost records: a session event
    run(ctx, "step")
    assert d.cursor_event_id() == 13              # flow 3, the only one to port 443


def test_bad_filter_is_refused():
    d, ctx = make()
    assert commands.execute(ctx, "filter dst nowhere")[0].level == "error"
    assert commands.execute(ctx, "filter port 99999")[0].level == "error"


# ---- live ---------------------------------------------------------------------------------


def test_live_follows_the_head_and_pause_freezes_only_the_view():
    events = toy_scenario()
    src = PushSource()
    d, ctx = make(source=src)
    assert d.following
    src.push(events[:6])
    d.ingest()
    assert d.position == 6 and d.following
    run(ctx, "pause")
    assert d.state == "paused"
    frozen = flows_state(d.engine)
    src.push(events[6:])
    d.ingest()
    # Nothing dropped: the log and the head engine have every event ...
    assert len(d.log) == len(events)
    assert flows_state(d.head_engine) == fresh_state(events, len(events))
    # ... while the view stayed where it was paused.
    assert d.position == 6 and flows_state(d.engine) == frozen
    run(ctx, "step")
    assert d.position == 7
    run(ctx, "continue")
    assert d.following and d.position == len(events)
    assert d.engine is d.head_engine


def test_live_breakpoint_hit_inside_a_batch_pauses_on_that_event():
    events = toy_scenario()
    src = PushSource()
    d, ctx = make(source=src)
    run(ctx, "break template retransmission-storm")
    src.push(events)
    d.ingest()                                      # one batch, the hit in its middle
    stops = d.take_stops()
    assert [s.reason for s in stops] == ["breakpoint"]
    assert d.state == "paused" and d.cursor_event_id() == STORM_EVENT_ID
    assert flows_state(d.engine) == fresh_state(events, STORM_EVENT_ID)
    assert flows_state(d.head_engine) == fresh_state(events, len(events))


def test_live_continue_replays_to_the_head_checking_breakpoints():
    events = toy_scenario()
    src = PushSource()
    d, ctx = make(source=src)
    run(ctx, "pause")
    src.push(events)
    d.ingest()
    run(ctx, "break lost")
    out = run(ctx, "continue")
    assert out[-1].reason == "breakpoint" and d.cursor_event_id() == 12
    run(ctx, "continue")
    assert d.following and d.position == len(events)


def test_live_step_at_the_head_waits_for_the_next_event():
    events = toy_scenario()
    src = PushSource()
    d, ctx = make(source=src)
    src.push(events[:3])
    d.ingest()
    commands.execute(ctx, "step")
    assert d.run() is None and d.state == "running" and d.position == 3
    src.push(events[3:5])
    d.ingest()
    stop = d.run()
    assert stop is not None and d.position == 4


def test_live_back_then_goto_beyond_the_head_is_refused():
    events = toy_scenario()
    src = PushSource()
    d, ctx = make(source=src)
    src.push(events[:8])
    d.ingest()
    run(ctx, "back 2")
    assert d.position == 6 and not d.following
    out = commands.execute(ctx, "goto #50")
    assert out[0].level == "error" and "newest" in out[0].text


def test_idle_time_prepares_a_spare_engine_that_makes_back_a_short_fold():
    events = list(big_stream(6000, flows=40))
    sparse = CheckpointPolicy(budget_s=3600.0, min_events=10**9)   # no checkpoints at all
    d, ctx = make(events, policy=sparse)
    d.spare_lag = 500
    run(ctx, "goto end")
    assert len(d.checkpoints) == 0
    while d.idle(0.01):
        pass
    spare = d._spare
    assert spare is not None and spare[1] == 6000 - 500
    run(ctx, "back 3")
    assert d.engine is spare[0] and d.position == 5997
    assert flows_state(d.engine) == fresh_state(events, 5997)
    # Used up: the next idle time prepares another one behind the new cursor.
    assert d._spare is None
    while d.idle(0.01):
        pass
    assert d._spare[1] == 5997 - 500
    run(ctx, "back 600")                       # beyond the spare: from the start instead
    assert flows_state(d.engine) == fresh_state(events, 5397)


def test_the_first_flow_to_emerge_is_selected_until_another_is_picked():
    d, ctx = make()
    assert d.selected is None
    while d.selected is None and d.position < 50:
        run(ctx, "step")
    first = d.selected
    assert first is not None
    assert d.engine.flow(first).first_event_id == d.cursor_event_id()
    run(ctx, "goto end")
    others = [f.flow_id for f in d.engine.flows() if f.flow_id != first]
    assert others, "the toy scenario has more than one flow"
    run(ctx, f"flow {others[0]}")
    assert d.selected == others[0]
    run(ctx, "step")
    assert d.selected == others[0]
