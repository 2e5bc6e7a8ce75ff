"""One client's stream: a producer thread, a bounded queue, and a cut-off for slow readers.

Place in the pipeline: the service's StreamEvents/StreamFlows/StreamReasons handlers. Each
stream follows the recording on its own (gewtui.control.follow), from the first event or
from the newest one, so a stream that starts late still sees the session from the start;
flows and reasons streams fold the events into an engine of their own and send each flow's
newest snapshot (or chain) when it changed, coalesced per read batch.

Back-pressure never reaches the capture (the recording is the buffer). While a stream is
still reading history it waits for its client; once it has caught up with the live session
it gives the client ``stall_s`` to make room in its queue, and a client that does not is
cut off: the stream ends with RESOURCE_EXHAUSTED and a notice, and the cut-off is counted.
"""
from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from gewtui.control.follow import Follower
from gewtui.pb import events_pb2
from gewtui.recording.framing import encode_varint as _varint

KINDS = ("events", "flows", "reasons")
QUEUE_ITEMS = 4096
STALL_S = 2.0
_BATCH_EVENTS = 4096
_CHUNK = 256
_END = object()


@dataclass
class CutOff:
    notice: str


def _event_id(raw: bytes) -> int:
    """Event.id (field 1, varint) without decoding the event; 0 when it is not first."""
    if not raw or raw[0] != 0x08:
        return 0
    v = shift = 0
    for b in raw[1:11]:
        v |= (b & 0x7F) << shift
        if b < 0x80:
            return v
        shift += 7
    return 0


class Stream:
    def __init__(self, kind: str, path: str, engine_factory: Callable[[], Any], *,
                 from_event_id: int = 0, live_only: bool = False, server_stop: threading.Event,
                 on_cutoff: Callable[[str], int], maxsize: int = QUEUE_ITEMS, stall_s: float = STALL_S):
        assert kind in KINDS
        self.kind = kind
        self.from_event_id = from_event_id
        self.live_only = live_only
        self.stall_s = stall_s
        self.maxsize = maxsize
        # events travel as lists of up to _CHUNK raw events (one queue operation per list,
        # not per event: the producer runs in the session's process); the bound stays in events
        self.q: queue.Queue = queue.Queue(maxsize=max(1, maxsize // _CHUNK) if kind == "events" else maxsize)
        self.stop = threading.Event()
        self._server_stop = server_stop
        self._on_cutoff = on_cutoff
        self._follower = Follower(path, self.stop)
        self._engine = engine_factory() if kind != "events" else None
        self._live = False
        self.sent = 0
        self._thread = threading.Thread(target=self._produce, name=f"gew-control-{kind}", daemon=True)

    # -- producer ------------------------------------------------------------------------------
    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=self.stall_s if self._live else 0.2)
                return True
            except queue.Full:
                if self._live:
                    n = self._on_cutoff(self.kind)
                    self._cut(CutOff(f"cut off: this client read too slowly and fell {self.maxsize} "
                                     f"{self.kind} behind the live session for {self.stall_s:g} s "
                                     f"(the session itself lost nothing; {n} cut-off(s) so far)"))
                    return False
        return False

    def _cut(self, item: Any) -> None:
        self.stop.set()
        while True:                  # make room for the notice: the client reads it next
            try:
                self.q.get_nowait()
            except queue.Empty:
                break
        self.q.put_nowait(item)

    def _produce(self) -> None:
        try:
            if self.kind == "events":
                self._produce_events()
            else:
                self._produce_folded()
        finally:
            if not self.stop.is_set():
                self._put(_END)
            self.stop.set()

    def _wanted(self, raw: bytes) -> bool:
        if self.live_only and not self._live:
            return False
        return not self.from_event_id or _event_id(raw) >= self.from_event_id

    def _produce_events(self) -> None:
        chunk: list[bytes] = []
        for kind, item in self._follower.items():
            if self._server_stop.is_set():
                return
            if kind == "idle":
                if chunk and not self._put(chunk):
                    return
                chunk = []
                self._live = True
            elif kind == "event" and self._wanted(item):
                chunk.append(item)
                if len(chunk) >= _CHUNK:
                    if not self._put(chunk):
                        return
                    chunk = []
        if chunk:
            self._put(chunk)

    def _produce_folded(self) -> None:
        parse = events_pb2.Event.FromString
        eng = self._engine
        touched: dict[int, None] = {}
        sent: dict[int, bytes] = {}

        def flush() -> bool:
            for fid in touched:
                msg = eng.flow(fid) if self.kind == "flows" else eng.chain(fid)
                if msg is None:
                    continue
                data = msg.SerializeToString()
                digest = hashlib.blake2b(data, digest_size=16).digest()
                if sent.get(fid) == digest:
                    continue
                sent[fid] = digest
                if not self._put(data):
                    return False
            touched.clear()
            return True

        n = 0
        for kind, item in self._follower.items():
            if self._server_stop.is_set():
                return
            if kind == "event":
                changes = eng.feed(parse(item))
                if self._wanted(item):
                    for c in changes:
                        if c.flow_id:
                            touched[c.flow_id] = None
                n += 1
                if n < _BATCH_EVENTS:
                    continue
            elif kind == "record":
                if item.HasField("intervention"):
                    eng.add_intervention(item.intervention)
                    if item.intervention.flow_id and (self._live or not self.live_only):
                        touched[item.intervention.flow_id] = None
                continue
            else:
                self._live = True
            n = 0
            if not flush():
                return
        flush()           # the recording ended (SessionEnd): what its last batch changed

    # -- consumer (the gRPC handler's thread) ----------------------------------------------------
    def start(self) -> "Stream":
        self._thread.start()
        return self

    def batches(self, active: Callable[[], bool], most: int = 1024) -> Iterator[Any]:
        """EventBatch messages built from the recorded event bytes without decoding them:
        each event becomes field 1 (tag 0x0a, its length, its bytes); a batch is what the
        queue holds at that moment, up to about ``most`` events. A CutOff comes alone, last."""
        for first in self._chunks(active):
            if isinstance(first, CutOff):
                yield first
                return
            parts = list(first)
            cut = None
            while len(parts) < most:
                try:
                    nxt = self.q.get_nowait()
                except queue.Empty:
                    break
                if nxt is _END:
                    self.q.put_nowait(_END)      # _chunks() ends on it next
                    break
                if isinstance(nxt, CutOff):
                    cut = nxt
                    break
                parts.extend(nxt)
            self.sent += len(parts)
            yield b"".join(b"\x0a" + _varint(len(p)) + p for p in parts)
            if cut is not None:
                yield cut
                return

    def items(self, active: Callable[[], bool]) -> Iterator[Any]:
        """Serialized messages one at a time, then returns; yields one CutOff last when cut off."""
        for chunk in self._chunks(active):
            if isinstance(chunk, CutOff):
                yield chunk
                return
            if isinstance(chunk, list):
                self.sent += len(chunk)
                yield from chunk
            else:
                self.sent += 1
                yield chunk

    def _chunks(self, active: Callable[[], bool]) -> Iterator[Any]:
        """What the queue holds, item by item (a list of events, a message or a CutOff)."""
        try:
            while True:
                try:
                    item = self.q.get(timeout=0.25)
                except queue.Empty:
                    if not active() or (self.stop.is_set() and self.q.empty()):
                        return
                    continue
                if item is _END:
                    return
                yield item
                if isinstance(item, CutOff):
                    return
        finally:
            self.stop.set()
