"""Values over time for the pictures: one flow's cwnd, srtt, bytes, retransmits and drops
(the flow view's chart), and the session's events, retransmits and drops per second (the
status bar's sparkline).

Place in the pipeline: the view builder (gewtui.debugger.view_builder) calls these on the pump
thread, as of the cursor, and puts the immutable results in the DebugView; the front ends
only draw them. Both read the session's event log, never the engine's live state.

Bounded work, never sampled: a flow's chart is built from at most ``FLOW_SCAN`` events back
from the cursor and then extended as the cursor steps forward (a step reads the one new
event), keeps at most ``MAX_POINTS`` per quantity, and says so when it does not reach back
to the flow's first event (``partial``); the session's counts
are kept per second of session time and each second is counted once (a second that ended
never changes), at most ``SESSION_BUDGET`` events per view; seconds not yet counted are
drawn as unknown, not as zero.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gewtui.pb import events_pb2

# The wire tags of Event fields 11 (retransmit), 13 (tcp_probe) and 17 (skb_drop): an event
# whose bytes hold none of a kind's tag cannot be of that kind, so the scans below parse
# only the events that may count.
_RTX_TAG, _PROBE_TAG, _DROP_TAG = b"\x5a", b"\x6a", b"\x8a\x01"

FLOW_SCAN = 5000            # events read back from the cursor for one flow's chart
MAX_POINTS = 20_000         # points of one quantity kept for a chart
SESSION_BUCKET_NS = 1_000_000_000
SESSION_WINDOW = 60         # seconds the sparkline shows
SESSION_BUDGET = 20_000     # events read per view for the sparkline
SESSION_MEMO = 4096         # counted seconds kept


@dataclass(frozen=True)
class FlowSeries:
    """Points in session time (ns since the session's first event), oldest first."""
    t0_ns: int                                 # the first point's offset (0 = session start)
    t1_ns: int                                 # the cursor's offset: the chart's right edge
    cwnd: tuple[tuple[int, int], ...]          # (t, segments) from tcp_probe summaries
    srtt_us: tuple[tuple[int, int], ...]       # (t, µs) from tcp_probe summaries
    bytes: tuple[tuple[int, int], ...]         # (t, bytes in that summary's window)
    retransmits: tuple[int, ...]               # t of each retransmit
    drops: tuple[tuple[int, int], ...]         # (t, packets) of each attributed drop
    partial: bool = False                      # the flow began before the events read

    @property
    def empty(self) -> bool:
        return not (self.cwnd or self.srtt_us or self.bytes or self.retransmits or self.drops)


def _tuple_key(t: events_pb2.Tuple) -> tuple:
    a, b = (t.saddr, t.sport), (t.daddr, t.dport)
    return (a, b) if a <= b else (b, a)            # either direction of the connection


def flow_series(log: Any, snap: Any, upto: int) -> FlowSeries | None:
    """The flow's series from its first event (or ``FLOW_SCAN`` events back) to position
    ``upto`` (exclusive). ``snap``: the flow's FlowSnapshot with its members."""
    return FlowSeriesCache().series(log, snap, upto)


class FlowSeriesCache:
    """One flow's points, extended as the cursor moves forward (a step reads one event, not
    the flow's history again); built anew when another flow is selected, the cursor went
    back, or the flow gained a socket."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._lo = self._upto = 0
        self._pts: tuple[list, list, list, list, list] = ([], [], [], [], [])
        self._trimmed = False

    def series(self, log: Any, snap: Any, upto: int) -> FlowSeries | None:
        # The flow's sockets and their tuples (either direction). The engine ties a few more
        # packets to a flow (a listener's port, a SYN whose port no event showed yet), so the
        # chart's totals are the flow's counters, and its bars say when these happened.
        keys = frozenset(_tuple_key(m.tuple) for m in snap.members if m.HasField("tuple"))
        socks = frozenset(m.sock for m in snap.members if m.sock)
        if not keys and not socks:
            return None
        start_pos = log.position_at_or_after_id(snap.first_event_id) if snap.first_event_id else 0
        key = (snap.flow_id, start_pos, keys, socks, log.first_ktime)
        if key != self._key or upto < self._upto or upto - self._upto > FLOW_SCAN:
            self._key = key
            self._lo = self._upto = max(start_pos, upto - FLOW_SCAN)
            self._pts = ([], [], [], [], [])
            self._trimmed = False
        self._scan(log, keys, socks, self._upto, upto)
        self._upto = upto
        first = log.first_ktime
        t_first = (snap.first_ktime_ns - first) if first and snap.first_ktime_ns else 0
        end = log.ktime(upto - 1) if upto > 0 else 0
        t1 = end - first if first and end else 0
        cwnd, srtt, nbytes, rtx, drops = self._pts
        return FlowSeries(max(0, t_first), max(t1, t_first), tuple(cwnd), tuple(srtt),
                          tuple(nbytes), tuple(rtx), tuple(drops), partial=self._lo > start_pos or self._trimmed)

    def _scan(self, log: Any, keys: frozenset, socks: frozenset, lo: int, hi: int) -> None:
        first = log.first_ktime
        cwnd, srtt, nbytes, rtx, drops = self._pts
        parse = events_pb2.Event.FromString
        for _, raw in log.containing(lo, hi, (_PROBE_TAG, _RTX_TAG, _DROP_TAG)):
            ev = parse(raw)
            kind = ev.WhichOneof("body")
            if kind not in ("tcp_probe", "retransmit", "skb_drop"):
                continue
            body = getattr(ev, kind)
            sock = getattr(body, "sock", 0)
            if not ((sock and sock in socks)
                    or (body.HasField("tuple") and _tuple_key(body.tuple) in keys)):
                continue
            t = ev.ktime_ns - first if first else ev.ktime_ns
            if kind == "tcp_probe":
                if body.snd_cwnd:
                    cwnd.append((t, body.snd_cwnd))
                if body.srtt_us:
                    srtt.append((t, body.srtt_us))
                nbytes.append((t, body.bytes))
            elif kind == "retransmit":
                rtx.append(t)
            else:
                drops.append((t, body.count or 1))
        for pts in self._pts:
            if len(pts) > MAX_POINTS:
                # Oldest points go first; the chart then starts later (and says partial).
                del pts[: len(pts) - MAX_POINTS]
                self._trimmed = True


@dataclass(frozen=True)
class SessionSeries:
    """Per second of session time, oldest first, ending at the cursor's second; None where
    that second is not counted yet."""
    events: tuple[int | None, ...]
    retransmits: tuple[int | None, ...]
    drops: tuple[int | None, ...]


class SessionRates:
    """The session's per-second counts. Each second is counted once, in slices of at most
    ``SESSION_BUDGET`` events per view (a busy second is finished over a few views), and
    kept once it has ended (bounded)."""

    def __init__(self) -> None:
        self._done: dict[int, tuple[int, int]] = {}              # sec -> (retransmits, drops)
        self._partial: dict[int, tuple[int, int, int]] = {}      # sec -> (next pos, rtx, drops)

    def series(self, log: Any, upto: int) -> SessionSeries:
        n = min(upto, len(log))
        if n <= 0:
            return SessionSeries((), (), ())
        first = log.first_ktime
        last_sec = (log.ktime(n - 1) - first) // SESSION_BUCKET_NS
        lo_sec = max(0, last_sec - SESSION_WINDOW + 1)
        budget = SESSION_BUDGET
        ev_c: list[int | None] = []
        rtx_c: list[int | None] = []
        drop_c: list[int | None] = []
        # Newest second first: it is the one an operator watches; older ones fill in.
        secs = list(range(last_sec, lo_sec - 1, -1))
        out: dict[int, tuple[int, int | None, int | None]] = {}
        for sec in secs:
            start = _first_at_or_after(log, first + sec * SESSION_BUCKET_NS, n)
            stop = _first_at_or_after(log, first + (sec + 1) * SESSION_BUCKET_NS, n)
            ended = sec < last_sec
            done = self._done.get(sec)
            if done is not None and ended:
                out[sec] = (stop - start, *done)
                continue
            pos, rtx, drops = self._partial.get(sec, (start, 0, 0))
            pos = max(pos, start)
            if budget > 0 and pos < stop:
                step = min(stop, pos + budget)
                r, d = _count(log, pos, step)
                budget -= step - pos
                pos, rtx, drops = step, rtx + r, drops + d
            if pos >= stop:
                out[sec] = (stop - start, rtx, drops)
                if ended:
                    self._remember(sec, (rtx, drops))
                    self._partial.pop(sec, None)
                else:
                    self._partial[sec] = (pos, rtx, drops)
            else:
                self._partial[sec] = (pos, rtx, drops)
                out[sec] = (stop - start, None, None)   # events exact; kinds not counted yet
        for sec in range(lo_sec, last_sec + 1):
            e, r, d = out[sec]
            ev_c.append(e)
            rtx_c.append(r)
            drop_c.append(d)
        if len(self._partial) > SESSION_WINDOW * 2:
            for sec in [s for s in self._partial if s < lo_sec]:
                del self._partial[sec]
        return SessionSeries(tuple(ev_c), tuple(rtx_c), tuple(drop_c))

    def _remember(self, sec: int, counts: tuple[int, int]) -> None:
        if len(self._done) >= SESSION_MEMO:
            self._done.pop(next(iter(self._done)))
        self._done[sec] = counts


def _first_at_or_after(log: Any, ktime_ns: int, n: int) -> int:
    """The first position (below ``n``) whose event is at or after ``ktime_ns``."""
    p = log.position_at_ktime(ktime_ns - 1)
    if p < n and log.ktime(p) < ktime_ns:
        p += 1
    return min(p, n)


def _count(log: Any, start: int, stop: int) -> tuple[int, int]:
    rtx = drops = 0
    parse = events_pb2.Event.FromString
    for _, raw in log.containing(start, stop, (_RTX_TAG, _DROP_TAG)):
        ev = parse(raw)
        kind = ev.WhichOneof("body")
        if kind == "retransmit":
            rtx += 1
        elif kind == "skb_drop":
            drops += ev.skb_drop.count or 1
    return rtx, drops
