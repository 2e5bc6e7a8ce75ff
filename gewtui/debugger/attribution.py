"""Which flow an event belongs to, as the engine decided it.

Place in the pipeline: used after each fold by ``step flow``, ``break flow N``, filtered
steps and the filtered export. Most evidence (a retransmit, a probe summary) changes nothing
a ``Change`` would report, but the engine still attributes it to a flow; it says so through
the flow's newest event id.
"""
from __future__ import annotations

from typing import Any, Sequence

from gewtui.pb import events_pb2


def last_event_id(engine: Any, flow_id: int) -> int:
    """The newest event the engine attributed to ``flow_id`` (0 if none)."""
    fast = getattr(engine, "last_event_id", None)
    if fast is not None:
        return fast(flow_id)
    snap = engine.flow(flow_id)      # an engine without the cheap accessor
    return snap.last_event_id if snap is not None else 0


def touches(engine: Any, ev: events_pb2.Event, changes: Sequence[Any], flow_id: int) -> bool:
    """Did folding ``ev`` touch ``flow_id``: a change naming it, or the engine attributing
    the event to it."""
    return any(c.flow_id == flow_id for c in changes) or last_event_id(engine, flow_id) == ev.id
