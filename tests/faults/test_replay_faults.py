"""Replays under fault: damaged real recordings through everything that reads them (issue 7
cases 10-12, the consumer's side; the reader's own byte-level proofs are
tests/faults/test_recording_faults.py), and a recording full of interventions that must stay
inert in every front end (case 13).

A golden recording made by the real probes (tests/data/golden) is torn, bit-flipped or
given hostile frames, then replayed by the debugger (the engine folds every event, as the
TUI and the shell do) and exported by `gew export`. "Nothing lost, nobody let in" here:
the replay never raises, holds exactly the intact events in their order (never one that was
not written), stays in bounded memory, and export says what happened in one line with the
documented exit code. For case 13: no bpf(2) call and no netlink socket, seen by strace.

    python -m tests.faults.test_replay_faults replay shell|tui FILE   # a front end, scripted
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
from tests.support.hostile_recordings import HOSTILE_FRAMES, _intervention_recording, _nested_reason_chain

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


def _replay_frontend(frontend: str, path: str) -> None:
    """Child: replay path through one front end's real wiring and try to drop flow 1 with
    the typed confirmation an operator would give. Prints what the front end said."""
    import argparse
    import asyncio
    import io

    from gewtui.cli import tui_cmd

    ap = argparse.ArgumentParser()
    tui_cmd.add_arguments(ap, ("tui",))
    args = ap.parse_args(["--replay", path])
    with tui_cmd.open_debugger(args, path) as d:
        if frontend == "shell":
            from gewtui.debugger.runner import Runner
            from gewtui.shell.repl import Shell, make_console

            class Operator:                      # types the flow id when asked to confirm
                def prompt(self, text: str) -> str:
                    print("asked:", text)
                    return "1"

            out = io.StringIO()
            runner = Runner(d).start()
            try:
                shell = Shell(runner, console=make_console(out, width=200))
                shell._session = Operator()
                for line in ("goto end", "flow 1", "drop 1", "undo 1", "gate 1"):
                    shell.execute(line)
            finally:
                runner.stop()
            print(out.getvalue())
            return
        from gewtui.tui.app import FixedClock, build_app
        from gewtui.tui.messages import CommandOutput
        from gewtui.tui.widgets.bars import CommandBar

        app = build_app(d, clock=FixedClock(), cursor_blink=False)
        said: list[str] = []

        def hook(m) -> None:
            if isinstance(m, CommandOutput):
                said.extend(str(getattr(o, "text", o)) for o in m.outputs)

        async def drive() -> None:
            async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
                await app.settle()
                for line in ("goto end", "flow 1"):
                    await pilot.press("colon")
                    app.screen.query_one(CommandBar).value = line
                    await pilot.press("enter")
                    await app.settle()
                await pilot.press("d")               # drop: the typed confirmation dialog
                await pilot.pause()
                await pilot.press("1", "enter")
                await app.settle()
                for _ in range(100):                  # the refusal comes back as a command output
                    if any("inert" in x for x in said):
                        break
                    await pilot.pause(0.05)

        asyncio.run(drive())
        print("\n".join(said))


def _strace(argv: list[str], tmp_path: Path, name: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run argv under strace, tracing bpf(2) and socket(2) in every thread and child."""
    out = tmp_path / f"{name}.strace"
    r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=bpf,socket", "-o", str(out), *argv], cwd=ROOT,
                       capture_output=True, text=True, timeout=120, input="goto end\nflow 1\ndrop 1\n")
    return r, out.read_text()


@pytest.mark.root
@pytest.mark.parametrize("frontend", ["shell", "tui", "gew-shell-cli", "export"])
def test_case13_replay_of_interventions_is_inert_in_every_front_end(tmp_path, frontend):
    import shutil

    if not shutil.which("strace"):
        pytest.skip("strace missing: it shows that replay makes no bpf(2) call")
    # the method can see a kernel call: a process that creates one map shows its bpf(2)
    _, control = _strace([sys.executable, "-c", "from tests.conftest import bpf_map_create; bpf_map_create()"],
                         tmp_path, "control")
    assert "bpf(BPF_MAP_CREATE" in control, control[-2000:]
    rec = str(tmp_path / "past.gewrec")
    _intervention_recording(rec)
    if frontend in ("shell", "tui"):
        argv = [sys.executable, "-m", "tests.faults.test_replay_faults", "replay", frontend, rec]
    elif frontend == "gew-shell-cli":
        argv = GEW + ["shell", rec]
    else:
        argv = GEW + ["export", rec, "--what", "interventions"]
    r, trace = _strace(argv, tmp_path, frontend)
    # a scripted gew shell ends with 64 when a command was refused (the drop)
    assert r.returncode == (64 if frontend == "gew-shell-cli" else 0), r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    calls = [ln for ln in trace.splitlines() if " bpf(" in ln or "AF_NETLINK" in ln]
    assert calls == [], f"replay reached the kernel: {calls[:5]}"
    said = r.stdout
    if frontend == "export":
        assert said.count("DROP") >= 6 and "ACTIVE" in said
    elif frontend == "gew-shell-cli":
        assert "drop needs an interactive terminal" in said + r.stderr
    else:
        assert "a replayed recording is inert" in said, said
        if frontend == "shell":
            assert "asked:" in said                 # the operator did confirm


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "replay":
    _replay_frontend(sys.argv[2], sys.argv[3])
