"""The OpenTelemetry hand-off against a local OTLP receiver the test starts itself (the
collector's gRPC LogsService and MetricsService, served by grpcio on loopback).

A real session on the real kernel sees a client whose SYNs nftables drops; the verdict
(handshake-timeout, warning) must arrive as an OTLP log with the flow key, template,
severity and evidence ids that are events of the recording, and the flow's counters as
OTLP metrics — live from `gew session apply --serve --otlp`, and the same verdicts again
from `gew export FILE --otlp`.
"""
from __future__ import annotations

import ipaddress
import os
import subprocess

import pytest

from gewtui.recording import RecordingReader
from tests.support.control_support import GEW, OtlpReceiver, ServingSession, attrs, make_peer, pair, wait_for

PORT = 7778


def _verdicts(receiver) -> dict:
    with receiver.lock:
        return {attrs(lr.attributes)["gew.flow.id"]: (lr, attrs(lr.attributes)) for lr in receiver.logs}


@pytest.mark.root
@pytest.mark.slow
def test_session_and_export_hand_the_verdicts_to_an_otlp_receiver(netns_pair, gew_instance, tmp_path):
    ns_b = netns_pair.b
    subprocess.run(["ip", "netns", "exec", ns_b, "nft", "add table inet gewctl"], check=True)
    subprocess.run(["ip", "netns", "exec", ns_b, "nft", "add chain inet gewctl in { type filter hook input priority 0 ; }"], check=True)
    subprocess.run(["ip", "netns", "exec", ns_b, "nft", f"add rule inet gewctl in tcp dport {PORT} drop"], check=True)
    etc = tmp_path / "etc"
    pair(etc, make_peer(tmp_path))
    rec = tmp_path / "s.gewrec"
    curl = None
    try:
        with OtlpReceiver() as live_rx:
            s = ServingSession(etc, netns_pair.a, rec, "--otlp", live_rx.endpoint, duration=12,
                               instance=gew_instance.instance_id)
            try:
                s.wait_serving()
                curl = subprocess.Popen(["ip", "netns", "exec", netns_pair.a, "curl", "-s", "--connect-timeout", "8",
                                         f"http://{netns_pair.b_addr}:{PORT}/"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                assert s.proc.wait(60) == 0, s.stderr()[-2000:]
            finally:
                s.stop()
            live = _verdicts(live_rx)
            live_metrics = {m.name: m for m in live_rx.metrics}
        want = ipaddress.ip_address(netns_pair.b_addr)
        hits = [(lr, a) for lr, a in live.values() if "handshake-timeout" in a["gew.templates"]]
        assert hits, f"no handshake-timeout verdict among {[a['gew.templates'] for _, a in live.values()]}"
        lr, a = hits[0]
        assert a["gew.severity"] == "warning" and lr.severity_text == "warning"
        assert str(want) in a["gew.flow.key"] and f":{PORT}" in a["gew.flow.key"]
        assert a["gew.session_id"] == RecordingReader(rec).header.session.session_id
        ids = set(a["gew.evidence_event_ids"])
        retrans = {e.id for e in RecordingReader(rec).iter_events() if e.WhichOneof("body") == "retransmit"}
        assert ids & retrans, "the verdict's evidence does not cite the SYN retransmits"
        assert "handshake" in lr.body.string_value.lower() or "SYN" in lr.body.string_value
        points = [p for p in live_metrics["gew.flow.retransmits"].sum.data_points
                  if attrs(p.attributes)["gew.flow.id"] == a["gew.flow.id"]]
        assert points and points[-1].as_int >= 2

        with OtlpReceiver() as rx:
            out = subprocess.run(GEW + ["export", str(rec), "--otlp", rx.endpoint], capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            again = _verdicts(rx)
        assert "verdicts (OTLP logs)" in out.stdout
        fid = a["gew.flow.id"]
        assert again[fid][1]["gew.templates"] == a["gew.templates"]
        assert again[fid][1]["gew.flow.key"] == a["gew.flow.key"]
    finally:
        if curl is not None and curl.poll() is None:
            curl.terminate()
            curl.wait(10)
        subprocess.run(["ip", "netns", "exec", ns_b, "nft", "delete table inet gewctl"], capture_output=True)


def test_export_to_a_collector_that_is_not_there_is_one_line(tmp_path):
    from tests.support.control_support import tiny_recording

    path = tiny_recording(tmp_path)
    out = subprocess.run(GEW + ["export", str(path), "--otlp", "127.0.0.1:9"], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, OTEL_EXPORTER_OTLP_TIMEOUT="2"))
    assert out.returncode == 69, out
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("gew: --otlp 127.0.0.1:9:")


def test_bad_otlp_endpoint_is_a_usage_error(tmp_path):
    from tests.support.control_support import tiny_recording

    out = subprocess.run(GEW + ["export", str(tiny_recording(tmp_path)), "--otlp", "nowhere"],
                         capture_output=True, text=True)
    assert out.returncode == 64 and out.stderr.count("\n") == 1
