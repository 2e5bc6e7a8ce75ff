"""The live engine as an observer for bench_churn.py: gew-tui's own debugger over a live
session (capture thread, engine, pump, the Textual app) under Textual's headless driver.

    python bench/churn_live.py --scope netns=NS --record FILE

Prints ``ready`` once the capture runs. A line on stdin means "the workload has stopped":
it then measures how long the engine's lag takes to drain, quits the app (the session is
closed and cleaned up as gew-tui does it) and prints one JSON object: events captured, lost,
completeness, the engine's lag (most, at the stop) and the drain rate.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def _thread_cpu(tid: int) -> float:
    """utime + stime of one thread of this process, in seconds."""
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scope", action="append", default=[])
    ap.add_argument("--record", required=True)
    ap.add_argument("--sample", action="store_true", help="sample the pump thread while the lag drains "
                    "and print where its time goes on stderr")
    a = ap.parse_args()
    from gewtui.cli import tui_cmd
    from gewtui.tui.app import build_app

    args = argparse.Namespace(scope=a.scope, record=a.record, lab=None, allow_risky=False,
                              allow_intervention=False, bpf_stats=False, drop_ttl="5m", templates=[],
                              theme="dark")
    out: dict = {}
    with tui_cmd.open_debugger(args, None) as d:
        app = build_app(d, theme="dark")
        src = d.source

        def control() -> None:
            while getattr(src, "capture", None) is None:
                time.sleep(0.01)
            cpu0 = time.process_time()
            print("ready", flush=True)
            stopped = threading.Event()

            def sample() -> None:
                while not stopped.is_set():
                    out["max_lag"] = max(out.get("max_lag", 0), src.lag)
                    time.sleep(0.1)
            threading.Thread(target=sample, daemon=True).start()
            sys.stdin.readline()
            lag, taken = src.lag, src.taken
            pump = next(t for t in threading.enumerate() if t.name == "gew-pump")
            pump_cpu0 = _thread_cpu(pump.native_id)
            sampler = None
            if a.sample:
                from _util import Sampler

                sampler = Sampler(pump.ident).__enter__()
            t0 = time.perf_counter()
            # caught up: the capture has emptied the kernel's ring buffer (lifecycle records
            # are few but carry a connection's whole life, so a backlog hides many events)
            # and the engine has folded all it captured
            seen, quiet = -1, 0
            while time.perf_counter() - t0 < 300:
                n = src.stats().events
                if src.lag == 0 and src.session.backlog() == 0 and n == seen:
                    quiet += 1
                    if quiet >= 5:
                        break
                else:
                    quiet = 0
                seen = n
                time.sleep(0.05 if not src.lag else 0.002)
            dt = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            pump_cpu = _thread_cpu(pump.native_id) - pump_cpu0
            if sampler is not None:
                sampler.__exit__()
                sampler.print_profile("Runner._loop", 25)
            stopped.set()
            st = src.stats()
            # (the capture may still be emptying the kernel's ring buffer at the stop, so the rate
            # is what the engine folded meanwhile, not the lag at the stop over the time)
            out.update(lag_at_stop=lag, drain_s=dt, drain_pump_cpu_s=pump_cpu,
                       drain_per_cpu_s=(src.taken - taken) / pump_cpu if src.taken > taken and pump_cpu else 0.0,
                       drain_rate=(src.taken - taken) / dt if src.taken > taken and dt else 0.0,
                       events=st.events, lost=st.lost, rescued=getattr(st, "rescued", 0), complete=st.complete,
                       incomplete_reason=st.incomplete_reason, folded=len(d.log),
                       spilled=src.capture.spilled, cpu_s=cpu, taken=src.taken, captured=src.capture.captured)
            app.call_from_thread(app.exit)

        threading.Thread(target=control, daemon=True).start()
        try:
            app.run(headless=True)
        finally:
            app.runner.stop()
    if app.runner.error is not None:
        raise app.runner.error
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
