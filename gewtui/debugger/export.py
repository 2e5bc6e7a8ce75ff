"""Cutting a recording down to the flows a filter keeps: ``gew export FILE --filter … --out``
and the command language's ``export FILE``.

Place in the pipeline: reads events (a recording, or the debugger's event log), folds them
into a fresh engine to learn which flows the filter keeps, folds them again to learn which
events belong to those flows, and writes those events with a RecordingWriter. Two passes,
because a flow only matches some filters (a template, the terminated phase) late in its
life, and keeping per-event flow lists of a million-event recording in memory would cost
more than folding twice.

What the smaller recording holds: the original header, every event that the engine tied
to a kept flow or that a kept flow cites (its route lookups, its reason chain's evidence),
every session-level event (lost records, scope changes, session marks: a
cut recording must not look more complete than the session was), the interventions on kept
flows, and the original stats and end records. Event ids are kept as they were, so reason
chains and notes that cite them still point at the same facts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from gewtui.debugger.attribution import last_event_id
from gewtui.debugger.motions import SESSION_BODIES
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


@dataclass
class _Selection:
    kept: set[int]            # flows the filter keeps (at the end of the events)
    cited: set[int]           # events those flows cite: path lookups, reason evidence
    flows_total: int
    events: int


def _select(events: Iterable[events_pb2.Event], flt: FlowFilter,
            new_engine: Callable[[], Any]) -> _Selection:
    """Pass 1: fold everything, then decide which flows the filter keeps and which events
    their snapshots and reason chains cite (a route lookup that set a path is attributed to
    no flow when it happens, but the flow rests on it)."""
    eng = new_engine()
    n = 0
    for ev in events:
        eng.feed(ev)
        n += 1
    flows = eng.flows()
    kept = {f.flow_id for f in flows if flt.matches(f)}
    cited: set[int] = set()
    for f in flows:
        if f.flow_id in kept:
            cited.update(h.event_id for h in f.path)
            chain = eng.chain(f.flow_id)
            if chain is not None and chain.HasField("root"):
                stack = [chain.root]
                while stack:
                    node = stack.pop()
                    cited.update(node.evidence_event_ids)
                    stack.extend(node.children)
    return _Selection(kept, cited, len(flows), n)


class _Keeper:
    """Pass 2: fold again, keep an event if it belongs to a kept flow, is cited by one, or
    concerns the whole session."""

    def __init__(self, sel: _Selection, new_engine: Callable[[], Any]) -> None:
        self.sel = sel
        self.eng = new_engine()
        self.kept = sorted(sel.kept)

    def __call__(self, ev: events_pb2.Event) -> bool:
        changes = self.eng.feed(ev)
        if ev.WhichOneof("body") in SESSION_BODIES or ev.id in self.sel.cited:
            return True
        kept = self.sel.kept
        if any(c.flow_id in kept for c in changes):
            return True
        return any(last_event_id(self.eng, fid) == ev.id for fid in self.kept)


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
        header = recording_pb2.RecordingHeader()
        header.CopyFrom(r.header)
        sel = _select(r.iter_events(), flt, new_engine) if flt else None
    header.writer = ""       # the writer stamps itself; the session facts stay as recorded
    keep = _Keeper(sel, new_engine) if sel is not None else None
    n_in = out = 0
    with open_recording(in_path) as r, RecordingWriter(out_path, header) as w:
        for rec in r.records():
            which = rec.WhichOneof("body")
            if which == "event":
                n_in += 1
                if keep is None or keep(rec.event):
                    w.write_event(rec.event)
                    out += 1
            elif which == "intervention":
                if sel is None or rec.intervention.flow_id in sel.kept:
                    w.write(rec)
            else:
                w.write(rec)
    total = sel.flows_total if sel is not None else 0
    return ExportResult(os.fspath(out_path), n_in, out, total,
                        len(sel.kept) if sel is not None else total, os.path.getsize(out_path))


def export_log(d: Any, out_path: str | os.PathLike[str]) -> ExportResult:
    """The command language's ``export FILE``: the debugger's events so far, cut by its
    current filter, with the session's header."""
    from gewtui.recording import RecordingWriter

    n = len(d.log)
    new_engine = d.timeline.new_engine
    flt: FlowFilter = d.filter
    info = d.source.info()
    header = recording_pb2.RecordingHeader()
    if info.header is not None:
        header.CopyFrom(info.header)
        header.writer = ""
    if flt:
        sel = _select(d.log.iter_range(0, n), flt, new_engine)
        keep = _Keeper(sel, new_engine)
        events: Iterable[events_pb2.Event] = (ev for ev in d.log.iter_range(0, n) if keep(ev))
        kept, total = sel.kept, sel.flows_total
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
