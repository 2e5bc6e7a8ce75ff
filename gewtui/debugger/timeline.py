"""The timeline of one session: which engine stands where along its event log.

Place in the pipeline: the debugger core (gewtui.debugger.core) owns one ``Timeline`` and
asks it to move the cursor; the motions, breakpoints and selection stay in the core. The
timeline owns the event log, the engines and the checkpoints:

- the **cursor** engine, after ``position`` events ``[0, position)`` were folded (what the
  view shows);
- the **head** engine (live only), folding every event as it arrives; while the view follows
  the head, the cursor *is* the head (one fold per event, no copy), and ``freeze`` gives the
  cursor its own copy;
- the **frontier** (replay): the furthest position ever folded; whoever passes it takes
  checkpoints, by the time-and-overhead policy of gewtui.debugger.checkpoints;
- the **spare** engine, prepared at idle time a few thousand events behind a paused cursor,
  so the next ``back`` folds a short stretch instead of restoring a checkpoint;
- the **checkpoints** and the **stored checkpoints** of a recording (gewtui.debugger.stored).

Its API: ``fold`` (one event at the cursor), ``fold_to`` (a goto's inner loop, the policy
applied in blocks), ``restore_to`` (put the cursor anywhere already read), ``engine_at`` (a
fresh engine from the nearest checkpoint), ``idle`` (spare engine, holes, densifying).

The debugger is the timeline's host: the timeline tells it what changed (``touched``: the
changes a fold produced; ``engine_switched``: the cursor got another engine; ``restarted``:
the file was read again from its first event) and reads the source and the running motion
from it; nothing else.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from gewtui.debugger.checkpoints import CheckpointPolicy, Checkpoints
from gewtui.debugger.store import EventLog
from gewtui.debugger.stored import Stored, StoredCheckpoints, StoreWriter, insort_gap
from gewtui.errors import GewError
from gewtui.pb import events_pb2

# A long jump takes checkpoints SPARSE times further apart until it is this many events
# from where it will stop: 'back' from there stays within the normal budget, and the jump
# does not spend a third of its time copying engines it will never go back to. A live head
# that lags more than this behind the capture does the same (its lag drains sooner).
DENSE_TAIL = 100_000
SPARSE = 8.0
# Parsed events a live session's log keeps beside their bytes (a replay keeps the default,
# which covers its read-ahead).
LIVE_RECENT = 8192

# (event, the changes folding it produced, the engine that folded it) -> is this the one?
Predicate = Callable[[events_pb2.Event, Sequence[Any], Any], bool]


@dataclass
class LostGap:
    """Records the kernel lost, where the log says so (a ``lost`` event)."""

    position: int
    event_id: int
    count: int
    start_ns: int
    end_ns: int


class Timeline:
    """Engines and checkpoints along one session's event log. One thread drives it."""

    def __init__(self, host: Any, new_engine: Callable[[], Any] | None = None,
                 restore: Callable[[Any], Any] | None = None,
                 policy: CheckpointPolicy | None = None) -> None:
        if new_engine is None or restore is None:
            from gewtui.model.engine import Engine   # the real engine unless a test injects one
            sid = host.source.info().session_id
            new_engine = new_engine or (lambda: Engine(session_id=sid))
            restore = restore or Engine.restore
        self.host = host
        self.new_engine = new_engine
        self.restore = restore
        self.log = EventLog()
        if host.live:
            # The head folds each event as it arrives: parsed events are kept for the view
            # and a short 'continue' only, not for a read-ahead (fewer live objects, a
            # smaller heap for the garbage collector to walk).
            self.log.recent_cap = LIVE_RECENT
        self.checkpoints = Checkpoints(policy)
        self.stored = StoredCheckpoints(self)
        self.log.loader = self.stored.load_hole
        # A live session's head engine leaves its state in the recording now and then.
        self.store_writer: StoreWriter | None = StoreWriter() if host.live else None
        self.head: Any = new_engine() if host.live else None
        self.cursor: Any = self.head if host.live else new_engine()
        self.position = 0
        self.lost_gaps: list[LostGap] = []
        self.frontier = 0                    # replay: the furthest position ever folded
        self.generation = 0                  # bumps when the cursor gets another engine
        # A spare engine trailing a paused cursor (see idle()); never the cursor's own.
        self.spare: tuple[Any, int] | None = None
        self._spare_job: list | None = None
        self.spare_lag = 2048

    @property
    def following(self) -> bool:
        return self.head is not None and self.cursor is self.head

    @property
    def head_engine(self) -> Any:
        """The engine at the newest event: live truth for gates and interventions."""
        return self.head if self.head is not None else self.cursor

    # ---- engines -----------------------------------------------------------------------

    def checkpoint(self, engine: Any, position: int) -> Any:
        """Keep ``engine``'s state as the checkpoint at ``position``; returns the state."""
        t0 = time.perf_counter()
        state = engine.checkpoint()
        self.checkpoints.add(position, state, time.perf_counter() - t0)
        return state

    def set_cursor(self, engine: Any, position: int, all_dirty: bool = True) -> None:
        self.cursor = engine
        self.position = position
        self.generation += 1
        self.host.engine_switched(all_dirty)

    def freeze(self) -> None:
        """Give the cursor its own copy of the head at the current position."""
        state = self.checkpoint(self.head, self.position)
        self.set_cursor(self.restore(state), self.position, all_dirty=False)

    def follow(self) -> None:
        """The cursor caught up with the head: it is the head again."""
        self.set_cursor(self.head, len(self.log), all_dirty=True)

    def jump(self, engine: Any, position: int) -> None:
        """The cursor leaps forward onto ``engine`` (restored from a stored checkpoint)."""
        self.set_cursor(engine, position)
        self.spare = self._spare_job = None
        if position > self.frontier:
            self.frontier = position
            self.checkpoints.reset_accounting()

    def engine_at(self, position: int) -> tuple[Any, int]:
        """A new engine restored from the nearest checkpoint at or before ``position`` (a
        stored one is read on first use; one that does not load is forgotten), and its
        position."""
        while True:
            cp = self.checkpoints.nearest(position)
            if cp is None:
                return self.new_engine(), 0
            pos, state = cp
            if type(state) is Stored:
                try:
                    return self.restore(self.stored.load(state)), pos
                except GewError as e:
                    self.stored.forget(pos, e.message)
                except Exception as e:   # loaded, but cannot be restored: never trusted
                    self.stored.forget(pos, f"cannot be restored ({type(e).__name__})")
                continue
            return self.restore(state), pos

    def reset(self) -> None:
        """Forget every engine and checkpoint: the log is read again from its first event."""
        self.checkpoints = Checkpoints(self.checkpoints.policy)
        self.log = EventLog()
        self.log.loader = self.stored.load_hole
        self.spare = self._spare_job = None
        self.frontier = 0
        self.lost_gaps = []

    def note_lost(self, pos: int, ev: events_pb2.Event) -> None:
        """The lost-record event at ``pos``, as a gap the views show."""
        lo = ev.lost
        gap = LostGap(pos + 1, ev.id, lo.count, lo.window_start_ns or ev.ktime_ns,
                      lo.window_end_ns or ev.ktime_ns)
        if self.lost_gaps and self.lost_gaps[-1].position > gap.position:
            insort_gap(self.lost_gaps, gap)      # read from a hole, after later events
        else:
            self.lost_gaps.append(gap)

    # ---- the head (live) ---------------------------------------------------------------

    def feed_head(self, ev: events_pb2.Event) -> Sequence[Any]:
        """Fold a new event into the head engine (the cursor too, while it follows)."""
        t0 = time.perf_counter()
        changes = self.head.feed(ev)
        dt = time.perf_counter() - t0
        self.checkpoints.account(1, dt)
        store = self.store_writer
        if store is not None:
            store.events += 1
            store.feed_s += dt
        return changes

    def take_batch(self, events: Sequence[tuple[events_pb2.Event, Any]],
                   observers: Sequence[Callable[[events_pb2.Event], None]] = ()) -> None:
        """Log a batch (no re-encode) with nothing to test per event, and fold it into the
        head when there is one (the cursor follows it). ``observers`` see every event first
        (they read events, never an engine). A lost record carries Event field 22 (tag bytes
        B2 01): only the events whose bytes hold those are looked at."""
        for observe in observers:
            for ev, _ in events:
                observe(ev)
        first = self.log.extend(events)
        raws = [raw for _, raw in events]
        if None in raws or b"\xb2\x01" in b"".join(raws):   # (one pass in C: seldom true)
            for i, (ev, raw) in enumerate(events):
                if (raw is None or b"\xb2\x01" in raw) and ev.WhichOneof("body") == "lost":
                    self.note_lost(first + i, ev)
        if self.head is not None:
            self.fold_head(events, first)
            self.head_batch_done(events[-1][0])

    def fold_head(self, events: Sequence[tuple[events_pb2.Event, Any]], first: int) -> None:
        """Fold a logged batch (positions ``first``...) into the head the cursor follows,
        with nothing to test per event (no breakpoint, no observer). Each event goes in with
        its wire bytes (the engine pins those as evidence). The changes of a block of events
        go to the host together; the checkpoint accounting and policy run once per block, so
        a checkpoint falls at most a block after it became due (SPARSE times further apart
        while the capture is more than DENSE_TAIL events ahead)."""
        head = self.head
        feed = head.feed
        if not getattr(head, "takes_raw", False):
            feed = lambda ev, raw, plain=head.feed: plain(ev)   # noqa: E731 (an injected engine)
        touch = self.host.touched
        cps = self.checkpoints
        store = self.store_writer
        perf = time.perf_counter
        step = max(1, min(256, cps.policy.min_events))
        sparse = SPARSE if getattr(self.host.source, "lag", 0) > DENSE_TAIL else 1.0
        n = len(events)
        i = 0
        while i < n:
            j = min(n, i + step)
            t0 = perf()
            block: list = []
            for ev, raw in events[i:j]:
                changes = feed(ev, raw)
                if changes:
                    block += changes
            if block:
                # once per block: the host notes which flows changed (and the filter's
                # verdict on them, which only a change can alter), in the events' order
                touch(block)
            dt = perf() - t0
            cps.account(j - i, dt)
            if store is not None:
                store.events += j - i
                store.feed_s += dt
            self.position = first + j
            if cps.due(sparse):
                self.checkpoint(head, first + j)
            i = j

    def head_passed(self, position: int) -> None:
        """The head folded ``position`` events: a checkpoint, if one is due."""
        if self.checkpoints.due():
            self.checkpoint(self.head, position)

    def head_batch_done(self, last_event: events_pb2.Event) -> None:
        """At the end of an ingested batch every event before this point is in the
        recording: the head's state may be stored there."""
        store = self.store_writer
        if store is not None and self.head is not None and store.due():
            store.write(self.host.source, self.head, len(self.log), last_event, self.log.first_ktime)

    # ---- folding -----------------------------------------------------------------------

    def fold(self) -> tuple[events_pb2.Event, Sequence[Any]]:
        """Fold the event at the cursor; the changes it produced go to the host too."""
        pos = self.position
        ev = self.log.get(pos)
        if self.head is None and pos >= self.frontier:
            t0 = time.perf_counter()
            changes = self.cursor.feed(ev)
            self.checkpoints.account(1, time.perf_counter() - t0)
            self.position = self.frontier = pos + 1
            if self.checkpoints.due():
                self.checkpoint(self.cursor, self.position)
        else:
            changes = self.cursor.feed(ev)
            self.position = pos + 1
        self.host.touched(changes)
        return ev, changes

    def fold_to(self, limit: int, deadline: float) -> None:
        """Fold up to position ``limit`` with nothing to test per event (a goto): the
        per-event work is the engine's, the rest is done every 128 events (or every
        checkpoint interval, if that is shorter)."""
        try:
            self._fold_to(limit, deadline)
        except GewError:
            raise
        except Exception as e:
            # A state restored from the recording passed every check and still failed here:
            # it is not trusted (one line), and the file is read again from its first event.
            if not self.stored.used:
                raise
            self.stored.distrust(f"a stored checkpoint failed a fold ({type(e).__name__})")

    def _fold_to(self, limit: int, deadline: float) -> None:
        get = self.log.get
        cur = self.cursor
        feed = cur.feed
        touch = self.host.touched
        cps = self.checkpoints
        replay = self.head is None
        perf = time.perf_counter
        clock = self.host.clock
        pos = self.position
        mark = perf()
        n = 0
        far = self.stop_estimate() - DENSE_TAIL
        step = max(1, min(128, cps.policy.min_events))
        while pos < limit:
            changes = feed(get(pos))
            pos += 1
            if changes:
                touch(changes)
            n += 1
            if n >= step or pos == limit:
                self.position = pos
                if replay and pos > self.frontier:
                    now = perf()
                    cps.account(min(n, pos - self.frontier), now - mark)
                    self.frontier = pos
                    if cps.due(SPARSE if pos < far else 1.0):
                        self.checkpoint(cur, pos)
                    mark = perf()
                n = 0
                if clock() >= deadline:
                    break
        self.position = pos

    def stop_estimate(self) -> int:
        """Where the running goto will stop: its target, the end of a recording read to
        its end, or the end estimated from the bytes not read yet."""
        m = self.host.motion
        if m is not None and m.target is not None:
            return m.target
        n = len(self.log)
        if self.log.complete or not n:
            return n
        source = self.host.source
        tell, size = getattr(source, "tell", None), getattr(source, "size", 0)
        if tell is None or not size:
            return n
        at = tell()
        return n + int((size - at) * n / max(1, at))

    def restore_to(self, target: int) -> None:
        """Put the cursor at ``target`` (<= known events): from where it is when that is
        closest, else from the spare engine trailing the cursor, else from the nearest
        checkpoint. Never folds the head."""
        cp_pos = (self.checkpoints.nearest(target) or (0, None))[0]
        here = not self.following and cp_pos <= self.position <= target
        spare = self.spare
        if spare is not None and cp_pos <= spare[1] <= target and (not here or spare[1] > self.position):
            self.spare = None
            self.set_cursor(spare[0], spare[1])
        elif not here:
            engine, cp_pos = self.engine_at(target)
            self.set_cursor(engine, cp_pos)
        while self.position < target:
            self.fold()
        self.host.changed()

    def search_back(self, pred: Predicate, before: int, count: int = 1) -> int:
        """The position ``count`` matches back from ``before`` (as far as there are matches;
        ``before`` itself when none): a match is a position q whose event (log[q-1])
        satisfies ``pred``."""
        target = before
        for _ in range(max(1, count)):
            found = self._search_back(pred, target)
            if found is None:
                break
            target = found
        return target

    def _search_back(self, pred: Predicate, before: int) -> int | None:
        """The largest match q < ``before``, searched one checkpoint segment at a time,
        newest segment first."""
        hi = before - 1
        while hi >= 1:
            engine, lo = self.engine_at(hi - 1)
            found = None
            for idx in range(lo, hi):
                ev = self.log.get(idx)
                if pred(ev, engine.feed(ev), engine):
                    found = idx + 1
            if found is not None:
                return found
            hi = lo
        return None

    def leap(self, target: int | None = None, event_id: int | None = None,
             ktime_ns: int | None = None) -> None:
        """Before a forward jump on a recording: start from a stored checkpoint near the
        target when there is one (see gewtui.debugger.stored)."""
        if not self.host.live:
            self.stored.leap(target, event_id, ktime_ns)

    # ---- idle time ---------------------------------------------------------------------

    def idle(self, budget_s: float = 0.03) -> bool:
        """Use idle time (a paused cursor, an operator reading) to prepare a spare engine a
        few thousand events behind the cursor, then to read the stretches a jump skipped
        and fold them again with checkpoints. Returns whether it did any work."""
        try:
            return self._idle(budget_s)
        except GewError as e:
            if not self.log.holes and not self.stored.refs():
                raise
            # Reading a stretch a stored checkpoint skipped showed the file lies about it.
            self.stored.distrust(e.message)
            return True

    def _idle(self, budget_s: float) -> bool:
        if self.following:
            return False
        want = max(0, self.position - self.spare_lag)
        spare = self.spare
        if self.position == 0 or (spare is not None and want - self.spare_lag <= spare[1] <= want):
            return self.stored.fill_one() or self.stored.densify(budget_s)
        job = self._spare_job
        cp_pos = (self.checkpoints.nearest(want) or (0, None))[0]
        if job is None or not cp_pos <= job[1] <= want:
            # No job, or the cursor moved so that a checkpoint is a better start.
            engine, cp_pos = self.engine_at(want)
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
            self.spare, self._spare_job = (engine, pos), None
        return True
