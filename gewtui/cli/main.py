"""Entry points for ``gew`` and ``gew-tui``: argument parsing and error reporting only.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so
``gew export`` never imports bcc or Textual. A ``GewError`` becomes one line on stderr and
its exit code; a Ctrl-C becomes exit 130 after the command's own cleanup ran.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from gewtui import __version__
from gewtui.errors import GewError

# (command words, module, one-line help). Order is the order shown in --help.
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("runtime", "info"), "gewtui.cli.runtime_cmd", "runtime facts and every capability in one of three states"),
    (("probe", "list"), "gewtui.cli.probe_cmd", "the probes, their tracepoints and capability state"),
    (("session", "apply"), "gewtui.cli.session_cmd", "attach a session transactionally and record until Ctrl-C or --duration"),
    (("session", "list"), "gewtui.cli.session_cmd", "sessions of this instance, live or orphaned"),
    (("session", "detach"), "gewtui.cli.session_cmd", "end a session and remove everything it attached"),
    (("session", "gc"), "gewtui.cli.session_cmd", "clean up orphan sessions whose owner process is gone"),
    (("export",), "gewtui.cli.export_cmd", "read a recording offline (no root): events, flows, reasons, interventions"),
    (("shell",), "gewtui.cli.shell_cmd", "the debugger shell over a recording, or live without FILE"),
    (("recording", "index"), "gewtui.cli.recording_cmd", "store engine checkpoints in a recording so replays jump through it fast"),
    (("pair", "new"), "gewtui.cli.pair_cmd", "a one-time token to pair a peer with this host's control plane"),
    (("pair", "accept"), "gewtui.cli.pair_cmd", "pair a peer: the token and its public key"),
    (("pair", "list"), "gewtui.cli.pair_cmd", "the paired peers"),
    (("pair", "revoke"), "gewtui.cli.pair_cmd", "unpair a peer (its next request is refused)"),
    (("peer", "keygen"), "gewtui.cli.peer_cmd", "the reference peer: make its Ed25519 key pair"),
    (("peer", "call"), "gewtui.cli.peer_cmd", "the reference peer: call a serving session's control socket"),
    (("peer", "stream"), "gewtui.cli.peer_cmd", "the reference peer: follow events, flows or reasons"),
    (("lab", "up"), "gewtui.cli.lab_cmd", "bring up a built-in network-namespace lab scenario"),
    (("lab", "down"), "gewtui.cli.lab_cmd", "remove the lab (also after a crash)"),
    (("lab", "list"), "gewtui.cli.lab_cmd", "the lab scenarios and what each one produces"),
    (("config", "show"), "gewtui.cli.config_cmd", "the effective user configuration (keymap, theme, defaults) and where each value came from"),
]

EPILOG = """\
examples:
  gew runtime info                      what this kernel supports, and the verdict
  gew lab up refused                    a namespace lab whose client hits a closed port
  gew session apply --scope netns=gewlab-client --duration 10 --record /tmp/s.gewrec
  gew export /tmp/s.gewrec --what flows --json
  gew shell /tmp/s.gewrec               step through it: 'help' lists the commands
  gew-tui --lab lossy                   the full-screen debugger on a live lab scenario
  gew session apply --scope netns=gewlab-client --serve   a control socket for paired peers

Commands that touch the kernel need root (exit 77 otherwise); export and replay do not.
"""


def _build_gew_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="gew",
        description="gewyvern: a session-based debugger for the Linux network stack.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--version", action="version", version=f"gew {__version__}")
    top = ap.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for words, module, helptext in COMMANDS:
        if len(words) == 1:
            p = top.add_parser(words[0], help=helptext, description=helptext)
        else:
            if words[0] not in groups:
                g = top.add_parser(words[0], help=f"{words[0]} commands",
                                   epilog=_group_examples(words[0]),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
                groups[words[0]] = g.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
            p = groups[words[0]].add_parser(words[1], help=helptext, description=helptext)
        p.set_defaults(_module=module, _words=words)
        _lazy_arguments(p, module, words)
    return ap


def _group_examples(group: str) -> str:
    """``gew GROUP --help``: the examples of its subcommands, from their own epilogs."""
    lines: list[str] = []
    for words, module, _ in COMMANDS:
        if words[0] != group:
            continue
        epilog = getattr(importlib.import_module(module), "EPILOG", "") or ""
        for line in epilog.splitlines():
            if line.startswith(f"  gew {group} ") and line not in lines:
                lines.append(line)
    return "examples:\n" + "\n".join(lines) + "\n" if lines else ""


def _lazy_arguments(p: argparse.ArgumentParser, module: str, words: tuple[str, ...]) -> None:
    mod = importlib.import_module(module)
    adder = getattr(mod, "add_arguments")
    adder(p, words)


def _fail(message: str, code: int) -> int:
    print(f"gew: {message}", file=sys.stderr)
    return code


def gew_main(argv: list[str] | None = None) -> int:
    ap = _build_gew_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "_module", None):
        ap.print_help()
        return 64
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        mod = importlib.import_module(args._module)
        return int(mod.run(args) or 0)
    except GewError as e:
        return _fail(e.message, e.code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `gew export … | head`: the reader went away; not an error worth a line.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0


def tui_main(argv: list[str] | None = None) -> int:
    from gewtui.cli import tui_cmd

    ap = argparse.ArgumentParser(
        prog="gew-tui",
        description="The gew-tui debugger: one live session or a replayed recording, full screen.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=tui_cmd.EPILOG,
    )
    ap.add_argument("--version", action="version", version=f"gew-tui {__version__}")
    tui_cmd.add_arguments(ap, ("tui",))
    args = ap.parse_args(argv)
    args._module = "gewtui.cli.tui_cmd"
    return _run(args)


if __name__ == "__main__":
    sys.exit(gew_main())
