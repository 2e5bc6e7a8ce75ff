"""The recording writer's frames for a batch of events, in C (framing_native.c), against the
Python loop they stand for (write_events_bytes_reference): the same bytes in the buffer,
the same record count, the same refusal of an event over the cap, and a recording written
through it reads back whole."""
import random

import pytest

from gewtui.errors import RecordingError
from gewtui.pb import events_pb2, recording_pb2
from gewtui.recording import RecordingWriter, open_recording, writer
from gewtui.recording.framing import MAX_RECORD_BYTES


def _writer(tmp_path, name):
    # a buffer that never flushes on its own: the test compares what each path buffered
    return RecordingWriter(tmp_path / name, recording_pb2.RecordingHeader(), buffer_bytes=1 << 40,
                           flush_interval=1e9)


def test_the_extension_is_built_and_used():
    assert writer._frame_events is not None, (
        "gewtui.recording.framing_native is not built: `make venv` builds it (gcc, python3-dev and "
        "zlib1g-dev from .ci/host-setup)")


def test_batches_frame_to_the_reference_bytes(tmp_path):
    rnd = random.Random(1)
    sizes = [0, 1, 2, 125, 126, 127, 128, 129, 16381, 16382, 16383, 16384, 70000]
    with _writer(tmp_path, "c.gewrec") as c, _writer(tmp_path, "py.gewrec") as py:
        for _ in range(300):
            batch = [rnd.randbytes(rnd.choice(sizes) if rnd.random() < 0.1 else rnd.randrange(300))
                     for _ in range(rnd.randrange(0, 200))]
            c.write_events_bytes(batch)
            py.write_events_bytes_reference(batch)
            assert c._buf == py._buf and c.records == py.records


def test_an_event_over_the_cap_is_refused_as_the_reference_refuses_it(tmp_path):
    big = bytes(MAX_RECORD_BYTES)
    batch = [b"\x08\x01", b"\x08\x02", big, b"\x08\x03"]
    with _writer(tmp_path, "c.gewrec") as c, _writer(tmp_path, "py.gewrec") as py:
        with pytest.raises(RecordingError, match="over the"):
            c.write_events_bytes(batch)
        with pytest.raises(RecordingError, match="over the"):
            py.write_events_bytes_reference(batch)
        assert c._buf == py._buf and c.records == py.records


def test_a_recording_written_in_batches_reads_back(tmp_path):
    evs = [events_pb2.Event(id=i, ktime_ns=1000 + i, mark=events_pb2.SessionMark(kind=f"m{i}")) for i in range(1, 5001)]
    path = tmp_path / "r.gewrec"
    with RecordingWriter(path, recording_pb2.RecordingHeader()) as w:
        for i in range(0, len(evs), 777):
            w.write_events_bytes([e.SerializeToString() for e in evs[i:i + 777]])
    with open_recording(path) as r:
        assert [e.id for e in r.iter_events()] == list(range(1, 5001))
        assert r.report.skipped_records == 0


def test_payloads_other_than_bytes_take_the_python_loop(tmp_path):
    batch = [b"\x08\x01", bytearray(b"\x08\x02"), memoryview(b"\x08\x03")]
    with _writer(tmp_path, "c.gewrec") as c, _writer(tmp_path, "py.gewrec") as py:
        c.write_events_bytes(batch)
        py.write_events_bytes_reference(batch)
        assert c._buf == py._buf and c.records == py.records == 3
