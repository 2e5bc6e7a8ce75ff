"""Property-based state machine over scope × template × reason chain × override ×
completeness × confirmation, driving the real controller and gate over fakes.

Invariants: a drop executes exactly when all six conditions hold together; the deny map holds
exactly the tuples of flows with an active drop; every denied flow was named by the
confirmation that executed it (a confirmation for one flow never drops another); every
request leaves one log record."""
from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, invariant, precondition, rule,
                                 run_state_machine_as_test)

from gewtui.errors import GateRefused, UsageError
from gewtui.intervene.controller import InterventionController
from gewtui.intervene.gate import CONFIRMATION_MAX_AGE_NS, Confirmation
from gewtui.intervene.log import Actor
from gewtui.pb import intervention_pb2 as ipb

from tests.support.intervention_fakes import (ARGV, SID, Clock, FakeBackend, FakeEngine,
                                              FakeRecorder, FakeSession, deny_tuple, make_chain,
                                              make_flow)

FLOWS = (1, 2, 3)
STATS = {"executed": 0}
flow_ids = st.sampled_from(FLOWS)


class GateMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.clock = Clock()
        self.session = FakeSession()
        self.engine = FakeEngine()
        self.rec = FakeRecorder()
        self.backend = FakeBackend()
        self.cond = {f: {"scope": True, "template": True, "chain": True} for f in FLOWS}
        for f in FLOWS:
            self._publish(f)
        self.ctl = InterventionController(self.session, self.engine, self.rec,
                                          backend=self.backend, ttl_s=30, clock=self.clock,
                                          argv=ARGV, actor=Actor(0, ""))
        self.active: dict[int, int] = {}        # flow -> intervention id (the model)
        self.confirmed_for: dict[int, int] = {}  # intervention id -> flow the confirmation named
        self.logged = 0                          # requests that reached the gate's verdict

    def _publish(self, f: int) -> None:
        c = self.cond[f]
        self.engine.flows[f] = make_flow(f, in_scope=c["scope"])
        if c["chain"]:
            self.engine.chains[f] = make_chain(f, allowed=("drop",) if c["template"] else ())
        else:
            self.engine.chains.pop(f, None)

    # -- the world changes --------------------------------------------------------------
    @rule(f=flow_ids, what=st.sampled_from(["scope", "template", "chain"]), value=st.booleans())
    def set_flow_condition(self, f, what, value):
        self.cond[f][what] = value
        self._publish(f)

    @rule(value=st.booleans())
    def set_override(self, value):
        self.session.allow_intervention = value

    @rule(lost=st.sampled_from([0, 0, 1, 1000]))
    def set_lost(self, lost):
        self.session.lost = lost

    @rule(seconds=st.sampled_from([0.5, 5, 29, 31, 61]))
    def time_passes(self, seconds):
        self.clock.advance(seconds)
        ends = self.ctl.tick()
        for e in ends:
            if e.action == ipb.UNDO:
                assert e.outcome == ipb.EXPIRED
        deadline = {f: iid for f, iid in self.active.items()}
        for e in ends:
            if e.action == ipb.UNDO:
                f = e.flow_id
                assert deadline.get(f) == e.refers_to
                del self.active[f]

    # -- the operator ---------------------------------------------------------------------
    @rule(target_flow=flow_ids, typed=flow_ids, bound=flow_ids, same_session=st.booleans(),
          age=st.sampled_from([0, 1, CONFIRMATION_MAX_AGE_NS + 1]), reuse=st.booleans())
    def request_drop(self, target_flow, typed, bound, same_session, age, reuse):
        k = Confirmation(typed=str(typed), flow_id=bound,
                         session_id=SID if same_session else "s-elsewhere",
                         created_ns=self.clock() - age)
        if reuse:                                 # the same confirmation was already spent
            self.ctl._used.add(k.nonce)
        c = self.cond[target_flow]
        expect = (c["scope"] and c["template"] and c["chain"] and self.session.allow_intervention
                  and self.session.lost == 0 and typed == bound == target_flow and same_session
                  and age <= CONFIRMATION_MAX_AGE_NS and not reuse)
        before = len(self.rec.records)
        try:
            rec = self.ctl.request_drop(target_flow, k)
        except GateRefused:
            self.logged += 1
            assert not expect
            assert self.rec.records[-1].outcome == ipb.REFUSED
            assert self.rec.records[-1].flow_id == target_flow
            return
        except UsageError:
            assert expect and target_flow in self.active
            assert len(self.rec.records) == before
            return
        self.logged += 1
        STATS["executed"] += 1
        assert expect, "executed although a condition failed"
        assert target_flow not in self.active
        assert rec.outcome == ipb.ACTIVE and rec.flow_id == target_flow == typed == bound
        self.active[target_flow] = rec.intervention_id
        self.confirmed_for[rec.intervention_id] = typed

    @rule(target_flow=flow_ids)
    def request_drop_with_a_proper_confirmation(self, target_flow):
        # The random rule above rarely types everything right; this one does, so the
        # all-conditions state is reached in every run and the other conditions decide.
        self.request_drop(target_flow, target_flow, target_flow, True, 0, False)

    @precondition(lambda self: self.active)
    @rule(f=flow_ids)
    def undo(self, f):
        if f not in self.active:
            try:
                self.ctl.undo(flow_id=f)
            except UsageError:
                return
            raise AssertionError("undo of a flow without a drop succeeded")
        rec = self.ctl.undo(flow_id=f)
        assert rec.outcome == ipb.UNDONE and rec.refers_to == self.active.pop(f)

    # -- invariants -----------------------------------------------------------------------
    @invariant()
    def deny_map_is_exactly_the_active_flows(self):
        assert set(self.backend.map) == {deny_tuple(f) for f in self.active}
        assert bool(self.backend.attached) == bool(self.active)

    @invariant()
    def every_drop_was_confirmed_for_its_own_flow(self):
        for d in self.ctl.active():
            assert self.confirmed_for[d.intervention_id] == d.flow_id

    @invariant()
    def every_gated_request_is_logged_once(self):
        ids = {r.intervention_id for r in self.rec.records if r.action == ipb.DROP}
        assert len(ids) == self.logged

    @invariant()
    def nothing_outlives_its_ttl(self):
        assert all(d.remaining_s > 0 for d in self.ctl.active())

    def teardown(self):
        self.ctl.close()
        assert self.backend.map == {} and not self.backend.attached


def test_gate_state_machine():
    STATS["executed"] = 0
    run_state_machine_as_test(GateMachine, settings=settings(
        max_examples=300, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))
    # The machine must have reached the all-conditions state, or it proved nothing.
    assert STATS["executed"] > 0
