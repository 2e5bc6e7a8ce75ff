"""Engine checkpoints inside a recording: written between the records, found without
reading the events, loaded part by part.

Place in the pipeline: whoever folds a session's events (the debugger's head engine on a
live session, ``gew recording index`` offline) appends ``EngineCheckpoint`` records with
``write_checkpoint``; a replay calls ``find_checkpoints`` when it opens the file and
``load_state`` when it jumps. This module only moves bytes: what the state means is
gewtui.model.persist's business, and the debugger decides whether one is usable.

Finding them does not parse events. A record frame is ``marker | varint length | payload``
and a checkpoint's payload starts with the Record tag of field 5 (0x2A) where an event's
starts with 0x0A, so one regular-expression pass over the file's bytes (C speed, about a
millisecond per MiB here) lists every candidate frame; each candidate counts only once its
CRC matches and its record decodes, as everywhere else in the format. A checkpoint whose
parts are not all intact is ignored, never half-used.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from gewtui.errors import RecordingError
from gewtui.pb import recording_pb2
from gewtui.recording.framing import MARKER, READ_CHUNK, _Bad, _CrcBudget, parse_frame

# State bytes per frame: well under a record's cap, so a part never nears it.
PART_BYTES = 1 << 20
# A frame head whose payload is a Record with field 5 (checkpoint), length-delimited.
_HEAD = re.compile(re.escape(MARKER) + rb"[\x80-\xff]{0,9}[\x00-\x7f]\x2a")
_MAX_HEAD = len(MARKER) + 10 + 1
# A part's frame: its state bytes and the checkpoint's few fields (the last event among them).
_PART_CAP = PART_BYTES + (1 << 16)
# Parts of one state: a stored state is at most 64 MiB (gewtui.model.persist.MAX_STORED), so
# a checkpoint claiming more is never read into memory.
MAX_PARTS = 80
# False checkpoint heads (a head whose frame is not an intact checkpoint) a scan looks at
# before it gives up: a real file has none outside the states it skips.
MAX_FALSE_HEADS = 1000


@dataclass(frozen=True)
class CheckpointRef:
    """One checkpoint found in a recording (its state not read yet)."""

    offset: int            # byte offset of its first part
    events: int            # events before it: the position it restores
    last_event_id: int
    last_ktime_ns: int
    last_event: bytes      # the last of those events, serialized
    first_ktime_ns: int
    resume_offset: int     # where the events after it start
    model: str
    templates: str
    parts: tuple[tuple[int, int], ...]   # (offset, frame length) of each part, in order


def write_checkpoint(writer: Any, state: bytes, *, events: int, last_event: Any,
                     first_ktime_ns: int, model: str, templates: str, prev_offset: int = 0,
                     resume_offset: int = 0) -> int:
    """Append one checkpoint (as many frames as the state needs) to a RecordingWriter and
    return the byte offset of its first part. ``resume_offset`` 0 means the events after
    it follow it in the file (a checkpoint written in the stream)."""
    first = writer.next_offset
    chunks = [state[i:i + PART_BYTES] for i in range(0, len(state), PART_BYTES)] or [b""]
    raw_last = last_event.SerializeToString() if last_event is not None else b""
    for i, chunk in enumerate(chunks):
        cp = recording_pb2.EngineCheckpoint(
            events=events, last_event_id=last_event.id if last_event is not None else 0,
            last_ktime_ns=last_event.ktime_ns if last_event is not None else 0,
            first_ktime_ns=first_ktime_ns, resume_offset=resume_offset, prev_offset=prev_offset,
            model=model, templates=templates, part=i, parts=len(chunks),
            first_offset=first if i else 0, state=chunk)
        if i == 0:
            cp.last_event = raw_last
        writer.write(recording_pb2.Record(checkpoint=cp))
    return first


def _frame_at(fd: int, off: int, size: int) -> tuple[int, recording_pb2.EngineCheckpoint] | int:
    """The checkpoint part whose frame starts at ``off`` (its frame length too), or, when no
    intact checkpoint frame starts there, the bytes read and checksummed to find that out.
    The head is read first and only the length it claims after it (never more than a part
    may be), so a false head costs what it claims, not a megabyte."""
    try:
        buf = os.pread(fd, _MAX_HEAD, off)
        got = parse_frame(buf, 0, _PART_CAP)
        if type(got) is int:
            need = len(buf) + got
            if off + need > size:
                return len(buf)
            buf = os.pread(fd, need, off)
            got = parse_frame(buf, 0, _PART_CAP)
            if type(got) is int:
                return len(buf)
        rec = recording_pb2.Record.FromString(buf[got[0]:got[1]])
    except _Bad as e:
        return max(e.work, len(buf))
    except (DecodeError, RecursionError, ValueError, MemoryError, OverflowError):
        return len(buf)
    except OSError as e:
        raise RecordingError(f"read failed: {e.strerror or e}") from None
    if rec.WhichOneof("body") != "checkpoint":
        return len(buf)
    return got[1] + 4, rec.checkpoint


def find_checkpoints(reader: Any) -> list[CheckpointRef]:
    """Every intact checkpoint in an open RecordingReader, by position (one per position:
    the last written wins). Reads the file once, decodes only checkpoint frames.

    A crafted file can hold a false checkpoint head every few bytes: at most
    ``MAX_FALSE_HEADS`` of them are looked at, and the bytes checksummed for them stay
    within the reader's budget for false frames (a multiple of the bytes walked), so
    RecordingError ends a hostile scan and the replay folds its events instead."""
    fd = reader._f.fileno()
    size = os.fstat(fd).st_size
    parts: list[tuple[int, int, recording_pb2.EngineCheckpoint]] = []
    off = reader.data_start
    name = getattr(reader, "path", "recording")
    budget = _CrcBudget(off, _PART_CAP, str(name))
    false_heads = 0
    seen = -1
    while off < size:
        buf = os.pread(fd, READ_CHUNK + _MAX_HEAD, off)
        if not buf:
            break
        for m in _HEAD.finditer(buf):
            at = off + m.start()
            if m.start() >= READ_CHUNK or at <= seen:
                continue
            got = _frame_at(fd, at, size)
            if type(got) is int:
                false_heads += 1
                if false_heads > MAX_FALSE_HEADS:
                    raise RecordingError(f"{name}: more than {MAX_FALSE_HEADS} false checkpoint "
                                         "heads: stored checkpoints not read")
                budget.spend(got + 64, at)
                continue
            parts.append((at, got[0], got[1]))
            seen = at + got[0] - 1      # a marker inside this part's state is not a frame
        off += READ_CHUNK
    return _assemble(parts)


def _assemble(parts: list[tuple[int, int, recording_pb2.EngineCheckpoint]]) -> list[CheckpointRef]:
    by_pos: dict[int, CheckpointRef] = {}
    i = 0
    while i < len(parts):
        at, length, cp = parts[i]
        n = cp.parts
        group = parts[i:i + n]
        i += 1
        if cp.part != 0 or not 1 <= n <= MAX_PARTS or len(group) < n:
            continue
        ok = all(g[2].part == k and g[2].parts == n and g[2].first_offset == (at if k else 0)
                 and g[0] == (group[k - 1][0] + group[k - 1][1] if k else at)
                 for k, g in enumerate(group))
        if not ok:
            continue
        i += n - 1
        end = group[-1][0] + group[-1][1]
        by_pos[cp.events] = CheckpointRef(
            at, cp.events, cp.last_event_id, cp.last_ktime_ns, bytes(cp.last_event),
            cp.first_ktime_ns, cp.resume_offset or end, cp.model, cp.templates,
            tuple((g[0], g[1]) for g in group))
    return [by_pos[k] for k in sorted(by_pos)]


def load_state(reader: Any, ref: CheckpointRef) -> bytes:
    """The state bytes of a checkpoint, every part checked again (RecordingError if the
    file changed under us)."""
    fd = reader._f.fileno()
    size = os.fstat(fd).st_size
    out = []
    for k, (at, _) in enumerate(ref.parts):
        got = _frame_at(fd, at, size)
        if type(got) is int or got[1].part != k or got[1].events != ref.events:
            raise RecordingError(f"{reader.path}: checkpoint at byte {ref.offset} no longer reads back")
        out.append(got[1].state)
    return b"".join(out)
