"""``gew export FILE --perfetto TRACE``: a recording as a Chrome trace-event JSON file, which
ui.perfetto.dev (and chrome://tracing) opens beside scheduler traces.

Place in the pipeline: reads a recording's events once, folds them through the observation
plane (gewtui.model) as the debugger does, and writes what the fold said:

- one track (a thread of the process "gew session ID") per flow, named by its key, and one
  "session" track for events no flow owns (marks, lost records, route lookups);
- TCP states as slices on the flow's track, from each tcp-state change to the next;
- every event as an instant on the track of the flow the engine attributed it to;
- each L2 template match as a process-wide instant (a vertical marker across all tracks)
  named after the template, its flow and severity in the arguments.

Times are the kernel's CLOCK_MONOTONIC in microseconds, as Perfetto's own traces of this
host count them, so the two line up without a shift. Work is one fold and a dictionary
look-up per event; the output is written as it is made, except the per-flow track names
(one line per flow at the end).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import IO, Any, Callable, Iterable, Sequence

from gewtui.debugger.attribution import last_event_id
from gewtui.pb import events_pb2

PID = 1
SESSION_TID = 0


@dataclass(frozen=True)
class TraceResult:
    path: str
    events: int
    flows: int
    slices: int
    matches: int

    def text(self) -> str:
        return (f"wrote {self.path}: {self.flows} flow tracks, {self.events} events, "
                f"{self.slices} state slices, {self.matches} template matches "
                "(open it in ui.perfetto.dev)")


def _tuple_key(ev: events_pb2.Event) -> tuple | None:
    kind = ev.WhichOneof("body")
    if kind is None:
        return None
    body = getattr(ev, kind)
    if "tuple" not in body.DESCRIPTOR.fields_by_name or not body.HasField("tuple"):
        return None
    t = body.tuple
    return (t.saddr, t.sport, t.daddr, t.dport)


class _Trace:
    def __init__(self, out: IO[str], session: str) -> None:
        self.out = out
        self.first = True
        self.flows: dict[int, int] = {}           # flow id -> its track (tid)
        self.state: dict[int, tuple[str, int]] = {}  # flow -> (TCP state, since ktime)
        self.slices = self.matches = 0
        out.write('{"displayTimeUnit":"ms","traceEvents":[\n')
        self.emit({"ph": "M", "pid": PID, "name": "process_name",
                   "args": {"name": f"gew session {session}"}})
        self.emit({"ph": "M", "pid": PID, "tid": SESSION_TID, "name": "thread_name",
                   "args": {"name": "session"}})

    def emit(self, rec: dict[str, Any]) -> None:
        self.out.write(("" if self.first else ",\n") + json.dumps(rec, separators=(",", ":")))
        self.first = False

    def track(self, fid: int) -> int:
        self.flows.setdefault(fid, fid)
        return fid

    def instant(self, ev: events_pb2.Event, tid: int, kind: str) -> None:
        self.emit({"ph": "i", "s": "t", "pid": PID, "tid": tid, "ts": ev.ktime_ns / 1000,
                   "name": kind, "cat": "event", "args": {"id": ev.id}})

    def state_change(self, fid: int, to: str, t: int) -> None:
        self._close(fid, t)
        self.state[fid] = (to, t)

    def _close(self, fid: int, t: int) -> None:
        old = self.state.pop(fid, None)
        if old is None:
            return
        name, since = old
        self.emit({"ph": "X", "pid": PID, "tid": self.track(fid), "ts": since / 1000,
                   "dur": max(0, t - since) / 1000, "name": name, "cat": "tcp-state"})
        self.slices += 1

    def match(self, fid: int, detail: dict[str, str], ev: events_pb2.Event) -> None:
        self.emit({"ph": "i", "s": "p", "pid": PID, "tid": self.track(fid),
                   "ts": ev.ktime_ns / 1000, "name": f"L2 {detail.get('template', '?')}",
                   "cat": "L2", "args": {"flow": fid, "event": ev.id, **detail}})
        self.matches += 1

    def finish(self, names: dict[int, str], end_t: int) -> None:
        for fid in list(self.state):
            self._close(fid, end_t)
        for fid, tid in sorted(self.flows.items()):
            self.emit({"ph": "M", "pid": PID, "tid": tid, "name": "thread_name",
                       "args": {"name": f"flow {fid} {names.get(fid, '')}".rstrip()}})
            self.emit({"ph": "M", "pid": PID, "tid": tid, "name": "thread_sort_index",
                       "args": {"sort_index": fid}})
        self.out.write("\n]}\n")


def _open_new(path: str) -> IO[str]:
    """The trace file, created (never an existing file or a link followed), private."""
    from gewtui.errors import UsageError

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
    except FileExistsError:
        raise UsageError(f"--perfetto {path}: exists; name a new file") from None
    except OSError as e:
        raise UsageError(f"--perfetto {path}: {e.strerror}") from None
    return os.fdopen(fd, "w", encoding="utf-8")


def write_trace(reader: Any, path: str, *, at: int | None = None, filters: Sequence[str] = (),
                engine_factory: Callable[[], Any] | None = None) -> TraceResult:
    """Fold the reader's events and write the trace to ``path`` (a new file)."""
    from gewtui.debugger.filters import FlowFilter

    if engine_factory is None:
        from gewtui.model.engine import Engine

        sid = reader.header.session.session_id
        engine_factory = lambda: Engine(session_id=sid)   # noqa: E731
    keep: set[int] | None = None
    if filters:
        # A flow matches some filters (a template, its end) only late: fold once to learn
        # which flows stay, then write only theirs (and the session's own events).
        flt = FlowFilter.parse(list(filters))
        pre = engine_factory()
        for ev in _until(reader.iter_events(), at):
            pre.feed(ev)
        keep = {f.flow_id for f in pre.flows() if flt.matches(f)}
    eng = engine_factory()
    by_tuple: dict[tuple, int] = {}      # a connection's tuple -> the flow it last fed
    n = 0
    last_t = 0
    with _open_new(path) as out:
        trace = _Trace(out, reader.header.session.session_id or "-")
        for ev in _until(reader.iter_events(), at):
            n += 1
            last_t = max(last_t, ev.ktime_ns)
            changes = eng.feed(ev)
            key = _tuple_key(ev)
            owner = 0
            if keep is not None:
                changes = [c for c in changes if c.flow_id in keep]
            for c in changes:
                if c.kind == "tcp-state":
                    trace.state_change(c.flow_id, c.detail.get("to", "?"), ev.ktime_ns)
                elif c.kind == "template":
                    trace.match(c.flow_id, dict(c.detail), ev)
                elif c.kind == "terminate":
                    trace.state_change(c.flow_id, "", ev.ktime_ns)
                    trace.state.pop(c.flow_id, None)
                owner = owner or c.flow_id
            if not owner and key is not None:
                # Most evidence (retransmits, summaries) changes no state: the engine still
                # tied it to a flow, which says so through that flow's newest event id.
                cand = by_tuple.get(key)
                if cand and last_event_id(eng, cand) == ev.id:
                    owner = cand
            if owner and key is not None:
                by_tuple[key] = owner
            if keep is not None and owner and owner not in keep:
                continue
            kind = ev.WhichOneof("body") or "empty"
            trace.instant(ev, trace.track(owner) if owner else SESSION_TID, kind)
        flows = eng.flows()
        for f in flows:
            if keep is None or f.flow_id in keep:
                trace.track(f.flow_id)
        trace.finish({f.flow_id: f.key for f in flows}, last_t)
    return TraceResult(path, n, len(trace.flows), trace.slices, trace.matches)


def _until(events: Iterable[events_pb2.Event], at: int | None) -> Iterable[events_pb2.Event]:
    for ev in events:
        if at is not None and ev.id > at:
            return
        yield ev
