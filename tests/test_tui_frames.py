"""The flow tree, the panels and the app with thousands of flows: what a frame renders.

The tree is driven with constructed row mappings (as the view builder makes them: an
unchanged row is the same object), in a bare app under Textual's headless driver; the
counts are of lines the tree actually rendered in the frames that followed. The last tests
run the whole app over a debugger with 2,000 flows: a step that changes rows repaints them
without a layout pass or a rebuild, and nothing printed while the console is hidden is lost.
"""
from __future__ import annotations

import contextlib
import dataclasses
from types import MappingProxyType, SimpleNamespace

from textual.app import App

from gewtui.debugger.view import FlowRow
from gewtui.tui import themes
from gewtui.tui.widgets.flow_tree import FlowTree, build_lines, changed_rows
from tests.support import debugger_support
from tests.support.tui_driver import _text, command, sync

# The shared scenario's recording (a fixture of tests/support/debugger_support.py).
scenario, recording = debugger_support.scenario, debugger_support.recording

N = 3000
SIZE = (100, 30)


def row(fid: int, **kw) -> FlowRow:
    base = dict(flow_id=fid, parent_id=0, phase="evolving", peer=f"10.2.{fid >> 8}.{fid & 255}:443",
                local="10.0.0.1", tcp_state="ESTABLISHED", events=2, retransmits=0, drops=0,
                resets=0, segments=0, bytes=0, templates=(), netns=0, first_ktime_ns=0,
                last_ktime_ns=0, last_event_id=0, end_reason="")
    base.update(kw)
    return FlowRow(**base)


def view(rows: dict[int, FlowRow], selected: int | None = None):
    return SimpleNamespace(flows=MappingProxyType(dict(rows)), selected=selected)


class CountingTree(FlowTree):
    """Counts the lines Textual asked for and the flow lines built from scratch."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.rendered: list[int] = []
        self.built = 0

    def render_line(self, y: int):
        self.rendered.append(self.scroll_offset.y + y)
        return super().render_line(y)

    def _flow_segments(self, *a, **kw):
        self.built += 1
        return super()._flow_segments(*a, **kw)


class TreeApp(App):
    CSS = "CountingTree { width: 50; }"

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(themes.load("dark")[0].variables)

    def compose(self):
        yield CountingTree()


@contextlib.asynccontextmanager
async def tree_showing(rows: dict[int, FlowRow], selected: int | None = None):
    """A bare app with the tree, the rows handed over and painted: (pilot, tree)."""
    app = TreeApp()
    async with app.run_test(size=SIZE) as pilot:
        tree = app.query_one(CountingTree)
        tree.focus()
        tree.update_view(view(rows, selected))
        await pilot.pause()
        yield pilot, tree


async def _frame(pilot, tree: CountingTree) -> list[int]:
    """Let a frame paint; the lines it rendered."""
    tree.rendered.clear()
    await pilot.pause()
    return sorted(set(tree.rendered))


@sync
async def test_a_changed_row_repaints_only_its_own_line():
    rows = {fid: row(fid) for fid in range(1, N + 1)}
    async with tree_showing(rows) as (pilot, tree):
        height = tree.scrollable_content_region.height
        assert tree.line_count() == N + 1 and tree.rebuilds == 1
        assert sorted(set(tree.rendered)) == list(range(height))    # only what is on screen
        # Flow 5 (line 5, under the group header) gets retransmits; flow 2,000 (off
        # screen) changes too. One line is rendered again, nothing is rebuilt.
        rows[5] = dataclasses.replace(rows[5], retransmits=7)
        rows[2000] = dataclasses.replace(rows[2000], retransmits=1)
        tree.update_view(view(rows))
        assert await _frame(pilot, tree) == [5]
        assert tree.rebuilds == 1
        assert " r7" in _text(tree, 5)
        # The same rows again: nothing to paint.
        tree.update_view(view(rows))
        assert await _frame(pilot, tree) == []
        # Every row changed (a back that rebuilt them all): the screen is painted again.
        rows = {fid: dataclasses.replace(r, drops=2) for fid, r in rows.items()}
        tree.update_view(view(rows))
        assert await _frame(pilot, tree) == list(range(height))
        assert tree.rebuilds == 1 and " d2" in _text(tree, 1)


@sync
async def test_a_phase_change_or_a_new_flow_rebuilds_the_groups():
    rows = {fid: row(fid) for fid in range(1, N + 1)}
    async with tree_showing(rows) as (pilot, tree):
        rows[3] = dataclasses.replace(rows[3], phase="terminated", tcp_state="CLOSE")
        tree.update_view(view(rows))
        await pilot.pause()
        assert tree.rebuilds == 2
        assert _text(tree, 0).startswith(f"▾ evolving ({N - 1})")
        rows[N + 1] = row(N + 1)
        tree.update_view(view(rows))
        await pilot.pause()
        assert tree.rebuilds == 3 and tree.line_count() == N + 3


@sync
async def test_selecting_a_flow_repaints_the_old_and_the_new_line():
    rows = {fid: row(fid) for fid in range(1, N + 1)}
    async with tree_showing(rows, selected=2) as (pilot, tree):
        assert "▶f2" in _text(tree, 2)
        tree.update_view(view(rows, selected=4))
        assert await _frame(pilot, tree) == [2, 4]
        assert "▶f2" not in _text(tree, 2) and "▶f4" in _text(tree, 4)


@sync
async def test_paging_renders_one_screen_and_paging_back_builds_nothing():
    rows = {fid: row(fid) for fid in range(1, N + 1)}
    async with tree_showing(rows) as (pilot, tree):
        height = tree.scrollable_content_region.height
        await pilot.press("pagedown", "pagedown")
        await pilot.pause()
        assert tree.cursor == 2 * (height - 1)
        assert tree.scroll_offset.y == tree.cursor - height + 1
        built = tree.built
        await pilot.press("pageup", "pageup")
        await pilot.pause()
        assert tree.cursor == 0 and tree.scroll_offset.y == 0
        assert tree.built == built                      # every line came from the cache


@sync
async def test_lines_fit_the_pane_beside_the_scrollbar_and_it_never_scrolls_sideways():
    long_peer = "[2001:db8:ffff:ffff:ffff:ffff:ffff:1]:443"
    rows = {fid: row(fid, peer=long_peer, retransmits=fid) for fid in range(1, N + 1)}
    async with tree_showing(rows) as (pilot, tree):
        assert tree.show_vertical_scrollbar and not tree.show_horizontal_scrollbar
        width = tree.scrollable_content_region.width
        assert width == tree.size.width - 1             # the scrollbar's column
        for y in range(tree.scrollable_content_region.height):
            assert tree.render_line(y).cell_length == width
        line = _text(tree, 1)
        assert "…" in line and line.rstrip().endswith("r1")   # the peer gives way to the counters


def test_build_lines_nests_children_and_counts_them_in_their_group():
    rows = {1: row(1), 2: row(2, parent_id=1, phase="diverged"), 3: row(3, parent_id=2),
            4: row(4, phase="terminated"), 5: row(5), 6: row(6, parent_id=99)}
    assert build_lines(rows, set()) == [
        ("g", "evolving", 5), ("f", 1, 0), ("f", 2, 1), ("f", 3, 2), ("f", 5, 0), ("f", 6, 0),
        ("g", "terminated", 1), ("f", 4, 0)]
    assert build_lines(rows, {"evolving"}) == [("g", "evolving", 5), ("g", "terminated", 1),
                                               ("f", 4, 0)]


def test_changed_rows_names_changed_rows_or_reports_a_structural_change():
    old = {fid: row(fid) for fid in range(1, 50)}
    new = dict(old)
    new[7] = dataclasses.replace(old[7], events=3)
    assert changed_rows(old, new) == [7]
    reordered = {k: new[k] for k in reversed(list(new))}
    assert changed_rows(old, reordered) == [7]
    assert changed_rows(old, {**new, 7: dataclasses.replace(old[7], phase="terminated")}) is None
    assert changed_rows(old, {**new, 7: dataclasses.replace(old[7], parent_id=3)}) is None
    assert changed_rows(old, {k: v for k, v in new.items() if k != 7}) is None


# ---- the whole app over a debugger ----------------------------------------------------------

def _app_over_flows(n: int, closing: int):
    """``n`` connections opened and established, then the first ``closing`` of them moving
    to FIN_WAIT1 (a change of their rows that keeps their phase)."""
    from gewtui.debugger.core import Debugger
    from gewtui.debugger.sources import MemorySource
    from gewtui.pb import events_pb2 as E
    from gewtui.tui.app import FixedClock, build_app
    from tests.support.debugger_support import StreamBuilder

    b = StreamBuilder()
    for old, new, count in ((E.TCP_CLOSE, E.TCP_SYN_SENT, n), (E.TCP_SYN_SENT, E.TCP_ESTABLISHED, n),
                            (E.TCP_ESTABLISHED, E.TCP_FIN_WAIT1, closing)):
        for k in range(count):
            b.state(0x10000 + k, old, new, sport=20000 + k, dst=bytes((10, 2, k >> 8, k & 255)))
    return build_app(Debugger(MemorySource(b.events)), clock=FixedClock(), cursor_blink=False)


@sync
async def test_a_step_that_changes_rows_paints_without_a_layout_or_a_rebuild():
    n = 2000
    app = _app_over_flows(n, 20)
    async with app.run_test(size=(200, 40)) as pilot:
        await command(app, pilot, f"goto #{2 * n}")
        # A flow the step does not touch is selected: the flow view's text keeps its height.
        await command(app, pilot, f"flow {n}")
        await pilot.pause()
        tree = app.screen.query_one(FlowTree)
        rebuilds = tree.rebuilds
        layouts: list = []
        app.screen.screen_layout_refresh_signal.subscribe(app.screen, layouts.append)
        before = app.view
        app.run_line("step 10")
        after = await app.settle()
        await pilot.pause()
        changed = [f for f, r in after.flows.items() if before.flows.get(f) is not r]
        assert len(changed) == 10 and after.cursor.position == 2 * n + 10
        assert layouts == [] and tree.rebuilds == rebuilds
        for fid in changed:
            assert "FINW1" in _text(tree, tree.line_of(fid))


@sync
async def test_the_console_keeps_what_was_printed_while_its_tab_was_hidden():
    from gewtui.tui.widgets.panels import Console

    app = _app_over_flows(50, 0)
    async with app.run_test(size=(120, 30)) as pilot:
        await command(app, pilot, "step")
        await command(app, pilot, "step 2")
        await pilot.press("4")
        await pilot.pause()
        text = "\n".join(strip.text for strip in app.screen.query_one(Console).lines)
        assert text.index("› step") < text.index("› step 2")


@sync
async def test_a_motion_that_stops_at_once_paints_its_stop_but_not_its_running_state(recording):
    from gewtui.tui.app import RUNNING_DELAY_S
    from gewtui.tui.messages import ViewUpdated
    from gewtui.tui.widgets.bars import StatusBar
    from tests.support.tui_driver import make_app, text_of

    app = make_app(recording)
    async with app.run_test(size=(120, 30)) as pilot:
        await app.settle()
        app.runner.stop()                      # only the views below arrive from now on
        await pilot.pause()
        paused = app.screen.view
        assert paused.cursor.state == "paused"
        status = app.screen.query_one(StatusBar)
        seq = paused.seq + 1000

        def arrives(state: str) -> None:
            """A view from the pump, handled as the app handles one."""
            nonlocal seq
            seq += 1
            cursor = dataclasses.replace(paused.cursor, state=state)
            app.on_view_updated(ViewUpdated(dataclasses.replace(paused, seq=seq, cursor=cursor)))

        # Running, then stopped within the delay: the RUNNING view never reaches the screen.
        arrives("running")
        assert app.screen.view is paused
        arrives("paused")
        assert app.screen.view.seq == seq
        await pilot.pause(RUNNING_DELAY_S * 3)
        assert app.screen.view.seq == seq and "PAUSED" in text_of(status)
        # Running for longer: RUNNING is shown once the delay has passed, every later
        # running view at once.
        arrives("running")
        assert app.screen.view.seq == seq - 1
        await pilot.pause(RUNNING_DELAY_S * 3)
        assert app.screen.view.seq == seq and "RUNNING" in text_of(status)
        arrives("running")
        assert app.screen.view.seq == seq
