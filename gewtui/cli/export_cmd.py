"""``gew export FILE``: read a recording offline (no root) and print one layer of it.

events and interventions come straight from the recording; flows and reasons are computed
by replaying the events through the observation plane (gewtui.model), exactly as the
debugger does. Damage is reported after the output: a torn tail (the normal end of a
killed session) is one warning line and exit 0; damaged records that had to be skipped
make the output incomplete, so they end in one error line and exit 65.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Iterable, Iterator

from gewtui.errors import EX_DATAERR, GewError, RecordingError

EPILOG = """\
examples:
  gew export /tmp/s.gewrec                      every event, one line each
  gew export /tmp/s.gewrec --json | jq .        the same as JSON lines (protobuf JSON mapping)
  gew export /tmp/s.gewrec --what flows --at 1200 --json   flows as of event #1200
"""

WHAT = ("events", "flows", "reasons", "interventions")


def add_arguments(p: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("file", metavar="FILE", help="a recording written by gew session apply or gew-tui")
    p.add_argument("--what", choices=WHAT, default="events",
                   help="which layer to print (default: events)")
    p.add_argument("--json", action="store_true",
                   help='one JSON object per line, with a "kind" field')
    p.add_argument("--at", type=int, metavar="EVENT_ID",
                   help="stop after this event: the recording as of that moment")


def run(args: argparse.Namespace) -> int:
    from gewtui.recording.reader import open_recording

    with open_recording(args.file) as reader:
        lines = _lines(reader, args.what, args.json, args.at)
        try:
            _write_all(lines)
        except BrokenPipeError:
            # `gew export ... | head`: the reader left; nothing more to say, not an error.
            _silence_stdout()
            return 0
        report = reader.report
    if report.skipped_records:
        raise RecordingError(f"{args.file}: {report.summary()}; the output is incomplete",
                             code=EX_DATAERR)
    if report.torn_tail_bytes:
        print(f"gew: warning: {args.file}: {report.summary()}", file=sys.stderr)
    return 0


def _lines(reader, what: str, as_json: bool, at: int | None) -> Iterator[str]:
    from gewtui.recording import export as fmt

    if what == "events":
        t0 = reader.header.session.started_ktime_ns
        for ev in _events_until(reader.iter_events(), at):
            yield fmt.json_line("event", ev) if as_json else fmt.event_text(ev, t0)
    elif what == "interventions":
        for rec in _records_until(reader, at):
            if rec.HasField("intervention"):
                r = rec.intervention
                yield fmt.json_line("intervention", r) if as_json else fmt.intervention_text(r)
    else:
        engine = _engine(what)
        for ev in _events_until(reader.iter_events(), at):
            engine.feed(ev)
        if what == "flows":
            for f in engine.flows():
                yield fmt.json_line("flow", f) if as_json else fmt.flow_text(f)
        else:
            for c in engine.chains():
                if as_json:
                    yield fmt.json_line("reason", c)
                else:
                    yield from fmt.reason_lines(c)


def _events_until(events: Iterable, at: int | None) -> Iterator:
    for ev in events:
        if at is not None and ev.id > at:
            return
        yield ev


def _records_until(reader, at: int | None) -> Iterator:
    for rec in reader.records():
        if at is not None and rec.HasField("event") and rec.event.id > at:
            return
        yield rec


def _engine(what: str):
    try:
        from gewtui.model.engine import Engine
    except ImportError as e:
        if not (e.name or "").startswith("gewtui.model"):
            raise
        raise GewError(f"export --what {what} needs the observation plane (gewtui.model), "
                       "not in this build") from None
    return Engine()


def _write_all(lines: Iterable[str]) -> None:
    # Joined in batches: one write per few hundred lines instead of one per line.
    out = sys.stdout
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= 512:
            out.write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        out.write("\n".join(batch) + "\n")
    out.flush()


def _silence_stdout() -> None:
    # Point fd 1 at /dev/null so the interpreter's final flush of stdout cannot fail again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
