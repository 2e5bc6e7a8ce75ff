"""Replays through the real observation engine: a recording opened in the debugger, a command
run to its end, and the engine state a straight fold of the first n events gives (to compare
time travel against).
"""
from __future__ import annotations

from gewtui.debugger import commands
from gewtui.debugger.core import Debugger
from gewtui.debugger.sources import ReplaySource
from gewtui.debugger.view_builder import ViewBuilder
from gewtui.model.engine import Engine


def replay(path, policy=None):
    d = Debugger(ReplaySource(path), policy=policy)
    return d, commands.Context(d, ViewBuilder(d))


def run(ctx, line):
    out = commands.execute(ctx, line)
    assert not [o for o in out if getattr(o, "level", "") == "error"], out
    ctx.debugger.settle()
    return out + ctx.debugger.take_stops()


def dump(eng) -> bytes:
    return b"|".join([f.SerializeToString(deterministic=True) for f in eng.flows()]
                     + [c.SerializeToString(deterministic=True) for c in eng.chains()])


def straight(events, n, session_id="test-session"):
    e = Engine(session_id=session_id)
    for ev in events[:n]:
        e.feed(ev)
    return dump(e)
