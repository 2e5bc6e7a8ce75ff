"""The pictures' numbers (gewtui.debugger.series) against the recording itself: a flow's
chart holds its retransmits and tcp_probe summaries where they happened, stepping forward
builds the same series as building it anew, and the session's per-second counts equal a
plain count of the events, also when they are counted in small slices."""
from __future__ import annotations

from pathlib import Path

import pytest

from gewtui.debugger import series as S
from gewtui.debugger.store import EventLog
from gewtui.model.engine import Engine
from gewtui.recording import open_recording

LOSSY = Path(__file__).resolve().parent / "data" / "golden" / "lossy.gewrec"


@pytest.fixture(scope="module")
def events():
    with open_recording(LOSSY) as r:
        return list(r.iter_events())


def _log(events):
    log = EventLog()
    for ev in events:
        log.append(ev)
    return log


def test_flow_series_holds_the_flows_retransmits_and_summaries(events):
    eng = Engine()
    for ev in events:
        eng.feed(ev)
    snap = eng.flow(1)
    s = S.flow_series(_log(events), snap, len(events))
    first = events[0].ktime_ns
    assert len(s.retransmits) == snap.counters.retransmits == 157
    probes = [ev for ev in events if ev.WhichOneof("body") == "tcp_probe"]
    assert [t for t, _ in s.bytes] == [ev.ktime_ns - first for ev in probes]
    assert [v for _, v in s.cwnd] == [ev.tcp_probe.snd_cwnd for ev in probes if ev.tcp_probe.snd_cwnd]
    assert s.t0_ns == snap.first_ktime_ns - first and s.t1_ns == events[-1].ktime_ns - first
    assert not s.partial and not s.empty


def test_stepping_forward_extends_the_series_as_a_fresh_build_would(events):
    eng = Engine()
    log = _log(events)
    cache = S.FlowSeriesCache()
    for pos, ev in enumerate(events, 1):
        eng.feed(ev)
        snap = eng.flow(1)
        if snap is None or pos % 7:
            continue
        assert cache.series(log, snap, pos) == S.flow_series(log, snap, pos)


def test_a_long_flow_is_marked_partial(events, monkeypatch):
    monkeypatch.setattr(S, "FLOW_SCAN", 50)
    eng = Engine()
    for ev in events:
        eng.feed(ev)
    s = S.flow_series(_log(events), eng.flow(1), len(events))
    assert s.partial and len(s.retransmits) < 157


def _brute(events, upto):
    first = events[0].ktime_ns
    out: dict[int, list[int]] = {}
    for ev in events[:upto]:
        sec = (ev.ktime_ns - first) // S.SESSION_BUCKET_NS
        c = out.setdefault(sec, [0, 0, 0])
        c[0] += 1
        kind = ev.WhichOneof("body")
        c[1] += kind == "retransmit"
        c[2] += (ev.skb_drop.count or 1) if kind == "skb_drop" else 0
    last = max(out)
    secs = range(max(0, last - S.SESSION_WINDOW + 1), last + 1)
    return tuple(tuple(out.get(s, [0, 0, 0])[i] for s in secs) for i in range(3))


@pytest.mark.parametrize("budget", [20_000, 17])
def test_session_rates_equal_a_plain_count(events, monkeypatch, budget):
    monkeypatch.setattr(S, "SESSION_BUDGET", budget)
    log = _log(events)
    rates = S.SessionRates()
    for upto in (40, 200, len(events)):
        want = _brute(events, upto)
        got = rates.series(log, upto)
        for _ in range(200):            # small slices: the counts fill in over views
            if None not in got.retransmits + got.drops:
                break
            got = rates.series(log, upto)
        assert (got.events, got.retransmits, got.drops) == want
    if budget < 100:
        fresh = S.SessionRates().series(log, len(events))
        assert None in fresh.retransmits      # not yet counted shows as unknown, not zero


def test_the_logs_tag_search_finds_exactly_the_events_holding_a_tag(events, monkeypatch):
    # the series scans ask the log for events whose bytes hold a wire tag; the log searches
    # its blocks and must return what a per-event test returns, across block boundaries
    from gewtui.debugger import store

    monkeypatch.setattr(store, "_BLOCK", 37)     # many blocks, as in a long session
    log = EventLog()
    raws = [ev.SerializeToString() for ev in events]
    third = len(events) // 3
    log.extend(list(zip(events[:third], raws[:third])))
    for ev, raw in zip(events[third:2 * third], raws[third:2 * third]):
        log.append(ev, raw)
    log.extend(list(zip(events[2 * third:], raws[2 * third:])))
    n = len(raws)
    for tags in ((b"\x5a",), (b"\x6a", b"\x5a", b"\x8a\x01"), (b"\x8a\x01",), (raws[n // 2][-3:],)):
        for lo, hi in ((0, n), (1, n - 1), (third - 2, third + 2), (n // 2, n // 2 + 1), (5, 5), (n - 1, n + 9)):
            want = [(p, raws[p]) for p in range(lo, min(hi, n)) if any(t in raws[p] for t in tags)]
            assert log.containing(lo, hi, tags) == want, (tags, lo, hi)
    assert log.containing(0, n, (b"\x5a",)), "the lossy recording holds retransmits"
