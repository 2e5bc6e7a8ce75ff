"""`gew session apply|list|detach|gc`: a thin shell over gewtui.kernel.session.

apply runs one LiveSession in the foreground: a status line a second on stderr, stop on
Ctrl-C, SIGTERM/SIGHUP or --duration, cleanup on every path. list/detach/gc read and
act on this instance's manifests only.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

from gewtui.errors import EX_NOINPUT, EX_UNAVAILABLE, GewError

EPILOG = """\
examples:
  gew session apply --scope netns=gewlab-client --duration 10 --record /tmp/s.gewrec
  gew session apply --scope netns=gewlab-client --serve    paired peers read it on control.sock
  gew session list --json
  gew session detach 20260101-120000-ab12cd
  gew session gc
"""


def add_arguments(p: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--instance", default="default", metavar="NAME",
                   help="instance whose sessions this touches (default: default)")
    verb = words[-1]
    if verb == "apply":
        p.add_argument("--scope", action="append", default=[], metavar="KIND=VALUE",
                       help="netns=NAME | iface=[NETNS/]IFACE | cidr=PREFIX | port=N; repeatable "
                            "(kinds AND, values OR); default: the host namespace")
        p.add_argument("--record", metavar="FILE", help="recording file (default /var/lib/gewyvern/recordings/<id>.gewrec)")
        p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
        p.add_argument("--allow-risky", action="store_true", help="accept capabilities that are supported but risky")
        p.add_argument("--allow-intervention", action="store_true", help="allow gated drops in this session")
        p.add_argument("--ringbuf-pages", type=int, metavar="N", help="ring buffer size in pages (power of two)")
        p.add_argument("--bpf-stats", action="store_true", help="time every probe run in the kernel (BPF_ENABLE_STATS) to show the session's own BPF cost; the timing adds ~100 ns per program run, so it is off by default")
        p.add_argument("--json-status", action="store_true", help="status lines on stderr as JSON objects")
        p.add_argument("--serve", action="store_true",
                       help="serve the control plane to paired peers on the session's control.sock while it runs "
                            "(see gew pair, gew peer, docs/control.md)")
        p.add_argument("--serve-tcp", metavar="HOST:PORT",
                       help="also serve on TCP: TLS with /etc/gewyvern/tls/{cert,key}.pem, plain only on loopback")
        p.add_argument("--otlp", metavar="ENDPOINT",
                       help="with --serve: send the L3 verdicts (OTLP logs) and flow counters (OTLP metrics) to an "
                            "OpenTelemetry collector's gRPC endpoint every 5 s and at the end")
    elif verb == "detach":
        p.add_argument("session_id", metavar="ID")
        p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                       help="how long to wait for the owner to clean up (default 10)")
    if verb in ("list", "gc", "detach"):
        p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gewtui.intervene.recovery import removed_after_kill
    from gewtui.kernel.bpffs import Instance
    from gewtui.runtime.privileges import require_root

    verb = args._words[-1]
    require_root(f"gew session {verb}")
    inst = Instance(args.instance, end_drops=removed_after_kill)
    return {"apply": _apply, "list": _list, "detach": _detach, "gc": _gc}[verb](args, inst)


def _err(msg: str) -> None:
    print(f"gew: {msg}", file=sys.stderr, flush=True)


class _Stop(BaseException):
    """Raised from a signal handler so the loop unwinds through its cleanup."""

    def __init__(self, how: str):
        super().__init__(how)
        self.how = how


def _on_signal(signum: int, frame: Any) -> None:
    raise _Stop({signal.SIGTERM: "sigterm", signal.SIGHUP: "sighup"}.get(signum, "signal"))


def _apply(args: argparse.Namespace, inst: Any) -> int:
    from gewtui.kernel.live import LiveSession, default_recording_path
    from gewtui.kernel.session import new_session_id

    if args.duration is not None and args.duration <= 0:
        raise GewError("--duration must be positive", 64)
    # the kernel takes a ring buffer of at most 2 GiB (a u32 power of two); beyond that bcc
    # fails with a page of compiler output instead of one line
    max_pages = (1 << 31) // os.sysconf("SC_PAGE_SIZE")
    if args.ringbuf_pages is not None and (args.ringbuf_pages < 1 or args.ringbuf_pages & (args.ringbuf_pages - 1)
                                           or args.ringbuf_pages > max_pages):
        raise GewError(f"--ringbuf-pages must be a power of two, at most {max_pages}", 64)
    sid = new_session_id()
    record = args.record or default_recording_path(sid)
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    live = LiveSession(args.scope, record=record, instance=inst.instance_id, session_id=sid,
                       allow_risky=args.allow_risky, allow_intervention=args.allow_intervention,
                       ringbuf_pages=args.ringbuf_pages, bpf_stats=args.bpf_stats, log=_err,
                       end_drops=inst.end_drops)
    how, detail = "error", ""
    server = None
    try:
        live.open()
        _err(f"session {sid} attached ({live.scope.describe() if live.scope else ''}); recording to {record}; "
             f"Ctrl-C to stop")
        if args.serve or args.serve_tcp or args.otlp:
            server = _serve(args, live, record)
        how = _loop(live, args)
    except KeyboardInterrupt:
        how = "sigint"
    except _Stop as s:
        how = s.how
    except GewError as e:
        detail = e.message
        raise
    finally:
        # A second signal must not cut the cleanup short.
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        try:
            if server is not None:        # the socket goes before the session does
                server.close()
            live.close(how, detail)
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for s, h in old.items():
                signal.signal(s, h)
    st = live.stats
    state = "complete" if st.complete else f"INCOMPLETE ({st.incomplete_reason})"
    _err(f"session {sid} ended ({how}): {st.events} events, {st.lost} lost, observation {state}; "
         f"recording {record} ({_size(st.recording_bytes)})")
    return 0


def _serve(args: argparse.Namespace, live: Any, record: str) -> Any:
    """The control plane over this session's recording; no operator console here, so drop
    proposals are refused (gew-tui --serve and gew shell --serve take them)."""
    from gewtui.control.server import serve
    from gewtui.model.engine import Engine

    sid = live.session_id
    server = serve(live, record, lambda: Engine(session_id=sid), tcp=args.serve_tcp, log=_err, otlp=args.otlp)
    _err(f"serving the control plane on {server.path}" + (f" and {server.tcp_address}" if server.tcp_address else ""))
    return server


def _loop(live: Any, args: argparse.Namespace) -> str:
    t0 = time.monotonic()
    end = None if args.duration is None else t0 + args.duration
    next_status, last_events, last_t = t0 + 1.0, 0, t0
    while True:
        live.poll_raw(200)      # capture only: the events' bytes go to the recording, unparsed
        now = time.monotonic()
        if now >= next_status:
            st = live.stats
            rate = (st.events - last_events) / max(now - last_t, 1e-6)
            last_events, last_t, next_status = st.events, now, now + 1.0
            _status(st, now - t0, rate, args.json_status)
        if end is not None and now >= end:
            return "duration"


def _status(st: Any, elapsed: float, rate: float, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"session": st.session_id, "elapsed_s": round(elapsed, 1), "events": st.events,
                          "events_per_s": round(rate, 1), "lost": st.lost, "rescued": st.rescued,
                          "complete": st.complete,
                          "recording_bytes": st.recording_bytes}), file=sys.stderr, flush=True)
        return
    flag = "" if st.complete else "  INCOMPLETE"
    print(f"gew: {elapsed:6.0f}s  events {st.events}  {rate:.0f}/s  lost {st.lost}  "
          f"rec {_size(st.recording_bytes)}{flag}", file=sys.stderr, flush=True)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _entry_dict(e: Any) -> dict:
    m = e.manifest
    d = {"session_id": e.session_id, "status": e.status, "problem": e.problem}
    if m is not None:
        d.update(owner_pid=m.owner_pid, owner_start_time=m.owner_start_time, state=m.state,
                 started=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.started_unix_ns / 1e9)),
                 started_unix_ns=m.started_unix_ns, scope=m.scope, recording=m.recording,
                 pins=len(m.pins), tc_filters=len(m.tc_filters), events=m.events, lost=m.lost, lag=m.lag)
    return d


def _list(args: argparse.Namespace, inst: Any) -> int:
    rows = [_entry_dict(e) for e in inst.sessions()]
    if args.json:
        print(json.dumps({"instance": inst.instance_id, "sessions": rows}, indent=1))
        return 0
    if not rows:
        print(f"no sessions in instance {inst.instance_id}")
        return 0
    # LAG: events recorded that the session's engine (gew-tui, gew shell) had not folded at
    # its last heartbeat; lag is never loss (LOST counts records the kernel could not hand over)
    print(f"{'SESSION':<24} {'STATUS':<7} {'PID':>7} {'STARTED':<19} {'EVENTS':>10} {'LOST':>6} {'LAG':>8} "
          f"{'SCOPE':<30} RECORDING")
    for r in rows:
        print(f"{r['session_id']:<24} {r['status']:<7} {r.get('owner_pid', '-'):>7} {r.get('started', '-'):<19} "
              f"{r.get('events', '-'):>10} {r.get('lost', '-'):>6} {r.get('lag', '-'):>8} "
              f"{' '.join(r.get('scope', [])) or '-':<30} {r.get('recording') or r['problem'] or '-'}")
    return 0


def _report_dict(r: Any) -> dict:
    return {"session_id": r.session_id, "removed_pins": r.removed_pins, "removed_filters": r.removed_filters,
            "removed_qdiscs": r.removed_qdiscs, "kept": r.kept, "errors": r.errors,
            "manifest_removed": r.manifest_removed}


def _print_reports(reports: list, as_json: bool, inst: Any) -> None:
    if as_json:
        print(json.dumps({"instance": inst.instance_id, "removed": [_report_dict(r) for r in reports]}, indent=1))
        return
    if not reports:
        print(f"no orphan sessions in instance {inst.instance_id}")
    for r in reports:
        print(f"session {r.session_id}:")
        for line in r.lines() or ["nothing left to remove"]:
            print(f"  {line}")


def _gc(args: argparse.Namespace, inst: Any) -> int:
    reports = inst.gc()
    _print_reports(reports, args.json, inst)
    return 1 if any(r.errors for r in reports) else 0


def _detach(args: argparse.Namespace, inst: Any) -> int:
    from gewtui.kernel.bpffs import owner_alive, validate_name

    sid = validate_name(args.session_id, "session")
    entry = next((e for e in inst.sessions() if e.session_id == sid), None)
    if entry is None:
        raise GewError(f"no session {sid} in instance {inst.instance_id}", EX_NOINPUT)
    if not entry.alive:
        with inst.lock():
            rep = inst.remove_session(sid, entry.manifest, orphan=True, problem=entry.problem)
        _print_reports([rep], args.json, inst)
        return 0
    m = entry.manifest
    assert m is not None
    # pidfd: the signal reaches the process we checked, even if the pid were reused after.
    fd = os.pidfd_open(m.owner_pid)
    try:
        if not owner_alive(m.owner_pid, m.owner_start_time):
            raise GewError(f"session {sid}: owner changed while detaching; run gew session gc", EX_UNAVAILABLE)
        signal.pidfd_send_signal(fd, signal.SIGTERM)
    finally:
        os.close(fd)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not os.path.exists(inst.manifest_path(sid)):
            break
        time.sleep(0.05)
    else:
        raise GewError(f"session {sid}: owner pid {m.owner_pid} did not finish within {args.timeout:g} s",
                       EX_UNAVAILABLE)
    if args.json:
        print(json.dumps({"session_id": sid, "detached": True, "owner_pid": m.owner_pid}))
    else:
        print(f"session {sid} detached (owner pid {m.owner_pid} cleaned up)")
    return 0
