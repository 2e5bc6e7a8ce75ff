"""Cutting a recording down to the flows a filter keeps: ``gew export FILE --filter … --out``
and the command language's ``export FILE``.

Place in the pipeline: reads events (a recording, or the debugger's event log), folds them
into a fresh engine to learn which flows the filter keeps, folds them again to learn which
events belong to those flows, and writes those events with a RecordingWriter. Two passes,
because a flow only matches some filters (a template, the terminated phase) late in its
life, and keeping per-event flow lists of a million-event recording in memory would cost
more than folding twice.

What the smaller recording holds: the original header, every event that the engine tied
to a kept flow, every session-level event (lost records, scope changes, session marks: a
cut recording must not look more complete than the session was), the interventions on kept
flows, and the original stats and end records. Event ids are kept as they were, so reason
chains and notes that cite them still point at the same facts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

from gewtui.debugger.core import SESSION_BODIES
from gewtui.debugger.filters import FlowFilter
from gewtui.pb import events_pb2, recording_pb2


@dataclass(frozen=True)
class ExportResult:
    path: str
    events_in: int
    events_out: int
    flows_total: int
    flows_kept: int
    bytes_out: int

    def text(self) -> str:
        return (f"wrote {self.path}: {self.events_out} of {self.events_in} events, "
                f"{self.flows_kept} of {self.flows_total} flows ({self.bytes_out} bytes)")


def _kept_flows(events: Iterable[events_pb2.Event], flt: FlowFilter,
                new_engine: Callable[[], Any]) -> tuple[set[int], int, int]:
    eng = new_engine()
    n = 0
    for ev in events:
        eng.feed(ev)
        n += 1
    flows = eng.flows()
    return {f.flow_id for f in flows if flt.matches(f)}, len(flows), n


def _selected(events: Iterable[events_pb2.Event], kept: set[int],
              new_engine: Callable[[], Any]) -> Iterator[events_pb2.Event]:
    eng = new_engine()
    for ev in events:
        changes = eng.feed(ev)
        if ev.WhichOneof("body") in SESSION_BODIES or any(c.flow_id in kept for c in changes):
            yield ev


def _default_engine(templates: str | None) -> Callable[[], Any]:
    from gewtui.model.engine import Engine

    return lambda: Engine(templates=templates)


def filter_recording(in_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                     filter_exprs: Sequence[str], *, templates: str | None = None,
                     engine_factory: Callable[[], Any] | None = None) -> ExportResult:
    """Write the part of ``in_path`` the filter keeps to ``out_path`` (a valid recording)."""
    from gewtui.recording import RecordingWriter, open_recording

    flt = FlowFilter.parse(filter_exprs)
    new_engine = engine_factory or _default_engine(templates)
    if os.path.abspath(in_path) == os.path.abspath(out_path):
        from gewtui.errors import UsageError

        raise UsageError("--out must name another file than the recording read")
    with open_recording(in_path) as r:
        kept, total, n_in = _kept_flows(r.iter_events(), flt, new_engine)
        header = recording_pb2.RecordingHeader()
        header.CopyFrom(r.header)
    header.writer = ""       # the writer stamps itself; the session facts stay as recorded
    out = 0
    with open_recording(in_path) as r, RecordingWriter(out_path, header) as w:
        eng = new_engine()
        for rec in r.records():
            which = rec.WhichOneof("body")
            if which == "event":
                ev = rec.event
                changes = eng.feed(ev)
                if (not flt or ev.WhichOneof("body") in SESSION_BODIES
                        or any(c.flow_id in kept for c in changes)):
                    w.write_event(ev)
                    out += 1
            elif which == "intervention":
                if not flt or rec.intervention.flow_id in kept:
                    w.write(rec)
            else:
                w.write(rec)
    return ExportResult(os.fspath(out_path), n_in, out, total, len(kept) if flt else total,
                        os.path.getsize(out_path))


def export_log(d: Any, out_path: str | os.PathLike[str]) -> ExportResult:
    """The command language's ``export FILE``: the debugger's events so far, cut by its
    current filter, with the session's header."""
    from gewtui.recording import RecordingWriter

    n = len(d.log)
    new_engine = d._new_engine
    flt: FlowFilter = d.filter
    info = d.source.info()
    header = recording_pb2.RecordingHeader()
    if info.header is not None:
        header.CopyFrom(info.header)
        header.writer = ""
    if flt:
        kept, total, _ = _kept_flows(d.log.iter_range(0, n), flt, new_engine)
        events: Iterable[events_pb2.Event] = _selected(d.log.iter_range(0, n), kept, new_engine)
    else:
        total = len(d.engine.flows())
        kept = set()
        events = d.log.iter_range(0, n)
    out = 0
    with RecordingWriter(out_path, header) as w:
        for ev in events:
            w.write_event(ev)
            out += 1
        for rec in getattr(d.source, "interventions", ()):
            if not flt or rec.flow_id in kept:
                w.write(recording_pb2.Record(intervention=rec))
    return ExportResult(os.fspath(out_path), n, out, total, len(kept) if flt else total,
                        os.path.getsize(out_path))
