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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scope", action="append", default=[])
    ap.add_argument("--record", required=True)
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
            lag = src.lag
            t0 = time.perf_counter()
            while src.lag and time.perf_counter() - t0 < 300:
                time.sleep(0.002)
            dt = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            stopped.set()
            st = src.stats()
            out.update(lag_at_stop=lag, drain_s=dt, drain_rate=lag / dt if lag and dt else 0.0,
                       events=st.events, lost=st.lost, complete=st.complete,
                       incomplete_reason=st.incomplete_reason, folded=len(d.log),
                       spilled=src.capture.spilled, cpu_s=cpu)
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
