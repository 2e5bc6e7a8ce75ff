"""Attack 6: the front ends given hostile text.

- The TUI read error text as markup: `:flow [/]` crashed the app.
- Unicode digits (`flow ²`) gave "internal error".
- `filter netns ../../etc/passwd` told a user whether a file exists.
- The drop confirmation was stamped after the typing, so its 60 s and use-once rules
  never applied.
- A FIFO given as a recording blocked `gew export` (and the others) forever.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from gewtui.recording.sample import write_sample
from tests.support import debugger_support
from tests.support.intervention_fakes import setup as drop_setup
from tests.support.tui_driver import SIZE, command, make_app, sync

GEW = [sys.executable, "-m", "gewtui.cli.main"]
scenario, recording = debugger_support.scenario, debugger_support.recording


def _shell(rec: str, lines: str) -> subprocess.CompletedProcess:
    return subprocess.run(GEW + ["shell", rec], input=lines, capture_output=True, text=True, timeout=60)


@sync
async def test_markup_in_a_command_does_not_crash_the_tui(recording):
    app = make_app(recording)
    # notifications on: the error toast is where the text met markup
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await command(app, pilot, "goto end")
        for line in ("flow [/]", "flow [bold]x", "filter template [/x]"):
            await command(app, pilot, line)
            await pilot.pause()
        v = await command(app, pilot, "flow 1")       # still answering
        assert v.selected == 1
    assert app.return_code in (None, 0) and app._exception is None


@pytest.mark.parametrize("line", ["flow ²", "flow ٣", "goto ①", "delete ²", "next ²", "flow " + "9" * 5000],
                         ids=["superscript", "arabic-indic", "circled", "delete", "next", "5000-digits"])
def test_non_ascii_digits_are_a_usage_error(tmp_path, line):
    rec = tmp_path / "r.gewrec"
    write_sample(rec, 20)
    r = _shell(str(rec), line + "\n")
    assert r.returncode == 64, (r.returncode, r.stdout, r.stderr)
    out = r.stdout + r.stderr
    assert "internal error" not in out and "Traceback" not in out
    assert "must be a number" in out or "expected a count" in out, out


def test_filter_netns_is_a_name_not_a_path(tmp_path):
    rec = tmp_path / "r.gewrec"
    write_sample(rec, 20)
    outs = []
    for value in ("../../etc/passwd", "../../etc/no-such-file", "/etc/passwd", ".hidden"):
        r = _shell(str(rec), f"filter netns {value}\n")
        assert r.returncode == 64, r.stdout
        outs.append(" ".join(r.stdout.replace(value, "X").split()))
        assert "not a network namespace name" in r.stdout
    assert len(set(outs)) == 1, "the answer differs with the file's existence"


def test_drop_confirmation_counts_from_when_the_dialog_opened():
    from gewtui.debugger import commands
    from gewtui.intervene.gate import Answer

    now = time.monotonic_ns()
    slow = Answer.opener(lambda: now - 61_000_000_000)("2")   # opened 61 s ago, typed now
    ctx, backend, _ = drop_setup(slow)
    (out,) = commands.execute(ctx, "drop 2")
    assert out.level == "error" and "stale" in out.text and backend.map == {}


def test_one_dialog_confirms_one_drop():
    from gewtui.debugger import commands
    from gewtui.intervene.gate import Answer

    answer = Answer.opener()("2")
    ctx, backend, _ = drop_setup(answer)
    (first,) = commands.execute(ctx, "drop 2")
    assert first.level != "error", first.text
    commands.execute(ctx, "undo 2")
    (again,) = commands.execute(ctx, "drop 2")        # the same dialog's answer, replayed
    assert again.level == "error" and "already used" in again.text and backend.map == {}


@sync
async def test_the_tui_dialog_stamps_its_answer_when_it_opens(recording):
    from gewtui.tui.screens.dialogs import ConfirmDrop

    app = make_app(recording)
    got = []
    async with app.run_test(size=SIZE) as pilot:
        before = time.monotonic_ns()
        await app.push_screen(ConfirmDrop(2), got.append)
        after = time.monotonic_ns()
        await asyncio.sleep(0.3)                       # the operator takes their time
        await pilot.press("2", "enter")
        await pilot.pause()
    (answer,) = got
    assert answer.text == "2" and before <= answer.opened_ns <= after


@pytest.mark.parametrize("argv", [["export", "{f}"], ["shell", "{f}"], ["recording", "index", "{f}"],
                                  ["--tui", "--replay", "{f}"]])
def test_a_fifo_given_as_a_recording_fails_fast(tmp_path, argv):
    fifo = str(tmp_path / "rec.gewrec")
    os.mkfifo(fifo)
    cmd = [sys.executable, "-c", "from gewtui.cli.main import tui_main; import sys; sys.exit(tui_main(sys.argv[1:]))"] \
        if argv[0] == "--tui" else GEW
    args = [a.format(f=fifo) for a in (argv[1:] if argv[0] == "--tui" else argv)]
    try:
        r = subprocess.run(cmd + args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(argv)} blocked on a FIFO")
    assert r.returncode == 66, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a regular file (a FIFO)" in lines[0], r.stderr
