"""Damaged real recordings through everything that reads them (issue 7 cases 10-12, the
consumer's side; the reader's own byte-level proofs are tests/faults/test_recording_faults.py).

A golden recording made by the real probes (tests/data/golden) is torn, bit-flipped or
given hostile frames, then replayed by the debugger (the engine folds every event, as the
TUI and the shell do) and exported by `gew export`. "Nothing lost, nobody let in" here:
the replay never raises, holds exactly the intact events in their order (never one that was
not written), stays in bounded memory, and export says what happened in one line with the
documented exit code.
"""
from __future__ import annotations

import random
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from gewtui.debugger.core import Debugger
from gewtui.debugger.sources import ReplaySource
from gewtui.recording import RecordingReader
from gewtui.recording.framing import encode_frame
from tests.faults.test_recording_faults import HOSTILE_FRAMES, _nested_reason_chain

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "golden" / "refused.gewrec"
GEW = [sys.executable, "-m", "gewtui.cli.main"]


def _frames(path: Path) -> tuple[bytes, list[tuple[int, int, int | None]]]:
    """The file's bytes and its frames: (offset, end, event id or None for other records)."""
    from gewtui.pb import recording_pb2

    data = path.read_bytes()
    out = []
    with RecordingReader(path) as r:
        for off, payload in r.frames():
            rec = recording_pb2.Record.FromString(payload)
            out.append((off, off + len(encode_frame(payload)), rec.event.id if rec.HasField("event") else None))
    return data, out


def _replay(path: Path) -> list[int]:
    """Replay through the debugger to the end (every event folded by the real engine);
    the ids it holds, in order."""
    src = ReplaySource(path)
    try:
        d = Debugger(src)
        d.goto_end()
        d.settle()
        assert d.log.complete and d.position == len(d.log)
        return [d.log.get(i).id for i in range(len(d.log))]
    finally:
        src.close()


def _export(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(GEW + ["export", str(path), "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_case10_torn_real_recording_replays_every_complete_event_in_the_debugger_and_export(tmp_path):
    data, frames = _frames(GOLDEN)
    ids = [e for _, _, e in frames if e is not None]
    assert len(ids) > 50
    rng = random.Random(10)
    cuts = list(range(frames[-1][0], len(data) + 1))                 # every byte of the last record
    cuts += rng.sample(range(frames[0][0], frames[-1][0]), 40)       # and anywhere before it
    path = tmp_path / "torn.gewrec"
    for cut in cuts:
        path.write_bytes(data[:cut])
        want = [e for off, end, e in frames if end <= cut and e is not None]
        assert _replay(path) == want, f"cut at {cut}"
    cut = (frames[len(frames) // 2][0] + frames[len(frames) // 2][1]) // 2
    path.write_bytes(data[:cut])
    r = _export(path)
    want = [e for off, end, e in frames if end <= cut and e is not None]
    err = r.stderr.strip().splitlines()
    assert r.returncode == 0 and len(err) == 1 and "torn" in err[0] and "Traceback" not in r.stderr, r.stderr
    assert sum('"kind": "event"' in ln or '"kind":"event"' in ln for ln in r.stdout.splitlines()) == len(want)


def test_case11_bit_flips_in_a_real_recording_never_reach_the_debugger(tmp_path):
    data, frames = _frames(GOLDEN)
    ids = [e for _, _, e in frames if e is not None]
    rng = random.Random(11)
    path = tmp_path / "flip.gewrec"
    for _ in range(40):
        k = rng.randrange(1, len(frames) - 1)                      # a middle record
        off, end, eid = frames[k]
        bad = bytearray(data)
        bad[rng.randrange(off, end)] ^= 1 << rng.randrange(8)
        path.write_bytes(bad)
        # exactly the damaged record is missing; nothing else, nothing wrong
        assert _replay(path) == [i for i in ids if i != eid], f"record {k}"
    r = _export(path)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 65 and len(err) == 1 and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("kind", sorted(HOSTILE_FRAMES) + ["nesting_bomb"])
def test_case12_hostile_frames_in_a_real_recording_replay_in_bounded_memory(tmp_path, kind):
    data, frames = _frames(GOLDEN)
    ids = [e for _, _, e in frames if e is not None]
    blob = encode_frame(_nested_reason_chain(50_000)) if kind == "nesting_bomb" else HOSTILE_FRAMES[kind]
    at = frames[len(frames) // 2][0]
    path = tmp_path / f"{kind}.gewrec"
    path.write_bytes(data[:at] + blob + data[at:])
    tracemalloc.start()
    try:
        got = _replay(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == ids
    assert peak < 64 << 20, f"peak allocation {peak >> 20} MiB"
    r = _export(path)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 65 and len(err) == 1 and "Traceback" not in r.stderr, r.stderr
