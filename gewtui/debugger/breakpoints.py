"""Breakpoints: conditions over one L0 event and the changes the engine derived from it.

Place in the pipeline: the cursor folds an event into its engine, gets the engine's
``Change`` list back, and asks the breakpoint table whether any enabled breakpoint fires on
that pair. Conditions read only the event and the changes, never engine internals, so the
same table works on the head engine of a live session and on a cursor replaying a file.

Kinds (the operator's words): ``state X`` (a flow's TCP state becomes X, or its lifecycle
phase becomes X), ``template T`` (template T matches a flow), ``diverge`` (a flow diverges
on a path change), ``drop REASON`` (the kernel frees a packet with that drop reason),
``flow N`` (any event of flow N), ``lost`` (the kernel could not hand records over).
``state``, ``template`` and ``drop`` take an optional ``flow N`` qualifier.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from gewtui.debugger import names
from gewtui.debugger.attribution import last_event_id
from gewtui.errors import UsageError
from gewtui.pb import events_pb2

KINDS = ("state", "template", "diverge", "drop", "flow", "lost")

# Lifecycle change kinds as the engine names them, keyed by the phase the flow enters.
_PHASE_CHANGE = {"emerged": "emerge", "evolving": "evolve", "diverged": "diverge",
                 "terminated": "terminate"}


@dataclass
class Breakpoint:
    number: int
    kind: str
    arg: str = ""
    flow: int | None = None
    enabled: bool = True
    hits: int = 0
    # Parsed forms of ``arg``, filled by ``make``.
    _tcp_state: int = field(default=0, repr=False)
    _phase: str = field(default="", repr=False)

    def describe(self) -> str:
        text = self.kind + (f" {self.arg}" if self.arg else "")
        if self.flow is not None and self.kind != "flow":
            text += f" flow {self.flow}"
        return text

    def fires(self, event: events_pb2.Event, changes: Sequence[Any], engine: Any = None) -> int | None:
        """The flow id this breakpoint fires on (0 for session-level hits), or None.
        ``engine`` (the one that folded the event) answers whether an event that changed
        nothing still belonged to a flow (``flow N``)."""
        k = self.kind
        if k == "lost":
            if event.WhichOneof("body") == "lost" or any(c.kind == "lost" for c in changes):
                return 0
            return None
        if k == "drop":
            if event.WhichOneof("body") != "skb_drop":
                return None
            if not names.drop_reason_matches(self.arg, event.skb_drop.reason_name):
                return None
            return self._flow_of(changes, allow_none=True)
        if k == "flow":
            if any(c.flow_id == self.flow for c in changes):
                return self.flow
            if engine is not None:
                if last_event_id(engine, self.flow) == event.id:
                    return self.flow
            return None
        if k == "diverge":
            return self._flow_of([c for c in changes if c.kind == "diverge"])
        if k == "template":
            return self._flow_of([c for c in changes
                                  if c.kind == "template" and _names(c, self.arg)])
        if k == "state":
            if self._phase:
                want = _PHASE_CHANGE[self._phase]
                return self._flow_of([c for c in changes if c.kind == want])
            hit = [c for c in changes if c.kind == "tcp-state" and _state_to(c) == self._tcp_state]
            if not hit and event.WhichOneof("body") == "tcp_state" \
                    and event.tcp_state.new_state == self._tcp_state:
                # The engine folded the state change without a "tcp-state" change of its
                # own (e.g. it opened the flow with it): any flow touched by the event counts.
                hit = [c for c in changes if c.flow_id]
            return self._flow_of(hit)
        return None

    def _flow_of(self, changes: Iterable[Any], allow_none: bool = False) -> int | None:
        flows = [c.flow_id for c in changes if c.flow_id]
        if self.flow is not None:
            return self.flow if self.flow in flows else None
        if flows:
            return flows[0]
        return 0 if allow_none else None


def _names(change: Any, template: str) -> bool:
    detail = getattr(change, "detail", None) or {}
    return detail.get("template") == template or template in detail.values()


def _state_to(change: Any) -> int:
    detail = getattr(change, "detail", None) or {}
    for key in ("to", "new", "state"):
        if key in detail:
            try:
                return names.parse_tcp_state(detail[key])
            except UsageError:
                return 0
    return 0


@dataclass(frozen=True)
class Hit:
    number: int
    description: str
    flow_id: int
    event_id: int
    position: int

    def text(self) -> str:
        where = f" on flow {self.flow_id}" if self.flow_id else ""
        return f"breakpoint {self.number} ({self.description}) hit{where} at #{self.event_id}"


class BreakpointTable:
    def __init__(self) -> None:
        self._bps: dict[int, Breakpoint] = {}
        self._next = 1
        self.any_enabled = False

    def __iter__(self):
        return iter(sorted(self._bps.values(), key=lambda b: b.number))

    def __len__(self) -> int:
        return len(self._bps)

    def make(self, kind: str, arg: str = "", flow: int | None = None) -> Breakpoint:
        """Validate and add a breakpoint; raises UsageError on a bad condition."""
        if kind not in KINDS:
            raise UsageError(f"unknown breakpoint kind {kind!r} (one of: {', '.join(KINDS)})")
        bp = Breakpoint(self._next, kind, arg, flow)
        if kind == "state":
            if not arg:
                raise UsageError("break state needs a TCP state or a lifecycle phase")
            try:
                bp._phase = names.phase_name(names.parse_phase(arg))
                bp.arg = bp._phase
            except UsageError:
                bp._tcp_state = names.parse_tcp_state(arg)
                bp.arg = names.tcp_state_name(bp._tcp_state)
        elif kind in ("template", "drop") and not arg:
            raise UsageError(f"break {kind} needs an argument")
        elif kind == "flow" and flow is None:
            raise UsageError("break flow needs a flow id")
        elif kind == "drop":
            bp.arg = arg.upper()
        for other in self._bps.values():
            if (other.kind, other.arg, other.flow) == (bp.kind, bp.arg, bp.flow):
                raise UsageError(f"breakpoint {other.number} already stops on {other.describe()}")
        self._bps[bp.number] = bp
        self._next += 1
        self._refresh()
        return bp

    def get(self, number: int) -> Breakpoint:
        try:
            return self._bps[number]
        except KeyError:
            raise UsageError(f"no breakpoint {number}") from None

    def set_enabled(self, numbers: Sequence[int], enabled: bool) -> list[Breakpoint]:
        targets = [self.get(n) for n in numbers] if numbers else list(self)
        for bp in targets:
            bp.enabled = enabled
        self._refresh()
        return targets

    def delete(self, numbers: Sequence[int]) -> list[Breakpoint]:
        targets = [self.get(n) for n in numbers] if numbers else list(self)
        for bp in targets:
            del self._bps[bp.number]
        self._refresh()
        return targets

    def check(self, event: events_pb2.Event, changes: Sequence[Any], position: int,
              engine: Any = None, count: bool = True) -> Hit | None:
        """The first enabled breakpoint that fires on this event (counted as a hit unless
        ``count`` is false, as in reverse searches)."""
        if not self.any_enabled:
            return None
        for bp in self:
            if not bp.enabled:
                continue
            flow = bp.fires(event, changes, engine)
            if flow is not None:
                if count:
                    bp.hits += 1
                return Hit(bp.number, bp.describe(), flow, event.id, position)
        return None

    def _refresh(self) -> None:
        self.any_enabled = any(b.enabled for b in self._bps.values())
