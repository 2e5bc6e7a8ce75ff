"""The replay side: stream a recording's records in bounded memory, whatever state it is in.

Replay (the debugger, the shell, ``gew export``) opens a file with ``open_recording`` and
iterates. Opening checks the magic and the header and raises RecordingError (one line) when
the file is not a recording or its header is damaged. Iterating never raises for damage
after the header: damaged frames are skipped and counted, a torn tail is measured, and
``reader.report`` (a ReadReport) says what the most recently started iteration found, final
once it is exhausted. Iterations are independent (positional reads): several may be in
progress on one reader. With
``strict=True`` the first damaged region raises RecordingError instead. Protobuf errors,
nesting bombs included, never escape as anything but RecordingError or a counted skip.

Random access: ``scan_offsets(every=N)`` walks the frames without decoding them (about a
second per million records) and returns the offset of every Nth record; any of those
offsets can be passed as ``start=`` to the iterators.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, Iterator

from google.protobuf.message import DecodeError

from gewtui import securefs
from gewtui.errors import EX_NOINPUT, RecordingError, one_line
from gewtui.pb import events_pb2, recording_pb2
from gewtui.recording.lifecycle import expand, is_lifecycle
from gewtui.recording.framing import (
    HEADER_MARKER, MAGIC, MAX_HEADER_BYTES, READ_CHUNK, ReadReport, _Bad, check_magic, parse_frame,
    walk_frames,
)

# What a hostile or damaged payload can make protobuf raise. upb raises DecodeError for
# nesting deeper than its limit; the others are there for other protobuf backends.
_DECODE_ERRORS = (DecodeError, RecursionError, ValueError, MemoryError, OverflowError)


@dataclass(frozen=True)
class RecordIndex:
    """Frame offsets from ``scan_offsets``: ``offsets[k]`` is where record ``k*every`` starts."""

    offsets: list[int]
    every: int
    records: int          # valid frames in the file
    end_offset: int       # just after the last valid frame
    report: ReadReport


class RecordingReader:
    """A recording opened for reading. Iterate it for Records; see the module docstring."""

    def __init__(self, path: str | os.PathLike[str], *, strict: bool = False,
                 chunk_size: int = READ_CHUNK):
        self.path = os.fspath(path)
        self.strict = strict
        self.chunk_size = chunk_size
        self.report = ReadReport()
        try:
            # A FIFO, device or directory is refused at once (opened O_NONBLOCK, then fstat):
            # a recording given by name must not block the reader or stream forever.
            fd = securefs.open_input(self.path)
        except securefs.InputRefused as e:
            raise RecordingError(e.message, code=EX_NOINPUT) from None
        self._f: BinaryIO = os.fdopen(fd, "rb", buffering=0)
        try:
            self.header, self.data_start = self._read_header()
        except BaseException:
            self._f.close()
            raise

    def _read_header(self) -> tuple[recording_pb2.RecordingHeader, int]:
        try:
            buf = self._f.read(max(self.chunk_size, len(MAGIC) + 16))
            check_magic(buf, self.path)
            while True:
                try:
                    got = parse_frame(buf, len(MAGIC), MAX_HEADER_BYTES, HEADER_MARKER)
                except _Bad as e:
                    raise RecordingError(f"{self.path}: header damaged ({e})") from None
                if type(got) is tuple:
                    break
                more = self._f.read(max(self.chunk_size, got))
                if not more:
                    raise RecordingError(f"{self.path}: truncated inside the header")
                buf += more
        except OSError as e:
            raise RecordingError(f"{self.path}: read failed: {e.strerror}") from None
        q, end = got
        try:
            header = recording_pb2.RecordingHeader.FromString(buf[q:end])
        except _DECODE_ERRORS as e:
            raise RecordingError(f"{self.path}: header undecodable ({one_line(e)})") from None
        return header, end + 4

    # -- iteration -----------------------------------------------------------------------

    def frames(self, start: int | None = None, report: ReadReport | None = None
               ) -> Iterator[tuple[int, bytes]]:
        """(offset, payload) of every valid frame, payloads not decoded. Starts a new
        ``report`` (or fills the given one, leaving ``self.report`` alone). Iterations are
        independent: several may be in progress at once."""
        if report is None:
            report = self.report = ReadReport()
        return self._walk(start, report)

    def _walk(self, start: int | None, report: ReadReport) -> Iterator[tuple[int, bytes]]:
        return walk_frames(self._f.fileno(), self.data_start if start is None else start,
                           report, strict=self.strict, name=self.path, chunk=self.chunk_size)

    def records_with_offsets(self, start: int | None = None
                             ) -> Iterator[tuple[int, recording_pb2.Record]]:
        """(frame offset, Record) for every record from ``start`` (a frame offset). A
        lifecycle record gives one event Record for each event it stands for, all at its
        offset (gewtui.recording.lifecycle)."""
        parse = recording_pb2.Record.FromString
        parse_event = events_pb2.Event.FromString
        frames = self.frames(start)
        report = self.report
        for off, payload in frames:
            try:
                rec = parse(payload)
                lives = None
                if rec.HasField("event") and rec.event.HasField("lifecycle"):
                    lives = [recording_pb2.Record(event=parse_event(r))
                             for r in expand(rec.event.SerializeToString())]
            except _DECODE_ERRORS as e:
                self._undecodable(report, off, len(payload), e)
                continue
            report.records += 1
            if lives is not None:
                for r in lives:
                    yield off, r
                continue
            yield off, rec

    def records(self, start: int | None = None) -> Iterator[recording_pb2.Record]:
        """Every Record from ``start`` (a frame offset; default: the first record)."""
        for _, rec in self.records_with_offsets(start):
            yield rec

    __iter__ = records

    def iter_events(self, start: int | None = None) -> Iterator[events_pb2.Event]:
        """Only the L0 events, in order: what replay feeds the observation plane. A
        lifecycle record gives the events it stands for (gewtui.recording.lifecycle).

        A payload that is exactly one Record.event field (what the writer produces) is
        decoded as an Event directly, skipping the Record wrapper; anything else goes
        through Record so protobuf's merge rules still decide what it means.
        """
        parse_event = events_pb2.Event.FromString
        parse_record = recording_pb2.Record.FromString
        frames = self.frames(start)
        report = self.report
        for off, payload in frames:
            n = len(payload)
            try:
                raw = event_bytes(payload)
                if raw is not None:
                    if is_lifecycle(raw):
                        evs = [parse_event(r) for r in expand(raw)]
                        report.records += 1
                        yield from evs
                        continue
                    ev = parse_event(raw)
                    report.records += 1
                    yield ev
                    continue
                rec = parse_record(payload)
                if rec.HasField("event") and rec.event.HasField("lifecycle"):
                    evs = [parse_event(r) for r in expand(rec.event.SerializeToString())]
                    report.records += 1
                    yield from evs
                    continue
            except _DECODE_ERRORS as e:
                self._undecodable(report, off, n, e)
                continue
            report.records += 1
            if rec.HasField("event"):
                yield rec.event

    def _undecodable(self, report: ReadReport, off: int, n: int, e: BaseException) -> None:
        # The CRC matched, so the framing is sound: the payload itself is foreign or hostile.
        why = f"undecodable record ({one_line(e)})"
        if self.strict:
            raise RecordingError(f"{self.path}: {why} at byte {off}")
        report.add_region(off, n, why, 1)

    # -- random access -------------------------------------------------------------------

    def scan_offsets(self, every: int = 1024) -> RecordIndex:
        """Walk every frame (no decoding) and keep the offset of each ``every``-th one.
        The scan's findings are in the index's own report; ``self.report`` is untouched."""
        if every < 1:
            raise ValueError("every must be >= 1")
        offsets: list[int] = []
        count = 0
        report = ReadReport()
        for off, _ in self._walk(None, report):
            if count % every == 0:
                offsets.append(off)
            count += 1
        report.records = count
        return RecordIndex(offsets, every, count, report.end_offset, report)

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "RecordingReader":
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def event_bytes(payload: bytes) -> bytes | None:
    """The serialized Event when a Record payload is exactly one ``event`` field (what the
    writer produces), else None (decode it as a Record: protobuf's merge rules decide)."""
    n = len(payload)
    if n > 2 and payload[0] == 0x0A:
        b1 = payload[1]
        if b1 < 0x80:
            if n == b1 + 2:
                return payload[2:]
        elif n > 3 and payload[2] < 0x80 and n == (b1 & 0x7F) + (payload[2] << 7) + 3:
            return payload[3:]
    return None


def open_recording(path: str | os.PathLike[str], *, strict: bool = False) -> RecordingReader:
    """Open a recording for reading (RecordingError if it is not one)."""
    return RecordingReader(path, strict=strict)
