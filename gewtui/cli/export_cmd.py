"""``gew export FILE``: read a recording offline (no root) and print one layer of it.

events and interventions come straight from the recording; flows and reasons are computed
by replaying the events (and the intervention trace) through the observation plane
(gewtui.model), as the debugger does. ``--filter`` keeps the flows it matches (the
debugger's filter language); with ``--out`` the kept part is written as a new recording
(gewtui.debugger.export). Damage is reported after the output: a torn tail (the normal end
of a killed session) is one warning line and exit 0; damaged records that had to be
skipped make the output incomplete, so they end in one error line and exit 65.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Iterable, Iterator

from gewtui.errors import EX_DATAERR, GewError, RecordingError, UsageError

EPILOG = """\
examples:
  gew export /tmp/s.gewrec                      every event, one line each
  gew export /tmp/s.gewrec --json | jq .        the same as JSON lines: addresses as text,
                                                enums by name, kernel times also as *_wall
  gew export /tmp/s.gewrec --json | grep 10.0.0.2    an address is found as typed
  gew export /tmp/s.gewrec --what flows --format table       flows as aligned columns
  gew export /tmp/s.gewrec --what flows --format csv > f.csv for a spreadsheet
  gew export /tmp/s.gewrec --what flows --at 1200 --json   flows as of event #1200
  gew export /tmp/s.gewrec --what reasons --filter 'dport 443'
  gew export /tmp/s.gewrec --filter 'template retransmission-storm' --out /tmp/cut.gewrec
  gew export /tmp/s.gewrec --perfetto /tmp/s.trace.json      open it in ui.perfetto.dev
  gew export /tmp/s.gewrec --otlp localhost:4317   verdicts as OTLP logs, flow counters as metrics
  gew export /tmp/s.gewrec --what flows --filter 'container nginx.service'
"""

WHAT = ("events", "flows", "reasons", "interventions")
FORMATS = ("text", "jsonl", "table", "csv")


def add_arguments(p: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("file", metavar="FILE", help="a recording written by gew session apply or gew-tui")
    p.add_argument("--what", choices=WHAT, default="events",
                   help="which layer to print (default: events)")
    p.add_argument("--json", action="store_true",
                   help='one JSON object per line, with a "kind" field (= --format jsonl)')
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="text (default: one readable line per record), jsonl (JSON lines), "
                        "table (aligned columns), csv (flows only)")
    p.add_argument("--perfetto", metavar="TRACE",
                   help="write a Chrome trace-event JSON file for ui.perfetto.dev: one track per "
                        "flow, TCP states as slices, events as instants, template matches marked")
    p.add_argument("--at", type=int, metavar="EVENT_ID",
                   help="stop after this event: the recording as of that moment")
    p.add_argument("--filter", action="append", default=[], metavar="EXPR",
                   help="keep only flows matching EXPR, e.g. 'dst 10.0.0.0/8', 'port 443', "
                        "'template ID', 'phase terminated' (repeatable; with --what flows, "
                        "reasons, or --out)")
    p.add_argument("--out", metavar="NEWFILE",
                   help="write the kept part as a new recording instead of printing")
    p.add_argument("--otlp", metavar="ENDPOINT",
                   help="send the L3 verdicts (OTLP logs) and per-flow counters (OTLP metrics) to an "
                        "OpenTelemetry collector's gRPC endpoint instead of printing (HOST:PORT; "
                        "plain on loopback or http://, TLS otherwise)")


def run(args: argparse.Namespace) -> int:
    from gewtui.recording.reader import open_recording

    fmt = _format(args)
    if args.out:
        return _cut(args)
    if args.perfetto:
        return _perfetto(args)
    if args.otlp:
        return _otlp(args)
    if args.filter and args.what not in ("flows", "reasons"):
        raise UsageError("--filter selects flows: use it with --what flows, --what reasons "
                         "or --out")
    with open_recording(args.file) as reader:
        lines = _lines(reader, args.what, fmt, args.at, args.filter)
        try:
            _write_all(lines)
        except BrokenPipeError:
            # `gew export ... | head`: the reader left; nothing more to say, not an error.
            _silence_stdout()
            return 0
        report = reader.report
    return _damage(args.file, report)


def _format(args: argparse.Namespace) -> str:
    if args.json and args.format not in (None, "jsonl"):
        raise UsageError(f"--json is --format jsonl: it cannot go with --format {args.format}")
    if args.json or args.format:
        fmt = "jsonl" if args.json else args.format
    else:
        fmt = _configured_format(args.what)
    if fmt == "csv" and args.what != "flows":
        raise UsageError("--format csv is for --what flows (events: use jsonl or table)")
    if fmt == "table" and args.what == "reasons":
        raise UsageError("reason chains are trees: use --format text or jsonl")
    if args.perfetto and (args.out or args.format or args.json or args.what != "events"):
        raise UsageError("--perfetto writes a trace of the whole recording: it takes --at and "
                         "--filter, not --out, --what, --json or --format")
    return fmt


def _configured_format(what: str) -> str:
    """defaults.export_format from the user's config file, where it fits the layer (a table
    of reason chains does not exist: those stay text)."""
    from gewtui import config

    fmt = config.load().default("export_format")
    return "text" if fmt == "table" and what == "reasons" else fmt


def _perfetto(args: argparse.Namespace) -> int:
    from gewtui.recording.reader import open_recording

    try:
        from gewtui.debugger.perfetto import write_trace
    except ImportError as e:
        if not (e.name or "").startswith("gewtui."):
            raise
        raise GewError("export --perfetto needs the observation plane, not in this build") from None
    with open_recording(args.file) as reader:
        result = write_trace(reader, args.perfetto, at=args.at, filters=args.filter)
        report = reader.report
    print(result.text())
    return _damage(args.file, report)


def _damage(path: str, report) -> int:
    if report.skipped_records:
        raise RecordingError(f"{path}: {report.summary()}; the output is incomplete",
                             code=EX_DATAERR)
    if report.torn_tail_bytes:
        print(f"gew: warning: {path}: {report.summary()}", file=sys.stderr)
    return 0


def _cut(args: argparse.Namespace) -> int:
    from gewtui.recording.reader import open_recording

    if args.what != "events" or args.json or args.format or args.at is not None:
        raise UsageError("--out writes a recording: it takes --filter, not --what, --json, "
                         "--format or --at")
    with open_recording(args.file) as reader:
        report = reader.scan_offsets(every=1 << 62).report   # damage, told after the cut
    try:
        from gewtui.debugger.export import filter_recording
    except ImportError as e:
        if not (e.name or "").startswith("gewtui."):
            raise
        raise GewError("export --out needs the debugger (gewtui.debugger), not in this build") from None
    print(filter_recording(args.file, args.out, args.filter).text())
    return _damage(args.file, report)


def _lines(reader, what: str, fmt_name: str, at: int | None,
           filters: list[str]) -> Iterator[str]:
    from gewtui.recording import export as fmt

    ctx = fmt.ExportContext.from_header(reader.header)
    as_json = fmt_name == "jsonl"
    if what == "events":
        t0 = reader.header.session.started_ktime_ns
        events = _events_until(reader.iter_events(), at)
        if fmt_name == "table":
            yield from _event_table(events, ctx)
            return
        for ev in events:
            yield fmt.json_line("event", ev, ctx) if as_json else fmt.event_text(ev, t0)
    elif what == "interventions":
        for rec in _records_until(reader, at):
            if rec.HasField("intervention"):
                r = rec.intervention
                yield fmt.json_line("intervention", r, ctx) if as_json else fmt.intervention_text(r)
    else:
        engine = _engine(what, reader.header.session.session_id)
        keep = _flow_filter(filters)
        for rec in _records_until(reader, at):
            if rec.HasField("event"):
                engine.feed(rec.event)
            elif rec.HasField("intervention"):
                engine.add_intervention(rec.intervention)
        flows = [f for f in engine.flows() if keep is None or keep.matches(f)]
        if what == "flows":
            if fmt_name in ("table", "csv"):
                shape = fmt.table_lines if fmt_name == "table" else fmt.csv_lines
                yield from shape(fmt.FLOW_COLUMNS, (fmt.flow_row(f, ctx) for f in flows))
                return
            for f in flows:
                yield fmt.json_line("flow", f, ctx) if as_json else fmt.flow_text(f)
        else:
            for f in flows:
                c = engine.chain(f.flow_id)
                if c is None:
                    continue
                if as_json:
                    yield fmt.json_line("reason", c, ctx)
                else:
                    yield from fmt.reason_lines(c)


def _event_table(events: Iterable, ctx) -> Iterator[str]:
    """Fixed columns, so a million events stream without being read twice."""
    from gewtui.recording import export as fmt

    line = "{:>8}  {:<30}  {:>3}  {:<11}  {:<45}  {:<18}  {}"
    yield line.format(*(c.upper() for c in fmt.EVENT_COLUMNS)).rstrip()
    for ev in events:
        yield line.format(*fmt.event_row(ev, ctx)).rstrip()


def _otlp(args: argparse.Namespace) -> int:
    from gewtui.control.otlp import OtlpSink
    from gewtui.recording.reader import open_recording

    with open_recording(args.file) as reader:
        sid = reader.header.session.session_id
        engine = _engine("reasons", sid)
        keep = _flow_filter(args.filter)
        for rec in _records_until(reader, args.at):
            if rec.HasField("event"):
                engine.feed(rec.event)
            elif rec.HasField("intervention"):
                engine.add_intervention(rec.intervention)
        report = reader.report
    flows = {f.flow_id: f for f in engine.flows() if keep is None or keep.matches(f)}
    chains = [c for c in (engine.chain(fid) for fid in flows) if c is not None]
    sink = OtlpSink(args.otlp, sid)
    try:
        sink.add(chains, flows)
        logs, points = sink.flush()
    finally:
        sink.close()
    print(f"sent {logs} verdicts (OTLP logs) and {points} flow counter points (OTLP metrics) to {args.otlp}")
    return _damage(args.file, report)


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


def _engine(what: str, session_id: str):
    try:
        from gewtui.model.engine import Engine
    except ImportError as e:
        if not (e.name or "").startswith("gewtui.model"):
            raise
        raise GewError(f"export --what {what} needs the observation plane (gewtui.model), "
                       "not in this build") from None
    return Engine(session_id=session_id)


def _flow_filter(filters: list[str]):
    if not filters:
        return None
    from gewtui.debugger.filters import FlowFilter

    return FlowFilter.parse(filters)


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
