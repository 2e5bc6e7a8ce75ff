"""End to end on the real kernel: the lossy lab, a real live session with every probe, the
real engine and templates. A flow the retransmission-storm template matches is dropped
through the full gate; the verification loop sees the deny counter and the flow's own
retransmits (probe events cited as evidence); the drop shows in the flow's reason chain;
undo removes it; the recording holds the whole story."""
from __future__ import annotations

import secrets
import time

import pytest

from gewtui.intervene.gate import Confirmation
from gewtui.pb import intervention_pb2 as ipb

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _attempt(gew_instance, record: str):
    """One lab session. Returns None if the gate (rightly) refused because the kernel lost
    or skipped probe runs — observation incomplete, so no drop may run — else asserts the
    whole story."""
    from gewtui.errors import GateRefused
    from gewtui.intervene.controller import controller_for
    from gewtui.kernel import tc
    from gewtui.kernel.live import LiveSession
    from gewtui.lab import Lab
    from gewtui.model.engine import Engine

    with Lab("lossy", name="iv" + secrets.token_hex(3)) as lab:
        live = LiveSession(lab.scope_args, record=record, instance=gew_instance.instance_id,
                           allow_intervention=True, gc_on_start=False)
        with live:
            eng = Engine(session_id=live.session_id)
            ctl = controller_for(live, eng, ttl_s=30, argv=["gew-tui", "--allow-intervention"])

            def pump() -> None:
                for ev in live.poll(50):
                    eng.feed(ev)
                    ctl.observe(ev)

            target = None
            end = time.monotonic() + 30
            while target is None and time.monotonic() < end:
                pump()
                target = next((f for f in eng.flows()
                               if "retransmission-storm" in f.templates and f.phase in (1, 2)), None)
            assert target is not None, "no retransmission storm in the lossy lab within 30 s"
            fid = target.flow_id
            assert "drop" in eng.chain(fid).allowed_interventions

            try:
                rec = ctl.request_drop(fid, Confirmation.typed_now(str(fid), fid, live.session_id))
            except GateRefused:
                refused = ctl.log[-1]
                assert refused.outcome == ipb.REFUSED and not live.stats.complete
                assert [c.name for c in refused.gate.conditions if not c.ok] == ["complete"]
                ctl.close()
                return None
            assert rec.outcome == ipb.ACTIVE and rec.gate.allowed
            assert all(i.startswith(lab.client_netns + "/") for i in rec.interfaces)

            verdict = None
            end = time.monotonic() + 8
            while time.monotonic() < end and (verdict is None or verdict.outcome != ipb.EFFECTIVE):
                pump()
                for r in ctl.tick():
                    if r.intervention_id == rec.intervention_id:
                        verdict = r
            assert verdict is not None and verdict.outcome == ipb.EFFECTIVE
            assert verdict.verification.dropped_packets > 0
            cited = [eng.event(i) for i in verdict.verification.evidence_event_ids]
            assert cited and all(e is not None and e.WhichOneof("body") in
                                 ("retransmit", "reset", "tcp_state") for e in cited)
            assert rec.intervention_id in eng.chain(fid).intervention_ids

            undo = ctl.undo(flow_id=fid)
            assert undo.outcome == ipb.UNDONE and undo.refers_to == rec.intervention_id
            for itf in rec.interfaces:
                ns, ifname = itf.split("/", 1)
                assert not [f for f in tc.list_filters(ifname, ns) if f.name == "gew_deny"]
            ctl.close()
    return rec


def test_lossy_lab_drop_is_effective_and_traced(gew_instance, tmp_path):
    from gewtui.recording import RecordingReader

    # A loaded machine can make the kernel skip probe runs; the session is then incomplete
    # and the gate must refuse (checked in _attempt). A fresh session is tried then.
    for attempt in range(3):
        record = str(tmp_path / f"e2e{attempt}.gewrec")
        if _attempt(gew_instance, record) is not None:
            break
    else:
        pytest.fail("three lab sessions in a row lost or skipped probe runs; no drop could be tried")
    with RecordingReader(record) as rd:
        recs = [r.intervention for r in rd.records() if r.WhichOneof("body") == "intervention"]
    story = [(r.action, r.outcome) for r in recs]
    assert story[0] == (ipb.DROP, ipb.ACTIVE)
    assert (ipb.DROP, ipb.EFFECTIVE) in story
    assert story[-1] == (ipb.UNDO, ipb.UNDONE)
