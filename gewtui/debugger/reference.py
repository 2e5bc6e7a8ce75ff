"""docs/commands.md, the command language's reference, generated from the same table as
``help`` (gewtui.debugger.commands.help_entries), so the two cannot drift.

Place in the pipeline: documentation only. ``python -m gewtui.debugger.reference`` prints
the file (``make docs`` writes it); tests/test_docs_reference.py fails when the committed
file is not what the table produces.
"""
from __future__ import annotations

import sys

from gewtui.debugger.commands import help_entries

HEADER = """\
# The command language

<!-- generated from gewtui/debugger/commands.py by `make docs`; do not edit by hand -->

`gew shell`, gew-tui's command bar (`:`) and its command palette (ctrl+p) speak this
language; `help` prints the same table and `help COMMAND` one entry. A command can be
shortened to any unambiguous prefix (`cont`, `br`), or typed by one of its aliases. In
gew-tui, the keys that run commands (space, n, N, b, /, g, e, d) are bindings with ids that
`~/.config/gew/config.toml` can remap (`gew config show` lists them with their keys).
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    entries = help_entries()
    out = [HEADER]
    areas: list[str] = []
    for e in entries:
        if e.area not in areas:
            areas.append(e.area)
    out.append("| area | command | what it does | aliases |")
    out.append("|---|---|---|---|")
    for e in entries:
        aliases = ", ".join(f"`{a}`" for a in e.aliases)
        out.append(f"| {e.area} | `{_cell(e.usage)}` | {_cell(e.summary)} | {aliases} |")
    for area in areas:
        out.append("")
        out.append(f"## {area}")
        for e in entries:
            if e.area != area:
                continue
            out.append("")
            out.append(f"### `{e.usage}`")
            out.append("")
            out.append(e.summary[:1].upper() + e.summary[1:] + ".")
            if e.details:
                out.append("")
                out.append(e.details)
            if e.aliases:
                out.append("")
                out.append("Aliases: " + ", ".join(f"`{a}`" for a in e.aliases) + ".")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
