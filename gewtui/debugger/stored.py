"""Engine checkpoints stored in recordings: how a replay jumps, how a live session leaves them.

Place in the pipeline: the debugger's timeline (gewtui.debugger.timeline) asks
``StoredCheckpoints`` before a forward jump on a recording whether a checkpoint stored in the file lies between
the cursor and the target. If so the cursor's engine is restored from it (gewtui.model.persist)
and only the events after it are folded; the events skipped become a hole in the event log
(gewtui.debugger.store), read from the file when something needs them or when the operator
is idle. Stored states enter the timeline's checkpoint table as ``Stored`` entries, loaded
the first time they are restored, so ``back`` and ``goto`` use them like any other.

A stored state is used only when it was written by this host's gew (its HMAC checks under
the root-only key of gewtui.model.state_key: without root, or for a recording from
elsewhere, every stored state is ignored and the events are folded) and it is exactly what
folding the file would give here: made by this model layout (``persist.MODEL_ID``), with
this template set (by digest), this engine configuration and session id. Otherwise, or when
it does not load, it is ignored with a message and the debugger folds, as it would
without it: a stored state can make a replay faster, never change what it concludes.

On a live session ``StoreWriter`` writes them into the session's recording from the head
engine, at the end of an ingested batch (so the count of events before it in the file is
the head's position), never more often than every ``min_events`` events, and otherwise when
its cost stays within ``max_share`` of the head's folding time since the last one, or at the
latest after ``max_events`` events (that bounds what a jump folds: on a saturated session
with a large state the share can then exceed ``max_share``; the bench states it). A head
engine that has taken interventions stores none: its state is no longer a function of the
recorded events alone.
"""
from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from typing import Any

from gewtui.errors import GewError, RecordingError

# Below this many events, folding on from the cursor is cheaper than loading a state.
LEAP_MIN = 20_000
# Idle time refolds stretches this long without a checkpoint (see densify).
DENSE_GAP = 30_000


class Stored:
    """A checkpoint-table entry whose state is still in the recording."""

    __slots__ = ("ref", "cp")

    def __init__(self, ref: Any) -> None:
        self.ref = ref
        self.cp: Any = None


class StoredCheckpoints:
    """The stored checkpoints of the recording a timeline (gewtui.debugger.timeline) walks;
    it moves the timeline's cursor through the timeline's own API."""

    def __init__(self, timeline: Any) -> None:
        self.tl = timeline
        self._refs: list | None = None
        self._probe: Any = None
        self.ignored = ""
        self.used = False       # a stored state was restored (see Timeline.fold_to)
        self.leap_min = LEAP_MIN
        self.dense_gap = DENSE_GAP
        self._dense: list | None = None    # idle job: [engine, position, end, feed s, last cost]

    def refs(self) -> list:
        """The usable stored checkpoints of a replayed recording, by position (found and
        entered into the checkpoint table on first use)."""
        if self._refs is not None:
            return self._refs
        self._refs = []
        tl = self.tl
        find = getattr(tl.host.source, "checkpoints", None)
        if tl.host.live or find is None:
            return self._refs
        from gewtui.model.engine import Engine
        from gewtui.model import persist

        probe = tl.new_engine()
        if type(probe) is not Engine:
            return self._refs           # an injected engine (tests): states are not its own
        self._probe = probe.checkpoint()
        from gewtui.model import state_key

        try:
            state_key.state_key()
        except GewError as e:
            # No key here (not root, or no state ever written on this host): no stored
            # state can be authenticated, so none is even looked for.
            self._ignore(f"stored checkpoints ignored, folding the events: {e.message}")
            return self._refs
        try:
            refs = find()
        except RecordingError as e:
            self._ignore(f"stored checkpoints not read: {e.message}")
            return self._refs
        digest = persist.template_digest(probe.templates)
        usable = [r for r in refs if r.model == persist.MODEL_ID and r.templates == digest]
        if len(usable) < len(refs):
            self._ignore(f"{len(refs) - len(usable)} stored checkpoint(s) made by another "
                         "build or template set: ignored")
        self._refs = usable
        for r in usable:
            if r.events > 0:
                tl.checkpoints.seed(r.events, Stored(r))
        return self._refs

    def _ignore(self, text: str) -> None:
        self.ignored = text
        self.tl.host.say(text)

    def load(self, entry: Stored) -> Any:
        """The Checkpoint of a stored entry (read and checked once). Raises GewError."""
        if entry.cp is None:
            from gewtui.model import persist

            p = self._probe
            data = self.tl.host.source.load_checkpoint(entry.ref)
            cp = persist.loads(data, p.templates, config=p.config, session_id=p.session_id)
            if cp.event_index != entry.ref.events or cp.event_id != entry.ref.last_event_id:
                raise persist.StateError("engine state: not at the position its record names")
            entry.cp = cp
            self.used = True
        return entry.cp

    def forget(self, position: int, why: str) -> None:
        self.tl.checkpoints.drop(position)
        self._refs = [r for r in self._refs or () if r.events != position]
        self._ignore(f"stored checkpoint at position {position} ignored: {why}")

    # ---- jumping ------------------------------------------------------------------------------

    def leap(self, target: int | None = None, event_id: int | None = None,
             ktime_ns: int | None = None) -> None:
        """Before a forward jump on a recording: put the cursor on the stored checkpoint
        nearest below the target when it is far enough ahead of the cursor."""
        tl = self.tl
        ref = self.best(target, event_id, ktime_ns)
        if ref is None:
            return
        cp = tl.checkpoints.nearest(ref.events)
        if cp is None or type(cp[1]) is not Stored or cp[0] != ref.events:
            return
        try:
            state = self.load(cp[1])
            engine = tl.restore(state)
        except GewError as e:
            self.forget(ref.events, e.message)
            return
        except Exception as e:   # a state that loaded but cannot be restored: never trusted
            self.forget(ref.events, f"cannot be restored ({type(e).__name__})")
            return
        self.reach(ref)
        tl.jump(engine, ref.events)

    def fill_one(self) -> bool:
        """Idle work after a jump: read one stretch of events the jump skipped, the one
        nearest below the cursor first (where 'back' goes). False: nothing to read."""
        tl = self.tl
        holes = tl.log.holes
        if not holes:
            return False
        below = [h for h in holes if h.start < tl.position]
        tl.log.fill(below[-1] if below else holes[0])     # a lie: see Timeline.idle
        tl.host.changed()
        return True

    def densify(self, budget_s: float) -> bool:
        """Idle work after the holes are read: fold the stretches a jump skipped (or a
        long jump crossed sparsely) once more, leaving checkpoints in them at the normal
        spacing, so a later goto or back there is as quick as anywhere. False: none left."""
        tl = self.tl
        job = self._dense
        if job is None:
            gap = tl.checkpoints.first_gap(min(len(tl.log), tl.frontier), self.dense_gap)
            if gap is None or tl.log.holes:
                return False
            engine, pos = tl.engine_at(gap[0])
            self._dense = [engine, pos, gap[1], 0.0, 0.0]
            return True
        engine, pos, end, feed_s, last_cost = job
        p = tl.checkpoints.policy
        get = tl.log.get
        perf = time.perf_counter
        deadline = perf() + budget_s
        t = perf()
        n = 0
        while pos < end:
            engine.feed(get(pos))
            pos += 1
            n += 1
            if n & 127 == 0:
                now = perf()
                feed_s += now - t
                t = now
                if feed_s >= max(p.budget_s, p.overhead_ratio * last_cost) and end - pos > p.min_events:
                    tl.checkpoints.seed(pos, engine.checkpoint())
                    last_cost, feed_s, t = perf() - now, 0.0, perf()
                if t >= deadline:
                    break
        job[1:] = [pos, end, feed_s, last_cost]
        if pos >= end:
            self._dense = None
        return True

    def distrust(self, why: str) -> None:
        """The recording's stored checkpoints do not match its events: forget them and
        everything taken from them, and read the file again from its first event."""
        tl = self.tl
        self._refs = []
        self.used = False
        tl.reset()
        source = tl.host.source
        source.seek(source.reader.data_start)
        tl.set_cursor(tl.new_engine(), 0)
        tl.host.restarted(f"{why}; stored checkpoints ignored, reading from the first event")

    def best(self, target: int | None = None, event_id: int | None = None,
             ktime_ns: int | None = None) -> Any:
        """The stored checkpoint nearest below a forward target (a position, an event id not
        read yet, a time; none of them: the end), if it is worth a jump from the cursor."""
        refs = self.refs()
        if not refs:
            return None
        best = None
        for r in refs:
            if target is not None and r.events > target:
                break
            if event_id is not None and r.last_event_id >= event_id:
                break
            if ktime_ns is not None and r.last_ktime_ns > ktime_ns:
                break
            best = r
        if best is None or best.events < self.tl.position + self.leap_min:
            return None
        return best

    def reach(self, ref: Any) -> None:
        """Make the log reach ``ref``'s position: what was not read becomes holes (split at
        the stored checkpoints in between, each read on its own), and reading goes on after it."""
        log = self.tl.log
        source = self.tl.host.source
        if len(log) >= ref.events:
            return
        where = source.tell()
        for r in self._refs or ():
            if len(log) < r.events <= ref.events:
                # The hole's events lie between ``where`` and the checkpoint (in the stream)
                # or the frame it resumes at (appended): an event beyond that means it lies.
                bound = min(r.offset, r.resume_offset)
                log.add_hole(r.events, r.last_event_id, r.last_ktime_ns, r.last_event,
                             (where, bound), first_ktime=r.first_ktime_ns)
                where = r.resume_offset
        source.seek(ref.resume_offset)
        log.complete = False

    def load_hole(self, h: Any) -> list:
        """The log's loader: the events of hole ``h`` from the file (lost-record gaps noted)."""
        source = self.tl.host.source
        start, bound = h.where
        n = h.end - h.start
        pairs, _ = source.read_at(start, n + 1, stop=bound)
        if len(pairs) != n or pairs[-1][0].id != h.hi_id:
            raise RecordingError(
                f"{getattr(source, 'path', 'recording')}: the stored checkpoint at position "
                f"{h.end} does not match the events before it (GEW_IGNORE_CHECKPOINTS=1 "
                "replays without them)")
        for i, (ev, _) in enumerate(pairs):
            if ev.WhichOneof("body") == "lost":
                self.tl.note_lost(h.start + i, ev)
        return pairs


@dataclass
class StorePolicy:
    min_events: int = 50_000
    max_share: float = 0.1        # of the head engine's folding time...
    max_events: int = 150_000     # ...unless this many events passed since the last one


class StoreWriter:
    """Writes the head engine's state into a live session's recording (see the docstring)."""

    def __init__(self, policy: StorePolicy | None = None) -> None:
        self.policy = policy or StorePolicy()
        self.events = 0          # folded since the last one
        self.feed_s = 0.0
        self.last_cost_s = 0.0
        self.written = 0
        self.prev_offset = 0
        self.cost_s = 0.0        # all of them
        self.disabled = ""

    def due(self) -> bool:
        p = self.policy
        return (not self.disabled and self.events >= p.min_events
                and (self.feed_s * p.max_share >= self.last_cost_s or self.events >= p.max_events))

    def write(self, source: Any, head: Any, position: int, last_event: Any, first_ktime: int) -> bool:
        """Store the head's state at ``position`` (the end of an ingested batch)."""
        store = getattr(source, "store_checkpoint", None)
        if store is None:
            self.disabled = "the source keeps no recording"
            return False
        from gewtui.model import persist
        from gewtui.model.engine import Engine

        t0 = time.perf_counter()
        self.events = 0
        self.feed_s = 0.0
        if type(head) is not Engine:
            self.disabled = "the head engine is not the observation engine"
            return False
        if last_event is None or last_event.id != position:
            # Live sessions number their events from 1 with no gap; otherwise this engine
            # did not see every recorded event and its position would lie.
            self.disabled = "the head engine did not fold every recorded event"
            return False
        view = persist.engine_view(head)
        if view.interventions:
            self.disabled = "interventions were taken: the state is no longer the events' alone"
            return False
        try:
            state = persist.dumps(view)
        except GewError as e:
            self.disabled = e.message
            return False
        try:
            off = store(state, events=position, last_event=last_event, first_ktime_ns=first_ktime,
                        model=persist.MODEL_ID, templates=persist.template_digest(view.templates),
                        prev_offset=self.prev_offset)
        except RecordingError as e:
            self.disabled = e.message
            return False
        if off is None:
            self.disabled = "the session records nothing"
            return False
        self.prev_offset = off
        self.written += 1
        self.last_cost_s = time.perf_counter() - t0
        self.cost_s += self.last_cost_s
        return True


def insort_gap(gaps: list, gap: Any) -> None:
    """Keep lost-record gaps in position order when a hole is read after later events."""
    bisect.insort(gaps, gap, key=lambda g: g.position)
