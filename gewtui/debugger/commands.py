"""The one command language of gew-tui's command bar and ``gew shell``.

Place in the pipeline: a front end hands a typed line to ``execute`` (on the debugger's
thread); the line is parsed against ``COMMANDS``, the table every other view of the language
is generated from (``help``, the shell's completion, the TUI's command palette), and the
handler drives the debugger core and returns ``Output`` values (gewtui.debugger.view) for the
front end to render. Motions (step, continue, goto forward) only start here; where they stop
is reported by the core as a ``Stop``.

Words may be abbreviated to any unique prefix (``cont``, ``brea``); aliases are listed in
``help``. Flow ids may be written ``17`` or ``f17``, event ids ``1234`` or ``#1234``.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Callable, Sequence

from gewtui.debugger import breakpoints as bpmod
from gewtui.debugger import filters as fmod
from gewtui.debugger import names, view_values
from gewtui.debugger.core import Debugger
from gewtui.debugger.view_builder import ViewBuilder, template_ids
from gewtui.debugger.view import (ChainOut, EventOut, FlowOut, GateOut, HelpEntry, HelpOut, Message,
                                  Output, Pairs, Table)
from gewtui.errors import GewError, UsageError


class Quit(Exception):
    """The operator asked to leave (the front end cleans up and exits)."""


@dataclass
class Context:
    """What a handler may use. ``confirm`` is the front end's way to ask the operator to type
    something (the drop confirmation); None where nobody can answer."""

    debugger: Debugger
    views: ViewBuilder
    confirm: Callable[[str, int], str | None] | None = None


Handler = Callable[[Context, list[str]], list[Output]]


@dataclass(frozen=True)
class Command:
    name: str
    area: str                      # run | inspect | break | filter | session
    usage: str
    summary: str
    handler: Handler
    details: str = ""
    aliases: tuple[str, ...] = ()
    # Completion of each argument position: literal words and/or "@flow", "@template",
    # "@state", "@bp", "@command", "@drop-reason", "@filter-kind", "@break-kind".
    completes: tuple[tuple[str, ...], ...] = ()
    motion: bool = False           # starts a motion a synchronous caller may wait for


# ---- argument helpers ---------------------------------------------------------------------

def _int(text: str, what: str) -> int:
    t = text.strip().lstrip("#")
    if t[:1] in ("f", "F") and names.is_number(t[1:]):
        t = t[1:]
    if not names.is_number(t):
        raise UsageError(f"{what} must be a number (ASCII digits), not {ascii(text)[:40]}")
    return int(t)


def _flow_arg(ctx: Context, args: list[str], i: int = 0) -> int:
    if len(args) > i:
        return _int(args[i], "a flow id")
    if ctx.debugger.selected:
        return ctx.debugger.selected
    raise UsageError("which flow? ('flow N' selects one)")


def _count_and_what(args: list[str], words: Sequence[str]) -> tuple[int, str]:
    count, what = 1, "event"
    for a in args:
        if names.is_number(a):
            count = int(a)
        else:
            match = [w for w in words if w.startswith(a.lower())]
            if len(match) != 1:
                raise UsageError(f"expected a count or one of: {', '.join(words)} (got {a!r})")
            what = match[0]
    return count, what


# ---- run ------------------------------------------------------------------------------------

def _continue(ctx: Context, args: list[str]) -> list[Output]:
    d = ctx.debugger
    if d.following:
        return [Message("already following the head")]
    d.cont()
    return []


def _pause(ctx: Context, args: list[str]) -> list[Output]:
    ctx.debugger.pause()
    return []


def _step(ctx: Context, args: list[str]) -> list[Output]:
    count, what = _count_and_what(args, ("flow", "transition"))
    ctx.debugger.step(count, what)
    return []


def _back(ctx: Context, args: list[str]) -> list[Output]:
    count, what = _count_and_what(args, ("flow", "transition", "breakpoint"))
    ctx.debugger.back(count, what)
    return []


def _reverse(ctx: Context, args: list[str]) -> list[Output]:
    if not len(ctx.debugger.breakpoints):
        raise UsageError("no breakpoints to go back to")
    ctx.debugger.back(1, "breakpoint")
    return []


def _goto(ctx: Context, args: list[str]) -> list[Output]:
    if len(args) != 1:
        raise UsageError("goto #ID | ID | +TIME | @KTIME | start | end")
    d = ctx.debugger
    a = args[0].strip()
    if a in ("start", "begin", "0"):
        d.goto_position(0)
    elif a == "end":
        d.goto_end()
    elif a.startswith("+"):
        if not len(d.log):
            raise UsageError("no events yet")
        d.goto_ktime(d.log.first_ktime + names.parse_duration_ns(a[1:]))
    elif a.startswith("@"):
        d.goto_ktime(_int(a[1:], "a ktime in ns"))
    else:
        d.goto_event(_int(a, "an event id"))
    return []


# ---- inspect ----------------------------------------------------------------------------------

_FLOW_COLUMNS = ("flow", "parent", "phase", "peer", "tcp", "events", "retr", "drops", "rst", "templates")


def _flows(ctx: Context, args: list[str]) -> list[Output]:
    view_rows = ctx.views.build().flows
    rows = []
    for fid in sorted(view_rows):
        r = view_rows[fid]
        rows.append((str(r.flow_id), str(r.parent_id or ""), r.phase, r.peer, r.tcp_state,
                     str(r.events), str(r.retransmits), str(r.drops), str(r.resets),
                     ",".join(r.templates)))
    d = ctx.debugger
    title = f"flows at #{d.cursor_event_id()}" if d.position else "flows at start"
    if d.filter:
        title += f" (filter: {'; '.join(d.filter.describe())})"
    return [Table(title, _FLOW_COLUMNS, tuple(rows))]


def _flow(ctx: Context, args: list[str]) -> list[Output]:
    if not args:
        return _flows(ctx, args)
    fid = _flow_arg(ctx, args)
    ctx.debugger.select(fid)
    detail = ctx.views.flow_detail(fid)
    return [FlowOut(detail)] if detail is not None else []


def _chain(ctx: Context, args: list[str]) -> list[Output]:
    d = ctx.debugger
    fid = _flow_arg(ctx, args)
    if d.engine.flow(fid) is None:
        raise UsageError(f"no flow {fid} at #{d.cursor_event_id()}")
    chain = d.engine.chain(fid)
    if chain is None or not chain.HasField("root"):
        return [ChainOut(fid, None, d.cursor_event_id())]
    return [ChainOut(fid, view_values.chain_node(chain.root), chain.at_event_id)]


def _event(ctx: Context, args: list[str]) -> list[Output]:
    d = ctx.debugger
    if args:
        eid = _int(args[0], "an event id")
        pos = d.log.position_of_id(eid)
        if pos is None:
            raise UsageError(f"no event #{eid} (yet)")
        ev = d.log.get(pos)
    else:
        ev = d.event_at_cursor()
        if ev is None:
            raise UsageError("the cursor is before the first event")
    return [EventOut(view_values.event_view(ev, d.log.first_ktime))]


def _info(ctx: Context, args: list[str]) -> list[Output]:
    v = ctx.views.build()
    s, c = v.status, v.cursor
    pairs = [
        ("session", s.session_id), ("mode", s.mode), ("capabilities", s.verdict),
        ("scope", s.scope), ("recording", f"{s.recording or '-'} ({names.size_text(s.recording_size)})"),
        ("cursor", f"#{c.event_id} ({c.position}/{c.known}{'' if c.complete or s.mode == 'live' else '+'}) "
                   f"{'+' + c.rel if c.rel else ''}"),
        ("state", c.state + (f" ({c.motion})" if c.motion else "")),
        ("events", str(s.events)), ("lost records", str(s.lost)),
        ("observation", "complete" if s.complete else "INCOMPLETE"),
        ("flows", f"{v.flows_total} at the cursor, {len(v.flows)} shown"),
        ("checkpoints", str(len(ctx.debugger.checkpoints))),
        ("breakpoints", str(len(v.breakpoints))),
        ("filters", "; ".join(v.filters) or "none"),
    ]
    if s.bpf_run_time_ns:
        pairs.append(("BPF cost", f"{s.bpf_run_time_ns / 1e6:.1f} ms total, "
                                  f"{s.bpf_ns_per_run:.0f} ns/run"))
    return [Pairs("session", tuple(pairs))]


def _gate(ctx: Context, args: list[str]) -> list[Output]:
    fid = _flow_arg(ctx, args)
    detail = ctx.views.flow_detail(fid)
    if detail is None:
        raise UsageError(f"no flow {fid} at #{ctx.debugger.cursor_event_id()}")
    if detail.gate is None:
        return [Message("no gate evaluator in this session", "warn")]
    return [GateOut(fid, detail.gate)]


# ---- breakpoints ----------------------------------------------------------------------------

def _break(ctx: Context, args: list[str]) -> list[Output]:
    table = ctx.debugger.breakpoints
    if not args:
        return [_break_table(ctx)]
    kind = _complete_word(args[0], bpmod.KINDS, "breakpoint kind")
    rest = args[1:]
    flow = None
    if kind == "flow":
        if not rest:
            raise UsageError("break flow N")
        flow = _int(rest[0], "a flow id")
        rest = rest[1:]
    elif len(rest) >= 2 and rest[-2] == "flow":
        flow = _int(rest[-1], "a flow id")
        rest = rest[:-2]
    arg = " ".join(rest)
    if kind in ("diverge", "lost") and arg:
        raise UsageError(f"break {kind} takes no argument (only 'flow N')")
    if kind == "template" and arg:
        known = template_ids(getattr(ctx.debugger.engine, "templates", None))
        if known and arg not in known:
            raise UsageError(f"unknown template {arg!r} (known: {', '.join(known)})")
    bp = table.make(kind, arg, flow)
    ctx.debugger.changed()
    return [Message(f"breakpoint {bp.number}: {bp.describe()}")]


def _break_table(ctx: Context) -> Table:
    rows = tuple((str(b.number), "yes" if b.enabled else "no", b.describe(), str(b.hits))
                 for b in ctx.debugger.breakpoints)
    return Table("breakpoints", ("#", "on", "stops on", "hits"), rows)


def _numbers(args: list[str]) -> list[int]:
    return [_int(a, "a breakpoint number") for a in args]


def _enable(ctx: Context, args: list[str]) -> list[Output]:
    done = ctx.debugger.breakpoints.set_enabled(_numbers(args), True)
    ctx.debugger.changed()
    return [Message(f"enabled {', '.join(str(b.number) for b in done) or 'nothing'}")]


def _disable(ctx: Context, args: list[str]) -> list[Output]:
    done = ctx.debugger.breakpoints.set_enabled(_numbers(args), False)
    ctx.debugger.changed()
    return [Message(f"disabled {', '.join(str(b.number) for b in done) or 'nothing'}")]


def _delete(ctx: Context, args: list[str]) -> list[Output]:
    done = ctx.debugger.breakpoints.delete(_numbers(args))
    ctx.debugger.changed()
    return [Message(f"deleted {', '.join(str(b.number) for b in done) or 'nothing'}")]


# ---- filters --------------------------------------------------------------------------------

def _filter(ctx: Context, args: list[str]) -> list[Output]:
    d = ctx.debugger
    if not args:
        lines = d.filter.describe()
        return [Message("filters: " + ("; ".join(lines) if lines else "none"))]
    if args[0] == "clear":
        if len(args) > 1:
            d.set_filter(d.filter.without_kind(_complete_word(args[1], fmod.KINDS, "filter kind")))
        else:
            d.set_filter(fmod.FlowFilter())
        return [Message("filters: " + ("; ".join(d.filter.describe()) or "none"))]
    kind = _complete_word(args[0], fmod.KINDS, "filter kind")
    term = fmod.parse_term(f"{kind} {' '.join(args[1:])}")
    d.set_filter(d.filter.with_term(term))
    return [Message("filters: " + "; ".join(d.filter.describe()))]


# ---- session ----------------------------------------------------------------------------------

def _export(ctx: Context, args: list[str]) -> list[Output]:
    if len(args) != 1:
        raise UsageError("export FILE (writes the events of the flows the filter shows)")
    from gewtui.debugger.export import export_log

    res = export_log(ctx.debugger, args[0])
    return [Message(res.text())]


def _drop(ctx: Context, args: list[str]) -> list[Output]:
    from gewtui.debugger.gating import request_drop

    fid = _flow_arg(ctx, args)
    return [Message(request_drop(ctx.debugger, fid, ctx.confirm))]


def _undo(ctx: Context, args: list[str]) -> list[Output]:
    from gewtui.debugger.gating import request_undo

    fid = _int(args[0], "a flow id") if args else None
    return [Message(request_undo(ctx.debugger, fid))]


def _help(ctx: Context, args: list[str]) -> list[Output]:
    if args:
        cmd = lookup(args[0])
        return [HelpOut((_entry(cmd),), cmd.name)]
    return [HelpOut(help_entries())]


def _quit(ctx: Context, args: list[str]) -> list[Output]:
    raise Quit()


def _entry(c: Command) -> HelpEntry:
    return HelpEntry(c.area, c.name, c.usage, c.summary, c.details, c.aliases)


# ---- the table --------------------------------------------------------------------------------

COMMANDS: tuple[Command, ...] = (
    Command("continue", "run", "continue", "run until a breakpoint (live: follow the newest event)",
            _continue, "Replay: runs to the next breakpoint or the end of the recording. Live: "
            "replays from the cursor, checking breakpoints, until it reaches the newest event, "
            "then follows it.", ("c", "cont", "run"), motion=True),
    Command("pause", "run", "pause", "freeze the view where it is (ingestion and recording go on)",
            _pause, aliases=("stop",)),
    Command("step", "run", "step [N] [flow|transition]",
            "step to the next event, the selected flow's next event, or the next lifecycle transition",
            _step, "With a filter set, plain 'step' only stops on events that touch a flow the "
            "filter shows (and on session events such as lost records). Breakpoints passed on "
            "the way stop the step.", ("s", "n", "next"),
            (("flow", "transition"), ("flow", "transition")), motion=True),
    Command("back", "run", "back [N] [flow|transition|breakpoint]",
            "step backwards in time (restores the nearest checkpoint and replays)",
            _back, "'back flow' goes to the selected flow's previous event, 'back transition' to "
            "the previous lifecycle transition, 'back breakpoint' to the previous breakpoint hit.",
            ("p", "prev", "bk"), (("flow", "transition", "breakpoint"),)),
    Command("reverse", "run", "reverse", "run backwards to the previous breakpoint hit",
            _reverse, aliases=("rc", "reverse-continue")),
    Command("goto", "run", "goto #ID | +TIME | @KTIME | start | end",
            "jump to an event, a time since the session's first event (+2.5s), a ktime, or an end",
            _goto, "A jump does not stop at breakpoints.", ("g", "jump"),
            (("start", "end", "#", "+"),), motion=True),
    Command("flows", "inspect", "flows", "list the flows the filter shows, at the cursor",
            _flows, aliases=("ls",)),
    Command("flow", "inspect", "flow N", "select flow N and show its timeline, path and diff",
            _flow, aliases=("f", "select"), completes=(("@flow",),)),
    Command("chain", "inspect", "chain [N]", "the reason chain (L3 → L0) of flow N or the selected flow",
            _chain, aliases=("why", "reasons"), completes=(("@flow",),)),
    Command("event", "inspect", "event [#ID]", "every field of an event (default: the one at the cursor)",
            _event, aliases=("ev", "x"), completes=(("#",),)),
    Command("gate", "inspect", "gate [N]", "the intervention gate for flow N: each condition ✓/✗ and why",
            _gate, completes=(("@flow",),)),
    Command("info", "inspect", "info", "session, cursor, capability verdict and observation completeness",
            _info, aliases=("i", "status")),
    Command("break", "break", "break [state X | template T | diverge | drop REASON | flow N | lost] [flow N]",
            "set a breakpoint, or list them",
            _break, "state X: a flow's TCP state becomes X (ESTABLISHED, CLOSE, ...) or its "
            "lifecycle phase becomes X (emerged, terminated, ...). template T: template T "
            "matches a flow. diverge: a flow diverges on a path change. drop REASON: the kernel "
            "drops a packet with that drop reason. flow N: any event of flow N. lost: the kernel "
            "lost records. 'flow N' after state/template/drop limits it to one flow.",
            ("b", "br", "breakpoint"), (("@break-kind",), ("@break-arg",), ("flow",), ("@flow",))),
    Command("enable", "break", "enable [N...]", "enable breakpoints (all without numbers)", _enable,
            completes=(("@bp",),) * 4),
    Command("disable", "break", "disable [N...]", "disable breakpoints (all without numbers)",
            _disable, completes=(("@bp",),) * 4),
    Command("delete", "break", "delete [N...]", "delete breakpoints (all without numbers)", _delete,
            aliases=("d",), completes=(("@bp",),) * 4),
    Command("filter", "filter", "filter [KIND VALUE | clear [KIND]]",
            "show only matching flows (kinds: " + ", ".join(fmod.KINDS) + ")",
            _filter, "dst/src/addr take an address or prefix, port/sport/dport a port, netns an "
            "inode or a name, template an id, phase emerged|evolving|diverged|terminated|live, "
            "cgroup a cgroup v2 path (its subtree), container a container id prefix or a systemd "
            "unit. Terms of one kind OR together, different kinds AND.",
            completes=(("@filter-kind", "clear"), ("@filter-arg",))),
    Command("export", "session", "export FILE",
            "write the events of the flows the filter shows to a smaller, valid recording", _export),
    Command("drop", "session", "drop N",
            "drop flow N's packets (needs --allow-intervention, a live session and a typed confirmation)",
            _drop, completes=(("@flow",),)),
    Command("undo", "session", "undo [N]",
            "remove flow N's drop at once (without N: the latest drop)", _undo,
            completes=(("@flow",),)),
    Command("help", "session", "help [COMMAND]", "this table, or one command in detail", _help,
            aliases=("h", "?"), completes=(("@command",),)),
    Command("quit", "session", "quit", "leave (the session is detached and cleaned up)", _quit,
            aliases=("q", "exit")),
)


def help_entries() -> tuple[HelpEntry, ...]:
    """The help table, generated from COMMANDS (the TUI's ? screen shows the same)."""
    return tuple(_entry(c) for c in COMMANDS)


def _complete_word(word: str, choices: Sequence[str], what: str) -> str:
    w = word.lower()
    if w in choices:
        return w
    match = [c for c in choices if c.startswith(w)]
    if len(match) == 1:
        return match[0]
    raise UsageError(f"unknown {what} {word!r} (one of: {', '.join(choices)})")


def lookup(word: str) -> Command:
    w = word.lower()
    for c in COMMANDS:
        if w == c.name or w in c.aliases:
            return c
    match = [c for c in COMMANDS if c.name.startswith(w)]
    if len(match) == 1:
        return match[0]
    if match:
        raise UsageError(f"ambiguous command {word!r}: {', '.join(c.name for c in match)}")
    raise UsageError(f"unknown command {word!r} ('help' lists them)")


def parse(line: str) -> tuple[Command, list[str]] | None:
    """(command, arguments), or None for an empty line or a comment."""
    if line.lstrip().startswith("# ") or line.strip() == "#":
        return None                    # a comment line (scripts); "#1234" is an event id
    try:
        words = shlex.split(line)
    except ValueError as e:
        raise UsageError(f"cannot parse {line!r}: {e}") from None
    if not words:
        return None
    return lookup(words[0]), words[1:]


def execute(ctx: Context, line: str) -> list[Output]:
    """Run one line. User mistakes come back as an error Message, never an exception
    (except Quit)."""
    try:
        parsed = parse(line)
        if parsed is None:
            return []
        cmd, args = parsed
        return cmd.handler(ctx, args)
    except Quit:
        raise
    except GewError as e:
        return [Message(e.message, "error")]


@dataclass(frozen=True)
class CompletionData:
    """What completion may offer, taken from the latest immutable view (never from the
    debugger itself, which belongs to another thread)."""

    flows: tuple[int, ...] = ()
    templates: tuple[str, ...] = ()
    breakpoints: tuple[int, ...] = ()
    drop_reasons: tuple[str, ...] = ()
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)


def complete(line: str, data: CompletionData) -> list[str]:
    """Candidates for the word being typed at the end of ``line``."""
    try:
        words = shlex.split(line)
    except ValueError:
        return []
    if not line or line[-1].isspace():
        words.append("")
    if len(words) <= 1:
        prefix = words[0] if words else ""
        return [c.name for c in COMMANDS if c.name.startswith(prefix)]
    try:
        cmd = lookup(words[0])
    except UsageError:
        return []
    pos = len(words) - 2
    prefix = words[-1]
    slots = cmd.completes[pos] if pos < len(cmd.completes) else ()
    out: list[str] = []
    for s in slots:
        out.extend(_expand(s, words, data))
    return [c for c in dict.fromkeys(out) if c.startswith(prefix)]


def _expand(slot: str, words: list[str], data: CompletionData) -> list[str]:
    if not slot.startswith("@"):
        return [slot]
    if slot == "@flow":
        return [str(f) for f in data.flows]
    if slot == "@template":
        return list(data.templates)
    if slot == "@bp":
        return [str(b) for b in data.breakpoints]
    if slot == "@command":
        return [c.name for c in COMMANDS]
    if slot == "@break-kind":
        return list(bpmod.KINDS)
    if slot == "@filter-kind":
        return list(fmod.KINDS)
    if slot == "@break-arg":
        kind = words[1] if len(words) > 1 else ""
        if kind == "state":
            return list(names.TCP_STATES) + list(names.PHASES)
        if kind == "template":
            return list(data.templates)
        if kind == "drop":
            return list(data.drop_reasons)
        if kind == "flow":
            return [str(f) for f in data.flows]
        return []
    if slot == "@filter-arg":
        kind = words[1] if len(words) > 1 else ""
        if kind == "template":
            return list(data.templates)
        if kind == "phase":
            return list(names.PHASES) + ["live"]
        if kind == "clear":
            return list(fmod.KINDS)
        return []
    return list(data.extra.get(slot, ()))


def motion_command(line: str) -> bool:
    """Does this line start a motion (so a synchronous caller should wait for its stop)?"""
    try:
        parsed = parse(line)
    except GewError:
        return False
    return parsed is not None and parsed[0].motion
