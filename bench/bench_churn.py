"""Real connection churn under each observer: how much of its connection rate a real workload
keeps, what each observer records and loses, and the CPU it takes, in one interleaved run.

Workload (Debian's own programs, normal scheduling: no chrt, no nice, no pinning): two
namespaces this bench creates and removes, joined by a veth pair; ``redis-server`` in one,
``redis-benchmark -c 32 -n N -k 0 -t ping_inline`` in the other (``-k 0``: a new connection for
every request, so requests/s is connections/s). The client namespace gets a wide ephemeral
port range and ``tcp_tw_reuse`` so N connections fit its ports.

Observers, one at a time, the order reversed every other round, with an unobserved run
before each observer and after the last, so each observed run has a baseline on either side:
- ``none``: the baseline;
- ``apply``: ``gew session apply --scope netns=<server ns>`` (capture only: ring buffer to
  the recording);
- ``live``: gew-tui's debugger with the live engine under Textual's headless driver
  (bench/churn_live.py, ``--scope netns=<server ns>``): capture thread, engine, pump, UI;
- ``tcplife``: bcc's ``tcplife-bpfcc -L <port>`` (its own scoping: the server's port);
- ``tcpstates``: bcc's ``tcpstates-bpfcc -L <port>``;
- ``kernel``: gew's programs and ring buffer with a consumer that only takes records off the
  ring (bench/churn_kernel_only.py): not a mode of gew, a bound on what any capture could keep;
- ``programs``: the same programs with the ring buffer never read (what the programs cost,
  without a consumer's wakeups and reads; a 512 MiB ring buffer holds a run's records);
- ``attach``: a program that returns at once on each tracepoint gew's programs use (what the
  tracepoints' dispatch costs, before gew's programs do anything).
The last three split the kernel side's cost (attach, then the programs, then the consumer).

For each: connections/s the workload reached (redis-benchmark's requests/s), and its ratio
to the mean of the unobserved runs just before and just after it; records produced and lost (gew: the session's own counters,
events recorded and records the kernel could not hand over; bcc: lines printed and the
"Possibly lost N samples" of its lost-sample callback); the observer's CPU while the
workload ran (utime + stime from /proc/<pid>/stat, in CPU seconds per second of workload);
for the live engine, its lag when the workload stopped and how fast that lag drained.

``.venv/bin/python bench/bench_churn.py [--rounds R] [--requests N] [--only apply ...]``
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _util import ROOT, end, load, log, med, proc_cpu_s, require_root, table, veth_pair  # noqa: E402

PORT = 6399
CLIENTS = 32
TARGET_APPLY, TARGET_LIVE = 0.85, 0.75
OBSERVERS = ("none", "apply", "live", "tcplife", "tcpstates", "kernel", "programs", "attach")
GEW_OBSERVERS = ("apply", "live", "kernel", "programs")
NAMES = {"none": "none", "apply": "`gew session apply --scope netns=<server>`",
         "live": "live engine (gew-tui debugger, headless)", "tcplife": "bcc `tcplife-bpfcc -L 6399`",
         "tcpstates": "bcc `tcpstates-bpfcc -L 6399`",
         "kernel": "gew's programs and ring buffer only (records taken, not decoded: a bound, not a mode)",
         "programs": "gew's programs only (the ring buffer never read: what they cost)",
         "attach": "programs that return at once on gew's tracepoints (what attaching at all costs)"}
# bench/churn_kernel_only.py's flags for the kernel-side observers
# (a ring buffer never read must hold a whole run: 512 MiB, where 64 MiB fill and the
# programs take their ring-full path)
KERNEL_SIDE = {"kernel": [], "programs": ["--no-drain", "--ring-mib", "512"], "attach": ["--empty-programs"]}
RINGBUF_PAGES = int(os.environ.get("GEW_BENCH_RINGBUF_PAGES", "0"))   # 0: the session's default
SAMPLE = bool(os.environ.get("GEW_BENCH_SAMPLE"))   # sample the live engine's pump while its lag drains
GEW = [os.path.join(os.path.dirname(sys.executable), "gew")]


WHAT_BOUNDS = """What bounds it: on two vCPUs the workload (client and server) wants both CPUs, so
every CPU-microsecond an observer spends per connection, in the kernel or in userspace, comes
out of the connection rate; redis-server is one thread, and the session's programs run in its
context for its half of each connection. gew's capture loses nothing here (the capture drains a
64 MiB ring buffer into the recording and never waits for the engine; the engine works at most
a tenth of the wall time while records arrive, and its lag spills to the recording). A short
connection crosses as 2 kernel records and is written as 2 records (its first transition; its
held life, destroy and counters as one Lifecycle that readers expand into ~9 events), so the
capture's work is per record, not per transition (the CPU columns). The `kernel` row
bounds what any capture could keep: gew's programs and ring buffer with a consumer that takes
records off the ring and does nothing else. Between that bound and `apply` lies the capture's
per-record work (ring read, decode, numbering, framing: the ring's walk, the record encoders,
the varints and the frames in C, the decoder's dispatch in Python); below the bound lies the
programs' own cost per connection (bench_records: per program runs and ns), which the
`programs` row (the ring buffer never read) and the `attach` row (programs that return at
once on the same tracepoints) split into the tracepoints' dispatch, the programs' work and the
consumer's. The engine's drain rate is bounded by the observation plane's speed per event
(bench_replay)."""


@dataclass
class Run:
    observer: str
    round: int
    base: float = 0.0             # mean connections/s of the unobserved runs beside this one
    conns_per_s: float = 0.0
    records: int = 0
    lost: int = 0
    rescued: int = 0              # gew: records its main ring buffer refused, kept by the second one
    cpu: float = 0.0              # observer CPU seconds per second of workload
    cpu_total: float = 0.0        # observer CPU seconds from the workload's start until it caught up
    extra: dict = field(default_factory=dict)
    note: str = ""


def _ns(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def _wait_port(ns: str, addr: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = subprocess.run(_ns(ns, "redis-cli", "-h", addr, "-p", str(PORT), "ping"), capture_output=True,
                           text=True)
        if r.stdout.strip() == "PONG":
            return
        time.sleep(0.1)
    raise RuntimeError("redis-server did not answer")


def _workload(client_ns: str, addr: str, requests: int) -> float:
    """Run redis-benchmark once; connections/s (= requests/s with -k 0)."""
    r = subprocess.run(_ns(client_ns, "redis-benchmark", "-h", addr, "-p", str(PORT), "-c", str(CLIENTS),
                           "-n", str(requests), "-k", "0", "-t", "ping_inline", "-q"),
                       capture_output=True, text=True, timeout=600)
    m = re.findall(r"([\d.]+) requests per second", r.stdout.replace("\r", "\n"))
    if r.returncode != 0 or not m:
        raise RuntimeError(f"redis-benchmark failed: {(r.stdout + r.stderr).strip()[-300:]}")
    return float(m[-1])


def _measure(p: subprocess.Popen | None, client_ns: str, addr: str, requests: int, run: Run) -> float:
    """Run the workload; returns the observer's CPU seconds at its start."""
    c0, t0 = (proc_cpu_s(p.pid) if p else 0.0), time.monotonic()
    run.conns_per_s = _workload(client_ns, addr, requests)
    dt = time.monotonic() - t0
    if p is not None:
        run.cpu = (proc_cpu_s(p.pid) - c0) / dt
    return c0


def _wait_line(p: subprocess.Popen, stream, pattern: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            if p.poll() is not None:
                raise RuntimeError(f"observer exited ({p.returncode}) before '{pattern}'")
            continue
        if re.search(pattern, line):
            return line
    raise RuntimeError(f"observer did not print '{pattern}' in {timeout:.0f}s")


def run_none(client_ns, addr, requests, rnd, tmp) -> Run:
    run = Run("none", rnd)
    _measure(None, client_ns, addr, requests, run)
    return run


def run_apply(server_ns, client_ns, addr, requests, rnd, tmp) -> Run:
    run = Run("apply", rnd)
    rec = os.path.join(tmp, f"apply-{rnd}.gewrec")
    extra = ["--ringbuf-pages", str(RINGBUF_PAGES)] if RINGBUF_PAGES else []
    p = subprocess.Popen(GEW + ["session", "apply", "--scope", f"netns={server_ns}", "--record", rec,
                                "--instance", "gewbench", "--json-status", *extra], stderr=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        _wait_line(p, p.stderr, r"attached")
        c0 = _measure(p, client_ns, addr, requests, run)
        # until the capture has caught up with what the kernel buffered (a quiet status line)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = p.stderr.readline()
            if line.startswith("{"):
                status = json.loads(line)
                run.rescued = int(status.get("rescued", 0))
                if status.get("events_per_s", 0) < 1000:
                    break
        run.cpu_total = proc_cpu_s(p.pid) - c0
        p.send_signal(signal.SIGINT)
        err = p.stderr.read()
        p.wait(60)
    finally:
        end(p)
    m = re.search(r"ended \(\w+\): (\d+) events, (\d+) lost, observation (\w+)", err)
    if not m:
        raise RuntimeError(f"apply: no summary: {err.strip()[-300:]}")
    run.records, run.lost = int(m.group(1)), int(m.group(2))
    if m.group(3) != "complete":
        why = re.search(r"observation INCOMPLETE \((.*)\); recording", err)
        run.note = f"incomplete: {why.group(1)}" if why else "incomplete"
    os.unlink(rec)
    return run


def run_live(server_ns, client_ns, addr, requests, rnd, tmp) -> Run:
    run = Run("live", rnd)
    rec = os.path.join(tmp, f"live-{rnd}.gewrec")
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "churn_live.py"), "--scope",
                          f"netns={server_ns}", "--record", rec, *(["--sample"] if SAMPLE else [])],
                         stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        _wait_line(p, p.stdout, r"^ready")
        _measure(p, client_ns, addr, requests, run)
        c0, t0 = proc_cpu_s(p.pid), time.monotonic()
        p.stdin.write("stop\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=400)
    finally:
        end(p)
    if SAMPLE:
        log("where the live engine's pump spends the drain:\n" + err)
    lines = [x for x in out.splitlines() if x.startswith("{")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"live engine failed ({p.returncode}): {err.strip()[-300:]}")
    r = json.loads(lines[-1])
    run.records, run.lost, run.rescued = int(r["events"]), int(r["lost"]), int(r.get("rescued", 0))
    run.cpu_total = float(r.get("cpu_s", 0.0))
    run.extra = r
    if not r["complete"]:
        run.note = f"incomplete: {r['incomplete_reason']}"
    if r["folded"] < r["events"]:
        # the final drain (after the stop) is recorded, never folded: the app had quit
        run.extra["unfolded"] = r["events"] - r["folded"]
    os.unlink(rec)
    return run


def run_kernel(server_ns, client_ns, addr, requests, rnd, tmp, observer: str = "kernel") -> Run:
    """The session's programs and ring buffer with a consumer that decodes nothing
    (bench/churn_kernel_only.py): the most any capture could keep on this box. With
    ``observer`` "programs", the ring buffer is never read (the programs' own cost); with
    "attach", programs that return at once stand on the same tracepoints."""
    run = Run(observer, rnd)
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "churn_kernel_only.py"), "--netns", server_ns,
                          *KERNEL_SIDE[observer]],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        _wait_line(p, p.stdout, r"^ready")
        c0 = _measure(p, client_ns, addr, requests, run)
        run.cpu_total = proc_cpu_s(p.pid) - c0
        p.stdin.write("stop\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=120)
    finally:
        end(p)
    lines = [x for x in out.splitlines() if x.startswith("{")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"kernel-only observer failed ({p.returncode}): {err.strip()[-300:]}")
    r = json.loads(lines[-1])
    run.records, run.lost, run.rescued = int(r["records"]), int(r["lost"]), int(r.get("rescued", 0))
    return run


def _bcc(tool: str) -> str | None:
    return shutil.which(f"{tool}-bpfcc") or shutil.which(tool)


def run_bcc(tool, server_ns, client_ns, addr, requests, rnd, tmp) -> Run:
    run = Run(tool, rnd)
    out_path, err_path = os.path.join(tmp, f"{tool}.out"), os.path.join(tmp, f"{tool}.err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        p = subprocess.Popen([_bcc(tool), "-L", str(PORT)], stdout=out, stderr=err)
    try:
        # attached once it prints its header line
        deadline = time.monotonic() + 120
        while os.path.getsize(out_path) == 0:
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{tool} did not start: {open(err_path).read().strip()[-200:]}")
            time.sleep(0.05)
        c0 = _measure(p, client_ns, addr, requests, run)
        time.sleep(1.0)            # its perf buffers drain
        run.cpu_total = proc_cpu_s(p.pid) - c0
        p.send_signal(signal.SIGINT)
        p.wait(30)
    finally:
        end(p)
    with open(out_path, "rb") as f:
        run.records = sum(1 for _ in f) - 1
    run.lost = sum(int(n) for n in re.findall(r"Possibly lost (\d+) samples", open(err_path).read()))
    return run


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=60000)
    ap.add_argument("--only", action="append", choices=OBSERVERS[1:], help="observers besides none")
    a = ap.parse_args(argv[1:])
    require_root("Real connection churn")
    for prog in ("redis-server", "redis-benchmark", "redis-cli"):
        if shutil.which(prog) is None:
            print(f"## Real connection churn\n\n_not run: {prog} missing (make host installs redis)_")
            return 0
    observers = ["none"] + (a.only or [o for o in OBSERVERS[1:]])
    for tool in ("tcplife", "tcpstates"):
        if tool in observers and _bcc(tool) is None:
            observers.remove(tool)
    load_start = load()
    runs: list[Run] = []
    subnet = 100 + secrets.randbelow(100)
    with tempfile.TemporaryDirectory(prefix="gew-churn-") as tmp, \
            veth_pair("chn", subnet) as (client_ns, server_ns, _dev, addr):
        for k, v in (("net.ipv4.ip_local_port_range", "1024 65000"), ("net.ipv4.tcp_tw_reuse", "1")):
            subprocess.run(_ns(client_ns, "sysctl", "-qw", f"{k}={v}"), check=True)
        srv = subprocess.Popen(_ns(server_ns, "redis-server", "--bind", addr, "--port", str(PORT), "--save", "",
                                   "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no",
                                   "--maxclients", "10000", "--dir", tmp),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_port(client_ns, addr)
            _workload(client_ns, addr, 5000)        # warm up
            others = [o for o in observers if o != "none"]
            prev = run_none(client_ns, addr, a.requests, 0, tmp)
            runs.append(prev)
            for rnd in range(a.rounds):
                order = others if rnd % 2 == 0 else others[::-1]
                for o in order:
                    if o == "apply":
                        r = run_apply(server_ns, client_ns, addr, a.requests, rnd, tmp)
                    elif o == "live":
                        r = run_live(server_ns, client_ns, addr, a.requests, rnd, tmp)
                    elif o in KERNEL_SIDE:
                        r = run_kernel(server_ns, client_ns, addr, a.requests, rnd, tmp, o)
                    else:
                        r = run_bcc(o, server_ns, client_ns, addr, a.requests, rnd, tmp)
                    nxt = run_none(client_ns, addr, a.requests, rnd, tmp)
                    r.base = (prev.conns_per_s + nxt.conns_per_s) / 2
                    prev = nxt
                    log(f"round {rnd} {o:9s} {r.conns_per_s:9,.0f} conn/s ({r.conns_per_s / r.base:.2f}x)  records "
                        f"{r.records:,}  lost {r.lost:,}  rescued {r.rescued:,}  cpu {r.cpu:.2f}  {r.extra if r.extra else ''} {r.note}")
                    runs.extend([r, nxt])
        finally:
            end(srv)
    print(report(runs, observers, a, load_start))
    return 0


def report(runs: list[Run], observers: list[str], a: argparse.Namespace, load_start: str) -> str:
    out = ["## Real connection churn (bench_churn.py)\n",
           f"redis-server in one scratch namespace, `redis-benchmark -c {CLIENTS} -n {a.requests:,} -k 0 -t "
           f"ping_inline` (a new connection per request) in another, over a veth pair; normal scheduling (no "
           f"chrt, no nice, no pinning); observers one at a time, {a.rounds} rounds, the order reversed every "
           f"other round, an unobserved run between any two observed ones; each ratio is against the mean "
           f"of the unobserved runs just before and after it. Other suites load this machine "
           f"meanwhile: {load_start} at the start, {load()} at the end.\n"]
    rows = []
    for o in observers:
        rs = [r for r in runs if r.observer == o]
        if not rs:
            continue
        ratios = [r.conns_per_s / r.base for r in rs if r.base]
        rec = [r.records / a.requests for r in rs]
        rows.append([NAMES[o], f"{med([r.conns_per_s for r in rs]):,.0f}",
                     f"{med(ratios):.2f} [{min(ratios):.2f}..{max(ratios):.2f}]" if o != "none" else "1.00",
                     f"{med([r.records for r in rs]):,.0f} ({med(rec):.1f}/conn)" if o != "none" else "—",
                     f"{sum(r.lost for r in rs):,}" if o != "none" else "—",
                     f"{sum(r.rescued for r in rs):,}" if o in GEW_OBSERVERS else "—",
                     f"{med([r.cpu for r in rs]):.2f}" if o != "none" else "—",
                     f"{med([r.cpu_total / a.requests * 1e6 for r in rs]):.0f}" if o != "none" else "—"])
    out.append(table(["observer", "connections/s (median)", "× unobserved [min..max]", "records per run",
                      "records lost (all runs)", "kept by gew's second ring buffer (all runs)",
                      "observer CPU during the workload, s/s",
                      "observer CPU per connection, µs (until caught up)"], rows))
    notes = []
    for o, target in (("apply", TARGET_APPLY), ("live", TARGET_LIVE)):
        rs = [r for r in runs if r.observer == o]
        if not rs:
            continue
        ratio = med([r.conns_per_s / r.base for r in rs if r.base])
        lost = sum(r.lost for r in rs)
        notes.append(f"{o}: {ratio:.2f}× the unobserved rate (target ≥ {target:.2f}×: "
                     f"{'met' if ratio >= target else 'missed'}); {lost:,} records lost in {len(rs)} runs "
                     f"(target 0: {'met' if lost == 0 else 'missed'}).")
    lives = [r for r in runs if r.observer == "live" and r.extra]
    if lives:
        notes.append("live engine, its lag behind the capture (events recorded, not yet folded): most "
                     + ", ".join(f"{r.extra.get('max_lag', 0):,}" for r in lives) + "; at the workload's end "
                     + ", ".join(f"{r.extra.get('lag_at_stop', 0):,}" for r in lives) + "; drained at "
                     + ", ".join(f"{r.extra.get('drain_rate', 0):,.0f}" for r in lives)
                     + " events/s once the load stopped, or per CPU second of the engine's (pump) thread "
                     + ", ".join(f"{r.extra.get('drain_per_cpu_s', 0):,.0f}" for r in lives)
                     + " (target ≥ 300,000/s); spilled to the recording and "
                     "read back: " + ", ".join(f"{r.extra.get('spilled', 0):,}" for r in lives) + ".")
    out.append("\n" + "\n".join(f"- {n}" for n in notes))
    out.append("\n" + WHAT_BOUNDS)
    out.append("\nAll runs:\n")
    out.append(table(["round", "observer", "connections/s", "× unobserved beside it", "records", "lost", "rescued",
                      "CPU s/s", "CPU µs/conn", "note"],
                     [[r.round, r.observer, f"{r.conns_per_s:,.0f}",
                       f"{r.conns_per_s / r.base:.2f}" if r.base else "",
                       f"{r.records:,}", f"{r.lost:,}", f"{r.rescued:,}", f"{r.cpu:.2f}", f"{r.cpu_total / a.requests * 1e6:.0f}",
                       r.note] for r in runs]))
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
