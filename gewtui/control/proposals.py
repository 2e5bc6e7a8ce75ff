"""Drops a peer proposed, waiting for the local operator.

Place in the pipeline: the service's RequestDrop adds a proposal here and nothing else; the
front end shows it, and the operator confirms it exactly like a local drop (``d`` in the
TUI, ``drop N`` in the shell: the typed flow id, the full gate). ``ProposalAwareController``
wraps the session's intervention controller so that a drop the operator confirms on a flow
with a pending proposal names the proposing peer in the intervention log. A proposal holds
no override, no risk flag and no confirmation: there is nowhere to put them.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from gewtui.intervene.log import Actor
from gewtui.pb import control_pb2

MAX_PENDING = 64
MAX_REASON = 200


@dataclass(frozen=True)
class ProposedBy(Actor):
    """The local operator, acting on a peer's proposal (named in the log's detail)."""

    peer: str = ""
    proposal_id: int = 0

    def note(self) -> str:
        base = super().note()
        mine = f"proposed by peer {self.peer} (proposal {self.proposal_id}), confirmed locally"
        return f"{mine}; {base}" if base else mine


def _clean(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:MAX_REASON]


class ProposalBook:
    def __init__(self, on_proposal: Callable[[control_pb2.DropProposal], None] | None = None):
        self._lock = threading.Lock()
        self._all: list[control_pb2.DropProposal] = []
        self._next = 1
        self.on_proposal = on_proposal

    def propose(self, flow_id: int, peer: str, reason: str) -> control_pb2.DropProposal | None:
        """A new pending proposal, the pending one already there for this flow, or None
        when too many are waiting."""
        with self._lock:
            for p in self._all:
                if p.flow_id == flow_id and p.state == control_pb2.PENDING:
                    return p
            if sum(p.state == control_pb2.PENDING for p in self._all) >= MAX_PENDING:
                return None
            p = control_pb2.DropProposal(proposal_id=self._next, flow_id=flow_id, peer=peer,
                                         reason=_clean(reason), unix_ns=time.time_ns(),
                                         state=control_pb2.PENDING)
            self._next += 1
            self._all.append(p)
            out = control_pb2.DropProposal()
            out.CopyFrom(p)
        if self.on_proposal is not None:
            self.on_proposal(out)
        return out

    def pending(self, flow_id: int) -> control_pb2.DropProposal | None:
        with self._lock:
            return next((p for p in self._all if p.flow_id == flow_id and p.state == control_pb2.PENDING), None)

    def settle(self, proposal_id: int, state: int, intervention_id: int = 0) -> None:
        with self._lock:
            for p in self._all:
                if p.proposal_id == proposal_id:
                    p.state = state
                    p.intervention_id = intervention_id

    def withdraw_all(self) -> None:
        with self._lock:
            for p in self._all:
                if p.state == control_pb2.PENDING:
                    p.state = control_pb2.WITHDRAWN

    def snapshot(self) -> list[control_pb2.DropProposal]:
        with self._lock:
            out = []
            for p in self._all:
                c = control_pb2.DropProposal()
                c.CopyFrom(p)
                out.append(c)
            return out


class ProposalAwareController:
    """The session's intervention controller, unchanged, except that a drop confirmed by the
    operator on a flow a peer proposed is logged as "proposed by peer NAME"."""

    def __init__(self, inner: Any, book: ProposalBook):
        self._inner = inner
        self._book = book

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def request_drop(self, flow_id: int, confirmation: Any, **kw: Any) -> Any:
        from gewtui.errors import GewError
        from gewtui.pb import intervention_pb2

        p = self._book.pending(flow_id)
        if p is None:
            return self._inner.request_drop(flow_id, confirmation, **kw)
        me = Actor.current()
        actor = ProposedBy(me.uid, me.tty, me.loginuid, peer=p.peer, proposal_id=p.proposal_id)
        try:
            rec = self._inner.request_drop(flow_id, confirmation, actor=actor, **kw)
        except GewError:
            self._book.settle(p.proposal_id, control_pb2.REFUSED_LOCALLY)
            raise
        ok = rec.outcome != intervention_pb2.REFUSED
        self._book.settle(p.proposal_id, control_pb2.CONFIRMED if ok else control_pb2.REFUSED_LOCALLY,
                          rec.intervention_id)
        return rec
