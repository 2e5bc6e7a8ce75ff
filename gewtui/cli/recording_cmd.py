"""``gew recording index FILE``: store engine checkpoints in an existing recording, so a
replay (gew-tui --replay, gew shell FILE) jumps to its end, or anywhere, without folding
every event first.

Place in the pipeline: offline, as root (the states are authenticated with this host's
root-only key, gewtui.model.state_key; only replays here, as root, use them). It folds the file once through the observation
engine (as the debugger's replay does: events only, interventions are not folded) and
appends an ``EngineCheckpoint`` record every ``--every`` events at the end of the file
(gewtui.recording.checkpoints, gewtui.model.persist). The events are not touched: older
readers and ``gew export`` skip the new records. A live gew-tui or gew shell session
already stores checkpoints as it records; this is for recordings made without one
(``gew session apply --record``) or with another template set.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from gewtui.errors import UsageError

EPILOG = """\
examples:
  gew recording index /tmp/s.gewrec              a checkpoint every 100,000 events
  gew recording index /tmp/s.gewrec --every 50000 --templates ./my-templates
  gew-tui --replay /tmp/s.gewrec                 then 'goto end' starts from the last one

Needs root: each state is authenticated with this host's key (/etc/gewyvern), and a
replay uses a checkpoint only if that key, as root, authenticates it and it was made by
the same build of the observation engine with the same template set (--templates must
match what you replay with); others are ignored. Each costs about 1 MiB per 2,000 live
flows. The file must not be written any more: a recording without an end record (a
session still running, or killed) is refused unless --force. GEW_IGNORE_CHECKPOINTS=1 replays as if there were none.
"""


def add_arguments(p: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("file", metavar="FILE", help="a recording written by gew session apply or gew-tui")
    p.add_argument("--every", type=int, default=100_000, metavar="N",
                   help="store the engine's state after every N events (default 100000; "
                        "a jump then folds at most N events)")
    p.add_argument("--templates", metavar="DIR", action="append", default=[],
                   help="extra template directory (repeatable), as you will replay with")
    from gewtui.cli.tui_cmd import add_override_argument

    add_override_argument(p)
    p.add_argument("--force", action="store_true",
                   help="index a file without an end record, or add checkpoints to one "
                        "that has some from this build already")


def run(args: argparse.Namespace) -> int:
    from gewtui.debugger.sources import _frame_len
    from gewtui.model import persist
    from gewtui.model.engine import Engine
    from gewtui.model.templates import load_templates
    from gewtui.pb import events_pb2
    from gewtui.recording import RecordingWriter, lifecycle, open_recording
    from gewtui.recording.checkpoints import find_checkpoints, write_checkpoint
    from gewtui.recording.reader import event_bytes

    if args.every < 1000:
        raise UsageError("--every must be at least 1000 (a state costs about as much to "
                         "load as folding tens of thousands of events)")
    for d in args.templates:
        if not os.path.isdir(d):
            raise UsageError(f"--templates {d}: not a directory")
    if args.override_template and not args.templates:
        raise UsageError("--override-template needs --templates DIR holding the replacement")
    templates = load_templates(args.templates, allow_override=args.override_template) if args.templates else None
    for note in templates.override_notes() if templates is not None else ():
        print(f"gew: warning: {note}", file=sys.stderr)
    # States are authenticated with this host's root-only key: without it (not root, or
    # /etc/gewyvern refused) say so before folding the whole file.
    from gewtui.model import state_key
    state_key.state_key(create=True)
    t0 = time.monotonic()
    with tempfile.TemporaryFile(prefix="gew-index-") as spill:
        with open_recording(args.file) as r:
            sid = r.header.session.session_id or os.path.basename(args.file)
            eng = Engine(templates=templates, session_id=sid)
            digest = persist.template_digest(eng.templates)
            have = [c for c in find_checkpoints(r)
                    if c.model == persist.MODEL_ID and c.templates == digest]
            if have and not args.force:
                print(f"{args.file}: already holds {len(have)} checkpoint(s) from this build and "
                      "template set; nothing done (--force adds more)")
                return 0
            parse = events_pb2.Event.FromString
            states: list[tuple] = []
            n = 0
            first_kt = 0
            ended = False
            from gewtui.pb import recording_pb2

            for off, payload in r.frames():
                raw = event_bytes(payload)
                if raw is None:
                    try:
                        rec = recording_pb2.Record.FromString(payload)
                    except Exception:
                        continue
                    ended |= rec.WhichOneof("body") == "end"
                    if not rec.HasField("event"):
                        continue
                    ev = rec.event
                    raw = ev.SerializeToString() if ev.HasField("lifecycle") else None
                try:
                    # a lifecycle stands for several events (gewtui.recording.lifecycle)
                    evs = [parse(x) for x in lifecycle.expand(raw)] if raw and lifecycle.is_lifecycle(raw) else \
                        [ev if raw is None else parse(raw)]
                except Exception:
                    continue    # undecodable: skipped, as a replay skips it
                if not evs:
                    continue
                for ev in evs:
                    eng.feed(ev)
                before, n = n, n + len(evs)
                if before == 0:
                    first_kt = evs[0].ktime_ns
                if n // args.every > before // args.every:
                    # states wait on disk, not in memory (each is ~1 MiB per 2,000 live flows)
                    blob = persist.dumps(persist.engine_view(eng))
                    states.append((n, ev, off + _frame_len(len(payload)), spill.tell(), len(blob)))
                    spill.write(blob)
            damage = r.report.summary()
        if not ended and not args.force:
            raise UsageError(f"{args.file}: no end record (a session may still be writing it, or "
                             "was killed): --force indexes it anyway")
        if not states:
            print(f"{args.file}: {n:,} events, fewer than --every {args.every:,}: nothing to store")
            return 0
        before = os.path.getsize(args.file)
        prev = have[-1].offset if have else 0
        with RecordingWriter.append(args.file) as w:
            for k, ev, resume, at, size in states:
                spill.seek(at)
                prev = write_checkpoint(w, spill.read(size), events=k, last_event=ev, first_ktime_ns=first_kt,
                                        model=persist.MODEL_ID, templates=digest, prev_offset=prev,
                                        resume_offset=resume)
        added = os.path.getsize(args.file) - before
        print(f"{args.file}: {n:,} events, {len(states)} checkpoint(s) stored (every "
              f"{args.every:,} events), {added / 2**20:.1f} MiB added, "
              f"{time.monotonic() - t0:.1f} s")
        if damage:
            print(f"gew: warning: {args.file}: {damage}", file=sys.stderr)
        return 0
