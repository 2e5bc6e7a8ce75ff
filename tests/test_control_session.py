"""The control plane of a real session: `gew session apply --serve` on the real kernel,
real redis traffic between two namespaces, a paired peer and strangers calling its socket.

Asserts what a peer sees (runtime facts, capabilities, the compatibility verdict, flows and
reasons of the traffic from the start and live), what it is refused (unpaired, bad
signature, stale timestamp, replayed nonce; drop proposals the session cannot take, no field
for an override) and that the socket is gone after every kind of end.
"""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gewtui.control import signing
from gewtui.control.client import CallFailed, PeerClient
from gewtui.pb import control_pb2 as cpb
from gewtui.pb import model_pb2, session_pb2
from gewtui.recording import RecordingReader
from tests.support.control_support import GEW, Redis, ServingSession, client, make_peer, pair, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def etc(tmp_path):
    d = tmp_path / "etc-gewyvern"       # a private /etc/gewyvern (GEWYVERN_ETC), made by gew
    yield d


@pytest.fixture
def peer(tmp_path, etc):
    key = make_peer(tmp_path)
    pair(etc, key)
    return key


@pytest.fixture
def redis(netns_pair, tmp_path):
    r = Redis(netns_pair, tmp_path)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def serving(netns_pair, gew_instance, etc, tmp_path, peer):
    s = ServingSession(etc, netns_pair.a, tmp_path / "s.gewrec", instance=gew_instance.instance_id)
    try:
        s.wait_serving()
        yield s
    finally:
        s.stop()


def _flows_to(flows, addr: str, port: int) -> list:
    import ipaddress

    want = ipaddress.ip_address(addr).packed
    return [f for f in flows if f.peer_addr == want and f.peer_port == port]


def test_socket_is_private_and_under_the_session_run_dir(serving, gew_instance):
    st = os.lstat(serving.socket)
    assert stat.S_ISSOCK(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600
    assert os.path.dirname(serving.socket).startswith(gew_instance.run_dir + "/sessions/")


def test_unpaired_and_forged_requests_are_refused_and_recorded(serving, peer, tmp_path):
    stranger = Ed25519PrivateKey.generate()
    with PeerClient(serving.socket, stranger) as c:
        with pytest.raises(CallFailed) as e:
            c.call("GetRuntimeInfo")
        assert e.value.status == "PERMISSION_DENIED" and "not paired" in e.value.details
        # no metadata at all
        with pytest.raises(CallFailed) as e:
            c.call_raw("GetRuntimeInfo", b"", cpb.RuntimeInfoReply, metadata=[])
        assert e.value.status == "UNAUTHENTICATED"
    with client(serving.socket, peer) as c:
        method = "/gewyvern.v1.Control/GetFlow"
        body = cpb.FlowRequest(flow_id=1).SerializeToString()
        # signed over other bytes than sent
        md = signing.sign(c.key, method, cpb.FlowRequest(flow_id=2).SerializeToString())
        with pytest.raises(CallFailed) as e:
            c.call_raw("GetFlow", body, model_pb2.FlowSnapshot, metadata=md)
        assert (e.value.status, e.value.details) == ("UNAUTHENTICATED", "bad signature")
        # signed by another key under this peer's id
        md = [(k, v) for k, v in signing.sign(Ed25519PrivateKey.generate(), method, body) if k != signing.PEER]
        md.append((signing.PEER, c.peer_id))
        with pytest.raises(CallFailed) as e:
            c.call_raw("GetFlow", body, model_pb2.FlowSnapshot, metadata=md)
        assert e.value.details == "bad signature"
        # a timestamp 31 s old, correctly signed
        md = signing.sign(c.key, "/gewyvern.v1.Control/GetRuntimeInfo", b"", ts_ns=time.time_ns() - 31 * 10**9)
        with pytest.raises(CallFailed) as e:
            c.call_raw("GetRuntimeInfo", b"", cpb.RuntimeInfoReply, metadata=md)
        assert e.value.status == "UNAUTHENTICATED" and "off this host's clock" in e.value.details
        # the same signed request twice: the second is a replay
        md = signing.sign(c.key, "/gewyvern.v1.Control/GetRuntimeInfo", b"")
        assert c.call_raw("GetRuntimeInfo", b"", cpb.RuntimeInfoReply, metadata=md).peer_name == "fleet1"
        with pytest.raises(CallFailed) as e:
            c.call_raw("GetRuntimeInfo", b"", cpb.RuntimeInfoReply, metadata=md)
        assert e.value.details == "replayed nonce"
        # the method name is signed too: a GetRuntimeInfo signature does not open GetCapabilities
        md = signing.sign(c.key, "/gewyvern.v1.Control/GetRuntimeInfo", b"")
        with pytest.raises(CallFailed) as e:
            c.call_raw("GetCapabilities", b"", session_pb2.CapabilityReport, metadata=md)
        assert e.value.details == "bad signature"
        summary = c.call("GetSession")
    assert summary.rejected_requests == 7
    err = serving.stderr()
    for why in ("not paired", "no peer id", "bad signature", "off this host's clock", "replayed nonce"):
        assert f": {why}" in err or why in err, why


def test_revoked_peer_is_refused_on_its_next_request(serving, peer, etc):
    with client(serving.socket, peer) as c:
        assert c.call("GetRuntimeInfo").peer_name == "fleet1"
        subprocess.run(GEW + ["pair", "revoke", "fleet1"], env=dict(os.environ, GEWYVERN_ETC=str(etc)),
                       check=True, capture_output=True)
        with pytest.raises(CallFailed) as e:
            c.call("GetRuntimeInfo")
        assert e.value.status == "PERMISSION_DENIED"


def test_paired_peer_negotiates_then_streams_flows_and_reasons_from_start_and_live(serving, peer, redis, netns_pair):
    with client(serving.socket, peer) as c:
        info = c.call("GetRuntimeInfo")
        assert info.runtime.kernel_release == os.uname().release and info.protocol_version == 1
        assert len(info.server_public_key) == 32
        caps = c.call("GetCapabilities")
        header = RecordingReader(serving.record).header
        assert caps == header.capabilities and caps.verdict == session_pb2.FULLY_SUPPORTED
        assert any(x.name == "ringbuf" for x in caps.capabilities)
        ok = c.call("VerifyCompatibility", cpb.CompatibilityRequest(protocol_version=1,
                                                                    required_capabilities=["ringbuf", "clsact"]))
        assert ok.compatible and [r.name for r in ok.required] == ["ringbuf", "clsact"]
        bad = c.call("VerifyCompatibility", cpb.CompatibilityRequest(protocol_version=1,
                                                                     required_capabilities=["kprobes"]))
        assert not bad.compatible and "kprobes: not supported" in bad.reason
        sessions = c.call("ListSessions").sessions
        assert [s.info.session_id for s in sessions] == [header.session.session_id]

        redis.bench(2000)        # traffic before any stream exists
        time.sleep(1.5)          # the recording is flushed at least once a second
        n0 = wait_for(lambda: c.call("GetSession").events, 5)
        got: list = []
        done = threading.Event()

        def live_reader():
            try:
                for f in c.stream("flows", live_only=True, timeout=30):
                    got.append(f)
                    if _flows_to(got, netns_pair.b_addr, 7777):
                        break
            except CallFailed:
                pass
            done.set()

        t = threading.Thread(target=live_reader, daemon=True)
        t.start()
        # from the start: every flow of the redis traffic so far, with its counters
        history = []
        for f in c.stream("flows", timeout=15):
            history.append(f)
            seen = _flows_to(history, netns_pair.b_addr, Redis.PORT)
            if seen and seen[-1].counters.connections >= 4:
                break
        to_redis = _flows_to(history, netns_pair.b_addr, Redis.PORT)
        assert to_redis and to_redis[-1].counters.connections >= 4
        reasons = []
        for ch in c.stream("reasons", timeout=15):
            reasons.append(ch)
            if any(r.flow_id == to_redis[-1].flow_id for r in reasons):
                break
        chain = next(r for r in reasons if r.flow_id == to_redis[-1].flow_id)
        assert chain.root.layer == model_pb2.L3 and chain.session_id == header.session.session_id
        assert c.call("GetFlow", cpb.FlowRequest(flow_id=to_redis[-1].flow_id)).key == to_redis[-1].key
        assert c.call("GetChain", cpb.FlowRequest(flow_id=to_redis[-1].flow_id)).root.layer == model_pb2.L3
        # live: a new connection after the stream started (a refused port, a new flow)
        subprocess.run(["ip", "netns", "exec", netns_pair.a, "curl", "-s", "--max-time", "2",
                        f"http://{netns_pair.b_addr}:7777/"], capture_output=True)
        assert done.wait(15), "the live stream did not deliver the new flow"
        assert _flows_to(got, netns_pair.b_addr, 7777)
        # nothing from before the subscription is replayed: each snapshot carries a change
        # made after it (the redis flow may show up: it terminates once the silence is seen)
        for f in got:
            newest = max([f.last_event_id] + [x.event_id for x in f.transitions])
            assert newest > n0, f.key


def test_events_stream_matches_the_recording(serving, peer, redis):
    redis.bench(500)
    time.sleep(1.5)
    with client(serving.socket, peer) as c:
        n = c.call("GetSession").events
        assert n > 0
        rec = list(RecordingReader(serving.record).iter_events())[:n]
        for kind in ("events", "events-plain"):       # StreamEventBatches, StreamEvents
            evs = []
            for ev in c.stream(kind, timeout=10):
                evs.append(ev)
                if len(evs) >= n:
                    break
            assert [e.id for e in evs] == list(range(1, n + 1))
            assert [e.SerializeToString() for e in evs] == [e.SerializeToString() for e in rec]


def test_drop_proposals_need_what_only_the_local_command_line_gives(serving, peer, redis, netns_pair):
    redis.bench(200)
    time.sleep(1.5)
    with client(serving.socket, peer) as c:
        fid = next(f.flow_id for f in c.stream("flows", timeout=5))
        # extra bytes claiming an "override" field (unknown to DropRequest) change nothing
        body = cpb.DropRequest(flow_id=fid).SerializeToString() + bytes([0xF8, 0x06, 0x01])   # field 111 = 1
        md = signing.sign(c.key, "/gewyvern.v1.Control/RequestDrop", body)
        with pytest.raises(CallFailed) as e:
            c.call_raw("RequestDrop", body, cpb.DropProposal, metadata=md)
        assert e.value.status == "FAILED_PRECONDITION" and "--allow-intervention" in e.value.details
        assert not c.call("ListInterventions").records


def test_no_request_message_has_a_field_for_override_risk_or_confirmation():
    svc = cpb.DESCRIPTOR.services_by_name["Control"]
    seen = set()

    def fields(desc):
        if desc.full_name in seen:
            return
        seen.add(desc.full_name)
        for f in desc.fields:
            yield f.name
            if f.message_type is not None:
                yield from fields(f.message_type)

    for m in svc.methods:
        names = list(fields(m.input_type))
        for bad in ("override", "risky", "confirm", "allow", "typed", "nonce"):
            assert not any(bad in n for n in names), (m.name, names)


def _socket_dir(serving) -> str:
    return os.path.dirname(serving.socket)


@pytest.mark.parametrize("how", ["duration", "sigint", "sigterm"])
def test_socket_gone_after_the_session_ends(netns_pair, gew_instance, etc, tmp_path, peer, how):
    s = ServingSession(etc, netns_pair.a, tmp_path / "s.gewrec", instance=gew_instance.instance_id,
                       duration=4 if how == "duration" else 60)
    try:
        sock = s.wait_serving()
        with client(sock, peer) as c:
            assert c.call("GetSession").info.session_id
        if how == "duration":
            assert s.proc.wait(30) == 0
        else:
            assert s.stop({"sigint": signal.SIGINT, "sigterm": signal.SIGTERM}[how]) in (0, 130)
        assert not os.path.lexists(sock)
        assert not os.path.exists(_socket_dir(s))
    finally:
        s.stop()


def test_socket_gone_after_sigkill_and_gc(netns_pair, gew_instance, etc, tmp_path, peer):
    s = ServingSession(etc, netns_pair.a, tmp_path / "s.gewrec", instance=gew_instance.instance_id)
    try:
        sock = s.wait_serving()
        s.proc.kill()
        s.proc.wait(10)
        assert os.path.lexists(sock)        # nobody could remove it
        out = subprocess.run(GEW + ["session", "gc", "--instance", gew_instance.instance_id],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert not os.path.lexists(sock) and not os.path.exists(_socket_dir(s))
    finally:
        s.stop()


def test_non_loopback_tcp_without_a_certificate_is_refused(netns_pair, gew_instance, etc, tmp_path, peer):
    s = ServingSession(etc, netns_pair.a, tmp_path / "s.gewrec", "--serve-tcp", "10.1.2.3:7443",
                       instance=gew_instance.instance_id)
    assert s.proc.wait(60) == 77
    err = s.stderr()
    assert "a non-loopback address needs TLS" in err and "Traceback" not in err
    assert not [e for e in gew_instance.sessions()]      # nothing left behind


def test_loopback_tcp_serves_the_same_service(netns_pair, gew_instance, etc, tmp_path, peer):
    import socket as so

    with so.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = ServingSession(etc, netns_pair.a, tmp_path / "s.gewrec", "--serve-tcp", f"127.0.0.1:{port}",
                       instance=gew_instance.instance_id)
    try:
        s.wait_serving()
        with client(f"127.0.0.1:{port}", peer) as c:
            assert c.call("GetRuntimeInfo").peer_name == "fleet1"
    finally:
        s.stop()
