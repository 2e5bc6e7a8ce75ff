"""A live head folds the capture's batches to the same conclusions as a plain replay.

The debugger folds a live batch in one loop when the view follows the head and nothing is
tested per event (gewtui.debugger.timeline ``fold_head``), and the engine pins the capture's
wire bytes as evidence instead of serializing each event again. The golden recordings are
handed over as a capture thread hands them (their event bytes, in batches) and must end with
the flows, chains, engine state and event log of ``Engine.feed`` over the same events,
and the same selected flow and filtered flows as the per-event path (a breakpoint set);
an observer (the intervention controller's hook) sees every event once, in order.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from gewtui.debugger.core import Debugger
from gewtui.debugger.filters import FlowFilter
from gewtui.debugger.sources import LiveSource, ReplaySource
from gewtui.model import persist
from gewtui.model.engine import Engine
from gewtui.pb import events_pb2

DATA = Path(__file__).resolve().parent / "data"
RECORDINGS = sorted(DATA.glob("golden/*.gewrec"))


def _raws(path: Path) -> list[bytes]:
    src = ReplaySource(path, use_checkpoints=False)
    try:
        return [raw for _, raw in src.read_with_raw(1 << 62)]
    finally:
        src.close()


class _Capture:
    """What the capture thread offers the debugger, over bytes already captured."""

    resume_offset = 0

    def __init__(self, raws: list[bytes], batch: int) -> None:
        self.raws, self.at, self.batch = raws, 0, batch
        self.listeners: list = []     # never called: everything is there from the start

    @property
    def lag(self) -> int:
        return len(self.raws) - self.at

    def take(self, max_events: int, timeout_s: float = 0.0) -> list[bytes]:
        out = self.raws[self.at:self.at + min(max_events, self.batch)]
        self.at += len(out)
        return out

    def close(self) -> None:
        pass


class _Session:
    session_id = "live-fold"

    def __init__(self, raws: list[bytes], batch: int) -> None:
        self.cap = _Capture(raws, batch)

    def start_capture(self) -> _Capture:
        return self.cap


def _export(eng: Engine) -> bytes:
    return b"".join(f.SerializeToString(deterministic=True) for f in eng.flows()) + \
        b"".join(c.SerializeToString(deterministic=True) for c in eng.chains())


def _follow(raws: list[bytes], batch: int, breakpoint: int | None = None) -> Debugger:
    d = Debugger(LiveSource(_Session(raws, batch)),
                 engine_factory=lambda: Engine(session_id="live-fold"),
                 engine_restore=Engine.restore)
    if breakpoint:
        d.breakpoints.make("flow", flow=breakpoint)   # a flow that never exists
    seen: list[int] = []
    d.observers.append(lambda ev: seen.append(ev.id))   # as the intervention controller listens
    d.seen = seen
    d.ingest(50000)
    # a filter set while following: the flows it shows are kept up to date from the changes
    d.set_filter(FlowFilter.parse(["phase live"]))
    d.matching_flows()
    while d.ingest(50000):
        pass
    return d


@pytest.mark.skipif(not RECORDINGS, reason="no golden recordings in tests/data/golden")
@pytest.mark.parametrize("path", RECORDINGS, ids=[p.stem for p in RECORDINGS])
def test_a_followed_live_head_concludes_what_a_replay_concludes(path: Path) -> None:
    raws = _raws(path)
    assert raws, f"{path.name} holds no events"
    straight = Engine(session_id="live-fold")
    for raw in raws:
        straight.feed(events_pb2.Event.FromString(raw))
    want_state = persist.dumps(persist.engine_view(straight))
    views = set()
    for batch, bp in ((7, None), (2048, None), (64, 999_999)):
        d = _follow(raws, batch, bp)
        head = d.head_engine
        assert d.following and d.position == len(d.log) == len(raws)
        assert [d.log.raw(i) for i in range(len(raws))] == raws
        assert [d.log.event_id(i) for i in range(len(raws))] == \
            [events_pb2.Event.FromString(r).id for r in raws] == d.seen
        assert _export(head) == _export(straight), (batch, bp)
        assert persist.dumps(persist.engine_view(head)) == want_state, (batch, bp)
        shown = {f.flow_id for f in head.flows() if d.filter.matches(f)}
        assert d.matching_flows() == shown
        views.add((d.selected, frozenset(shown)))
        # the evidence the head pinned is the capture's bytes, read back as the same events
        reg = head._reg
        assert reg.pinned.keys() == straight._reg.pinned.keys()
        for eid, blob in reg.pinned.items():
            assert events_pb2.Event.FromString(blob) == events_pb2.Event.FromString(straight._reg.pinned[eid])
    assert len(views) == 1, views   # the selected flow too: per event or per batch alike
