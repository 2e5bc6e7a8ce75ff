"""The command palette's entries, generated from the debugger's command table.

Place in the pipeline: Textual's palette (ctrl+p) asks this provider; each debugger command
appears as "area: verb" (``run: step``, ``break: break``...). A command that needs an
argument opens the command bar with its name typed; the others run at once.
"""
from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.markup import escape

from gewtui.debugger import commands
from gewtui.tui.keymap import COMMAND_BINDING

# Commands that run as they are, without arguments.
_BARE = {"continue", "pause", "step", "back", "reverse", "flows", "info", "break", "filter",
         "help", "chain", "event", "gate"}


class DebuggerCommands(Provider):
    def _entries(self):
        app = self.app
        for c in commands.COMMANDS:
            if c.name == "quit":
                continue
            title = f"{c.area}: {c.name}"
            if c.name in _BARE:
                action = partial(app.run_line, c.name)
            else:
                action = partial(app.open_command_bar, c.name + " ")
            keys = app.keys_for(COMMAND_BINDING[c.name]) if c.name in COMMAND_BINDING else ""
            key = f"key {keys} · " if keys else ""
            # Textual reads a hit's help as markup: usages hold "[N...]", so escape it.
            yield title, action, escape(f"{key}{c.usage} — {c.summary}")

    async def discover(self) -> Hits:
        for title, action, help_text in self._entries():
            yield DiscoveryHit(title, action, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action, help_text in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), action, help=help_text)
