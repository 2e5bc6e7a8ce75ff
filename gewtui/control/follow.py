"""The session's recording as a live feed: the control plane's only view of the session.

Place in the pipeline: beside the debugger, downstream of the recorder. The capture loop
writes every L0 event and intervention record to the recording (flushed at least once a
second); the control plane reads that file as it grows, from its first record, and folds
it into an observation engine of its own. So nothing the control plane does — a slow
client, a long history, a crash in a handler — can delay or change the capture: the file is
the buffer between them, and its reader never writes.

``Follower.items()`` yields ``("event", raw Event bytes)``, ``("record", Record)`` for
everything else, and ``("idle", None)`` when it has read all there is (the caller checks for
cancellation then); it ends after the recording's ``SessionEnd`` or when ``stop`` is set.
``Head`` is one follower on its own thread keeping the newest engine, counts and
intervention records, for the unary calls.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterator

from gewtui.errors import GewError
from gewtui.pb import events_pb2, intervention_pb2, recording_pb2
from gewtui.recording import lifecycle
from gewtui.recording.framing import ReadReport, walk_frames
from gewtui.recording.reader import RecordingReader, event_bytes

_DECODE = (ValueError, RecursionError, MemoryError, OverflowError)
_parse_record = recording_pb2.Record.FromString


class Follower:
    def __init__(self, path: str, stop: threading.Event, *, poll_s: float = 0.05):
        self.path = path
        self.stop = stop
        self.poll_s = poll_s
        self._reader = RecordingReader(path)
        self.header: recording_pb2.RecordingHeader = self._reader.header
        self.ended = False
        self.damaged = 0

    def close(self) -> None:
        self._reader.close()

    def items(self) -> Iterator[tuple[str, Any]]:
        fd = self._reader._f.fileno()
        pos = self._reader.data_start
        try:
            while not self.stop.is_set():
                report = ReadReport()
                for _, payload in walk_frames(fd, pos, report, name=self.path):
                    raw = event_bytes(payload)
                    rec = None
                    if raw is None:
                        try:
                            rec = _parse_record(payload)
                        except _DECODE:
                            self.damaged += 1
                            continue
                        if rec.HasField("event"):
                            raw = rec.event.SerializeToString()
                    if raw is not None:
                        # a lifecycle: the events it stands for (gewtui.recording.lifecycle)
                        try:
                            lives = lifecycle.expand(raw) if lifecycle.is_lifecycle(raw) else (raw,)
                        except _DECODE:
                            self.damaged += 1
                            continue
                        for r in lives:
                            yield "event", r
                        continue
                    yield "record", rec
                    if rec.HasField("end"):
                        self.ended = True
                        return
                # A frame still being written is a torn tail now: start there next time.
                pos = report.end_offset
                self.damaged += len(report.skipped_regions)
                yield "idle", None
                self.stop.wait(self.poll_s)
        except GewError:
            self.damaged += 1
        finally:
            self.close()


class Head:
    """The newest state of the session, folded on one thread, read under a lock."""

    def __init__(self, path: str, engine_factory: Callable[[], Any], stop: threading.Event,
                 log: Callable[[str], None] | None = None):
        self.follower = Follower(path, stop)
        self.header = self.follower.header
        self.engine = engine_factory()
        self.lock = threading.Lock()
        self.events = 0
        self.last_event_id = 0
        self.interventions: list[intervention_pb2.InterventionRecord] = []
        self.end: recording_pb2.Record | None = None
        self.caught_up = threading.Event()
        self._log = log
        self._thread = threading.Thread(target=self._run, name="gew-control-head", daemon=True)

    def start(self) -> "Head":
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        parse = events_pb2.Event.FromString
        try:
            for kind, item in self.follower.items():
                if kind == "idle":
                    self.caught_up.set()
                    continue
                with self.lock:
                    if kind == "event":
                        ev = parse(item)
                        self.engine.feed(ev)
                        self.events += 1
                        self.last_event_id = ev.id
                    elif item.HasField("intervention"):
                        self.interventions.append(item.intervention)
                        self.engine.add_intervention(item.intervention)
                    elif item.HasField("end"):
                        self.end = item
        except Exception as e:       # the control plane stops answering; capture goes on
            if self._log is not None:
                self._log(f"control: reading the recording failed: {type(e).__name__}: {e}")
        finally:
            self.caught_up.set()
