"""Per-packet cost on traffic: TCP between two namespaces over a veth pair, with and without a
full live session attached (every probe unit, recording, the observation plane fed),
interleaved, with the session's own BPF run time from the kernel's program statistics.

Workloads (bench/tcpload.c, built with gcc): request/response — one connection,
TCP_NODELAY, a 64-byte request and a 64-byte response, as many as fit in the run (the
workload that shows per-packet cost); bulk — one connection writing 256 KiB chunks.
Everything runs as users run it: the fair scheduler, no pinning, no real-time priority, the
session at nice 0.

Each round runs both workloads without a session, with a session as it runs by default
(in this process, polled every 50 ms), with gew-tui's live engine (its own process, headless:
capture thread, engine, pump, UI), with the session's kernel side alone, and with a session
started with --bpf-stats, the order reversed every other round; a round's with/without pair
gives a paired ratio. The session's BPF cost is the change of
each program's run_time_ns / run_cnt over the --bpf-stats runs (kernel program statistics,
BPF_ENABLE_STATS: the kernel times every run, which itself costs ~100 ns per run, hence off
by default).

``--pin-workload`` pins the client to CPU 0 and the server to CPU 1 (a set-up kinder to
the workload, and said so in the report): on two vCPUs the scheduler's placement of sender,
receiver and softirq otherwise spreads unobserved bulk runs from 15 to 40 Gbit/s, which hides
a few-percent effect; pinned, they stay within a few percent of each other. The session
itself is never pinned.

``.venv/bin/python bench/bench_traffic.py [--rounds N] [--seconds S] [--pin-workload]``
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _util import boot_ci, build_c, end, load, log, med, proc_cpu_s, require_root, spread, table, veth_pair  # noqa: E402

PORT = 21080
SIZE = 64
TARGET_RR, TARGET_BULK, TARGET_NS = 0.95, 0.97, 300
# --pin-workload: taskset prefixes for the client and the server
PIN_CLIENT: list[str] = []
PIN_SERVER: list[str] = []
PINNED = False


class Bench:
    def __init__(self, a: str, b: str, server: str, tcpload: str, seconds: float, tmp: str):
        self.a, self.b, self.server, self.tcpload, self.seconds, self.tmp = a, b, server, tcpload, seconds, tmp
        self.results: dict[tuple[str, bool | str], list[float]] = {}   # (mode, False|True|"stats")
        self.prog: dict[str, dict[str, list[int]]] = {"rr": {}, "bulk": {}}   # fn -> [run ns, runs]
        self.units: dict[str, float] = {"rr": 0.0, "bulk": 0.0}    # transactions with a session (rr)
        self.session_events = 0
        self.session_cpu: dict[str, list[float]] = {}     # the session process's CPU share per run
        self.kernel_side = ""                              # how the per-packet programs ran
        self.live_cpu: dict[str, list[float]] = {}        # the live engine process's CPU share per run
        self.live_lost = 0

    def client(self, mode: str, live=None) -> float:
        argv = (["rr", self.server, str(PORT), str(SIZE), str(self.seconds)] if mode == "rr"
                else ["bulk", self.server, str(PORT), str(self.seconds)])
        p = subprocess.Popen([*PIN_CLIENT, "ip", "netns", "exec", self.a, self.tcpload, *argv],
                             stdout=subprocess.PIPE, text=True)
        try:
            if live is not None:
                while p.poll() is None:
                    live.poll(50)
            out, _ = p.communicate(timeout=self.seconds + 30)
        finally:
            end(p)
        m = re.search(r"(transactions|bytes)=(\d+) seconds=([\d.]+)", out)
        if p.returncode != 0 or not m:
            raise RuntimeError(f"tcpload {mode} failed: {out.strip()}")
        n, secs = int(m.group(2)), float(m.group(3))
        return n / secs if mode == "rr" else n * 8 / secs / 1e9

    def without(self) -> None:
        for mode in ("rr", "bulk"):
            v = self.client(mode)
            self.results.setdefault((mode, False), []).append(v)
            log(f"{mode:4s} without session: {v:,.3f}")

    def with_session(self) -> None:
        self._session(stats=False)

    def with_stats(self) -> None:
        self._session(stats=True)

    def kernel_only(self) -> None:
        """gew's programs and ring buffer with a consumer that decodes nothing
        (bench/churn_kernel_only.py): what the kernel side alone costs the workload."""
        p = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                           "churn_kernel_only.py"), "--netns", self.a, "--netns", self.b],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            if (p.stdout.readline() or "").strip() != "ready":
                raise RuntimeError(f"kernel-only observer did not start: {p.stderr.read().strip()[-300:]}")
            for mode in ("rr", "bulk"):
                v = self.client(mode)
                self.results.setdefault((mode, "kernel"), []).append(v)
                log(f"{mode:4s} kernel side only: {v:,.3f}")
            p.stdin.write("stop\n")
            p.stdin.flush()
            p.communicate(timeout=60)
        finally:
            end(p)

    def live(self) -> None:
        """gew-tui's live engine (capture thread, engine, pump, the Textual app, headless:
        bench/churn_live.py), a process of its own as users run it."""
        rec = os.path.join(self.tmp, "live.gewrec")
        p = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "churn_live.py"),
                              "--scope", f"netns={self.a}", "--scope", f"netns={self.b}", "--record", rec],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            if (p.stdout.readline() or "").strip() != "ready":
                raise RuntimeError(f"live engine did not start: {p.stderr.read().strip()[-300:]}")
            time.sleep(1.0)     # its start (first views, the first paint) is not the workload's to pay
            for mode in ("rr", "bulk"):
                t0 = proc_cpu_s(p.pid)
                v = self.client(mode)
                self.live_cpu.setdefault(mode, []).append((proc_cpu_s(p.pid) - t0) / self.seconds)
                self.results.setdefault((mode, "live"), []).append(v)
                log(f"{mode:4s} with live engine: {v:,.3f} (its process: {self.live_cpu[mode][-1]:.1%} CPU)")
            p.stdin.write("stop\n")
            p.stdin.flush()
            out, err = p.communicate(timeout=120)
            if p.returncode != 0:
                raise RuntimeError(f"live engine failed ({p.returncode}): {err.strip()[-300:]}")
            r = json.loads([x for x in out.splitlines() if x.startswith("{")][-1])
            self.live_lost += int(r["lost"])
        finally:
            end(p)
        os.unlink(rec)

    def _session(self, stats: bool) -> None:
        from gewtui.kernel.live import LiveSession
        from gewtui.model.engine import Engine

        eng = Engine()
        with LiveSession([f"netns={self.a}", f"netns={self.b}"], record=os.path.join(self.tmp, "traffic.gewrec"),
                         instance="gewbench", on_event=eng.feed, bpf_stats=stats) as live:
            plane = live.session.plane
            self.kernel_side = kernel_side(plane)
            for mode in ("rr", "bulk"):
                before = plane.program_stats()
                cpu0 = time.process_time()
                v = self.client(mode, live)
                after = plane.program_stats()
                if not stats:
                    self.session_cpu.setdefault(mode, []).append((time.process_time() - cpu0) / self.seconds)
                    self.results.setdefault((mode, True), []).append(v)
                    log(f"{mode:4s} with session:    {v:,.3f} (session process: {self.session_cpu[mode][-1]:.1%} CPU)")
                    continue
                self.results.setdefault((mode, "stats"), []).append(v)
                log(f"{mode:4s} with --bpf-stats: {v:,.3f}")
                self.units[mode] += v * self.seconds
                for fn, st in after.items():
                    acc = self.prog[mode].setdefault(fn, [0, 0])
                    acc[0] += st.run_time_ns - before[fn].run_time_ns
                    acc[1] += st.run_cnt - before[fn].run_cnt
            live.poll(0)
        self.session_events += live.stats.events


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--pin-workload", action="store_true",
                    help="client on CPU 0, server on CPU 1 (kinder to the workload; the report says so)")
    ns = ap.parse_args(argv[1:])
    global PIN_CLIENT, PIN_SERVER, PINNED
    if ns.pin_workload:
        PIN_CLIENT, PIN_SERVER, PINNED = ["taskset", "-c", "0"], ["taskset", "-c", "1"], True
    require_root("Per-packet cost on traffic")
    load_start = load()
    with tempfile.TemporaryDirectory(prefix="gew-bench-") as tmp, veth_pair("trf", 241) as (a, b, _dev, server):
        tcpload = build_c("tcpload.c", tmp)
        srv = subprocess.Popen([*PIN_SERVER, "ip", "netns", "exec", b, tcpload, "serve", str(PORT)],
                               stdout=subprocess.PIPE, text=True)
        try:
            if srv.stdout is None or srv.stdout.readline().strip() != "ready":
                raise RuntimeError("tcpload server did not start")
            bench = Bench(a, b, server, tcpload, ns.seconds, tmp)
            for r in range(ns.rounds):
                log(f"round {r + 1}/{ns.rounds}")
                steps = (bench.with_session, bench.without, bench.live, bench.kernel_only, bench.with_stats)
                if r % 2:
                    steps = steps[::-1]
                for step in steps:
                    step()
        finally:
            end(srv)
    print(report(bench, ns.rounds, ns.seconds, load_start))
    return 0


def kernel_side(plane) -> str:
    """How the session's per-packet programs ran on this kernel (they choose at load)."""
    typed = getattr(plane, "typed", None)
    refused = getattr(plane, "typed_refused", {})
    if typed is None:
        how = "raw tracepoints"
    elif typed:
        how = f"BTF-typed (direct loads): {', '.join(f'`{t}`' for t in typed)}"
    else:
        how = "raw tracepoints" + (f" (typed refused: {'; '.join(refused.values())})" if refused else "")
    tracker = {"gew_softirq_entry", "gew_softirq_exit"} & set(plane.programs)
    ctx = ("a softirq tracker (two programs per softirq)" if tracker
           else "the CPU's preempt count, read only where a record is made")
    return f"Per-packet programs: {how}; execution context from {ctx}."


def report(b: Bench, rounds: int, seconds: float, load_start: str) -> str:
    out = ["## Per-packet cost on traffic" + (", workload pinned" if PINNED else "") + "\n",
           "TCP over a veth pair between two scratch namespaces; "
           + ("KINDER SET-UP: the workload's client pinned to CPU 0 and its server to CPU 1 (taskset), the "
              "session unpinned, fair class, nice 0; " if PINNED else
              "normal scheduling as users run it: fair class, no pinning, the session at nice 0; ")
           + f"{rounds} rounds of {seconds:g} s runs, without a session, with a full session as it runs by default (every probe "
           f"unit, recording, Engine.feed, polled every 50 ms in this process), with gew-tui's live engine in a process of its own "
           f"(bench/churn_live.py: capture thread, engine, pump and the Textual app, headless; the workload starts 1 s after it is up), with the session's kernel side alone (its programs and ring buffer, records "
           f"taken and not decoded) and with one started with --bpf-stats, the order reversed every other round. Load: {load_start} at the start, {load()} at "
           f"the end. The sessions recorded {b.session_events:,} events in all. {b.kernel_side}\n"]
    rows = []
    for mode, unit, target in (("rr", "transactions/s", TARGET_RR), ("bulk", "Gbit/s", TARGET_BULK)):
        wo = b.results.get((mode, False), [])
        for how in (True, "live", "kernel", "stats"):
            w = b.results.get((mode, how), [])
            pairs = [x / y for x, y in zip(w, wo) if y]
            r = med(w) / med(wo) if wo and w else float("nan")
            fmt = "{:,.0f}" if mode == "rr" else "{:.2f}"
            name = f"request/response, {SIZE} B ({unit})" if mode == "rr" else f"bulk stream ({unit})"
            if how == "stats":
                name += ", session with --bpf-stats"
            elif how == "live":
                name += ", gew-tui's live engine (headless)"
            elif how == "kernel":
                name += ", gew's programs and ring buffer only (records not decoded: a bound, not a mode)"
            lo, hi = boot_ci(pairs)
            rows.append([name, spread(wo, fmt), spread(w, fmt), f"{r:.3f}", spread(pairs, "{:.3f}"),
                         f"{lo:.3f}..{hi:.3f}",
                         f"≥ {target:.2f}: {'met' if r >= target else 'missed'}" if how in (True, "live")
                         else "(not the default)"])
    out.append(table(["workload", "without session, median [min..max]", "with session", "ratio of medians",
                      "paired ratio per round, median [min..max]", "90% interval of the paired median (bootstrap)",
                      "target"], rows))
    if b.live_cpu:
        out.append(f"\nThe live engine's process took {med(b.live_cpu.get('rr', [])):.1%} of a CPU on request/response "
                   f"and {med(b.live_cpu.get('bulk', [])):.1%} on bulk (medians); records it lost in all: {b.live_lost}.")
    # BPF cost
    for mode, label in (("rr", "request/response"), ("bulk", "bulk")):
        progs = b.prog[mode]
        ns_total = sum(v[0] for v in progs.values())
        runs = sum(v[1] for v in progs.values())
        units = b.units[mode]
        per_run = ns_total / runs if runs else float("nan")
        if mode == "rr":
            wo = med(b.results.get(("rr", False), [])) or float("nan")
            tx_ns = 1e9 / wo
            out.append(f"\nSession BPF time on {label} (the --bpf-stats runs): {per_run:,.0f} ns per program run (event), "
                       f"{runs / units:.1f} runs and {ns_total / units:,.0f} ns per transaction, i.e. "
                       f"{ns_total / units / tx_ns:.1%} of an unobserved transaction ({tx_ns / 1000:,.1f} µs at the "
                       f"median rate) spent in the session's programs, before the tracepoints' own dispatch "
                       f"(target ≤ {TARGET_NS} ns per event: {'met' if per_run <= TARGET_NS else 'missed'}).")
            if progs and ns_total:
                fn, (t, n) = max(progs.items(), key=lambda kv: kv[1][0])
                out.append(f"The largest share is `{fn}`: {t / ns_total:.0%} of the BPF time, {t / max(n, 1):,.0f} ns "
                           f"per run, {n / units:.1f} runs per transaction.\n")
        else:
            runs_with = len(b.results.get(("bulk", "stats"), []))
            busy = ns_total / (runs_with * seconds * 1e9) if runs_with else float("nan")
            out.append(f"\nSession BPF time on {label} (the --bpf-stats runs): {per_run:,.0f} ns per program run (event), "
                       f"{runs / (runs_with * seconds):,.0f} runs/s, {busy:.1%} of one CPU.\n")
        rows, rest_n, rest_t = [], 0, 0
        for fn, (t, n) in sorted(progs.items(), key=lambda kv: -kv[1][0]):
            if not n:
                continue
            if ns_total and t / ns_total < 0.005:
                rest_n, rest_t = rest_n + 1, rest_t + t
                continue
            per_unit = f"{n / units:.2f}" if mode == "rr" else f"{n / (rounds * seconds):,.0f}/s"
            rows.append([f"`{fn}`", per_unit, f"{t / n:,.0f}", f"{t / ns_total:.0%}" if ns_total else ""])
        if rest_n:
            rows.append([f"{rest_n} other programs (state changes, drops, routes...)", "", "",
                         f"{rest_t / ns_total:.1%}"])
        out.append(table(["program", "runs per transaction" if mode == "rr" else "runs", "ns per run",
                          "share of BPF time"], rows))
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
