"""Recording files: the framed, checksummed on-disk form of a session (see
docs/recording-format.md). The recorder writes them at ingest rate; replay, the shell and
``gew export`` read them in bounded memory, whatever state a crash or a disk left them in.

Pure Python over gewtui.pb: no root, no bcc, no UI imports.
"""
from gewtui.recording.framing import (
    FORMAT_VERSION, MAGIC, MAX_HEADER_BYTES, MAX_RECORD_BYTES, ReadReport, SkippedRegion,
)
from gewtui.recording.reader import RecordIndex, RecordingReader, open_recording
from gewtui.recording.writer import RecordingWriter

__all__ = [
    "FORMAT_VERSION", "MAGIC", "MAX_HEADER_BYTES", "MAX_RECORD_BYTES", "ReadReport",
    "RecordIndex", "RecordingReader", "RecordingWriter", "SkippedRegion", "open_recording",
]
