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
- **checkpoints** are taken by whichever engine first passes a position (the head, or a
  replay cursor at its frontier), by the time-and-overhead policy in
  gewtui.debugger.checkpoints. ``back``, ``goto`` backwards and reverse searches restore the
  nearest checkpoint and replay forward, so their cost is bounded by the checkpoint spacing,
  not by the length of the session.
- **stored checkpoints**: a recording may hold engine states (written by the live session's
  head engine, or by ``gew recording index``); a forward jump on a recording starts from
  the one nearest below its target and leaves the events it skipped as a hole in the log,
  read when needed (gewtui.debugger.stored).
- **motions** (step, continue, goto forward) advance in slices (``run(budget_s)``), so a
  front end's pump can interleave ingestion and rendering and a ``pause`` can interrupt them.
  A motion that needs events not read yet simply waits for the next ingest.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from gewtui.debugger.attribution import last_event_id, touches
from gewtui.debugger.breakpoints import BreakpointTable, Hit
from gewtui.debugger.checkpoints import CheckpointPolicy, Checkpoints
from gewtui.debugger.filters import FlowFilter
from gewtui.debugger.folding import fold_to
from gewtui.debugger.store import EventLog
from gewtui.debugger.stored import Stored, StoredCheckpoints, StoreWriter, insort_gap
from gewtui.debugger.view import Stop
from gewtui.errors import GewError, UsageError
from gewtui.pb import events_pb2

# Change kinds that count as lifecycle transitions for ``step transition``.
TRANSITION_KINDS = frozenset({"emerge", "diverge", "terminate", "tcp-state", "path"})
# Events that concern the whole session; a flow filter never hides them.
SESSION_BODIES = frozenset({"lost", "scope_change", "mark"})

# (event, the changes folding it produced, the engine that folded it) -> stop here?
Predicate = Callable[[events_pb2.Event, Sequence[Any], Any], bool]


@dataclass
class Motion:
    kind: str                              # continue | step | goto
    label: str
    until: Predicate | None = None         # stop after folding an event that satisfies it
    count: int = 1                         # ... this many times
    breakpoints: bool = True
    target: int | None = None              # goto: stop at this position
    stop_before: Callable[[int], bool] | None = None  # goto: stop before folding log[pos]


@dataclass
class LostGap:
    position: int
    event_id: int
    count: int
    start_ns: int
    end_ns: int


class Debugger:
    """One session's cursor, breakpoints and filters. Not thread-safe: one thread drives it
    (gewtui.debugger.runner)."""

    def __init__(self, source: Any, *, engine_factory: Callable[[], Any] | None = None,
                 engine_restore: Callable[[Any], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 gate: Callable[[Any], Any] | None = None,
                 intervention: Any = None,
                 policy: CheckpointPolicy | None = None) -> None:
        if engine_factory is None or engine_restore is None:
            from gewtui.model.engine import Engine   # the real engine unless a test injects one
            sid = source.info().session_id
            engine_factory = engine_factory or (lambda: Engine(session_id=sid))
            engine_restore = engine_restore or Engine.restore
        self.source = source
        self.live: bool = bool(getattr(source, "live", False))
        self.clock = clock
        self.gate = gate                       # (debugger, flow id) -> GateView (injected)
        self.intervention = intervention       # the drop controller (injected, live only)
        self.log = EventLog()
        self.checkpoints = Checkpoints(policy)
        self.stored = StoredCheckpoints(self)
        self.log.loader = self.stored.load_hole
        # A live session's head engine leaves its state in the recording now and then.
        self.store_writer = StoreWriter() if self.live else None
        self.breakpoints = BreakpointTable()
        self.filter = FlowFilter()
        self._new_engine = engine_factory
        self._restore = engine_restore
        self._head = engine_factory() if self.live else None
        self._cur = self._head if self.live else engine_factory()
        self.position = 0
        self._frontier = 0                     # replay: the furthest position ever folded
        self.motion: Motion | None = Motion("continue", "follow") if self.live else None
        self.selected: int | None = None
        self.hit: Hit | None = None
        self.message = ""
        self.lost_gaps: list[LostGap] = []
        self.engine_generation = 0             # bumps when the cursor gets another engine
        self.dirty: set[int] | None = None     # flows changed since the view last looked
        self._matching: set[int] | None = None  # flows the filter shows (None: recompute)
        self.diff_base: tuple[int, Any] = (0, None)   # (event id, selected flow's snapshot)
        self.version = 0                       # bumps on every change a view could show
        self._stops: list[Stop] = []           # stops not yet reported to the front end
        # Called with every ingested event, on the debugger's thread (the intervention
        # controller's verification loop listens here).
        self.observers: list[Callable[[events_pb2.Event], None]] = []
        # A spare engine trailing a paused cursor (see idle()); never the cursor's own.
        self._spare: tuple[Any, int] | None = None
        self._spare_job: list | None = None
        self.spare_lag = 2048

    # ---- state -------------------------------------------------------------------------

    @property
    def engine(self) -> Any:
        """The engine at the cursor (what the view shows)."""
        return self._cur

    @property
    def head_engine(self) -> Any:
        """The engine at the newest event: live truth for gates and interventions."""
        return self._head if self._head is not None else self._cur

    @property
    def following(self) -> bool:
        return self._head is not None and self._cur is self._head

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
        head = self._head
        perf = time.perf_counter
        observers = self.observers
        append = self.log.append
        if head is None and not observers:
            # A recording read ahead of the cursor: only stored (no re-encode). A lost
            # record carries Event field 22 (tag bytes B2 01): only those are looked at.
            first = self.log.extend(events)
            for i, (ev, raw) in enumerate(events):
                if (raw is None or b"\xb2\x01" in raw) and ev.WhichOneof("body") == "lost":
                    self.note_lost(first + i, ev)
            self.version += 1
            return len(events)
        store = self.store_writer
        for ev, raw in events:
            pos = append(ev, raw)
            for observe in observers:
                observe(ev)
            if ev.WhichOneof("body") == "lost":
                self.note_lost(pos, ev)
            if head is None:
                continue
            following = self._cur is head
            t0 = perf()
            changes = head.feed(ev)
            dt = perf() - t0
            self.checkpoints.account(1, dt)
            if store is not None:
                store.events += 1
                store.feed_s += dt
            if following:
                self.position = pos + 1
                self._touch(changes)
                hit = self.breakpoints.check(ev, changes, pos + 1, head)
                if hit is not None:
                    self._freeze_head()
                    self._stopped(Stop("breakpoint", hit.text(), pos + 1, ev.id, hit.flow_id), hit)
            if self.checkpoints.due():
                self._checkpoint(head, pos + 1)
        if store is not None and head is not None and store.due():
            # At the end of a batch: every event before this point is in the recording.
            store.write(self.source, head, len(self.log), events[-1][0], self.log.first_ktime)
        self.version += 1
        return len(events)

    def note_lost(self, pos: int, ev: events_pb2.Event) -> None:
        lo = ev.lost
        gap = LostGap(pos + 1, ev.id, lo.count, lo.window_start_ns or ev.ktime_ns,
                      lo.window_end_ns or ev.ktime_ns)
        if self.lost_gaps and self.lost_gaps[-1].position > gap.position:
            insort_gap(self.lost_gaps, gap)      # read from a hole, after later events
        else:
            self.lost_gaps.append(gap)

    def _checkpoint(self, engine: Any, position: int) -> Any:
        t0 = time.perf_counter()
        state = engine.checkpoint()
        self.checkpoints.add(position, state, time.perf_counter() - t0)
        return state

    def _freeze_head(self) -> None:
        """Give the cursor its own copy of the head at the current position."""
        state = self._checkpoint(self._head, self.position)
        self._set_engine(self._restore(state), self.position, all_dirty=False)
        self.motion = None

    # ---- folding -----------------------------------------------------------------------

    def _touch(self, changes: Sequence[Any]) -> None:
        if self.selected is None:
            # Like a debugger's current frame, there is always a flow to talk about once
            # one exists: the first to emerge, until a breakpoint or 'flow N' picks another.
            for c in changes:
                if c.kind == "emerge" and c.flow_id:
                    self.selected = c.flow_id
                    break
        if self.dirty is not None:
            for c in changes:
                if c.flow_id:
                    self.dirty.add(c.flow_id)
        if self.filter and self._matching is not None:
            # Whether a flow matches changes only with a change to it (phase, template,
            # path, members), so re-testing the flows a change names keeps the set exact.
            for fid in {c.flow_id for c in changes if c.flow_id}:
                snap = self._cur.flow(fid)
                if snap is not None and self.filter.matches(snap):
                    self._matching.add(fid)
                else:
                    self._matching.discard(fid)

    def _set_engine(self, engine: Any, position: int, all_dirty: bool = True) -> None:
        self._cur = engine
        self.position = position
        self.engine_generation += 1
        if all_dirty:
            self.dirty = None
            self._matching = None
        self.version += 1

    def _fold(self) -> tuple[events_pb2.Event, Sequence[Any]]:
        pos = self.position
        ev = self.log.get(pos)
        if self._head is None and pos >= self._frontier:
            t0 = time.perf_counter()
            changes = self._cur.feed(ev)
            self.checkpoints.account(1, time.perf_counter() - t0)
            self.position = self._frontier = pos + 1
            if self.checkpoints.due():
                self._checkpoint(self._cur, self.position)
        else:
            changes = self._cur.feed(ev)
            self.position = pos + 1
        self._touch(changes)
        return ev, changes

    def _engine_from(self, position: int) -> tuple[Any, int]:
        """A new engine restored from the nearest checkpoint at or before ``position`` (a
        stored one is read on first use; one that does not load is forgotten), and its
        position."""
        while True:
            cp = self.checkpoints.nearest(position)
            if cp is None:
                return self._new_engine(), 0
            pos, state = cp
            if type(state) is Stored:
                try:
                    return self._restore(self.stored.load(state)), pos
                except GewError as e:
                    self.stored.forget(pos, e.message)
                except Exception as e:   # loaded, but cannot be restored: never trusted
                    self.stored.forget(pos, f"cannot be restored ({type(e).__name__})")
                continue
            return self._restore(state), pos

    def _restore_to(self, target: int) -> None:
        """Put the cursor at ``target`` (<= known events): from where it is when that is
        closest, else from the spare engine trailing the cursor, else from the nearest
        checkpoint. Never folds the head."""
        cp_pos = (self.checkpoints.nearest(target) or (0, None))[0]
        here = not self.following and cp_pos <= self.position <= target
        spare = self._spare
        if spare is not None and cp_pos <= spare[1] <= target and (not here or spare[1] > self.position):
            self._spare = None
            self._set_engine(spare[0], spare[1])
        elif not here:
            engine, cp_pos = self._engine_from(target)
            self._set_engine(engine, cp_pos)
        while self.position < target:
            self._fold()
        self.version += 1

    def idle(self, budget_s: float = 0.03) -> bool:
        try:
            return self._idle(budget_s)
        except GewError as e:
            if not self.log.holes and not self.stored.refs():
                raise
            # Reading a stretch a stored checkpoint skipped showed the file lies about it.
            self.stored.distrust(e.message)
            return True

    def _idle(self, budget_s: float) -> bool:
        """Use idle time (a paused cursor, an operator reading) to prepare a spare engine a
        few thousand events behind the cursor, so the next ``back`` folds a short stretch
        instead of restoring a checkpoint (whose cost grows with the engine's state) and
        replaying up to a checkpoint interval. Returns whether it did any work."""
        if self.motion is not None or self.following:
            return False
        want = max(0, self.position - self.spare_lag)
        spare = self._spare
        if self.position == 0 or (spare is not None and want - self.spare_lag <= spare[1] <= want):
            return self._fill_a_hole() or self.stored.densify(budget_s)
        job = self._spare_job
        cp_pos = (self.checkpoints.nearest(want) or (0, None))[0]
        if job is None or not cp_pos <= job[1] <= want:
            # No job, or the cursor moved so that a checkpoint is a better start.
            engine, cp_pos = self._engine_from(want)
            job = self._spare_job = [engine, cp_pos]
            return True
        engine, pos = job
        deadline = time.perf_counter() + budget_s
        while pos < want:
            engine.feed(self.log.get(pos))
            pos += 1
            if pos & 255 == 0 and time.perf_counter() >= deadline:
                break
        job[1] = pos
        if pos >= want:
            self._spare, self._spare_job = (engine, pos), None
        return True

    def _fill_a_hole(self) -> bool:
        return self.stored.fill_one()

    def _leap(self, target: int | None = None, event_id: int | None = None,
              ktime_ns: int | None = None) -> None:
        if not self.live:
            self.stored.leap(target, event_id, ktime_ns)

    def _fold_to(self, limit: int, deadline: float) -> None:
        fold_to(self, limit, deadline)

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
        if hit is not None and hit.flow_id and self._cur.flow(hit.flow_id) is not None:
            # Like a debugger's current frame: the flow a breakpoint stopped on is the one
            # 'chain', 'step flow' and the panels talk about, until another is selected.
            self.selected = hit.flow_id
        self.message = stop.text
        self.version += 1
        self._stops.append(stop)
        return stop

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
                    self._fold_to(limit, deadline)
                    if self.position < limit:
                        self.version += 1
                        return None
            pos = self.position
            if m.target is not None and pos >= m.target:
                return self._stopped(Stop("goto", f"at #{self.cursor_event_id()}", pos,
                                          self.cursor_event_id()))
            if pos >= len(self.log):
                if self.live:
                    if m.kind == "continue":
                        self._set_engine(self._head, len(self.log), all_dirty=True)
                        self.motion = Motion("continue", "follow")
                        return None
                    return None                # a step waits for the next event
                if self.log.complete:
                    return self._stopped(Stop("end", f"end of recording at #{self.cursor_event_id()}",
                                              pos, self.cursor_event_id()))
                return None                    # the next ingest reads further
            if m.stop_before is not None and m.stop_before(pos):
                return self._stopped(Stop("goto", f"at #{self.cursor_event_id()}", pos,
                                          self.cursor_event_id()))
            ev, changes = self._fold()
            if m.breakpoints:
                hit = self.breakpoints.check(ev, changes, self.position, self._cur)
                if hit is not None:
                    return self._stopped(Stop("breakpoint", hit.text(), self.position, ev.id,
                                              hit.flow_id), hit)
            if m.until is not None and m.until(ev, changes, self._cur):
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
                if got == 0 and (self.live or self.log.complete):
                    if self.live:
                        return None            # waiting for the kernel: leave it running
        return stop

    # ---- commands the language maps onto ---------------------------------------------

    def pause(self) -> Stop:
        if self.following:
            self._freeze_head()
        self.motion = None
        return self._stopped(Stop("paused", f"paused at #{self.cursor_event_id()}",
                                  self.position, self.cursor_event_id()))

    def cont(self) -> None:
        self._begin(Motion("continue", "continue"))

    def matching_flows(self) -> set[int]:
        """The flows the filter shows at the cursor."""
        if self._matching is None:
            self._matching = {f.flow_id for f in self._cur.flows() if self.filter.matches(f)}
        return self._matching

    def _visible(self, ev: events_pb2.Event, changes: Sequence[Any], engine: Any) -> bool:
        if not self.filter:
            return True
        if ev.WhichOneof("body") in SESSION_BODIES:
            return True
        shown = self.matching_flows()
        if any(c.flow_id in shown for c in changes):
            return True
        return any(last_event_id(engine, fid) == ev.id for fid in shown)

    def _step_predicate(self, what: str) -> tuple[Predicate, str]:
        if what == "flow":
            if not self.selected:
                raise UsageError("no flow selected: 'flow N' selects one")
            fid = self.selected
            return (lambda ev, ch, eng: touches(eng, ev, ch, fid)), f"next event of flow {fid}"
        if what == "transition":
            return (lambda ev, ch, eng: any(c.kind in TRANSITION_KINDS
                                            and self._visible(ev, [c], eng) for c in ch)), \
                "next lifecycle transition"
        return self._visible, "next event"

    def step(self, count: int = 1, what: str = "event") -> None:
        pred, label = self._step_predicate(what)
        self._begin(Motion("step", label, until=pred, count=max(1, count)))

    def back(self, count: int = 1, what: str = "event") -> Stop:
        """Step backwards: ``count`` events, or to the previous event of the selected flow,
        lifecycle transition or breakpoint hit (``what``)."""
        self._begin(None)
        if what == "event" and not self.filter:
            target = max(0, self.position - max(1, count))
        else:
            if what == "breakpoint":
                table = self.breakpoints
                pred: Predicate = lambda ev, ch, eng: table.check(ev, ch, 0, eng, count=False) is not None
            else:
                pred = self._step_predicate(what)[0]
            target = self.position
            for _ in range(max(1, count)):
                found = self._reverse_find(pred, target)
                if found is None:
                    break
                target = found
            if target == self.position:
                return self._stopped(Stop("back", f"nothing earlier matches; still at "
                                          f"#{self.cursor_event_id()}", self.position,
                                          self.cursor_event_id()))
        self._restore_to(target)
        return self._stopped(Stop("back", f"back at #{self.cursor_event_id()}", self.position,
                                  self.cursor_event_id()))

    def _reverse_find(self, pred: Predicate, before: int) -> int | None:
        """The largest position q < ``before`` whose event (log[q-1]) satisfies ``pred``,
        searched one checkpoint segment at a time, newest segment first."""
        hi = before - 1
        while hi >= 1:
            engine, lo = self._engine_from(hi - 1)
            found = None
            for idx in range(lo, hi):
                ev = self.log.get(idx)
                if pred(ev, engine.feed(ev), engine):
                    found = idx + 1
            if found is not None:
                return found
            hi = lo
        return None

    def goto_position(self, target: int) -> None:
        """Jump (no breakpoints) so that ``target`` events are folded."""
        target = max(0, target)
        if target <= len(self.log) and target < self.position or (
                target == self.position):
            self._begin(None)
            self._restore_to(target)
            self._stopped(Stop("goto", f"at #{self.cursor_event_id()}", self.position,
                               self.cursor_event_id()))
            return
        if self.live and target > len(self.log):
            raise UsageError(f"position {target} is beyond the newest event ({len(self.log)})")
        self._begin(Motion("goto", f"goto {target}", breakpoints=False, target=target))
        self._leap(target)

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
        self._leap(event_id=event_id)

    def goto_ktime(self, ktime_ns: int) -> None:
        if len(self.log) and (ktime_ns <= self.log.last_ktime or self.live or self.log.complete):
            pos = self.log.position_at_ktime(ktime_ns)
            if self.log.ktime(pos) <= ktime_ns:
                pos += 1
            return self.goto_position(pos)
        self._begin(Motion("goto", f"goto @{ktime_ns}", breakpoints=False,
                           stop_before=lambda pos: self.log.ktime(pos) > ktime_ns))
        self._leap(ktime_ns=ktime_ns)

    def goto_end(self) -> None:
        if self.live:
            return self.goto_position(len(self.log))
        self._begin(Motion("goto", "goto end", breakpoints=False, target=None))
        # A goto without a target runs to the end of the recording ("end" stop).
        self._leap()

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
        self.dirty = None
        self._matching = None
