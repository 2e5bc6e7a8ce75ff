"""docs/commands.md is what the command table (the one ``help`` prints) generates, and every
gew subcommand's --help teaches by example."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gewtui.cli.main import COMMANDS
from gewtui.debugger import commands
from gewtui.debugger.reference import markdown
from tests.support.gew_cli import GEW

DOC = Path(__file__).resolve().parent.parent / "docs" / "commands.md"


def test_commands_md_is_current():
    assert DOC.read_text() == markdown(), "docs/commands.md is stale: run `make docs`"


def test_the_reference_holds_every_command_and_alias():
    text = DOC.read_text()
    for c in commands.COMMANDS:
        assert f"### `{c.usage}`" in text
        for a in c.aliases:
            assert f"`{a}`" in text


@pytest.mark.parametrize("words", [w for w, _, _ in COMMANDS] + [("config",), ("session",)],
                         ids=lambda w: " ".join(w))
def test_every_subcommand_help_has_examples(words):
    r = subprocess.run([GEW, *words, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "examples:" in r.stdout
    example = r.stdout.split("examples:", 1)[1]
    assert f"gew {words[0]}" in example or f"gew-tui" in example


def test_gew_tui_help_has_examples():
    r = subprocess.run([str(Path(GEW).with_name("gew-tui")), "--help"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "examples:" in r.stdout and "gew-tui --replay" in r.stdout
