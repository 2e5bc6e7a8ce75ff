"""Debugger and TUI figures: a 1M-event recording opened and walked to its end, ``back``
from there, and frame times of gew-tui with 10,000 flows (Textual headless).

Baselines measured in the same run: the observation engine folding the same events with
no debugger around it (so the debugger's own cost reads as a ratio), and an empty tick of
the app. Prints Markdown; no timed assertions. Run: ``python bench/bench_debugger.py``.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gewtui.debugger import commands  # noqa: E402
from gewtui.debugger.core import Debugger  # noqa: E402
from gewtui.debugger.view_builder import ViewBuilder  # noqa: E402
from gewtui.debugger.sources import LiveSource, ReplaySource  # noqa: E402
from gewtui.model.engine import Engine  # noqa: E402
from gewtui.pb import events_pb2 as E  # noqa: E402
from gewtui.pb import recording_pb2  # noqa: E402
from gewtui.recording import RecordingWriter  # noqa: E402

N_EVENTS = int(os.environ.get("GEW_BENCH_EVENTS", 1_000_000))
N_FLOWS = 10_000


def stream(n: int, concurrent: int = 2000, life: int = 400):
    """``n`` events over ``concurrent`` connections to distinct peers; each opens, sends
    probe summaries with a retransmit every 7th event, closes after ``life`` of its own
    events and is replaced by a new connection to the same peer."""
    t = 1_000_000_000
    socks: dict[int, list[int]] = {}
    gen = i = ev_id = 0
    while ev_id < n:
        k = i % concurrent
        i += 1
        ev_id += 1
        t += 2_000
        ev = E.Event(id=ev_id, ktime_ns=t)
        ev.attr.netns = 4026531840
        st = socks.get(k)
        if st is None:
            gen += 1
            st = socks[k] = [0xFFFF888000000000 + gen * 0x1000, 20000 + gen % 40000, 0]
            b = ev.tcp_state
            b.old_state, b.new_state = E.TCP_CLOSE, E.TCP_SYN_SENT
        else:
            st[2] += 1
            if st[2] == 1:
                b = ev.tcp_state
                b.old_state, b.new_state = E.TCP_SYN_SENT, E.TCP_ESTABLISHED
            elif st[2] >= life:
                b = ev.tcp_state
                b.old_state, b.new_state = E.TCP_ESTABLISHED, E.TCP_CLOSE
                del socks[k]
            elif st[2] % 7 == 0:
                b = ev.retransmit
                b.state = E.TCP_ESTABLISHED
            else:
                b = ev.tcp_probe
                b.segments, b.bytes, b.snd_cwnd, b.srtt_us = 10, 14480, 10, 100
        b.sock = st[0]
        tu = b.tuple
        tu.family, tu.protocol, tu.dport, tu.sport = 2, 6, 80, st[1]
        tu.saddr = bytes((10, 0, 0, 1))
        tu.daddr = bytes((10, 1 + (k >> 16), (k >> 8) & 255, k & 255))
        yield ev


def ms(s: float) -> str:
    return f"{s * 1000:.1f} ms"


def median_range(xs: list[float]) -> str:
    return f"{ms(statistics.median(xs))} [{ms(min(xs))}..{ms(max(xs))}]"


def run(ctx: commands.Context, line: str) -> float:
    t0 = time.perf_counter()
    out = commands.execute(ctx, line)
    assert not [o for o in out if getattr(o, "level", "") == "error"], out
    ctx.debugger.settle(max_s=3600)
    ctx.debugger.take_stops()
    return time.perf_counter() - t0


# ---- 1M events ------------------------------------------------------------------------------

class _Session:
    """What a live session does for the debugger (gewtui.kernel.live): number, record,
    then hand the events over, in batches; the debugger's head engine folds them and
    stores its state in the recording by its policy."""

    session_id = "bench"

    def __init__(self, path: str, n: int, batch: int = 2000) -> None:
        h = recording_pb2.RecordingHeader()
        h.session.session_id = "bench"
        self.writer = RecordingWriter(path, h)
        self.it, self.batch, self.done = stream(n), batch, False

    def poll(self, timeout_ms: int) -> list:
        out = []
        for ev in self.it:
            self.writer.write_event(ev)
            out.append(ev)
            if len(out) >= self.batch:
                break
        else:
            self.done = True
        return out


def record_live(path: str) -> tuple[int, float]:
    """Write the recording through a live debugger; (stored checkpoints, their cost)."""
    sess = _Session(path, N_EVENTS)
    d = Debugger(LiveSource(sess))
    while not sess.done:
        d.ingest(50000)
    sess.writer.close()
    return d.store_writer.written, d.store_writer.cost_s


def open_and_jump(path: str, use_checkpoints: bool = True) -> tuple[Debugger, commands.Context, float, float]:
    t0 = time.perf_counter()
    d = Debugger(ReplaySource(path, use_checkpoints=use_checkpoints))
    ctx = commands.Context(d, ViewBuilder(d))
    ctx.views.build()
    opened = time.perf_counter() - t0
    to_end = run(ctx, "goto end")
    assert d.position == N_EVENTS, d.position
    return d, ctx, opened, to_end


def bench_recording(rows: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.gewrec")
        t0 = time.perf_counter()
        stored, stored_cost = record_live(path)
        live_s = time.perf_counter() - t0
        size = os.path.getsize(path)

        # Baseline: the engine alone over the same events, read from the same file.
        from gewtui.recording import open_recording

        t0 = time.perf_counter()
        eng = Engine(session_id="bench")
        with open_recording(path) as r:
            for ev in r.iter_events():
                eng.feed(ev)
        base = time.perf_counter() - t0
        t0 = time.perf_counter()
        cp = eng.checkpoint()
        cp_cost = time.perf_counter() - t0
        t0 = time.perf_counter()
        Engine.restore(cp)
        restore_cost = time.perf_counter() - t0
        from gewtui.model import persist

        t0 = time.perf_counter()
        blob = persist.dumps(cp)
        dump_cost = time.perf_counter() - t0
        t0 = time.perf_counter()
        Engine.restore(persist.loads(blob, eng.templates))
        load_cost = time.perf_counter() - t0
        del eng, cp

        # Fallback: the same file with its stored checkpoints ignored (a recording without).
        fd, fctx, f_open, f_end = open_and_jump(path, use_checkpoints=False)
        f_back = [run(fctx, "back 1") + _timed(fctx.views.build) for _ in range(3)]
        fd.source.close()
        del fd, fctx

        jumps = []
        for _ in range(3):
            d, ctx, opened, to_end = open_and_jump(path)
            jumps.append((opened + to_end, opened, to_end))
            if len(jumps) < 3:
                d.source.close()
        total, opened, to_end = sorted(jumps)[1]
        first_view = _timed(ctx.views.build)
        # Before any idle time: back past the tail the jump folded, into a stretch it
        # skipped (read from the file, folded from the stored state below it).
        far_first = run(ctx, "back 100000") + _timed(ctx.views.build)
        run(ctx, "goto end")
        ctx.views.build()
        rows += [
            (f"recording: {N_EVENTS:,} events, {len(eng_flows(d)):,} flows at the end, written "
             "through a live debugger", f"{size / 2**20:.0f} MiB, {stored} stored checkpoints"),
            ("stored checkpoints: cost while recording (share of the live run)",
             f"{stored_cost * 1000:.0f} ms in all ({stored_cost / live_s:.1%} of {live_s:.1f} s)"),
            ("baseline: engine alone reads and folds the file", f"{base:.1f} s ({N_EVENTS / base:,.0f} events/s)"),
            ("open the recording (header, first view)", ms(opened)),
            ("goto end through the last stored checkpoint (find, load, fold the tail)",
             f"{to_end:.2f} s (from position {d.stored.refs()[-1].events if d.stored.refs() else 0:,})"),
            ("open + jump to the end (median of 3)",
             f"{total:.2f} s ({total / base:.2f}x the baseline) [{min(j[0] for j in jumps):.2f}..{max(j[0] for j in jumps):.2f} s]"),
            ("fallback, checkpoints ignored: open + goto end (read, fold, checkpoint)",
             f"{f_open + f_end:.1f} s ({N_EVENTS / f_end:,.0f} events/s, {f_end / base:.2f}x the baseline)"),
            ("fallback: back 1 from the end, then the view", median_range(f_back)),
            ("one engine checkpoint / restore (in memory)", f"{ms(cp_cost)} / {ms(restore_cost)}"),
            ("one stored state: persist.dumps / loads + restore",
             f"{ms(dump_cost)} ({len(blob) / 2**20:.1f} MiB) / {ms(load_cost)}"),
            ("checkpoints in memory after the jump", f"{len(d.checkpoints)}"),
            ("view after the jump (all rows built)", ms(first_view)),
            ("back 100,000 right after the jump, before any idle time, then the view",
             ms(far_first)),
        ]
        for n in (1, 10, 1000, 100_000):
            cold, warm = [], []
            for _ in range(5 if n < 100_000 else 3):
                run(ctx, "goto end")
                ctx.views.build()
                cold.append(run(ctx, f"back {n}") + _timed(ctx.views.build))
                run(ctx, "goto end")
                ctx.views.build()
                while d.idle(0.05):          # the operator reads the screen for a moment
                    pass
                warm.append(run(ctx, f"back {n}") + _timed(ctx.views.build))
            rows.append((f"back {n:,} from the end, then the view: at once", median_range(cold)))
            rows.append((f"back {n:,} from the end, then the view: after idle time", median_range(warm)))
        t0 = time.perf_counter()
        run(ctx, "goto end")
        while d.idle(0.05):
            pass
        rows.append(("idle work after that: spare engine behind the cursor (skipped events all read)",
                     ms(time.perf_counter() - t0)))
        times = [run(ctx, f"goto #{N_EVENTS // 2 + k}") + _timed(ctx.views.build) for k in (0, 1000, 7)]
        rows.append(("goto the middle (backwards from there: restore + replay)", median_range(times)))
        d.source.close()


def eng_flows(d: Debugger) -> list[int]:
    return d.engine.flow_ids()


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---- 10,000 flows in the TUI ----------------------------------------------------------------

def bench_tui(rows: list[tuple[str, str]]) -> None:
    """gew-tui with 10,000 flows (bench/tui_frames.py): the UI thread's work per input and
    per frame, told apart from Textual's frame pacing and Pilot's idle waits, with an app
    of one Static measured in the same run as the baseline."""
    from bench.tui_frames import bench_tui as tui_frames

    tui_frames(rows)


def main() -> int:
    rows: list[tuple[str, str]] = []
    if "--recording-only" not in sys.argv:
        bench_tui(rows)
    bench_recording(rows)
    print("## Debugger and TUI (bench_debugger.py)\n")
    print("| what | figure |\n|---|---|")
    for what, fig in rows:
        print(f"| {what} | {fig} |")
    print("\nFigures are medians of repeated runs with [min..max] where several were taken. "
          "The recording is written the way a live session writes it: the debugger's head "
          "engine folds each batch and stores its state in the file (at least 50,000 events "
          "apart, within 10% of its folding time or at the latest after 150,000 events, "
          "gewtui.debugger.stored). Opening it "
          "and jumping to the end restores the last stored state and folds only the tail; the "
          "events skipped are read when needed or when idle. The fallback rows ignore the "
          "stored states (a recording made without them). Idle time after a jump reads the "
          "skipped events and folds the skipped stretches again, leaving checkpoints in "
          "them; the back rows below run after such idle time (the loop idles between "
          "rows), and a back of 100,000 rebuilds every row of the view (every flow "
          "changed), which is most of its figure. "
          "`back` restores the nearest checkpoint and replays; checkpoints are taken by a "
          "policy that bounds both the replay (a fold budget) and their own cost (never more "
          "often than one checkpoint's cost per as much folding), so the back figures move "
          "with the engine's checkpoint and restore costs stated above. \"After idle time\": "
          "a paused cursor uses idle time to prepare a spare engine a few thousand events "
          "behind it, so a back within that stretch is a short fold. Pilot round trips "
          "include Textual's wait for the app to go idle; the widget's own render cost is "
          "stated beside them.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
