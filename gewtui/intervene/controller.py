"""The intervention controller: request → gate → execute → log → verify → expire or undo.

Place in the pipeline: a live session owns one controller; the TUI's confirmation dialog, the
shell's ``drop``/``undo`` commands and the debugger's command language call it. It reads
flows and reason chains from the engine at the moment of execution, evaluates the gate
(gewtui.intervene.gate), executes a drop through a ``DropBackend`` (the real one,
gewtui.intervene.backend, loads bpf/deny.c and attaches it through the session's tc hook so
the manifest records every filter), writes every decision to the recording and hands it to
the engine, so it shows as the flow's intervention trace.

The session's pump calls ``observe(event)`` for every L0 event (retransmits, resets and
state changes of denied tuples become the drop's evidence; a vanished interface removes the
drops bound to it) and ``tick()`` about once a second (expiry, verification, recording
failure). ``close()`` at session end, Ctrl-C or SIGTERM removes every drop.

Replay is inert: a controller is only ever built over a live session; the constructor
refuses anything else before it touches the kernel, and it loads no program until the first
drop passes the gate.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from gewtui.errors import GewError, UsageError
from gewtui.intervene import log as ilog
from gewtui.intervene.classifier import DenyTuple
from gewtui.intervene.gate import Confirmation, SessionContext, evaluate_gate, refusal
from gewtui.intervene.ports import DropBackend, DropFailed, EngineReader, GateFacts, ReplayInert
from gewtui.intervene.targets import Attachment, attachments_for, deny_entries, denied
from gewtui.intervene.wiring import adapt_live
from gewtui.pb import events_pb2, intervention_pb2, model_pb2, recording_pb2

ipb = intervention_pb2
DEFAULT_TTL_S = 300.0
MAX_TTL_S = 24 * 3600.0
VERIFY_AFTER_S = 3.0          # with no packet dropped by then, the verdict is "no effect seen"
_NS = 1_000_000_000


@dataclass
class ActiveDrop:
    record: intervention_pb2.InterventionRecord     # the latest version of the DROP record
    tuples: list[DenyTuple]
    where: list[Attachment]
    started_ns: int
    expires_ns: int
    base_retransmits: int = 0
    base_resets: int = 0
    retransmits: int = 0          # seen by observe() since the drop
    resets: int = 0
    evidence: list[int] = field(default_factory=list)
    verified: int = 0             # EFFECTIVE / NO_EFFECT_SEEN once written

    @property
    def intervention_id(self) -> int:
        return self.record.intervention_id

    @property
    def flow_id(self) -> int:
        return self.record.flow_id


@dataclass(frozen=True)
class DropView:
    """An active drop as the UI shows it (countdown included)."""

    intervention_id: int
    flow_id: int
    remaining_s: float
    ttl_s: float
    dropped_packets: int
    outcome: str
    interfaces: tuple[str, ...]
    tuples: tuple[str, ...]


def parse_ttl(text: str | float | int) -> float:
    """--drop-ttl: seconds, or with a unit: 90s, 5m, 1h. Between 1 s and 24 h."""
    s = str(text).strip().lower()
    mult = {"s": 1, "m": 60, "h": 3600}.get(s[-1:], None)
    try:
        v = float(s[:-1]) * mult if mult else float(s)
    except ValueError:
        raise UsageError(f"bad --drop-ttl {ascii(str(text))[:40]}: use seconds or 90s, 5m, 1h") from None
    if not 1 <= v <= MAX_TTL_S:
        raise UsageError(f"--drop-ttl must be between 1 s and {MAX_TTL_S / 3600:.0f} h")
    return v


def _tuple_of(ev: events_pb2.Event) -> events_pb2.Tuple | None:
    body = ev.WhichOneof("body")
    if body in ("retransmit", "reset", "tcp_state", "destroy", "cong_state"):
        return getattr(ev, body).tuple
    return None


class InterventionController:
    """Gated, logged, verified, expiring drops for one live session.

    ``session`` must be a live session (``is_live`` true); it provides ``session_id``,
    ``allow_intervention`` (the parsed option; honoured only when also on this process's
    command line), ``scope`` (its resolved scope) and ``gate_facts()``. ``backend`` is built
    from the session when not given. Thread-safe: every public method takes one lock."""

    def __init__(self, session: Any, engine: EngineReader, recorder: Any | None = None, *,
                 backend: DropBackend | None = None, ttl_s: float = DEFAULT_TTL_S,
                 verify_after_s: float = VERIFY_AFTER_S,
                 clock: Callable[[], int] = time.monotonic_ns,
                 actor: ilog.Actor | None = None, argv: list[str] | None = None,
                 on_record: Callable[[intervention_pb2.InterventionRecord], None] | None = None):
        session, recorder = adapt_live(session, recorder)
        if not getattr(session, "is_live", False) or getattr(session, "replay", False):
            raise ReplayInert("interventions need a live session; a replayed recording is inert")
        self.session = session
        self.engine = engine
        self.recorder = recorder
        self.ttl_ns = int(parse_ttl(ttl_s) * _NS)
        self.verify_after_ns = int(verify_after_s * _NS)
        self._clock = clock
        self._actor = actor or ilog.Actor.current()
        self._argv = argv
        self._on_record = on_record
        self._backend = backend
        self._lock = threading.RLock()
        self._next_id = 1
        self._used: set[str] = set()
        self._drops: dict[int, ActiveDrop] = {}
        self._attached: dict[Attachment, set[int]] = {}
        self._closed = False
        self.log: list[intervention_pb2.InterventionRecord] = []

    # -- helpers -----------------------------------------------------------------------
    def _backend_(self) -> DropBackend:
        if self._backend is None:
            from gewtui.intervene.backend import KernelDropBackend

            self._backend = KernelDropBackend(self.session)
        return self._backend

    def _id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    def _context(self, now: int) -> SessionContext:
        facts: GateFacts = self.session.gate_facts()
        return SessionContext.live(
            self.session.session_id, bool(getattr(self.session, "allow_intervention", False)),
            argv=self._argv, observation_complete=facts.observation_complete,
            lost_records=facts.lost_records, incomplete_reason=facts.incomplete_reason,
            at_event_id=facts.at_event_id, ktime_ns=now, now_ns=now,
            used_confirmations=frozenset(self._used))

    def _emit(self, rec: intervention_pb2.InterventionRecord, *, strict: bool = False) -> None:
        """Into the recording (flushed, so a SIGKILL right after keeps it), then the engine.
        ``strict``: a recording failure raises before the engine hears of the record (a drop
        must not run unlogged)."""
        if self.recorder is not None:
            failed = getattr(self.recorder, "failed", None)
            try:
                if failed is not None:
                    raise DropFailed(f"the intervention log cannot be written: {failed.message}")
                self.recorder.write(recording_pb2.Record(intervention=rec))
                self.recorder.flush()
            except GewError:
                if strict:
                    raise
        self.log.append(rec)
        try:
            self.engine.add_intervention(rec)
        finally:
            if self._on_record is not None:
                self._on_record(rec)

    # -- the operator's requests ---------------------------------------------------------
    def request_drop(self, flow_id: int, confirmation: Confirmation | None, *,
                     actor: ilog.Actor | None = None) -> intervention_pb2.InterventionRecord:
        """Evaluate the gate now and, if every condition holds, drop the flow's tuples.
        Raises GateRefused (logged) or DropFailed (logged, rolled back). ``actor`` replaces
        the operator in this request's log records (a drop a control-plane peer proposed)."""
        with self._lock:
            if actor is not None:
                prev, self._actor = self._actor, actor
                try:
                    return self.request_drop(flow_id, confirmation)
                finally:
                    self._actor = prev
            if self._closed:
                raise UsageError("the session is ending; no new drops")
            try:
                flow, chain, ev, now = self._gate(flow_id, confirmation)
                if ev.allowed and not self._prepared():
                    # Loading the classifier the first time takes a moment (compilation);
                    # the gate is evaluated again after it, at the moment of execution.
                    flow, chain, ev, now = self._gate(flow_id, confirmation)
            finally:
                if confirmation is not None:
                    self._used.add(confirmation.nonce)     # single use, whatever the outcome
            if not ev.allowed:
                self._emit(ilog.refused(self._id(), self.session.session_id, flow_id, ev, chain,
                                        self._actor, ktime_ns=now))
                raise refusal(ev, flow_id)
            assert flow is not None and chain is not None
            for d in self._drops.values():
                if d.flow_id == flow_id:
                    raise UsageError(f"flow {flow_id} already has drop #{d.intervention_id} "
                                     f"(undo it first)")
            return self._execute(flow, chain, ev, now)

    def _gate(self, flow_id: int, confirmation: Confirmation | None):
        now = self._clock()
        flow = self.engine.flow(flow_id)
        chain = self.engine.chain(flow_id)
        return flow, chain, evaluate_gate(flow, chain, self._context(now), confirmation, "drop"), now

    def _prepared(self) -> bool:
        """True if the backend was ready already; otherwise make it ready (load the program,
        attach nothing) and return False."""
        backend = self._backend_()
        prepare = getattr(backend, "prepare", None)
        return prepare() if prepare is not None else True

    def _execute(self, flow: model_pb2.FlowSnapshot, chain: model_pb2.ReasonChain,
                 ev: intervention_pb2.GateEvaluation, now: int) -> intervention_pb2.InterventionRecord:
        iid = self._id()
        # a flow key covers the ports of the flow's namespace's ephemeral range
        eph = self.engine.port_range(flow.netns)
        tuples = deny_entries(flow, eph)
        where = attachments_for(flow, getattr(self.session.scope, "interfaces", ()))

        def failed(why: str) -> DropFailed:
            self._emit(ilog.drop(iid, self.session.session_id, flow.flow_id, ev, chain, self._actor,
                                 [t.to_pb() for t in tuples], [a.label for a in where],
                                 self.ttl_ns, ktime_ns=now, outcome=ipb.FAILED, wildcard_ports=eph,
                                 detail=why))
            return DropFailed(f"drop of flow {flow.flow_id} failed: {why}")

        if not tuples:
            raise failed("the flow has no live connection and no flow key to deny")
        if not where:
            raise failed("no scoped interface in the flow's network namespace")
        expires = now + self.ttl_ns
        backend = self._backend_()
        added: list[DenyTuple] = []
        attached: list[Attachment] = []
        try:
            added = backend.deny(tuples, expires)
            for a in where:
                if a not in self._attached:
                    backend.attach(a)
                    attached.append(a)
                    self._attached[a] = set()
            rec = ilog.drop(iid, self.session.session_id, flow.flow_id, ev, chain, self._actor,
                            [t.to_pb() for t in tuples], [a.label for a in where], self.ttl_ns,
                            ktime_ns=now, wildcard_ports=eph)
            self._emit(rec, strict=True)
        except Exception as e:
            for a in reversed(attached):
                self._attached.pop(a, None)
                _quiet(backend.detach, a)
            _quiet(backend.allow, added)
            why = e.message if isinstance(e, GewError) else f"{type(e).__name__}: {e}"
            raise failed(f"rolled back: {why}") from None
        for a in where:
            self._attached[a].add(iid)
        c = flow.counters
        self._drops[iid] = ActiveDrop(rec, tuples, where, now, expires, c.retransmits,
                                      c.resets_sent + c.resets_received)
        return rec

    def undo(self, flow_id: int | None = None, intervention_id: int | None = None
             ) -> intervention_pb2.InterventionRecord:
        """Remove a drop at once: by intervention id, by flow id, or the latest one."""
        with self._lock:
            d = self._find(flow_id, intervention_id)
            return self._end(d, ipb.UNDONE, "undone by the operator")

    def _find(self, flow_id: int | None, intervention_id: int | None) -> ActiveDrop:
        if intervention_id is not None:
            d = self._drops.get(intervention_id)
            if d is None:
                raise UsageError(f"no active drop #{intervention_id}")
            return d
        cands = [d for d in self._drops.values() if flow_id is None or d.flow_id == flow_id]
        if not cands:
            raise UsageError("no active drop" + (f" on flow {flow_id}" if flow_id is not None else ""))
        return max(cands, key=lambda d: d.intervention_id)

    def _end(self, d: ActiveDrop, outcome: int, detail: str) -> intervention_pb2.InterventionRecord:
        """Remove one drop from the kernel and log how it ended, with its final counters."""
        backend = self._backend_()
        errors: list[str] = []
        self._drops.pop(d.intervention_id, None)
        packets = 0
        try:
            packets = sum(c.packets for c in backend.allow(d.tuples).values())
        except Exception as e:
            errors.append(f"deny entries: {e}")
        for a in reversed(d.where):
            users = self._attached.get(a)
            if users is None:
                continue
            users.discard(d.intervention_id)
            if not users:
                del self._attached[a]
                try:
                    backend.detach(a)
                except Exception as e:
                    errors.append(f"detach {a.label}: {e}")
        now = self._clock()
        rec = ilog.ended(self._id(), d.record, outcome, self._actor, ktime_ns=now,
                         check=self._verification(d, now, packets),
                         detail="; ".join([detail] + errors))
        self._emit(rec)
        return rec

    # -- what the session's pump calls -------------------------------------------------
    def observe(self, ev: events_pb2.Event) -> None:
        """Fold one L0 event in: evidence for the verification, or a scope change."""
        if not self._drops:
            return
        with self._lock:
            body = ev.WhichOneof("body")
            if body == "scope_change":
                self._scope_changed(ev.scope_change)
                return
            t = _tuple_of(ev)
            if t is None or not t.saddr:
                return
            try:
                dt = DenyTuple.from_pb(t)
            except Exception:
                return
            for d in self._drops.values():
                if ev.ktime_ns < d.started_ns or not denied(dt, d.tuples):
                    continue
                if body == "retransmit":
                    d.retransmits += 1
                elif body == "reset":
                    d.resets += 1
                elif body != "tcp_state":
                    continue
                if len(d.evidence) < 64:
                    d.evidence.append(ev.id)

    def _scope_changed(self, sc: events_pb2.ScopeChange) -> None:
        if sc.what not in ("iface-removed", "netns-removed"):
            return
        ns = sc.netns or "host"
        for d in list(self._drops.values()):
            hit = [a for a in d.where if (a.netns or "host") == ns
                   and (sc.what == "netns-removed" or a.ifname == sc.iface)]
            if hit:
                self._end(d, ipb.FAILED, f"{sc.what}: {hit[0].label} is gone; the drop can "
                          "no longer be watched there, so it was removed")

    def tick(self) -> list[intervention_pb2.InterventionRecord]:
        """Expiry, verification, and the recording's health. Returns the records written."""
        out: list[intervention_pb2.InterventionRecord] = []
        if not self._drops:
            return out
        with self._lock:
            now = self._clock()
            for d in list(self._drops.values()):
                if now >= d.expires_ns:
                    out.append(self._end(d, ipb.EXPIRED, f"time to live of "
                                         f"{d.record.ttl_ns / _NS:.0f} s reached"))
                else:
                    rec = self._maybe_verify(d, now)
                    if rec is not None:
                        out.append(rec)
            # Checked last, so a write that failed in this very tick counts.
            failed = getattr(self.recorder, "failed", None) if self.recorder is not None else None
            if failed is not None:
                for d in list(self._drops.values()):
                    out.append(self._end(d, ipb.FAILED, f"the recording failed ({failed.message}); "
                                         "a drop is never left running unlogged"))
        return out

    def _verification(self, d: ActiveDrop, now: int,
                      packets: int | None = None) -> intervention_pb2.Verification:
        if packets is None:
            packets = self._backend_().counters(d.tuples).packets
        flow = self.engine.flow(d.flow_id)
        retrans, resets = d.retransmits, d.resets
        if flow is not None:
            fc = flow.counters
            retrans = max(retrans, fc.retransmits - d.base_retransmits)
            resets = max(resets, fc.resets_sent + fc.resets_received - d.base_resets)
        return ilog.verification(now, packets, retrans, resets, d.evidence)

    def _maybe_verify(self, d: ActiveDrop, now: int) -> intervention_pb2.InterventionRecord | None:
        v = self._verification(d, now)
        outcome = ilog.outcome_of(v)
        due = now - d.started_ns >= self.verify_after_ns
        if outcome == d.verified or (outcome == ipb.NO_EFFECT_SEEN and not due):
            return None
        if outcome == ipb.EFFECTIVE and not v.evidence_event_ids and not due:
            # Packets were dropped, but the flow's reaction (retransmits, resets, state
            # changes stamped after the drop began) is not in yet: wait for it, so the
            # verdict cites the evidence it rests on.
            return None
        d.verified = outcome
        d.record = ilog.verified(d.record, v)
        self._emit(d.record)
        return d.record

    # -- for the UI ------------------------------------------------------------------------
    def active(self) -> list[DropView]:
        with self._lock:
            now = self._clock()
            out = []
            for d in sorted(self._drops.values(), key=lambda d: d.intervention_id):
                c = self._backend_().counters(d.tuples)
                out.append(DropView(
                    d.intervention_id, d.flow_id, max(0.0, (d.expires_ns - now) / _NS),
                    d.record.ttl_ns / _NS, c.packets,
                    ipb.InterventionOutcome.Name(d.record.outcome),
                    tuple(a.label for a in d.where), tuple(str(t) for t in d.tuples)))
            return out

    def close(self, outcome: int = ipb.REMOVED_AT_SESSION_END, detail: str = "session end") -> None:
        """Remove every drop and free the classifier. Idempotent; call it from the session's
        shutdown path (end, Ctrl-C, SIGTERM)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                for d in sorted(self._drops.values(), key=lambda d: d.intervention_id):
                    _quiet(self._end, d, outcome, detail)
            finally:
                if self._backend is not None:
                    self._backend.close()


def controller_for(live: Any, engine: EngineReader, *, ttl_s: float = DEFAULT_TTL_S,
                   **kw: Any) -> InterventionController:
    """The intervention controller of an open LiveSession. Anything else — a replay source,
    a recording, a closed session — is refused with ReplayInert before the kernel is touched."""
    from gewtui.kernel.live import LiveSession

    if not isinstance(live, LiveSession):
        raise ReplayInert("interventions need a live session; a replayed recording is inert")
    if getattr(live, "_closed", False):
        raise ReplayInert("the live session is closed")
    return InterventionController(live, engine, None, ttl_s=ttl_s, **kw)


def _quiet(fn: Callable[..., Any], *args: Any) -> None:
    """Rollback and shutdown steps: one failure must not stop the rest."""
    try:
        fn(*args)
    except Exception:
        pass
