"""Rich renderables for the debugger's command outputs and views.

Place in the pipeline: ``gew shell`` prints these; the TUI's panels and console pane show the same
renderables for commands typed in its command bar, so both front ends say the same thing
the same way. Input is only the immutable values of gewtui.debugger.view.
Styles name meanings (``gew.error``, ``gew.ok``...) resolved by the console's theme, so
NO_COLOR and monochrome terminals degrade to plain text.
"""
from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table as RTable
from rich.text import Text
from rich.theme import Theme
from rich.tree import Tree

from gewtui.debugger.view import (ChainNode, ChainOut, EventOut, EventView, FlowDetail, FlowOut,
                                  GateOut, GateView, HelpOut, Message, Output, Pairs, Stop, Table)

THEME = Theme({
    "gew.error": "bold red", "gew.warn": "yellow", "gew.ok": "green", "gew.bad": "red",
    "gew.dim": "dim", "gew.id": "cyan", "gew.head": "bold", "gew.gap": "bold red",
    "gew.L3": "bold magenta", "gew.L2": "yellow", "gew.L1": "cyan", "gew.L0": "dim",
    "gew.stop": "bold", "gew.critical": "bold red", "gew.warning": "yellow", "gew.info": "blue",
    "gew.hit": "bold red", "gew.running": "bold green", "gew.paused": "bold yellow",
})

OK_MARK, BAD_MARK = "✓", "✗"


def message(m: Message) -> Text:
    if m.level == "error":
        return Text.assemble(("error: ", "gew.error"), m.text)
    if m.level == "warn":
        return Text(m.text, style="gew.warn")
    return Text(m.text)


def _plain(cell: object) -> Text:
    """A table cell as literal text. rich reads a plain str cell as markup, and cells carry
    what recordings and users wrote (process names, template ids, typed values): "[/]" in
    one must print as itself, not end a style or raise."""
    return cell if isinstance(cell, Text) else Text(str(cell))


def table(t: Table) -> RTable:
    rt = RTable(title=_plain(t.title) if t.title else None, title_justify="left", show_edge=False,
                pad_edge=False, header_style="gew.head")
    for c in t.columns:
        rt.add_column(_plain(c), no_wrap=c in ("flow", "#", "events"))
    for row in t.rows:
        rt.add_row(*map(_plain, row))
    if not t.rows:
        rt.caption = "(none)"
    return rt


def chain_label(n: ChainNode) -> Text:
    t = Text()
    t.append(n.layer, style=f"gew.{n.layer}")
    t.append(f" {n.kind}", style="gew.head")
    if n.severity:
        t.append(f" [{n.severity}]", style=f"gew.{n.severity}" if n.severity in
                 ("critical", "warning", "info") else "")
    if n.text:
        t.append(f"  {n.text}")
    if n.evidence:
        t.append("  " + " ".join(f"#{e}" for e in n.evidence[:8]), style="gew.id")
        if len(n.evidence) > 8:
            t.append(f" (+{len(n.evidence) - 8})", style="gew.dim")
    t.append(f"  {n.node_id}", style="gew.dim")
    return t


def chain_tree(root: ChainNode) -> Tree:
    tree = Tree(chain_label(root))

    def add(parent: Tree, node: ChainNode) -> None:
        for c in node.children:
            add(parent.add(chain_label(c)), c)

    add(tree, root)
    return tree


def chain(out: ChainOut) -> RenderableType:
    if out.root is None:
        return Text(f"flow {out.flow_id} has no reason chain at #{out.at_event_id} "
                    "(no template matched yet)", style="gew.dim")
    return Group(Text(f"reason chain of flow {out.flow_id} as of #{out.at_event_id}", style="gew.head"),
                 chain_tree(out.root))


def event(ev: EventView) -> RenderableType:
    rt = RTable(show_header=False, show_edge=False, box=None, pad_edge=False)
    rt.add_column(style="gew.dim")
    rt.add_column()
    for k, v in ev.fields:
        rt.add_row(_plain(k), _plain(v))
    return Group(event_summary_line(ev), rt)


def event_summary_line(ev: EventView) -> Text:
    """The event at the cursor in one line, printed under a stop (as gdb prints the line)."""
    t = Text.assemble("  ", (f"#{ev.event_id}", "gew.id"), f" {ev.kind}  {ev.summary}")
    if ev.rel:
        t.append(f"  +{ev.rel}", style="gew.dim")
    return t


def muted(text: str) -> Text:
    return Text(text, style="gew.dim")


def gate(g: GateView, flow_id: int) -> RenderableType:
    verdict = ("allowed", "gew.ok") if g.allowed else ("refused", "gew.bad")
    lines = [Text.assemble(f"gate for flow {flow_id} ({g.note or 'now'}): ", verdict)]
    for c in g.conditions:
        mark = (OK_MARK, "gew.ok") if c.ok else (BAD_MARK, "gew.bad")
        lines.append(Text.assemble("  ", mark, f" {c.name:<13} ", c.why))
    return Group(*lines)


def flow(d: FlowDetail) -> RenderableType:
    r = d.row
    parts: list[RenderableType] = []
    # An unknown local end or TCP state is left out rather than shown as "-".
    local = f"{r.local} → " if r.local and r.local != "-" else "→ "
    state = f"  {r.tcp_state}" if r.tcp_state and r.tcp_state != "-" else ""
    head = Text.assemble(("flow ", "gew.head"), (str(r.flow_id), "gew.id"),
                         f"  {r.phase}  {local}{r.peer}{state}")
    if r.parent_id:
        head.append(f"  (diverged from flow {r.parent_id})", style="gew.dim")
    if r.children:
        head.append(f"  children: {', '.join(map(str, r.children))}", style="gew.dim")
    parts.append(head)
    parts.append(Text(f"key {d.key}", style="gew.dim"))
    parts.append(Text(f"events {r.events}  retransmits {r.retransmits}  drops {r.drops}  "
                      f"resets {r.resets}  segments {r.segments}  bytes {r.bytes}"
                      + (f"  templates {', '.join(r.templates)}" if r.templates else "")
                      + (f"  ended: {r.end_reason}" if r.end_reason else "")))
    if r.processes:
        parts.append(Text(f"processes {r.processes}", style="gew.dim"))
    for m in d.members:
        parts.append(Text(f"  socket {m}"))
    if d.path:
        hops = "  ".join(f"#{p.event_id} {p.device}" + (f" via {p.gateway}" if p.gateway else "")
                         + (f" err {p.err}" if p.err else "") for p in d.path)
        parts.append(Text(f"path  {hops}"))
    if d.timeline:
        parts.append(Text("timeline", style="gew.head"))
        for e in d.timeline:
            style = "gew.gap" if e.what == "gap" else ""
            ident = f"#{e.event_id}" if e.event_id else ""
            parts.append(Text.assemble(f" {e.rel:>10} ", (f"{ident:>6} ", "gew.id"), (e.text, style)))
    if d.diff_since_event or d.diff:
        parts.append(Text(f"changed since #{d.diff_since_event}:", style="gew.head"))
        if not d.diff:
            parts.append(Text("  nothing", style="gew.dim"))
        for f in d.diff:
            parts.append(Text(f"  {f.name}: {f.before} → {f.after}"))
    if d.gate is not None:
        parts.append(gate(d.gate, r.flow_id))
    for iv in d.interventions:
        parts.append(Text(f"intervention #{iv.intervention_id} {iv.action}: {iv.outcome} {iv.detail}"))
    return Group(*parts)


def help_out(h: HelpOut) -> RenderableType:
    if h.topic and len(h.entries) == 1:
        e = h.entries[0]
        lines = [Text(e.usage, style="gew.head"), Text(e.summary)]
        if e.details:
            lines.append(Text(e.details))
        if e.aliases:
            lines.append(Text("aliases: " + ", ".join(e.aliases), style="gew.dim"))
        return Group(*lines)
    rt = RTable(show_header=False, show_edge=False, box=None, pad_edge=False)
    rt.add_column(style="gew.dim")
    rt.add_column(style="gew.head", no_wrap=True)
    rt.add_column()
    last = ""
    for e in h.entries:
        rt.add_row(_plain(e.area if e.area != last else ""), _plain(e.usage), _plain(e.summary))
        last = e.area
    return Group(rt, Text("'help COMMAND' for details; words may be abbreviated", style="gew.dim"))


def pairs(p: Pairs) -> RenderableType:
    rt = RTable(show_header=False, show_edge=False, box=None, pad_edge=False)
    rt.add_column(style="gew.dim")
    rt.add_column()
    for k, v in p.pairs:
        style = "gew.bad" if (k == "lost records" and v != "0") or v == "INCOMPLETE" else ""
        rt.add_row(_plain(k), Text(v, style=style))
    return rt


def stop(s: Stop) -> Text:
    mark = {"breakpoint": "● ", "end": "■ ", "paused": "‖ "}.get(s.reason, "→ ")
    return Text.assemble((mark, "gew.stop"), (s.text, "gew.stop" if s.reason == "breakpoint" else ""))


def output(o: Output) -> RenderableType:
    if isinstance(o, Message):
        return message(o)
    if isinstance(o, Table):
        return table(o)
    if isinstance(o, FlowOut):
        return flow(o.detail)
    if isinstance(o, ChainOut):
        return chain(o)
    if isinstance(o, EventOut):
        return event(o.event)
    if isinstance(o, HelpOut):
        return help_out(o)
    if isinstance(o, GateOut):
        return gate(o.gate, o.flow_id)
    if isinstance(o, Pairs):
        return pairs(o)
    if isinstance(o, Stop):
        return stop(o)
    return Text(repr(o))
