"""Per-program BPF cost and recursion misses of the kernel plane under a lab scenario.

Runs a lab scenario under a real LiveSession for a few seconds and prints, per program,
the kernel's own statistics (runs, recursion misses, ns per run) read from each program's
fdinfo just before the session closes. With no arguments it runs healthy and lossy (as `make bench` does). Usage (root):

    .venv/bin/python bench/bench_recursion.py healthy lossy --seconds 5 --repeat 2
"""
from __future__ import annotations

import argparse
import secrets
import time

from gewtui.kernel.live import LiveSession
from gewtui.lab import Lab


def run(scenario: str, seconds: float) -> dict[str, tuple[int, int, int]]:
    """{program: (runs, run_time_ns, recursion_misses)} after ``seconds`` of ``scenario``."""
    with Lab(scenario, name="b" + secrets.token_hex(3)) as lab:
        with LiveSession(lab.scope_args, bpf_stats=True) as live:   # run counts need the kernel timing
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                live.poll(200)
            plane = live.session.plane
            if hasattr(plane, "program_stats"):
                stats = plane.program_stats()
            else:   # a tree from before program_stats() (the "before" of docs/probes.md)
                from gewtui.kernel.transport import prog_stats

                stats = {fn: prog_stats(fd) for fn, fd in plane._prog_fds.items()}
    return {fn: (s.run_cnt, s.run_time_ns, s.recursion_misses) for fn, s in stats.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenarios", nargs="*", default=["healthy", "lossy"])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    total: dict[str, list[int]] = {}
    for _ in range(a.repeat):
        for sc in a.scenarios:
            for fn, (runs, ns, miss) in run(sc, a.seconds).items():
                t = total.setdefault(fn, [0, 0, 0])
                t[0] += runs
                t[1] += ns
                t[2] += miss
    print("## Per-program BPF cost and recursion misses\n")
    print(f"Scenarios {', '.join(a.scenarios)}, {a.seconds:g} s each, {a.repeat} round(s); "
          "kernel program stats read just before the session closed.\n")
    print("```")
    print(f"{'program':24} {'runs':>10} {'misses':>8} {'per 100k':>9} {'ns/run':>7}")
    allr = allm = alln = 0
    for fn, (runs, ns, miss) in sorted(total.items(), key=lambda kv: -kv[1][0]):
        per = 1e5 * miss / runs if runs else 0.0
        print(f"{fn:24} {runs:10d} {miss:8d} {per:9.1f} {ns / runs if runs else 0:7.0f}")
        allr, allm, alln = allr + runs, allm + miss, alln + ns
    print(f"{'all':24} {allr:10d} {allm:8d} {1e5 * allm / max(allr, 1):9.1f} {alln / max(allr, 1):7.0f}")
    print("```")


if __name__ == "__main__":
    main()
