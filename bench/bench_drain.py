"""How fast the live engine drains its lag: recorded events handed to the debugger the way
a live session's capture thread hands them over, folded by the pump as gew-tui runs it.

    python bench/bench_drain.py [RECORDING] [--events N] [--rounds R] [--sample] [--parts]

The events' bytes are read into memory first (a recording's, or without one the constructed
stream of bench_replay.py: many concurrent connections, not observed data); then a stand-in
for the capture (gewtui.kernel.capture's ``take``/``lag``, over those bytes) sits under the
real ``LiveSource``, ``Debugger`` and pump (``Runner`` with its ``ViewBuilder``): the whole
backlog is lag at the start, as after a burst of churn, and the bench times until the pump has
folded all of it. The head engine's states are stored into a scratch recording as a live
session stores them. Beside it, in the same run: the same events parsed and fed to a bare
``Engine`` on this thread (the engine's own ceiling, the baseline), and ``Debugger.ingest`` in
a loop on this thread (log and head fold, no views). Rates are events per CPU second of the
thread that folds (wall rates move with the machine's load) and best of ``--rounds``.
``--sample`` prints where the pump's time goes (stderr). ``--parts`` prints, instead of the
drain, what each step costs an event on this thread, best of ``--rounds`` passes: the
lifecycle expansion, parsing (events freed at once, and kept for batches of several sizes:
a parsed event is far larger than its bytes), and ``Engine.feed`` by event kind and with the
templates' offers of state changes left out; read as shares when the box is noisy.

A churn recording: ``gew session apply --scope netns=NS --record FILE`` under
``redis-benchmark -k 0`` (bench_churn.py sets such namespaces up).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from types import SimpleNamespace

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gewtui.debugger.core import Debugger  # noqa: E402
from gewtui.debugger.runner import Runner  # noqa: E402
from gewtui.debugger.sources import LiveSource  # noqa: E402
from gewtui.recording.writer import RecordingWriter  # noqa: E402

TARGET_EPS = 300_000


def read_events(path: str, limit: int) -> list[bytes]:
    """The recording's event records as the capture queues them (serialized Events; a
    lifecycle stays one record, expanded when taken, as Capture.take does)."""
    from gewtui.recording import open_recording
    from gewtui.recording.lifecycle import count
    from gewtui.recording.reader import event_bytes

    out: list[bytes] = []
    n = 0
    with open_recording(path) as r:
        for _, payload in r.frames():
            raw = event_bytes(payload)
            if raw is None:
                continue
            out.append(raw)
            n += count(raw)
            if n >= limit:
                break
    return out


from gewtui.recording.lifecycle import expand_all  # noqa: E402


class _Capture:
    """The capture thread's interface to the pump, over events already captured."""

    def __init__(self, raws: list[bytes]) -> None:
        self.raws = raws
        self.at = 0
        self.resume_offset = 0
        self.spilled = 0
        self.listeners: list = []     # never called: the whole backlog is there from the start

    @property
    def lag(self) -> int:
        return len(self.raws) - self.at

    def take(self, max_events: int = 4096, timeout_s: float = 0.0) -> list[bytes]:
        out = self.raws[self.at:self.at + max_events]
        self.at += len(out)
        if not out and timeout_s:
            time.sleep(timeout_s)
        return expand_all(out)

    def close(self) -> None:
        pass


class _Session:
    """What LiveSource reads of a live session; its recording takes the head's states."""

    def __init__(self, raws: list[bytes], scratch: str) -> None:
        self.session_id = "bench-drain"
        self.capabilities = None
        self.scope = None
        self.record_path = scratch
        self.allow_intervention = False
        self.writer = RecordingWriter(scratch, fsync_on_close=False)
        self.cap = _Capture(raws)
        self.stats = SimpleNamespace(events=len(expand_all(raws)), lost=0, complete=True, incomplete_reason="",
                                     bpf_run_time_ns=0, bpf_run_count=0, recording_bytes=0)

    def start_capture(self) -> _Capture:
        return self.cap

    def close(self) -> None:
        self.writer.close()


def _thread_cpu(tid: int) -> float:
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(raws: list[bytes], plain: bool, sample: bool, total: int) -> tuple[float, float, int, int]:
    """(wall s, pump CPU s, events folded, views built) for one drain of ``raws`` (``total``
    events once lifecycles are expanded)."""
    with tempfile.TemporaryDirectory(prefix="gew-drain-") as tmp:
        sess = _Session(raws, os.path.join(tmp, "head.gewrec"))
        d = Debugger(LiveSource(sess))
        views = 0
        try:
            if plain:
                c0, t0 = time.thread_time(), time.perf_counter()
                while sess.cap.lag:
                    d.ingest(50000, timeout_s=0.0)
                return time.perf_counter() - t0, time.thread_time() - c0, len(d.log), 0

            def counted(view: object) -> None:
                nonlocal views
                views += 1
            runner = Runner(d, on_view=counted)
            t0 = time.perf_counter()
            runner.start()
            tid = runner._thread.native_id
            while tid is None:
                time.sleep(0.001)
                tid = runner._thread.native_id
            c0 = _thread_cpu(tid)
            sampler = None
            if sample:
                sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
                from _util import Sampler

                sampler = Sampler(runner._thread.ident).__enter__()
            while len(d.log) < total and runner.alive:
                time.sleep(0.002)
            dt = time.perf_counter() - t0
            cpu = _thread_cpu(tid) - c0
            if sampler is not None:
                sampler.__exit__()
                sampler.print_profile("Runner._loop", 30)
            runner.stop()
            if runner.error is not None:
                raise runner.error
            return dt, cpu, len(d.log), views
        finally:
            sess.close()


def _engine_alone(raws: list[bytes]) -> float:
    """CPU seconds to parse and feed ``raws`` into a bare Engine on this thread."""
    from gewtui.model.engine import Engine
    from gewtui.pb import events_pb2

    parse = events_pb2.Event.FromString
    feed = Engine().feed
    c0 = time.thread_time()
    for raw in raws:
        feed(parse(raw))
    return time.thread_time() - c0


def parts(raws: list[bytes], events: list[bytes], rounds: int) -> str:
    """What each step costs an event, µs (best of ``rounds`` passes in this process)."""
    import gc
    from collections import Counter
    from time import perf_counter_ns

    from gewtui.model.engine import Engine
    from gewtui.pb import events_pb2

    parse = events_pb2.Event.FromString
    n = len(events)

    def best(fn) -> float:
        out = float("inf")
        for _ in range(max(1, rounds)):
            gc.collect()
            c0 = time.thread_time()
            fn()
            out = min(out, time.thread_time() - c0)
        return out / n * 1e6

    def feed(offers: bool) -> None:
        eng = Engine()
        if not offers:
            eng._tcp._offer_state = None
        f = eng.feed
        for ev, raw in zip(evs, events):
            f(ev, raw)

    def kept(size: int):
        def run() -> None:
            for i in range(0, n, size):
                batch = [parse(r) for r in events[i:i + size]]
                del batch
        return run

    def fresh() -> None:
        for r in events:
            parse(r)

    evs = [parse(r) for r in events]
    rows = [("expanding lifecycles (C)", best(lambda: expand_all(raws))),
            ("parsing, each event freed at once", best(fresh))]
    rows += [(f"parsing, batches of {size:,} kept until done", best(kept(size))) for size in (256, 1024, 4096, 16384)]
    rows += [("Engine.feed, every kind", best(lambda: feed(True))),
             ("Engine.feed without the templates' offers of state changes", best(lambda: feed(False)))]
    # by kind, one pass, timed per event (the timer's own cost taken out)
    spent: Counter = Counter()
    count: Counter = Counter()
    eng = Engine()
    f = eng.feed
    for ev, raw in zip(evs, events):
        kind = ev.WhichOneof("body")
        t0 = perf_counter_ns()
        f(ev, raw)
        spent[kind] += perf_counter_ns() - t0
        count[kind] += 1
    t0 = perf_counter_ns()
    for _ in range(10_000):
        perf_counter_ns()
    tick = (perf_counter_ns() - t0) / 10_000
    lines = ["| step, per event | µs |", "|---|---:|"]
    lines += [f"| {name} | {us:.2f} |" for name, us in rows]
    for kind, ns in spent.most_common():
        if count[kind] >= n // 100:
            each = (ns / count[kind] - tick) / 1000
            lines.append(f"| Engine.feed of `{kind}` ({count[kind]:,} events): each; its share of an average event "
                         f"| {each:.2f}; {each * count[kind] / n:.2f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recording", nargs="?", help="a .gewrec (default: bench_replay's constructed stream)")
    ap.add_argument("--events", type=int, help="at most this many events (default: all of a recording, "
                    "500,000 constructed)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sample", action="store_true", help="where the pump's time goes (stderr)")
    ap.add_argument("--parts", action="store_true", help="what each step costs an event, instead of the drain")
    a = ap.parse_args(argv[1:])
    if a.recording:
        raws = read_events(a.recording, a.events or 1 << 62)
        what = f"the recording {os.path.basename(a.recording)}"
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from bench_replay import constructed

        raws, _ = constructed(a.events or 500_000)
        what = "bench_replay's constructed stream (not observed data)"
    events = expand_all(raws)          # what the engine folds: lifecycles stand for several
    total = len(events)
    if a.parts:
        print(f"## What an event costs the live engine (bench_drain.py --parts)\n\n{total:,} events of {what}, "
              f"best of {a.rounds} passes on one thread.\n")
        print(parts(raws, events, a.rounds))
        return 0
    load0 = os.getloadavg()[0]
    rows: dict[str, list[tuple[float, float]]] = {"engine": [], "plain": [], "pump": []}
    views = 0
    for rnd in range(a.rounds):
        cpu = _engine_alone(events)
        rows["engine"].append((total / cpu, 0.0))
        for mode in ("plain", "pump"):
            dt, cpu, n, v = one_round(raws, mode == "plain", a.sample and mode == "pump" and rnd == a.rounds - 1,
                                      total)
            if n != total:
                print(f"bench_drain: {mode} folded {n:,} of {total:,} events", file=sys.stderr)
                return 1
            rows[mode].append((n / cpu, n / dt))
            views = max(views, v)
        print(f"round {rnd}: " + ", ".join(f"{k} {v[-1][0]:,.0f}/CPU s" for k, v in rows.items()),
              file=sys.stderr, flush=True)
    base = max(r[0] for r in rows["engine"])
    print("## Live engine drain (bench_drain.py)\n")
    print(f"{total:,} events ({len(raws):,} records: a lifecycle is expanded when taken, the baseline "
          f"parses the expanded events) of {what}, handed over as a capture thread hands them, best of "
          f"{a.rounds} rounds. Load average {load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end, "
          f"on {os.cpu_count()} CPUs shared with other work.\n")
    print("| stage | events per CPU second | × the engine alone | events/s (wall) |")
    print("|---|---:|---:|---:|")
    print(f"| parse + Engine.feed on one thread (baseline: the engine alone) | {base:,.0f} | 1.00 | |")
    for key, label in (("plain", "Debugger.ingest in a loop (log, head fold, stored states; no views)"),
                       ("pump", f"the pump (Runner: ingest, views at most its share; up to {views} views)")):
        cpu_rate = max(r[0] for r in rows[key])
        wall = max(r[1] for r in rows[key])
        print(f"| {label} | {cpu_rate:,.0f} | {cpu_rate / base:.2f} | {wall:,.0f} |")
    best = max(r[0] for r in rows["pump"])
    print(f"\nTarget: the lag drains at >= {TARGET_EPS:,} events/s: "
          f"{'met' if best >= TARGET_EPS else f'missed ({best / TARGET_EPS:.0%} of it per CPU second of the pump)'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
