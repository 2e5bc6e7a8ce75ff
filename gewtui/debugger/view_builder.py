"""Builds the ``DebugView`` a front end renders, cheaply enough to do it every tick.

Place in the pipeline: the pump (gewtui.debugger.runner) calls ``build()`` after each batch
of ingestion, motion or command; the result is immutable and goes to the UI thread.

Why it stays cheap with 10,000 flows: flow rows are cached per flow and rebuilt only for
flows the debugger marked dirty (the engine's changes name them); only a cursor that
switched engines (back, goto backwards, pause) rebuilds every row. The filtered mapping of
rows is rebuilt when a row or the filter changed, and a row that did not change is the same
object as in the previous view, so the UI can compare by identity and update only what
changed.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable

from gewtui.debugger import names, view_values
from gewtui.debugger.core import Debugger
from gewtui.debugger.series import FlowSeriesCache, SessionRates
from gewtui.debugger.sources import SourceInfo
from gewtui.debugger.view import (BreakpointView, CursorView, DebugView, EMPTY_FLOWS, FlowDetail,
                                  FlowRow, GateView, StatusView)


class Rate:
    """Per-second rate of a growing total over a sliding window of ``window_s``."""

    def __init__(self, clock: Callable[[], float], window_s: float = 2.0) -> None:
        self.clock = clock
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque()

    def update(self, total: float) -> float:
        now = self.clock()
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window_s:
            self._samples.popleft()
        t0, v0 = self._samples[0]
        return (total - v0) / (now - t0) if now > t0 else 0.0


@dataclass
class _Cache:
    generation: int = -1
    position: int = -1
    selected: int | None = None
    version: int = -1
    detail: FlowDetail | None = None


class ViewBuilder:
    def __init__(self, debugger: Debugger, *, clock: Callable[[], float] | None = None,
                 gate_view: Callable[[Debugger, int], GateView | None] | None = None) -> None:
        self.d = debugger
        self.clock = clock or debugger.clock
        self.gate_view = gate_view
        self.info: SourceInfo = debugger.source.info()
        self._rows: dict[int, FlowRow] = {}
        self._match: dict[int, bool] = {}
        self._fp: dict[int, tuple | None] = {}
        self._visible: MappingProxyType = EMPTY_FLOWS
        self._flows_version = 0
        self._seen = 0          # the engine's event id when the rows were last refreshed
        self._filter = None
        self._seq = 0
        self._events_rate = Rate(self.clock)
        self._runs_rate = Rate(self.clock)
        self._detail = _Cache()
        self._rates = SessionRates()
        self._series = FlowSeriesCache()

    # ---- rows ---------------------------------------------------------------------------

    def _refresh_rows(self) -> None:
        d = self.d
        eng = d.engine
        changed = False
        if d.filter is not self._filter:
            changed = self._rebuild_all(eng)
        elif d.marks.dirty is None:
            changed = self._resync(eng)
        else:
            dirty = d.marks.dirty
            touched = getattr(eng, "flows_touched_since", None)
            at = getattr(eng, "at_event_id", None)
            if touched is not None and at is not None:
                if at < self._seen:
                    dirty = None    # not a step forward: compare every row
                else:
                    # Changes name what moved a flow's phase, path or chain; events that
                    # only move its counters name nothing: ask which flows events reached.
                    dirty = dirty.union(touched(self._seen))
            if dirty is None:
                changed = self._resync(eng)
            else:
                for fid in dirty:
                    changed |= self._refresh_one(eng, fid)
        d.marks.dirty = set()
        self._seen = getattr(eng, "at_event_id", 0)
        if changed:
            self._flows_version += 1
            if d.filter:
                self._visible = MappingProxyType(
                    {k: r for k, r in self._rows.items() if self._match.get(k)})
            else:
                self._visible = MappingProxyType(dict(self._rows))

    def _fingerprint(self, eng, fid: int) -> tuple | None:
        """What must differ for a flow's row to differ, read without building a snapshot:
        every event the engine attributes to a flow moves its newest event id, and the
        silence timer ending a flow changes whether it is live."""
        last = getattr(eng, "last_event_id", None)
        live = getattr(eng, "is_live", None)
        if last is None or live is None:
            return None
        return last(fid), live(fid)

    def _row_snapshot(self, eng, fid: int):
        """What a row (and the filter) needs: a flow's summary when no filter looks at its
        members, its full snapshot otherwise."""
        summary = getattr(eng, "flow_summary", None)
        if summary is not None and not self.d.filter:
            return summary(fid)
        return eng.flow(fid)

    def _refresh_one(self, eng, fid: int) -> bool:
        f = self._row_snapshot(eng, fid)
        if f is None:
            if self._rows.pop(fid, None) is not None:
                self._match.pop(fid, None)
                self._fp.pop(fid, None)
                return True
            return False
        self._rows[fid] = view_values.flow_row(f)
        self._match[fid] = self.d.filter.matches(f)
        self._fp[fid] = self._fingerprint(eng, fid)
        return True

    def _rebuild_all(self, eng) -> bool:
        self._rows, self._match, self._fp = {}, {}, {}
        ids = getattr(eng, "flow_ids", None)
        snaps = ([self._row_snapshot(eng, fid) for fid in ids()] if ids is not None
                 else eng.flows())
        for f in snaps:
            self._rows[f.flow_id] = view_values.flow_row(f)
            self._match[f.flow_id] = self.d.filter.matches(f)
            self._fp[f.flow_id] = self._fingerprint(eng, f.flow_id)
        self._filter = self.d.filter
        return True

    def _resync(self, eng) -> bool:
        """The cursor got another engine (back, goto, pause): rebuild only the rows whose
        fingerprint moved, so stepping back with 10,000 flows does not build 10,000
        snapshots."""
        ids = getattr(eng, "flow_ids", None)
        if ids is None or self._fingerprint(eng, 0) is None:
            return self._rebuild_all(eng)
        current = ids()
        changed = False
        for fid in set(self._rows).difference(current):
            del self._rows[fid]
            self._match.pop(fid, None)
            self._fp.pop(fid, None)
            changed = True
        for fid in current:
            if fid not in self._rows or self._fp.get(fid) != self._fingerprint(eng, fid):
                changed |= self._refresh_one(eng, fid)
        return changed

    # ---- detail -------------------------------------------------------------------------

    def _flow_detail(self) -> FlowDetail | None:
        d = self.d
        c = self._detail
        key = (d.engine_generation, d.position, d.selected, d.version)
        if (c.generation, c.position, c.selected, c.version) == key:
            return c.detail
        c.generation, c.position, c.selected, c.version = key
        c.detail = self.flow_detail(d.selected) if d.selected else None
        return c.detail

    def flow_detail(self, flow_id: int) -> FlowDetail | None:
        d = self.d
        eng = d.engine
        snap = eng.flow(flow_id)
        if snap is None:
            return None
        first = d.log.first_ktime
        gaps = [(g.event_id, g.count, g.start_ns, g.end_ns)
                for g in d.lost_gaps if g.position <= d.position]
        chain = eng.chain(flow_id)
        base_event, base = d.diff_base
        if base is not None and base.flow_id != flow_id:
            base = None
        interventions = tuple(view_values.intervention_view(r)
                              for r in getattr(d.source, "interventions", ()) if r.flow_id == flow_id)
        return FlowDetail(
            row=view_values.flow_row(snap), key=snap.key,
            members=tuple(f"{view_values.tuple_text(m.tuple)}  {names.tcp_state_name(m.state)}"
                          for m in snap.members),
            path=view_values.path_views(snap), timeline=view_values.timeline(snap, gaps, first),
            diff=view_values.diff(base, snap) if base is not None else (),
            diff_since_event=base_event if base is not None else 0,
            chain=view_values.chain_node(chain.root) if chain is not None and chain.HasField("root") else None,
            gate=self.gate_view(d, flow_id) if self.gate_view else None,
            interventions=interventions,
            series=self._series.series(d.log, snap, d.position),
        )

    # ---- the whole view -------------------------------------------------------------------

    def build(self) -> DebugView:
        d = self.d
        self._refresh_rows()
        self._seq += 1
        st = d.source.stats()
        eng_stats = getattr(d.engine, "stats", {}) or {}
        first = d.log.first_ktime
        pos = d.position
        ev = d.event_at_cursor()
        ktime = ev.ktime_ns if ev is not None else 0
        status = StatusView(
            session_id=self.info.session_id, verdict=self.info.verdict, mode=self.info.mode,
            events=max(st.events, len(d.log)),
            events_per_s=self._events_rate.update(len(d.log) if d.live else pos),
            lost=st.lost, complete=st.complete, bpf_run_time_ns=st.bpf_run_time_ns,
            bpf_runs_per_s=self._runs_rate.update(st.bpf_run_count),
            bpf_ns_per_run=(st.bpf_run_time_ns / st.bpf_run_count) if st.bpf_run_count else 0.0,
            recording=self.info.recording, recording_size=st.recording_bytes,
            flows_live=int(eng_stats.get("flows_live", 0)),
            flows_terminated=int(eng_stats.get("flows_terminated", 0)),
            scope=self.info.scope, allow_intervention=self.info.allow_intervention,
            lag=getattr(st, "lag", 0),
        )
        cursor = CursorView(
            position=pos, known=len(d.log), complete=d.log.complete,
            event_id=ev.id if ev is not None else 0, ktime_ns=ktime,
            rel=names.duration_text(ktime - first) if ev is not None and first else "",
            state=d.state, mode=self.info.mode,
            motion=d.motion.label if d.motion is not None and not d.following else "",
        )
        templates = getattr(d.engine, "templates", None)
        return DebugView(
            seq=self._seq, status=status, cursor=cursor, flows=self._visible,
            flows_total=len(self._rows), flows_version=self._flows_version,
            selected=d.selected, detail=self._flow_detail(),
            event=view_values.event_view(ev, first) if ev is not None else None,
            breakpoints=tuple(BreakpointView(b.number, b.describe(), b.enabled, b.hits)
                              for b in d.breakpoints),
            hit=d.hit.text() if d.hit is not None else "",
            filters=tuple(d.filter.describe()), message=d.message,
            templates=template_ids(templates),
            rates=self._rates.series(d.log, len(d.log) if d.following else pos),
            template_notes=tuple(getattr(templates, "override_notes", tuple)()),
        )


def template_ids(templates: Any) -> tuple[str, ...]:
    """Template ids from whatever the engine exposes (a mapping, objects with ``id``, names)."""
    if not templates:
        return ()
    if isinstance(templates, dict):
        return tuple(sorted(str(k) for k in templates))
    out = []
    for t in templates:
        out.append(str(getattr(t, "id", t)))
    return tuple(sorted(out))

