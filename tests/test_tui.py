"""gew-tui driven by Pilot over a replayed recording (and a hand-fed live source): the
keys move the debugger's cursor as specified, a template breakpoint stops on the right
event, the reason inspector drills from L3 down to the raw L0 event and jumps the cursor
there, and the intervention panel names each failing gate condition and why."""
from __future__ import annotations

import asyncio
import io

from gewtui.debugger.core import Debugger
from gewtui.tui.app import FixedClock, GewApp, build_app
from gewtui.tui.messages import CommandOutput, ViewUpdated
from gewtui.tui.widgets.bars import CommandBar, StatusBar
from gewtui.tui.widgets.flow_tree import FlowTree
from gewtui.tui.widgets.reasons import ChainTree
from tests.support import debugger_support
from tests.support.tui_driver import SIZE, command, make_app, read_all, sync, text_of
from tests.support.toy_debugger import PushSource

# The shared scenario and its recording (fixtures of tests/support/debugger_support.py).
scenario, recording = debugger_support.scenario, debugger_support.recording


@sync
async def test_keys_step_back_pause_and_continue_move_the_cursor(recording, scenario):
    app = make_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        v = await app.settle()
        assert v.cursor.position == 0 and v.cursor.state == "paused"
        await pilot.press("n", "n", "n")
        v = await app.settle()
        assert v.cursor.position == 3 and v.cursor.event_id == scenario.events[2].id
        await pilot.press("N")
        assert (await app.settle()).cursor.position == 2
        await pilot.press("p")
        assert (await app.settle()).cursor.position == 1
        await pilot.press("space")                      # continue: to the end of the replay
        v = await app.settle()
        assert v.cursor.position == len(scenario.events) and v.cursor.state == "paused"
        assert "PAUSED" in text_of(app.screen.query_one(StatusBar))


@sync
async def test_template_breakpoint_stops_on_the_storm_event(recording, scenario):
    app = make_app(recording)
    messages = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await app.settle()
        await command(app, pilot, "break template retransmission-storm")
        await pilot.press("space")
        v = await app.settle()
        assert v.cursor.event_id == scenario.storm_event
        assert v.hit.startswith("breakpoint 1 (template retransmission-storm) hit on flow 2")
        status = text_of(app.screen.query_one(StatusBar))
        assert f"#{scenario.storm_event}" in status and "breakpoint 1" in status
        # n steps on from the hit; space runs to the end (no second storm).
        await pilot.press("n")
        assert (await app.settle()).cursor.event_id == scenario.storm_event + 1
    # The pump spoke through messages only: views (coalesced) and command outputs.
    assert any(isinstance(m, ViewUpdated) for m in messages)
    outs = [o for m in messages if isinstance(m, CommandOutput) for o in m.outputs]
    assert any(getattr(o, "reason", "") == "breakpoint" for o in outs)


@sync
async def test_live_pause_freezes_the_view_while_ingestion_goes_on(scenario):
    src = PushSource()
    d = Debugger(src)
    app = build_app(d, clock=FixedClock(), cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        src.push(scenario.events[:10])
        v = await read_all(app, 10)
        assert v.cursor.state == "following" and v.cursor.position == 10
        await pilot.press("space")                      # pause
        v = await app.settle()
        assert v.cursor.state == "paused"
        src.push(scenario.events[10:])
        v = await read_all(app, len(scenario.events))
        assert v.cursor.position == 10 and v.cursor.known == len(scenario.events)
        await pilot.press("n")
        assert (await app.settle()).cursor.position == 11
        await pilot.press("space")                      # continue: catch up, then follow
        v = await app.settle()
        assert v.cursor.state == "following" and v.cursor.position == len(scenario.events)


@sync
async def test_reason_inspector_drills_from_l3_to_the_raw_l0_event_and_jumps(recording, scenario):
    app = make_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        await command(app, pilot, "goto end")
        # Pick flow 2 in the tree: down from the top to its row, enter.
        tree = app.screen.query_one(FlowTree)
        tree.focus()
        await pilot.press("home")
        while tree.current_flow() != 2:
            await pilot.press("down")
        await pilot.press("enter")
        v = await app.settle()
        assert v.selected == 2
        await pilot.press("2")                          # the reasons tab
        chain = app.screen.query_one(ChainTree)
        chain.focus()
        await pilot.pause()
        assert chain.root.data.layer == "L3"
        # Walk down L3 -> L2 (storm) -> its first L0 evidence.
        await pilot.press("down")
        assert chain.cursor_node.data.layer == "L2"
        assert chain.cursor_node.data.kind == "retransmission-storm"
        await pilot.press("down")
        l0 = chain.cursor_node.data
        assert l0.layer == "L0" and l0.kind == "retransmit"
        await pilot.press("enter")                      # open: the raw event, every field
        await app.settle()
        await pilot.pause()
        detail = text_of(app.screen.query_one("#reason-node"))
        assert f"#{l0.evidence[0]}" in detail
        for field in ("retransmit.sock", "retransmit.tuple.dport", "attr.comm", "ktime_ns"):
            assert field in detail
        await pilot.press("j")                          # jump: the cursor goes there
        v = await app.settle()
        assert v.cursor.event_id == l0.evidence[0] == scenario.lossy_retransmits[0]


@sync
async def test_intervention_panel_shows_which_gate_conditions_fail_and_why(recording):
    app = make_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        await command(app, pilot, "goto end")
        await command(app, pilot, "flow 2")
        await pilot.press("3")
        await pilot.pause()
        text = text_of(app.screen.query_one("#gate-body"))
        lines = {ln.split()[1]: ln for ln in text.splitlines() if ln.strip()[:1] in ("✓", "✗")}
        assert set(lines) == {"scope", "template", "reason-chain", "override", "complete",
                              "confirmation"}
        assert lines["scope"].lstrip().startswith("✓")
        assert lines["template"].lstrip().startswith("✓") and "allows drop" in lines["template"]
        assert lines["reason-chain"].lstrip().startswith("✓")
        assert lines["override"].lstrip().startswith("✗") and "replayed recording is inert" in lines["override"]
        assert lines["complete"].lstrip().startswith("✗") and "3 lost records" in lines["complete"]
        assert lines["confirmation"].lstrip().startswith("✗")
        assert "refused" in text


@sync
async def test_flow_without_template_fails_the_template_condition(recording):
    app = make_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        await command(app, pilot, "goto end")
        await command(app, pilot, "flow 1")           # the clean connection: no template
        await pilot.press("3")
        await pilot.pause()
        text = text_of(app.screen.query_one("#gate-body"))
        template = next(ln for ln in text.splitlines() if " template " in ln)
        assert template.lstrip().startswith("✗") and "no matched template allows drop" in template


@sync
async def test_filter_key_narrows_the_tree(recording):
    app = make_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        await command(app, pilot, "goto end")
        assert app.screen.query_one(FlowTree).line_count() > 3
        await pilot.press("slash")
        bar = app.screen.query_one(CommandBar)
        assert bar.value == "filter "
        bar.value = "filter dst 192.168.0.0/16"
        await pilot.press("enter")
        v = await app.settle()
        assert sorted(v.flows) == [3]
        tree = app.screen.query_one(FlowTree)
        assert tree.line_count() == 2                   # its group and its row


@sync
async def test_help_screen_is_generated_from_bindings_and_commands(recording):
    app = make_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        await app.settle()
        await pilot.press("question_mark")
        await pilot.pause()
        text = text_of(app.screen.query_one("Static"))
        for word in ("run.step", "break.set", "reverse", "export FILE", "filter [KIND VALUE"):
            assert word in text
        await pilot.press("escape")
        assert isinstance(app.screen.query_one(FlowTree), FlowTree)


@sync
async def test_quit_stops_the_pump(recording):
    app = make_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        await app.settle()
        assert app.runner.alive
        await pilot.press("q")
    assert not app.runner.alive


def test_every_binding_has_an_id_and_a_description():
    from gewtui.tui.screens.dialogs import ConfirmDrop, HelpScreen
    from gewtui.tui.screens.main import MainScreen

    for cls in (GewApp, MainScreen, FlowTree, ChainTree, CommandBar, HelpScreen, ConfirmDrop):
        for b in cls.BINDINGS:
            assert b.id and b.description, (cls.__name__, b)


def test_no_color_is_respected(recording, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    from gewtui.shell.repl import make_console

    assert make_console(io.StringIO()).no_color
    app = make_app(recording)
    assert app.no_color


def test_themes_are_variables_only():
    """Each theme file sets the same variables, and nothing but variables."""
    from gewtui.tui import themes

    seen = None
    for name in themes.NAMES:
        text = themes.theme_path(name).read_text()
        body = themes._COMMENT.sub("", text)
        decl = themes.parse(text)
        assert [ln for ln in body.splitlines() if ln.strip() and not ln.strip().startswith("$")] == []
        assert seen is None or set(decl) == seen, name
        seen = set(decl)
        theme, rich = themes.load(name)
        assert theme.name == f"gew-{name}" and "gew-bad" in theme.variables


@sync
async def test_a_failing_session_ends_the_app_with_its_error():
    from gewtui.errors import RecordingError

    class Failing(PushSource):
        def read(self, max_events, timeout_s=0.0):
            raise RecordingError("cannot write the recording: disk full")

    app = build_app(Debugger(Failing()), clock=FixedClock(), cursor_blink=False)
    async with app.run_test(size=SIZE):
        for _ in range(100):
            if app.return_value is not None:
                break
            await asyncio.sleep(0.05)
    assert app.return_value == 1
    assert isinstance(app.runner.error, RecordingError)


@sync
async def test_command_palette_offers_the_commands_as_area_verb(recording):
    from textual.command import CommandPalette

    app = make_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        await app.settle()
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"run: step")
        for _ in range(50):
            await pilot.pause(0.05)
            options = app.screen.query_one("CommandList")
            prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
            if any("run: step" in p for p in prompts):
                break
        assert any("run: step" in p for p in prompts), prompts
        await pilot.press("enter")
        v = await app.settle()
        assert v.cursor.position == 1           # the palette ran 'step'
