"""The debugger core: a cursor over one session's L0 event sequence, live or replayed.

Place in the pipeline: a source (gewtui.debugger.sources) hands events to ``ingest``; they
are appended to the session's ``EventLog``; the cursor's engine folds them one by one as the
operator steps, continues, goes back or jumps. Front ends never call the engine: they run
commands (gewtui.debugger.commands) and render the ``DebugView`` this core builds.

The model, live and replayed alike:

- **position** ``p`` means events ``[0, p)`` are folded into the cursor's engine; the event
  *at* the cursor is ``log[p-1]``.
- **live**: a *head* engine folds every event as it arrives, always. While the view follows
  the head, the cursor *is* the head engine (one fold per event, no copy). Pausing gives the
  cursor its own engine, restored from a checkpoint of the head taken at that moment: the
  view freezes, ingestion, recording and the head go on, nothing is dropped. ``continue``
  replays the log from the cursor (checking breakpoints on the way) until it reaches the
  head, then drops its own engine and follows the head again.
- **replay**: there is no head; the cursor's engine walks the recording, which is read into
  the log ahead of it.
- **the timeline** (gewtui.debugger.timeline) owns the log, the engines (cursor, head,
  spare) and the checkpoints, stored ones included: ``back``, ``goto`` backwards and reverse
  searches restore the nearest checkpoint and replay forward, so their cost is bounded by
  the checkpoint spacing, not by the length of the session. This core keeps ingestion,
  motions, navigation and selection, and asks the timeline to move.
- **motions** (step, continue, goto forward) advance in slices (``run(budget_s)``), so a
  front end's pump can interleave ingestion and rendering and a ``pause`` can interrupt them.
  A motion that needs events not read yet simply waits for the next ingest.
"""
from __future__ import annotations

import time
from operator import attrgetter
from typing import Any, Callable, Sequence

from gewtui.debugger.breakpoints import BreakpointTable, Hit
from gewtui.debugger.checkpoints import CheckpointPolicy
from gewtui.debugger.filters import FlowFilter
from gewtui.debugger.flow_marks import FlowMarks
from gewtui.debugger.motions import Motion, breakpoint_predicate, step_predicate
from gewtui.debugger.timeline import Timeline
from gewtui.debugger.view import Stop
from gewtui.errors import UsageError
from gewtui.pb import events_pb2


def _timeline_attr(name: str, doc: str) -> property:
    """A Debugger attribute that is its timeline's, read and set (tests and tuning set it)."""
    return property(attrgetter("timeline." + name), lambda d, v: setattr(d.timeline, name, v), doc=doc)


class Debugger:
    """One session's cursor, breakpoints and filters. Not thread-safe: one thread drives it
    (gewtui.debugger.runner)."""

    def __init__(self, source: Any, *, engine_factory: Callable[[], Any] | None = None,
                 engine_restore: Callable[[Any], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 gate: Callable[[Any], Any] | None = None,
                 intervention: Any = None,
                 policy: CheckpointPolicy | None = None) -> None:
        self.source = source
        self.live: bool = bool(getattr(source, "live", False))
        self.clock = clock
        self.gate = gate                       # (debugger, flow id) -> GateView (injected)
        self.intervention = intervention       # the drop controller (injected, live only)
        self.motion: Motion | None = Motion("continue", "follow") if self.live else None
        self.timeline = Timeline(self, engine_factory, engine_restore, policy)
        self.breakpoints = BreakpointTable()
        self.filter = FlowFilter()
        self.selected: int | None = None
        self.hit: Hit | None = None
        self.message = ""
        self.marks = FlowMarks()               # rows the view must look at again
        self.diff_base: tuple[int, Any] = (0, None)   # (event id, selected flow's snapshot)
        self.version = 0                       # bumps on every change a view could show
        self._stops: list[Stop] = []           # stops not yet reported to the front end
        # Called with every ingested event, on the debugger's thread (the intervention
        # controller's verification loop listens here).
        self.observers: list[Callable[[events_pb2.Event], None]] = []

    # ---- state (the timeline's, as the commands and views read it) ----------------------

    engine = property(attrgetter("timeline.cursor"), doc="The engine at the cursor (what the view shows).")
    head_engine = property(attrgetter("timeline.head_engine"),
                           doc="The engine at the newest event: live truth for gates and interventions.")
    position = property(attrgetter("timeline.position"),
                        doc="Events ``[0, position)`` are folded into the cursor's engine.")
    following = property(attrgetter("timeline.following"), doc="The cursor is the live head.")
    log = property(attrgetter("timeline.log"))
    lost_gaps = property(attrgetter("timeline.lost_gaps"))
    checkpoints = property(attrgetter("timeline.checkpoints"))
    stored = property(attrgetter("timeline.stored"))
    engine_generation = property(attrgetter("timeline.generation"))
    _spare = property(attrgetter("timeline.spare"))

    store_writer = _timeline_attr("store_writer", "Writes the head's state into the recording (live).")
    spare_lag = _timeline_attr("spare_lag", "How far behind a paused cursor idle time prepares an engine.")

    @property
    def running(self) -> bool:
        return self.following or self.motion is not None

    @property
    def state(self) -> str:
        return "following" if self.following else ("running" if self.motion else "paused")

    def event_at_cursor(self) -> events_pb2.Event | None:
        return self.log.get(self.position - 1) if self.position else None

    def cursor_event_id(self) -> int:
        return self.log.event_id(self.position - 1) if self.position else 0

    # ---- ingestion -----------------------------------------------------------------------

    def ingest(self, max_events: int = 20000, timeout_s: float = 0.0) -> int:
        """Pull what the source has into the log (and the head engine, live). Returns the
        number of events taken."""
        read_raw = getattr(self.source, "read_with_raw", None)
        if read_raw is not None:
            events = read_raw(max_events, timeout_s)
        else:
            events = [(ev, None) for ev in self.source.read(max_events, timeout_s)]
        if not events:
            if not self.live and getattr(self.source, "exhausted", False) and not self.log.complete:
                self.log.complete = True
                self.version += 1
            return 0
        tl = self.timeline
        head = tl.head
        observers = self.observers
        append = self.log.append
        if head is None or (tl.cursor is head and not self.breakpoints.any_enabled):
            # Nothing to test between two events: a recording read ahead of the cursor is
            # stored, a live head the view follows folds the batch in one loop.
            tl.take_batch(events, observers)
            self.version += 1
            return len(events)
        for ev, raw in events:
            pos = append(ev, raw)
            for observe in observers:
                observe(ev)
            if ev.WhichOneof("body") == "lost":
                tl.note_lost(pos, ev)
            if head is None:
                continue
            following = tl.cursor is head
            changes = tl.feed_head(ev)
            if following:
                tl.position = pos + 1
                self.touched(changes)
                hit = self.breakpoints.check(ev, changes, pos + 1, head)
                if hit is not None:
                    self._freeze_head()
                    self._stopped(Stop("breakpoint", hit.text(), pos + 1, ev.id, hit.flow_id), hit)
            tl.head_passed(pos + 1)
        if head is not None:
            tl.head_batch_done(events[-1][0])
        self.version += 1
        return len(events)

    def _freeze_head(self) -> None:
        """Give the cursor its own copy of the head at the current position."""
        self.timeline.freeze()
        self.motion = None

    def add_intervention(self, rec: Any) -> None:
        """An intervention record the controller wrote (on the pump thread): the flow's
        intervention trace and the panel show it."""
        self.source.interventions.append(rec)
        self.version += 1

    def changed(self) -> None:
        """Something a view could show changed (a drop, a filter, a hole read)."""
        self.version += 1

    # ---- what the timeline tells the debugger -------------------------------------------

    def touched(self, changes: Sequence[Any]) -> None:
        """The changes folding an event at the cursor produced."""
        if self.selected is None:
            # Like a debugger's current frame, there is always a flow to talk about once
            # one exists: the first to emerge, until a breakpoint or 'flow N' picks another.
            for c in changes:
                if c.kind == "emerge" and c.flow_id:
                    self.selected = c.flow_id
                    break
        self.marks.note(changes, self.timeline.cursor, self.filter)

    def engine_switched(self, all_dirty: bool) -> None:
        """The cursor got another engine: every row is dirty unless it is a copy of the
        engine it had (``all_dirty`` false)."""
        if all_dirty:
            self.marks.all_changed()
        self.version += 1

    def say(self, text: str) -> None:
        self.message = text

    def restarted(self, text: str) -> None:
        """The recording is read again from its first event (its stored checkpoints lied)."""
        self.motion = None
        self.message = text
        self._stops.append(Stop("paused", text, 0, 0))

    def idle(self, budget_s: float = 0.03) -> bool:
        """Idle time for the timeline (spare engine, holes), unless a motion runs."""
        return self.motion is None and self.timeline.idle(budget_s)

    # ---- motions -----------------------------------------------------------------------

    def _begin(self, motion: Motion | None) -> None:
        sel = self.engine.flow(self.selected) if self.selected else None
        self.diff_base = (self.cursor_event_id(), sel)
        self.hit = None
        self.message = ""
        if self.following and (motion is None or motion.kind != "continue"):
            self._freeze_head()
        self.motion = motion
        self.version += 1

    def _stopped(self, stop: Stop, hit: Hit | None = None) -> Stop:
        self.motion = None
        self.hit = hit
        if hit is not None and hit.flow_id and self.engine.flow(hit.flow_id) is not None:
            # Like a debugger's current frame: the flow a breakpoint stopped on is the one
            # 'chain', 'step flow' and the panels talk about, until another is selected.
            self.selected = hit.flow_id
        self.message = stop.text
        self.version += 1
        self._stops.append(stop)
        return stop

    def _stop_here(self, kind: str, text: str) -> Stop:
        """End the motion at the cursor; ``text`` is followed by the cursor's event id."""
        eid = self.cursor_event_id()
        return self._stopped(Stop(kind, f"{text} #{eid}", self.position, eid))

    def take_stops(self) -> list[Stop]:
        """Stops since the last call, oldest first (a breakpoint can fire during ingest)."""
        stops, self._stops = self._stops, []
        return stops

    def run(self, budget_s: float = 0.05) -> Stop | None:
        """Advance the current motion for at most ``budget_s``. Returns the Stop when it
        ended, None while it goes on (or waits for events)."""
        m = self.motion
        if m is None or self.following:
            return None
        deadline = self.clock() + budget_s
        n = 0
        plain = m.kind == "goto" and m.until is None and m.stop_before is None and not m.breakpoints
        while True:
            if plain:
                limit = len(self.log) if m.target is None else min(m.target, len(self.log))
                if self.position < limit:
                    self.timeline.fold_to(limit, deadline)
                    if self.position < limit:
                        self.version += 1
                        return None
            pos = self.position
            if m.target is not None and pos >= m.target:
                return self._stop_here("goto", "at")
            if pos >= len(self.log):
                if self.live:
                    if m.kind == "continue":
                        self.timeline.follow()
                        self.motion = Motion("continue", "follow")
                        return None
                    return None                # a step waits for the next event
                if self.log.complete:
                    return self._stop_here("end", "end of recording at")
                return None                    # the next ingest reads further
            if m.stop_before is not None and m.stop_before(pos):
                return self._stop_here("goto", "at")
            ev, changes = self.timeline.fold()
            if m.breakpoints:
                hit = self.breakpoints.check(ev, changes, self.position, self.engine)
                if hit is not None:
                    return self._stopped(Stop("breakpoint", hit.text(), self.position, ev.id,
                                              hit.flow_id), hit)
            if m.until is not None and m.until(ev, changes, self.engine):
                m.count -= 1
                if m.count <= 0:
                    flow = next((c.flow_id for c in changes if c.flow_id), 0)
                    return self._stopped(Stop("step", f"stepped to #{ev.id}", self.position,
                                              ev.id, flow))
            n += 1
            if n & 127 == 0 and self.clock() >= deadline:
                self.version += 1
                return None

    def settle(self, max_s: float = 60.0, ingest: bool = True) -> Stop | None:
        """Drive the current motion to its end (synchronous callers: tests, scripts)."""
        deadline = time.monotonic() + max_s
        stop = None
        while self.motion is not None and not self.following and time.monotonic() < deadline:
            stop = self.run(0.5)
            if stop is not None:
                return stop
            if self.motion is None:
                break
            if ingest and self.position >= len(self.log):
                got = self.ingest(50000, timeout_s=0.05 if self.live else 0.0)
                if got == 0 and self.live:
                    return None                # waiting for the kernel: leave it running
        return stop

    # ---- commands the language maps onto ---------------------------------------------

    def pause(self) -> Stop:
        if self.following:
            self._freeze_head()
        self.motion = None
        return self._stop_here("paused", "paused at")

    def cont(self) -> None:
        self._begin(Motion("continue", "continue"))

    def matching_flows(self) -> set[int]:
        """The flows the filter shows at the cursor."""
        return self.marks.shown(self.engine, self.filter)

    def step(self, count: int = 1, what: str = "event") -> None:
        pred, label = step_predicate(self, what)
        self._begin(Motion("step", label, until=pred, count=max(1, count)))

    def back(self, count: int = 1, what: str = "event") -> Stop:
        """Step backwards: ``count`` events, or to the previous event of the selected flow,
        lifecycle transition or breakpoint hit (``what``)."""
        self._begin(None)
        if what == "event" and not self.filter:
            target = max(0, self.position - max(1, count))
        else:
            pred = breakpoint_predicate(self) if what == "breakpoint" else step_predicate(self, what)[0]
            target = self.timeline.search_back(pred, self.position, count)
            if target == self.position:
                return self._stop_here("back", "nothing earlier matches; still at")
        self.timeline.restore_to(target)
        return self._stop_here("back", "back at")

    def goto_position(self, target: int) -> None:
        """Jump (no breakpoints) so that ``target`` events are folded."""
        target = max(0, target)
        if target <= len(self.log) and target < self.position or (
                target == self.position):
            self._begin(None)
            self.timeline.restore_to(target)
            self._stop_here("goto", "at")
            return
        if self.live and target > len(self.log):
            raise UsageError(f"position {target} is beyond the newest event ({len(self.log)})")
        self._begin(Motion("goto", f"goto {target}", breakpoints=False, target=target))
        self.timeline.leap(target)

    def goto_event(self, event_id: int) -> None:
        i = self.log.position_at_or_after_id(event_id)
        if i < len(self.log):
            return self.goto_position(i + 1)
        if self.live or self.log.complete:
            newest = self.log.event_id(len(self.log) - 1) if len(self.log) else 0
            raise UsageError(f"no event #{event_id} (the newest is #{newest})")
        # Not read yet: walk forward until the event is folded.
        self._begin(Motion("goto", f"goto #{event_id}", breakpoints=False,
                           stop_before=lambda pos: pos > 0 and self.log.event_id(pos - 1) >= event_id))
        self.timeline.leap(event_id=event_id)

    def goto_ktime(self, ktime_ns: int) -> None:
        if len(self.log) and (ktime_ns <= self.log.last_ktime or self.live or self.log.complete):
            pos = self.log.position_at_ktime(ktime_ns)
            if self.log.ktime(pos) <= ktime_ns:
                pos += 1
            return self.goto_position(pos)
        self._begin(Motion("goto", f"goto @{ktime_ns}", breakpoints=False,
                           stop_before=lambda pos: self.log.ktime(pos) > ktime_ns))
        self.timeline.leap(ktime_ns=ktime_ns)

    def goto_end(self) -> None:
        if self.live:
            return self.goto_position(len(self.log))
        self._begin(Motion("goto", "goto end", breakpoints=False, target=None))
        # A goto without a target runs to the end of the recording ("end" stop).
        self.timeline.leap()

    def select(self, flow_id: int) -> Any:
        snap = self.engine.flow(flow_id)
        if snap is None:
            raise UsageError(f"no flow {flow_id} at #{self.cursor_event_id()}")
        self.selected = flow_id
        self.diff_base = (self.cursor_event_id(), snap)
        self.version += 1
        return snap

    def set_filter(self, flt: FlowFilter) -> None:
        self.filter = flt
        self.version += 1
        self.marks.all_changed()
