"""Capture never waits for analysis (gewtui.kernel.capture): an event is numbered once and its
wire bytes are what protobuf would write; a stalled engine makes lag, never loss; lag drains;
the gate's `complete` is the capture's alone."""
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

import pytest

from gewtui.kernel.capture import Capture
from gewtui.kernel.decode import Decoder
from gewtui.kernel.probes import UNITS
from gewtui.pb import events_pb2, recording_pb2
from gewtui.recording import RecordingWriter, lifecycle, open_recording
from tests.support.kernel_records import _record, _vocab
from tests.support.probes_support import only_kernel_skips


# -- one numbering, one serialization ------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_fast_encoder_bytes_equal_serialize_to_string(seed):
    """The fast path's whole event (id, ktime, cpu, attribution, body) is byte for byte what
    SerializeToString gives for the event it stands for, zero fields included; ids are one
    sequence across the fast path and the unit decoders."""
    vocab = _vocab()
    raws, objs = [], []
    dec = Decoder(UNITS, vocab, objs.append)
    dec.raw_sink = raws.append
    ref_out = []
    ref = Decoder(UNITS, vocab, ref_out.append, fast=False)
    rnd = random.Random(seed)
    for _ in range(3000):
        rec = _record(rnd, vocab)
        dec.record(rec)
        ref.record(rec)
    assert len(raws) > 2000 and objs            # both paths ran
    # a lifecycle stands for several events: the readers' expansion gives them back
    lives = [r for r in raws if lifecycle.is_lifecycle(r)]
    assert len(lives) > 100
    for r in lives:
        assert events_pb2.Event.FromString(r).SerializeToString() == r
    raws = lifecycle.expand_all(raws)
    assert dec.events == len(raws) + len(objs)
    parsed = {}
    for r in raws:
        ev = events_pb2.Event.FromString(r)
        assert ev.SerializeToString() == r, ev
        parsed[ev.id] = ev
    for ev in objs:
        parsed[ev.id] = ev
    assert sorted(parsed) == list(range(1, len(parsed) + 1))
    assert [parsed[i] for i in sorted(parsed)] == ref_out
    # CPU 0 and zero-valued fields are left out, as protobuf leaves them out
    assert any(events_pb2.Event.FromString(r).cpu == 0 for r in raws)
    # a socket's final summary (a destroy that counted segments) comes as bytes too, srtt
    # histogram included; some end a window a zero-window edge (unit decoder) opened
    finals = [ev.tcp_probe for ev in map(events_pb2.Event.FromString, raws) if ev.tcp_probe.final]
    assert any(p.srtt_log2_hist for p in finals) and any(p.segments and not p.srtt_log2_hist for p in finals)
    opened = {(ev.tcp_probe.sock, ev.tcp_probe.window_end_ns) for ev in objs if ev.HasField("tcp_probe")}
    assert any((p.sock, p.window_start_ns) in opened for p in finals)


# -- the hand-off, without a kernel ------------------------------------------------------------
class _FakeLive:
    """What Capture needs of a LiveSession: batches written to a real recording, the writer
    shared under a lock."""

    def __init__(self, path, batches, header=None):
        self.record_path = str(path)
        self.writer = RecordingWriter(path, header or recording_pb2.RecordingHeader())
        self.write_lock = threading.RLock()
        self.batches = batches
        self.closed = False
        self.next_id = 1

    def _raws(self):
        n = self.batches.pop(0)
        self.next_id += n
        return [events_pb2.Event(id=i, ktime_ns=i * 10).SerializeToString() for i in range(self.next_id - n,
                                                                                           self.next_id)]

    def capture_batch(self, timeout_ms):
        if not self.batches:
            time.sleep(timeout_ms / 1000)
            return [], 0, 0, 0
        raws = self._raws()
        with self.write_lock:
            start = self.writer.next_offset
            self.writer.write_events_bytes(raws)
            if self.next_id % 3 == 0:     # a side record between batches
                self.writer.write(recording_pb2.Record(stats=recording_pb2.Record().stats))
            return raws, start, self.writer.next_offset, len(raws)

    def flush_through(self, offset):
        with self.write_lock:
            if self.writer.bytes_written < offset:
                self.writer.flush()


def test_a_full_queue_spills_to_the_recording_and_the_engine_reads_it_back(tmp_path):
    live = _FakeLive(tmp_path / "s.gewrec", [300] * 40)
    cap = Capture(live, max_queued=1000, poll_ms=5, yield_s=0).start()
    try:
        deadline = time.monotonic() + 10
        while cap.captured < 12000 and time.monotonic() < deadline:
            time.sleep(0.01)                       # the engine stalls: nothing taken
        assert cap.captured == 12000 and cap.lag == 12000
        assert cap._queued <= 1000                 # memory stayed bounded
        got = []
        while len(got) < 12000:
            got += cap.take(777, 0.5)
    finally:
        cap.stop()
    assert cap.lag == 0 and cap.spilled >= 11000
    assert [events_pb2.Event.FromString(r).id for r in got] == list(range(1, 12001))
    # the last resume offset is where the next event would start: the end of what was written
    live.writer.flush()
    assert cap.resume_offset == live.writer.next_offset - _side_bytes(live)
    cap.close()
    live.writer.close()


def test_a_batch_larger_than_a_take_is_handed_over_in_parts_with_exact_resume_offsets(tmp_path):
    """The engine comes back after at most ``max_events``, whatever the capture's batch size;
    after each take, ``resume_offset`` is where the next event's frame starts in the file."""
    live = _FakeLive(tmp_path / "b.gewrec", [2500, 10])
    cap = Capture(live, poll_ms=5, yield_s=0, duty=1).start()
    try:
        deadline = time.monotonic() + 10
        while cap.captured < 2510 and time.monotonic() < deadline:
            time.sleep(0.01)
        live.writer.flush()
        with open_recording(live.record_path) as r:
            frame_at = {}
            for off, payload in r.frames():
                rec = recording_pb2.Record.FromString(payload)
                if rec.HasField("event"):
                    frame_at[rec.event.id] = off
        got = []
        while len(got) < 2510:
            part = cap.take(300, 0.5)
            assert 0 < len(part) <= 300
            got += part
            last = events_pb2.Event.FromString(part[-1]).id
            if last + 1 in frame_at:
                assert cap.resume_offset == frame_at[last + 1]
    finally:
        cap.stop()
    assert [events_pb2.Event.FromString(r).id for r in got] == list(range(1, 2511))
    cap.close()
    live.writer.close()


def _side_bytes(live):
    """Bytes of a trailing side record after the last batch, if the fake wrote one."""
    with open_recording(live.record_path) as r:
        last = None
        for off, payload in r.frames():
            last = (off, payload)
    rec = recording_pb2.Record.FromString(last[1])
    return 0 if rec.WhichOneof("body") == "event" else live.writer.next_offset - last[0]


# -- real probes, real traffic ---------------------------------------------------------------
@pytest.mark.root
@pytest.mark.slow
def test_capture_keeps_zero_loss_while_the_engine_stalls(netns_pair, gew_instance, tmp_path):
    """The engine takes nothing for seconds while real connections churn in the scope: the
    capture records everything (zero lost, complete), lag is shown (source stats, manifest for
    `gew session list`), the gate's `complete` holds, and the lag then drains in order."""
    from gewtui.debugger.sources import LiveSource
    from gewtui.intervene.wiring import LiveSessionView
    from gewtui.kernel.live import LiveSession
    from tests.support.probes_support import entered, free_port

    p = netns_pair
    port = free_port()
    with entered(p.b):
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((p.b_addr, port))
        srv.listen(1024)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            c.close()

    def churn(seconds):
        n = 0
        end = time.monotonic() + seconds
        with entered(p.a):
            while time.monotonic() < end:
                s = socket.socket()
                try:
                    s.connect((p.b_addr, port))
                except OSError:
                    pass
                finally:
                    s.close()
                n += 1
        return n

    rec = tmp_path / "stall.gewrec"
    server = threading.Thread(target=serve, daemon=True)
    server.start()
    live = LiveSession([f"netns={p.b}"], record=str(rec), instance=gew_instance.instance_id)
    try:
        live.open()
        src = LiveSource(live)
        # a small queue, so the stall also exercises the spill to the recording
        src.capture = live.start_capture(max_queued=5000)
        conns = churn(3.5)                       # the engine is stalled all along
        time.sleep(1.2)                           # a heartbeat with the lag in it
        # (the server may still be accepting its backlog, each accept a few more records:
        # the capture has caught up once what the kernel produced is consumed)
        deadline = time.monotonic() + 10
        while (live.stats.produced != live.stats.consumed or live.stats.lost) and time.monotonic() < deadline:
            time.sleep(0.05)
        lag = src.stats().lag
        facts = LiveSessionView(live).gate_facts()
        manifest = gew_instance.read_manifest(live.session_id)
        st = live.stats
        assert conns > 300
        assert lag > 5000, lag
        # nothing lost to the ring buffer; the kernel may still skip a probe run that nested
        # in itself on a busy box (counted, and the session says so): that is no capture loss
        assert st.lost == 0 and st.produced == st.consumed
        assert st.complete or only_kernel_skips(st.incomplete_reason), st.incomplete_reason
        # the gate's `complete` is the capture's: lag is not loss
        assert facts.lost_records == 0 and facts.observation_complete == st.complete
        assert "lag" not in facts.incomplete_reason
        assert manifest.lag > 0 and manifest.lost == 0
        listed = subprocess.run([os.path.join(os.path.dirname(sys.executable), "gew"), "session", "list",
                                 "--instance", gew_instance.instance_id, "--json"],
                                capture_output=True, text=True, timeout=60)
        row = json.loads(listed.stdout)["sessions"][0]
        assert row["session_id"] == live.session_id and row["lag"] > 0 and row["lost"] == 0
        t0 = time.perf_counter()
        taken = []
        while src.lag:
            taken += src.read_with_raw(50000, 0.05)
        drain_s = time.perf_counter() - t0
        print(f"stall: {conns} connections, lag {lag} events, drained in {drain_s:.3f} s "
              f"({len(taken) / max(drain_s, 1e-9):,.0f} events/s), spilled {src.capture.spilled}")
        assert src.capture.spilled > 0
        ids = [ev.id for ev, _ in taken]
        assert ids == list(range(1, len(ids) + 1))
        assert all(ev.SerializeToString() == raw for ev, raw in taken)
        kinds = {ev.WhichOneof("body") for ev, _ in taken}
        assert "tcp_state" in kinds
    finally:
        stop.set()
        live.close()
        server.join(2)
        srv.close()
    st = live.stats
    assert st.lost == 0 and st.produced == st.consumed
    with open_recording(rec) as r:
        recorded = list(r.iter_events())
    assert [e.id for e in recorded] == list(range(1, len(recorded) + 1))
    assert len(recorded) >= len(taken)
    assert [e.SerializeToString() for e in recorded[:len(taken)]] == [raw for _, raw in taken]


# -- engine checkpoints stored by an engine that lags behind the capture ------------------------
class _LaggingSession(_FakeLive):
    """A LiveSession stand-in whose (real) capture thread records far ahead of the debugger;
    the debugger sees the writer as LiveSession shows it to other threads (locked)."""

    session_id = "test-session"

    def __init__(self, path, events):
        from gewtui.kernel.live import _Locked
        from tests.support.debugger_support import header

        super().__init__(path, [700] * (len(events) // 700 + 1), header(self.session_id))
        self._w = self.writer
        self.writer = _Locked(self._w, self.write_lock)
        self.events, self.i = events, 0
        self.cap = None

    def _raws(self):
        out = self.events[self.i:self.i + 700]
        self.i += len(out)
        self.next_id = 1          # (no side records between these batches)
        return [e.SerializeToString() for e in out]

    def capture_batch(self, timeout_ms):
        if self.i >= len(self.events):
            self.batches = []
        return super().capture_batch(timeout_ms)

    @property
    def stats(self):
        from types import SimpleNamespace

        return SimpleNamespace(events=self.i, lost=0, complete=True, incomplete_reason="", bpf_run_time_ns=0,
                               bpf_run_count=0, recording_bytes=self._w.bytes_written)

    def start_capture(self):
        self.cap = Capture(self, max_queued=3000, poll_ms=1, yield_s=0)
        return self.cap.start()

    def close(self):
        self.cap.stop()
        with self.write_lock:
            self._w.write(recording_pb2.Record(end=recording_pb2.Record().end))
            self._w.close()


def test_checkpoints_of_a_lagging_engine_resume_where_its_events_continue(tmp_path):
    """The capture records everything long before the engine folds it (spilling too); the
    engine's stored checkpoints then lie after events they have not folded, and name where
    their next event starts. A replay that jumps through them ends exactly where folding the
    whole file does."""
    from gewtui.debugger import commands
    from gewtui.debugger.core import Debugger
    from gewtui.debugger.view_builder import ViewBuilder
    from gewtui.debugger.sources import LiveSource, ReplaySource
    from gewtui.debugger.stored import StorePolicy, StoreWriter
    from gewtui.recording.checkpoints import find_checkpoints
    from tests.support.debugger_support import big_stream
    from tests.support.engine_replay import dump, run, straight

    events = list(big_stream(12_000, flows=300))
    path = tmp_path / "lag.gewrec"
    sess = _LaggingSession(path, events)
    d = Debugger(LiveSource(sess))
    d.store_writer = StoreWriter(StorePolicy(min_events=2000, max_share=1.0))
    d.ingest(1)                                   # starts the capture
    deadline = time.monotonic() + 20
    while sess.i < len(events) and time.monotonic() < deadline:
        time.sleep(0.01)                          # the capture records everything first
    assert d.source.lag > 10_000
    while len(d.log) < len(events) and time.monotonic() < deadline:
        d.ingest(50000, 0.05)
    assert len(d.log) == len(events) and d.source.lag == 0
    assert sess.cap.spilled > 0
    sess.close()
    assert d.store_writer.written >= 2, d.store_writer.disabled
    with open_recording(path) as r:
        refs = find_checkpoints(r)
        assert [ev.id for ev in r.iter_events()] == [ev.id for ev in events]
    assert len(refs) >= 2 and any(ref.resume_offset < ref.offset for ref in refs)
    d2 = Debugger(ReplaySource(str(path)))
    d2.stored.leap_min = 100
    ctx = commands.Context(d2, ViewBuilder(d2))
    run(ctx, "goto end")
    assert d2.position == len(events) and d2.log.holes, "the jump should use a stored checkpoint"
    assert dump(d2.engine) == straight(events, len(events))
    for target in (len(events) - 1, 5000, 17):
        run(ctx, f"goto {target}")
        assert dump(d2.engine) == straight(events, target), target


def test_the_status_bar_shows_lag_until_it_drains(tmp_path):
    from gewtui.debugger.core import Debugger
    from gewtui.debugger.view_builder import ViewBuilder
    from gewtui.debugger.sources import LiveSource
    from gewtui.tui.widgets.bars import status_text
    from tests.support.debugger_support import big_stream

    events = list(big_stream(6000, flows=100))
    sess = _LaggingSession(tmp_path / "bar.gewrec", events)
    d = Debugger(LiveSource(sess))
    views = ViewBuilder(d)
    d.ingest(1)
    deadline = time.monotonic() + 20
    # until the capture thread has offered the last batch (not only taken it from the session)
    while (sess.cap is None or sess.cap.captured < len(events)) and time.monotonic() < deadline:
        time.sleep(0.01)
    view = views.build()
    assert view.status.lag == len(events) - len(d.log) > 0
    assert f"lag {view.status.lag}" in status_text(view).plain
    while d.source.lag and time.monotonic() < deadline:
        d.ingest(50000, 0.05)
    view = views.build()
    assert view.status.lag == 0 and "lag" not in status_text(view).plain
    sess.close()


class _GatedSession(_LaggingSession):
    """Its capture records nothing until ``release`` is set."""

    def __init__(self, path, events):
        super().__init__(path, events)
        self.release = threading.Event()

    def capture_batch(self, timeout_ms):
        if not self.release.is_set():
            time.sleep(timeout_ms / 1000)
            return [], 0, 0, 0
        return super().capture_batch(timeout_ms)

    def start_capture(self):
        self.cap = Capture(self, max_queued=3000, poll_ms=50, yield_s=0)
        return self.cap.start()


def _wakeups(tid):
    """Voluntary context switches of one thread of this process so far."""
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches line")


def test_an_idle_pump_sleeps_until_the_capture_queues_events(tmp_path, monkeypatch):
    """Over a capture thread that says when it queued events, the pump does not poll: idle,
    it sleeps (each wakeup takes a CPU a busy workload wants, docs/probes.md "Transport"),
    and a batch the capture queues is folded at once, long before the idle timer ends."""
    from gewtui.debugger import runner as runner_mod
    from gewtui.debugger.core import Debugger
    from gewtui.debugger.sources import LiveSource
    from tests.support.debugger_support import big_stream

    monkeypatch.setattr(runner_mod, "IDLE_S", 5.0)
    events = list(big_stream(1400, flows=20))
    sess = _GatedSession(tmp_path / "idle.gewrec", events)
    d = Debugger(LiveSource(sess))
    r = runner_mod.Runner(d).start()
    try:
        deadline = time.monotonic() + 10
        while (sess.cap is None or r._thread.native_id is None) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)                       # the first view is built; then nothing comes
        tid = r._thread.native_id
        w0 = _wakeups(tid)
        time.sleep(1.0)
        idle = _wakeups(tid) - w0
        assert idle <= 3, f"the idle pump woke {idle} times in a second"  # polling: ~100
        t0 = time.monotonic()
        sess.release.set()
        while len(d.log) < len(events) and time.monotonic() - t0 < 10:
            time.sleep(0.01)
        took = time.monotonic() - t0
        assert len(d.log) == len(events)
        assert took < 3.0, f"folded {took:.1f} s after the capture queued it (idle timer: 5 s)"
    finally:
        r.stop()
        sess.close()


class _TrickleSession(_LaggingSession):
    """Its capture records 20 events every 20 ms, like a quiet box."""

    def _raws(self):
        out = self.events[self.i:self.i + 20]
        self.i += len(out)
        self.next_id = 1
        return [e.SerializeToString() for e in out]

    def capture_batch(self, timeout_ms):
        time.sleep(0.02)
        return super().capture_batch(timeout_ms)


def test_a_followed_live_session_gets_a_few_views_a_second_and_commands_theirs_at_once(tmp_path):
    """Following a live session, views come at most every ``live_tick_s`` however often events
    do (each costs the box CPU to build and to paint); a command's view is not held back."""
    from gewtui.debugger.core import Debugger
    from gewtui.debugger.runner import Runner
    from gewtui.debugger.sources import LiveSource
    from tests.support.debugger_support import big_stream

    events = list(big_stream(4000, flows=40))
    sess = _TrickleSession(tmp_path / "trickle.gewrec", events)
    d = Debugger(LiveSource(sess))
    views = []
    r = Runner(d, on_view=lambda v: views.append(time.monotonic()), live_tick_s=0.5).start()
    try:
        deadline = time.monotonic() + 10
        while len(d.log) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.monotonic()
        n0 = len(d.log)
        time.sleep(1.6)
        shown = sum(1 for t in views if t > t0)
        assert len(d.log) - n0 > 500                  # events kept coming all along
        assert 2 <= shown <= 4, shown                 # (at a 0.1 s tick: 13)
        asked = time.monotonic()
        r.submit("").result(timeout=5)
        assert views[-1] >= asked and views[-1] - asked < 0.4
    finally:
        r.stop()
        sess.close()


def _cpu_s(tid):
    """utime + stime of one thread of this process, in seconds."""
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_live_step_waiting_for_the_next_event_sleeps_instead_of_spinning(tmp_path):
    """A step at the live head waits for the kernel's next event: the pump sleeps meanwhile
    (it spun a whole CPU before) and the step ends once an event comes."""
    from gewtui.debugger.core import Debugger
    from gewtui.debugger.runner import Runner
    from gewtui.debugger.sources import LiveSource
    from tests.support.debugger_support import big_stream

    events = list(big_stream(1400, flows=20))
    sess = _GatedSession(tmp_path / "step.gewrec", events)
    d = Debugger(LiveSource(sess))
    r = Runner(d).start()
    try:
        deadline = time.monotonic() + 10
        while (sess.cap is None or r._thread.native_id is None) and time.monotonic() < deadline:
            time.sleep(0.01)
        fut = r.submit("step", wait_stop=True)
        time.sleep(0.3)
        assert d.motion is not None and not fut.done()    # waiting for an event
        tid = r._thread.native_id
        c0 = _cpu_s(tid)
        time.sleep(1.0)
        spent = _cpu_s(tid) - c0
        assert spent < 0.2, f"the waiting pump used {spent:.2f} s of CPU in a second"  # spinning: ~1
        sess.release.set()
        outs = fut.result(timeout=10)
        assert [(o.reason, o.position) for o in outs] == [("step", 1)], outs
    finally:
        r.stop()
        sess.close()


def test_a_listener_that_raises_does_not_stop_the_capture(tmp_path):
    """The capture calls its listeners after each batch; one that fails is the reader's
    problem (it still wakes on its own timer), never the capture's: every batch is taken."""
    live = _FakeLive(tmp_path / "l.gewrec", [50] * 6)
    cap = Capture(live, poll_ms=5, yield_s=0)
    told = []

    def broken():
        told.append(1)
        raise RuntimeError("a reader's bug")
    cap.listeners.append(broken)
    cap.start()
    try:
        deadline = time.monotonic() + 10
        while cap.captured < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cap.captured == 300 and cap.error is None and cap.alive
        assert len(told) >= 6
        got = []
        while len(got) < 300:
            got += cap.take(1000, 0.5)
    finally:
        cap.stop()
    assert [events_pb2.Event.FromString(r).id for r in got] == list(range(1, 301))
    cap.close()
    live.writer.close()
