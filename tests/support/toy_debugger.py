"""A debugger over the toy engine of tests/support/debugger_support.py: built, driven like a synchronous
front end, and fed by hand like a live session.
"""
from __future__ import annotations

from gewtui.debugger import commands
from gewtui.debugger.core import Debugger
from gewtui.debugger.sources import MemorySource
from gewtui.debugger.view_builder import ViewBuilder
from gewtui.pb import events_pb2
from tests.support.debugger_support import ToyEngine, header, toy_scenario


def make(events=None, policy=None, source=None):
    src = source or MemorySource(events if events is not None else toy_scenario(), header())
    d = Debugger(src, engine_factory=ToyEngine, engine_restore=ToyEngine.restore, policy=policy)
    return d, commands.Context(d, ViewBuilder(d))


def run(ctx, line):
    """Execute like a synchronous front end: the command, then its motion to the end."""
    out = commands.execute(ctx, line)
    errors = [o for o in out if getattr(o, "level", "") == "error"]
    assert not errors, errors
    ctx.debugger.settle()
    return out + ctx.debugger.take_stops()


def flows_state(engine):
    return sorted((f.flow_id, f.phase, f.tcp_state, f.counters.events, f.counters.retransmits,
                   tuple(f.templates)) for f in engine.flows())


def fresh_state(events, n):
    e = ToyEngine()
    for ev in events[:n]:
        e.feed(ev)
    return flows_state(e)


class PushSource:
    """A live source the test feeds by hand."""

    live = True
    exhausted = False

    def __init__(self):
        self.pending: list[events_pb2.Event] = []
        self.read_total = 0
        self.interventions = []

    def push(self, events):
        self.pending.extend(events)

    def read(self, max_events, timeout_s=0.0):
        out, self.pending = self.pending[:max_events], self.pending[max_events:]
        self.read_total += len(out)
        return out

    def info(self):
        from gewtui.debugger.sources import SourceInfo
        return SourceInfo("live-test", "live", "FULLY_SUPPORTED", "host netns", "", False)

    def stats(self):
        from gewtui.debugger.sources import SourceStats
        return SourceStats(events=self.read_total)
