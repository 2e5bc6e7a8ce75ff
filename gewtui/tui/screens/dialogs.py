"""Modal screens: the generated help (``?``) and the typed drop confirmation.

Place in the pipeline: the app pushes them; help is built from the app's bindings and the
debugger's command table (nothing hand-written to drift); the confirmation returns what the
operator typed, which the app hands to ``drop N`` (the gate then checks it is that flow id).
"""
from __future__ import annotations

from rich.console import Group
from rich.table import Table as RTable
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from gewtui.debugger import commands
from gewtui.debugger.gating import Answer
from gewtui.debugger.view import HelpOut
from gewtui.present import renderables


def keys_table(bindings) -> RTable:
    rt = RTable(title="keys", title_justify="left", show_header=False, show_edge=False, box=None)
    rt.add_column(style="gew.id", no_wrap=True)
    rt.add_column()
    rt.add_column(style="gew.dim")
    from gewtui.tui.keymap import key_text

    for b in bindings:
        rt.add_row(Text(key_text(b)), Text(b.description), Text(b.id or ""))
    return rt


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; height: 90%; background: $surface;
                                  border: round $primary; padding: 0 1; }
    """

    def __init__(self, bindings) -> None:
        super().__init__()
        self._keys = bindings

    def compose(self) -> ComposeResult:
        entries = commands.help_entries()
        body = Group(
            Text("gew-tui: a debugger for the Linux network stack", "gew.head"),
            Text("The cursor walks the session's events; flows, reasons and the gate are shown "
                 "as of the cursor. ':' opens the command bar (the same language as gew shell).",
                 "gew.dim"),
            Text(""), keys_table(self._keys), Text(""),
            Text("commands", "gew.head"), renderables.help_out(HelpOut(entries)),
        )
        with VerticalScroll():
            yield Static(body)


class ConfirmDrop(ModalScreen[str | None]):
    """Type the flow id to confirm a drop; Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="confirm.cancel")]
    DEFAULT_CSS = """
    ConfirmDrop { align: center middle; }
    ConfirmDrop > Vertical { width: 60; height: auto; background: $surface;
                             border: thick $error; padding: 1 2; }
    ConfirmDrop Label { width: 1fr; }
    ConfirmDrop Input { margin-top: 1; }
    """

    def __init__(self, flow_id: int) -> None:
        super().__init__()
        self.flow_id = flow_id
        self._answer = Answer.opener()     # the confirmation's 60 s start as the dialog opens

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text.assemble(("Drop flow ", "gew.head"), (str(self.flow_id), "gew.bad"),
                                      ("'s packets?", "gew.head")))
            yield Label(f"The gate is evaluated again when you confirm. Type {self.flow_id} "
                        "and press Enter; Escape cancels.")
            yield Input(placeholder="flow id", id="confirm-input")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(self._answer(event.value))

    def action_cancel(self) -> None:
        self.dismiss(None)
