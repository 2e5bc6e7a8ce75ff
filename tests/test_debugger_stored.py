"""Engine checkpoints stored in recordings (gewtui.debugger.stored): a live session's head
engine writes them; a replay jumps through them and ends up exactly where folding the
whole file would; anything foreign, damaged or lying is ignored and folding takes over."""
from __future__ import annotations

import os

import pytest

from gewtui.debugger import commands
from gewtui.debugger.core import Debugger
from gewtui.debugger.view_builder import ViewBuilder
from gewtui.debugger.sources import LiveSource, ReplaySource
from gewtui.debugger.stored import StorePolicy, StoreWriter
from gewtui.model.engine import Engine
from gewtui.pb import recording_pb2
from gewtui.recording import RecordingWriter, open_recording
from gewtui.recording.checkpoints import find_checkpoints, write_checkpoint
from tests.support.debugger_support import big_stream, header
from tests.support.engine_replay import dump, run, straight

N = 12_000
SID = "test-session"


@pytest.fixture(autouse=True, scope="module")
def host_key(tmp_path_factory):
    """This host's state key, in a private directory of the module's own (root only:
    stored states are written with a root-only key)."""
    from gewtui.model import state_key

    if os.geteuid() != 0:
        pytest.skip("stored states are authenticated with a root-only key")
    d = tmp_path_factory.mktemp("host-key")
    os.chmod(d, 0o700)
    old = state_key.KEY_DIR
    state_key.KEY_DIR = str(d)
    state_key.forget()
    yield str(d)
    state_key.KEY_DIR = old
    state_key.forget()


class FakeSession:
    """What LiveSession does for the debugger: number, record, then hand over events."""

    session_id = SID

    def __init__(self, path, events, batch=500):
        self.writer = RecordingWriter(path, header(SID))
        self.events, self.batch, self.i = events, batch, 0

    def poll(self, timeout_ms):
        out = self.events[self.i:self.i + self.batch]
        self.i += len(out)
        for ev in out:
            self.writer.write_event(ev)
        return out

    def close(self):
        self.writer.write(recording_pb2.Record(end=recording_pb2.Record().end))
        self.writer.close()


def record_live(path, events, policy=StorePolicy(min_events=2000, max_share=1.0)) -> Debugger:
    sess = FakeSession(path, events)
    d = Debugger(LiveSource(sess))
    d.store_writer = StoreWriter(policy)
    while sess.i < len(events):
        d.ingest(50000)
    sess.close()
    return d


def replay(path, **kw):
    d = Debugger(ReplaySource(path, **kw))
    d.stored.leap_min = 100
    return d, commands.Context(d, ViewBuilder(d))


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    events = list(big_stream(N, flows=300))
    path = str(tmp_path_factory.mktemp("stored") / "live.gewrec")
    d = record_live(path, events)
    return path, events, d


def test_the_live_head_stores_checkpoints_that_readers_skip(live):
    path, events, d = live
    assert d.store_writer.written >= 3, d.store_writer.disabled
    with open_recording(path) as r:
        refs = find_checkpoints(r)
        assert [ev.id for ev in r.iter_events()] == [ev.id for ev in events]
        kinds = [rec.WhichOneof("body") for rec in r.records()]
    assert kinds.count("checkpoint") >= len(refs) >= 3
    for ref in refs:
        assert ref.last_event_id == ref.events and ref.events % 500 == 0   # batch ends
    from gewtui.cli.main import gew_main
    assert gew_main(["export", path, "--what", "events", "--json"]) == 0


def test_goto_end_jumps_and_matches_a_straight_fold(live):
    path, events, _ = live
    d, ctx = replay(path)
    run(ctx, "goto end")
    assert d.position == len(events) and d.log.holes, "the jump should skip the start"
    assert dump(d.engine) == straight(events, len(events))
    assert d.cursor_event_id() == events[-1].id
    # back, goto and id lookups inside the skipped stretch read it and agree with folding
    for target in (len(events) - 1, len(events) - 3000, 4321, 17, 0):
        run(ctx, f"goto {target}" if target else "goto 0")
        assert d.position == target
        assert dump(d.engine) == straight(events, target), target
    assert d.log.position_of_id(events[777].id) == 777
    assert [d.log.get(i).id for i in range(0, len(events), 97)] == [e.id for e in events[::97]]


def test_holes_are_read_in_idle_time(live):
    path, events, _ = live
    d, ctx = replay(path)
    run(ctx, "goto end")
    assert d.log.holes
    while d.idle(0.05):
        pass
    assert not d.log.holes
    assert [d.log.event_id(i) for i in range(len(events))] == [e.id for e in events]


def test_disabled_checkpoints_fold_from_the_start(live):
    path, events, _ = live
    d, ctx = replay(path, use_checkpoints=False)
    run(ctx, "goto end")
    assert not d.log.holes and d.position == len(events)
    assert dump(d.engine) == straight(events, len(events))


def _copy_with(path, dst, mutate) -> str:
    data = bytearray(open(path, "rb").read())
    mutate(data)
    open(dst, "wb").write(data)
    return dst


def test_a_damaged_checkpoint_is_not_used(live, tmp_path):
    path, events, _ = live
    with open_recording(path) as r:
        refs = find_checkpoints(r)
    last = refs[-1]

    def flip(data):
        data[last.parts[0][0] + last.parts[0][1] // 2] ^= 0xFF
    bad = _copy_with(path, tmp_path / "bad.gewrec", flip)
    d, ctx = replay(bad)
    assert [r.events for r in d.stored.refs()] == [r.events for r in refs[:-1]]
    run(ctx, "goto end")
    assert dump(d.engine) == straight(events, len(events))


def test_checkpoints_from_another_template_set_are_ignored(live, tmp_path):
    path, events, _ = live
    from gewtui.model.templates import load_templates
    from gewtui.resources import templates_dir
    from pathlib import Path
    src = sorted(Path(templates_dir()).glob("*.toml"))[0]
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / src.name).write_text(src.read_text().replace('title = "', 'title = "x ', 1))
    tpl = load_templates([tmp_path / "t"], allow_override=[src.stem])
    d = Debugger(ReplaySource(path), engine_factory=lambda: Engine(templates=tpl, session_id=SID),
                 engine_restore=Engine.restore)
    ctx = commands.Context(d, ViewBuilder(d))
    assert d.stored.refs() == [] and "template set" in d.message
    run(ctx, "goto end")
    assert not d.log.holes and d.position == len(events)


def test_a_checkpoint_that_lies_about_its_position_is_caught(live, tmp_path):
    """A well-formed checkpoint (valid CRC) whose count does not match the events before
    it: reading the stretch it skipped finds out, and the debugger starts over."""
    path, events, _ = live
    with open_recording(path) as r:
        good = find_checkpoints(r)[-1]
        state = b"".join(rec.checkpoint.state for rec in r.records()
                         if rec.WhichOneof("body") == "checkpoint" and rec.checkpoint.events == good.events)
    dst = str(tmp_path / "lie.gewrec")
    with open_recording(path) as r, RecordingWriter(dst, r.header) as w:
        n = 0
        for rec in r.records():
            if rec.WhichOneof("body") == "checkpoint":
                continue
            w.write(rec)
            n += rec.WhichOneof("body") == "event"
            if n == good.events - 50 and rec.WhichOneof("body") == "event":
                # claims the 50 events that follow are already folded
                write_checkpoint(w, state, events=good.events, last_event=events[good.events - 1],
                                 first_ktime_ns=events[0].ktime_ns, model=good.model,
                                 templates=good.templates, resume_offset=0)
    d, ctx = replay(dst)
    run(ctx, "goto end")
    assert d.log.holes
    while d.idle(0.05):
        pass
    assert "does not match" in d.message
    run(ctx, "goto end")
    assert d.position == len(events) and dump(d.engine) == straight(events, len(events))


def test_no_checkpoint_after_interventions_or_missed_events(tmp_path):
    events = list(big_stream(3000, flows=50))
    sess = FakeSession(str(tmp_path / "a.gewrec"), events[100:])   # the head missed 100
    d = Debugger(LiveSource(sess))
    d.store_writer = StoreWriter(StorePolicy(min_events=500, max_share=1.0))
    while sess.i < len(sess.events):
        d.ingest(50000)
    sess.close()
    assert d.store_writer.written == 0 and "did not fold" in d.store_writer.disabled
    with open_recording(tmp_path / "a.gewrec") as r:
        assert find_checkpoints(r) == []
    assert os.path.getsize(tmp_path / "a.gewrec") > 0


def test_idle_time_refolds_skipped_stretches_with_checkpoints(live):
    path, events, _ = live
    from gewtui.debugger.checkpoints import CheckpointPolicy
    d, ctx = replay(path)
    d.checkpoints.policy = CheckpointPolicy(budget_s=0.0, overhead_ratio=0.0, min_events=100)
    d.stored.dense_gap = 500
    run(ctx, "goto end")
    stored = [r.events for r in d.stored.refs()]
    assert d.checkpoints.first_gap(len(events), 500) is not None
    while d.idle(0.05):
        pass
    assert d.checkpoints.first_gap(len(events), 500) is None
    mid = (stored[0] + stored[1]) // 2
    run(ctx, f"goto {mid}")
    assert dump(d.engine) == straight(events, mid)


def test_without_the_key_a_replay_ignores_stored_states_and_folds(live, monkeypatch, capsys):
    """A replay without root cannot read the host key: no stored state can be
    authenticated, so none is used, and it concludes what folding the events gives."""
    from gewtui.model import state_key

    path, events, _ = live
    monkeypatch.setattr(state_key.os, "geteuid", lambda: 65534)
    state_key.forget()
    d, ctx = replay(path)
    run(ctx, "goto end")
    assert not d.log.holes and d.position == len(events)
    assert "stored checkpoints ignored" in d.stored.ignored and "root" in d.stored.ignored
    assert dump(d.engine) == straight(events, len(events))
    # and gew recording index, which writes states, refuses in one line
    assert _cli("recording", "index", path, "--force") == 77
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "root" in err
    state_key.forget()


def _cli(*argv) -> int:
    from gewtui.cli.main import gew_main
    return gew_main(list(argv))


def test_gew_recording_index_stores_checkpoints_a_replay_uses(tmp_path, capsys):
    events = list(big_stream(9000, flows=200))
    path = str(tmp_path / "plain.gewrec")
    with RecordingWriter(path, header(SID)) as w:
        for ev in events:
            w.write_event(ev)
    size = os.path.getsize(path)
    assert _cli("recording", "index", path, "--every", "2000") == 64     # no end record
    assert "no end record" in capsys.readouterr().err
    assert os.path.getsize(path) == size
    assert _cli("recording", "index", path, "--every", "2000", "--force") == 0
    assert "4 checkpoint(s) stored" in capsys.readouterr().out
    with open_recording(path) as r:
        assert [ev.id for ev in r.iter_events()] == [ev.id for ev in events]
        assert [c.events for c in find_checkpoints(r)] == [2000, 4000, 6000, 8000]
    d, ctx = replay(path)
    run(ctx, "goto end")
    assert d.log.holes and d.position == len(events)
    assert dump(d.engine) == straight(events, len(events))
    for target in (7999, 4100, 1500):
        run(ctx, f"goto {target}")
        assert dump(d.engine) == straight(events, target)
    while d.idle(0.05):
        pass
    assert [d.log.event_id(i) for i in range(len(events))] == [e.id for e in events]
    capsys.readouterr()
    assert _cli("recording", "index", path) == 0
    assert "already holds" in capsys.readouterr().out


def test_a_state_split_over_parts_reads_back_and_a_damaged_part_drops_it(tmp_path, monkeypatch):
    from gewtui.recording import checkpoints as cpmod
    monkeypatch.setattr(cpmod, "PART_BYTES", 2048)
    events = list(big_stream(4000, flows=60))
    path = str(tmp_path / "parts.gewrec")
    record_live(path, events, StorePolicy(min_events=1000, max_share=1.0))
    with open_recording(path) as r:
        refs = find_checkpoints(r)
    assert len(refs) >= 2 and all(len(c.parts) > 1 for c in refs)
    d, ctx = replay(path)
    run(ctx, "goto end")
    assert d.log.holes and straight(events, len(events)) == dump(d.engine)
    victim = refs[-1]

    def flip(data):
        at, n = victim.parts[len(victim.parts) // 2]
        data[at + n // 2] ^= 0x55
    bad = _copy_with(path, tmp_path / "bad.gewrec", flip)
    with open_recording(bad) as r:
        assert [c.events for c in find_checkpoints(r)] == [c.events for c in refs[:-1]]
