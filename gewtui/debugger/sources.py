"""Event sources the debugger can sit on: a recording, a live session, or a list of events.

Place in the pipeline: the debugger core calls ``read(max_events, timeout_s)`` from its one
thread and appends what it gets to the session's event log. A source also says what the
status bar shows about the session (``info``) and how the session is doing (``stats``).
The live adapter takes the session object it is given (gewtui.kernel's LiveSession, or a
fake in tests) and never imports the kernel plane itself, so the debugger stays importable
without bcc.
"""
from __future__ import annotations

import bisect
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from gewtui.pb import events_pb2, intervention_pb2, recording_pb2, session_pb2
from gewtui.recording.lifecycle import expand, is_lifecycle


@dataclass(frozen=True)
class SourceInfo:
    session_id: str
    mode: str                       # "live" | "replay"
    verdict: str                    # capability verdict, e.g. "FULLY_SUPPORTED"
    scope: str
    recording: str
    allow_intervention: bool
    header: recording_pb2.RecordingHeader | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SourceStats:
    events: int = 0
    lost: int = 0
    complete: bool = True
    incomplete_reason: str = ""
    bpf_run_time_ns: int = 0
    bpf_run_count: int = 0
    recording_bytes: int = 0
    lag: int = 0                    # live: events recorded, not yet read by the debugger


def _frame_len(n: int) -> int:
    """Bytes of a record frame whose payload is ``n`` bytes (marker, varint, payload, CRC)."""
    return 4 + (n.bit_length() + 6) // 7 + n + 4 if n else 9


def _verdict(report: session_pb2.CapabilityReport | None) -> str:
    if report is None or not report.verdict:
        return "unknown"
    return session_pb2.CapabilityState.Name(report.verdict)


def _scope_text(scope: session_pb2.Scope) -> str:
    parts = [f"{e.kind}={e.value}" for e in scope.entries]
    return " ".join(parts) or "host netns"


class MemorySource:
    """Events from an iterable (tests, benchmarks, a filtered export's preview)."""

    live = False

    def __init__(self, events: Iterable[events_pb2.Event],
                 header: recording_pb2.RecordingHeader | None = None) -> None:
        self._it: Iterator[events_pb2.Event] = iter(events)
        self.header = header or recording_pb2.RecordingHeader()
        self.exhausted = False
        self.interventions: list[intervention_pb2.InterventionRecord] = []
        self._count = 0
        self._lost = 0

    def read(self, max_events: int, timeout_s: float = 0.0) -> list[events_pb2.Event]:
        out = []
        for ev in self._it:
            out.append(ev)
            if ev.WhichOneof("body") == "lost":
                self._lost += ev.lost.count
            if len(out) >= max_events:
                break
        else:
            self.exhausted = True
        self._count += len(out)
        return out

    def info(self) -> SourceInfo:
        s = self.header.session
        return SourceInfo(s.session_id or "memory", "replay", _verdict(self.header.capabilities),
                          _scope_text(s.scope), "", False, self.header)

    def stats(self) -> SourceStats:
        return SourceStats(events=self._count, lost=self._lost, complete=self._lost == 0)

    def close(self) -> None:
        pass


class ReplaySource:
    """A recording file, read in chunks as the cursor (or the read-ahead) needs it.

    Interventions, stats and end records are kept aside: the intervention panel shows past
    interventions (a replay never executes one), the status bar shows the recording's
    session stats (the last stats record wins, as in the file's contract). Engine
    checkpoints stored in the file are listed by ``checkpoints()``; after a jump to one the
    reading goes on from it (``seek``) and the skipped stretch is read later with
    ``read_at`` (the debugger's log holds it as a hole meanwhile).
    """

    live = False

    def __init__(self, path: str | os.PathLike[str], *, use_checkpoints: bool | None = None) -> None:
        from gewtui.recording import open_recording

        self.path = os.fspath(path)
        self.reader = open_recording(self.path)
        self.header = self.reader.header
        if use_checkpoints is None:       # GEW_IGNORE_CHECKPOINTS=1: replay as if it had none
            use_checkpoints = os.environ.get("GEW_IGNORE_CHECKPOINTS", "") not in ("1", "yes", "true")
        self.use_checkpoints = use_checkpoints
        self.exhausted = False
        self.interventions: list[intervention_pb2.InterventionRecord] = []
        self._intervention_at: list[int] = []       # file offset of each, sorted
        self.last_stats: session_pb2.SessionStats | None = None
        self._stats_at = -1
        self.end: session_pb2.SessionEnd | None = None
        self._events = 0
        self._lost = 0
        self._checkpoints: list | None = None
        self._frames = self.reader.frames()
        self._next = self.reader.data_start         # offset of the next frame to read
        try:
            self.size = os.path.getsize(self.path)
        except OSError:
            self.size = 0

    def read(self, max_events: int, timeout_s: float = 0.0) -> list[events_pb2.Event]:
        return [ev for ev, _ in self.read_with_raw(max_events, timeout_s)]

    def read_with_raw(self, max_events: int, timeout_s: float = 0.0
                      ) -> list[tuple[events_pb2.Event, bytes]]:
        """Like ``read``, with each event's serialized form (the log stores it as is)."""
        if self.exhausted:
            return []
        out, nxt = self._take(self._frames, max_events, self.reader.report)
        if nxt is None:
            self.exhausted = True
        else:
            self._next = nxt
        return out

    def _take(self, frames: Any, max_events: int, report: Any, stop: int | None = None
              ) -> tuple[list[tuple[events_pb2.Event, bytes]], int | None]:
        """Up to ``max_events`` events from a frame walk, side records kept aside. Returns
        them and the offset of the frame after the last one taken (None: the walk ended)."""
        from gewtui.recording.reader import event_bytes

        parse_event = events_pb2.Event.FromString
        parse_record = recording_pb2.Record.FromString
        out: list[tuple[events_pb2.Event, bytes]] = []
        n = 0
        lives = None
        for off, payload in frames:
            if stop is not None and off >= stop:
                break
            # event_bytes inlined for the commonest frame: one Record.event of < 128 bytes.
            ln = len(payload)
            if ln > 2 and payload[0] == 0x0A and payload[1] == ln - 2:
                raw = payload[2:]
            else:
                raw = event_bytes(payload)
            try:
                if raw is not None:
                    ev = parse_event(raw)
                else:
                    rec = parse_record(payload)
                    which = rec.WhichOneof("body")
                    if which != "event":
                        self._side(off, which, rec)
                        continue
                    ev = rec.event
                    raw = ev.SerializeToString()
                if is_lifecycle(raw):
                    lives = [(parse_event(r), r) for r in expand(raw)]
            except Exception as e:     # foreign or hostile payload: counted, never an event
                self.reader._undecodable(report, off, len(payload), e)
                continue
            if lives is not None:
                # a lifecycle: the events it stands for (gewtui.recording.lifecycle)
                out += lives
                n += len(lives) - 1
                lives = None
            else:
                out.append((ev, raw))
            if b"\xb2\x01" in raw and ev.WhichOneof("body") == "lost":   # Event field 22
                self._lost += ev.lost.count
            n += 1
            if n >= max_events:
                self._events += n
                return out, off + _frame_len(len(payload))
        self._events += n
        return out, None

    def _side(self, off: int, which: str | None, rec: recording_pb2.Record) -> None:
        if which == "intervention":
            i = bisect.bisect_left(self._intervention_at, off)
            if i < len(self._intervention_at) and self._intervention_at[i] == off:
                return        # read twice (a hole re-read): already kept
            self._intervention_at.insert(i, off)
            self.interventions.insert(i, rec.intervention)
        elif which == "stats" and off > self._stats_at:
            self.last_stats, self._stats_at = rec.stats, off
        elif which == "end":
            self.end = rec.end
            if rec.end.HasField("stats") and off >= self._stats_at:
                self.last_stats, self._stats_at = rec.end.stats, off

    # ---- checkpoints and jumps -----------------------------------------------------------

    def checkpoints(self) -> list:
        """The engine checkpoints stored in the file (gewtui.recording.checkpoints), found
        once, by position; empty when disabled."""
        if self._checkpoints is None:
            if not self.use_checkpoints:
                self._checkpoints = []
            else:
                from gewtui.recording.checkpoints import find_checkpoints

                self._checkpoints = find_checkpoints(self.reader)
        return self._checkpoints

    def load_checkpoint(self, ref: Any) -> bytes:
        from gewtui.recording.checkpoints import load_state

        return load_state(self.reader, ref)

    def tell(self) -> int:
        """Offset where sequential reading goes on."""
        return self._next

    def seek(self, offset: int) -> None:
        """Go on reading from the frame at ``offset`` (a checkpoint's resume offset)."""
        self._frames = self.reader.frames(offset)    # a new report: damage from here on
        self._next = offset
        self.exhausted = False

    def read_at(self, offset: int, count: int, stop: int | None = None
                ) -> tuple[list[tuple[events_pb2.Event, bytes]], int | None]:
        """``count`` events from the frame at ``offset`` (fewer at the end of the file or
        at a frame starting at ``stop``), and the offset after the last. Does not move
        sequential reading."""
        from gewtui.recording import ReadReport

        report = ReadReport()
        return self._take(self.reader.frames(offset, report), count, report, stop)

    def info(self) -> SourceInfo:
        s = self.header.session
        return SourceInfo(s.session_id or os.path.basename(self.path), "replay",
                          _verdict(self.header.capabilities), _scope_text(s.scope), self.path,
                          s.allow_intervention, self.header)

    def stats(self) -> SourceStats:
        st = self.last_stats
        lost = max(self._lost, st.lost_records if st else 0)
        complete = (st.observation_complete if st else True) and lost == 0
        reason = st.incomplete_reason if st else ""
        if complete and self.exhausted and self.end is None:
            # No end record: the session was killed or its disk filled. Whatever happened
            # after the last record is unknown, so the recording cannot claim completeness.
            complete, reason = False, "the recording has no end record (session killed or disk full)"
        skipped = getattr(self.reader.report, "skipped_records", 0)
        if complete and skipped:
            complete, reason = False, f"{skipped} damaged records skipped in the recording"
        return SourceStats(
            events=max(self._events, st.events if st else 0), lost=lost,
            complete=complete, incomplete_reason=reason,
            bpf_run_time_ns=st.bpf_run_time_ns if st else 0,
            bpf_run_count=st.bpf_run_count if st else 0, recording_bytes=self.size)

    @property
    def report(self) -> Any:
        """What the reader found wrong with the file (skipped regions, torn tail)."""
        return self.reader.report

    def close(self) -> None:
        self.reader.close()


class LiveSource:
    """Adapter over an opened live session (``poll(timeout_ms)``, ``stats``, ``session_id``).

    A session that can hand its polling to a capture thread (``start_capture``, as
    gewtui.kernel's LiveSession can) does so when the debugger first reads: the capture then
    drains the kernel into the recording on its own, and ``read`` takes the events' bytes
    from it (gewtui.kernel.capture), so the engine and the UI may lag behind the capture but
    never hold it up. ``lag`` says by how much. Other sessions (fakes in tests) are polled."""

    live = True
    exhausted = False
    # records per read (a lifecycle among them stands for ~9 events): the pump comes back
    # often, so the capture's duty limit (gewtui.kernel.capture) holds and the capture gets its turn
    batch = 512

    def __init__(self, session: Any, *, threaded: bool = True) -> None:
        self.session = session
        self.interventions: list[intervention_pb2.InterventionRecord] = []
        self._started = time.monotonic()
        self.threaded = threaded and callable(getattr(session, "start_capture", None))
        self.capture: Any = None
        self.taken = 0
        self._listeners: list[Any] = []

    def on_data(self, fn: Any) -> bool:
        """Have ``fn()`` called when the capture thread queues events or ends, so a reader
        can sleep until then instead of polling. False when this source cannot tell (no
        capture thread: the session is polled)."""
        if not self.threaded:
            return False
        self._listeners.append(fn)
        if self.capture is not None:
            self.capture.listeners.append(fn)
        return True

    def _take(self, max_events: int, timeout_s: float) -> list[bytes]:
        cap = self.capture
        if cap is None:
            cap = self.capture = self.session.start_capture()
            cap.listeners.extend(self._listeners)
        return cap.take(min(max_events, self.batch), timeout_s)

    def read(self, max_events: int, timeout_s: float = 0.0) -> list[events_pb2.Event]:
        return [ev for ev, _ in self.read_with_raw(max_events, timeout_s)]

    def read_with_raw(self, max_events: int, timeout_s: float = 0.0
                      ) -> list[tuple[events_pb2.Event, bytes]]:
        """Events with their wire bytes as the capture recorded them (the log keeps those
        bytes: nothing is serialized again)."""
        if not self.threaded:
            evs = list(self.session.poll(int(timeout_s * 1000)))
            self.taken += len(evs)
            return [(ev, None) for ev in evs]   # type: ignore[misc]
        raws = self._take(max_events, timeout_s)
        self.taken += len(raws)
        return list(zip(map(events_pb2.Event.FromString, raws), raws))

    @property
    def lag(self) -> int:
        """Events the session has recorded that the debugger has not read yet."""
        cap = self.capture
        return cap.lag if cap is not None else 0

    def info(self) -> SourceInfo:
        s = self.session
        scope = getattr(s, "scope", None)
        describe = getattr(scope, "describe", None)
        return SourceInfo(
            session_id=str(getattr(s, "session_id", "live")), mode="live",
            verdict=_verdict(getattr(s, "capabilities", None)),
            scope=describe() if callable(describe) else "host netns",
            recording=getattr(s, "record_path", "") or "",
            allow_intervention=bool(getattr(s, "allow_intervention", False)))

    def store_checkpoint(self, state: bytes, **meta: Any) -> int | None:
        """Write an engine checkpoint into the session's recording, after the events it
        has recorded so far (gewtui.recording.checkpoints); None when it records nothing.
        Following a capture thread, the checkpoint names where the events after its
        position start (``resume_offset``): the capture may have recorded more meanwhile."""
        w = getattr(self.session, "writer", None)
        if w is None or not hasattr(w, "next_offset"):
            return None
        from gewtui.recording.checkpoints import write_checkpoint

        lock = getattr(w, "lock", None)
        with lock if lock is not None else _NoLock():
            cap = self.capture
            if cap is not None and cap.resume_offset:
                # (the capture may have written a batch the debugger has not read yet)
                meta["resume_offset"] = cap.resume_offset
            return write_checkpoint(w, state, **meta)

    def stats(self) -> SourceStats:
        st = self.session.stats
        return SourceStats(
            events=st.events, lost=st.lost, complete=st.complete,
            incomplete_reason=st.incomplete_reason, bpf_run_time_ns=st.bpf_run_time_ns,
            bpf_run_count=st.bpf_run_count, recording_bytes=st.recording_bytes, lag=self.lag)

    def close(self) -> None:
        cap = self.capture
        if cap is not None:
            cap.close()
        close = getattr(self.session, "close", None)
        if callable(close):
            close()


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None
