"""Where a replay opens, and the cursor's history.

Place in the pipeline: the app hands every view it shows to ``StoryOpener.seen`` and
``CursorHistory.seen``; both answer with command lines for the debugger's pump (the same
language the keys speak), so nothing here touches the debugger.

An operator opening a recording wants the story, not "the cursor is before the first
event". ``end`` runs the cursor to the end (every flow, its phase and its template verdict
in the tree) and selects the flow with the most serious verdict; ``first-match`` sets a
breakpoint on every template, runs to the first match (the status bar flags it, the
breakpoint's flow is selected) and removes those breakpoints again, or ends at the end
when nothing matched; ``start`` keeps the cursor before the first event. A live session
follows the head and is left alone.

The history is the cursor's stops (where a motion ended), newest last; ``back`` goes to
the stop before the current one, as a browser's back button does, so after the replay
opened at its end one key returns to where the story began.
"""
from __future__ import annotations

from typing import Iterable

from gewtui.debugger.view import DebugView

OPEN_AT = ("end", "first-match", "start")
HISTORY = 64


class StoryOpener:
    def __init__(self, open_at: str | None) -> None:
        self.open_at = open_at if open_at in ("end", "first-match") else None
        self.phase = "idle" if self.open_at else "done"
        self.before: set[int] | None = None     # breakpoints the operator had (first-match)

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def seen(self, v: DebugView) -> list[str]:
        """The command lines to send after this view (usually none)."""
        if self.phase == "done" or v.cursor.mode != "replay":
            self.phase = "done"
            return []
        if self.phase == "idle":
            self.phase = "moving"
            if self.open_at == "first-match" and v.templates:
                self.before = {b.number for b in v.breakpoints}
                return [f"break template {t}" for t in v.templates] + ["continue"]
            return ["goto end"]
        c = v.cursor
        at_end = c.complete and c.position == c.known
        if self.phase == "moving" and c.state == "paused" and (at_end or v.hit):
            self.phase = "done"
            out = []
            if self.before is not None:
                # The breakpoints were the opener's, not the operator's: gone, the hit's flag
                # and its flow stay.
                mine = [b.number for b in v.breakpoints if b.number not in self.before]
                if mine:
                    out.append("delete " + " ".join(map(str, mine)))
            # The debugger selected the first flow to emerge; the story is the flow with the
            # verdict (a breakpoint's hit already selected its own).
            if v.flows and not v.hit:
                best = most_telling(v)
                if best != v.selected:
                    out.append(f"flow {best}")
            return out
        return []


def most_telling(v: DebugView) -> int:
    """The flow to show first: one with a template verdict (the most retransmits and drops
    among them), else the busiest."""
    rows = list(v.flows.values())
    return max(rows, key=lambda r: (bool(r.templates), r.drops + r.retransmits + r.resets,
                                    r.events, -r.flow_id)).flow_id


class CursorHistory:
    def __init__(self) -> None:
        self.stops: list[int] = []          # event ids (0: before the first event)

    def seen(self, v: DebugView) -> None:
        c = v.cursor
        if c.state != "paused" or (self.stops and self.stops[-1] == c.event_id):
            return
        self.stops.append(c.event_id)
        del self.stops[:-HISTORY]

    def back(self) -> str | None:
        """The command that returns to the previous stop, or None at the oldest."""
        if len(self.stops) < 2:
            return None
        self.stops.pop()          # the view of the goto then matches the new newest stop
        prev = self.stops[-1]
        return f"goto #{prev}" if prev else "goto start"

    def entries(self) -> Iterable[int]:
        return tuple(self.stops)
