"""``gew-tui``: the full-screen debugger over one live session, a lab scenario, or a replay.

Argument parsing and session wiring only; the app is gewtui.tui.app, the debugger
gewtui.debugger. ``open_debugger`` is shared with ``gew shell`` (gewtui.cli.shell_cmd): it
opens the source (a recording; or a live session, with the lab brought up first for
``--lab``), builds the debugger over it and guarantees the teardown (session detached,
recording closed, lab down) on every exit path, Ctrl-C and SIGTERM included.
Heavy imports (Textual, bcc, the lab) happen inside the functions, never at module top.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from typing import Any, Iterator

from gewtui.errors import UsageError

THEMES = ("dark", "light", "high-contrast")

EPILOG = """\
examples:
  gew-tui --replay /tmp/lossy.gewrec          step through a recording (no root needed)
  gew-tui --lab lossy                         bring a lab scenario up, debug it live, take it down on q
  gew-tui --scope netns=gewlab-client         a live session on one namespace
  gew-tui --lab lossy --serve --allow-intervention    paired peers read it and propose drops
  gew-tui --theme high-contrast --replay F    themes: dark, light, high-contrast (NO_COLOR honoured)
  gew-tui --replay F --open first-match       open a replay on its first template match
  gew config show                             the keymap, theme and defaults in effect

keys: space pause/continue · n step · N/p back · b break · / filter · g goto · e export ·
      : command · ? help · q quit. The command bar speaks the same language as 'gew shell'.
      Remap them in ~/.config/gew/config.toml ([keymap] "run.step" = "x").
"""


def add_source_arguments(p: argparse.ArgumentParser, *, replay_flag: bool = True) -> None:
    """The options that choose and shape the session (shared with ``gew shell``)."""
    if replay_flag:
        p.add_argument("--replay", metavar="FILE", help="replay a recording instead of a live session (no root)")
    p.add_argument("--lab", metavar="SCENARIO",
                   help="bring up a lab scenario, scope the live session to it, take it down on exit")
    p.add_argument("--scope", action="append", default=[], metavar="KIND=VALUE",
                   help="live scope, repeatable: netns=NAME, iface=NAME, cidr=PREFIX, port=N")
    p.add_argument("--record", metavar="FILE",
                   help="where a live session records (default: /var/lib/gewyvern/recordings/ID.gewrec)")
    p.add_argument("--allow-risky", action="store_true",
                   help="accept capabilities that are supported but risky on this kernel")
    p.add_argument("--allow-intervention", action="store_true",
                   help="allow gated drop interventions (local command line only)")
    p.add_argument("--bpf-stats", action="store_true",
                   help="time every probe run in the kernel (BPF_ENABLE_STATS) to show the session's own BPF cost; the timing adds ~100 ns per program run, so it is off by default")
    p.add_argument("--drop-ttl", metavar="TIME", default=None,
                   help="how long a drop lasts before it expires (default 5m, or defaults.drop_ttl "
                        "in the config file; 90s, 5m, 1h)")
    p.add_argument("--templates", metavar="DIR", action="append", default=[],
                   help="extra template directory (repeatable), added to the packaged templates")
    p.add_argument("--serve", action="store_true",
                   help="serve the control plane to paired peers while the live session runs; a peer's "
                        "drop proposal waits for you to confirm it like any drop (docs/control.md)")
    p.add_argument("--serve-tcp", metavar="HOST:PORT",
                   help="also serve on TCP: TLS with /etc/gewyvern/tls/{cert,key}.pem, plain only on loopback")
    add_override_argument(p)


def add_override_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--override-template", metavar="ID", action="append", default=[],
                   help="let a --templates file replace the packaged template ID (repeatable); "
                        "the replacement is shown in the status bar and in every chain it concludes")


def add_arguments(p: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
    add_source_arguments(p)
    p.add_argument("--theme", choices=THEMES, default=None,
                   help="colour theme (default dark, or theme in the config file; NO_COLOR turns "
                        "colour off)")
    p.add_argument("--open", choices=("end", "first-match", "start"), default=None, dest="open_at",
                   help="where a replay opens: end (every flow and verdict; default, or "
                        "defaults.replay_open), first-match (the first template match), start")


def engine_factory(template_dirs: list[str], session_id: str,
                   overrides: list[str] = ()) -> tuple[Any, Any]:
    """The observation engine's constructor (packaged templates plus the user's) and
    restore. The session id goes into every reason chain (the gate checks it)."""
    from gewtui.model.engine import Engine

    templates = None
    if template_dirs:
        for d in template_dirs:
            if not os.path.isdir(d):
                raise UsageError(f"--templates {d}: not a directory")
        from gewtui.model.templates import load_templates

        templates = load_templates(template_dirs, allow_override=overrides)
        for note in templates.override_notes():
            print(f"gew: warning: {note}", file=sys.stderr)
    elif overrides:
        raise UsageError("--override-template needs --templates DIR holding the replacement")
    return (lambda: Engine(templates=templates, session_id=session_id)), Engine.restore


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` (session, lab) runs."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt()

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:        # not the main thread (tests): nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def open_debugger(args: argparse.Namespace, replay: str | None) -> Iterator[Any]:
    """The debugger over the chosen source; everything torn down on exit."""
    from gewtui.debugger.core import Debugger
    from gewtui.debugger.sources import LiveSource, ReplaySource

    dirs = getattr(args, "templates", []) or []
    overrides = getattr(args, "override_template", []) or []
    if replay:
        if args.lab or args.scope or args.record:
            raise UsageError("--replay reads a recording: --lab, --scope and --record are for live sessions")
        if args.allow_intervention:
            raise UsageError("a replayed recording is inert: --allow-intervention has no meaning with it")
        if getattr(args, "serve", False) or getattr(args, "serve_tcp", None):
            raise UsageError("--serve serves a live session; a replayed recording has none")
        src = ReplaySource(replay)
        try:
            new_engine, restore = engine_factory(dirs, src.info().session_id, overrides)
            yield Debugger(src, engine_factory=new_engine, engine_restore=restore,
                           gate=_gate_view())
        finally:
            src.close()
        return
    from gewtui.runtime.privileges import require_root

    require_root("a live session (use --replay FILE to read a recording without root)")
    with _sigterm_as_interrupt(), contextlib.ExitStack() as stack:
        scope = list(args.scope)
        if args.lab:
            from gewtui.lab import Lab

            lab = stack.enter_context(Lab(args.lab))
            scope = scope or list(lab.scope_args)
        from gewtui.intervene.recovery import removed_after_kill
        from gewtui.kernel.live import LiveSession, default_recording_path, new_session_id

        sid = new_session_id()
        live = LiveSession(scope, record=args.record or default_recording_path(sid),
                           session_id=sid, allow_risky=args.allow_risky, bpf_stats=args.bpf_stats,
                           allow_intervention=args.allow_intervention, end_drops=removed_after_kill)
        stack.enter_context(live)
        new_engine, restore = engine_factory(dirs, sid, overrides)
        d = Debugger(LiveSource(live), engine_factory=new_engine, engine_restore=restore,
                     gate=_gate_view())
        d.intervention = _controller(live, d, args)
        if d.intervention is not None:
            stack.callback(d.intervention.close)
        if getattr(args, "serve", False) or getattr(args, "serve_tcp", None):
            stack.callback(_serve(live, d, new_engine, args).close)    # closes before the session
        yield d


def _serve(live: Any, d: Any, new_engine: Any, args: argparse.Namespace) -> Any:
    """The control plane over this live session's recording. A peer's drop proposal is shown
    in the status bar; the operator confirms it with the usual drop (typed flow id, full
    gate), and the log then names the peer."""
    from gewtui.control.proposals import ProposalAwareController, ProposalBook
    from gewtui.control.server import serve

    def note(text: str) -> None:      # the screen belongs to the debugger: no stderr lines
        d.say(text.removeprefix("control: "))
        d.changed()

    book = None
    if d.intervention is not None:
        book = ProposalBook(on_proposal=lambda p: note(
            f"peer {p.peer} proposes dropping flow {p.flow_id} ({p.reason!r}): select it and drop to confirm"))
        d.intervention = ProposalAwareController(d.intervention, book)
    server = serve(live, live.record_path, new_engine, tcp=args.serve_tcp, proposals=book, log=note)
    note(f"serving the control plane on {server.path}")
    return server


def _gate_view() -> Any:
    from gewtui.debugger.gating import gate_view

    return gate_view


def _controller(live: Any, d: Any, args: argparse.Namespace) -> Any:
    """The drop controller, only when the operator allowed interventions on this command
    line; it acts on the head engine (the newest state), never on the cursor."""
    if not args.allow_intervention:
        return None
    from gewtui.errors import GewError
    from gewtui.intervene.controller import InterventionController

    from gewtui.intervene.controller import parse_ttl

    try:
        ttl = args.drop_ttl or user_config().default("drop_ttl")
        return InterventionController(live, d.head_engine, ttl_s=parse_ttl(ttl),
                                      on_record=d.add_intervention)
    except GewError as e:
        d.message = f"interventions unavailable: {e.message}"
        return None


def user_config(binding_ids: Any = None) -> Any:
    """The user's config file (gewtui.config), read once per command."""
    from gewtui import config

    return config.load(binding_ids)


def run(args: argparse.Namespace) -> int:
    from gewtui.tui.app import binding_ids, run_app

    cfg = user_config(binding_ids())      # before the session: a bad file costs no attach
    theme = args.theme or cfg.theme.value
    open_at = args.open_at or cfg.default("replay_open")
    with open_debugger(args, args.replay) as d:
        return run_app(d, theme=theme, keymap=cfg.keys(), open_at=open_at if args.replay else None)
