"""A lifecycle record (gewtui.recording.lifecycle): the capture writes a socket's held items as
one event; every reader (iter_events, records, the debugger's replay, the control plane's
follower) gives back exactly the events the per-event path makes; no other event is taken for
one; a forged lifecycle in a recording is bounded work and a counted, one-line damage."""
import random
import struct

import pytest

from gewtui.kernel.decode import Decoder
from gewtui.kernel.probes import UNITS
from gewtui.pb import events_pb2, recording_pb2
from gewtui.recording import RecordingWriter, lifecycle, open_recording
from tests.support.gew_cli import gew
from tests.support.kernel_records import _life_record, _record, _vocab


def _capture(path, seed: int, n: int = 2000):
    """Random records through a capture's decoder (bytes, lifecycles kept whole) into a
    recording, and through the reference (the unit decoders, one event each)."""
    vocab = _vocab()
    raws, ref_out = [], []
    dec = Decoder(UNITS, vocab, lambda ev: raws.append(ev.SerializeToString()))
    dec.raw_sink = raws.append
    ref = Decoder(UNITS, vocab, ref_out.append, fast=False)
    rnd = random.Random(seed)
    for _ in range(n):
        rec = _life_record(rnd) if rnd.random() < 0.5 else _record(rnd, vocab)
        dec.record(rec)
        ref.record(rec)
    with RecordingWriter(path, recording_pb2.RecordingHeader()) as w:
        w.write_events_bytes(raws)
    return raws, ref_out, dec


def test_every_reader_gives_the_per_event_paths_events(tmp_path):
    path = tmp_path / "life.gewrec"
    raws, ref, dec = _capture(path, 1)
    lives = [r for r in raws if lifecycle.is_lifecycle(r)]
    assert len(lives) > 500 and len(raws) < len(ref)    # fewer records for the same events
    assert dec.events == len(ref) and dec.folded == len(ref) - len(raws)
    want = [e.SerializeToString() for e in ref]
    with open_recording(path) as r:
        assert [e.SerializeToString() for e in r.iter_events()] == want
    with open_recording(path) as r:
        assert [rec.event.SerializeToString() for rec in r.records()] == want
    from gewtui.debugger.sources import ReplaySource

    src = ReplaySource(str(path))
    got = []
    while True:
        batch = src.read_with_raw(997)
        if not batch:
            break
        got += [raw for _, raw in batch]
    assert got == want
    import threading

    from gewtui.control.follow import Follower

    stop = threading.Event()
    f = Follower(str(path), stop, poll_s=0.01)
    followed = []
    for kind, item in f.items():
        if kind == "idle":
            break
        if kind == "event":
            followed.append(item)
    stop.set()
    f.close()
    assert followed == want
    assert [ev.WhichOneof("body") for ev in ref if ev.WhichOneof("body") == "lifecycle"] == []


def test_export_shows_the_events_a_lifecycle_stands_for(tmp_path):
    path = tmp_path / "life.gewrec"
    _, ref, _ = _capture(path, 2, 300)
    out = gew("export", str(path), "--json")
    assert out.returncode == 0, out.stderr
    import json

    ids = [json.loads(line)["id"] for line in out.stdout.splitlines()]
    assert ids == [e.id for e in ref]


def test_no_other_event_is_taken_for_a_lifecycle():
    """The search for the lifecycle key in an event's first bytes is confirmed by walking the
    envelope: times, ids and attributions that contain the key's bytes are not lifecycles."""
    rnd = random.Random(3)
    hits = 0
    for i in range(20000):
        ev = events_pb2.Event(id=rnd.getrandbits(rnd.choice([7, 14, 21, 40])),
                              ktime_ns=rnd.getrandbits(rnd.choice([20, 42, 63])), cpu=rnd.randrange(300))
        if rnd.random() < 0.5:
            ev.attr.pid = rnd.getrandbits(32)
            ev.attr.comm = bytes(rnd.getrandbits(8) & 0x7F for _ in range(rnd.randrange(16))).decode()
        kind = rnd.choice(["tcp_state", "destroy", "tcp_probe", "mark"])
        getattr(ev, kind).SetInParent()
        raw = ev.SerializeToString()
        hits += raw.find(lifecycle.K_LIFE, 2, 24) >= 0
        assert not lifecycle.is_lifecycle(raw)
    # the search alone would have taken some for lifecycles: the walk is what decides
    forged = events_pb2.Event(id=1, ktime_ns=322)    # its varint is the key's bytes (field 40, length-delimited)
    assert lifecycle.K_LIFE in forged.SerializeToString()[:24] and not lifecycle.is_lifecycle(
        forged.SerializeToString())
    assert hits > 0


def _forged(**fields) -> bytes:
    ev = events_pb2.Event(id=10, ktime_ns=5)
    ev.lifecycle.SetInParent()
    for k, v in fields.items():
        if k == "ca_state_names":
            getattr(ev.lifecycle, k).extend(v)
        else:
            setattr(ev.lifecycle, k, v)
    return ev.SerializeToString()


ITEM = struct.Struct("<QIIHHBBBB")


@pytest.mark.parametrize("fields, why", [
    ({"items": ITEM.pack(1, 0, 0, 1, 2, 1, 1, 7, 1) * (lifecycle.MAX_ITEMS + 1)}, "item bytes"),
    ({"items": ITEM.pack(1, 0, 0, 1, 2, 1, 1, 7, 1)[:-1]}, "item bytes"),
    ({"items": ITEM.pack(1, 0, 0, 1, 2, 9, 1, 7, 1)}, "item kind 9"),
    ({"destroyed": True, "counters": b"\0" * (lifecycle.COUNTERS_SIZE - 1)}, "bytes of counters"),
])
def test_a_forged_lifecycle_is_refused_with_bounded_work(tmp_path, fields, why):
    raw = _forged(**fields)
    with pytest.raises(ValueError, match=why):
        lifecycle.expand(raw)
    path = tmp_path / "forged.gewrec"
    good = events_pb2.Event(id=1, ktime_ns=1, mark=events_pb2.SessionMark(kind="started"))
    with RecordingWriter(path, recording_pb2.RecordingHeader()) as w:
        w.write_event(good)
        w.write_event_bytes(raw)
        w.write_event(events_pb2.Event(id=2, ktime_ns=2, mark=events_pb2.SessionMark(kind="stopped")))
    with open_recording(path) as r:
        assert [e.id for e in r.iter_events()] == [1, 2]      # the rest stays readable
        assert r.report.skipped_records == 1
    out = gew("export", str(path))
    assert out.returncode == 65 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr


def test_a_lifecycle_stands_for_its_items_then_its_destroy_and_summary():
    """Ids: the lifecycle's own id is its first item's; the destroy and the final summary
    follow the items, at the destroy's time and CPU (the lifecycle event's own)."""
    raw = _forged(items=ITEM.pack(7, 1, 0, 80, 443, 1, 1, 7, 2) + ITEM.pack(8, 0, 0, 80, 443, 3, 1, 0, 0),
                  sock=4, netns=12, ca_state_names=["Open"], destroyed=True, cookie=42, final_netns=12,
                  counters=bytes(lifecycle.COUNTERS_SIZE))
    evs = [events_pb2.Event.FromString(r) for r in lifecycle.expand(raw)]
    assert [(e.id, e.ktime_ns, e.WhichOneof("body")) for e in evs] == [
        (10, 7, "tcp_state"), (11, 8, "cong_state"), (12, 5, "destroy"), (13, 5, "tcp_probe")]
    assert evs[0].tcp_state.old_state == events_pb2.TCP_CLOSE and evs[0].cpu == 1
    assert evs[1].cong_state.ca_state_name == "Open" and evs[1].attr.netns == 12
    assert evs[0].attr.source == events_pb2.ATTRIBUTION_NONE
    assert evs[2].destroy.sock == 4 and evs[2].destroy.sock_cookie == 42
    assert evs[3].tcp_probe.final and evs[3].tcp_probe.sock_cookie == 42
    assert lifecycle.count(raw) == 4 and lifecycle.count(evs[2].SerializeToString()) == 1
