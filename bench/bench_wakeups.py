"""What a bulk stream loses to the consumer's wakeups: `bench/tcpload.c` bulk between two
scratch namespaces over a veth pair, against gew's kernel side alone
(bench/churn_kernel_only.py: every probe unit, the session's 64 MiB ring buffer, a consumer
that takes records and decodes nothing) woken in different ways, interleaved, the order
reversed every other round:
- ``none``: no observer;
- ``no-drain``: the programs attached, the consumer never reading the ring (the programs'
  own cost);
- ``W/Sms, always``: the consumer woken every W records per CPU and probe
  (``PlaneConfig.wake_every``) however slowly they come, polling in S ms slices
  (``poll_slice_ms``);
- ``32/100ms, quiet while slow``: as the plane runs (the report marks its default): no
  record forces a wakeup while they average under 2,000 a second (transport.WakePolicy).
  32/10ms were the settings before. 256/100ms woke least, but it cost connection churn (a
  closed loop through one redis thread, which feels the consumer's longer bursts) about a
  sixth of its rate in bench_churn (0.59–0.60 of it under `gew session apply`, against
  0.68–0.73 at 32 records). So the default keeps 32 records and takes the 100 ms slices.

KINDER SET-UP, on purpose: the workload's client is pinned to CPU 0 and its server to CPU 1
(taskset). Unpinned, the scheduler's placement of sender, receiver and softirq spreads this
machine's unobserved runs from 15 to 40 Gbit/s and hides the effect. The observer is not
pinned. For each run, the sender's retransmissions (TcpRetransSegs, read with nstat inside
the client namespace) and the observer's context switches per second.

``.venv/bin/python bench/bench_wakeups.py [--rounds N] [--seconds S]``
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _util import build_c, end, load, log, med, require_root, spread, table, veth_pair  # noqa: E402

PORT = 21081
SETTINGS = ((32, 10), (32, 100), (256, 100))
OBSERVERS = {"none": None, "no-drain": ["--no-drain"],
             **{f"{w}/{ms}ms, always": ["--wake-every", str(w), "--poll-slice-ms", str(ms), "--always-wake"]
                for w, ms in SETTINGS},
             "32/100ms, quiet while slow": ["--wake-every", "32", "--poll-slice-ms", "100"]}


def _switches(pid: int) -> int:
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/status") as f:
            total += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
    return total


def _retrans(ns: str) -> int:
    r = subprocess.run(["ip", "netns", "exec", ns, "nstat", "-az", "--json"], capture_output=True, text=True,
                       check=True)
    return int(json.loads(r.stdout)["kernel"].get("TcpRetransSegs", 0))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args(argv[1:])
    require_root("Bulk stream against the consumer's wakeups")
    load_start = load()
    runs: dict[str, list[tuple[float, int, float]]] = {k: [] for k in OBSERVERS}
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory(prefix="gew-wake-") as tmp, veth_pair("wak", 243) as (ns_a, ns_b, _dev, server):
        tcpload = build_c("tcpload.c", tmp)
        srv = subprocess.Popen(["taskset", "-c", "1", "ip", "netns", "exec", ns_b, tcpload, "serve", str(PORT)],
                               stdout=subprocess.PIPE, text=True)
        try:
            if srv.stdout is None or srv.stdout.readline().strip() != "ready":
                raise RuntimeError("tcpload server did not start")

            def bulk() -> float:
                out = subprocess.run(["taskset", "-c", "0", "ip", "netns", "exec", ns_a, tcpload, "bulk", server,
                                      str(PORT), str(a.seconds)], capture_output=True, text=True, check=True).stdout
                m = re.search(r"bytes=(\d+) seconds=([\d.]+)", out)
                if not m:
                    raise RuntimeError(f"tcpload bulk failed: {out.strip()}")
                return int(m.group(1)) * 8 / float(m.group(2)) / 1e9

            bulk()      # warm up
            names = list(OBSERVERS)
            for rnd in range(a.rounds):
                for name in (names if rnd % 2 == 0 else names[::-1]):
                    p = None
                    if OBSERVERS[name] is not None:
                        p = subprocess.Popen([sys.executable, os.path.join(here, "churn_kernel_only.py"), "--netns",
                                              ns_a, "--netns", ns_b, *OBSERVERS[name]], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    try:
                        if p is not None and (p.stdout.readline() or "").strip() != "ready":
                            raise RuntimeError(f"observer did not start: {p.stderr.read().strip()[-300:]}")
                        r0, w0 = _retrans(ns_a), _switches(p.pid) if p else 0
                        gbit = bulk()
                        rtx, wakes = _retrans(ns_a) - r0, ((_switches(p.pid) - w0) / a.seconds if p else 0.0)
                        if p is not None:
                            p.stdin.write("stop\n")
                            p.stdin.flush()
                            p.communicate(timeout=60)
                    finally:
                        if p is not None:
                            end(p)
                    runs[name].append((gbit, rtx, wakes))
                    log(f"round {rnd} {name:9s} {gbit:6.2f} Gbit/s  retransmits {rtx:,}  observer switches/s {wakes:.0f}")
        finally:
            end(srv)
    from gewtui.kernel.plane_contract import PlaneConfig

    cfg = PlaneConfig()
    default = f"{cfg.wake_every}/{cfg.poll_slice_ms}ms, quiet while slow"
    base = med([g for g, _, _ in runs["none"]])
    rows = [[name + (" (the plane's default)" if name == default else ""), spread([g for g, _, _ in rs], "{:.2f}"), f"{med([g for g, _, _ in rs]) / base:.3f}",
             spread([r for _, r, _ in rs]), spread([w for _, _, w in rs]) if OBSERVERS[name] is not None else "—"]
            for name, rs in runs.items()]
    print("## Bulk stream against the consumer's wakeups (bench_wakeups.py)\n")
    print(f"`tcpload` bulk over a veth pair, {a.rounds} rounds of {a.seconds:g} s, interleaved; KINDER SET-UP: the "
          f"workload's client pinned to CPU 0 and its server to CPU 1, the observer unpinned, fair class, nice 0. "
          f"Load: {load_start} at the start, {load()} at the end.\n")
    print(table(["observer (gew's kernel side, records taken, not decoded)", "Gbit/s, median [min..max]",
                 "× unobserved (medians)", "sender's retransmissions per run", "observer context switches/s"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
