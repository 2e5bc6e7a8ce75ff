"""The flow tree: every flow the filter shows, grouped by lifecycle phase, a diverged
flow's children indented under it, one line per flow with its phase, peer, TCP state and
counters.

Place in the pipeline: the main screen hands it each new DebugView; ``Selected`` tells the
screen which flow the operator picked (the screen turns it into ``flow N``).

Why it stays smooth with 10,000 flows: it is a line-API widget (``render_line``: only the
visible lines are rendered, and Textual keeps each painted line until it is refreshed).
A view is compared with the previous one by row identity (the view builder reuses the
objects of unchanged rows): the line list is rebuilt only when the tree's *structure*
changed (a flow appeared, vanished, changed phase or parent); otherwise only the visible
lines whose rows changed are repainted. Rendered lines are also kept by flow and row
object, so scrolling back or moving the cursor re-renders nothing, and the styles a line
needs are looked up once per paint, not per line.
"""
from __future__ import annotations

from collections import defaultdict
from itertools import compress
from operator import is_not
from typing import Mapping, NamedTuple

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.cache import LRUCache
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

# Rendered lines kept: a few screens' worth (scrolling back, cursor moves). Each Strip
# carries its own small caches, so a larger store would mostly add to what the garbage
# collector's full passes walk.
LINE_CACHE = 256


def build_lines(rows: Mapping[int, FlowRow], collapsed: set[str]) -> list[Line]:
    children: dict[int, list[int]] = defaultdict(list)
    roots: dict[str, list[int]] = {p: [] for p in PHASES}
    for fid, r in rows.items():
        parent = r.parent_id
        if parent and parent in rows:
            children[parent].append(fid)
        else:
            roots.setdefault(r.phase, []).append(fid)
    lines: list[Line] = []

    def add(out: list[Line], fid: int, depth: int) -> None:
        out.append(("f", fid, depth))
        for c in sorted(children.get(fid, ())):
            add(out, c, depth + 1)

    for phase, ids in roots.items():
        if not ids:
            continue
        ids.sort()
        if children:
            sub: list[Line] = []
            for fid in ids:
                add(sub, fid, 0)
        else:                       # no diverged children: one line per root, no recursion
            sub = [("f", fid, 0) for fid in ids]
        lines.append(("g", phase, len(sub)))
        if phase not in collapsed:
            lines += sub
    return lines


def changed_rows(old: Mapping[int, FlowRow], new: Mapping[int, FlowRow]) -> list[int] | None:
    """The flows whose row object differs between two views, or None when the tree's
    structure changed (a flow appeared or vanished, or changed phase or parent)."""
    if len(old) != len(new):
        return None
    if list(old) == list(new):
        # The same flows in the same order (the view builder keeps it): compare the row
        # objects pairwise without a Python-level loop over 10,000 flows.
        changed = list(compress(new, map(is_not, old.values(), new.values())))
    else:
        changed = [fid for fid, r in new.items() if old.get(fid) is not r]
    for fid in changed:
        o, r = old.get(fid), new[fid]
        if o is None or o.phase != r.phase or o.parent_id != r.parent_id:
            return None
    return changed


def _human(n: int) -> str:
    if n < 10_000:
        return str(n)
    if n < 10_000_000:
        return f"{n // 1000}k"
    return f"{n // 1_000_000}M"


def squeeze_peer(peer: str, n: int) -> str:
    """The peer in ``n`` cells, the port kept whole (it says the most): ``10.77.…:8081``."""
    if len(peer) <= n:
        return peer
    host, sep, port = peer.rpartition(":")
    keep = n - len(port) - 2
    if sep and port.isdigit() and keep >= 2:
        return host[:keep] + "…:" + port
    return peer[: max(1, n - 1)] + "…"


class _Look(NamedTuple):
    """The styles of one paint (they change with the theme and the focus)."""
    base: Style
    cursor: Style
    group: Style
    selected: Style
    dim: Style
    warn: Style
    bad: Style
    ok: Style


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

    # Lines are fitted to the pane (the peer is shortened), so it never scrolls sideways.
    DEFAULT_CSS = """
    FlowTree { background: $surface; scrollbar-size-vertical: 1; overflow-x: hidden; }
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
        # Rendered lines: (flow, depth, width, selected) -> (row, strip); a hit counts only
        # for the same row object. Group lines: (line, width, collapsed) -> strip.
        self._line_cache: LRUCache[tuple, object] = LRUCache(LINE_CACHE)
        self._look: _Look | None = None
        self._paint: tuple[int, int, _Look] | None = None    # set while render_lines runs
        self.rebuilds = 0          # how often the structure changed (tests, bench)

    # ---- data -------------------------------------------------------------------------------

    def update_view(self, view: DebugView) -> None:
        rows, old_rows = view.flows, self._rows
        old_selected, self._selected = self._selected, view.selected
        if rows is not old_rows:
            changed = changed_rows(old_rows, rows)
            self._rows = rows
            if changed is None:
                self._rebuild()
                self.refresh()
                return
            if len(changed) > self.size.height:
                self.refresh()              # cheaper than looking each one up
            else:
                for fid in changed:
                    self._refresh_flow(fid)
        if old_selected != view.selected:
            self._refresh_flow(old_selected)
            self._refresh_flow(view.selected)

    def _refresh_flow(self, fid: int | None) -> None:
        """Repaint one flow's line if it is on screen (nothing otherwise)."""
        idx = self._index.get(fid) if fid is not None else None
        if idx is not None:
            self.refresh_line(idx)

    def _rebuild(self) -> None:
        keep = self.current_flow()
        self._lines = build_lines(self._rows, self._collapsed)
        self._index = {ln[1]: i for i, ln in enumerate(self._lines) if ln[0] == "f"}  # type: ignore[misc]
        id_width = len(str(max(self._rows, default=0)))
        if id_width != self._id_width:
            self._id_width = id_width
            self._line_cache.clear()
        self.rebuilds += 1
        self.virtual_size = Size(0, len(self._lines))
        if keep is not None and keep in self._index:
            self.cursor = self._index[keep]
        else:
            self.cursor = min(self.cursor, max(0, len(self._lines) - 1))

    def current_flow(self) -> int | None:
        if 0 <= self.cursor < len(self._lines):
            kind, ident, _ = self._lines[self.cursor]
            if kind == "f":
                return int(ident)  # type: ignore[call-overload]
        return None

    def line_count(self) -> int:
        return len(self._lines)

    def line_of(self, flow_id: int) -> int | None:
        """The line showing a flow (None when it is not in the tree or its group is folded)."""
        return self._index.get(flow_id)

    def clear_line_cache(self) -> None:
        self._line_cache.clear()

    # ---- rendering --------------------------------------------------------------------------

    def _paint_context(self) -> tuple[int, int, _Look]:
        comp = self.get_component_rich_style
        look = _Look(self.rich_style, comp("flow-tree--cursor"), comp("flow-tree--group"),
                     comp("flow-tree--selected"), comp("flow-tree--dim"), comp("flow-tree--warn"),
                     comp("flow-tree--bad"), comp("flow-tree--ok"))
        if look != self._look:          # another theme, or the focus moved: lines differ
            self._look = look
            self._line_cache.clear()
        return self.scroll_offset.y, self.scrollable_content_region.width, look

    def render_lines(self, crop: Region) -> list[Strip]:
        self._paint = self._paint_context()
        try:
            return super().render_lines(crop)
        finally:
            self._paint = None

    def render_line(self, y: int) -> Strip:
        scroll_y, width, look = self._paint or self._paint_context()
        idx = scroll_y + y
        if idx >= len(self._lines):
            return Strip.blank(width, look.base)
        strip = self._line_strip(self._lines[idx], width, look)
        if idx == self.cursor:
            strip = strip.apply_style(look.cursor)
        return strip

    def _line_strip(self, line: Line, width: int, look: _Look) -> Strip:
        kind, ident, n = line
        cache = self._line_cache
        if kind == "g":
            collapsed = ident in self._collapsed
            gkey = (line, width, collapsed)
            strip = cache.get(gkey)
            if strip is None:
                text = f"{'▸' if collapsed else '▾'} {ident} ({_human(n)})"
                strip = Strip([Segment(text, look.group)]).adjust_cell_length(width, look.base)
                cache[gkey] = strip
            return strip  # type: ignore[return-value]
        fid = int(ident)  # type: ignore[call-overload]
        row = self._rows.get(fid)
        selected = fid == self._selected
        key = (fid, n, width, selected)
        hit = cache.get(key)
        if hit is not None and hit[0] is row:  # type: ignore[index]
            return hit[1]  # type: ignore[index]
        segs = [Segment("")] if row is None else self._flow_segments(row, n, width, selected, look)
        strip = Strip(segs).adjust_cell_length(width, look.base)
        cache[key] = (row, strip)
        return strip

    def _flow_segments(self, r: FlowRow, depth: int, width: int, sel: bool,
                       look: _Look) -> list[Segment]:
        """``▶f17 ● ESTAB  10.0.0.2:8080   r3 d1 12ev storm``: the peer takes what the
        fixed columns leave, so the line reads at 80 columns and grows with the pane."""
        dim = look.dim
        phase_style = look.ok if r.phase == "evolving" else dim if r.phase == "terminated" else Style()
        indent = " " + "  " * depth + ("└" if depth else " ")
        state = SHORT_STATE.get(r.tcp_state, r.tcp_state[:6])
        head = [Segment(indent),
                Segment(("▶" if sel else " ") + f"f{r.flow_id:<{self._id_width}}",
                        look.selected if sel else Style()),
                Segment(" " + GLYPH.get(r.phase, "?") + " ", phase_style),
                # No TCP state (a diverged parent, a flow of no socket): blank, not a "-"
                # that reads as a missing endpoint next to the glyph.
                Segment(f"{'' if state == '-' else state:<6} ", dim)]
        counters: list[Segment] = []
        for value, tag, style in ((r.retransmits, "r", look.warn), (r.drops, "d", look.bad),
                                  (r.resets, "x", look.bad)):
            if value:
                counters.append(Segment(f" {tag}{_human(value)}", style))
        # What must stay: the template verdict (shortened last), then the peer (at least a
        # few characters), then the event count if it still fits.
        room = width - sum(s.cell_length for s in head + counters)
        peer_min = min(len(r.peer), 10)
        tpl = (" " + ",".join(r.templates)) if r.templates else ""
        if len(tpl) > room - peer_min:
            keep = room - peer_min - 1
            # Too narrow for a name: a mark still says this flow has a verdict.
            tpl = tpl[:keep] + "…" if keep >= 6 else " ⚑"
        room -= len(tpl)
        events = f" {_human(r.events)}ev"
        if len(r.peer) + len(events) > room:
            events = ""
        room -= len(events)
        peer = squeeze_peer(r.peer, room)
        out = head + [Segment(peer)] + counters
        if events:
            out.append(Segment(events, dim))
        if tpl:
            out.append(Segment(tpl, look.warn))
        return out

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
        h = max(1, self.scrollable_content_region.height)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + h:
            self.scroll_to(y=self.cursor - h + 1, animate=False)

    # ---- actions ----------------------------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        if self._lines:
            self.cursor = max(0, min(len(self._lines) - 1, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(1, self.scrollable_content_region.height - 1))

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
            self.post_message(self.Selected(int(ident)))  # type: ignore[call-overload]

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
