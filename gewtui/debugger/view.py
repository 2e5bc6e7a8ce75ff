"""Immutable snapshots of the debugger's state, and the results commands return.

Place in the pipeline: the debugger core builds a ``DebugView`` (the whole screen's worth of
state at one cursor position) and command results (``Output`` values); the Textual app and
the shell only render these. Nothing here refers to an engine, a protobuf message that could
change under the reader, or a UI library: frozen dataclasses of strings, numbers and tuples,
safe to hand from the pump thread to the UI thread.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Union


@dataclass(frozen=True)
class FlowRow:
    """One line of the flow tree."""

    flow_id: int
    parent_id: int
    phase: str                 # emerged | evolving | diverged | terminated
    peer: str
    local: str
    tcp_state: str
    events: int
    retransmits: int
    drops: int
    resets: int
    segments: int
    bytes: int
    templates: tuple[str, ...]
    netns: int
    first_ktime_ns: int
    last_ktime_ns: int
    last_event_id: int
    end_reason: str
    children: tuple[int, ...] = ()
    processes: str = ""
    srtt: str = ""             # median srtt bucket of the flow's segments, e.g. "256us-512us"
    containers: str = ""       # containers or systemd units of its processes


@dataclass(frozen=True)
class TimelineEntry:
    ktime_ns: int
    rel: str                   # time since the session's first event
    event_id: int              # 0 for a gap
    what: str                  # "phase", "tcp-state", "path", "owner", "member", "gap", "cursor"
    text: str


@dataclass(frozen=True)
class PathView:
    event_id: int
    device: str
    gateway: str
    table: int
    err: int


@dataclass(frozen=True)
class FieldDiff:
    name: str
    before: str
    after: str


@dataclass(frozen=True)
class ChainNode:
    node_id: str
    layer: str                 # "L0" .. "L3"
    kind: str
    text: str
    severity: str
    evidence: tuple[int, ...]
    fields: tuple[tuple[str, str], ...]
    children: tuple["ChainNode", ...]
    flow_id: int = 0

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


@dataclass(frozen=True)
class GateConditionView:
    name: str
    ok: bool
    why: str


@dataclass(frozen=True)
class GateView:
    allowed: bool
    conditions: tuple[GateConditionView, ...]
    at_event_id: int
    note: str = ""             # e.g. why no gate could be evaluated


@dataclass(frozen=True)
class InterventionView:
    intervention_id: int
    action: str
    outcome: str
    detail: str
    event_id_hint: str = ""


@dataclass(frozen=True)
class FlowDetail:
    row: FlowRow
    key: str
    members: tuple[str, ...]
    path: tuple[PathView, ...]
    timeline: tuple[TimelineEntry, ...]
    diff: tuple[FieldDiff, ...]
    diff_since_event: int      # the cursor's event id at the previous stop
    chain: ChainNode | None
    gate: GateView | None
    interventions: tuple[InterventionView, ...] = ()
    series: Any = None         # gewtui.debugger.series.FlowSeries: the flow view's chart


@dataclass(frozen=True)
class EventView:
    event_id: int
    ktime_ns: int
    rel: str
    kind: str
    summary: str
    fields: tuple[tuple[str, str], ...]   # every set field, dotted names


@dataclass(frozen=True)
class CursorView:
    position: int              # events folded into the cursor's engine
    known: int                 # events in the session's log so far
    complete: bool             # no more events will arrive (a fully read recording)
    event_id: int              # the event at the cursor (0 before the first)
    ktime_ns: int
    rel: str
    state: str                 # "following" | "running" | "paused"
    mode: str                  # "live" | "replay"
    motion: str = ""           # what a running cursor is doing: "continue", "step", "goto"


@dataclass(frozen=True)
class StatusView:
    session_id: str
    verdict: str
    mode: str
    events: int
    events_per_s: float
    lost: int
    complete: bool
    bpf_run_time_ns: int
    bpf_runs_per_s: float
    bpf_ns_per_run: float
    recording: str
    recording_size: int
    flows_live: int
    flows_terminated: int
    scope: str = ""
    allow_intervention: bool = False
    lag: int = 0            # live: events recorded that the engine has not folded yet


@dataclass(frozen=True)
class BreakpointView:
    number: int
    description: str
    enabled: bool
    hits: int


EMPTY_FLOWS: Mapping[int, FlowRow] = MappingProxyType({})


@dataclass(frozen=True)
class DebugView:
    seq: int
    status: StatusView
    cursor: CursorView
    flows: Mapping[int, FlowRow]          # the flows the filter shows, by id (read-only)
    flows_total: int
    flows_version: int                    # changes whenever any row changed
    selected: int | None
    detail: FlowDetail | None
    event: EventView | None
    breakpoints: tuple[BreakpointView, ...]
    hit: str
    filters: tuple[str, ...]
    message: str
    templates: tuple[str, ...] = ()
    rates: Any = None                     # gewtui.debugger.series.SessionSeries (sparkline)
    template_notes: tuple[str, ...] = ()  # packaged templates the operator replaced


# ---- command results -------------------------------------------------------------------

@dataclass(frozen=True)
class Message:
    text: str
    level: str = "info"                   # info | warn | error


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class FlowOut:
    detail: FlowDetail


@dataclass(frozen=True)
class ChainOut:
    flow_id: int
    root: ChainNode | None
    at_event_id: int


@dataclass(frozen=True)
class EventOut:
    event: EventView


@dataclass(frozen=True)
class HelpEntry:
    area: str
    name: str
    usage: str
    summary: str
    details: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class HelpOut:
    entries: tuple[HelpEntry, ...]
    topic: str = ""                        # one command's name, or "" for the whole table


@dataclass(frozen=True)
class GateOut:
    flow_id: int
    gate: GateView


@dataclass(frozen=True)
class Stop:
    """Where a motion (step, continue, goto, back) left the cursor, and why."""

    reason: str                            # step | breakpoint | end | goto | back | paused | head
    text: str
    position: int
    event_id: int
    flow_id: int = 0


@dataclass(frozen=True)
class Pairs:
    title: str
    pairs: tuple[tuple[str, str], ...] = field(default_factory=tuple)


Output = Union[Message, Table, FlowOut, ChainOut, EventOut, HelpOut, GateOut, Stop, Pairs]
