"""Long folds: a goto's inner loop, with the checkpoint policy applied in blocks.

Place in the pipeline: the debugger core (gewtui.debugger.core) runs a goto, which tests
nothing per event, through ``fold_to``: the per-event work is the engine's ``feed`` and the
event log's ``get``; timing, checkpoints and the deadline are looked at once per block.
"""
from __future__ import annotations

import time
from typing import Any

from gewtui.errors import GewError

# A long jump takes checkpoints SPARSE times further apart until it is this many events
# from where it will stop: 'back' from there stays within the normal budget, and the jump
# does not spend a third of its time copying engines it will never go back to.
DENSE_TAIL = 100_000
SPARSE = 8.0


def stop_estimate(d: Any) -> int:
    """Where the running goto will stop: its target, the end of a recording read to
    its end, or the end estimated from the bytes not read yet."""
    m = d.motion
    if m is not None and m.target is not None:
        return m.target
    n = len(d.log)
    if d.log.complete or not n:
        return n
    tell, size = getattr(d.source, "tell", None), getattr(d.source, "size", 0)
    if tell is None or not size:
        return n
    at = tell()
    return n + int((size - at) * n / max(1, at))

def fold_to(d: Any, limit: int, deadline: float) -> None:
    """Fold up to position ``limit`` with nothing to test per event (a goto): the
    per-event work is the engine's, the rest is done every 128 events (or every
    checkpoint interval, if that is shorter)."""
    try:
        _fold_to(d, limit, deadline)
    except GewError:
        raise
    except Exception as e:
        # A state restored from the recording passed every check and still failed here:
        # it is not trusted (one line), and the file is read again from its first event.
        stored = getattr(d, "stored", None)
        if stored is None or not stored.used:
            raise
        stored.distrust(f"a stored checkpoint failed a fold ({type(e).__name__})")


def _fold_to(d: Any, limit: int, deadline: float) -> None:
    get = d.log.get
    cur = d._cur
    feed = cur.feed
    touch = d._touch
    cps = d.checkpoints
    replay = d._head is None
    perf = time.perf_counter
    clock = d.clock
    pos = d.position
    mark = perf()
    n = 0
    far = stop_estimate(d) - DENSE_TAIL
    step = max(1, min(128, cps.policy.min_events))
    while pos < limit:
        changes = feed(get(pos))
        pos += 1
        if changes:
            touch(changes)
        n += 1
        if n >= step or pos == limit:
            d.position = pos
            if replay and pos > d._frontier:
                now = perf()
                cps.account(min(n, pos - d._frontier), now - mark)
                d._frontier = pos
                if cps.due(SPARSE if pos < far else 1.0):
                    d._checkpoint(cur, pos)
                mark = perf()
            n = 0
            if clock() >= deadline:
                break
    d.position = pos
