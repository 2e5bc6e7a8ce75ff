"""``gew shell [FILE]``: the line-oriented debugger (gewtui.shell.repl) over a recording, or
over a live session without FILE (root). Same command language as gew-tui's command bar.

Argument parsing and wiring only: the session is opened by gewtui.cli.tui_cmd.open_debugger
(shared with gew-tui), the debugger's pump is started here and stopped on every exit path.
"""
from __future__ import annotations

import argparse

from gewtui.cli.tui_cmd import add_source_arguments

EPILOG = """\
examples:
  gew shell rec.gewrec                       step through a recording interactively
  echo "break template retransmission-storm
  continue
  chain" | gew shell rec.gewrec              scripted: one command per line, then exit
  gew shell --lab lossy                      live, on a lab scenario (root)
"""


def add_arguments(p: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
    p.add_argument("file", nargs="?", metavar="FILE", help="a recording; live session when omitted")
    add_source_arguments(p, replay_flag=False)
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter


def run(args: argparse.Namespace) -> int:
    from gewtui.cli.tui_cmd import open_debugger
    from gewtui.debugger.runner import Runner
    from gewtui.shell import repl

    with open_debugger(args, args.file) as d:
        header = d.source.info().header
        reasons = list(header.drop_reasons.values()) if header is not None else []
        runner = Runner(d).start()
        try:
            return repl.run(runner, drop_reasons=reasons)
        finally:
            runner.stop()
            if runner.error is not None:
                raise runner.error
