"""The session's L0 event sequence, as the debugger cursor walks it.

Place in the pipeline: sources (a recording being read, a live session being polled) append
events here; the cursor and the checkpoint replays read them back by position. Position
``i`` holds the ``i``-th event of the session (0-based); event ids are monotonic but need not
be dense (a filtered recording keeps its original ids), so lookups by id bisect.

Events are kept serialized, packed into blocks of bytes, because a long live session holds
millions of them: a parsed protobuf message costs several hundred bytes of Python objects,
its wire form about a tenth of that, and parsing one back takes well under a microsecond.
"""
from __future__ import annotations

import bisect
from array import array
from typing import Iterator

from gewtui.pb import events_pb2

_BLOCK = 4096


class EventLog:
    """Append-only, position-indexed store of serialized L0 events."""

    def __init__(self) -> None:
        self._ids = array("Q")
        self._ktimes = array("Q")
        self._blocks: list[bytearray] = []
        self._ends: list[array] = []      # per block: end offset of each event in the block
        self.complete = False             # no more events will arrive (replay read to its end)
        # The newest events as the source parsed them: the cursor usually folds events soon
        # after they arrive (live, or a replay read just ahead), so it need not parse them
        # again. Events are never mutated once logged, so sharing the objects is safe.
        self._recent: list[events_pb2.Event] = []
        self._recent_base = 0
        self.recent_cap = 65536

    def __len__(self) -> int:
        return len(self._ids)

    def append(self, event: events_pb2.Event, raw: bytes | None = None) -> int:
        """Store one event; returns its position."""
        pos = len(self._ids)
        if pos % _BLOCK == 0:
            self._blocks.append(bytearray())
            self._ends.append(array("L"))
        blob = raw if raw is not None else event.SerializeToString()
        block = self._blocks[-1]
        block += blob
        self._ends[-1].append(len(block))
        self._ids.append(event.id)
        self._ktimes.append(event.ktime_ns)
        recent = self._recent
        if len(recent) >= self.recent_cap:
            half = len(recent) // 2
            del recent[:half]
            self._recent_base += half
        if not recent:
            self._recent_base = pos
        recent.append(event)
        return pos

    def raw(self, pos: int) -> bytes:
        b, k = divmod(pos, _BLOCK)
        ends = self._ends[b]
        start = ends[k - 1] if k else 0
        return bytes(self._blocks[b][start:ends[k]])

    def get(self, pos: int) -> events_pb2.Event:
        if pos < 0 or pos >= len(self._ids):
            raise IndexError(pos)
        i = pos - self._recent_base
        if 0 <= i < len(self._recent):
            return self._recent[i]
        return events_pb2.Event.FromString(self.raw(pos))

    def iter_range(self, start: int, stop: int) -> Iterator[events_pb2.Event]:
        """Events at positions [start, stop), parsed one by one (replays use this)."""
        parse = events_pb2.Event.FromString
        for pos in range(max(0, start), min(stop, len(self._ids))):
            yield parse(self.raw(pos))

    def event_id(self, pos: int) -> int:
        return self._ids[pos]

    def ktime(self, pos: int) -> int:
        return self._ktimes[pos]

    def position_of_id(self, event_id: int) -> int | None:
        i = bisect.bisect_left(self._ids, event_id)
        if i < len(self._ids) and self._ids[i] == event_id:
            return i
        return None

    def position_at_or_after_id(self, event_id: int) -> int:
        """Position of the first event whose id is >= ``event_id`` (len() when none)."""
        return bisect.bisect_left(self._ids, event_id)

    def position_at_ktime(self, ktime_ns: int) -> int:
        """Position of the last event at or before ``ktime_ns`` (0 when none is earlier).

        ktimes are monotonic per CPU but records from different CPUs can interleave by a few
        microseconds, so this bisects on the recorded order, which is the order of replay.
        """
        i = bisect.bisect_right(self._ktimes, ktime_ns)
        return max(0, i - 1)

    @property
    def first_ktime(self) -> int:
        return self._ktimes[0] if self._ktimes else 0

    @property
    def last_ktime(self) -> int:
        return self._ktimes[-1] if self._ktimes else 0

    def nbytes(self) -> int:
        return sum(len(b) for b in self._blocks) + 24 * len(self._ids)
