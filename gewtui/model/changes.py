"""What one fed event caused: the small, immutable records Engine.feed returns.

Kinds: emerge, evolve, diverge, terminate (flow lifecycle); template (an L2 match);
tcp-state, path, owner (L1 structure); lost (the session became incomplete); evict (a
terminated flow dropped from memory). Session-level changes carry flow_id 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

KINDS = frozenset({"emerge", "evolve", "diverge", "terminate", "template", "tcp-state", "path",
                   "owner", "lost", "evict"})


@dataclass(frozen=True, slots=True)
class Change:
    kind: str
    flow_id: int
    event_id: int
    detail: dict[str, str] = field(default_factory=dict)
