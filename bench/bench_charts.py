"""What the operator's pictures add to each view the pump builds: the flow chart's series
(gewtui.debugger.series.FlowSeriesCache) and the session sparkline's per-second counts
(SessionRates), beside the whole view build as the baseline, on the 10,000-flow stream of
bench/tui_frames.py after ``step 100``.

Prints a Markdown section (``python bench/bench_charts.py``)."""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tui_frames import N_FLOWS, _run, flows_stream  # noqa: E402
from gewtui.debugger import commands, series  # noqa: E402
from gewtui.debugger.core import Debugger  # noqa: E402
from gewtui.debugger.view_builder import ViewBuilder  # noqa: E402
from gewtui.debugger.sources import MemorySource  # noqa: E402

RUNS = 21


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def fig(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1e3:.3f} ms [{min(xs) * 1e3:.3f}..{max(xs) * 1e3:.3f}]"


def main() -> int:
    d = Debugger(MemorySource(list(flows_stream(N_FLOWS))))
    views = ViewBuilder(d)
    ctx = commands.Context(d, views)
    _run(ctx, f"goto #{2 * N_FLOWS}")
    views.build()
    build, inc, fresh, rates = [], [], [], []
    for _ in range(RUNS):
        _run(ctx, "step 100")
        snap = d.engine.flow(d.selected)
        build.append(_timed(views.build))
        _run(ctx, "step 100")
        snap = d.engine.flow(d.selected)
        inc.append(_timed(lambda: views._series.series(d.log, snap, d.position)))
        fresh.append(_timed(lambda: series.FlowSeriesCache().series(d.log, snap, d.position)))
        rates.append(_timed(lambda: views._rates.series(d.log, d.position)))
    print("## Flow chart and session sparkline (bench_charts.py)\n")
    print("| what | figure (median [min..max] of %d) |\n|---|---|" % RUNS)
    print(f"| baseline: the whole view build after `step 100`, {N_FLOWS:,} flows | {fig(build)} |")
    print(f"| the selected flow's chart series, extended by a step of 100 events | {fig(inc)} |")
    print(f"| the same series built anew (a new selection, a back): up to {series.FLOW_SCAN:,} "
          f"events read | {fig(fresh)} |")
    print(f"| the session sparkline's {series.SESSION_WINDOW} seconds, counted once each | {fig(rates)} |")
    print("\nBoth run on the pump thread inside the view build (the baseline row includes "
          "them). The chart is extended, not rebuilt, while the cursor moves forward; a "
          "rebuild reads at most FLOW_SCAN events. The sparkline's seconds are counted once "
          "and kept; a view recounts only the slice of the current second it has not seen.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
