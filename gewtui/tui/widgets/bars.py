"""The status bar (two lines under the panels) and the command bar (``:``).

Place in the pipeline: the status bar renders the session and cursor parts of each
DebugView; the command bar collects a line of the debugger's command language (with
suggestions generated from the command table and the latest view) and posts it.
"""
from __future__ import annotations

import os

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Input, Static

from gewtui.debugger import commands, names
from gewtui.debugger.view import DebugView

STATE_MARK = {"following": "▶", "running": "▶", "paused": "‖"}


def _rate(x: float) -> str:
    return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}"


def status_text(v: DebugView) -> Text:
    s, c = v.status, v.cursor
    t = Text()
    style = "gew.hit" if v.hit else ("gew.running" if c.state != "paused" else "gew.paused")
    label = c.state.upper() + (f" {c.motion}" if c.motion else "")
    t.append(f"{STATE_MARK.get(c.state, '?')} {label}", style=style)
    t.append(f"  {c.mode}", style="gew.dim")
    where = f"#{c.event_id}" if c.event_id else "start"
    more = "" if c.complete or c.mode == "live" else "+"
    t.append(f"  {where}", style="gew.id")
    t.append(f" ({c.position}/{c.known}{more})")
    if c.rel:
        t.append(f" +{c.rel}", style="gew.dim")
    t.append("  │ ", style="gew.dim")
    t.append(f"{_rate(s.events_per_s)} ev/s")
    t.append("  lost ")
    t.append(str(s.lost), style="gew.bad" if s.lost else "gew.ok")
    if not s.complete and not s.lost:
        t.append(" incomplete", style="gew.bad")
    if s.lag:
        # the engine is behind the capture: nothing is lost, the view is s.lag events old
        t.append(f"  lag {s.lag}", style="gew.warn")
    if s.bpf_run_time_ns or s.bpf_runs_per_s:
        t.append("  │ bpf ", style="gew.dim")
        t.append(f"{s.bpf_run_time_ns / 1e6:.1f}ms {_rate(s.bpf_runs_per_s)} runs/s")
    t.append("\n")
    t.append(s.session_id or "-", style="gew.dim")
    t.append(f" {s.verdict.lower().replace('_', ' ')}", style="gew.ok" if s.verdict == "FULLY_SUPPORTED"
             else "gew.warn")
    rec = os.path.basename(s.recording) if s.recording else "-"
    t.append(f"  rec {rec} {names.size_text(s.recording_size)}", style="gew.dim")
    t.append(f"  flows {v.flows_total}")
    if v.filters:
        t.append(f" ({len(v.flows)} shown)", style="gew.warn")
    if v.template_notes:
        t.append(f"  {len(v.template_notes)} template(s) replaced", style="gew.warn")
    if v.hit:
        t.append("  ● " + v.hit, style="gew.hit")
    elif v.message:
        t.append("  " + v.message)
    return t


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 2; background: $panel; color: $foreground; padding: 0 1; }
    """

    def __init__(self, **kw) -> None:
        super().__init__("", **kw)
        self._last: Text | None = None

    def update_view(self, view: DebugView) -> None:
        t = status_text(view)
        if self._last is not None and t == self._last:
            return
        self._last = t
        self.update(t, layout=False)        # two lines, always: no layout pass needed


class CommandSuggester(Suggester):
    """Suggests the rest of the word being typed, from the command table."""

    def __init__(self, bar: "CommandBar") -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.bar = bar

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        cands = commands.complete(value, self.bar.completion_data())
        if not cands:
            return None
        head, _, word = value.rpartition(" ")
        best = cands[0]
        if not best.startswith(word) or best == word:
            return None
        return (head + " " if head else "") + best


class CommandBar(Input):
    """``:`` opens it; Enter runs the line; Escape closes it."""

    BINDINGS = [Binding("escape", "close", "Close", show=False, id="command.close")]
    DEFAULT_CSS = """
    CommandBar { display: none; height: 1; border: none; padding: 0 1; background: $panel; }
    CommandBar.-open { display: block; }
    CommandBar:focus { border: none; }
    """

    class Run(Message):
        def __init__(self, line: str) -> None:
            super().__init__()
            self.line = line

    def __init__(self, **kw) -> None:
        super().__init__(placeholder="command (help lists them)", **kw)
        self.suggester = CommandSuggester(self)
        self.view: DebugView | None = None
        self.drop_reasons: tuple[str, ...] = ()

    def completion_data(self) -> commands.CompletionData:
        v = self.view
        if v is None:
            return commands.CompletionData(drop_reasons=self.drop_reasons)
        return commands.CompletionData(flows=tuple(sorted(v.flows)), templates=v.templates,
                                       breakpoints=tuple(b.number for b in v.breakpoints),
                                       drop_reasons=self.drop_reasons)

    def open(self, text: str = "") -> None:
        self.add_class("-open")
        self.value = text
        self.cursor_position = len(text)
        self.focus()

    def action_close(self) -> None:
        self.value = ""
        self.remove_class("-open")
        self.screen.focus_next()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        line = event.value.strip()
        self.action_close()
        if line:
            self.post_message(self.Run(line))
