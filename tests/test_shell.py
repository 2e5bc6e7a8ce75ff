"""gew shell: the same scenario as the Pilot test, typed through prompt_toolkit's pipe input,
prints the same flow and reason ids the TUI shows; scripted stdin; completion; history."""
from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys

from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from gewtui.debugger.core import Debugger
from gewtui.debugger.runner import Runner
from gewtui.debugger.sources import ReplaySource
from gewtui.shell import repl
from gewtui.tui.widgets.reasons import ChainTree, _walk
from tests.support import debugger_support
from tests.support.tui_driver import SIZE, command, make_app

# The shared scenario and its recording (fixtures of tests/support/debugger_support.py).
scenario, recording = debugger_support.scenario, debugger_support.recording

NODE_ID = re.compile(r"\bf\d+/L\d[^\s]*")
SCENARIO = ["break template retransmission-storm", "continue", "flow 2", "chain"]


def shell_session(path, lines, *, history=None):
    """Run the interactive shell over ``path`` with ``lines`` typed, then Ctrl-D."""
    runner = Runner(Debugger(ReplaySource(path))).start()
    out = io.StringIO()
    try:
        with create_pipe_input() as inp:
            inp.send_text("".join(line + "\r" for line in lines) + "\x04")
            shell = repl.Shell(runner, console=repl.make_console(out, width=240), input=inp,
                               output=DummyOutput(), history=history or InMemoryHistory())
            rc = shell.run_interactive()
        view = runner.view_now()
    finally:
        runner.stop()
    return rc, out.getvalue(), view


def test_shell_runs_the_pilot_scenario_and_prints_the_same_ids(recording, scenario):
    rc, text, view = shell_session(recording, SCENARIO)
    assert rc == 0
    assert f"breakpoint 1 (template retransmission-storm) hit on flow 2 at #{scenario.storm_event}" in text
    assert view.cursor.event_id == scenario.storm_event and view.selected == 2
    shell_ids = set(NODE_ID.findall(text))

    async def tui_ids():
        app = make_app(recording)
        async with app.run_test(size=SIZE) as pilot:
            await app.settle()
            for line in SCENARIO:
                await command(app, pilot, line)
            v = app.view
            tree = app.screen.query_one(ChainTree)
            return v, {n.data.node_id for n in _walk(tree.root) if n.data is not None}

    tv, ids = asyncio.run(tui_ids())
    assert tv.selected == view.selected and tv.cursor.event_id == view.cursor.event_id
    assert shell_ids == ids and "f2/L3" in ids and "f2/L2/retransmission-storm/0" in ids


def test_shell_history_records_the_lines(recording):
    hist = InMemoryHistory()
    shell_session(recording, ["flows", "info"], history=hist)
    assert list(hist.get_strings())[-2:] == ["flows", "info"]


def test_shell_completion_offers_commands_flows_and_templates(recording):
    runner = Runner(Debugger(ReplaySource(recording))).start()
    try:
        runner.call("goto end")
        runner.view_now()
        shell = repl.Shell(runner, console=repl.make_console(io.StringIO()))
        comp = repl._Completer(shell)

        def words(text):
            return [c.text for c in comp.get_completions(Document(text), None)]

        assert "continue" in words("con")
        assert words("flow ") == ["1", "2", "3"]
        assert "retransmission-storm" in words("break template re")
        assert "CLOSE" in words("break state CL")
        assert words("filter ph") == ["phase"]
    finally:
        runner.stop()


def test_scripted_stdin_prints_and_exits(recording, scenario):
    lines = "flows\ngoto end\nflows\n"
    p = subprocess.run([sys.executable, "-m", "gewtui.cli.main", "shell", recording],
                       input=lines, capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "COLUMNS": "160"})
    assert p.returncode == 0, p.stderr
    assert "flows at start" in p.stdout and f"flows at #{scenario.events[-1].id}" in p.stdout
    assert "10.0.0.2:8080" in p.stdout and "192.168.7.9:443" in p.stdout


def test_scripted_stdin_reports_a_failing_line_in_the_exit_status(recording):
    p = subprocess.run([sys.executable, "-m", "gewtui.cli.main", "shell", recording],
                       input="goto nowhere\n", capture_output=True, text=True, timeout=120)
    assert p.returncode == 64 and "error:" in p.stdout


def test_shell_on_a_missing_recording_is_one_line_and_exit_66(tmp_path):
    p = subprocess.run([sys.executable, "-m", "gewtui.cli.main", "shell", str(tmp_path / "nope")],
                       input="", capture_output=True, text=True, timeout=120)
    assert p.returncode == 66 and p.stderr.count("\n") == 1 and "no such file" in p.stderr


def test_drop_in_a_script_is_refused_without_a_typed_confirmation(recording):
    p = subprocess.run([sys.executable, "-m", "gewtui.cli.main", "shell", recording],
                       input="goto end\ndrop 2\n", capture_output=True, text=True, timeout=120)
    assert p.returncode == 64 and "interactive terminal" in p.stdout
