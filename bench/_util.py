"""Shared by the kernel benches (ingest, traffic, kill-to-clean): medians and ranges,
interleaved runs, ratios, Markdown tables, the machine's load, CPU pinning, building a
small C program, and a scratch network namespace that is always removed.

The benches measure on a shared, noisy machine: every figure is a median of interleaved
runs beside a baseline taken in the same run, and the load average is printed with it.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from typing import Callable, Iterator, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def log(msg: str) -> None:
    """Progress on stderr (stdout is the Markdown the runner collects)."""
    print(f"  {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        print(f"## {what}\n\n_not run: needs root (attaches eBPF programs, creates network namespaces)_")
        sys.exit(0)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} CPUs"


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    """'median [min..max]'."""
    if not values:
        return "n/a"
    return f"{fmt.format(med(values))} [{fmt.format(min(values))}..{fmt.format(max(values))}]"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> str:
    """A Markdown table; ``align`` has one letter per column (l or r), default l then r."""
    align = align or "l" + "r" * (len(headers) - 1)
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def interleaved(variants: dict[str, Callable[[], float]], rounds: int,
                on_result: Callable[[str, int, float], None] | None = None) -> dict[str, list[float]]:
    """Run every variant once per round, alternating the order each round (ABAB.., BABA..)
    so slow drift on the machine falls on all of them alike."""
    names = list(variants)
    results: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in (names if r % 2 == 0 else names[::-1]):
            v = variants[n]()
            results[n].append(v)
            if on_result is not None:
                on_result(n, r, v)
    return results


def pin(cpu: int, pid: int = 0) -> None:
    os.sched_setaffinity(pid, {cpu % (os.cpu_count() or 1)})


def cpus() -> tuple[int, int]:
    """(workload CPU, consumer CPU): the two the benches split the work over."""
    n = os.cpu_count() or 1
    return 0, (1 if n > 1 else 0)


def build_c(src: str, out_dir: str, *flags: str) -> str:
    """Compile bench/<src> with gcc -O2 into out_dir; returns the binary's path."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise SystemExit(f"a C compiler is needed to build {src} (apt-get install gcc)")
    out = os.path.join(out_dir, os.path.splitext(os.path.basename(src))[0])
    subprocess.run([cc, "-O2", "-Wall", "-o", out, os.path.join(ROOT, "bench", src), *flags], check=True)
    return out


@contextlib.contextmanager
def scratch_netns(tag: str) -> Iterator[str]:
    """A network namespace gewt-<tag>-<random> with lo up, deleted on every path."""
    name = f"gewt-{tag}-{secrets.token_hex(2)}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def end(p: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a process this bench started (by its pid): SIGTERM, then SIGKILL."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
