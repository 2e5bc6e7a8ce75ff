"""A session owner holding one drop until it is killed, run as its own process (its command line
carries --allow-intervention, as the controller requires), and the helpers the kill tests
use on it: open a live session over a plane that attaches nothing, spawn, SIGKILL, list our
tc filters.

    python -m tests.support.drop_owner child '<json config>' --allow-intervention
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gewtui.intervene.gate import Confirmation

ROOT = Path(__file__).resolve().parents[2]


def _open_live(netns: str, record: str, instance: str, **kw):
    from gewtui.kernel import live as live_mod
    from tests.support.intervention_lab import NullPlane, no_capability_check

    live_mod.verify_capabilities = no_capability_check     # the plane loads no probe
    live = live_mod.LiveSession([f"netns={netns}"], record=record, instance=instance,
                                allow_intervention=True, plane_factory=NullPlane,
                                gc_on_start=False, **kw)
    return live.open()


def _tuple_json(t) -> dict:
    return {"saddr": t.saddr.hex(), "daddr": t.daddr.hex(), "sport": t.sport, "dport": t.dport}


def _child(cfg: dict) -> None:
    """Hold one drop until killed. Its own command line carries --allow-intervention."""
    from gewtui.errors import GewError
    from gewtui.intervene.controller import controller_for
    from gewtui.pb import events_pb2
    from tests.support.intervention_lab import LabEngine

    t = cfg["tuple"]
    tup = events_pb2.Tuple(family=2, saddr=bytes.fromhex(t["saddr"]), daddr=bytes.fromhex(t["daddr"]),
                           sport=t["sport"], dport=t["dport"], protocol=6)
    live = _open_live(cfg["netns"], cfg["record"], cfg["instance"])
    engine = LabEngine(cfg["netns"], cfg["ifname"], {1: tup})
    ctl = controller_for(live, engine, ttl_s=cfg["ttl"])     # argv: the real /proc/self/cmdline
    try:
        rec = ctl.request_drop(1, Confirmation.typed_now("1", 1, live.session_id))
    except GewError as e:
        print("refused", e.message, flush=True)
        ctl.close()
        live.close()
        return
    print("ready", live.session_id, rec.intervention_id, flush=True)
    while True:
        time.sleep(1)


def _spawn_child(cfg: dict, flag: bool = True, env: dict | None = None
                 ) -> tuple[subprocess.Popen, str]:
    argv = [sys.executable, "-m", "tests.support.drop_owner", "child", json.dumps(cfg)]
    p = subprocess.Popen(argv + (["--allow-intervention"] if flag else []), cwd=ROOT,
                         env=None if env is None else {**os.environ, **env},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not flag:
        out, err = p.communicate(timeout=60)
        return p, out + err
    line = p.stdout.readline()
    if not line.startswith("ready"):
        p.kill()
        raise AssertionError(f"child did not start: {line!r} {p.stderr.read()[-2000:]}")
    return p, line.split()[1]


def _kill(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    p.wait(10)


def _ours(pair) -> list:
    from gewtui.kernel import tc

    return [f for f in tc.list_filters(pair.a_if, pair.a) if f.name == "gew_deny"]


if __name__ == "__main__" and len(sys.argv) >= 3 and sys.argv[1] == "child":
    _child(json.loads(sys.argv[2]))
