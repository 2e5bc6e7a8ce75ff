"""The main debugger screen: the flow tree on the left; the flow view, reason inspector,
intervention panel and console on the right; the status bar and command bar below.

Place in the pipeline: the app forwards each ``ViewUpdated`` here; ``apply_view`` hands
the immutable view to every widget inside one batch update (one repaint per tick). What
the widgets ask for (select a flow, open or jump to an event) becomes a command line for
the debugger's pump; outputs come back as ``CommandOutput``.
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from gewtui.debugger.view import ChainOut, DebugView, EventOut, FlowOut, GateOut, Message, Output, Stop
from gewtui.tui.widgets.bars import CommandBar, StatusBar
from gewtui.tui.widgets.charts import SessionSparkline
from gewtui.tui.widgets.flow_tree import FlowTree
from gewtui.tui.widgets.panels import Console, FlowView, InterventionPanel
from gewtui.tui.widgets.reasons import ReasonInspector

TABS = ("flow", "reasons", "gate", "console")
_TAB_FOR = {FlowOut: "flow", ChainOut: "reasons", GateOut: "gate"}


class MainScreen(Screen):
    BINDINGS = [
        Binding("1", "tab('flow')", "Flow", show=False, id="view.flow"),
        Binding("2", "tab('reasons')", "Reasons", show=False, id="view.reasons"),
        Binding("3", "tab('gate')", "Gate", show=False, id="view.gate"),
        Binding("4", "tab('console')", "Console", show=False, id="view.console"),
    ]

    DEFAULT_CSS = """
    MainScreen { layout: vertical; }
    MainScreen > #body { height: 1fr; }
    MainScreen FlowTree { width: 42%; min-width: 30; border-right: vkey $panel; }
    MainScreen #side { width: 1fr; }
    MainScreen TabPane { padding: 0; }
    MainScreen #status-row { height: 2; }
    MainScreen StatusBar { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.view: DebugView | None = None
        self._ready = False          # children mounted; a view arriving earlier waits

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield FlowTree(id="flows")
            with TabbedContent(id="side", initial="flow"):
                with TabPane("Flow", id="flow"):
                    yield FlowView()
                with TabPane("Reasons", id="reasons"):
                    yield ReasonInspector()
                with TabPane("Gate", id="gate"):
                    yield InterventionPanel()
                with TabPane("Console", id="console"):
                    yield Console()
        with Horizontal(id="status-row"):
            yield StatusBar()
            yield SessionSparkline()
        yield CommandBar()
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        bar = self.query_one(CommandBar)
        bar.cursor_blink = getattr(self.app, "cursor_blink", True)
        bar.drop_reasons = getattr(self.app, "drop_reasons", ())
        self.query_one(FlowTree).focus()
        self._ready = True
        if self.view is not None:
            self.apply_view(self.view)

    # ---- from the pump ------------------------------------------------------------------

    def apply_view(self, view: DebugView) -> None:
        self.view = view
        if not self._ready:
            return
        with self.app.batch_update():
            self.query_one(FlowTree).update_view(view)
            self.query_one(FlowView).update_view(view)
            self.query_one(ReasonInspector).update_view(view)
            self.query_one(InterventionPanel).update_view(view)
            self.query_one(StatusBar).update_view(view)
            self.query_one(SessionSparkline).show_rates(view.rates)
            self.query_one(CommandBar).view = view

    def show_outputs(self, outputs: list[Output], quiet: bool = False) -> None:
        if not self._ready:
            return
        console = self.query_one(Console)
        console.show(outputs)
        for o in outputs:
            if isinstance(o, EventOut) and quiet:
                self.query_one(ReasonInspector).show_event(o.event)
            elif isinstance(o, Message) and o.level == "error":
                # markup=False: the text quotes what the user typed or a file held
                self.app.notify(o.text, severity="error", timeout=4, markup=False)
            elif isinstance(o, Stop) and o.reason in ("breakpoint", "end"):
                self.app.notify(o.text, severity="warning" if o.reason == "breakpoint"
                                else "information", timeout=3, markup=False)
            if not quiet and not isinstance(o, (Stop, Message)):
                # The panel that shows this kind of answer comes to the front; tables,
                # help and the like live in the console.
                self.action_tab(_TAB_FOR.get(type(o), "console"))

    def echo(self, line: str) -> None:
        self.query_one(Console).echo(line)

    # ---- from the widgets ----------------------------------------------------------------

    def on_flow_tree_selected(self, event: FlowTree.Selected) -> None:
        self.app.run_line(f"flow {event.flow_id}", echo=False)

    def on_reason_inspector_open_event(self, event: ReasonInspector.OpenEvent) -> None:
        self.app.run_line(f"event #{event.event_id}", echo=False)

    def on_reason_inspector_jump_to(self, event: ReasonInspector.JumpTo) -> None:
        self.app.run_line(f"goto #{event.event_id}")

    def on_command_bar_run(self, event: CommandBar.Run) -> None:
        self.app.run_line(event.line)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
