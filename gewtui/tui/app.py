"""The gew-tui application: bindings, theme, and the bridge to the debugger's pump thread.

Place in the pipeline: ``build_app`` wraps a Debugger in a Runner (gewtui.debugger.runner,
the one thread that touches it) and an App. The runner's callbacks post ``ViewUpdated`` /
``CommandOutput`` messages (thread-safe); the main screen renders them. Keys and widgets
produce command lines of the debugger's language (``run_line``), exactly what ``:`` or
``gew shell`` would send. The factory takes a clock and a cursor-blink switch so tests
and snapshots are deterministic.

A motion's first RUNNING view is held for ``RUNNING_DELAY_S``: a step or a short goto is
painted once, stopped, instead of a RUNNING frame followed at once by the stop.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from textual.app import App
from textual.binding import Binding
from textual.timer import Timer

from gewtui.debugger.core import Debugger
from gewtui.debugger.gating import gate_view
from gewtui.debugger.runner import Runner
from gewtui.debugger.view_builder import ViewBuilder
from gewtui.debugger.view import DebugView, Output
from gewtui.tui import keymap, themes
from gewtui.tui.messages import CommandOutput, ViewUpdated
from gewtui.tui.opening import CursorHistory, StoryOpener
from gewtui.tui.palette import DebuggerCommands
from gewtui.tui.screens.dialogs import ConfirmDrop, HelpScreen
from gewtui.tui.screens.main import MainScreen


# How long a motion may run before its RUNNING state is painted.
RUNNING_DELAY_S = 0.05


class GewApp(App[int]):
    TITLE = "gew-tui"
    COMMANDS = App.COMMANDS | {DebuggerCommands}
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = [
        Binding("space", "toggle_run", "Run", key_display="spc", id="run.toggle",
                tooltip="continue, or pause when running"),
        Binding("n", "step", "Step", id="run.step"),
        Binding("N,p", "back", "Back", id="run.back"),
        Binding("f", "line('step flow')", "Step flow", show=False, id="run.step-flow"),
        Binding("t", "line('step transition')", "Step transition", show=False, id="run.step-transition"),
        Binding("ctrl+o", "jump_back", "Jump back", show=False, id="run.jump-back",
                tooltip="back to the cursor's previous stop (its history)"),
        Binding("b", "bar('break ')", "Break", id="break.set"),
        Binding("slash", "bar('filter ')", "Filter", id="filter.set"),
        Binding("g", "bar('goto ')", "Goto", id="run.goto"),
        Binding("e", "bar('export ')", "Export", id="session.export"),
        Binding("d", "drop", "Drop", show=False, id="session.drop"),
        Binding("colon", "bar('')", "Cmd", id="command.open"),
        Binding("question_mark", "help", "Help", id="help.show"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, runner: Runner, *, theme: str = "dark", cursor_blink: bool = True,
                 drop_reasons: tuple[str, ...] = (), keymap: dict[str, str] | None = None,
                 open_at: str | None = None) -> None:
        super().__init__()
        self.runner = runner
        self.opener = StoryOpener(open_at)          # where a replay opens (gewtui.tui.opening)
        self.history = CursorHistory()
        self.user_keymap = dict(keymap or {})      # binding id -> keys (gewtui.config)
        self.theme_name = theme
        self.cursor_blink = cursor_blink
        self.drop_reasons = drop_reasons
        self.view: DebugView | None = None          # the latest view from the pump
        self._shown: DebugView | None = None        # the latest one handed to the screen
        self._running_timer: Timer | None = None
        self.views_applied = 0
        self._theme, self._rich_theme = themes.load(theme)

    # ---- lifetime ---------------------------------------------------------------------

    def get_default_screen(self) -> MainScreen:
        return MainScreen()

    def on_mount(self) -> None:
        if self.user_keymap:
            self.set_keymap(self.user_keymap)
        self.register_theme(self._theme)
        self.theme = self._theme.name
        self.console.push_theme(self._rich_theme)
        self.runner.on_view = lambda v: self.post_message(ViewUpdated(v))
        self.runner.on_output = self._unowned_output
        # Start the pump once the screen has mounted: a source that fails at once would
        # otherwise make the app exit while its tabs are still being built.
        self.call_after_refresh(self._start_pump)

    def _start_pump(self) -> None:
        if not self.runner.alive:
            self.runner.start()
        self.runner.submit("")     # a first view at once

    def _unowned_output(self, outputs: list[Output], owned: bool) -> None:
        if not owned:
            self.post_message(CommandOutput(outputs))
        if self.runner.error is not None:
            # The pump died (the session failed, a recording could not be written): leave,
            # and let run_app raise its error as the one line the CLI prints.
            self.call_from_thread(self.exit, 1)

    async def action_quit(self) -> None:
        self.runner.stop()
        self.exit(0)

    def on_unmount(self) -> None:
        self.runner.stop()

    # ---- from the pump -------------------------------------------------------------------

    def on_view_updated(self, message: ViewUpdated) -> None:
        view = message.view
        self.view = view
        self.history.seen(view)
        if not self.opener.done:
            for line in self.opener.seen(view):
                self.run_line(line, echo=False)
        shown = self._shown
        if (view.cursor.state == "running" and shown is not None
                and shown.cursor.state != "running"):
            # A motion just started. Most stop within a moment (a step, a short goto): their
            # RUNNING state is not painted, the stop is (one frame instead of two). One that
            # goes on shows it after RUNNING_DELAY_S.
            if self._running_timer is None:
                self._running_timer = self.set_timer(RUNNING_DELAY_S, self._show_latest)
            return
        self._show(view)

    def _show_latest(self) -> None:
        self._running_timer = None
        if self.view is not None and self.view is not self._shown:
            self._show(self.view)

    def _show(self, view: DebugView) -> None:
        if self._running_timer is not None:
            self._running_timer.stop()
            self._running_timer = None
        self._shown = view
        self.views_applied += 1
        screen = self._main()
        if screen is not None:
            screen.apply_view(view)

    def on_command_output(self, message: CommandOutput) -> None:
        screen = self._main()
        if screen is not None:
            screen.show_outputs(message.outputs, quiet=getattr(message, "quiet", False))

    def _main(self) -> MainScreen | None:
        for s in self.screen_stack:
            if isinstance(s, MainScreen):
                return s
        return None

    # ---- to the pump ---------------------------------------------------------------------

    def run_line(self, line: str, *, echo: bool = True, confirm_text: Any = None) -> Any:
        """Send one command line to the debugger; its outputs come back as CommandOutput."""
        screen = self._main()
        if echo and screen is not None:
            screen.echo(line)
        fut = self.runner.submit(line, confirm_text=confirm_text)

        def done(f: Any) -> None:
            try:
                outs = f.result()
            except Exception as e:   # the pump died; say so instead of hanging
                from gewtui.debugger.view import Message
                outs = [Message(f"debugger stopped: {e!r}", "error")]
            msg = CommandOutput(outs)
            msg.quiet = not echo
            self.post_message(msg)

        fut.add_done_callback(done)
        return fut

    def open_command_bar(self, text: str = "") -> None:
        screen = self._main()
        if screen is not None:
            screen.query_one("CommandBar").open(text)

    # ---- key actions -----------------------------------------------------------------------

    def action_toggle_run(self) -> None:
        paused = self.view is None or self.view.cursor.state == "paused"
        self.run_line("continue" if paused else "pause")

    def action_step(self) -> None:
        self.run_line("step")

    def action_back(self) -> None:
        self.run_line("back")

    def action_jump_back(self) -> None:
        line = self.history.back()
        if line is None:
            self.notify("no earlier stop in the cursor's history", timeout=2)
        else:
            self.run_line(line)

    def action_line(self, line: str) -> None:
        self.run_line(line)

    def action_bar(self, text: str) -> None:
        self.open_command_bar(text)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self._all_bindings()))

    def _all_bindings(self) -> list[Binding]:
        return keymap.effective(all_bindings(), self.user_keymap)

    def keys_for(self, binding_id: str) -> str:
        """The keys bound to one id under the user's keymap ('' when none)."""
        return keymap.keys_in(all_bindings(), binding_id, self.user_keymap)

    def action_drop(self) -> None:
        v = self.view
        if v is None or not v.selected:
            self.notify("select a flow first (enter in the tree)", severity="warning")
            return
        flow_id = v.selected

        def confirmed(typed: Any) -> None:      # an intervene.gate.Answer, or None
            if typed is not None and typed.text:
                self.run_line(f"drop {flow_id}", confirm_text=typed)

        self.push_screen(ConfirmDrop(flow_id), confirmed)

    # ---- test support ------------------------------------------------------------------

    async def settle(self, timeout: float = 20.0, motion: bool = True) -> DebugView:
        """Wait until the pump has run everything submitted (and, with ``motion``, until the
        cursor stopped moving) and the resulting view is on screen."""
        deadline = time.monotonic() + timeout
        while True:
            view = await asyncio.to_thread(self.runner.view_now, timeout)
            moving = view.cursor.state == "running"
            shown = self._shown
            if (not motion or not moving) and shown is not None and shown.seq >= view.seq:
                await asyncio.sleep(0)
                return shown
            if time.monotonic() > deadline:
                raise TimeoutError(f"the debugger did not settle (state {view.cursor.state})")
            await asyncio.sleep(0.02)


class FixedClock:
    """A clock that only moves when told (snapshots: rates are exactly 0)."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def build_app(debugger: Debugger, *, theme: str = "dark", clock: Callable[[], float] | None = None,
              cursor_blink: bool = True, tick_s: float = 0.1,
              keymap: dict[str, str] | None = None, open_at: str | None = None) -> GewApp:
    """The app over a debugger (not started: the app starts its pump on mount)."""
    views = ViewBuilder(debugger, clock=clock or time.monotonic,
                        gate_view=debugger.gate or gate_view)
    runner = Runner(debugger, views, tick_s=tick_s)
    header = debugger.source.info().header
    reasons = tuple(sorted(set(header.drop_reasons.values()))) if header is not None else ()
    return GewApp(runner, theme=theme, cursor_blink=cursor_blink, drop_reasons=reasons,
                  keymap=keymap, open_at=open_at)


def run_app(debugger: Debugger, *, theme: str = "dark", keymap: dict[str, str] | None = None,
            open_at: str | None = None) -> int:
    app = build_app(debugger, theme=theme, keymap=keymap, open_at=open_at)
    try:
        result = app.run()
    finally:
        app.runner.stop()
    if app.runner.error is not None:
        raise app.runner.error
    return int(result or 0)


def all_bindings() -> list[Binding]:
    """Every binding of the app, its screens and widgets, in help order."""
    from gewtui.tui.widgets.bars import CommandBar
    from gewtui.tui.widgets.flow_tree import FlowTree
    from gewtui.tui.widgets.reasons import ChainTree

    out: list[Binding] = []
    for cls in (GewApp, MainScreen, FlowTree, ChainTree, CommandBar, HelpScreen, ConfirmDrop):
        out += [b for b in cls.BINDINGS if isinstance(b, Binding)]
    return out


def binding_ids() -> list[str]:
    """The ids a user's keymap may name (gewtui.config checks them)."""
    return [b.id for b in all_bindings() if b.id]
