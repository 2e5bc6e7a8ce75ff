"""The debugger core stays a pure-Python layer: importing all of it, in a fresh interpreter,
pulls in no UI library, no bcc, and nothing of the kernel plane or the front ends. The
CLI modules of gew-tui and gew shell import nothing heavy at parse time either."""
from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("textual", "rich", "prompt_toolkit", "bcc", "pyroute2", "gewtui.kernel",
             "gewtui.tui", "gewtui.shell", "gewtui.lab", "gewtui.cli")

CORE = ("gewtui.debugger", "gewtui.debugger.core", "gewtui.debugger.commands",
        "gewtui.debugger.runner", "gewtui.debugger.view_builder", "gewtui.debugger.export",
        "gewtui.debugger.gating", "gewtui.debugger.sources", "gewtui.debugger.filters",
        "gewtui.debugger.breakpoints", "gewtui.debugger.view", "gewtui.debugger.view_values")


def loaded_after(modules, probe) -> list[str]:
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + f"print('\\n'.join(m for m in sys.modules if m.split('.')[0] in {probe!r} "
            f"or any(m == p or m.startswith(p + '.') for p in {probe!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line]


def test_debugger_core_imports_no_ui_and_no_kernel():
    assert loaded_after(CORE, FORBIDDEN) == []


def test_cli_modules_of_the_front_ends_are_light_at_parse_time():
    heavy = ("textual", "prompt_toolkit", "bcc", "pyroute2", "gewtui.tui", "gewtui.shell")
    assert loaded_after(("gewtui.cli.tui_cmd", "gewtui.cli.shell_cmd"), heavy) == []
