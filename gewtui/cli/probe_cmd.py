"""``gew probe list [--json] [--no-load]``: every probe unit, its tracepoints and capability
state, and whether its programs load (compile with bcc and pass the verifier; nothing is
attached). Loading touches the kernel, so the command needs root.
"""
from __future__ import annotations

import json
import sys

EPILOG = """\
examples:
  gew probe list                    each probe, its tracepoints, whether it compiles and loads here
  gew probe list --no-load          judge from the tracepoints only (fast, nothing loaded)
  gew probe list --json | jq -r '.probes[] | select(.state != "fully supported") | .name'
"""


def add_arguments(p, words) -> None:
    import argparse

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-load", action="store_true",
                   help="only judge capabilities; do not compile and load the programs")


def _worst(report, names: list[str]) -> tuple[int, str]:
    by = {c.name: c for c in report.capabilities}
    worst, why = 3, ""
    for n in names:
        c = by.get(n)
        state, reason = (c.state, c.reason) if c is not None else (1, "not in the capability report")
        if state < worst:
            worst, why = state, f"{n}: {reason}"
    return worst, why


def load_check(units) -> dict[str, str | None]:
    """Compile and load the runnable units without attaching; {unit: None or why not}.
    One object for all first; if that fails, each unit alone to name the culprit."""
    import os

    from gewtui.errors import GewError
    from gewtui.kernel.plane import KernelPlane, PlaneConfig

    def attempt(names) -> str | None:
        plane = KernelPlane(names, PlaneConfig(strict=True, ringbuf_pages=1, bpf_stats=False))
        try:
            # bcc (C code) writes compiler and verifier diagnostics to fd 2; keep the table clean
            saved = os.dup(2)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            try:
                plane.stage()
                plane.verify()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                os.close(null)
            return None
        except GewError as e:
            return e.message
        finally:
            plane.close()

    names = [u.name for u in units]
    if not names:
        return {}
    if attempt(names) is None:
        return {n: None for n in names}
    return {n: attempt([n]) for n in names}


def run(args) -> int:
    from gewtui.kernel.build import capability_report, runnable
    from gewtui.kernel.probes import UNITS
    from gewtui.runtime.capabilities import STATE_WORDS
    from gewtui.runtime.privileges import require_root

    require_root("probe list")
    report = capability_report()
    ok, skipped = runnable(UNITS, report)
    loads = {} if args.no_load else load_check(ok)
    by = {c.name: c for c in report.capabilities}
    probes = []
    for u in UNITS:
        state, why = _worst(report, u.capability_names())
        if u.name in skipped and state == 3:
            state, why = 1, skipped[u.name]
        tps = []
        for p in u.programs:
            cap = next((t.capability for t in u.tracepoints if (t.group, t.name) == (p.group, p.name)), "")
            c = by.get(cap)
            tps.append({"tracepoint": f"{p.group}:{p.name}", "attach": "raw_tracepoint" if p.raw else "tracepoint",
                        "program": p.fn, "state": STATE_WORDS.get(c.state, "?") if c else "not supported",
                        "reason": c.reason if c else "not in the capability report"})
        load = loads.get(u.name, "not checked") if u.name not in skipped else "not loadable"
        probes.append({
            "name": u.name, "summary": u.summary, "source": f"bpf/{u.source}",
            "state": STATE_WORDS[state], "reason": why, "depends": list(u.depends),
            "loads": None if load in ("not checked",) else load is None,
            "load_error": load if isinstance(load, str) and load not in ("not checked",) else "",
            "tracepoints": tps,
        })
    if args.json:
        print(json.dumps({"probes": probes}, indent=2))
        return 0
    from gewtui.cli.runtime_cmd import table

    rows = []
    for p in probes:
        loaded = "-" if p["loads"] is None else ("yes" if p["loads"] else "no")
        first = True
        for t in p["tracepoints"]:
            rows.append([p["name"] if first else "", p["state"] if first else "", loaded if first else "",
                         ("raw " if t["attach"] == "raw_tracepoint" else "") + t["tracepoint"]])
            first = False
        if p["reason"] and p["state"] != "fully supported":
            rows.append(["", "", "", f"  why: {p['reason']}"])
        if p["load_error"] and p["loads"] is False:
            rows.append(["", "", "", f"  load: {p['load_error']}"])
    sys.stdout.write(table(rows, ["PROBE", "STATE", "LOADS", "TRACEPOINTS"]) + "\n")
    return 0
