"""Run every benchmark and rewrite docs/PERFORMANCE.md with what they printed.

Each ``bench/bench_*.py`` is a script that measures against a baseline taken in the same run
and prints its figures as Markdown (a heading, a table, notes). This runner executes them one
after another (never in parallel: they would measure each other), shows progress, and writes
the collected output with the machine facts and the date. ``--only NAME`` runs a subset;
``--no-write`` leaves the document alone.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "PERFORMANCE.md"

INTRO = """# Performance

Figures measured by `make bench` on this machine; every figure is a ratio against a baseline
measured in the same run, or stated beside one, because these machines are shared and noisy.
Each section is the verbatim output of one `bench/bench_*.py`. Targets come from issue-level
requirements; where one is missed the section says by how much and what bounds it.
"""


def machine_facts() -> str:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown"
    return (f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC\n"
            f"- kernel: {platform.release()}, {os.cpu_count()} CPUs ({cpu})\n"
            f"- python: {platform.python_version()}\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], help="run only benches whose name contains this")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/PERFORMANCE.md alone")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds allowed per bench (default 1800)")
    ns = ap.parse_args(argv)
    benches = sorted(p for p in (ROOT / "bench").glob("bench_*.py")
                     if not ns.only or any(o in p.stem for o in ns.only))
    sections: list[str] = []
    failed = 0
    for i, path in enumerate(benches, 1):
        print(f"[{i}/{len(benches)}] {path.stem} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        try:
            r = subprocess.run([sys.executable, str(path)], cwd=ROOT, capture_output=True,
                               text=True, timeout=ns.timeout)
            out, ok = r.stdout.strip(), r.returncode == 0
            err = r.stderr.strip().splitlines()[-1:] if not ok else []
        except subprocess.TimeoutExpired:
            out, ok, err = "", False, [f"timed out after {ns.timeout}s"]
        took = time.monotonic() - t0
        print(f"    {'done' if ok else 'FAILED'} in {took:.0f}s", file=sys.stderr, flush=True)
        if out:
            print(out + "\n")
        if not ok:
            failed += 1
            out = (out + "\n\n" if out else f"## {path.stem}\n\n") + f"_failed: {' '.join(err)}_"
        sections.append(out)
    if not ns.no_write and not ns.only:
        DOC.write_text(INTRO + "\n" + machine_facts() + "\n" + "\n\n".join(sections) + "\n")
        print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
