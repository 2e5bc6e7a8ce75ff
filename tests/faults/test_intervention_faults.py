"""Faults around drops (issue 7: cases 1 and 4 with a drop, 9, 13, 14 and 15 for drops).

- SIGKILL with an active drop: the drop outlives the process only until its time to live
  (the classifier enforces it in the kernel) or orphan cleanup, whichever comes first; after
  `gew session gc` no filter, no deny program or map, no pin of ours remains; foreign tc objects and
  pins are untouched; the recording says when and why the drop ended.
- Coexistence: a foreign clsact qdisc with foreign filters stays exactly as it was through a
  drop and its undo.
- Recording disk full: the drop is removed and that is logged where it still can be.
- Scoped interface disappears: the drop bound to it is removed and logged; the session goes on.
- Replay: a recording full of interventions, stepped through in the debugger, never loads a
  program or touches tc; `drop` is refused.
- Privileges: allow_intervention set anywhere but on the process's own command line (session
  options, environment) is refused by the gate; nothing reaches tc.

The child that holds a drop until it is killed is tests/support/drop_owner.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gewtui.intervene.gate import Confirmation
from gewtui.pb import intervention_pb2 as ipb
from tests.support.drop_owner import _kill, _open_live, _ours, _spawn_child, _tuple_json
from tests.support.waiting import wait_for


def _wait(pred, timeout: float) -> bool:
    return bool(wait_for(pred, timeout, step=0.05))


ROOT = Path(__file__).resolve().parents[2]


def _interventions(path: str) -> list:
    from gewtui.recording import RecordingReader

    with RecordingReader(path) as rd:
        return [r.intervention for r in rd.records() if r.WhichOneof("body") == "intervention"]


@pytest.fixture
def foreign_tc(netns_pair, sched_cls_fd):
    """A clsact qdisc on namespace a's veth that is not ours, holding two foreign filters:
    a cls_bpf program (ingress, prio 300) and a u32 filter (egress, prio 5)."""
    from gewtui.kernel import tc

    ns, dev = netns_pair.a, netns_pair.a_if
    subprocess.run(["tc", "-n", ns, "qdisc", "add", "dev", dev, "clsact"], check=True)
    tc.add_bpf_filter(dev, ns, "ingress", sched_cls_fd, 300, 7, "gewt_foreign")
    subprocess.run(["tc", "-n", ns, "filter", "add", "dev", dev, "egress", "prio", "5", "protocol",
                    "ip", "u32", "match", "ip", "dst", "192.0.2.1/32"], check=True)
    return netns_pair


@pytest.mark.root
def test_sigkill_with_active_drop_then_gc(foreign_tc, foreign_pin, gew_instance, tmp_path):
    from tests.conftest import kernel_bpf_objects, tc_filters, tc_qdiscs
    from tests.support.intervention_lab import RATE, Stream

    pair = foreign_tc
    base_filters, base_qdiscs = tc_filters(pair.a, pair.a_if), tc_qdiscs(pair.a, pair.a_if)
    base_objs = kernel_bpf_objects()
    stream = Stream(pair, 5011)
    record = str(tmp_path / "killed.gewrec")
    try:
        p, sid = _spawn_child({"netns": pair.a, "ifname": pair.a_if, "record": record,
                               "instance": gew_instance.instance_id, "tuple": _tuple_json(stream.tuple()),
                               "ttl": 120})
        try:
            assert len(_ours(pair)) == 2
            time.sleep(0.3)
            assert stream.rate(1.0) == 0, "the drop is not in force"
        finally:
            _kill(p)
        # Killed: the kernel still holds the drop (filters keep the program and its map).
        assert len(_ours(pair)) == 2
        assert stream.rate(1.0) == 0

        r = subprocess.run([sys.executable, "-m", "gewtui.cli.main", "session", "gc", "--instance",
                            gew_instance.instance_id], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        assert sid in r.stdout + r.stderr

        assert _ours(pair) == []
        assert tc_filters(pair.a, pair.a_if) == base_filters         # foreign filters untouched
        assert tc_qdiscs(pair.a, pair.a_if) == base_qdiscs           # the foreign clsact stays
        assert os.path.exists(foreign_pin)
        assert not os.path.exists(gew_instance.session_bpffs(sid))

        def gone() -> bool:
            now = kernel_bpf_objects()
            new_progs = {i: n for i, n in now["progs"].items() if i not in base_objs["progs"]}
            new_maps = {i: n for i, n in now["maps"].items() if i not in base_objs["maps"]}
            return "gew_deny" not in new_progs.values() and "deny" not in new_maps.values()
        assert _wait(gone, 5), "the deny program or map outlived the cleanup"

        mark = stream.received
        assert _wait(lambda: stream.received > mark + RATE // 2, 12), "the flow did not recover"
    finally:
        stream.close()
    recs = _interventions(record)
    assert [ipb.InterventionOutcome.Name(r.outcome) for r in recs] == ["ACTIVE", "REMOVED_AFTER_KILL"]
    end = recs[-1]
    assert end.refers_to == recs[0].intervention_id and end.action == ipb.UNDO
    assert "died" in end.detail and "orphan cleanup" in end.detail
    assert end.ktime_ns > recs[0].ktime_ns


@pytest.mark.root
def test_drop_ttl_holds_in_the_kernel_after_sigkill(netns_pair, gew_instance, tmp_path):
    from tests.support.intervention_lab import RATE, Stream

    pair = netns_pair
    stream = Stream(pair, 5012)
    try:
        p, sid = _spawn_child({"netns": pair.a, "ifname": pair.a_if,
                               "record": str(tmp_path / "ttl.gewrec"),
                               "instance": gew_instance.instance_id,
                               "tuple": _tuple_json(stream.tuple()), "ttl": 3})
        t0 = time.monotonic()
        _kill(p)
        mark = stream.received
        # No gc yet: the filters are still attached, but the entry's deadline has passed.
        assert _wait(lambda: stream.received > mark + RATE // 2, 15), "the drop outlived its TTL"
        took = time.monotonic() - t0
        assert len(_ours(pair)) == 2 and took >= 2.0
        gew_instance.gc()
        assert _ours(pair) == []
    finally:
        stream.close()


@pytest.mark.root
def test_override_never_from_environment_or_session_options(netns_pair, gew_instance, tmp_path):
    """Case 14 for drops: a session whose options say allow_intervention (as a config file
    or an environment variable might make them say) in a process whose command line lacks
    --allow-intervention is refused by the gate, and nothing reaches tc."""
    from tests.support.intervention_lab import Stream

    pair = netns_pair
    stream = Stream(pair, 5016)
    try:
        p, out = _spawn_child({"netns": pair.a, "ifname": pair.a_if,
                               "record": str(tmp_path / "noflag.gewrec"),
                               "instance": gew_instance.instance_id,
                               "tuple": _tuple_json(stream.tuple()), "ttl": 60},
                              flag=False, env={"GEW_ALLOW_INTERVENTION": "1",
                                               "GEW_TUI_ALLOW_INTERVENTION": "1"})
        assert p.returncode == 0, out
        assert out.startswith("refused drop of flow 1 refused: override ("), out
        assert "only the local command line counts" in out
        assert _ours(pair) == []
        assert stream.rate(0.5) > 0
    finally:
        stream.close()
    recs = _interventions(str(tmp_path / "noflag.gewrec"))
    assert [r.outcome for r in recs] == [ipb.REFUSED]


@pytest.mark.root
def test_coexistence_through_drop_and_undo(foreign_tc, gew_instance, tmp_path):
    from gewtui.intervene.controller import controller_for
    from tests.conftest import tc_filters, tc_qdiscs
    from tests.support.intervention_lab import LabEngine, Stream

    pair = foreign_tc
    base_filters, base_qdiscs = tc_filters(pair.a, pair.a_if), tc_qdiscs(pair.a, pair.a_if)
    stream = Stream(pair, 5013)
    live = _open_live(pair.a, str(tmp_path / "co.gewrec"), gew_instance.instance_id)
    try:
        ctl = controller_for(live, LabEngine(pair.a, pair.a_if, {1: stream.tuple()}), ttl_s=30,
                             argv=["gew-tui", "--allow-intervention"])
        ctl.request_drop(1, Confirmation.typed_now("1", 1, live.session_id))
        ours = _ours(pair)
        assert sorted((f.direction, f.prio) for f in ours) == [("egress", 1), ("ingress", 1)]
        time.sleep(0.3)
        assert stream.rate(1.0) == 0          # a foreign filter after ours does not stop it
        ctl.undo(flow_id=1)
        assert tc_filters(pair.a, pair.a_if) == base_filters
        assert tc_qdiscs(pair.a, pair.a_if) == base_qdiscs
        ctl.close()
    finally:
        live.close()
        stream.close()
    assert tc_filters(pair.a, pair.a_if) == base_filters


@pytest.mark.root
def test_recording_disk_full_removes_drop_and_logs_it(netns_pair, gew_instance, tiny_fs):
    from gewtui.intervene.controller import controller_for
    from tests.support.intervention_lab import LabEngine, Stream

    pair = netns_pair
    stream = Stream(pair, 5014)
    live = _open_live(pair.a, str(tiny_fs / "full.gewrec"), gew_instance.instance_id)
    engine = LabEngine(pair.a, pair.a_if, {1: stream.tuple()})
    try:
        ctl = controller_for(live, engine, ttl_s=60, argv=["gew-tui", "--allow-intervention"],
                             verify_after_s=0)
        ctl.request_drop(1, Confirmation.typed_now("1", 1, live.session_id))
        assert len(_ours(pair)) == 2
        fd = os.open(tiny_fs / "filler", os.O_WRONLY | os.O_CREAT)   # the disk fills up
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        # The session keeps recording events (as its pump does) until a write fails.
        from gewtui.errors import RecordingError
        from gewtui.pb import events_pb2

        with pytest.raises(RecordingError):
            for i in range(10_000):
                ev = events_pb2.Event(id=100 + i)
                ev.mark.kind, ev.mark.detail = "filler", "x" * 1000
                live.writer.write_event(ev)
                live.writer.flush()
        ends = [r for r in ctl.tick() if r.action == ipb.UNDO]
        assert [r.outcome for r in ends] == [ipb.FAILED]
        assert "recording failed" in ends[0].detail
        assert _ours(pair) == [] and not ctl.active()
        assert engine.interventions[-1].outcome == ipb.FAILED       # shown, though not recorded
        ctl.close()
    finally:
        live.close()
        stream.close()
    recs = _interventions(str(tiny_fs / "full.gewrec"))         # still readable
    assert recs and recs[0].outcome == ipb.ACTIVE


@pytest.mark.root
def test_scoped_interface_disappears_removes_drop(netns_pair, gew_instance, tmp_path):
    from gewtui.intervene.controller import controller_for
    from gewtui.kernel import live as live_mod
    from tests.support.intervention_lab import LabEngine, Stream

    pair = netns_pair
    stream = Stream(pair, 5015)
    engine = LabEngine(pair.a, pair.a_if, {1: stream.tuple()})
    live = _open_live(pair.a, str(tmp_path / "gone.gewrec"), gew_instance.instance_id)
    try:
        ctl = controller_for(live, engine, ttl_s=60, argv=["gew-tui", "--allow-intervention"])
        ctl.request_drop(1, Confirmation.typed_now("1", 1, live.session_id))
        stream.close()
        subprocess.run(["ip", "-n", pair.a, "link", "del", pair.a_if], check=True)
        seen = []
        end = time.monotonic() + live_mod.WATCH_INTERVAL_S * 4
        while time.monotonic() < end and not [r for r in seen if r.action == ipb.UNDO]:
            for ev in live.poll(50):
                ctl.observe(ev)
            seen = list(engine.interventions)
        ends = [r for r in seen if r.action == ipb.UNDO]
        assert len(ends) == 1 and ends[0].outcome == ipb.FAILED
        assert f"{pair.a}/{pair.a_if}" in ends[0].detail and "gone" in ends[0].detail
        assert not ctl.active()
        assert not live.stats.complete                                  # the session noticed
        live.poll(10)                                                    # and keeps running
        ctl.close()
    finally:
        live.close()


@pytest.mark.root
def test_replay_with_interventions_is_inert(tmp_path, monkeypatch):
    """Replay a recording full of drops in the debugger: nothing reaches bcc or tc."""
    import bcc

    from gewtui.debugger.core import Debugger
    from gewtui.debugger.sources import ReplaySource
    from gewtui.errors import GewError
    from gewtui.intervene import backend, classifier
    from gewtui.intervene.controller import ReplayInert
    from gewtui.intervene.controller import controller_for
    from gewtui.kernel import session as ksession, tc
    from gewtui.pb import events_pb2, recording_pb2
    from gewtui.recording import RecordingWriter

    touched: list[str] = []

    def trap(name):
        def f(*a, **k):
            touched.append(name)
            raise AssertionError(f"{name} called during a replay")
        return f

    monkeypatch.setattr(bcc, "BPF", trap("bcc.BPF"))
    monkeypatch.setattr(classifier, "DenyClassifier", trap("DenyClassifier"))
    monkeypatch.setattr(backend, "KernelDropBackend", trap("KernelDropBackend"))
    for fn in ("ensure_clsact", "add_bpf_filter", "remove_filter", "remove_owned"):
        monkeypatch.setattr(tc, fn, trap(f"tc.{fn}"))
    monkeypatch.setattr(ksession.Session, "add_tc_filter", trap("Session.add_tc_filter"))

    path = tmp_path / "past.gewrec"
    hdr = recording_pb2.RecordingHeader()
    hdr.session.session_id = "s-past"
    hdr.session.allow_intervention = True          # the recorded session had the override
    with RecordingWriter(path, hdr) as w:
        for i in range(1, 6):
            ev = events_pb2.Event(id=i, ktime_ns=i * 1000)
            ev.tcp_state.tuple.CopyFrom(events_pb2.Tuple(family=2, saddr=bytes([10, 0, 0, 1]),
                                        daddr=bytes([10, 0, 0, 2]), sport=40000, dport=80,
                                        protocol=6))
            ev.tcp_state.sock = 1
            ev.tcp_state.new_state = events_pb2.TCP_ESTABLISHED
            w.write_event(ev)
            rec = ipb.InterventionRecord(intervention_id=i, flow_id=1, action=ipb.DROP,
                                         outcome=ipb.ACTIVE, session_id="s-past")
            w.write(recording_pb2.Record(intervention=rec))

    src = ReplaySource(path)
    d = Debugger(src)
    while d.ingest(1000):
        pass
    with pytest.raises(ReplayInert):
        controller_for(src, d.head_engine)
    from gewtui.debugger.gating import gate_view, request_drop

    assert len(src.interventions) == 5                      # past drops are shown
    with pytest.raises(GewError, match="inert"):
        request_drop(d, 1, lambda prompt, fid: "1")
    gv = gate_view(d, 1)
    override = [c for c in gv.conditions if c.name == "override"]
    assert not gv.allowed and not override[0].ok and "inert" in override[0].why
    assert touched == []
