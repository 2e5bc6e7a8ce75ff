"""The command language: one table, a parser with aliases and unique prefixes, help and
completion generated from the table, and the docs kept in step with it."""
from __future__ import annotations

from pathlib import Path

import pytest

from gewtui.debugger import commands
from gewtui.debugger.commands import COMMANDS, CompletionData, complete, lookup, parse
from gewtui.errors import UsageError
from gewtui.debugger.view import HelpOut
from tests.support.toy_debugger import make


def test_names_and_aliases_are_unique():
    words = [c.name for c in COMMANDS] + [a for c in COMMANDS for a in c.aliases]
    assert len(words) == len(set(words))


@pytest.mark.parametrize("typed, name", [
    ("c", "continue"), ("cont", "continue"), ("n", "step"), ("s", "step"), ("p", "back"),
    ("b", "break"), ("brea", "break"), ("rc", "reverse"), ("g", "goto"), ("?", "help"),
    ("q", "quit"), ("filt", "filter"), ("fl", None), ("zzz", None),
])
def test_lookup_by_name_alias_and_unique_prefix(typed, name):
    if name is None:
        with pytest.raises(UsageError):
            lookup(typed)
    else:
        assert lookup(typed).name == name


def test_parse_keeps_event_ids_and_skips_comments():
    cmd, args = parse("goto #1234")
    assert cmd.name == "goto" and args == ["#1234"]
    assert parse("# a comment in a script") is None
    assert parse("   ") is None
    cmd, args = parse("filter dst '10.0.0.0/8'")
    assert args == ["dst", "10.0.0.0/8"]


def test_help_is_generated_from_the_table():
    d, ctx = make()
    (out,) = commands.execute(ctx, "help")
    assert isinstance(out, HelpOut)
    assert [e.name for e in out.entries] == [c.name for c in COMMANDS]
    (one,) = commands.execute(ctx, "help brea")
    assert one.topic == "break" and "lifecycle phase" in one.entries[0].details


def test_user_mistakes_come_back_as_one_error_message():
    d, ctx = make()
    for line in ("goto", "goto nowhere", "step sideways", "flow x", "event #999",
                 "chain 99", "export", "wibble", "filter"):
        out = commands.execute(ctx, line)
        if line == "filter":
            assert out[0].level == "info"          # lists the (no) filters
            continue
        assert len(out) == 1 and out[0].level == "error", line
        assert "\n" not in out[0].text


@pytest.mark.parametrize("line, expect", [
    ("", [c.name for c in COMMANDS]),
    ("st", ["step"]),
    ("step ", ["flow", "transition"]),
    ("flow ", ["1", "2", "17"]),
    ("break ", ["state", "template", "diverge", "drop", "flow", "lost"]),
    ("break template r", ["retransmission-storm"]),
    ("break drop Q", ["QDISC_DROP"]),
    ("break state TIME", ["TIME_WAIT"]),
    ("filter phase t", ["terminated"]),
    ("filter clear p", ["port", "phase"]),
    ("delete ", ["1", "3"]),
    ("help go", ["goto"]),
])
def test_completion_is_generated_from_the_table(line, expect):
    data = CompletionData(flows=(1, 2, 17), templates=("retransmission-storm", "zero-window"),
                          breakpoints=(1, 3), drop_reasons=("QDISC_DROP", "NO_SOCKET"))
    assert complete(line, data) == expect


def test_every_command_is_documented():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "debugger.md").read_text()
    for c in COMMANDS:
        assert f"`{c.name}" in doc, c.name
