"""The user's keymap applied to gew-tui's bindings, as posting does: bindings carry ids in
the code, keys come from the user's config file (gewtui.config).

Place in the pipeline: ``gew-tui`` loads the config with ``binding_ids()`` (gewtui.tui.app,
which knows every screen and widget; a typo in a binding id is one error line, not a
silently ignored key), the app hands the keymap to
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


def keys_in(bindings: Iterable[Binding], binding_id: str, keymap: Mapping[str, str]) -> str:
    """The keys bound to one id under the keymap ('' when none)."""
    for b in effective(bindings, keymap):
        if b.id == binding_id:
            return key_text(b)
    return ""
