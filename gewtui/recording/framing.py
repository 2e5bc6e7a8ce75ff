"""The recording file's byte layout: magic, frames, limits, and the frame walker.

A recording is ``MAGIC`` followed by frames. The first frame holds a ``RecordingHeader``
and starts with ``HEADER_MARKER``; every later one holds a ``Record``
(gewtui/pb/recording_pb2) and starts with ``MARKER``. A frame is::

    marker (4 bytes) | length (varint, 1..10 bytes) | payload (length bytes) | crc32 (4 bytes LE)

The CRC (zlib.crc32) covers the marker, the length bytes and the payload. The marker lets a
reader find the next frame after damage; a frame only counts once its CRC matches, so a
marker-like byte sequence inside a payload never produces a record, and since the marker is
covered, a header frame can never pass for a record frame (or the reverse). ``walk_frames`` is the one place that
parses frames: the reader, the index scan and append-mode recovery all use it. It never
holds more than one read chunk plus one maximal frame in memory.
docs/recording-format.md describes the format for people; this module is the definition.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
import os
from typing import Iterator

from gewtui.errors import RecordingError

# The last byte is the format version; readers refuse versions they do not know.
FORMAT_VERSION = 1
MAGIC_PREFIX = b"GEWREC\x00"
MAGIC = MAGIC_PREFIX + bytes((FORMAT_VERSION,))
# 0xF7 is not a valid protobuf tag byte (wire type 7), so the marker rarely occurs by chance.
MARKER = b"\xf7GW\x1e"
# The header frame has its own marker, so a header met among records (two files
# concatenated, a duplicated block) is never taken for a record.
HEADER_MARKER = b"\xf7GH\x1e"
MAX_VARINT_BYTES = 10
MAX_RECORD_BYTES = 4 << 20   # one Record payload
MAX_HEADER_BYTES = 1 << 20   # the RecordingHeader payload
CRC_BYTES = 4
READ_CHUNK = 1 << 20
# Damaged regions kept with their offsets in a ReadReport; beyond this only counted,
# so a file full of garbage cannot make the report itself unbounded.
MAX_REPORTED_REGIONS = 1000

_U32 = struct.Struct("<I")


def encode_varint(n: int) -> bytes:
    """Base-128 varint, as protobuf writes lengths."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_frame(payload: bytes, marker: bytes = MARKER) -> bytes:
    """One complete frame around ``payload`` (the writer has a faster path for events)."""
    head = marker + encode_varint(len(payload))
    return head + payload + _U32.pack(zlib.crc32(payload, zlib.crc32(head)))


@dataclass(frozen=True)
class SkippedRegion:
    """Bytes the reader could not use, followed by a valid frame."""

    offset: int
    length: int
    reason: str
    frames: int   # damaged frames in it, counted by their sync markers (at least 1)


@dataclass
class ReadReport:
    """What a pass over a recording found. Updated while iterating; final once exhausted."""

    records: int = 0            # records yielded (or frames visited, for an index scan)
    torn_tail_bytes: int = 0    # bytes after the last valid frame that no valid frame follows
    skipped_bytes: int = 0      # bytes in damaged regions that a valid frame follows
    skipped_records: int = 0    # damaged or undecodable frames in those regions
    skipped_regions: list[SkippedRegion] = field(default_factory=list)
    regions_not_listed: int = 0  # regions beyond MAX_REPORTED_REGIONS (counted, not listed)
    end_offset: int = 0         # file offset just after the last valid frame
    complete: bool = False      # the pass reached the end of the file

    @property
    def clean(self) -> bool:
        return not (self.torn_tail_bytes or self.skipped_bytes or self.skipped_records)

    def add_region(self, offset: int, length: int, reason: str, frames: int) -> None:
        self.skipped_bytes += length
        self.skipped_records += max(1, frames)
        if len(self.skipped_regions) < MAX_REPORTED_REGIONS:
            self.skipped_regions.append(SkippedRegion(offset, length, reason, max(1, frames)))
        else:
            self.regions_not_listed += 1

    def summary(self) -> str:
        """One line naming the damage, empty when the pass was clean."""
        parts = []
        if self.skipped_records:
            n = len(self.skipped_regions) + self.regions_not_listed
            first = self.skipped_regions[0] if self.skipped_regions else None
            why = f", first at byte {first.offset}: {first.reason}" if first else ""
            parts.append(f"{self.skipped_records} damaged record(s) skipped in {n} region(s), "
                         f"{self.skipped_bytes} bytes{why}")
        if self.torn_tail_bytes:
            parts.append(f"torn tail, {self.torn_tail_bytes} bytes ignored")
        return "; ".join(parts)


class _Bad(Exception):
    """A frame that is not valid where it stands (internal; becomes a skipped region).
    ``work`` is the number of bytes checksummed to find out."""

    def __init__(self, why: str, work: int = 0):
        super().__init__(why)
        self.work = work


class _CrcBudget:
    """Checksum work spent on false frame starts, held to a multiple of the bytes walked.

    Without it a crafted file (a marker every few bytes, each claiming a length near the
    cap) would cost a multi-megabyte CRC per few bytes of file: quadratic time. Real damage
    stays far below the budget; a file that exceeds it is refused as hostile.
    """

    PER_BYTE = 16

    def __init__(self, start: int, cap: int, name: str):
        self.start, self.allowance, self.name = start, 4 * cap, name
        self.spent = 0

    def spend(self, work: int, at: int) -> None:
        self.spent += work
        if self.spent > self.allowance + self.PER_BYTE * (at - self.start):
            raise RecordingError(f"{self.name}: hostile framing near byte {at}: false frame "
                                 "starts claiming large lengths, reading stopped")


def parse_frame(buf: bytes, pos: int, cap: int, marker: bytes = MARKER) -> tuple[int, int] | int:
    """Check the frame starting at ``buf[pos]``.

    Returns (payload start, payload end) when the frame is complete and its CRC matches;
    the number of bytes still missing (> 0) when ``buf`` ends before the frame does; and
    raises ``_Bad`` when no frame can start here. A length is judged against ``cap`` as
    soon as its varint is read, so a hostile length never causes a read or allocation.
    """
    n = len(buf)
    head = buf[pos:pos + 4]
    if head != marker:
        if len(head) < 4 and marker.startswith(head):
            return 5 - len(head)
        raise _Bad("no sync marker")
    i = pos + 4
    length = 0
    shift = 0
    while True:
        if i >= n:
            return 1
        b = buf[i]
        i += 1
        length |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if i - pos - 4 >= MAX_VARINT_BYTES:
            raise _Bad("overlong length varint")
    if length > cap:
        raise _Bad(f"length {length} over the {cap}-byte cap")
    end = i + length
    if end + CRC_BYTES > n:
        return end + CRC_BYTES - n
    if zlib.crc32(buf[pos:end]) != _U32.unpack_from(buf, end)[0]:
        raise _Bad("checksum mismatch", end - pos)
    return i, end


def walk_frames(fd: int, start: int, report: ReadReport, *,
                strict: bool = False, name: str = "recording",
                cap: int = MAX_RECORD_BYTES, chunk: int = READ_CHUNK,
                ) -> Iterator[tuple[int, bytes]]:
    """Yield (file offset, payload) for each valid frame of file descriptor ``fd`` from
    ``start`` to the end of file. Positional reads only (the descriptor's offset is never
    used), so any number of walks over one descriptor can be in progress at once.

    Damage followed by a valid frame becomes a SkippedRegion in ``report`` (or, when
    ``strict``, a RecordingError naming ``name``); bytes after the last valid frame with no
    valid frame after them become ``report.torn_tail_bytes``.
    """
    pos = 0
    base = start        # file offset of buf[0]
    budget = _CrcBudget(start, cap, name)
    try:
        buf = os.pread(fd, chunk, start)
        eof = False
        marker = MARKER
        crc32 = zlib.crc32
        u32 = _U32.unpack_from
        while True:
            # Fast path: well-formed frames with one-byte lengths, all inside the buffer.
            # `pos` moves past a frame before it is yielded, so on an early close the
            # finally clause below reports the end of the last frame handed out.
            n = len(buf)
            while pos + 5 <= n and buf[pos:pos + 4] == marker:
                ln = buf[pos + 4]
                if ln >= 0x80:
                    break
                at = pos
                end = pos + 5 + ln
                if end + 4 > n or crc32(buf[at:end]) != u32(buf, end)[0]:
                    break
                pos = end + 4
                yield base + at, buf[at + 5:end]
            # General path: long lengths, a frame crossing the buffer end, damage, the end.
            bad = ""
            try:
                got = parse_frame(buf, pos, cap)
            except _Bad as e:
                bad = str(e)
                budget.spend(e.work, base + pos)
                got = 0
            if type(got) is tuple:
                at = pos
                pos = got[1] + 4
                yield base + at, buf[got[0]:got[1]]
                continue
            if not bad:
                if not eof:
                    more = os.pread(fd, max(chunk, got), base + len(buf))
                    if more:
                        buf = buf[pos:] + more
                        base += pos
                        pos = 0
                        continue
                    eof = True
                if pos >= len(buf):
                    report.complete = True
                    return
                bad = "frame runs past the end of the file"
            # Damage at `pos`, or an incomplete frame at the end of the file: find the next
            # valid frame, or call the rest a torn tail.
            found = _resync(fd, buf, base, pos, eof, cap, chunk, report, bad, budget)
            if found is None:
                report.complete = True
                return
            if strict:
                r = report.skipped_regions[-1]
                raise RecordingError(f"{name}: damaged at byte {r.offset}: {r.reason}")
            buf, base, pos, eof = found
    except OSError as e:
        raise RecordingError(f"{name}: read failed: {e.strerror or e}") from None
    finally:
        report.end_offset = base + pos


def _resync(fd: int, buf: bytes, base: int, pos: int, eof: bool, cap: int, chunk: int,
            report: ReadReport, reason: str, budget: _CrcBudget,
            ) -> tuple[bytes, int, int, bool] | None:
    """Search from ``pos + 1`` for a marker that starts a valid frame.

    Returns the new (buf, base, pos, eof) positioned on that frame after recording the
    region, or None after recording a torn tail. Memory stays within one chunk plus one
    frame: bytes already searched are dropped as the search moves on.
    """
    damage_at = base + pos
    frames = 1 if buf[pos:pos + 4] == MARKER else 0
    s = pos + 1
    while True:
        i = buf.find(MARKER, s)
        if i < 0:
            if eof:
                report.torn_tail_bytes += base + len(buf) - damage_at
                return None
            keep = max(s, len(buf) - 3)   # a marker may straddle the chunk boundary
            more = os.pread(fd, chunk, base + len(buf))
            if not more:
                eof = True
            buf = buf[keep:] + more
            base += keep
            s = 0
            continue
        try:
            got = parse_frame(buf, i, cap)
        except _Bad as e:
            budget.spend(e.work, base + i)
            frames += 1
            s = i + 1
            continue
        if type(got) is int:
            if not eof:
                more = os.pread(fd, max(chunk, got), base + len(buf))
                if more:
                    buf = buf[i:] + more
                    base += i
                    s = 0
                    continue
                eof = True
            frames += 1   # cannot complete before the end of the file: not a frame
            s = i + 1
            continue
        report.add_region(damage_at, base + i - damage_at, reason, frames)
        return buf, base, i, eof


def _describe_start(data: bytes) -> str:
    """Describe the first bytes of a file that is not a recording, for an error line."""
    head = data[:8]
    if not head:
        return "empty file"
    if head.startswith(MAGIC_PREFIX) and len(head) == 8:
        return f"format version {head[7]}, this build reads version {FORMAT_VERSION}"
    return "no gew recording magic at the start"


def check_magic(data: bytes, path: str) -> None:
    """Raise RecordingError unless ``data`` starts with this build's magic."""
    if data[:8] != MAGIC:
        raise RecordingError(f"{path}: not a gew recording ({_describe_start(data)})")
