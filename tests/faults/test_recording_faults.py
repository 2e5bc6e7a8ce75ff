"""Faults 10-12: torn recordings, bit flips and hostile framing (issue 7).

What "nothing lost, nobody let in" means here: every complete, intact record is returned;
a damaged record is never returned; every damaged byte is counted; and no input, however
hostile, gets past the reader as anything but a RecordingError (one line) or a counted
skip: no other exception, no RecursionError, no allocation proportional to a claimed size.
"""
from __future__ import annotations

import errno
import os
import random
import subprocess
import tempfile
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gewtui.errors import RecordingError
from gewtui.pb import events_pb2, recording_pb2
from gewtui.recording import MAX_HEADER_BYTES, MAX_RECORD_BYTES, RecordingReader, RecordingWriter
from gewtui.recording.framing import HEADER_MARKER, MAGIC, MARKER, encode_frame, encode_varint
from gewtui.recording.sample import mixed_records, sample_header, tcp_state_event
from tests.support.hostile_recordings import HOSTILE_FRAMES, _nested_reason_chain


def _recording(tmp_path, n=60, name="r.gewrec"):
    """A file of n mixed records; returns (bytes, [(offset, end, payload)], data_start)."""
    path = tmp_path / name
    recs = list(mixed_records(n))
    with RecordingWriter(path, sample_header()) as w:
        for r in recs:
            w.write(r)
    data = path.read_bytes()
    with RecordingReader(path) as r:
        frames = []
        for off, payload in r.frames():
            frames.append((off, off + len(encode_frame(payload)), payload))
        start = r.data_start
    return data, frames, start


def _read_all(path, **kw):
    with RecordingReader(path, **kw) as r:
        payloads = [rec.SerializeToString() for rec in r.records()]
        return payloads, r.report


# -- case 10: torn recordings ------------------------------------------------------------

def test_torn_tail_at_every_byte_of_the_last_records_returns_all_complete_records(tmp_path):
    data, frames, _ = _recording(tmp_path)
    path = tmp_path / "torn.gewrec"
    first_cut = frames[-6][0]                  # inside the last six records
    assert len(data) - first_cut > 500
    for cut in range(first_cut, len(data) + 1):
        path.write_bytes(data[:cut])
        payloads, rep = _read_all(path)
        complete = [f for f in frames if f[1] <= cut]
        assert payloads == [f[2] for f in complete], f"cut at {cut}"
        tail = cut - (complete[-1][1] if complete else 0)
        assert rep.torn_tail_bytes == tail, f"cut at {cut}"
        assert rep.skipped_records == 0 and rep.skipped_bytes == 0, f"cut at {cut}"
        assert rep.end_offset == complete[-1][1]


def test_torn_inside_the_header_is_a_one_line_error(tmp_path):
    data, _, start = _recording(tmp_path, n=3)
    path = tmp_path / "h.gewrec"
    for cut in range(0, start):
        path.write_bytes(data[:cut])
        with pytest.raises(RecordingError) as ei:
            RecordingReader(path)
        assert "\n" not in str(ei.value)
        assert ("truncated inside the header" in str(ei.value) or "not a gew recording" in str(ei.value))


def test_torn_tail_with_a_large_record_spanning_read_chunks(tmp_path):
    path = tmp_path / "big.gewrec"
    ev = events_pb2.Event(id=1)
    ev.skb_drop.ifname = "q" * 300_000
    with RecordingWriter(path, sample_header()) as w:
        w.write_event(tcp_state_event(7))
        w.write_event(ev)
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) - 150_000, len(data) - 299_990):
        path.write_bytes(data[:cut])
        with RecordingReader(path, chunk_size=4096) as r:
            assert [e.id for e in r.iter_events()] == [7]
            assert r.report.torn_tail_bytes > 0 and not r.report.skipped_bytes


# -- case 11: bit flips --------------------------------------------------------------------

@pytest.mark.parametrize("which", [9, 21, 44])   # several sizes, incl. 2-byte lengths
def test_every_single_bit_flip_in_a_middle_record_is_caught_and_skipped(tmp_path, which):
    data, frames, _ = _recording(tmp_path)
    off, end, _ = frames[which]
    path = tmp_path / "flip.gewrec"
    want = [f[2] for k, f in enumerate(frames) if k != which]
    for byte in range(off, end):
        for bit in range(8):
            bad = bytearray(data)
            bad[byte] ^= 1 << bit
            path.write_bytes(bad)
            payloads, rep = _read_all(path)
            where = f"byte {byte - off} of frame {which}, bit {bit}"
            assert payloads == want, where
            assert rep.skipped_records == 1 and rep.skipped_bytes == end - off, where
            assert rep.skipped_regions[0].offset == off, where
            assert rep.torn_tail_bytes == 0, where


def test_flips_in_several_records_are_each_counted(tmp_path):
    data, frames, _ = _recording(tmp_path)
    bad = bytearray(data)
    rng = random.Random(11)
    hit = [5, 17, 18, 40]                      # two adjacent damaged frames make one region
    for k in hit:
        # Inside the payload: a flip in a marker hides that frame's start, and the reader
        # counts the frames of a damaged region by their markers.
        off, end, _ = frames[k]
        bad[rng.randrange(off + 5, end - 4)] ^= 1 << rng.randrange(8)
    path = tmp_path / "flips.gewrec"
    path.write_bytes(bad)
    payloads, rep = _read_all(path)
    assert payloads == [f[2] for k, f in enumerate(frames) if k not in hit]
    assert rep.skipped_records == 4
    assert len(rep.skipped_regions) == 3
    assert rep.skipped_bytes == sum(frames[k][1] - frames[k][0] for k in hit)
    assert "4 damaged record(s) skipped in 3 region(s)" in rep.summary()


def test_flip_in_the_last_record_is_reported_as_torn_tail(tmp_path):
    data, frames, _ = _recording(tmp_path)
    off, end, _ = frames[-1]
    bad = bytearray(data)
    bad[off + 6] ^= 0x10
    path = tmp_path / "last.gewrec"
    path.write_bytes(bad)
    payloads, rep = _read_all(path)
    assert payloads == [f[2] for f in frames[:-1]]
    assert rep.torn_tail_bytes == end - off and rep.skipped_records == 0


def test_strict_mode_raises_on_the_first_damaged_record(tmp_path):
    data, frames, _ = _recording(tmp_path)
    bad = bytearray(data)
    bad[frames[10][0] + 8] ^= 1
    path = tmp_path / "strict.gewrec"
    path.write_bytes(bad)
    seen = []
    with pytest.raises(RecordingError) as ei:
        with RecordingReader(path, strict=True) as r:
            for rec in r.records():
                seen.append(rec.SerializeToString())
    assert seen == [f[2] for f in frames[:10]]
    assert f"damaged at byte {frames[10][0]}: checksum mismatch" in str(ei.value)


def test_damaged_header_is_a_one_line_error(tmp_path):
    data, _, start = _recording(tmp_path, n=3)
    path = tmp_path / "hdr.gewrec"
    for byte in range(len(MAGIC), start):
        bad = bytearray(data)
        bad[byte] ^= 0x04
        path.write_bytes(bad)
        with pytest.raises(RecordingError) as ei:
            RecordingReader(path)
        assert "header" in str(ei.value) and "\n" not in str(ei.value)


def test_not_a_recording_and_future_versions_are_refused(tmp_path):
    path = tmp_path / "x"
    for content, words in [(b"", "empty file"), (b"hello world, not ours", "magic"),
                           (b"GEWREC\x00\x09" + b"\x00" * 20, "format version 9")]:
        path.write_bytes(content)
        with pytest.raises(RecordingError) as ei:
            RecordingReader(path)
        assert words in str(ei.value)


# -- case 12: hostile framing ----------------------------------------------------------

def _with_inserted(tmp_path, blob: bytes, name: str):
    """Valid records, then ``blob``, then more valid records."""
    data, frames, _ = _recording(tmp_path, n=10)
    cut = frames[5][0]
    path = tmp_path / name
    path.write_bytes(data[:cut] + blob + data[cut:])
    return path, [f[2] for f in frames]


def _bounded(fn, limit=16 << 20):
    tracemalloc.start()
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"peak allocation {peak >> 20} MiB"
    return result


@pytest.mark.parametrize("kind", sorted(HOSTILE_FRAMES))
def test_hostile_length_is_skipped_without_allocating_it(tmp_path, kind):
    path, want = _with_inserted(tmp_path, HOSTILE_FRAMES[kind], f"{kind}.gewrec")
    payloads, rep = _bounded(lambda: _read_all(path))
    assert payloads == want
    assert rep.skipped_records >= 1 and rep.skipped_bytes == len(HOSTILE_FRAMES[kind])
    with pytest.raises(RecordingError) as ei:
        _read_all(path, strict=True)
    assert "\n" not in str(ei.value)


def test_claimed_length_past_the_end_of_a_small_file_reads_only_the_file(tmp_path):
    data, frames, _ = _recording(tmp_path, n=5)
    path = tmp_path / "claim.gewrec"
    path.write_bytes(data + MARKER + encode_varint(MAX_RECORD_BYTES) + b"abc")
    payloads, rep = _bounded(lambda: _read_all(path, ), limit=8 << 20)
    assert payloads == [f[2] for f in frames] and rep.torn_tail_bytes == 4 + 4 + 3


def test_crafted_false_frame_starts_are_refused_in_linear_time(tmp_path):
    """A marker every 8 bytes, each claiming a length just under the cap: checking each one
    would CRC megabytes per 8 bytes of file (quadratic). The reader gives up with one line."""
    import time

    path = tmp_path / "crafted.gewrec"
    RecordingWriter(path, sample_header()).close()
    claim = MAX_RECORD_BYTES - 100
    cand = MARKER + encode_varint(claim)
    cand += b"\x00" * (-len(cand) % 8)
    with open(path, "ab") as f:
        f.write(cand * 8192 + b"\x01" * (claim + 100))
    t = time.perf_counter()
    with pytest.raises(RecordingError) as ei:
        _bounded(lambda: _read_all(path))
    assert time.perf_counter() - t < 5
    assert "hostile framing" in str(ei.value) and "\n" not in str(ei.value)


def test_damaged_lengths_of_large_records_are_not_mistaken_for_hostility(tmp_path):
    """Real damage to big frames' lengths (claims grown by a megabyte) is skipped, not refused."""
    path = tmp_path / "bigflips.gewrec"
    evs = []
    for i in range(1, 41):
        ev = events_pb2.Event(id=i)
        ev.skb_drop.ifname = "b" * 300_000            # 3-byte length varints
        evs.append(ev)
    with RecordingWriter(path, sample_header()) as w:
        for ev in evs:
            w.write_event(ev)
    with RecordingReader(path) as r:
        offsets = [off for off, _ in r.frames()]
    data = bytearray(path.read_bytes())
    hit = [3, 4, 10, 20, 30, 38]
    for k in hit:
        data[offsets[k] + 6] |= 0x40                  # third varint byte: +1 MiB claimed
    path.write_bytes(data)
    with RecordingReader(path) as r:
        ids = [e.id for e in r.iter_events()]
        rep = r.report
    assert ids == [ev.id for k, ev in enumerate(evs) if k not in hit]
    assert rep.skipped_records == len(hit)


def _nested_unknown_groups(depth: int) -> bytes:
    """An event whose payload is `depth` nested unknown groups (field 99, wire type 3)."""
    start, end = encode_varint(99 << 3 | 3), encode_varint(99 << 3 | 4)
    inner = start * depth + end * depth
    return b"\x0a" + encode_varint(len(inner)) + inner


@pytest.mark.parametrize("payload", [
    pytest.param(_nested_reason_chain(50_000), id="reason_children_50k_deep"),
    pytest.param(_nested_unknown_groups(200_000), id="unknown_groups_200k_deep"),
    pytest.param(b"\x0a\x05\x08\x80\x80\x80", id="truncated_event"),
])
def test_nesting_bombs_and_bad_protobuf_with_valid_crc_are_skipped(tmp_path, payload):
    assert len(payload) < MAX_RECORD_BYTES
    path, want = _with_inserted(tmp_path, encode_frame(payload), "nest.gewrec")
    payloads, rep = _bounded(lambda: _read_all(path))
    assert payloads == want
    assert rep.skipped_records == 1 and "undecodable record" in rep.skipped_regions[0].reason
    with RecordingReader(path) as r:                          # the events-only fast path too
        ids = [e.id for e in r.iter_events()]
        assert r.report.skipped_records == 1
    assert ids == [recording_pb2.Record.FromString(p).event.id for p in want
                   if recording_pb2.Record.FromString(p).HasField("event")]
    with pytest.raises(RecordingError) as ei:
        _read_all(path, strict=True)
    assert "undecodable record" in str(ei.value) and "\n" not in str(ei.value)


def _raw_file(path, header_frame: bytes, rest: bytes = b""):
    path.write_bytes(MAGIC + header_frame + rest)
    return path


@pytest.mark.parametrize("header_frame", [  # each after a valid magic
    pytest.param(HEADER_MARKER + encode_varint(MAX_HEADER_BYTES + 1) + b"\x00" * 16,
                 id="over_cap"),
    pytest.param(HEADER_MARKER + b"\x80" * 12, id="overlong_varint"),
    pytest.param(encode_frame(_nested_reason_chain(10_000), HEADER_MARKER), id="nesting_bomb"),
    pytest.param(encode_frame(b"\x12\xff\xff\xff\x0f", HEADER_MARKER),
                 id="truncated_session_field"),
    pytest.param(encode_frame(sample_header().SerializeToString()), id="record_marker"),
    pytest.param(b"\x00" * 32, id="no_marker"),
])
def test_hostile_header_is_a_one_line_error(tmp_path, header_frame):
    path = _raw_file(tmp_path / "hh.gewrec", header_frame)
    with pytest.raises(RecordingError) as ei:
        _bounded(lambda: RecordingReader(path))
    assert "header" in str(ei.value) and "\n" not in str(ei.value)


def test_export_of_a_hostile_file_is_one_line_without_traceback(tmp_path):
    path, _ = _with_inserted(tmp_path, encode_frame(_nested_reason_chain(50_000)), "ex.gewrec")
    gew = os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", ".venv", "bin", "gew")
    r = subprocess.run([gew, "export", str(path), "--json"], capture_output=True, text=True)
    assert r.returncode == 65
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "undecodable record" in err[0] and "Traceback" not in r.stderr
    assert len(r.stdout.splitlines()) > 0                     # the intact records were written


# -- case 12: fuzzing ----------------------------------------------------------------------

_FUZZ_BASE: dict[str, object] = {}


def _fuzz_base():
    if not _FUZZ_BASE:
        with tempfile.TemporaryDirectory() as d:
            from pathlib import Path
            data, frames, start = _recording(Path(d), n=40)
        _FUZZ_BASE.update(data=data, payloads={f[2] for f in frames}, start=start)
    return _FUZZ_BASE


_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20),
              st.one_of(st.binary(max_size=24), st.sampled_from(list(HOSTILE_FRAMES.values())),
                        st.just(MARKER))),
    st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 200)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20), st.just(0)),
    st.tuples(st.just("dup"), st.integers(0, 1 << 20), st.integers(1, 300)),
    st.tuples(st.just("splice"), st.integers(0, 1 << 20),
              st.tuples(st.integers(0, 1 << 20), st.integers(1, 400))),
)


def _mutate(data: bytes, muts, keep_header: bool) -> bytes:
    buf = bytearray(data)
    lo = _fuzz_base()["start"] if keep_header else 0
    for op, where, arg in muts:
        if len(buf) <= lo:
            break
        i = lo + where % (len(buf) - lo)
        if op == "flip":
            buf[i] ^= 1 << arg
        elif op == "set":
            buf[i:i + len(arg)] = arg
        elif op == "insert":
            buf[i:i] = arg
        elif op == "delete":
            del buf[i:i + arg]
        elif op == "truncate":
            del buf[i:]
        elif op == "dup":
            buf[i:i] = buf[i:i + arg]
        elif op == "splice":                   # a block from elsewhere in the file
            j = arg[0] % len(buf)
            buf[i:i] = buf[j:j + arg[1]]
    return bytes(buf)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(muts=st.lists(_mutation, min_size=1, max_size=6), keep_header=st.booleans(),
       chunk=st.sampled_from([1, 7, 64, 1000, 1 << 20]))
def test_fuzz_reader_on_mutated_files(tmp_path, muts, keep_header, chunk):
    """Mutated files: only RecordingError may escape; every record yielded is one that was
    written; allocation stays bounded; any read chunk size gives the same answer."""
    base = _fuzz_base()
    path = tmp_path / "fuzz.gewrec"
    path.write_bytes(_mutate(base["data"], muts, keep_header))

    def read(chunk_size):
        try:
            with RecordingReader(path, chunk_size=chunk_size) as r:
                got = [rec.SerializeToString() for rec in r.records()]
                rep = r.report
                return got, (rep.records, rep.torn_tail_bytes, rep.skipped_bytes,
                             rep.skipped_records, rep.end_offset)
        except RecordingError as e:
            assert "\n" not in str(e)
            return None, str(e)

    got, rep = _bounded(lambda: read(chunk))
    if got is not None:
        # Frames survive mutation only whole (CRC); a duplicated frame is still one we wrote.
        assert set(got) <= base["payloads"]
    assert read(1 << 20) == (got, rep)


# -- fault case 9, the recording's share: a real disk that fills up ---------------------

@pytest.mark.root
def test_recording_on_a_real_full_filesystem_stays_readable(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: mounts a small tmpfs to fill it")
    mnt = tmp_path / "gewt-full"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "gewt-full", str(mnt)], check=True)
    try:
        path = mnt / "r.gewrec"
        w = RecordingWriter(path, sample_header(), buffer_bytes=16 << 10)
        ev = tcp_state_event(1)
        with pytest.raises(RecordingError) as ei:
            for i in range(1, 100_000):
                w.write_event(tcp_state_event(i, ev))
        w.close()
        assert os.strerror(errno.ENOSPC) in str(ei.value)
        with RecordingReader(path) as r:
            ids = [e.id for e in r.iter_events()]
            assert r.report.clean, r.report
        assert len(ids) > 1000 and ids == list(range(1, len(ids) + 1))
        assert w.records_lost >= 1
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
