"""Kill-to-clean: the time from `gew session gc` starting to a clean kernel after a live
session holding 10 drops was SIGKILLed, against `gew session gc` with nothing to clean,
measured in the same run.

The session is a real one (every probe unit attached, maps pinned, recording) in a
scratch namespace with a veth; its 10 drops go through the intervention gate and
controller (allow-intervention on the holder's own command line, a typed confirmation
per flow) onto flows the bench describes to the controller, as the drop tests do. The
holder process is SIGKILLed once every drop is in the kernel. The clock starts when
`python -m gewtui.cli.main session gc --instance I` is started (the interpreter's start
is part of what a user waits for) and stops when the kernel is clean: no pin of the
session, no tc filter or clsact qdisc of ours on the veth, and none of the BPF programs
and maps the holder had open still loaded. Baseline and kill runs alternate.

``.venv/bin/python bench/bench_kill_to_clean.py [--runs N]``; run as
``bench_kill_to_clean.py hold CONFIG --allow-intervention`` it is the holder.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _util import (ROOT, bpf_id_exists, bpf_ids_of, load, log, med, require_root, spread,  # noqa: E402
                   table, veth_pair)

DROPS = 10


def hold(cfg: dict) -> None:
    """Open a full live session, drop DROPS flows, report, and wait to be killed."""
    from gewtui.intervene.gate import Confirmation
    from gewtui.intervene.controller import controller_for
    from gewtui.kernel.live import LiveSession
    from gewtui.pb import events_pb2
    from tests.test_intervention_lab import LabEngine   # flow snapshots as the engine holds them

    live = LiveSession([f"netns={cfg['netns']}"], record=cfg["record"], instance=cfg["instance"],
                       allow_intervention=True).open()
    base = bytes(map(int, cfg["client"].split(".")))
    peer = bytes(map(int, cfg["server"].split(".")))
    flows = {i: events_pb2.Tuple(family=2, saddr=base, daddr=peer, sport=40000 + i, dport=5000 + i, protocol=6)
             for i in range(1, DROPS + 1)}
    ctl = controller_for(live, LabEngine(cfg["netns"], cfg["ifname"], flows), ttl_s=600)
    for fid in flows:
        ctl.request_drop(fid, Confirmation.typed_now(str(fid), fid, live.session_id))
    print("ready", live.session_id, len(ctl.active()), flush=True)
    while True:
        live.poll(100)


def _tc(ns: str, *args: str) -> str:
    return subprocess.run(["tc", "-n", ns, *args], capture_output=True, text=True).stdout


def _ours(ns: str, dev: str) -> bool:
    """Any tc object of ours on the interface: a gew_deny filter or a clsact qdisc (the veth
    had none before, so one now is the session's)."""
    if "clsact" in _tc(ns, "qdisc", "show", "dev", dev):
        return True
    return any("gew_deny" in _tc(ns, "filter", "show", "dev", dev, d) for d in ("ingress", "egress"))


def gc(instance: str) -> tuple[float, str]:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "gewtui.cli.main", "session", "gc", "--instance", instance],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError(f"gew session gc failed ({r.returncode}): {r.stderr.strip()[-300:]}")
    return took, (r.stdout + r.stderr).strip()


class Bench:
    def __init__(self, a: str, dev: str, server: str, tmp: str):
        from gewtui.kernel.bpffs import Instance

        self.a, self.dev, self.server, self.tmp = a, dev, server, tmp
        self.instance = f"bench{secrets.token_hex(3)}"
        self.inst = Instance(self.instance)
        self.base: list[float] = []
        self.gc_kill: list[float] = []
        self.clean: list[float] = []
        self.objects: list[int] = []
        self.removed = ""

    def baseline(self) -> None:
        took, _ = gc(self.instance)
        self.base.append(took)
        log(f"gc, nothing to clean: {took:.3f}s")

    def kill(self) -> None:
        cfg = {"netns": self.a, "ifname": self.dev, "record": os.path.join(self.tmp, "held.gewrec"),
               "instance": self.instance, "client": "10.77.242.1", "server": self.server}
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "hold", json.dumps(cfg),
                              "--allow-intervention"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        try:
            line = p.stdout.readline() if p.stdout else ""
            if not line.startswith("ready") or line.split()[2] != str(DROPS):
                raise RuntimeError(f"holder did not start: {line!r} {p.stderr.read()[-500:] if p.stderr else ''}")
            sid = line.split()[1]
            held = bpf_ids_of(p.pid)
            if not _ours(self.a, self.dev):
                raise RuntimeError("the drops' tc filters are not on the interface")
        finally:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait(10)
        pins = self.inst.session_bpffs(sid)
        t0 = time.monotonic()
        took, out = gc(self.instance)
        while True:
            left = [i for k in ("prog", "map") for i in held[k] if bpf_id_exists(k, i)]
            if not left and not os.path.exists(pins) and not _ours(self.a, self.dev):
                break
            if time.monotonic() - t0 > 30:
                raise RuntimeError(f"not clean 30 s after gc: {len(left)} objects, pins {os.path.exists(pins)}")
            time.sleep(0.002)
        clean = time.monotonic() - t0
        self.gc_kill.append(took)
        self.clean.append(clean)
        self.objects.append(len(held["prog"]) + len(held["map"]))
        lines = [ln.strip() for ln in out.splitlines()[1:] if ln.strip()]
        counts = {what: sum(ln.startswith(f"removed {what}") for ln in lines)
                  for what in ("pin", "tc filter", "clsact qdisc", "manifest")}
        self.removed = ", ".join(f"{n} {what}{'s' if n != 1 else ''}" for what, n in counts.items() if n)
        self.removed += "".join(f"; {ln}" for ln in lines if not ln.startswith("removed "))
        log(f"gc after SIGKILL with {DROPS} drops: gc {took:.3f}s, clean at {clean:.3f}s "
            f"({self.objects[-1]} BPF objects held)")


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "hold":
        hold(json.loads(argv[2]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ns = ap.parse_args(argv[1:])
    require_root("Kill-to-clean")
    load_start = load()
    with tempfile.TemporaryDirectory(prefix="gew-bench-") as tmp, veth_pair("ktc", 242) as (a, _b, dev, server):
        bench = Bench(a, dev, server, tmp)
        try:
            for r in range(ns.runs):
                for step in ((bench.baseline, bench.kill) if r % 2 == 0 else (bench.kill, bench.baseline)):
                    step()
        finally:
            bench.inst.gc()     # whatever a failed run left
    print(report(bench, ns.runs, load_start))
    return 0


def report(b: Bench, runs: int, load_start: str) -> str:
    rows = [["`gew session gc`, nothing to clean (baseline)", spread(b.base, "{:.3f}"), "", "1.00"],
            [f"`gew session gc` after a SIGKILLed session with {DROPS} drops",
             spread(b.gc_kill, "{:.3f}"), spread(b.clean, "{:.3f}"), f"{med(b.clean) / med(b.base):.2f}"]]
    return "\n".join([
        "## Kill-to-clean\n",
        f"A full live session (every probe unit, pinned maps, recording) with {DROPS} drops in force is "
        f"SIGKILLed; the clock runs from starting `gew session gc` to a kernel without the session's pins, "
        f"tc filters, clsact qdisc and any of the {med(b.objects):.0f} BPF programs and maps it held. "
        f"{runs} runs each, alternating with the baseline. Load: {load_start} at the start, {load()} at the end.\n",
        table(["case", "gc process, s, median [min..max]", "clean kernel, s", "clean ÷ baseline gc"], rows),
        f"\nWhat the last gc after a kill removed: {b.removed}.",
    ])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
