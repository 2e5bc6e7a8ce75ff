"""The session's L0 event sequence, as the debugger cursor walks it.

Place in the pipeline: sources (a recording being read, a live session being polled) append
events here; the cursor and the checkpoint replays read them back by position. Position
``i`` holds the ``i``-th event of the session (0-based); event ids are monotonic but need not
be dense (a filtered recording keeps its original ids), so lookups by id bisect.

Events are kept serialized, packed into blocks of bytes, because a long live session holds
millions of them: a parsed protobuf message costs several hundred bytes of Python objects,
its wire form about a tenth of that, and parsing one back takes well under a microsecond.

A replay that jumps (to a checkpoint stored in the recording) leaves a **hole**: positions
whose count is known from the checkpoint but whose events were not read yet. A hole knows
its last event (the checkpoint carries it) and its id and time bounds, so lookups only read
it when they must; it is read through ``loader`` (the debugger's, which knows the file) the
first time a position, id or time inside it is asked for.
"""
from __future__ import annotations

import bisect
from array import array
from itertools import accumulate, islice
from operator import attrgetter
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from gewtui.pb import events_pb2

_BLOCK = 4096
_ID, _KTIME = attrgetter("id"), attrgetter("ktime_ns")


@dataclass
class Hole:
    """Positions [start, end) known to exist, not read yet."""

    start: int
    end: int
    lo_id: int          # id of the event before it (0: none): every id inside is greater
    hi_id: int          # id of its last event
    lo_ktime: int
    hi_ktime: int
    last: bytes         # its last event, serialized
    where: Any          # what the loader needs to read it (a file offset)


class EventLog:
    """Append-only, position-indexed store of serialized L0 events."""

    def __init__(self) -> None:
        self._ids = array("Q")
        self._ktimes = array("Q")
        self._starts: list[int] = []      # first position of each block (sorted)
        self._blocks: list[bytearray] = []
        self._ends: list[array] = []      # per block: end offset of each event in the block
        self.complete = False             # no more events will arrive (replay read to its end)
        # The newest events as the source parsed them: the cursor usually folds events soon
        # after they arrive (live, or a replay read just ahead), so it need not parse them
        # again. Events are never mutated once logged, so sharing the objects is safe.
        self._recent: list[events_pb2.Event] = []
        self._recent_base = 0
        self.recent_cap = 65536
        self.holes: list[Hole] = []
        # Reads a hole: returns its events with their serialized forms, or raises.
        self.loader: Callable[[Hole], list[tuple[events_pb2.Event, bytes]]] | None = None
        self._filled: tuple[int, list[events_pb2.Event]] = (0, [])   # the last hole read

    def __len__(self) -> int:
        return len(self._ids)

    def append(self, event: events_pb2.Event, raw: bytes | None = None) -> int:
        """Store one event; returns its position."""
        pos = len(self._ids)
        starts = self._starts
        if not starts or pos - starts[-1] >= _BLOCK or pos != starts[-1] + len(self._ends[-1]):
            starts.append(pos)
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
        if not recent or self._recent_base + len(recent) != pos:
            recent.clear()
            self._recent_base = pos
        recent.append(event)
        return pos

    def extend(self, pairs: list[tuple[events_pb2.Event, bytes | None]]) -> int:
        """Store many (event, serialized event) pairs; returns the first one's position.
        Runs of events that fit the newest block are stored with one join and a few array
        extends (a live backlog arrives in batches of thousands)."""
        first = len(self._ids)
        n = len(pairs)
        i = 0
        while i < n:
            ends = self._ends[-1] if self._ends else None
            pos = len(self._ids)
            recent = self._recent
            room = 0
            if ends is not None and pos == self._starts[-1] + len(ends) and \
                    self._recent_base + len(recent) == pos:
                room = min(n - i, _BLOCK - len(ends), self.recent_cap - len(recent))
            if room <= 0:
                self.append(*pairs[i])      # a new block, or the recent window halves
                i += 1
                continue
            chunk = pairs[i:i + room]
            evs = [ev for ev, _ in chunk]
            raws = [raw for _, raw in chunk]
            if None in raws:
                for ev, raw in chunk:
                    self.append(ev, raw)
            else:
                block = self._blocks[-1]
                ends.extend(islice(accumulate(map(len, raws), initial=len(block)), 1, None))
                block += b"".join(raws)
                self._ids.extend(map(_ID, evs))
                self._ktimes.extend(map(_KTIME, evs))
                recent.extend(evs)
            i += room
        return first

    # ---- holes ----------------------------------------------------------------------------

    def add_hole(self, end: int, hi_id: int, hi_ktime: int, last: bytes, where: Any,
                 first_ktime: int = 0) -> Hole:
        """Positions [len, end) exist but are not read; ``end - 1`` is the event ``last``
        (id ``hi_id``, time ``hi_ktime``). ``first_ktime``: the session's first event time,
        for a hole at position 0."""
        start = len(self._ids)
        if end <= start:
            raise ValueError("a hole must add positions")
        lo_id = self._ids[-1] if start else 0
        lo_kt = self._ktimes[-1] if start else min(first_ktime or hi_ktime, hi_ktime)
        # Placeholders keep both arrays sorted for bisect; the hole's last entry is exact.
        n = end - start - 1
        self._ids.extend(array("Q", [lo_id]) * n)
        self._ids.append(hi_id)
        self._ktimes.extend(array("Q", [lo_kt]) * n)
        self._ktimes.append(hi_ktime)
        h = Hole(start, end, lo_id, hi_id, lo_kt, hi_ktime, last, where)
        self.holes.append(h)
        return h

    def _hole_at(self, pos: int) -> Hole | None:
        for h in self.holes:
            if h.start <= pos < h.end:
                return h
        return None

    def fill(self, h: Hole) -> None:
        """Read hole ``h`` now (through ``loader``)."""
        if h not in self.holes:
            return
        if self.loader is None:
            raise LookupError(f"events {h.start}..{h.end - 1} were not read and cannot be")
        pairs = self.loader(h)
        if len(pairs) != h.end - h.start or pairs[-1][0].id != h.hi_id:
            raise LookupError(f"events {h.start}..{h.end - 1}: the file holds other events there")
        self.holes.remove(h)
        i = bisect.bisect_left(self._starts, h.start)
        for k in range(0, len(pairs), _BLOCK):
            chunk = pairs[k:k + _BLOCK]
            block = bytearray()
            ends = array("L")
            for _, raw in chunk:
                block += raw
                ends.append(len(block))
            self._starts.insert(i, h.start + k)
            self._blocks.insert(i, block)
            self._ends.insert(i, ends)
            i += 1
        self._ids[h.start:h.end] = array("Q", [ev.id for ev, _ in pairs])
        self._ktimes[h.start:h.end] = array("Q", [ev.ktime_ns for ev, _ in pairs])
        self._filled = (h.start, [ev for ev, _ in pairs])

    def _need(self, pos: int) -> None:
        h = self._hole_at(pos)
        if h is not None and pos != h.end - 1:
            self.fill(h)

    # ---- reading ----------------------------------------------------------------------------

    def raw(self, pos: int) -> bytes:
        if self.holes:
            h = self._hole_at(pos)
            if h is not None:
                if pos == h.end - 1:
                    return h.last
                self.fill(h)
        b = bisect.bisect_right(self._starts, pos) - 1
        ends = self._ends[b]
        k = pos - self._starts[b]
        start = ends[k - 1] if k else 0
        return bytes(self._blocks[b][start:ends[k]])

    def get(self, pos: int) -> events_pb2.Event:
        if pos < 0 or pos >= len(self._ids):
            raise IndexError(pos)
        i = pos - self._recent_base
        if 0 <= i < len(self._recent):
            return self._recent[i]
        base, evs = self._filled
        if 0 <= pos - base < len(evs):
            return evs[pos - base]
        return events_pb2.Event.FromString(self.raw(pos))

    def iter_range(self, start: int, stop: int) -> Iterator[events_pb2.Event]:
        """Events at positions [start, stop), parsed one by one (replays use this)."""
        parse = events_pb2.Event.FromString
        for pos in range(max(0, start), min(stop, len(self._ids))):
            yield parse(self.raw(pos))

    def containing(self, start: int, stop: int, tags: tuple[bytes, ...]) -> list[tuple[int, bytes]]:
        """(position, serialized event) of the events at [start, stop) whose bytes hold one
        of ``tags``, in order. Each block is searched in C; only its hits are cut out."""
        pos, stop = max(0, start), min(stop, len(self._ids))
        if self.holes:
            return [(p, r) for p in range(pos, stop) for r in (self.raw(p),) if any(t in r for t in tags)]
        out: list[tuple[int, bytes]] = []
        starts = self._starts
        while pos < stop:
            b = bisect.bisect_right(starts, pos) - 1
            ends, block, base = self._ends[b], self._blocks[b], starts[b]
            k0, k1 = pos - base, min(len(ends), stop - base)
            lo, hi = (ends[k0 - 1] if k0 else 0), ends[k1 - 1]
            hits: set[int] = set()
            for tag in tags:
                i = block.find(tag, lo, hi)
                while i >= 0:
                    k = bisect.bisect_right(ends, i, k0, k1)     # the event holding byte i
                    hits.add(k)
                    i = block.find(tag, ends[k], hi)
            for k in sorted(hits):
                raw = bytes(block[ends[k - 1] if k else 0:ends[k]])
                if any(t in raw for t in tags):    # (a tag across two events is no hit)
                    out.append((base + k, raw))
            pos = base + len(ends)
        return out

    def event_id(self, pos: int) -> int:
        if self.holes:
            self._need(pos)
        return self._ids[pos]

    def ktime(self, pos: int) -> int:
        if self.holes:
            self._need(pos)
        return self._ktimes[pos]

    def _need_id(self, event_id: int) -> None:
        for h in list(self.holes):
            if h.lo_id < event_id < h.hi_id:
                self.fill(h)

    def position_of_id(self, event_id: int) -> int | None:
        if self.holes:
            self._need_id(event_id)
        i = bisect.bisect_left(self._ids, event_id)
        if i < len(self._ids) and self._ids[i] == event_id:
            return i
        return None

    def position_at_or_after_id(self, event_id: int) -> int:
        """Position of the first event whose id is >= ``event_id`` (len() when none)."""
        if self.holes:
            self._need_id(event_id)
        return bisect.bisect_left(self._ids, event_id)

    def position_at_ktime(self, ktime_ns: int) -> int:
        """Position of the last event at or before ``ktime_ns`` (0 when none is earlier).

        ktimes are monotonic per CPU but records from different CPUs can interleave by a few
        microseconds, so this bisects on the recorded order, which is the order of replay.
        """
        if self.holes:
            for h in list(self.holes):
                if h.lo_ktime <= ktime_ns < h.hi_ktime:
                    self.fill(h)
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
