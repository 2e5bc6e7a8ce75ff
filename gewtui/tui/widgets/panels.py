"""The right-hand panels: the flow view, the intervention panel and the console.

Place in the pipeline: the main screen hands each new DebugView to ``update_view``; they
render the parts of it they show with the renderers shared with the shell
(gewtui.present.renderables), and repaint only when their part changed (compared by identity:
the view builder reuses unchanged values).

What a frame costs here: a repaint of a few lines is cheap, a layout pass (the whole
screen arranged again) is not. So a panel in a tab that is not shown keeps the latest view
and renders it when its tab comes to the front (``Deferred``), and a ``Body`` whose new
content is as tall as the old one repaints without asking for a layout.
"""
from __future__ import annotations

from collections import deque
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import RichLog, Static

from gewtui.debugger.view import DebugView, Output
from gewtui.present import renderables
from gewtui.tui.widgets.charts import FlowChart


def displayed(widget: Widget) -> bool:
    """Whether the widget takes part in the screen (no hidden ancestor, e.g. a tab pane
    that is not the active one)."""
    return all(node.display for node in widget.ancestors_with_self if isinstance(node, Widget))


class Body(Static):
    """A Static whose updates ask Textual for a layout only when its height changes."""

    def show(self, content: RenderableType) -> None:
        width, height = self.size
        self.update(content, layout=False)
        if not width or self.get_content_height(self.size, self.size, width) != height:
            self.refresh(layout=True)


class Deferred:
    """For a panel that lives in a tab: views arriving while the tab is hidden are kept,
    and the latest is rendered when the tab is shown (Textual sends ``Show``)."""

    _pending: DebugView | None = None

    def update_view(self, view: DebugView) -> None:
        if not displayed(self):  # type: ignore[arg-type]
            self._pending = view
            return
        self._pending = None
        self.render_view(view)

    def render_view(self, view: DebugView) -> None:
        raise NotImplementedError

    def on_show(self) -> None:
        view, self._pending = self._pending, None
        if view is not None:
            self.render_view(view)


class FlowView(Deferred, VerticalScroll):
    """The selected flow: a chart of its cwnd, srtt, bytes, retransmits and drops over time,
    header, counters, sockets, path history, state timeline with the lost-records gaps
    drawn where they happened, and what changed since the previous stop.
    The line about the event at the cursor is a Body of its own: it changes with every
    event, the flow's text only when the flow does."""

    DEFAULT_CSS = """
    FlowView { background: $surface; padding: 0 1; }
    FlowView > Static { width: 1fr; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._event: object = object()
        self._detail: object = object()

    def compose(self):
        yield Body(id="flow-cursor")
        yield FlowChart(id="flow-chart")
        yield Body(id="flow-body")

    def render_view(self, view: DebugView) -> None:
        if view.event != self._event:
            self._event = view.event
            if view.event is not None:
                line = Text.assemble(("at cursor ", "gew.dim"), renderables.event_summary_line(view.event))
            else:
                line = Text("the cursor is before the first event: n steps, space runs", "gew.dim")
            # As a rich renderable (not a Textual Content): wrapped the way the shell wraps it.
            self.query_one("#flow-cursor", Body).show(Group(line))
        if view.detail != self._detail:
            self._detail = view.detail
            d = view.detail
            self.query_one(FlowChart).show_series(
                d.series if d else None, (d.row.retransmits, d.row.drops) if d else None)
            if view.detail is None:
                body: RenderableType = Text("\nno flow selected: pick one in the tree (enter) or type "
                                            ":flow N", "gew.dim")
            else:
                body = Group(Text(""), renderables.flow(_without_gate(view.detail)))
            self.query_one("#flow-body", Body).show(body)


def _without_gate(detail):
    """The gate has its own panel; the flow view does not repeat it."""
    from dataclasses import replace

    return replace(detail, gate=None) if detail.gate is not None else detail


class InterventionPanel(Deferred, VerticalScroll):
    """For the selected flow, each condition of the intervention gate with ✓/✗ and why, and
    the interventions already recorded for it."""

    DEFAULT_CSS = """
    InterventionPanel { background: $surface; padding: 0 1; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._key: object = object()

    def compose(self):
        yield Body(id="gate-body")

    def render_view(self, view: DebugView) -> None:
        d = view.detail
        key = (view.selected, d.gate if d else None, d.interventions if d else None,
               view.status.allow_intervention, view.status.mode)
        if key == self._key:
            return
        self._key = key
        body = self.query_one("#gate-body", Body)
        if d is None:
            body.show(Text("select a flow to see whether it may be dropped", "gew.dim"))
            return
        parts: list[RenderableType] = []
        if d.gate is None:
            parts.append(Text("no gate evaluator in this session", "gew.warn"))
        else:
            parts.append(renderables.gate(d.gate, d.row.flow_id))
            failed = [c.name for c in d.gate.conditions if not c.ok]
            if d.gate.allowed:
                hint = "all conditions hold: d drops it (you will type the flow id)"
            elif failed == ["confirmation"]:
                hint = "every other condition holds: d asks for the typed confirmation"
            else:
                hint = f"a drop would be refused: {', '.join(failed)}"
            parts.append(Text(""))
            parts.append(Text(hint, "gew.dim"))
        if view.status.mode == "replay":
            parts.append(Text("replay: interventions are shown, never executed", "gew.dim"))
        for iv in d.interventions:
            parts.append(Text(f"#{iv.intervention_id} {iv.action}: {iv.outcome}  {iv.detail}"))
        body.show(Group(*parts))


class Console(RichLog):
    """Commands typed in the command bar and what they printed. While its tab is hidden,
    lines are held (each write would grow the log and ask for a layout of the screen) and
    written when it is shown."""

    DEFAULT_CSS = """
    Console { background: $surface; padding: 0 1; }
    """

    MAX_LINES = 5000

    def __init__(self, **kw) -> None:
        super().__init__(markup=False, highlight=False, wrap=True, max_lines=self.MAX_LINES, **kw)
        self._held: deque[Any] = deque(maxlen=self.MAX_LINES)

    def echo(self, line: str) -> None:
        self._add(Text.assemble(("› ", "gew.dim"), (line, "gew.head")))

    def show(self, outputs: list[Output]) -> None:
        for o in outputs:
            self._add(renderables.output(o))

    def _add(self, renderable: Any) -> None:
        if displayed(self):
            self.write(renderable)
        else:
            self._held.append(renderable)

    def on_show(self) -> None:
        while self._held:
            self.write(self._held.popleft())
