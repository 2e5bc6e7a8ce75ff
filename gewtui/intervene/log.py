"""The intervention log: InterventionRecord protobufs, built here and nowhere else.

Place in the pipeline: the controller builds one record per decision — a refusal, a drop
taking effect, a verification, its end (undo, expiry, session end, removal after a kill) —
and hands each to the recorder (so it is inside the recording) and to the reason engine (so
it appears as the flow's intervention trace). Pure: no kernel access.

Who: the real uid of this process and its controlling terminal; the audit login uid (which
survives sudo and cannot be changed by the environment) is added to ``detail`` when known.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Iterable

from gewtui.pb import events_pb2, intervention_pb2, model_pb2

ipb = intervention_pb2
_ACTION = {"drop": ipb.DROP, "undo": ipb.UNDO}


@dataclass(frozen=True)
class Actor:
    uid: int
    tty: str
    loginuid: int | None = None

    @classmethod
    def current(cls) -> "Actor":
        return cls(os.getuid(), _tty(), _loginuid())

    def note(self) -> str:
        return f"loginuid={self.loginuid}" if self.loginuid is not None else ""


def _tty() -> str:
    for fd in (0, 1, 2):
        try:
            return os.ttyname(fd)
        except OSError:
            continue
    return ""


def _loginuid() -> int | None:
    try:
        with open("/proc/self/loginuid") as f:
            v = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return None if v == 0xFFFFFFFF else v    # (uid_t)-1: not set


def _base(intervention_id: int, session_id: str, flow_id: int, action: str, actor: Actor,
          ktime_ns: int, unix_ns: int | None, detail: str) -> ipb.InterventionRecord:
    notes = [n for n in (detail, actor.note()) if n]
    return ipb.InterventionRecord(
        intervention_id=intervention_id, unix_ns=time.time_ns() if unix_ns is None else unix_ns,
        ktime_ns=ktime_ns, uid=actor.uid, tty=actor.tty, session_id=session_id,
        flow_id=flow_id, action=_ACTION[action], detail="; ".join(notes))


def refused(intervention_id: int, session_id: str, flow_id: int, gate: ipb.GateEvaluation,
            chain: model_pb2.ReasonChain | None, actor: Actor, *, action: str = "drop",
            ktime_ns: int = 0, unix_ns: int | None = None, detail: str = "") -> ipb.InterventionRecord:
    rec = _base(intervention_id, session_id, flow_id, action, actor, ktime_ns, unix_ns, detail)
    rec.gate.CopyFrom(gate)
    if chain is not None:
        rec.reason_chain.CopyFrom(chain)
    rec.outcome = ipb.REFUSED
    return rec


def drop(intervention_id: int, session_id: str, flow_id: int, gate: ipb.GateEvaluation,
         chain: model_pb2.ReasonChain, actor: Actor, tuples: Iterable[events_pb2.Tuple],
         interfaces: Iterable[str], ttl_ns: int, *, ktime_ns: int, outcome: int = ipb.ACTIVE,
         wildcard_ports: tuple[int, int] | None = None,
         unix_ns: int | None = None, detail: str = "") -> ipb.InterventionRecord:
    """A drop that was executed (ACTIVE) or whose execution failed (FAILED).
    ``wildcard_ports``: the ports a port 0 in ``tuples`` stood for (a flow key's range)."""
    rec = _base(intervention_id, session_id, flow_id, "drop", actor, ktime_ns, unix_ns, detail)
    rec.gate.CopyFrom(gate)
    rec.reason_chain.CopyFrom(chain)
    rec.tuples.extend(tuples)
    if wildcard_ports is not None and any(t.sport == 0 or t.dport == 0 for t in rec.tuples):
        rec.wildcard_port_lo, rec.wildcard_port_hi = wildcard_ports
    rec.interfaces.extend(interfaces)
    rec.ttl_ns = ttl_ns
    rec.expires_ktime_ns = ktime_ns + ttl_ns if outcome == ipb.ACTIVE else 0
    rec.outcome = outcome
    return rec


def verification(ktime_ns: int, dropped_packets: int, retransmits_after: int,
                 resets_after: int, evidence_event_ids: Iterable[int]) -> ipb.Verification:
    """The observed effect of a drop. EFFECTIVE needs the deny counter to have counted a
    packet: the flow's own retransmits and resets are stated as evidence, but only the
    counter proves the classifier is what stopped them."""
    effective = dropped_packets > 0
    verdict = (f"effective: {dropped_packets} packets dropped; "
               f"{retransmits_after} retransmits, {resets_after} resets since"
               if effective else
               f"no effect seen: 0 packets dropped; {retransmits_after} retransmits, "
               f"{resets_after} resets since")
    return ipb.Verification(ktime_ns=ktime_ns, dropped_packets=dropped_packets,
                          retransmits_after=retransmits_after, resets_after=resets_after,
                          evidence_event_ids=list(evidence_event_ids), verdict=verdict)


def outcome_of(v: ipb.Verification) -> int:
    return ipb.EFFECTIVE if v.dropped_packets > 0 else ipb.NO_EFFECT_SEEN


def verified(drop_rec: ipb.InterventionRecord, v: ipb.Verification) -> ipb.InterventionRecord:
    """The drop's record again, with its verification and the outcome it implies."""
    rec = ipb.InterventionRecord()
    rec.CopyFrom(drop_rec)
    rec.verification.CopyFrom(v)
    rec.outcome = outcome_of(v)
    return rec


def ended(intervention_id: int, drop_rec: ipb.InterventionRecord, outcome: int, actor: Actor, *,
          ktime_ns: int, check: ipb.Verification | None = None,
          unix_ns: int | None = None, detail: str = "") -> ipb.InterventionRecord:
    """The end of a drop: UNDONE, EXPIRED, REMOVED_AT_SESSION_END or REMOVED_AFTER_KILL."""
    if outcome not in (ipb.UNDONE, ipb.EXPIRED, ipb.REMOVED_AT_SESSION_END, ipb.REMOVED_AFTER_KILL,
                       ipb.FAILED):
        raise ValueError(f"{ipb.InterventionOutcome.Name(outcome)} does not end a drop")
    rec = _base(intervention_id, drop_rec.session_id, drop_rec.flow_id, "undo", actor,
                ktime_ns, unix_ns, detail)
    rec.refers_to = drop_rec.intervention_id
    rec.tuples.extend(drop_rec.tuples)
    rec.wildcard_port_lo, rec.wildcard_port_hi = drop_rec.wildcard_port_lo, drop_rec.wildcard_port_hi
    rec.interfaces.extend(drop_rec.interfaces)
    rec.ttl_ns = drop_rec.ttl_ns
    rec.expires_ktime_ns = drop_rec.expires_ktime_ns
    rec.outcome = outcome
    if check is not None:
        rec.verification.CopyFrom(check)
    return rec


def describe(rec: ipb.InterventionRecord) -> str:
    """One line for panels, the shell and export."""
    action = ipb.InterventionAction.Name(rec.action).lower()
    outcome = ipb.InterventionOutcome.Name(rec.outcome).lower().replace("_", " ")
    s = f"#{rec.intervention_id} {action} flow {rec.flow_id}: {outcome}"
    if rec.refers_to:
        s += f" (ends #{rec.refers_to})"
    if rec.outcome == ipb.REFUSED:
        failed = [c.name for c in rec.gate.conditions if not c.ok]
        s += f" — failed: {', '.join(failed)}"
    elif rec.HasField("verification"):
        s += f" — {rec.verification.verdict}"
    return s
