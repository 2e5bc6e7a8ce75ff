"""Periodic engine checkpoints: what makes stepping back instant.

Place in the pipeline: whichever engine is the first to pass a position (the head engine of
a live session, or the cursor engine moving into unread parts of a recording) offers each
position here; the policy decides whether to keep a checkpoint. Going back to position ``p``
restores the nearest checkpoint at or before ``p`` and replays the few events between.

The policy bounds two costs at once:
- the replay after a restore: a checkpoint is due once the events fed since the last one
  took ``budget_s`` to fold (so ``back`` costs at most about one budget plus a restore);
- the checkpoints themselves: a checkpoint is never due before the feeding since the last
  one cost ``overhead_ratio`` times what taking that last checkpoint cost, so checkpointing
  a large state (10,000 flows) never eats more than a fixed share of ingestion time.
When more than ``max_count`` checkpoints exist, every other one is dropped (oldest half
first), which doubles the replay distance there but bounds memory on very long sessions.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any


@dataclass
class CheckpointPolicy:
    budget_s: float = 0.04
    overhead_ratio: float = 1.0
    min_events: int = 256
    max_count: int = 4000


class Checkpoints:
    def __init__(self, policy: CheckpointPolicy | None = None) -> None:
        self.policy = policy or CheckpointPolicy()
        self._positions: list[int] = []
        self._states: list[Any] = []
        self._feed_s = 0.0            # folding time since the last checkpoint
        self._events = 0              # events folded since the last checkpoint
        self._last_cost_s = 0.0
        self.taken = 0

    def __len__(self) -> int:
        return len(self._positions)

    @property
    def last_position(self) -> int:
        return self._positions[-1] if self._positions else -1

    def account(self, events: int, seconds: float) -> None:
        """Record folding work done past the last checkpoint."""
        self._events += events
        self._feed_s += seconds

    def due(self, scale: float = 1.0) -> bool:
        """Is a checkpoint due? ``scale`` > 1 spaces them further (a long jump far from
        where it will stop takes fewer, see the debugger's DENSE_TAIL)."""
        p = self.policy
        return (self._events >= p.min_events
                and self._feed_s >= scale * max(p.budget_s, p.overhead_ratio * self._last_cost_s))

    def add(self, position: int, state: Any, cost_s: float) -> None:
        """Keep ``state``, the engine after ``position`` events were folded."""
        i = bisect.bisect_left(self._positions, position)
        if i < len(self._positions) and self._positions[i] == position:
            self._states[i] = state
        else:
            self._positions.insert(i, position)
            self._states.insert(i, state)
        self._feed_s = 0.0
        self._events = 0
        self._last_cost_s = cost_s
        self.taken += 1
        if len(self._positions) > self.policy.max_count:
            self._thin()

    def seed(self, position: int, state: Any) -> None:
        """Enter a checkpoint made elsewhere (one stored in a recording): no accounting."""
        i = bisect.bisect_left(self._positions, position)
        if i < len(self._positions) and self._positions[i] == position:
            return
        self._positions.insert(i, position)
        self._states.insert(i, state)

    def drop(self, position: int) -> None:
        i = bisect.bisect_left(self._positions, position)
        if i < len(self._positions) and self._positions[i] == position:
            del self._positions[i]
            del self._states[i]

    def first_gap(self, limit: int, min_gap: int) -> tuple[int, int] | None:
        """The first stretch (a, b) between two checkpoints (or position 0 and the first),
        ending at or below ``limit``, longer than ``min_gap`` events."""
        prev = 0
        for pos in self._positions:
            if pos > limit:
                break
            if pos - prev > min_gap:
                return prev, pos
            prev = pos
        return None

    def reset_accounting(self) -> None:
        """The feeding engine moved somewhere already covered: restart the counters."""
        self._feed_s = 0.0
        self._events = 0

    def nearest(self, position: int) -> tuple[int, Any] | None:
        """The checkpoint at or before ``position``."""
        i = bisect.bisect_right(self._positions, position) - 1
        if i < 0:
            return None
        return self._positions[i], self._states[i]

    def _thin(self) -> None:
        half = len(self._positions) // 2
        keep = [i for i in range(len(self._positions)) if i >= half or i % 2 == 0]
        self._positions = [self._positions[i] for i in keep]
        self._states = [self._states[i] for i in keep]
