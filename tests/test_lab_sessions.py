"""Each lab scenario under a real session (the real kernel plane): the session, scoped as
the lab suggests, records the events the scenario must produce, with zero lost records,
only events of the scoped namespaces, and a readable recording that ends cleanly."""
from __future__ import annotations

import ipaddress
import os
import secrets
import time
from typing import Callable

import pytest

from gewtui.kernel.live import LiveSession
from gewtui.lab import Lab
from gewtui.pb import events_pb2 as pb
from gewtui.recording import RecordingReader
from tests.support.probes_support import KERNEL_SKIP_STAGES, only_kernel_skips

pytestmark = [pytest.mark.root, pytest.mark.slow]

Events = list[pb.Event]


def _of(evs: Events, kind: str) -> list:
    return [getattr(e, kind) for e in evs if e.WhichOneof("body") == kind]


def _port(t: pb.Tuple, port: int) -> bool:
    return t.dport == port or t.sport == port


def healthy(lab: Lab, evs: Events) -> str:
    st = [s for s in _of(evs, "tcp_state") if _port(s.tuple, lab.port)]
    est = [s for s in st if s.old_state == pb.TCP_SYN_SENT and s.new_state == pb.TCP_ESTABLISHED]
    bad = [r for r in _of(evs, "reset") if _port(r.tuple, lab.port)]
    return "" if len(est) >= 2 and not bad else f"{len(est)} SYN_SENT→ESTABLISHED, {len(bad)} resets"


def refused(lab: Lab, evs: Events) -> str:
    closed = {s.tuple.sport for s in _of(evs, "tcp_state")
              if s.old_state == pb.TCP_SYN_SENT and s.new_state == pb.TCP_CLOSE and s.tuple.dport == 8081}
    rst = {r.tuple.sport for r in _of(evs, "reset")
           if r.direction == pb.RESET_RECEIVED and r.state == pb.TCP_SYN_SENT and r.tuple.dport == 8081}
    both = closed & rst          # the same client tuple: reset received, then SYN_SENT→CLOSE
    return "" if len(both) >= 2 else f"{len(closed)} SYN_SENT→CLOSE, {len(rst)} resets received"


def lossy(lab: Lab, evs: Events) -> str:
    rt = [r for r in _of(evs, "retransmit") if _port(r.tuple, lab.port)]
    return "" if len(rt) >= 3 else f"{len(rt)} retransmits"


def reset(lab: Lab, evs: Events) -> str:
    got = [r for r in _of(evs, "reset")
           if r.direction == pb.RESET_RECEIVED and r.state == pb.TCP_ESTABLISHED and _port(r.tuple, lab.port)]
    sent = [r for r in _of(evs, "reset") if r.direction == pb.RESET_SENT and _port(r.tuple, lab.port)]
    return "" if len(got) >= 2 and len(sent) >= 2 else f"{len(got)} received on ESTABLISHED, {len(sent)} sent"


def route_flap(lab: Lab, evs: Events) -> str:
    dst = ipaddress.ip_address(lab.server_addr).packed
    devs = {f.device for f in _of(evs, "fib") if f.dst == dst and f.err == 0 and f.device.startswith("veth")}
    return "" if {"veth0", "veth1"} <= devs else f"route results for {lab.server_addr}: {sorted(devs)}"


def congested(lab: Lab, evs: Events) -> str:
    drops = [d for d in _of(evs, "skb_drop") if d.reason_name == "QDISC_DROP"]
    flow = [d for d in drops if d.attribution != pb.PACKET_ATTRIBUTION_NONE and _port(d.tuple, lab.port)]
    return "" if len(flow) >= 3 else f"{len(drops)} QDISC_DROP, {len(flow)} attributed to the bulk flow"


def listen_overflow(lab: Lab, evs: Events) -> str:
    syn_rt = [r for r in _of(evs, "retransmit") if r.state == pb.TCP_SYN_SENT and r.tuple.dport == lab.port]
    est = [s for s in _of(evs, "tcp_state") if s.new_state == pb.TCP_ESTABLISHED and s.tuple.dport == lab.port]
    never = [s for s in _of(evs, "tcp_state") if s.old_state == pb.TCP_SYN_SENT and s.new_state == pb.TCP_CLOSE]
    rst = [r for r in _of(evs, "reset") if _port(r.tuple, lab.port)]
    ok = len(syn_rt) >= 3 and len(never) >= 3 and not est and not rst
    return "" if ok else f"{len(syn_rt)} SYN retransmits, {len(never)} never established, {len(est)} est, {len(rst)} rst"


EXPECT: dict[str, Callable[[Lab, Events], str]] = {
    "healthy": healthy, "refused": refused, "lossy": lossy, "reset": reset, "route-flap": route_flap,
    "congested": congested, "listen-overflow": listen_overflow,
    "healthy6": healthy, "refused6": refused, "route-flap6": route_flap, "congested6": congested,
}


@pytest.mark.parametrize("scenario", list(EXPECT))
def test_session_records_what_the_scenario_produces(scenario, gew_instance, tmp_path):
    rec = str(tmp_path / "s.gewrec")
    check = EXPECT[scenario]
    with Lab(scenario, name="s" + secrets.token_hex(3)) as lab:
        scope_inodes = {os.stat(f"/run/netns/{a.split('=', 1)[1]}").st_ino for a in lab.scope_args}
        with LiveSession(lab.scope_args, record=rec, instance=gew_instance.instance_id) as live:
            # the kernel's per-run timing costs every packet: off unless asked (--bpf-stats)
            assert not live.session.plane.config.bpf_stats and live.session.plane._stats_enabler is None
            evs: Events = []
            deadline = time.monotonic() + 12
            why = "nothing observed"
            while time.monotonic() < deadline:
                evs += live.poll(200)
                why = check(lab, evs)
                if not why:
                    break
            st = live.stats
        assert not why, f"{scenario}: {why}"
        assert st.lost == 0, st.incomplete_reason
        assert [e.id for e in evs] == list(range(1, len(evs) + 1))
        # only the scoped namespaces (events with a known namespace)
        outside = {e.attr.netns for e in evs if e.attr.netns and e.attr.netns not in scope_inodes}
        assert not outside, f"events from namespaces outside the scope: {outside}"
    with RecordingReader(rec) as rd:
        assert list(rd.header.session.scope.netns_inodes) == sorted(scope_inodes)
        recs = list(rd.records())
    assert rd.report.clean
    body = [r.WhichOneof("body") for r in recs]
    assert body[-2:] == ["stats", "end"] and recs[-1].end.how == "stopped"
    final = recs[-1].end.stats
    recorded = [r.event for r in recs if r.WhichOneof("body") == "event"]
    # zero lost records and a complete observation, as the end record states it
    assert final.lost_records == 0 and final.produced > 0
    if not final.observation_complete:
        # Known kernel-plane gap: now and then the kernel skips a tracepoint program run
        # (recursion on the CPU, or a softirq drop run it never counts, which the witness
        # catches). That must be counted and recorded, never silent: it is the only reason,
        # and each gap is a LostRecords event in the recording.
        assert only_kernel_skips(final.incomplete_reason), final.incomplete_reason
        stages = {x.stage for x in _of(recorded, "lost")}
        assert stages and stages <= KERNEL_SKIP_STAGES, stages
    else:
        assert final.observation_complete, final.incomplete_reason
        assert not _of(recorded, "lost")
    assert not check(lab, recorded), "the recording misses what the session saw"
