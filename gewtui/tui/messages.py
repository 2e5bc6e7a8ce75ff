"""Messages from the debugger's pump thread to the UI thread.

Place in the pipeline: gewtui.debugger.runner calls back on its own thread; the app posts
these (``post_message`` is thread-safe) and the UI renders them on its thread. A newer view
replaces an older one still queued (``can_replace``), so a busy pump never floods the UI.
"""
from __future__ import annotations

from textual.message import Message

from gewtui.debugger.view import DebugView, Output


class ViewUpdated(Message):
    """The debugger's state at one moment (immutable)."""

    def __init__(self, view: DebugView) -> None:
        super().__init__()
        self.view = view

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ViewUpdated)


class CommandOutput(Message):
    """What a command printed, or a stop nobody waited for (never coalesced)."""

    def __init__(self, outputs: list[Output]) -> None:
        super().__init__()
        self.outputs = outputs
