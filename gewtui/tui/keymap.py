"""The user's keymap applied to gew-tui's bindings, as posting does: bindings carry ids in
the code, keys come from the user's config file (gewtui.config).

Place in the pipeline: ``gew-tui`` loads the config with ``binding_ids()`` (so a typo in a
binding id is one error line, not a silently ignored key), the app hands the keymap to
Textual's ``set_keymap`` (the footer and the key dispatch then use it), and the help screen
and the command palette read the keys through ``effective`` so they show what a key press
really does.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from textual.binding import Binding
from textual.keys import format_key

# Debugger commands that a binding runs, so the palette can show the key beside them.
COMMAND_BINDING = {"continue": "run.toggle", "pause": "run.toggle", "step": "run.step",
                   "back": "run.back", "break": "break.set", "filter": "filter.set",
                   "goto": "run.goto", "export": "session.export", "drop": "session.drop",
                   "help": "help.show", "quit": "app.quit"}


def all_bindings() -> list[Binding]:
    """Every binding of the app, its screens and widgets, in help order."""
    from gewtui.tui.app import GewApp
    from gewtui.tui.screens.dialogs import ConfirmDrop, HelpScreen
    from gewtui.tui.screens.main import MainScreen
    from gewtui.tui.widgets.bars import CommandBar
    from gewtui.tui.widgets.flow_tree import FlowTree
    from gewtui.tui.widgets.reasons import ChainTree

    out: list[Binding] = []
    for cls in (GewApp, MainScreen, FlowTree, ChainTree, CommandBar, HelpScreen, ConfirmDrop):
        out += [b for b in cls.BINDINGS if isinstance(b, Binding)]
    return out


def binding_ids() -> list[str]:
    return [b.id for b in all_bindings() if b.id]


def effective(bindings: Iterable[Binding], keymap: Mapping[str, str]) -> list[Binding]:
    """The bindings with the user's keys in place of the defaults."""
    out = []
    for b in bindings:
        keys = keymap.get(b.id or "")
        out.append(b.with_key(keys, key_display=None) if keys else b)
    return out


def key_text(b: Binding) -> str:
    """The keys of a binding as the help shows them: ``N, p``; ``space``."""
    if b.key_display:
        return b.key_display
    return ", ".join(format_key(k.strip()) for k in b.key.split(","))


def keys_for(binding_id: str, keymap: Mapping[str, str]) -> str:
    """The keys bound to one id under the keymap ('' when none)."""
    for b in effective(all_bindings(), keymap):
        if b.id == binding_id:
            return key_text(b)
    return ""
