"""The flow tree: every flow the filter shows, grouped by lifecycle phase, a diverged
flow's children indented under it, one line per flow with its phase, peer, TCP state and
counters.

Place in the pipeline: the main screen hands it each new DebugView; ``Selected`` tells the
screen which flow the operator picked (the screen turns it into ``flow N``).

Why it stays smooth with 10,000 flows: it is a line-API widget (only the visible lines are
rendered, ``render_line``), the line list is rebuilt only when the tree's *structure*
changed (a flow appeared, vanished, changed phase or parent), found by comparing row
objects by identity (the view builder reuses unchanged rows); a counter ticking on some
flow only repaints what is on screen.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Mapping

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from gewtui.debugger.view import DebugView, FlowRow

PHASES = ("emerged", "evolving", "diverged", "terminated")
GLYPH = {"emerged": "○", "evolving": "●", "diverged": "⤳", "terminated": "×"}
SHORT_STATE = {"ESTABLISHED": "ESTAB", "SYN_SENT": "SYNSNT", "SYN_RECV": "SYNRCV",
               "FIN_WAIT1": "FINW1", "FIN_WAIT2": "FINW2", "TIME_WAIT": "TIMEW",
               "CLOSE": "CLOSE", "CLOSE_WAIT": "CLOSEW", "LAST_ACK": "LASTAK",
               "LISTEN": "LISTEN", "CLOSING": "CLSING", "NEW_SYN_RECV": "NSYNRC", "-": "-"}

# A line is ("g", phase, count) for a group header or ("f", flow_id, depth) for a flow.
Line = tuple[str, object, int]


def build_lines(rows: Mapping[int, FlowRow], collapsed: set[str]) -> list[Line]:
    children: dict[int, list[int]] = defaultdict(list)
    roots: dict[str, list[int]] = {p: [] for p in PHASES}
    for fid, r in rows.items():
        if r.parent_id and r.parent_id in rows:
            children[r.parent_id].append(fid)
        else:
            roots.setdefault(r.phase, []).append(fid)
    lines: list[Line] = []

    def add(fid: int, depth: int) -> None:
        lines.append(("f", fid, depth))
        for c in sorted(children.get(fid, ())):
            add(c, depth + 1)

    def size(fid: int) -> int:
        return 1 + sum(size(c) for c in children.get(fid, ()))

    for phase in roots:
        ids = sorted(roots[phase])
        if not ids:
            continue
        lines.append(("g", phase, sum(size(f) for f in ids)))
        if phase in collapsed:
            continue
        for fid in ids:
            add(fid, 0)
    return lines


def _human(n: int) -> str:
    if n < 10_000:
        return str(n)
    if n < 10_000_000:
        return f"{n // 1000}k"
    return f"{n // 1_000_000}M"


class FlowTree(ScrollView, can_focus=True):
    """Virtualised, keyed flow tree."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="tree.up"),
        Binding("down,j", "cursor(1)", "Down", show=False, id="tree.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="tree.page-up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="tree.page-down"),
        Binding("home", "edge(0)", "First", show=False, id="tree.first"),
        Binding("end", "edge(1)", "Last", show=False, id="tree.last"),
        Binding("enter", "choose", "Select flow", show=False, id="tree.select"),
        Binding("left", "fold(1)", "Collapse group", show=False, id="tree.collapse"),
        Binding("right", "fold(0)", "Expand group", show=False, id="tree.expand"),
    ]

    COMPONENT_CLASSES = {"flow-tree--cursor", "flow-tree--group", "flow-tree--selected",
                         "flow-tree--dim", "flow-tree--warn", "flow-tree--bad", "flow-tree--ok"}

    DEFAULT_CSS = """
    FlowTree { background: $surface; scrollbar-size-vertical: 1; }
    FlowTree > .flow-tree--cursor { background: $gew-cursor; color: $gew-cursor-text; }
    FlowTree:blur > .flow-tree--cursor { background: $panel; color: $foreground; }
    FlowTree > .flow-tree--group { color: $primary; text-style: bold; }
    FlowTree > .flow-tree--selected { color: $accent; text-style: bold; }
    FlowTree > .flow-tree--dim { color: $gew-dim; }
    FlowTree > .flow-tree--warn { color: $gew-warn; }
    FlowTree > .flow-tree--bad { color: $gew-bad; }
    FlowTree > .flow-tree--ok { color: $gew-ok; }
    """

    cursor = reactive(0, repaint=False)

    class Selected(Message):
        def __init__(self, flow_id: int) -> None:
            super().__init__()
            self.flow_id = flow_id

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._rows: Mapping[int, FlowRow] = {}
        self._lines: list[Line] = []
        self._index: dict[int, int] = {}
        self._collapsed: set[str] = set()
        self._selected: int | None = None
        self._id_width = 3
        self.rebuilds = 0          # how often the structure changed (tests, bench)

    # ---- data -------------------------------------------------------------------------------

    def update_view(self, view: DebugView) -> None:
        rows = view.flows
        selected_changed = view.selected != self._selected
        self._selected = view.selected
        if rows is self._rows and not selected_changed:
            return
        if rows is not self._rows:
            structural = self._structural(self._rows, rows)
            self._rows = rows
            if structural:
                self._rebuild()
        self.refresh()

    @staticmethod
    def _structural(old: Mapping[int, FlowRow], new: Mapping[int, FlowRow]) -> bool:
        if len(old) != len(new):
            return True
        for fid, r in new.items():
            o = old.get(fid)
            if o is r:
                continue
            if o is None or o.phase != r.phase or o.parent_id != r.parent_id:
                return True
        return False

    def _rebuild(self) -> None:
        keep = self.current_flow()
        self._lines = build_lines(self._rows, self._collapsed)
        self._index = {ln[1]: i for i, ln in enumerate(self._lines) if ln[0] == "f"}
        self._id_width = len(str(max(self._rows, default=0)))
        self.rebuilds += 1
        self.virtual_size = Size(self.size.width, len(self._lines))
        if keep is not None and keep in self._index:
            self.cursor = self._index[keep]
        else:
            self.cursor = min(self.cursor, max(0, len(self._lines) - 1))

    def current_flow(self) -> int | None:
        if 0 <= self.cursor < len(self._lines):
            kind, ident, _ = self._lines[self.cursor]
            if kind == "f":
                return int(ident)
        return None

    def line_count(self) -> int:
        return len(self._lines)

    # ---- rendering --------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        _, scroll_y = self.scroll_offset
        idx = scroll_y + y
        width = self.size.width
        base = self.rich_style
        if idx >= len(self._lines):
            return Strip.blank(width, base)
        kind, ident, n = self._lines[idx]
        if kind == "g":
            mark = "▸" if ident in self._collapsed else "▾"
            style = self.get_component_rich_style("flow-tree--group")
            segs = [Segment(f"{mark} {ident} ({_human(n)})", style)]
        else:
            segs = self._flow_segments(int(ident), n)
        strip = Strip(segs).adjust_cell_length(width, base)
        if idx == self.cursor:
            strip = strip.apply_style(self.get_component_rich_style("flow-tree--cursor"))
        return strip

    def _flow_segments(self, fid: int, depth: int) -> list[Segment]:
        """``▶f17 ● ESTAB  10.0.0.2:8080   r3 d1 12ev storm``: the peer takes what the
        fixed columns leave, so the line reads at 80 columns and grows with the pane."""
        r = self._rows.get(fid)
        if r is None:
            return [Segment("")]
        comp = self.get_component_rich_style
        sel = fid == self._selected
        dim = comp("flow-tree--dim")
        phase_style = comp("flow-tree--ok") if r.phase == "evolving" else \
            dim if r.phase == "terminated" else Style()
        indent = " " + "  " * depth + ("└" if depth else " ")
        head = [Segment(indent),
                Segment(("▶" if sel else " ") + f"f{fid:<{self._id_width}}",
                        comp("flow-tree--selected") if sel else Style()),
                Segment(" " + GLYPH.get(r.phase, "?") + " ", phase_style),
                Segment(f"{SHORT_STATE.get(r.tcp_state, r.tcp_state[:6]):<6} ", dim)]
        counters: list[Segment] = []
        for value, tag, cls in ((r.retransmits, "r", "flow-tree--warn"),
                                (r.drops, "d", "flow-tree--bad"), (r.resets, "x", "flow-tree--bad")):
            if value:
                counters.append(Segment(f" {tag}{_human(value)}", comp(cls)))
        optional = [Segment(f" {_human(r.events)}ev", dim)]
        if r.templates:
            optional.append(Segment(" " + ",".join(r.templates), comp("flow-tree--warn")))
        # The peer first, then the counters; the event count and templates if they fit.
        room = self.size.width - sum(s.cell_length for s in head + counters)
        while optional and len(r.peer) + sum(s.cell_length for s in optional) > room:
            optional.pop()
        room -= sum(s.cell_length for s in optional)
        peer = r.peer if len(r.peer) <= room else r.peer[: max(1, room - 1)] + "…"
        return head + [Segment(peer)] + counters + optional

    def watch_cursor(self, old: int, new: int) -> None:
        self.refresh_line(old)
        self.refresh_line(new)
        self._scroll_to_cursor()

    def refresh_line(self, idx: int) -> None:
        _, scroll_y = self.scroll_offset
        y = idx - scroll_y
        if 0 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def _scroll_to_cursor(self) -> None:
        _, top = self.scroll_offset
        h = max(1, self.size.height)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + h:
            self.scroll_to(y=self.cursor - h + 1, animate=False)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self._lines))

    # ---- actions ----------------------------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        if self._lines:
            self.cursor = max(0, min(len(self._lines) - 1, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(1, self.size.height - 1))

    def action_edge(self, end: int) -> None:
        if self._lines:
            self.cursor = len(self._lines) - 1 if end else 0

    def action_choose(self) -> None:
        if not (0 <= self.cursor < len(self._lines)):
            return
        kind, ident, _ = self._lines[self.cursor]
        if kind == "g":
            self._toggle(str(ident))
        else:
            self.post_message(self.Selected(int(ident)))

    def action_fold(self, collapse: int) -> None:
        if not (0 <= self.cursor < len(self._lines)):
            return
        kind, ident, _ = self._lines[self.cursor]
        if kind == "g" and (str(ident) in self._collapsed) != bool(collapse):
            self._toggle(str(ident))

    def _toggle(self, phase: str) -> None:
        self._collapsed ^= {phase}
        self._rebuild()
        if phase in self._collapsed:
            self.cursor = next(i for i, ln in enumerate(self._lines) if ln[:2] == ("g", phase))
        self.refresh()

    def on_click(self, event: Click) -> None:
        _, scroll_y = self.scroll_offset
        idx = scroll_y + event.y
        if 0 <= idx < len(self._lines):
            self.cursor = idx
            self.action_choose()
