"""The control plane's parts without a kernel: root-only files, pairing, the request check,
streams over a recording that is being written (and the cut-off of a slow client), and the
proposal wrapper of the intervention controller."""
from __future__ import annotations

import os
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gewtui.control import keys, privdir, signing, streams
from gewtui.control.pairing import PeerStore
from gewtui.control.proposals import ProposalAwareController, ProposalBook
from gewtui.errors import GewError
from gewtui.pb import control_pb2 as cpb
from gewtui.pb import events_pb2, intervention_pb2, recording_pb2
from gewtui.recording import RecordingReader, RecordingWriter
from tests.support.control_support import tiny_recording, wait_for

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the files must be root-owned")


# -- /etc/gewyvern ---------------------------------------------------------------------------

@root_only
def test_private_dir_is_made_0700_and_refused_when_unsafe(tmp_path):
    d = tmp_path / "etc"
    os.close(privdir.open_private_dir(str(d), create=True))
    assert (d.stat().st_mode & 0o777) == 0o700
    os.chmod(d, 0o755)
    with pytest.raises(privdir.UnsafePath, match="root-owned 0700"):
        privdir.open_private_dir(str(d), create=True)
    assert d.exists()                                   # refused, never repaired
    os.chmod(d, 0o700)
    os.chown(d, 65534, 65534)
    with pytest.raises(privdir.UnsafePath, match="uid 65534"):
        privdir.open_private_dir(str(d), create=True)
    os.chown(d, 0, 0)
    link = tmp_path / "link"
    link.symlink_to(d)
    with pytest.raises(privdir.UnsafePath):
        privdir.open_private_dir(str(link), create=True)
    # a parent another user can write to (and that is not sticky) is refused too
    parent = tmp_path / "open"
    parent.mkdir()
    os.chmod(parent, 0o777)
    with pytest.raises(privdir.UnsafePath, match="writable by group or others"):
        privdir.open_private_dir(str(parent / "etc"), create=True)
    assert not (parent / "etc").exists()


@root_only
def test_private_files_are_exclusive_and_checked_on_read(tmp_path):
    fd = privdir.open_private_dir(str(tmp_path / "etc"), create=True)
    try:
        privdir.write_new(fd, "a", b"x")
        assert (tmp_path / "etc" / "a").stat().st_mode & 0o777 == 0o600
        with pytest.raises(FileExistsError):
            privdir.write_new(fd, "a", b"y")
        assert privdir.read_private(fd, "a", "etc") == b"x"
        os.chmod(tmp_path / "etc" / "a", 0o644)
        with pytest.raises(privdir.UnsafePath):
            privdir.read_private(fd, "a", "etc")
        (tmp_path / "etc" / "b").symlink_to("/etc/passwd")
        with pytest.raises(privdir.UnsafePath):
            privdir.read_private(fd, "b", "etc")
        with pytest.raises(FileExistsError):          # a planted link is not written through
            privdir.write_new(fd, "b", b"z")
    finally:
        os.close(fd)


# -- pairing ---------------------------------------------------------------------------------

def _pub(name="fleet1"):
    k = Ed25519PrivateKey.generate()
    return k, keys.public_line(k.public_key(), name)


@root_only
def test_token_is_one_time_and_peers_are_listed_and_revoked(tmp_path):
    store = PeerStore(str(tmp_path / "etc"))
    key = store.server_key()
    assert store.server_key().private_bytes_raw() == key.private_bytes_raw()       # made once
    token, _ = store.new_token(60)
    assert token not in "".join(os.listdir(tmp_path / "etc" / "pairing"))          # only its hash
    k, line = _pub()
    peer = store.accept(token, line)
    assert peer.name == "fleet1" and peer.peer_id == keys.peer_id(keys.raw_public(k.public_key()))
    _, other = _pub("fleet2")
    with pytest.raises(GewError, match="unknown or already used"):
        store.accept(token, other)
    t2, _ = store.new_token(60)
    with pytest.raises(GewError, match="paired already"):
        store.accept(t2, line, "again")                                            # same key
    assert [p.name for p in store.peers()] == ["fleet1"]
    assert store.lookup(peer.peer_id).name == "fleet1"
    store.revoke("fleet1")
    assert store.lookup(peer.peer_id) is None
    with pytest.raises(GewError, match="no paired peer"):
        store.revoke("fleet1")


@root_only
def test_expired_token_is_refused_and_consumed(tmp_path):
    store = PeerStore(str(tmp_path / "etc"))
    token, _ = store.new_token(1)
    time.sleep(1.2)
    with pytest.raises(GewError, match="expired"):
        store.accept(token, _pub()[1])
    with pytest.raises(GewError, match="unknown or already used"):
        store.accept(token, _pub()[1])
    assert store.peers() == []


@pytest.mark.parametrize("line", ["", "ssh-ed25519 AAAA x", "gew-ed25519 !!! x", "gew-ed25519 AAAA x",
                                  "gew-ed25519 " + "A" * 44 + " bad/name", "a\nb"])
def test_hostile_public_key_lines_are_one_line_errors(line):
    with pytest.raises(GewError) as e:
        keys.parse_public_line(line, "k.pub")
    assert "\n" not in e.value.message


# -- the request check ---------------------------------------------------------------------------

class _Peer:
    def __init__(self, key):
        self.name = "fleet1"
        self.key = key.public_key()


def test_verifier_refuses_and_records_every_kind_of_bad_request():
    k = Ed25519PrivateKey.generate()
    pid = keys.peer_id(keys.raw_public(k.public_key()))
    now = [time.time_ns()]
    v = signing.Verifier(lambda p: _Peer(k) if p == pid else None, clock=lambda: now[0])
    m = "/gewyvern.v1.Control/GetFlow"
    body = cpb.FlowRequest(flow_id=3).SerializeToString()
    assert v.verify(m, signing.sign(k, m, body), body).name == "fleet1"
    cases = [
        ([], "no peer id"),
        (signing.sign(Ed25519PrivateKey.generate(), m, body), "not paired"),
        (signing.sign(k, m, body + b"\x00"), "bad signature"),
        (signing.sign(k, "/gewyvern.v1.Control/GetChain", body), "bad signature"),
        (signing.sign(k, m, body, ts_ns=now[0] - 31 * 10**9), "off this host's clock"),
        (signing.sign(k, m, body, ts_ns=now[0] + 31 * 10**9), "off this host's clock"),
        ([(kk, vv) for kk, vv in signing.sign(k, m, body) if kk != signing.SIG], "unsigned"),
    ]
    for md, why in cases:
        with pytest.raises(signing.Rejected, match=why):
            v.verify(m, md, body)
    md = signing.sign(k, m, body, ts_ns=now[0] - 29 * 10**9)
    v.verify(m, md, body)
    with pytest.raises(signing.Rejected, match="replayed nonce"):
        v.verify(m, md, body)
    # a replay after the window is refused by its timestamp
    now[0] += 90 * 10**9
    with pytest.raises(signing.Rejected, match="off this host's clock"):
        v.verify(m, md, body)
    assert v.rejected == len(cases) + 2 == len(v.rejections)
    assert {r.code for r in v.rejections} == {"UNAUTHENTICATED", "PERMISSION_DENIED"}


# -- streams -----------------------------------------------------------------------------------

def _events(n, start=1):
    return [events_pb2.Event(id=i, ktime_ns=1000 + i, cpu=0) for i in range(start, start + n)]


def test_event_stream_follows_a_growing_recording_from_the_start(tmp_path):
    path = tmp_path / "live.gewrec"
    w = RecordingWriter(path, recording_pb2.RecordingHeader(), flush_interval=0.05)
    for ev in _events(100):
        w.write_event(ev)
    w.flush()
    stop = threading.Event()
    s = streams.Stream("events", str(path), lambda: None, server_stop=stop, on_cutoff=lambda k: 0).start()
    got = []
    it = s.items(lambda: True)
    for raw in it:
        got.append(events_pb2.Event.FromString(raw).id)
        if len(got) == 100:
            for ev in _events(50, 101):     # written after the stream caught up
                w.write_event(ev)
            w.flush()
        if len(got) == 150:
            break
    stop.set()
    w.close()
    assert got == list(range(1, 151))


def test_a_slow_client_is_cut_off_with_a_counted_notice_and_the_writer_never_waits(tmp_path):
    path = tmp_path / "live.gewrec"
    w = RecordingWriter(path, recording_pb2.RecordingHeader(), flush_interval=0.05)
    stop = threading.Event()
    cut = []
    s = streams.Stream("events", str(path), lambda: None, server_stop=stop, maxsize=64, stall_s=0.3,
                       on_cutoff=lambda k: cut.append(k) or len(cut)).start()
    time.sleep(0.3)                           # the stream is live (caught up with an empty file)
    t0 = time.monotonic()
    for ev in _events(20_000):                # the capture side: the client reads nothing
        w.write_event(ev)
    w.flush()
    write_s = time.monotonic() - t0
    assert wait_for(lambda: cut, 5)
    items = list(s.items(lambda: True))
    w.close()
    assert len(items) == 1 and isinstance(items[0], streams.CutOff)
    assert "cut off" in items[0].notice and "1 cut-off(s) so far" in items[0].notice
    assert cut == ["events"]
    assert RecordingReader(path).scan_offsets().records == 20_000      # nothing lost by the writer
    assert write_s < 5


def test_flow_and_reason_streams_fold_a_recorded_session(tmp_path):
    from gewtui.model.engine import Engine

    path = tiny_recording(tmp_path)
    sid = RecordingReader(path).header.session.session_id
    stop = threading.Event()
    for kind in ("flows", "reasons"):
        s = streams.Stream(kind, str(path), lambda: Engine(session_id=sid), server_stop=stop,
                           on_cutoff=lambda k: 0).start()
        got = []
        for raw in s.items(lambda: True):
            got.append(raw)
            if s._live and s.q.empty():
                break
        s.stop.set()
        assert got
    # the newest chain the stream sent equals what `gew export --what reasons` computes
    eng = Engine(session_id=sid)
    for rec in RecordingReader(path):
        if rec.HasField("event"):
            eng.feed(rec.event)
    from gewtui.pb import model_pb2

    last = {}
    for raw in got:
        c = model_pb2.ReasonChain.FromString(raw)
        last[c.flow_id] = c
    assert last and all(last[f] == eng.chain(f) for f in last)


# -- proposals ---------------------------------------------------------------------------------

class _FakeController:
    def __init__(self):
        self.calls = []
        self.other = "kept"

    def request_drop(self, flow_id, confirmation, actor=None):
        self.calls.append((flow_id, confirmation, actor))
        return intervention_pb2.InterventionRecord(intervention_id=7, flow_id=flow_id, outcome=intervention_pb2.ACTIVE,
                                                   detail=actor.note() if actor else "")


def test_a_confirmed_proposal_names_the_peer_and_others_do_not():
    book = ProposalBook()
    inner = _FakeController()
    ctl = ProposalAwareController(inner, book)
    assert ctl.other == "kept"
    assert ctl.request_drop(3, "typed").detail == ""              # no proposal: the operator's own
    p = book.propose(5, "fleet1", "storm\x1b[2J")
    assert p.reason == "storm?[2J"                                # control characters neutralised
    assert book.propose(5, "fleet2", "again").proposal_id == p.proposal_id
    rec = ctl.request_drop(5, "typed")
    assert "proposed by peer fleet1 (proposal 1), confirmed locally" in rec.detail
    assert inner.calls[-1][1] == "typed"                          # the operator's confirmation, as given
    (q,) = [x for x in book.snapshot() if x.flow_id == 5]
    assert q.state == cpb.CONFIRMED and q.intervention_id == 7
    assert book.pending(5) is None


def test_event_batches_hold_the_recorded_bytes_in_order(tmp_path):
    path = tiny_recording(tmp_path)
    want = [e.SerializeToString() for e in RecordingReader(path).iter_events()]
    stop = threading.Event()
    s = streams.Stream("events", str(path), lambda: None, server_stop=stop, on_cutoff=lambda k: 0).start()
    got, sizes = [], []
    for raw in s.batches(lambda: True, most=100):
        b = cpb.EventBatch.FromString(raw)
        sizes.append(len(b.events))
        got.extend(e.SerializeToString() for e in b.events)
    # `most` bounds a batch up to one queued chunk (streams._CHUNK events)
    assert got == want and max(sizes) <= 100 + streams._CHUNK and len(sizes) >= len(want) // (100 + streams._CHUNK)
