"""Recording files: round trips, random access, append, flushing, write failures, and a
million events streamed in bounded memory. No root needed. Damage and hostile input are in
tests/faults/test_recording_faults.py."""
from __future__ import annotations

import errno
import stat
import os
import time

import pytest

from gewtui.errors import EX_IOERR, EX_NOINPUT, GewError, RecordingError
from gewtui.pb import events_pb2, recording_pb2
from gewtui.recording import (
    FORMAT_VERSION, MAGIC, MAX_RECORD_BYTES, RecordingReader, RecordingWriter, open_recording,
)
from gewtui.recording import writer as writer_mod
from gewtui.recording.sample import mixed_records, sample_header, tcp_state_event, write_sample


def _write(path, records, **kw):
    with RecordingWriter(path, sample_header(), **kw) as w:
        for r in records:
            w.write(r)
    return path


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_round_trip_every_record_kind(tmp_path):
    recs = list(mixed_records(400))
    path = _write(tmp_path / "a.gewrec", recs)
    with open_recording(path) as r:
        assert r.header.format_version == FORMAT_VERSION
        assert r.header.session.session_id == "sample"
        assert r.header.drop_reasons[2] == "NOT_SPECIFIED"
        assert r.header.created_unix_ns > 0 and r.header.writer == "gew-tui sample"
        back = list(r)
        assert r.report.clean and r.report.complete
        assert r.report.records == len(recs)
    assert [b.SerializeToString() for b in back] == [x.SerializeToString() for x in recs]
    kinds = {b.WhichOneof("body") for b in back}
    assert kinds == {"event", "intervention", "stats", "end"}


def test_file_starts_with_magic_and_header_is_written_at_open(tmp_path):
    path = tmp_path / "h.gewrec"
    w = RecordingWriter(path, sample_header())
    try:
        data = path.read_bytes()
        assert data.startswith(MAGIC)
        with open_recording(path) as r:      # readable before any record or close
            assert r.header.session.session_id == "sample"
            assert list(r) == []
    finally:
        w.close()


def test_writer_does_not_modify_the_callers_header(tmp_path):
    h = recording_pb2.RecordingHeader()
    RecordingWriter(tmp_path / "x.gewrec", h).close()
    assert h.format_version == 0 and h.created_unix_ns == 0 and h.writer == ""


def test_event_paths_agree(tmp_path):
    """write_event, write_event_bytes, write(Record) and write_record_bytes produce the same
    records, and iter_events' shortcut decodes them like Record does."""
    path = tmp_path / "e.gewrec"
    evs = [tcp_state_event(i) for i in range(1, 6)]
    big = events_pb2.Event(id=6)
    big.skb_drop.ifname = "z" * 20000          # 3-byte length varints inside and out
    evs.append(big)
    with RecordingWriter(path, sample_header()) as w:
        for ev in evs:
            w.write_event(ev)
            w.write_event_bytes(ev.SerializeToString())
            w.write(recording_pb2.Record(event=ev))
            w.write_record_bytes(recording_pb2.Record(event=ev).SerializeToString())
        assert w.records == 4 * len(evs)
    with open_recording(path) as r:
        got = [e.SerializeToString() for e in r.iter_events()]
        assert r.report.records == 4 * len(evs)
        via_records = [x.event.SerializeToString() for x in r.records()]
    want = [e.SerializeToString() for e in evs for _ in range(4)]
    assert got == want and via_records == want


def test_iter_events_skips_other_records_and_respects_merge_rules(tmp_path):
    # A payload that is not exactly one event field goes through Record decoding: two
    # event fields merge, as protobuf says they do.
    path = tmp_path / "m.gewrec"
    a = recording_pb2.Record(event=events_pb2.Event(id=1)).SerializeToString()
    b = recording_pb2.Record(event=events_pb2.Event(cpu=3)).SerializeToString()
    with RecordingWriter(path, sample_header()) as w:
        w.write_record_bytes(a + b)
        w.write(recording_pb2.Record(stats={"events": 1}))
    with open_recording(path) as r:
        evs = list(r.iter_events())
    assert len(evs) == 1 and evs[0].id == 1 and evs[0].cpu == 3


def test_records_with_offsets_and_start(tmp_path):
    recs = list(mixed_records(100))
    path = _write(tmp_path / "o.gewrec", recs)
    with open_recording(path) as r:
        pairs = list(r.records_with_offsets())
        assert pairs[0][0] == r.data_start
        offsets = [o for o, _ in pairs]
        assert offsets == sorted(set(offsets))
        tail = list(r.records(start=offsets[60]))
        assert [t.SerializeToString() for t in tail] == [x.SerializeToString() for x in recs[60:]]
        assert r.report.clean


def test_scan_offsets_indexes_every_nth_record(tmp_path):
    recs = list(mixed_records(1000))
    path = _write(tmp_path / "i.gewrec", recs)
    with open_recording(path) as r:
        idx = r.scan_offsets(every=100)
        assert idx.records == len(recs)
        assert len(idx.offsets) == 11
        assert idx.end_offset == os.path.getsize(path)
        for k, off in enumerate(idx.offsets):
            first = next(iter(r.records(start=off)))
            assert first.SerializeToString() == recs[k * 100].SerializeToString()
        with pytest.raises(ValueError):
            r.scan_offsets(every=0)


def test_append_continues_after_a_torn_tail(tmp_path):
    path = tmp_path / "ap.gewrec"
    recs = list(mixed_records(50))
    _write(path, recs)
    with open(path, "ab") as f:
        f.write(b"\xf7GW\x1e\x40partial")      # a frame cut short by a crash
    with RecordingWriter.append(path) as w:
        w.write_event(tcp_state_event(999))
    with open_recording(path) as r:
        back = list(r)
        assert r.report.clean, r.report
    assert len(back) == len(recs) + 1 and back[-1].event.id == 999


def test_flush_if_due_puts_records_in_the_file_within_the_interval(tmp_path):
    path = tmp_path / "f.gewrec"
    w = RecordingWriter(path, sample_header(), flush_interval=0.05)
    try:
        w.write_event(tcp_state_event(1))
        size0 = os.path.getsize(path)
        time.sleep(0.06)
        w.flush_if_due()
        assert os.path.getsize(path) > size0
        with open_recording(path) as r:
            assert [e.id for e in r.iter_events()] == [1]
        # a write after the interval flushes by itself
        time.sleep(0.06)
        w.write_event(tcp_state_event(2))
        with open_recording(path) as r:
            assert [e.id for e in r.iter_events()] == [1, 2]
    finally:
        w.close()


def test_writes_are_batched_not_one_syscall_each(tmp_path, monkeypatch):
    calls = []
    real = os.write

    def counting(fd, data):
        calls.append(len(data))
        return real(fd, data)

    path = tmp_path / "b.gewrec"
    w = RecordingWriter(path, sample_header(), buffer_bytes=64 << 10)
    monkeypatch.setattr(writer_mod.os, "write", counting)
    ev = tcp_state_event(1)
    for i in range(1, 5001):
        w.write_event(tcp_state_event(i, ev))
    w.close()
    assert 1 <= len(calls) <= 10, calls
    with open_recording(path) as r:
        assert sum(1 for _ in r.iter_events()) == 5000


def test_close_is_idempotent_and_fsyncs(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(writer_mod.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    w = RecordingWriter(tmp_path / "c.gewrec", sample_header())
    w.write_event(tcp_state_event(1))
    w.close()
    w.close()
    assert len(synced) == 1


def test_oversized_record_is_refused_by_the_writer(tmp_path):
    with RecordingWriter(tmp_path / "big.gewrec", sample_header()) as w:
        with pytest.raises(RecordingError):
            w.write_record_bytes(b"\x00" * (MAX_RECORD_BYTES + 1))
        ev = events_pb2.Event()
        ev.skb_drop.ifname = "x" * MAX_RECORD_BYTES
        with pytest.raises(RecordingError):
            w.write_event(ev)
        w.write_event(tcp_state_event(1))      # still usable
    with open_recording(tmp_path / "big.gewrec") as r:
        assert [e.id for e in r.iter_events()] == [1]


def test_missing_and_unopenable_files_are_noinput_errors(tmp_path):
    with pytest.raises(RecordingError) as ei:
        open_recording(tmp_path / "nope.gewrec")
    assert ei.value.code == EX_NOINPUT and "no such file" in ei.value.message
    with pytest.raises(RecordingError) as ei:
        open_recording(tmp_path)
    assert ei.value.code == EX_NOINPUT


def test_writer_never_replaces_a_device_node():
    """A recording path naming a device (here /dev/full) is refused in one line and the
    node stays a device: the writer replaces only files and links."""
    with pytest.raises(GewError) as ei:
        RecordingWriter("/dev/full", sample_header())
    assert "a device, not a regular file" in ei.value.message and "\n" not in ei.value.message
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)


def test_cannot_create_is_a_recording_error(tmp_path):
    with pytest.raises(RecordingError) as ei:
        RecordingWriter(tmp_path / "no" / "such" / "dir.gewrec", sample_header())
    assert "cannot open recording" in ei.value.message


@pytest.mark.parametrize("fail_after", [0, 1, 777, 5000])
def test_disk_full_mid_write_leaves_whole_frames_and_refuses_more(tmp_path, monkeypatch,
                                                                  fail_after):
    """ENOSPC after `fail_after` more bytes: the file keeps only complete frames, the error
    says how many records were lost, later writes are refused and counted."""
    path = tmp_path / "full.gewrec"
    w = RecordingWriter(path, sample_header(), buffer_bytes=1 << 30, flush_interval=1e9)
    budget = [fail_after]
    real = os.write

    def full_disk(fd, data):
        if budget[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        k = real(fd, bytes(data[:budget[0]]))
        budget[0] -= k
        return k

    monkeypatch.setattr(writer_mod.os, "write", full_disk)
    ev = tcp_state_event(1)
    for i in range(1, 201):
        w.write_event(tcp_state_event(i, ev))
    with pytest.raises(RecordingError) as ei:
        w.flush()
    assert ei.value.code == EX_IOERR
    msg = ei.value.message
    assert "No space left on device" in msg and "readable up to byte" in msg
    with pytest.raises(RecordingError):
        w.write_event(ev)
    w.close()                                  # closes quietly after the failure
    with open_recording(path) as r:
        ids = [e.id for e in r.iter_events()]
        assert r.report.clean, r.report        # no torn frame was left behind
    assert ids == list(range(1, len(ids) + 1))
    assert w.records_lost == 200 - len(ids) + 1
    assert f"{200 - len(ids)} record(s) not written" in msg


def test_a_million_events_round_trip_in_bounded_memory(tmp_path):
    """1M events written and streamed back; resident memory grows by far less than the file
    (~90 MB) while doing either."""
    n = 1_000_000
    path = tmp_path / "million.gewrec"
    rss0 = _rss_bytes()
    write_sample(path, n)
    write_growth = _rss_bytes() - rss0
    size = os.path.getsize(path)
    assert size > 80 * n
    peak = 0
    expect = 1
    with RecordingReader(path) as r:
        base = _rss_bytes()
        for ev in r.iter_events():
            if ev.id != expect:
                raise AssertionError(f"event {ev.id} where {expect} was expected")
            expect += 1
            if not ev.id & 0xFFFF:
                peak = max(peak, _rss_bytes() - base)
        assert r.report.clean and r.report.records == n
    assert expect == n + 1
    assert peak < 64 << 20, f"reader RSS grew by {peak >> 20} MiB"
    assert write_growth < 64 << 20, f"writer RSS grew by {write_growth >> 20} MiB"
    # the debugger's jump to the end: index, then read only the last stretch
    t = time.perf_counter()
    with open_recording(path) as r:
        idx = r.scan_offsets(every=4096)
        last = list(r.iter_events(start=idx.offsets[-1]))[-1]
    assert last.id == n and idx.records == n
    assert time.perf_counter() - t < 10   # ~0.7 s here; generous for slow CI machines


def test_interleaved_iterations_on_one_reader_do_not_disturb_each_other(tmp_path):
    recs = [r.SerializeToString() for r in mixed_records(3000)]
    path = tmp_path / "two.gewrec"
    with RecordingWriter(path, sample_header()) as w:
        for r in recs:
            w.write_record_bytes(r)
    with RecordingReader(path, chunk_size=4096) as r:
        a = r.records()
        first = [next(a).SerializeToString() for _ in range(1000)]
        idx = r.scan_offsets(every=500)              # a whole pass in the middle of `a`
        b = r.records(start=idx.offsets[3])
        mid = [next(b).SerializeToString() for _ in range(10)]
        rest = [x.SerializeToString() for x in a]
        # `report` follows the most recently started iteration (b); the scan kept its own
        assert r.report.records == 10 and not r.report.complete
    assert first + rest == recs
    assert mid == recs[1500:1510]
    assert idx.records == len(recs) and idx.report.clean and idx.report.complete


def test_interrupt_between_partial_writes_neither_loses_nor_repeats_bytes(tmp_path, monkeypatch):
    path = tmp_path / "int.gewrec"
    w = RecordingWriter(path, sample_header(), buffer_bytes=1 << 30, flush_interval=1e9)
    ev = tcp_state_event(1)
    for i in range(1, 1001):
        w.write_event(tcp_state_event(i, ev))
    real = os.write
    calls = [0]

    def half_then_interrupt(fd, data):
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt
        return real(fd, bytes(data[:len(data) // 3 + 1]))   # short writes, mid-frame

    monkeypatch.setattr(writer_mod.os, "write", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        w.flush()
    monkeypatch.setattr(writer_mod.os, "write", real)
    w.close()
    with open_recording(path) as r:
        assert [e.id for e in r.iter_events()] == list(range(1, 1001))
        assert r.report.clean
