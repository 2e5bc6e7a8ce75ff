"""LiveSession: one live session as an event source for `gew session apply`, the TUI and
the shell, built on the transactional Session of gewtui.kernel.session.

    with LiveSession(["netns=gewlab-client"], record="/tmp/s.gewrec") as live:
        while running:
            for ev in live.poll(100):      # L0 events, numbered from 1, already recorded
                ...
            live.stats                     # events, lost, complete, BPF cost, file size

    live.poll_raw(100)                     # the same, as wire bytes (capture: nothing parsed)
    Capture(live).start()                  # or: a thread captures, the caller follows (capture.py)

Opening it: refuse non-root, mount tracefs/bpffs if needed, clean this instance's orphans,
resolve the scope, verify capabilities (unsupported refuses; risky refuses without
allow_risky), run the session transaction, open the recording. Closing it writes the final
SessionStats and SessionEnd records, closes the recording and removes everything the
session put in the kernel. Both are idempotent and safe on every path.

One numbering, one serialization: every event is numbered once, by the plane's decoder
(the session's own marks and scope changes go through it too), and reaches the recording as
the bytes the decoder wrote (the fast path) or as the one ``SerializeToString`` of an event
a unit decoder built. Those same bytes are what ``poll_raw`` returns and the debugger's event
log stores.

One thread polls (``poll``/``poll_raw``/``capture_batch``); the recording writer is shared
with the owner's thread (interventions, engine checkpoints) under ``write_lock``, and the
stats under their own lock. Signal handling is the owner's job.
"""
from __future__ import annotations

import gc
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from gewtui import __version__, securefs
from gewtui.errors import CapabilityError, RecordingError, one_line
from gewtui.kernel.bpffs import CleanupReport, EndDrops, Instance, Log
from gewtui.kernel.scope import ResolvedScope, ScopeEntry, ScopeWatcher, parse_scope, resolve
from gewtui.kernel.session import PlaneFactory, Session, fault_from_env, new_session_id
from gewtui.pb import events_pb2, recording_pb2, session_pb2
from gewtui.recording.lifecycle import expand_all

RECORDINGS_DIR = "/var/lib/gewyvern/recordings"
WATCH_INTERVAL_S = 1.0
# A live session's ring buffer: 64 MiB, ~450k records. On a busy box under normal scheduling
# the capture is runnable but off the CPU for tens to hundreds of ms at a time, and a churn
# workload makes ~100k records/s meanwhile: the 4 MiB kernel-plane default (~0.3 s of that)
# lost records to it, this one lets the capture catch up (bench/bench_churn.py measures it).
RINGBUF_PAGES = 16384


def default_recording_path(session_id: str) -> str:
    return os.path.join(RECORDINGS_DIR, f"{session_id}.gewrec")


@dataclass
class LiveStats:
    session_id: str = ""
    events: int = 0
    lost: int = 0
    produced: int = 0
    consumed: int = 0                            # ring-buffer records taken (produced = consumed + lost)
    rescued: int = 0                             # of them, refused by the ring buffer at first and kept anyway
    complete: bool = True
    incomplete_reason: str = ""
    bpf_run_time_ns: int = 0
    bpf_run_count: int = 0
    recording_path: str = ""
    recording_bytes: int = 0
    open_seconds: float = 0.0                    # how long open() took
    first_event_after_s: float | None = None     # from the start of open() to the first event
    scope_changes: list[str] = field(default_factory=list)

    def to_pb(self) -> session_pb2.SessionStats:
        return session_pb2.SessionStats(
            ktime_ns=time.monotonic_ns(), events=self.events, lost_records=self.lost,
            observation_complete=self.complete, incomplete_reason=self.incomplete_reason,
            bpf_run_time_ns=self.bpf_run_time_ns, bpf_run_count=self.bpf_run_count,
            produced=self.produced, consumed=self.consumed)


def verify_capabilities(plane: Any, allow_risky: bool) -> session_pb2.CapabilityReport:
    """VerifyCompatibility over what this plane will attach (called after stage, before
    attach): the plane's capability report and ``needed_capabilities()`` when it has them,
    else a report for every probe unit and all its needs. Unsupported refuses; risky
    refuses without allow_risky (CapabilityError)."""
    from gewtui.runtime import capabilities

    report = getattr(plane, "capability_report", None)
    needed_fn = getattr(plane, "needed_capabilities", None)
    if report is None:
        from gewtui.kernel import build

        report = build.capability_report()
    if callable(needed_fn):
        needed = list(needed_fn())
    else:
        needed = [c.name for c in report.capabilities if c.needed_by]
    capabilities.verify_compatibility(report, needed, allow_risky=allow_risky)
    return report


class LiveSession:
    def __init__(self, scope: Sequence[str] | Sequence[ScopeEntry] | ResolvedScope | None = None, *,
                 record: str | None = None, instance: str = "default",
                 session_id: str | None = None, allow_risky: bool = False,
                 allow_intervention: bool = False, ringbuf_pages: int | None = None,
                 bpf_stats: bool = False, on_event: Callable[[events_pb2.Event], None] | None = None,
                 plane_factory: PlaneFactory | None = None, fault: str | None = None,
                 log: Log | None = None, gc_on_start: bool = True, require_root: bool = True,
                 verify: Callable[[Any, bool], session_pb2.CapabilityReport] | None = verify_capabilities,
                 end_drops: EndDrops | None = None):
        # end_drops: how orphan cleanup at the start ends a dead session's drops in its
        # recording (gewtui.kernel.bpffs.EndDrops; the CLI passes the intervention log's)
        self.instance = Instance(instance, end_drops=end_drops)
        self.session_id = session_id or new_session_id()
        self._scope_arg = scope
        self.record_path = record
        self.allow_risky = allow_risky
        self.allow_intervention = allow_intervention
        self.ringbuf_pages = ringbuf_pages or RINGBUF_PAGES
        self.bpf_stats = bpf_stats
        self.on_event = on_event
        self.plane_factory = plane_factory
        self.fault = fault if fault is not None else fault_from_env()
        self.log = log or (lambda s: None)
        self.gc_on_start = gc_on_start
        self.require_root = require_root
        self.verify = verify
        self.gc_reports: list[CleanupReport] = []
        self.scope: ResolvedScope | None = None
        self.session: Session | None = None
        self.writer: Any = None
        self.watcher: ScopeWatcher | None = None
        self.inventory: Any = None   # gewtui.kernel.inventory.Inventory once open
        self.capabilities: session_pb2.CapabilityReport | None = None
        self._stats = LiveStats(session_id=self.session_id, recording_path=record or "")
        self._raw: list[bytes] = []             # serialized events not yet written
        self._next_id = 1                       # used only when the plane has no decoder (fakes)
        self._numbering: Any = None             # the plane's decoder: it numbers every event
        self._folded = 0                        # its ``folded`` when the last batch was counted
        self._writer: Any = None
        self.write_lock = threading.RLock()
        self._stats_lock = threading.Lock()
        self.lag_of: Callable[[], int] | None = None   # set by whoever follows the capture
        self._capture: Any = None
        self._t0 = 0.0
        self._next_watch = 0.0
        self._opened = False
        self._closed = False
        self._incomplete: list[str] = []
        self._plane_incomplete = ""

    # -- opening ---------------------------------------------------------------------------
    def _resolve_scope(self) -> ResolvedScope:
        s = self._scope_arg
        if isinstance(s, ResolvedScope):
            return s
        entries = [e for e in (s or ()) if isinstance(e, ScopeEntry)]
        texts = [e for e in (s or ()) if not isinstance(e, ScopeEntry)]
        return resolve(entries + [e for e in parse_scope(texts) if e not in entries])

    def open(self) -> "LiveSession":
        if self._opened:
            return self
        self._t0 = time.monotonic()
        if self.require_root:
            from gewtui.runtime.privileges import require_root

            require_root("gew session apply")
        from gewtui.runtime.mounts import ensure_mounted

        ensure_mounted()
        self.instance.ensure_roots()   # checked at every start: a foreign root stops us here
        if self.gc_on_start:
            self.gc_reports = self.instance.gc(self.log)
        self.scope = self._resolve_scope()
        if self.record_path:
            # The directory is walked without links and checked (gewtui.securefs); the
            # default one, and /var/lib/gewyvern above it, are private (root, 0700).
            d = os.path.dirname(os.path.abspath(self.record_path))
            private = os.path.dirname(RECORDINGS_DIR) if d == RECORDINGS_DIR else None
            os.close(securefs.open_dir(d, create=True, private_below=private))
        self.session = Session(
            self.scope, self.plane_factory, instance=self.instance, session_id=self.session_id,
            recording_path=self.record_path or "", allow_risky=self.allow_risky,
            allow_intervention=self.allow_intervention, ringbuf_pages=self.ringbuf_pages,
            on_event=self._sink, fault=self.fault, log=self.log, before_attach=self._verify,
            bpf_stats=self.bpf_stats)
        self.session.open()
        try:
            dec = getattr(self.session.plane, "decoder", None)
            if dec is not None and hasattr(dec, "raw_sink") and callable(getattr(dec, "emit", None)):
                # one sequence: the decoder numbers kernel records and the session's own events
                self._numbering = dec
                dec.raw_sink = self._raw.append
            self.inventory = _inventory(self.scope, self.log)
            if self.inventory is not None and dec is not None and hasattr(dec, "hooks"):
                # the fast path hands over bytes: it reports cgroups, SYN retransmits and
                # drop sites to the inventory itself instead of see() reading parsed events
                self.inventory.hook(dec)
            if self.record_path:
                from gewtui.recording import RecordingWriter

                self.writer = RecordingWriter(self.record_path, self._header())
            self.watcher = ScopeWatcher(self.scope)
        except BaseException:
            self.session.close()
            raise
        self._opened = True
        self._stats.open_seconds = time.monotonic() - self._t0
        self._next_watch = time.monotonic() + WATCH_INTERVAL_S
        mark = events_pb2.Event(ktime_ns=time.monotonic_ns())
        detail = f"session {self.session_id} scope {self.scope.describe()}"
        skipped = dict(getattr(self.session.plane, "skipped", {}) or {})
        if skipped:
            detail += "; probes not running: " + "; ".join(f"{k} ({v})" for k, v in sorted(skipped.items()))
            for k, v in sorted(skipped.items()):
                self.log(f"session {self.session_id}: probe {k} not running: {v}")
        unwitnessed = dict(getattr(self.session.plane, "witness_refused", {}) or {})
        if unwitnessed:
            # runs the kernel skips without counting them cannot be seen for these programs
            detail += "; no witness of uncounted skips for: " + "; ".join(
                f"{k} ({v})" for k, v in sorted(unwitnessed.items()))
            for k, v in sorted(unwitnessed.items()):
                self.log(f"session {self.session_id}: {k}: runs the kernel skips uncounted cannot be seen: {v}")
        mark.mark.kind, mark.mark.detail = "started", detail
        self._own(mark)
        if self.inventory is not None:
            self.inventory.start(self._own)   # what existed before: flows from the first frame
        # Everything made so far (modules, bcc's tables, the compiled program's objects)
        # lives as long as the session: keep it out of the collector's full passes, which
        # otherwise pause the consumer for 100+ ms once the model's state has grown.
        gc.freeze()
        return self

    def _verify(self, plane: Any) -> None:
        if self.verify is not None:
            self.capabilities = self.verify(plane, self.allow_risky)

    def _header(self) -> recording_pb2.RecordingHeader:
        assert self.session is not None and self.scope is not None
        m = self.session.manifest
        info = session_pb2.SessionInfo(
            instance_id=self.instance.instance_id, session_id=self.session_id,
            owner_pid=m.owner_pid, owner_start_time=m.owner_start_time,
            started_unix_ns=m.started_unix_ns, started_ktime_ns=time.monotonic_ns(),
            scope=self.scope.to_pb(), allow_risky=self.allow_risky,
            allow_intervention=self.allow_intervention, hostname=socket.gethostname(),
            probes=list(getattr(self.session.plane, "programs", [])), tool_version=__version__,
            uid=os.getuid(), tty=_tty())
        h = recording_pb2.RecordingHeader(session=info)
        if self.capabilities is not None:
            h.capabilities.CopyFrom(self.capabilities)
        plane = self.session.plane
        for attr, target in (("drop_reasons", h.drop_reasons), ("reset_reasons", h.reset_reasons)):
            for k, v in dict(getattr(plane, attr, {}) or {}).items():
                target[int(k)] = str(v)
        if self.inventory is not None:
            for inode, (name, lo, hi) in sorted(self.inventory.port_ranges.items()):
                h.port_ranges.add(netns=inode, name=name, lo=lo, hi=hi)
        return h

    # -- the recording writer, shared between the capture and the owner's thread ---------
    @property
    def writer(self) -> Any:
        """The recording writer as other threads use it (every call under ``write_lock``);
        None when the session records nothing or its recording failed."""
        return None if self._writer is None else _Locked(self._writer, self.write_lock)

    @writer.setter
    def writer(self, w: Any) -> None:
        self._writer = w

    def flush_through(self, offset: int) -> None:
        """Make sure the recording's bytes up to ``offset`` are in the file."""
        w = self._writer
        if w is not None and w.bytes_written < offset:
            with self.write_lock:
                w.flush()

    # -- running ---------------------------------------------------------------------------
    def _sink(self, ev: events_pb2.Event) -> None:
        """The plane's event sink (events unit decoders built): serialized once, here."""
        if self.inventory is not None:
            self.inventory.see(ev)
        if self._numbering is None:
            ev.id = self._next_id
            self._next_id += 1
        self._raw.append(ev.SerializeToString())

    def _own(self, ev: events_pb2.Event) -> None:
        """An event the session makes (marks, scope changes): numbered in the one sequence."""
        if self._numbering is not None:
            self._numbering.emit(ev)
        else:
            self._sink(ev)

    def poll(self, timeout_ms: int = 100) -> list[events_pb2.Event]:
        """Drain the kernel into L0 events (recorded, passed to on_event) and return them."""
        raws = self.poll_raw(timeout_ms)
        if not raws:
            return []
        parse = events_pb2.Event.FromString
        out = [parse(r) for r in expand_all(raws)]
        cb = self.on_event
        if cb is not None:
            for ev in out:
                cb(ev)
        return out

    def poll_raw(self, timeout_ms: int = 100) -> list[bytes]:
        """Drain the kernel into the recording; the events' wire bytes, in order."""
        return self.capture_batch(timeout_ms)[0]

    def capture_batch(self, timeout_ms: int = 100) -> tuple[list[bytes], int, int, int]:
        """One capture step: poll the plane, write what came to the recording. Returns the
        events' bytes, the recording's byte range they were written to ((0, 0) when
        nothing records) and how many events they stand for (a lifecycle stands for
        several)."""
        if not self._opened or self._closed:
            return [], 0, 0, 0
        assert self.session is not None and self.session.plane is not None
        self.session.plane.poll(timeout_ms)
        now = time.monotonic()
        if now >= self._next_watch:
            self._next_watch = now + WATCH_INTERVAL_S
            self._tick()
        return self._drain()

    def _tick(self) -> None:
        """Once a second: scope changes, stats, manifest heartbeat, recording flush."""
        assert self.watcher is not None and self.session is not None
        for change in self.watcher.poll():
            ev = events_pb2.Event(ktime_ns=time.monotonic_ns())
            ev.scope_change.CopyFrom(change)
            self._own(ev)
            self._stats.scope_changes.append(change.detail)
            if not change.observation_complete:
                self._incomplete.append(f"scope: {change.detail}")
            self.log(f"session {self.session_id}: scope change: {change.detail}")
        if self.inventory is not None:
            self.inventory.tick(self._own)
        st = self.stats
        self.session.heartbeat(st.events, st.lost, self.lag)
        if self._writer is not None:
            with self.write_lock:
                self._write(self._writer.flush_if_due)

    def start_capture(self, **kw: Any) -> Any:
        """Hand the polling to a capture thread (gewtui.kernel.capture) and return it; the
        caller then follows with ``capture.take`` and never polls itself."""
        from gewtui.kernel.capture import Capture

        cap = Capture(self, **kw)
        self.lag_of = lambda: cap.lag
        self._capture = cap
        return cap.start()

    def backlog(self) -> float:
        """How full the kernel's ring buffer is (0..1): the capture's own lag. The engine
        yields to the capture while this is high (gewtui.kernel.capture)."""
        t = getattr(self.session.plane, "_transport", None) if self.session is not None else None
        size = getattr(t, "size", 0)
        return t.pending() / size if size else 0.0

    @property
    def lag(self) -> int:
        """Events recorded that the engine following this session has not taken yet."""
        f = self.lag_of
        return f() if f is not None else 0

    def _drain(self) -> tuple[list[bytes], int, int, int]:
        out, self._raw = self._raw, []
        dec = self._numbering
        if dec is not None:
            dec.raw_sink = self._raw.append
        if not out:
            return out, 0, 0, 0
        if self._stats.first_event_after_s is None:
            self._stats.first_event_after_s = time.monotonic() - self._t0
        # events inside lifecycles since the last batch: the decoder counts them
        folded = dec.folded if dec is not None else 0
        events = len(out) + folded - self._folded
        self._folded = folded
        self._stats.events += events
        w = self._writer
        if w is None:
            return out, 0, 0, events
        with self.write_lock:
            start = w.next_offset
            self._write(w.write_events_bytes, out)
            return out, start, w.next_offset, events

    def _write(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except RecordingError as e:
            # The recording cannot take more: the observation stops, the file stays readable.
            self._incomplete.append(f"recording failed: {e.message}")
            self.writer = None
            raise

    def events(self, duration: float | None = None, timeout_ms: int = 100) -> Iterator[events_pb2.Event]:
        """Yield events until duration seconds pass (forever if None) or close() is called."""
        end = None if duration is None else time.monotonic() + duration
        while not self._closed and (end is None or time.monotonic() < end):
            yield from self.poll(timeout_ms)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stats(self) -> LiveStats:
        """What the capture knows: events, lost records, completeness. The engine's lag is
        no part of it: a lagging engine loses nothing, so it never makes a session incomplete."""
        with self._stats_lock:
            return self._read_stats()

    def _read_stats(self) -> LiveStats:
        s = self._stats
        plane = self.session.plane if self.session is not None else None
        if plane is not None and self._opened:
            try:
                p = plane.stats()
                s.lost, s.produced, s.consumed = p.lost, p.produced, getattr(p, "consumed", 0)
                s.rescued = getattr(p, "rescued", 0)
                s.bpf_run_time_ns, s.bpf_run_count = p.bpf_run_time_ns, p.bpf_run_count
                self._plane_incomplete = "" if getattr(p, "observation_complete", True) else \
                    (getattr(p, "incomplete_reason", "") or "the kernel plane reports an incomplete observation")
            except Exception as e:  # a stats read must never kill the session
                self.log(f"session {self.session_id}: stats: {e}")
        if self._writer is not None:
            s.recording_bytes = self._writer.bytes_written
        reasons = list(self._incomplete)
        if self._plane_incomplete:
            reasons.insert(0, self._plane_incomplete)
        elif s.lost:
            reasons.insert(0, f"{s.lost} record(s) lost in the kernel")
        s.complete = not reasons
        s.incomplete_reason = "; ".join(reasons)
        return s

    # -- closing ---------------------------------------------------------------------------
    def close(self, how: str = "stopped", detail: str = "") -> None:
        """Write the final stats and end records, close the recording, remove everything."""
        if self._closed:
            return
        self._closed = True
        errors: list[str] = []
        cap = self._capture
        if cap is not None:
            # the capture thread ends after its current poll; the final drain runs here
            cap.stop()
            if cap.alive:
                errors.append("the capture thread did not stop in time")
        try:
            if self._opened and self.session is not None and self.session.plane is not None:
                try:
                    # detach, drain what the kernel produced, final summaries and loss notices
                    stop = getattr(self.session.plane, "stop", None)
                    if callable(stop):
                        stop()
                    else:
                        self.session.plane.poll(0)
                    if self.inventory is not None:
                        self.inventory.end(self._own)
                    raws = self._drain()[0]
                    cb = self.on_event
                    if cb is not None:   # what the session drains while it closes reaches the caller too
                        for r in expand_all(raws):
                            cb(events_pb2.Event.FromString(r))
                except Exception as e:
                    # the end of the observation is unknown: the end records must say so
                    self._incomplete.append(f"final drain failed: {one_line(e)}")
                    errors.append(f"final drain: {e}")
                st = self.stats.to_pb()
                w = self._writer
                if w is not None:
                    try:
                        with self.write_lock:
                            w.write(recording_pb2.Record(stats=st))
                            end = session_pb2.SessionEnd(ktime_ns=time.monotonic_ns(), how=how, detail=detail)
                            end.stats.CopyFrom(st)
                            w.write(recording_pb2.Record(end=end))
                    except RecordingError as e:
                        errors.append(e.message)
        finally:
            try:
                if self._writer is not None:
                    with self.write_lock:
                        self._writer.close()
                    self._stats.recording_bytes = self._writer.bytes_written
            except Exception as e:
                errors.append(f"recording close: {e}")
            finally:
                if self.session is not None:
                    self.session.close()
        for e in errors:
            self.log(f"session {self.session_id}: {e}")

    def __enter__(self) -> "LiveSession":
        try:
            return self.open()
        except BaseException:
            self.close("error")
            raise

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        if et is None:
            self.close("stopped")
        elif issubclass(et, KeyboardInterrupt):
            self.close("sigint")
        else:
            self.close("error", str(ev).splitlines()[0] if str(ev) else et.__name__)


def _inventory(scope: ResolvedScope, log: Log):
    """The start-of-session inventory of the scoped namespaces (gewtui.kernel.inventory)."""
    from gewtui.kernel.inventory import Inventory

    f = scope.filter
    inv = Inventory(scope.netns, f.prefixes, f.ports, log=log)
    try:
        inv.read()
    except Exception as e:   # never fatal: the session observes without an inventory
        log(f"inventory: {one_line(e)}")
        return None
    return inv


def _tty() -> str:
    try:
        return os.ttyname(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError):
        return ""


class _Locked:
    """A RecordingWriter seen from another thread than the capture's: each call under the
    session's lock (``with`` it for several calls that must stay together, such as the parts
    of an engine checkpoint)."""

    __slots__ = ("_w", "lock")

    def __init__(self, w: Any, lock: Any) -> None:
        self._w = w
        self.lock = lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._w, name)
        if not callable(attr):
            return attr
        lock = self.lock

        def locked(*a: Any, **kw: Any) -> Any:
            with lock:
                return attr(*a, **kw)
        return locked

    def __enter__(self) -> Any:
        self.lock.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.lock.release()

    def __eq__(self, other: object) -> bool:
        return (other._w if isinstance(other, _Locked) else other) is self._w

    __hash__ = None  # type: ignore[assignment]
