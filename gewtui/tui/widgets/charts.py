"""Pictures over time: the flow view's chart (cwnd, srtt, bytes, retransmits and drops of
the selected flow) and the status bar's sparkline (the session's events, retransmits and
drops per second).

Place in the pipeline: the series are computed on the pump thread
(gewtui.debugger.series) and arrive in the immutable DebugView; these widgets only draw
them with block characters, re-binned to the width they have, and repaint only when the
series object or their width changed. Colours are the theme's (``gew.*`` styles), so
NO_COLOR and the themes apply as everywhere else.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from rich.text import Text
from textual.widgets import Static

from gewtui.debugger import names

BLOCKS = "▁▂▃▄▅▆▇█"
UNKNOWN = "·"           # a second not counted yet: not the same as zero


def spark(values: Sequence[float | None], width: int) -> str:
    """One character per value (the last ``width`` of them), scaled to the largest; None
    is unknown, 0 is a blank so that nothing happening reads as nothing."""
    vals = list(values)[-width:] if width > 0 else []
    top = max((v for v in vals if v is not None), default=0)
    out = []
    for v in vals:
        if v is None:
            out.append(UNKNOWN)
        elif v <= 0 or top <= 0:
            out.append(" ")
        else:
            out.append(BLOCKS[min(len(BLOCKS) - 1, int(v / top * (len(BLOCKS) - 1) + 0.999))])
    return "".join(out).rjust(width)


def human(x: float) -> str:
    if x >= 10_000_000:
        return f"{x / 1e6:.0f}M"
    if x >= 10_000:
        return f"{x / 1e3:.0f}k"
    if x >= 1000:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def rebin_last(points: Iterable[tuple[int, int]], t0: int, t1: int, n: int) -> list[float | None]:
    """A level (cwnd, srtt): the last value in each column, carried forward across columns
    without a sample; None before the first sample."""
    cols: list[float | None] = [None] * n
    span = max(1, t1 - t0)
    for t, v in points:
        cols[min(n - 1, max(0, (t - t0) * n // span))] = v
    last = None
    for i, v in enumerate(cols):
        if v is None:
            cols[i] = last
        else:
            last = v
    return cols


def rebin_sum(points: Iterable[tuple[int, int]], t0: int, t1: int, n: int) -> list[float]:
    """An amount (bytes, retransmits, drops): the sum in each column."""
    cols = [0.0] * n
    span = max(1, t1 - t0)
    for t, v in points:
        cols[min(n - 1, max(0, (t - t0) * n // span))] += v
    return cols


# (label, style, kind) of the chart's rows, in the order people read a connection.
ROWS = (("cwnd", "gew.ok", "level"), ("srtt", "gew.id", "level"), ("bytes", "gew.L1", "sum"),
        ("rtx", "gew.warn", "sum"), ("drops", "gew.bad", "sum"))


def chart_text(series, width: int, totals: tuple[int, int] | None = None) -> Text:
    """The chart as text: one row per quantity, ``label ▁▂▅█ peak``, and a time axis.
    ``totals``: the flow's own (retransmits, drops) counters, shown as the rows' sums (the
    engine ties a few packets to a flow that the bars, drawn from its sockets, cannot)."""
    label_w, value_w = 6, 11
    n = max(4, width - label_w - value_w)
    t0, t1 = series.t0_ns, max(series.t1_ns, series.t0_ns + 1)
    data = {
        "cwnd": (rebin_last(series.cwnd, t0, t1, n), max((v for _, v in series.cwnd), default=0), ""),
        "srtt": (rebin_last(series.srtt_us, t0, t1, n),
                 max((v for _, v in series.srtt_us), default=0), "µs"),
        "bytes": (rebin_sum(series.bytes, t0, t1, n), sum(v for _, v in series.bytes), "B"),
        "rtx": (rebin_sum(((t, 1) for t in series.retransmits), t0, t1, n),
                totals[0] if totals else len(series.retransmits), ""),
        "drops": (rebin_sum(series.drops, t0, t1, n),
                  totals[1] if totals else sum(v for _, v in series.drops), ""),
    }
    t = Text()
    for label, style, kind in ROWS:
        cols, peak, unit = data[label]
        t.append(f"{label:<{label_w}}", "gew.dim")
        t.append(spark(cols, n), style)
        what = "max " if kind == "level" else "Σ "
        t.append(f" {what}{human(peak)}{unit}"[:value_w].ljust(value_w), "gew.dim")
        t.append("\n")
    left = "+" + names.duration_text(t0)
    right = "+" + names.duration_text(t1)
    mid = " partial: the flow began before the events read " if series.partial else ""
    axis = left + mid.center(max(1, n - len(left) - len(right))) + right
    t.append(" " * label_w + axis[: n + value_w], "gew.dim")
    return t


class FlowChart(Static):
    """The selected flow's quantities over its life up to the cursor."""

    DEFAULT_CSS = """
    FlowChart { height: auto; width: 1fr; margin-top: 1; }
    """

    def __init__(self, **kw) -> None:
        super().__init__("", **kw)
        self._key: tuple | None = None
        self.series = None
        self.totals: tuple[int, int] | None = None
        self._lines = 0                 # rows of the last chart (-1: the one-line note)

    def show_series(self, series, totals: tuple[int, int] | None = None) -> None:
        if series == self.series and totals == self.totals:
            return                  # a step that added nothing to this flow: no repaint
        self.series = series
        self.totals = totals
        self._paint()

    def on_resize(self) -> None:
        self._paint()

    def _paint(self) -> None:
        # Hidden (no series yet) it has no size of its own: it will take its parent's width.
        parent = self.parent
        width = self.content_size.width or (parent.content_size.width if parent is not None else 0)
        key = (id(self.series), width)
        if key == self._key or not width:
            return
        old_lines = self._lines
        self._key = key
        s = self.series
        if s is None:
            self.display = False
            return
        self.display = True
        if s.empty:
            content = Text("no tcp_probe summaries, retransmits or drops for this flow yet",
                           "gew.dim")
            self._lines = -1
        else:
            content = chart_text(s, width, self.totals)
            self._lines = len(ROWS) + 1
        # The chart is always as tall: a new one is a repaint, not a layout of the screen.
        self.update(content, layout=self._lines != old_lines)


class SessionSparkline(Static):
    """Two lines beside the status bar: events/s, then retransmits/s and drops/s, one
    character per second of session time up to the cursor."""

    DEFAULT_CSS = """
    SessionSparkline { height: 2; width: 20%; min-width: 14; max-width: 40;
                       background: $panel; color: $foreground; padding: 0 1 0 0; }
    """

    def __init__(self, **kw) -> None:
        super().__init__("", **kw)
        self.rates = None
        self._key: tuple | None = None

    def show_rates(self, rates) -> None:
        if rates == self.rates:
            return
        self.rates = rates
        self._paint()

    def on_resize(self) -> None:
        self._paint()

    def _paint(self) -> None:
        width = self.content_size.width or self.size.width
        key = (id(self.rates), width)
        if key == self._key or not width:
            return
        self._key = key
        self.update(sparkline_text(self.rates, width), layout=False)


def sparkline_text(rates, width: int) -> Text:
    t = Text(no_wrap=True, overflow="crop")
    if rates is None or not rates.events:
        t.append("ev/s".ljust(width), "gew.dim")
        return t
    peak = human(max(rates.events))
    n1 = max(1, width - 3 - len(peak) - 1)
    t.append("ev ", "gew.dim")
    t.append(spark(rates.events, n1), "gew.id")
    t.append(" " + peak, "gew.dim")
    t.append("\n")
    half = max(1, (width - 7) // 2)
    t.append("rx ", "gew.dim")
    t.append(spark(rates.retransmits, half), "gew.warn")
    t.append(" dr ", "gew.dim")
    t.append(spark(rates.drops, width - 7 - half), "gew.bad")
    return t
