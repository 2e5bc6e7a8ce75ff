"""Capture that never waits for analysis: the thread that drains the kernel into the recording,
and the bounded hand-off the analysis follows it through.

Place in the pipeline: a live front end (the TUI, the live shell) opens a LiveSession and
calls ``Capture(live).start()``. From then on one thread does only this, in a loop: poll the
kernel plane, write the events' wire bytes to the recording (``LiveSession.poll_raw``), and
offer each batch to a bounded queue. The engine (flows, reasons, the debugger, the UI) takes
batches from the queue with ``take`` on its own thread, at its own pace, and may lag.

Lag is never loss. When the engine is so far behind that the queue holds ``max_queued``
events, further batches are not kept in memory: the queue keeps a *spill*, the byte range of
the recording those batches were written to and their count, and the engine reads them back
from the file when it gets there. Without a recording (tests, benches) there is nowhere to
spill: the queue then grows, and memory is the bound.

What the engine's lag is (events captured and not yet taken) is ``lag``; the session's
completeness (lost records, skipped probe runs) depends on the capture alone
(``LiveSession.stats``) and never on lag.

The GIL: the engine's work is Python too, and two busy threads share one interpreter lock
about half and half. So that the capture keeps the ring buffer drained on a busy box, the
engine yields to it: while the kernel's ring buffer is more than ``yield_above`` full
(``LiveSession.backlog``), ``take`` sleeps in short slices (``yield_s``, outside every lock,
at most ``yield_max_s`` in all) before handing anything over, and it hands over at most
``max_events`` at a time so it comes back often. bench/bench_ingest.py measures what that
gives.

The CPU: on a small box the traced workload needs the CPUs too, and an engine folding flat
out while the workload runs takes one from it. So while the capture is busy (records keep
arriving) the engine works at most ``duty`` of the wall time: ``take`` sleeps in proportion
to the time the engine spent since its last take. Lag grows meanwhile (it is shown, and
spills to the recording); once the capture goes quiet the engine folds flat out and the lag
drains (bench/bench_churn.py measures both). On a box with a CPU to spare (gewtui.kernel.spare_cpu:
idle enough, on the CPUs this process may use, by the kernel's own accounting) the engine
folds flat out even while the capture is busy, as long as the capture keeps up: the ring
buffer at most ``spare_backlog`` full. That check is the ring's, not the CPU's, because a
capture thread waiting for the interpreter lock looks idle to the kernel.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable

from gewtui.errors import RecordingError
from gewtui.kernel.spare_cpu import SpareCpu
from gewtui.recording.framing import MARKER, encode_varint
from gewtui.recording.lifecycle import expand_all

MAX_QUEUED = 200_000          # events held in memory for the engine before spilling (~30 MB)
POLL_MS = 50


def _frame_len(n: int) -> int:
    """Bytes of a record frame with an n-byte payload (marker, varint length, payload, CRC)."""
    return len(MARKER) + len(encode_varint(n)) + n + 4


def _event_frame_len(n: int) -> int:
    """Bytes of the frame the writer makes for an n-byte event (a Record holding it)."""
    return _frame_len(1 + len(encode_varint(n)) + n)


class _Spill:
    """Batches written to the recording and not kept in memory: [start, end) of the file."""

    __slots__ = ("start", "end", "count")

    def __init__(self, start: int, end: int, count: int) -> None:
        self.start, self.end, self.count = start, end, count


class Capture:
    def __init__(self, live: Any, *, max_queued: int = MAX_QUEUED, poll_ms: int = POLL_MS,
                 yield_s: float = 0.002, yield_above: float = 1 / 16, yield_max_s: float = 0.1,
                 duty: float = 0.1, rest_max_s: float = 0.25, spare: SpareCpu | None = None,
                 spare_backlog: float = 1 / 256, name: str = "gew-capture") -> None:
        self.live = live
        self.max_queued = max_queued
        self.poll_ms = poll_ms
        self.yield_s = yield_s
        self.yield_above = yield_above
        self.yield_max_s = yield_max_s
        self.duty = duty
        self.rest_max_s = rest_max_s
        self.spare = spare if spare is not None else SpareCpu()   # when the duty need not hold
        self.spare_backlog = spare_backlog
        self.yielded_s = 0.0                # time the engine gave up to the capture
        self._returned = 0.0                # when take() last handed events over
        self._q: deque = deque()            # (event bytes, file offsets of their first frame and after them), or _Spill
        self._queued = 0                    # events held in memory
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.captured = 0                   # events written by the capture thread
        self.taken = 0                      # events handed to the engine
        self.spilled = 0                    # events the engine read back from the file
        self.busy = False                   # the last poll found records (the engine yields)
        self.error: BaseException | None = None
        self.resume_offset = 0              # file offset after the last event taken (0: none)
        self._reading: _Spill | None = None
        self._reader: Any = None
        self._walk: Any = None
        # called (on this thread, no lock held) when a batch is queued and when the thread
        # ends: the engine's pump sleeps until then instead of polling the queue
        self.listeners: list[Callable[[], None]] = []

    # -- the capture thread ----------------------------------------------------------------
    def start(self) -> "Capture":
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after its current poll (what it took is written and queued)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        live = self.live
        try:
            while not self._stop.is_set() and not live.closed:
                raws, start, end, events = live.capture_batch(self.poll_ms)
                self.busy = bool(raws)
                if raws:
                    self._offer(raws, start, end, events)
        except BaseException as e:      # handed to the engine's thread by take()
            self.error = e
        finally:
            self.busy = False
            with self._cv:
                self._cv.notify_all()
            self._tell()

    def _tell(self) -> None:
        # a reader's hook that fails must not stop the capture (the reader still wakes on
        # its own timer)
        for fn in self.listeners:
            try:
                fn()
            except Exception:
                pass

    def _offer(self, raws: list[bytes], start: int, end: int, events: int) -> None:
        """A batch: ``raws`` as recorded, standing for ``events`` events (a lifecycle stands
        for several)."""
        n = len(raws)
        with self._cv:
            self.captured += events
            last = self._q[-1] if self._q else None
            if end and (type(last) is _Spill or self._queued + n > self.max_queued):
                if type(last) is _Spill and last.end == start:
                    last.end, last.count = end, last.count + n
                else:
                    self._q.append(_Spill(start, end, n))
            else:
                self._q.append((raws, start, end))
                self._queued += n
            self._cv.notify_all()
        self._tell()

    # -- the engine's side -----------------------------------------------------------------
    @property
    def lag(self) -> int:
        """Events captured (and recorded) that the engine has not taken yet."""
        return self.captured - self.taken

    def take(self, max_events: int = 4096, timeout_s: float = 0.0) -> list[bytes]:
        """Up to about ``max_events`` event payloads in capture order, waiting up to
        ``timeout_s`` for some, lifecycles expanded. Raises what stopped the capture thread,
        once the queue is empty."""
        if self.yield_s:
            self._yield()
        if self.duty < 1 and self._returned and self.busy and not self._flat_out():
            # the engine worked since its last take: rest in proportion while the capture is
            # busy, unless the box has a CPU to spare for it
            rest = (time.monotonic() - self._returned) * (1 - self.duty) / self.duty
            if rest > 0:
                rest = min(rest, self.rest_max_s)
                time.sleep(rest)
                self.yielded_s += rest
        if self._reading is not None:
            return self._read_spill(max_events)
        with self._cv:
            if not self._q and timeout_s > 0 and self.error is None and self.alive:
                self._cv.wait(timeout_s)
            out: list[bytes] = []
            while self._q and len(out) < max_events:
                item = self._q[0]
                if type(item) is _Spill:
                    if out:
                        break
                    self._q.popleft()
                    self._reading = item
                    break
                raws, start, end = item
                room = max_events - len(out)
                if len(raws) > room:
                    # a batch larger than one take: its head now, the rest stays queued (so
                    # the engine comes back often and its duty holds whatever the batch size)
                    part = raws[:room]
                    after = start + sum(_event_frame_len(len(r)) for r in part) if end else 0
                    self._q[0] = (raws[room:], after, end)
                    self._queued -= room
                    out += part
                    self.resume_offset = after
                    break
                self._q.popleft()
                self._queued -= len(raws)
                out += raws
                self.resume_offset = end
            if not out and self._reading is None and not self._q and self.error is not None:
                e, self.error = self.error, None
                raise e
        if self._reading is not None and not out:
            return self._read_spill(max_events)
        out = expand_all(out)       # lifecycles: the events they stand for (analysis' work)
        self.taken += len(out)
        self._returned = time.monotonic() if out else 0.0
        return out

    def _flat_out(self) -> bool:
        """The engine may fold without resting: the capture keeps up and the box has a CPU to
        spare for the engine."""
        backlog = getattr(self.live, "backlog", None)
        if backlog is not None and backlog() > self.spare_backlog:
            return False
        return self.spare.ample()

    def _yield(self) -> None:
        """Let the capture thread have the interpreter while the ring buffer fills up."""
        backlog = getattr(self.live, "backlog", None)
        if backlog is None or not self.busy:
            return
        t0 = time.monotonic()
        end = t0 + self.yield_max_s
        while self.busy and backlog() > self.yield_above and time.monotonic() < end:
            time.sleep(self.yield_s)
        self.yielded_s += time.monotonic() - t0

    def _read_spill(self, max_events: int) -> list[bytes]:
        """Events of the spill being read, from the recording."""
        sp = self._reading
        assert sp is not None
        self.live.flush_through(sp.end)
        if self._reader is None:
            from gewtui.recording import open_recording

            self._reader = open_recording(self.live.record_path)
        if self._walk is None:
            self._walk = self._reader.frames(sp.start)
        from gewtui.recording.reader import event_bytes

        out: list[bytes] = []
        after = 0
        while sp.count and len(out) < max_events:
            got = next(self._walk, None)
            if got is None or got[0] >= sp.end:
                raise RecordingError(f"recording {self.live.record_path}: {sp.count} spilled events "
                                     "could not be read back")
            off, payload = got
            raw = event_bytes(payload)
            if raw is None:
                continue               # a side record (stats, checkpoint, intervention)
            out.append(raw)
            sp.count -= 1
            after = off + _frame_len(len(payload))
        if after:
            self.resume_offset = after
        if not sp.count:
            self._reading = self._walk = None
        out = expand_all(out)
        self.taken += len(out)
        self.spilled += len(out)
        self._returned = time.monotonic() if out else 0.0
        return out

    def close(self) -> None:
        self.stop()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
