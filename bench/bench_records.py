"""Records per connection and the session's BPF time on real connection churn.

redis-server in one namespace, ``redis-benchmark -c 32 -n N -k 0 -t ping_inline`` (a new
connection per request) in another, over a veth pair, under normal scheduling. For each
observer, one after another in one run: no observer, then ``gew session apply --scope
netns=<server> --bpf-stats --record F`` from each gew given with ``--gew`` (so two builds,
e.g. the per-event path of another checkout and this one, run against the same box in one
sitting). Printed per observer: connections/s the workload reached, events in the
recording, ring-buffer records the kernel produced and lost (from the recording's final
SessionStats), records and events per connection, the session's BPF run time per
connection, and the program-by-program run time where ``gew`` printed it.

    sudo .venv/bin/python -m bench.bench_records
    sudo .venv/bin/python -m bench.bench_records --gew /other/checkout/.venv/bin/gew --gew .venv/bin/gew
"""
from __future__ import annotations

import argparse
import collections
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time

from gewtui.recording.reader import RecordingReader

REDIS_PORT = 6379


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")
    return r


class Net:
    def __init__(self):
        tag = secrets.token_hex(2)
        self.srv, self.cli = f"gewb-{tag}-srv", f"gewb-{tag}-cli"
        self.ip_srv, self.ip_cli = "10.79.0.2", "10.79.0.1"
        self.vs, self.vc = f"gewb{tag}s", f"gewb{tag}c"

    def __enter__(self):
        for ns in (self.srv, self.cli):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", self.vc, "netns", self.cli, "type", "veth", "peer", "name", self.vs, "netns", self.srv)
        for ns, dev, a in ((self.srv, self.vs, self.ip_srv), (self.cli, self.vc, self.ip_cli)):
            sh("ip", "-n", ns, "addr", "add", f"{a}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        # a new connection per request: TIME_WAIT sockets pile up on the client side
        sh("ip", "netns", "exec", self.cli, "sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1")
        sh("ip", "netns", "exec", self.cli, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65000")
        return self

    def __exit__(self, *exc):
        for ns in (self.srv, self.cli):
            sh("ip", "netns", "del", ns, check=False)


def churn(net: Net, n: int) -> float:
    return bench(net, 0, n)


def observed(gew: str, net: Net, n: int) -> dict:
    fd, rec = tempfile.mkstemp(prefix="gewbench-", suffix=".gewrec")
    os.close(fd)
    os.unlink(rec)
    p = subprocess.Popen([gew, "session", "apply", "--scope", f"netns={net.srv}", "--bpf-stats", "--record", rec],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(rec) and time.monotonic() < deadline:
            if p.poll() is not None:
                raise RuntimeError(f"gew exited: {p.stdout.read()[-300:]}")
            time.sleep(0.1)
        time.sleep(1.0)
        rate = churn(net, n)
        time.sleep(1.5)
    finally:
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=60)
    kinds: collections.Counter = collections.Counter()
    stats = None
    with RecordingReader(rec) as r:
        for record in r.records():
            which = record.WhichOneof("body")
            if which == "event":
                kinds[record.event.WhichOneof("body")] += 1
            elif which == "stats":
                stats = record.stats
    os.unlink(rec)
    return {"rate": rate, "kinds": kinds, "stats": stats, "out": out}


def bench(net: Net, keepalive: int, n: int) -> float:
    r = sh("ip", "netns", "exec", net.cli, "redis-benchmark", "-h", net.ip_srv, "-p", str(REDIS_PORT),
           "-c", "32", "-n", str(n), "-k", str(keepalive), "-t", "ping_inline", "-q")
    for part in r.stdout.replace("\r", "\n").splitlines():
        if "requests per second" in part:
            return float(part.split(":", 1)[1].split("requests")[0])
    raise RuntimeError(f"no rate in redis-benchmark output: {r.stdout[-200:]!r}")


def program_costs(net: Net, n: int) -> None:
    """Each program's kernel run time (BPF_ENABLE_STATS) per request, on churn (-k 0) and
    request/response over kept-alive connections (-k 1), per-event path and lifecycle."""
    import threading

    from gewtui.kernel.plane import KernelPlane, PlaneConfig, ScopeFilter

    inode = os.stat(f"/run/netns/{net.srv}").st_ino
    print(f"\nper program, {n} requests each (runs and ns per request; ns per run)")
    for workload, keep in (("churn", 0), ("request/response", 1)):
        for lifecycle in (False, True):
            plane = KernelPlane(None, PlaneConfig(bpf_stats=True, lifecycle=lifecycle), on_event=lambda e: None)
            try:
                plane.stage()
                plane.verify()
                plane.set_scope(ScopeFilter(netns_inodes=(inode,)))
                plane.attach()
                before = plane.program_stats()
                out: dict = {}
                t = threading.Thread(target=lambda: out.setdefault("rate", bench(net, keep, n)))
                t.start()
                while t.is_alive():
                    plane.poll(20)
                for _ in range(20):
                    plane.poll(20)
                after = plane.program_stats()
                st = plane.stats()
            finally:
                plane.close()
            mode = "lifecycle" if lifecycle else "per-event"
            total = sum(after[k].run_time_ns - before[k].run_time_ns for k in after)
            print(f"{workload} ({mode}): {out['rate']:.0f} req/s, records {st.produced} "
                  f"({st.produced / n:.2f}/req), lost {st.lost}, BPF {total / n:.0f} ns/req")
            for k in sorted(after, key=lambda k: -(after[k].run_time_ns - before[k].run_time_ns)):
                runs = after[k].run_cnt - before[k].run_cnt
                ns = after[k].run_time_ns - before[k].run_time_ns
                if runs:
                    print(f"   {k:<24} {runs / n:7.2f} runs/req {ns / n:7.0f} ns/req {ns / runs:6.0f} ns/run")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example: sudo .venv/bin/python -m bench.bench_records -n 20000")
    ap.add_argument("--gew", action="append", help="a gew executable to run as the observer (repeatable)")
    ap.add_argument("-n", type=int, default=60000, help="connections per run (default 60000)")
    ap.add_argument("--no-programs", dest="programs", action="store_false",
                    help="skip timing each program per request, per-event path against lifecycle, on churn "
                         "and on request/response (in-process planes with BPF statistics)")
    args = ap.parse_args(argv)
    gews = args.gew or [os.path.join(os.path.dirname(sys.executable), "gew")]
    if os.geteuid() != 0:
        print("bench_records: needs root (namespaces, probes)", file=sys.stderr)
        return 77
    print("## Records per connection and BPF cost on connection churn (bench_records.py)\n")
    print(f"redis-server and `redis-benchmark -c 32 -n {args.n} -k 0 -t ping_inline` in two namespaces over a "
          "veth pair, normal scheduling, one sitting; other work may share this machine. Records, loss and BPF "
          "time from each recording's final SessionStats (`--bpf-stats`).\n")
    print("```")
    with Net() as net:
        srv = subprocess.Popen(["ip", "netns", "exec", net.srv, "redis-server", "--port", str(REDIS_PORT),
                                "--bind", net.ip_srv, "--save", "", "--appendonly", "no", "--protected-mode", "no",
                                "--daemonize", "no", "--loglevel", "warning"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            base = churn(net, args.n)
            print(f"{'observer':<40} {'conn/s':>8} {'x':>5} {'events':>8} {'records':>8} {'lost':>6} "
                  f"{'rec/conn':>8} {'ev/conn':>8} {'bpf ns/conn':>11}")
            print(f"{'none':<40} {base:8.0f} {1.0:5.2f}")
            for gew in gews:
                o = observed(gew, net, args.n)
                s = o["stats"]
                ev = sum(o["kinds"].values())
                produced = s.produced if s else 0
                lost = s.lost_records if s else -1
                bpf = s.bpf_run_time_ns if s else 0
                print(f"{gew[-40:]:<40} {o['rate']:8.0f} {o['rate'] / base:5.2f} {ev:8d} {produced:8d} {lost:6d} "
                      f"{produced / args.n:8.2f} {ev / args.n:8.2f} {bpf / args.n:11.0f}")
                print("   events by kind: " + ", ".join(f"{k} {v}" for k, v in o["kinds"].most_common()))
            if args.programs:
                program_costs(net, args.n)
            print("```")
        finally:
            srv.terminate()
            srv.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
