"""Snapshots (pytest-textual-snapshot) of gew-tui at 80x24 in each theme: the main screen
stopped on a template breakpoint with the flow selected, and the reason inspector.
Deterministic by construction: a fixed clock (rates read 0), no cursor blink, a recording
written from a constructed stream, notifications cleared before the picture.
Update after an intended change with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and look at the pictures (snapshot_report.html) before committing them."""
from __future__ import annotations

from pathlib import Path

import pytest

from gewtui.tui.themes import NAMES
from gewtui.tui.widgets.reasons import ChainTree
from tests.support.debugger_support import lab_scenario, write_recording
from tests.support.tui_driver import SIZE, command, make_app

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"


@pytest.fixture
def recording(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    return write_recording(tmp_path / "lab.gewrec", lab_scenario().events)


async def _stopped_on_the_storm(app, pilot) -> None:
    await app.settle()
    await command(app, pilot, "break template retransmission-storm")
    await pilot.press("space")
    await app.settle()
    await command(app, pilot, "flow 2")
    await pilot.press("1")
    app.clear_notifications()
    await pilot.pause()


@pytest.mark.parametrize("theme", NAMES)
def test_main_screen(snap_compare, recording, theme):
    app = make_app(recording, theme)

    async def before(pilot):
        await _stopped_on_the_storm(app, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


@pytest.mark.parametrize("theme", NAMES)
def test_reason_inspector(snap_compare, recording, theme):
    app = make_app(recording, theme)

    async def before(pilot):
        await _stopped_on_the_storm(app, pilot)
        await pilot.press("2")
        app.screen.query_one(ChainTree).focus()
        await pilot.press("down", "down")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


# ---- the operator's pictures at both sizes people use --------------------------------------

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


@pytest.mark.parametrize("size", SIZES)
def test_flow_chart(snap_compare, recording, size):
    """The storm flow's chart (cwnd, srtt, bytes, retransmits, drops) at the end."""
    app = make_app(recording, "dark")

    async def before(pilot):
        await app.settle()
        await command(app, pilot, "goto end")
        await command(app, pilot, "flow 2")
        await pilot.press("1")
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_status_sparkline(snap_compare, size, monkeypatch):
    """The status bar's sparkline at the end of a 5-second recorded session with a
    retransmission storm (tests/data/golden/lossy): one column per second."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    app = make_app(GOLDEN / "lossy.gewrec", "dark")

    async def before(pilot):
        await app.settle()
        await command(app, pilot, "goto end")
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_drop_dialog(snap_compare, recording, size):
    """The typed drop confirmation: its whole instruction is readable at 80 columns."""
    app = make_app(recording, "dark")

    async def before(pilot):
        await _stopped_on_the_storm(app, pilot)
        await pilot.press("d")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)
