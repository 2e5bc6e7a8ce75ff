"""``gew shell``: a line-oriented debugger over the same core and command language as the TUI.

Place in the pipeline: the CLI builds a debugger over a recording or a live session and
starts its pump (gewtui.debugger.runner); this module reads command lines, hands them to
the pump, waits for their outputs (a motion: until it stops; Ctrl-C pauses it) and prints
them with the shared rich renderers (gewtui.present.renderables).

Two ways in:
- a terminal: prompt_toolkit with completion (commands, flow ids, template names, breakpoint
  numbers, states) and a history file under ``$XDG_STATE_HOME/gewyvern/`` (or
  ``~/.local/state/gewyvern/``; root's own home as root, whatever the environment); the prompt shows the cursor (``gew #1234 paused>``);
- anything else on stdin (``echo flows | gew shell rec.gewrec``): one command per line,
  printed results, exit at the end; the exit status is 64 if any line failed.
"""
from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any, Iterable

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.history import FileHistory, InMemoryHistory
from rich.console import Console

from gewtui.debugger import commands
from gewtui.debugger.commands import CompletionData
from gewtui.debugger.gating import Answer
from gewtui.debugger.runner import Runner
from gewtui.debugger.view import DebugView, Message, Output, Stop
from gewtui.errors import EX_USAGE, GewError
from gewtui.present import renderables

BANNER = "gew shell: 'help' lists the commands, Tab completes, Ctrl-C pauses a run, Ctrl-D quits."


def history_path() -> Path:
    """Where the history lives. As root the environment is not consulted: under ``sudo -E``
    $XDG_STATE_HOME and $HOME are another user's, so root's own home (from passwd) is used."""
    if os.geteuid() == 0:
        import pwd

        base = os.path.join(pwd.getpwuid(0).pw_dir, ".local", "state")
    else:
        base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "gewyvern" / "shell_history"


def open_history(p: Path) -> FileHistory:
    """The history file opened once, safely: its directory walked without links and
    checked (gewtui.securefs), the file reopened only if it is a regular file with one
    link, or created exclusively with mode 0600. prompt_toolkit then reads and appends
    through /proc/self/fd/N, which always names the file opened here."""
    from gewtui import securefs

    dfd = securefs.open_dir(str(p.parent), create=True)
    try:
        flags = os.O_RDWR | os.O_APPEND
        try:
            fd = securefs.open_existing(dfd, p.name, flags, shown=str(p))
        except FileNotFoundError:
            fd = securefs.create_file(dfd, p.name, flags=flags)
    finally:
        os.close(dfd)
    return FileHistory(f"/proc/self/fd/{fd}")


def make_console(file: IO[str] | None = None, width: int | None = None) -> Console:
    """A console honouring NO_COLOR (rich reads it) with the shell's style names."""
    return Console(file=file, theme=renderables.THEME, width=width, highlight=False,
                   soft_wrap=False)


class Shell:
    def __init__(self, runner: Runner, *, console: Console | None = None,
                 drop_reasons: Iterable[str] = (), input: Any = None, output: Any = None,
                 history: Any = None) -> None:
        self.runner = runner
        self.console = console or make_console()
        self.drop_reasons = tuple(sorted(set(drop_reasons)))
        self._input = input
        self._output = output
        self._history = history
        self._lock = threading.Lock()
        self.failures = 0
        self._async: list[Output] = []
        runner.on_output = self._on_output

    # ---- output ----------------------------------------------------------------------------

    def _on_output(self, outputs: list[Output], owned: bool) -> None:
        """Outputs nobody asked for (a breakpoint hit while following a live session)."""
        if not owned:
            with self._lock:
                self.console.print(*(renderables.output(o) for o in outputs))

    def print_outputs(self, outputs: list[Output], view: DebugView | None) -> None:
        with self._lock:
            for o in outputs:
                if isinstance(o, Message) and o.level == "error":
                    self.failures += 1
                self.console.print(renderables.output(o))
            if any(isinstance(o, Stop) for o in outputs) and view is not None and view.event:
                ev = view.event
                self.console.print(renderables.event_summary_line(ev))

    # ---- one line ----------------------------------------------------------------------------

    def execute(self, line: str, *, confirm_text: Any = None) -> bool:
        """Run one line and print what it produced. False when the shell should end."""
        try:
            parsed = commands.parse(line)
        except Exception as e:
            self.print_outputs([Message(str(e), "error")], None)
            return True
        if parsed is None:
            return True
        cmd, args = parsed
        if cmd.name == "quit":
            return False
        if cmd.name == "drop" and confirm_text is None:
            confirm_text = self.confirm_drop(args)
            if confirm_text is None:
                return True
        fut = self.runner.submit(line, wait_stop=True, confirm_text=confirm_text)
        outputs = self._wait(fut)
        view = self.runner.view_now() if self.runner.alive else None
        self.print_outputs(outputs, view)
        return not self.runner.quit_requested

    def _wait(self, fut: Future) -> list[Output]:
        while True:
            try:
                return fut.result(timeout=0.2)
            except TimeoutError:
                continue
            except KeyboardInterrupt:
                # Ctrl-C during a run pauses it; the command's future then resolves.
                self.runner.submit("pause")

    def confirm_drop(self, args: list[str]) -> Answer | None:
        """The typed confirmation, asked for before the command goes to the pump (which
        must not wait on a person while the session runs)."""
        if self._session is None:
            self.print_outputs([Message("drop needs an interactive terminal for the typed "
                                        "confirmation", "error")], None)
            return None
        flow = args[0] if args else "the selected flow"
        answer = Answer.opener()              # stamped before the prompt: 60 s from here
        try:
            return answer(self._session.prompt(f"Drop {flow}'s packets? Type the flow id to confirm: "))
        except (EOFError, KeyboardInterrupt):
            return None

    # ---- loops -------------------------------------------------------------------------------

    _session: Any = None

    def prompt_text(self) -> str:
        v = self.runner.latest
        if v is None:
            return "gew> "
        c = v.cursor
        where = f"#{c.event_id}" if c.event_id else "start"
        return f"gew {where} {c.state}> "

    def completion_data(self) -> CompletionData:
        v = self.runner.latest
        if v is None:
            return CompletionData(drop_reasons=self.drop_reasons)
        return CompletionData(flows=tuple(sorted(v.flows)), templates=v.templates,
                              breakpoints=tuple(b.number for b in v.breakpoints),
                              drop_reasons=self.drop_reasons)

    def run_interactive(self) -> int:
        history = self._history
        if history is None:
            try:
                history = open_history(history_path())
            except (OSError, GewError) as e:
                if isinstance(e, GewError):   # a refused path is said once, then forgotten
                    print(f"gew: history not kept: {e.message}", file=sys.stderr)
                history = InMemoryHistory()
        self._session = PromptSession(history=history, completer=_Completer(self),
                                      complete_while_typing=False, input=self._input,
                                      output=self._output)
        self.console.print(renderables.muted(BANNER))
        self.runner.view_now()
        while True:
            try:
                line = self._session.prompt(self.prompt_text())
            except KeyboardInterrupt:
                continue
            except EOFError:
                return 0
            if not self.execute(line):
                return 0

    def run_lines(self, lines: Iterable[str]) -> int:
        for line in lines:
            if not self.execute(line.rstrip("\n")):
                break
        return EX_USAGE if self.failures else 0


class _Completer(Completer):
    """prompt_toolkit completer over the language's generated completion."""

    def __init__(self, shell: Shell) -> None:
        self._shell = shell

    def get_completions(self, document: Any, complete_event: Any):
        text = document.text_before_cursor
        word = text.split(" ")[-1] if text else ""
        for cand in commands.complete(text, self._shell.completion_data()):
            yield Completion(cand, start_position=-len(word))


def run(runner: Runner, *, interactive: bool | None = None, console: Console | None = None,
        drop_reasons: Iterable[str] = (), stdin: IO[str] | None = None) -> int:
    """Run the shell until the input ends or ``quit``. The caller owns the runner."""
    shell = Shell(runner, console=console, drop_reasons=drop_reasons)
    stdin = stdin or sys.stdin
    if interactive is None:
        interactive = stdin.isatty() and sys.stdout.isatty()
    if interactive:
        return shell.run_interactive()
    return shell.run_lines(stdin)
