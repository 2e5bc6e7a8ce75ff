"""The right-hand panels: the flow view, the intervention panel and the console.

Place in the pipeline: the main screen hands each new DebugView to ``update_view``; they
render the parts of it they show with the renderers shared with the shell
(gewtui.shell.render), and repaint only when their part changed (compared by identity:
the view builder reuses unchanged values).
"""
from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import RichLog, Static

from gewtui.debugger.view import DebugView, Output
from gewtui.shell import render


class FlowView(VerticalScroll):
    """The selected flow: header, counters, sockets, path history, state timeline with the
    lost-records gaps drawn where they happened, and what changed since the previous stop."""

    DEFAULT_CSS = """
    FlowView { background: $surface; padding: 0 1; }
    FlowView > Static { width: 1fr; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._key: tuple = ()

    def compose(self):
        yield Static(id="flow-body")

    def update_view(self, view: DebugView) -> None:
        key = (view.detail, view.event)
        if key == self._key:
            return
        self._key = key
        parts = []
        if view.event is not None:
            parts.append(Text.assemble(("at cursor ", "gew.dim"), render.event_summary_line(view.event)))
        else:
            parts.append(Text("the cursor is before the first event: n steps, space runs", "gew.dim"))
        if view.detail is None:
            parts.append(Text("\nno flow selected: pick one in the tree (enter) or type :flow N",
                              "gew.dim"))
        else:
            parts.append(Text(""))
            parts.append(render.flow(_without_gate(view.detail)))
        self.query_one("#flow-body", Static).update(Group(*parts))


def _without_gate(detail):
    """The gate has its own panel; the flow view does not repeat it."""
    from dataclasses import replace

    return replace(detail, gate=None) if detail.gate is not None else detail


class InterventionPanel(VerticalScroll):
    """For the selected flow, each condition of the intervention gate with ✓/✗ and why, and
    the interventions already recorded for it."""

    DEFAULT_CSS = """
    InterventionPanel { background: $surface; padding: 0 1; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._key: object = object()

    def compose(self):
        yield Static(id="gate-body")

    def update_view(self, view: DebugView) -> None:
        d = view.detail
        key = (view.selected, d.gate if d else None, d.interventions if d else None,
               view.status.allow_intervention, view.status.mode)
        if key == self._key:
            return
        self._key = key
        body = self.query_one("#gate-body", Static)
        if d is None:
            body.update(Text("select a flow to see whether it may be dropped", "gew.dim"))
            return
        parts: list = []
        if d.gate is None:
            parts.append(Text("no gate evaluator in this session", "gew.warn"))
        else:
            parts.append(render.gate(d.gate, d.row.flow_id))
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
        body.update(Group(*parts))


class Console(RichLog):
    """Commands typed in the command bar and what they printed."""

    DEFAULT_CSS = """
    Console { background: $surface; padding: 0 1; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(markup=False, highlight=False, wrap=True, max_lines=5000, **kw)

    def echo(self, line: str) -> None:
        self.write(Text.assemble(("› ", "gew.dim"), (line, "gew.head")))

    def show(self, outputs: list[Output]) -> None:
        for o in outputs:
            self.write(render.output(o))
