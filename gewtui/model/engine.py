"""The observation plane's one entry point: L0 events in, flows and reason chains out.

    eng = Engine()                      # the packaged templates
    for ev in events: changes = eng.feed(ev)
    eng.flows(); eng.chain(flow_id); eng.event(event_id)
    cp = eng.checkpoint(); later = Engine.restore(cp)

feed() is deterministic (same events in, same state out) and cheap: one dispatch on the
event's kind to an anchor, dict lookups, no protobuf built. Snapshots and chains are built
only when asked for. A checkpoint is an independent copy that shares what can no longer
change (terminated flows, pinned evidence bytes).
"""
from __future__ import annotations

from gewtui.model.anchors import Anchor, QueueAnchor, RouteAnchor, SessionAnchor, TcpAnchor
from gewtui.model.changes import Change
from gewtui.model.entities import DIVERGED
from gewtui.model.identity import DEFAULT_RANGE
from gewtui.model.flows import Registry
from gewtui.model.inventory import InventoryAnchor
from gewtui.model.matcher import Matcher
from gewtui.model.reasons import build_chain
from gewtui.model.snapshots import flow_snapshot, flow_summary
from gewtui.model.templates import TemplateSet, packaged_templates
from gewtui.pb import events_pb2, intervention_pb2, model_pb2

__all__ = ["Engine", "Change", "Checkpoint"]

DEFAULT_SILENCE_NS = 2_000_000_000


class Checkpoint:
    """An engine's state at one event: restore with Engine.restore (any number of times)."""

    __slots__ = ("reg", "templates", "session_id", "interventions", "config", "event_index")

    def __init__(self, reg, templates, session_id, interventions, config, event_index):
        self.reg, self.templates, self.session_id = reg, templates, session_id
        self.interventions, self.config, self.event_index = interventions, config, event_index

    @property
    def event_id(self) -> int:
        return self.reg.last_eid


class Engine:
    def __init__(self, templates: TemplateSet | None = None, max_terminated: int = 10_000,
                 silence_ns: int = DEFAULT_SILENCE_NS, *, session_id: str = "",
                 recent_events: int = 4096):
        if max_terminated < 0 or silence_ns < 0 or recent_events < 1:
            raise ValueError("max_terminated and silence_ns must be >= 0, recent_events >= 1")
        self.templates = templates if templates is not None else packaged_templates()
        self.session_id = session_id
        self._config = (max_terminated, silence_ns, recent_events)
        self._reg = Registry(Matcher(self.templates), silence_ns=silence_ns,
                             max_terminated=max_terminated, recent_events=recent_events)
        self._interventions: dict[int, list[tuple[intervention_pb2.InterventionRecord, list[int]]]] = {}
        self._wire()

    def _wire(self) -> None:
        self._ring, self._ring_size = self._reg.ring, self._reg.ring_size
        # one anchor per lifecycle (gewtui.model.anchors; the inventory's in gewtui.model.inventory)
        reg = self._reg
        self.anchors: list[Anchor] = [TcpAnchor(reg), QueueAnchor(reg), RouteAnchor(reg),
                                      SessionAnchor(reg), InventoryAnchor(reg)]
        self._tcp = self.anchors[0]
        self._dispatch = {}
        for a in self.anchors:
            self._dispatch.update(a.handlers())

    # -- feed -------------------------------------------------------------------------------
    # feed() takes the event's wire bytes too (callers holding them may pass them)
    takes_raw = True

    def feed(self, ev: events_pb2.Event, raw: bytes | None = None) -> list[Change]:
        """Apply one L0 event; returns what it caused (often nothing). ``raw``: the event's
        serialized form when the caller has it (the live head: the capture's bytes), so the
        evidence a state change pins is those bytes, not the event serialized again."""
        self._tcp.raw = raw
        kind = ev.WhichOneof("body")
        reg = self._reg
        eid = ev.id
        t = ev.ktime_ns
        self._ring[eid % self._ring_size] = ev
        reg.n_events += 1
        reg.last_eid = eid
        if t > reg.now:
            reg.now = t
        out: list[Change] = []
        if reg.idle and reg.idle[0][0] < t:
            reg.sweep(t, eid, out)
        h = self._dispatch.get(kind)
        if h is not None:
            h(ev, getattr(ev, kind), eid, t, out)
        return out

    def end(self) -> list[Change]:
        """The stream ended (end of a recording without a "stopped" mark): terminate every
        live flow with end_reason "session-end" (idle ones: "closed")."""
        out: list[Change] = []
        reg = self._reg
        if reg.last_eid:
            reg.end_all("session-end", reg.last_eid, reg.now, out)
        return out

    # -- queries ----------------------------------------------------------------------------
    def flows(self) -> list[model_pb2.FlowSnapshot]:
        return [flow_snapshot(self._reg.flows[fid], self._reg) for fid in sorted(self._reg.flows)]

    def flow(self, flow_id: int) -> model_pb2.FlowSnapshot | None:
        f = self._reg.flows.get(flow_id)
        return flow_snapshot(f, self._reg) if f is not None else None

    def port_range(self, netns: int) -> tuple[int, int]:
        """The ephemeral port range of namespace ``netns`` (inode) as the session's
        inventory read it (``NetnsFacts``); Linux's default when it was not read."""
        return self._reg.port_ranges.get(netns, DEFAULT_RANGE)

    def flow_summary(self, flow_id: int) -> model_pb2.FlowSnapshot | None:
        """flow() without members, path, transitions or key text: what a listing shows, at a
        fraction of the cost (flow views of 10,000 rows build it for every row)."""
        f = self._reg.flows.get(flow_id)
        return flow_summary(f, self._reg) if f is not None else None

    def flow_ids(self) -> list[int]:
        return sorted(self._reg.flows)

    def chain(self, flow_id: int) -> model_pb2.ReasonChain | None:
        f = self._reg.flows.get(flow_id)
        if f is None:
            return None
        return build_chain(self._reg, self.templates, f, self.session_id,
                           self._interventions.get(flow_id, ()))

    def chains(self) -> list[model_pb2.ReasonChain]:
        return [self.chain(fid) for fid in sorted(self._reg.flows)]

    def event(self, event_id: int) -> events_pb2.Event | None:
        """An event cited as evidence, or one of the most recent ``recent_events``."""
        return self._reg.event(event_id)

    @property
    def at_event_id(self) -> int:
        return self._reg.last_eid

    @property
    def stats(self) -> dict:
        r = self._reg
        return {
            "events": r.n_events, "flows_live": r.live_count,
            "flows_terminated": len(r.terminated), "evicted": r.evicted,
            "lost_records": r.lost_records, "complete": r.complete,
            "unattributed": r.unattributed, "pinned_events": len(r.pinned),
            "last_event_id": r.last_eid,
        }

    # -- interventions ----------------------------------------------------------------------
    def add_intervention(self, record: intervention_pb2.InterventionRecord) -> None:
        """Attach an intervention record to its flow's chain (the intervention trace)."""
        rec = intervention_pb2.InterventionRecord()
        rec.CopyFrom(record)
        ids = []
        for e in list(rec.verification.evidence_event_ids) + [rec.gate.at_event_id]:
            if e and e not in ids and self._reg.pin_id(e):
                ids.append(e)
        self._interventions.setdefault(rec.flow_id, []).append((rec, ids))

    # -- time travel ------------------------------------------------------------------------
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self._reg.clone(), self.templates, self.session_id,
                          {k: list(v) for k, v in self._interventions.items()}, self._config,
                          self._reg.n_events)

    @classmethod
    def restore(cls, cp: Checkpoint) -> "Engine":
        eng = cls.__new__(cls)
        eng.templates = cp.templates
        eng.session_id = cp.session_id
        eng._config = cp.config
        eng._reg = cp.reg.clone()
        eng._interventions = {k: list(v) for k, v in cp.interventions.items()}
        eng._wire()
        return eng

    def last_event_id(self, flow_id: int) -> int:
        """The newest event attributed to the flow (0 if unknown). Cheap (no snapshot), so a
        consumer can ask after every fed event whether it touched a flow: the debugger's
        ``step flow``, ``break flow N`` and filtered export do."""
        f = self._reg.flows.get(flow_id)
        return f.last_eid if f is not None else 0

    def flows_touched_since(self, event_id: int) -> list[int]:
        """Flows with an event attributed after ``event_id``: also those whose events changed
        only counters (summaries, retransmits), which feed() reports no Change for. One pass
        over the flows, nothing added to the feed path."""
        return [fid for fid, f in self._reg.flows.items() if f.last_eid > event_id]

    def is_live(self, flow_id: int) -> bool:
        f = self._reg.flows.get(flow_id)
        return f is not None and f.phase < DIVERGED
