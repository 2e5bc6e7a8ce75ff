"""What a motion is and what it looks for: the ``Motion`` a step, continue or goto runs, and
the predicates a step or a reverse search tests each folded event with.

Place in the pipeline: the debugger core (gewtui.debugger.core) builds a Motion for each
command that moves the cursor and drives it in slices (``Debugger.run``); ``back`` hands the
same predicates to the timeline's reverse search (gewtui.debugger.timeline). A predicate sees
the event, the changes folding it produced and the engine that folded it, and reads the
debugger's filter and selection, never its engines.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from gewtui.debugger.attribution import last_event_id, touches
from gewtui.debugger.timeline import Predicate
from gewtui.errors import UsageError
from gewtui.pb import events_pb2

# Change kinds that count as lifecycle transitions for ``step transition``.
TRANSITION_KINDS = frozenset({"emerge", "diverge", "terminate", "tcp-state", "path"})
# Events that concern the whole session; a flow filter never hides them.
SESSION_BODIES = frozenset({"lost", "scope_change", "mark"})


@dataclass
class Motion:
    kind: str                              # continue | step | goto
    label: str
    until: Predicate | None = None         # stop after folding an event that satisfies it
    count: int = 1                         # ... this many times
    breakpoints: bool = True
    target: int | None = None              # goto: stop at this position
    stop_before: Callable[[int], bool] | None = None  # goto: stop before folding log[pos]


def visible(d: Any, ev: events_pb2.Event, changes: Sequence[Any], engine: Any) -> bool:
    """Would the operator see this event under the debugger's filter?"""
    if not d.filter:
        return True
    if ev.WhichOneof("body") in SESSION_BODIES:
        return True
    shown = d.matching_flows()
    if any(c.flow_id in shown for c in changes):
        return True
    return any(last_event_id(engine, fid) == ev.id for fid in shown)


def step_predicate(d: Any, what: str) -> tuple[Predicate, str]:
    """What ``step``/``back`` of ``what`` (event, flow, transition) stops on, and its label."""
    if what == "flow":
        if not d.selected:
            raise UsageError("no flow selected: 'flow N' selects one")
        fid = d.selected
        return (lambda ev, ch, eng: touches(eng, ev, ch, fid)), f"next event of flow {fid}"
    if what == "transition":
        return (lambda ev, ch, eng: any(c.kind in TRANSITION_KINDS and visible(d, ev, [c], eng)
                                        for c in ch)), "next lifecycle transition"
    return (lambda ev, ch, eng: visible(d, ev, ch, eng)), "next event"


def breakpoint_predicate(d: Any) -> Predicate:
    """An event where a breakpoint would fire (not counted as a hit: a search looks)."""
    table = d.breakpoints
    return lambda ev, ch, eng: table.check(ev, ch, 0, eng, count=False) is not None
