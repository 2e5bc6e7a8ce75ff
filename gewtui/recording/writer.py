"""The recorder: appends framed records to a recording file at ingest rate.

A live session's capture thread hands every L0 event as the wire bytes the decoder made
(``write_events_bytes``, one call per drained batch; gewtui.kernel.capture), and the
session's own records (interventions, engine checkpoints, stats, end) go to the same
``RecordingWriter`` under the session's lock. Frames are built in a bytearray and written in large chunks;
the buffer goes to the kernel when it passes ``buffer_bytes``, when a write finds the last
flush older than ``flush_interval`` seconds, on ``flush_if_due()`` (the pump calls it on
every poll, so an idle session still flushes within a second), on ``flush()`` and on
``close()``, which also fsyncs. Not thread-safe by itself: the live session serializes its writers with one lock.

A failed write (disk full, EIO) truncates the file back to its last complete frame when it
can, and raises RecordingError saying what happened and how many records were lost; the
writer then refuses further records, and the file stays readable up to that frame.
"""
from __future__ import annotations

import errno
import os
import time
import zlib
from types import TracebackType

from gewtui import __version__, securefs
from gewtui.errors import EX_IOERR, RecordingError
from gewtui.pb import events_pb2, recording_pb2

from gewtui.recording.framing import (
    FORMAT_VERSION, HEADER_MARKER, MAGIC, MARKER, MAX_HEADER_BYTES, MAX_RECORD_BYTES, _U32,
    encode_frame, encode_varint,
)

_EVENT_TAG = b"\x0a"   # Record field 1 (event), wire type 2: a Record holding one Event
# Bound once: the per-record path pays no attribute lookups for them.
_crc32 = zlib.crc32
try:
    from gewtui.recording.framing_native import frame_events as _frame_events
except ImportError:
    _frame_events = None     # not built (a source tree run without installing): Python frames
_monotonic = time.monotonic
_pack_u32 = _U32.pack


class RecordingWriter:
    """Write one recording: ``RecordingWriter(path, header)`` then ``write_event(ev)``...

    An existing file at ``path`` is replaced: the new file (mode 0600) is created under a
    temporary name in the same directory and renamed over it, walking the directory
    without following links (gewtui.securefs), so a link planted at ``path`` is replaced,
    never written through. ``header`` is copied; ``format_version``,
    ``created_unix_ns`` and ``writer`` are filled in when unset. The magic and header reach
    the file before the constructor returns.
    """

    def __init__(self, path: str | os.PathLike[str],
                 header: recording_pb2.RecordingHeader | None = None, *,
                 flush_interval: float = 1.0, buffer_bytes: int = 1 << 20,
                 fsync_on_close: bool = True, _append_at: int | None = None,
                 _fd: int | None = None):
        self.path = os.fspath(path)
        self.flush_interval = flush_interval
        self.buffer_bytes = buffer_bytes
        self.fsync_on_close = fsync_on_close
        self.records = 0           # records accepted (buffered or written)
        self.records_lost = 0      # records not written because of a write failure
        self._buf = bytearray()
        self._heads: dict[int, tuple[bytes, int]] = {}
        self._failed: RecordingError | None = None
        self._closed = False
        self._deadline = time.monotonic() + flush_interval
        self._fd = _create(self.path) if _fd is None else _fd
        if _append_at is not None:
            self._offset = _append_at     # file offset of the end of the last full frame
            try:
                os.ftruncate(self._fd, _append_at)   # drop a torn tail before appending
                os.lseek(self._fd, _append_at, os.SEEK_SET)
            except OSError as e:
                os.close(self._fd)
                raise RecordingError(f"cannot append to {self.path}: {e.strerror}",
                                     code=EX_IOERR) from None
            return
        self._offset = 0
        h = recording_pb2.RecordingHeader()
        if header is not None:
            h.CopyFrom(header)
        if not h.format_version:
            h.format_version = FORMAT_VERSION
        if not h.created_unix_ns:
            h.created_unix_ns = time.time_ns()
            if not h.clock_offset_ns:
                # A fresh header: the events about to be written carry this host's
                # CLOCK_MONOTONIC, so exports can give them wall-clock times.
                h.clock_offset_ns = time.time_ns() - time.monotonic_ns()
        if not h.writer:
            h.writer = f"gew-tui {__version__}"
        payload = h.SerializeToString()
        if len(payload) > MAX_HEADER_BYTES:
            os.close(self._fd)
            raise RecordingError(f"recording header is {len(payload)} bytes, over the "
                                 f"{MAX_HEADER_BYTES}-byte cap")
        self._buf += MAGIC
        self._buf += encode_frame(payload, HEADER_MARKER)
        try:
            self.flush()
        except RecordingError:
            os.close(self._fd)
            self._closed = True
            raise

    @classmethod
    def append(cls, path: str | os.PathLike[str], **kw) -> "RecordingWriter":
        """Reopen an existing recording to add records after its last valid frame.

        A torn tail is cut off first: this is how a killed session's recording gets its
        "ended without cleanup" records.
        """
        from gewtui.recording.reader import RecordingReader

        fd = _open_existing(os.fspath(path))
        try:
            with RecordingReader(path) as r:
                if not os.path.samestat(os.fstat(r._f.fileno()), os.fstat(fd)):
                    raise RecordingError(f"{path}: replaced while being opened", code=EX_IOERR)
                end = r.scan_offsets(every=1 << 62).end_offset
        except BaseException:
            os.close(fd)
            raise
        return cls(path, None, _append_at=end, _fd=fd, **kw)

    # -- writing -------------------------------------------------------------------------

    def write_event(self, ev: events_pb2.Event) -> None:
        """Append one L0 event as a Record."""
        # write_event_bytes inlined: a method call is a tenth of this path's cost.
        p = ev.SerializeToString()
        h = self._heads.get(len(p)) or self._head(len(p))
        buf = self._buf
        buf += h[0]
        buf += p
        buf += _pack_u32(_crc32(p, h[1]))
        self.records += 1
        if len(buf) >= self.buffer_bytes or _monotonic() >= self._deadline:
            self.flush()

    def write_event_bytes(self, event_payload: bytes) -> None:
        """Append an already serialized Event as a Record (the hot path: no Record object
        is built; the Record's tag and length are part of the cached frame head)."""
        h = self._heads.get(len(event_payload)) or self._head(len(event_payload))
        buf = self._buf
        buf += h[0]
        buf += event_payload
        buf += _pack_u32(_crc32(event_payload, h[1]))
        self.records += 1
        if len(buf) >= self.buffer_bytes or _monotonic() >= self._deadline:
            self.flush()

    def write_events_bytes(self, payloads: list[bytes]) -> None:
        """Append already serialized Events, in order (the capture thread's batch: one call
        per ring-buffer drain, the per-event work is the frame head, the bytes and a CRC),
        framed in C (framing_native.c) where the extension is built."""
        if _frame_events is None or type(payloads) is not list:
            self.write_events_bytes_reference(payloads)
            return
        try:
            n = _frame_events(self._buf, payloads, MARKER, _EVENT_TAG, MAX_RECORD_BYTES)
        except ValueError as e:
            raise RecordingError(str(e)) from None
        except TypeError:
            # a payload that is not bytes (nothing of the batch was appended): the Python loop
            self.write_events_bytes_reference(payloads)
            return
        self.records += n
        if len(self._buf) >= self.buffer_bytes or _monotonic() >= self._deadline:
            self.flush()

    def write_events_bytes_reference(self, payloads: list[bytes]) -> None:
        """write_events_bytes in Python: what the C framing must give."""
        heads = self._heads
        head = self._head
        buf = self._buf
        crc32, pack = _crc32, _pack_u32
        for p in payloads:
            h = heads.get(len(p)) or head(len(p))
            buf += h[0]
            buf += p
            buf += pack(crc32(p, h[1]))
        self.records += len(payloads)
        if len(buf) >= self.buffer_bytes or _monotonic() >= self._deadline:
            self.flush()

    def write(self, record: recording_pb2.Record) -> None:
        """Append any Record (intervention, stats, end, or an event)."""
        self.write_record_bytes(record.SerializeToString())

    def write_record_bytes(self, payload: bytes) -> None:
        """Append an already serialized Record."""
        if len(payload) > MAX_RECORD_BYTES:
            raise RecordingError(f"record of {len(payload)} bytes is over the "
                                 f"{MAX_RECORD_BYTES}-byte cap")
        self._buf += encode_frame(payload)
        self.records += 1
        if len(self._buf) >= self.buffer_bytes or _monotonic() >= self._deadline:
            self.flush()

    def _head(self, n: int) -> tuple[bytes, int]:
        """Marker, frame length, Record tag and event length for an n-byte event, with
        their CRC to continue over the event (cached: lengths repeat)."""
        inner = _EVENT_TAG + encode_varint(n)
        if n + len(inner) > MAX_RECORD_BYTES:
            raise RecordingError(f"event of {n} bytes is over the {MAX_RECORD_BYTES}-byte cap")
        head = MARKER + encode_varint(n + len(inner)) + inner
        h = (head, zlib.crc32(head))
        if len(self._heads) < 4096:
            self._heads[n] = h
        return h

    # -- flushing ------------------------------------------------------------------------

    def flush_if_due(self) -> None:
        """Flush when the last flush is older than flush_interval (call it from idle loops)."""
        if self._buf and time.monotonic() >= self._deadline:
            self.flush()

    def flush(self) -> None:
        """Hand every buffered frame to the kernel."""
        self._deadline = time.monotonic() + self.flush_interval
        if not self._buf or self._failed is not None:
            return
        data = self._buf
        written = 0
        try:
            with memoryview(data) as mv:
                while written < len(data):
                    k = os.write(self._fd, mv[written:])
                    if k <= 0:   # pragma: no cover  (regular files do not return 0)
                        raise OSError(errno.EIO, os.strerror(errno.EIO))
                    written += k
        except OSError as e:
            self._fail(e, data, written)
        finally:
            if self._failed is None:
                # Also on an interrupt (Ctrl-C raised between writes): what reached the
                # file is accounted for, the rest stays buffered, nothing is written twice.
                self._offset += written
                # (a copy, not `del data[:written]`: a live traceback may still hold a view)
                self._buf = bytearray() if written == len(data) else data[written:]

    def sync(self) -> None:
        """flush() and fsync: the records so far survive a power loss."""
        self.flush()
        if self._failed is None:
            try:
                os.fsync(self._fd)
            except OSError as e:
                self._fail(e, b"", 0)

    def _fail(self, e: OSError, data: bytearray, written: int) -> None:
        # Keep only whole frames of what reached the file, so readers see no torn frame.
        if self._offset == 0:
            whole = kept = 0       # not even the magic and header made it
            pending = 0
        else:
            whole, kept = _whole_frames(data, written)
            pending = _whole_frames(data, len(data))[1]
        end = self._offset + whole
        try:
            os.ftruncate(self._fd, end)
            state = f"the file is readable up to byte {end}"
        except OSError:
            end = self._offset + written
            state = f"the file ends in a torn frame after byte {self._offset + whole}"
        self._offset = end
        self.records_lost += pending - kept
        self._buf = bytearray()
        why = e.strerror or str(e)
        self._failed = RecordingError(
            f"recording {self.path}: write failed ({why}); {self.records_lost} record(s) "
            f"not written; {state}", code=EX_IOERR)
        # From now on every write is refused; swapping the methods keeps that check
        # out of the per-record path.
        self.write_event = self.write_event_bytes = self.write_record_bytes = self._refuse  # type: ignore[method-assign]
        self.write_events_bytes = self._refuse_all  # type: ignore[method-assign]
        raise self._failed

    def _refuse(self, payload: object = None) -> None:
        self.records_lost += 1
        assert self._failed is not None
        raise RecordingError(self._failed.message, code=self._failed.code)

    def _refuse_all(self, payloads: list[bytes]) -> None:
        self.records_lost += len(payloads) - 1
        self._refuse()

    @property
    def failed(self) -> RecordingError | None:
        """The write failure that stopped this writer, if any."""
        return self._failed

    @property
    def next_offset(self) -> int:
        """File offset at which the next record's frame will start (buffered bytes counted)."""
        return self._offset + len(self._buf)

    @property
    def bytes_written(self) -> int:
        """Bytes in the file (flushed frames), header included."""
        return self._offset

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Flush, fsync and close. Idempotent; after a write failure it only closes."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._failed is None:
                self.flush()
                if self.fsync_on_close:
                    self.sync()
        finally:
            os.close(self._fd)

    def __enter__(self) -> "RecordingWriter":
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _create(path: str) -> int:
    """A new, empty recording file at ``path`` (0600, replacing what is there)."""
    d, name = securefs.split(path)
    try:
        with securefs.dir_fd(d) as dfd:
            return securefs.create_file(dfd, name, replace=True)
    except OSError as e:
        raise RecordingError(f"cannot open recording {path}: {e.strerror}"
                             + (f" ({securefs.show(e.filename)})" if e.filename and e.filename != path else ""),
                             code=EX_IOERR) from None


def _open_existing(path: str) -> int:
    """An existing recording reopened to append: a regular file with one link, reached
    without following a link (a planted one is refused, its target untouched)."""
    d, name = securefs.split(path)
    try:
        with securefs.dir_fd(d) as dfd:
            return securefs.open_existing(dfd, name, os.O_WRONLY, shown=path)
    except OSError as e:
        raise RecordingError(f"cannot append to {path}: {e.strerror}", code=EX_IOERR) from None


def _whole_frames(data: bytes | bytearray, limit: int) -> tuple[int, int]:
    """(bytes, count) of the complete frames at the start of ``data[:limit]``.

    ``data`` is the writer's own buffer of well-formed record frames, so only the lengths
    need reading; CRCs were computed by us.
    """
    pos = count = 0
    while True:
        i = pos + len(MARKER)
        length = shift = 0
        while i < limit:
            b = data[i]
            i += 1
            length |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        else:
            return pos, count
        end = i + length + 4
        if end > limit:
            return pos, count
        pos = end
        count += 1
