"""Forged stored checkpoints, made with the project's own modules, and a replay that reports
what it concluded with its time and memory.

Two keys stand for two hosts: ``host`` is this host's state key (what a replay here reads),
``other`` the key of the box that made the recording or of whoever edited it. A replay runs
in a child process (the Debugger that gew shell and gew-tui drive, jumped to the end) so
its peak memory is its own; ``gew export`` of the same file is the reference: it folds
every event and never reads a stored state.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from gewtui.model import persist
from gewtui.model.engine import Engine
from gewtui.pb import events_pb2, recording_pb2
from gewtui.recording import RecordingWriter, open_recording
from gewtui.recording.checkpoints import write_checkpoint
from tests.support.debugger_support import CLIENT, big_stream, header

try:                                    # absent before states were authenticated
    from gewtui.model import state_key
except ImportError:                     # pragma: no cover - only on older code
    state_key = None

ROOT = Path(__file__).resolve().parents[2]
SID = "test-session"
N = 12_000
EVERY = 2_000
ROUTE_EVENT = 1_000                     # a route lookup (fib) event in the stream


def key_dir(path: Path) -> str:
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return str(path)


def use_key(path: str | None) -> None:
    """Make this process read and write states with the key in ``path``."""
    if state_key is not None and path is not None:
        state_key.KEY_DIR = path
        state_key.forget()


def lossy_events(n: int = N) -> list:
    """300 connections that retransmit (a retransmission storm on every one of them) and,
    at ``ROUTE_EVENT``, one route lookup for an unrelated destination."""
    evs = list(big_stream(n, flows=300))
    ev = events_pb2.Event(id=ROUTE_EVENT, ktime_ns=evs[ROUTE_EVENT - 1].ktime_ns)
    ev.fib.family, ev.fib.table, ev.fib.device = 2, 254, "eth9"
    ev.fib.src, ev.fib.dst = CLIENT, bytes((192, 0, 2, 77))
    evs[ROUTE_EVENT - 1] = ev
    return evs


def write(path: str, events: list, states: dict[int, bytes]) -> str:
    """A recording of ``events`` with a stored checkpoint after each position in ``states``,
    written in the stream as a live session writes them."""
    digest = persist.template_digest(Engine().templates)
    with RecordingWriter(path, header(SID)) as w:
        for i, ev in enumerate(events, 1):
            w.write_event(ev)
            if i in states:
                write_checkpoint(w, states[i], events=i, last_event=ev,
                                 first_ktime_ns=events[0].ktime_ns, model=persist.MODEL_ID,
                                 templates=digest)
        w.write(recording_pb2.Record(end=recording_pb2.Record().end))
    return path


def states(events: list, edit=None, every: int = EVERY) -> dict[int, bytes]:
    """Stored states of a fold of ``events`` every ``every`` events, each passed through
    ``edit(checkpoint)`` (the forgery) before it is serialized with the current key."""
    eng = Engine(session_id=SID)
    out = {}
    for i, ev in enumerate(events, 1):
        eng.feed(ev)
        if i % every == 0 and i < len(events):
            cp = eng.checkpoint()
            if edit is not None:
                edit(cp)
            out[i] = persist.dumps(cp)
    return out


_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
try:
    from gewtui.model import state_key
    state_key.KEY_DIR = sys.argv[2]
except ImportError:
    pass
from gewtui.debugger import commands
from gewtui.debugger.core import Debugger
from gewtui.debugger.view_builder import ViewBuilder
from gewtui.debugger.sources import ReplaySource
from gewtui.recording import open_recording
from gewtui.recording.export import ExportContext, json_line
with open_recording(sys.argv[1]) as r:
    ectx = ExportContext.from_header(r.header)
t0 = time.perf_counter()
d = Debugger(ReplaySource(sys.argv[1]))
d.stored.leap_min = 100
ctx = commands.Context(d, ViewBuilder(d))
out = commands.execute(ctx, "goto end")
d.settle()
lines = [json_line("flow", f, ectx) for f in d.engine.flows()]
lines += [json_line("reason", d.engine.chain(f.flow_id), ectx) for f in d.engine.flows()]
print(json.dumps({"lines": lines, "jumped": bool(d.log.holes) or d.position < 0,
                  "message": d.stored.ignored, "position": d.position,
                  "seconds": time.perf_counter() - t0,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def replay(path: str, key: str | None, timeout: float = 120.0) -> dict:
    """The replay's flows and chains as JSON lines (as ``gew export --json`` prints them),
    whether it jumped through a stored state, its message, its seconds and its peak
    resident memory in MiB (``rss``: the child's own)."""
    p = subprocess.Popen([sys.executable, "-c", _CHILD, path, key or "/nonexistent", str(ROOT)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.perf_counter()
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError(f"the replay of {path} did not finish in {timeout:.0f} s") from None
    assert p.returncode == 0, err.decode(errors="replace")[-2000:]
    got = json.loads(out)
    got["lines"] = [conclusion(json.loads(ln)) for ln in got["lines"]]
    got["wall"] = time.perf_counter() - t0
    got["stderr"] = err.decode(errors="replace")
    return got


def export(path: str) -> list[dict]:
    """``gew export FILE --what flows --json`` then ``--what reasons --json``: the lines,
    parsed (a map's JSON keys come in no fixed order)."""
    lines = []
    for what in ("flows", "reasons"):
        r = subprocess.run([sys.executable, "-c",
                            "import sys; from gewtui.cli.main import gew_main; "
                            "sys.exit(gew_main(sys.argv[1:]))", "export", path, "--what", what,
                            "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert r.returncode in (0, 65), r.stderr
        lines += [conclusion(json.loads(ln)) for ln in r.stdout.splitlines()]
    return lines


def conclusion(obj):
    """An export line without its wall-clock renderings (``X_wall``): they come from the
    recording header's clock offset, which differs between two files written moments apart,
    while what the events conclude does not."""
    if isinstance(obj, dict):
        return {k: conclusion(v) for k, v in obj.items() if not k.endswith("_wall")}
    if isinstance(obj, list):
        return [conclusion(v) for v in obj]
    return obj


def _colliding_pairs(n: int) -> list[tuple[int, int]]:
    """``n`` (netns, port)-like tuples of ints whose tuple hashes are all equal (CPython's
    tuple hash is xxHash-based and unkeyed: one lane can be solved for)."""
    m64 = (1 << 64) - 1
    p1, p2, p5 = 11400714785074694791, 14029467366897019727, 2870177450012600261

    def rotl(x, r):
        return ((x << r) | (x >> (64 - r))) & m64

    def step(acc, h):
        return (rotl((acc + (h & m64) * p2) & m64, 31) * p1) & m64

    target = step(step(p5, hash(1)), hash(2))
    x = ((target * pow(p1, -1, 1 << 64)) & m64)
    x = ((x >> 31) | (x << 33)) & m64           # rotate right 31
    inv2 = pow(p2, -1, 1 << 64)
    out = []
    a = 1
    while len(out) < n:
        hb = ((x - step(p5, hash(a))) * inv2) & m64
        if hb < (1 << 61) - 1:
            out.append((a, hb))
        a += 1
    assert len({hash(t) for t in out}) == 1, "this Python hashes tuples differently"
    return out
