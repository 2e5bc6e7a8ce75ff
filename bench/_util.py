"""Shared by the kernel benches (ingest, traffic, kill-to-clean): medians and ranges,
interleaved runs, ratios, Markdown tables, the machine's load, CPU pinning, building a
small C program, and a scratch network namespace that is always removed.

The benches measure on a shared, noisy machine: every figure is a median of interleaved
runs beside a baseline taken in the same run, and the load average is printed with it.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import re
import secrets
import struct
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


def boot_ci(values: Sequence[float], level: float = 0.9, n: int = 4000, seed: int = 1) -> tuple[float, float]:
    """A percentile bootstrap interval of the median (fixed seed: the same data give the same
    interval); (nan, nan) for fewer than 3 values."""
    import random

    if len(values) < 3:
        return float("nan"), float("nan")
    rnd = random.Random(seed)
    k = len(values)
    meds = sorted(med([values[rnd.randrange(k)] for _ in range(k)]) for _ in range(n))
    lo = meds[int((1 - level) / 2 * n)]
    hi = meds[min(n - 1, int((1 + level) / 2 * n))]
    return lo, hi


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


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process and its threads, in seconds (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


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


@contextlib.contextmanager
def veth_pair(tag: str, subnet: int) -> Iterator[tuple[str, str, str, str]]:
    """Namespaces gewt-<tag><rand>-a/-b joined by a veth pair with 10.77.<subnet>.1/.2;
    yields (a, b, a's interface, b's address). Both namespaces are deleted on every path
    (which also removes the pair)."""
    tag = f"{tag[:3]}{secrets.token_hex(2)}"
    a, b, dev_a, dev_b = f"gewt-{tag}-a", f"gewt-{tag}-b", f"gewt{tag}a", f"gewt{tag}b"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    try:
        for ns in (a, b):
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("link", "add", dev_a, "netns", a, "type", "veth", "peer", "name", dev_b, "netns", b)
        for ns, dev, host in ((a, dev_a, 1), (b, dev_b, 2)):
            ip("-n", ns, "addr", "add", f"10.77.{subnet}.{host}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
        yield a, b, dev_a, f"10.77.{subnet}.2"
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
_libc = ctypes.CDLL(None, use_errno=True)


def bpf_ids_of(pid: int) -> dict[str, set[int]]:
    """{"prog": ids, "map": ids} of the BPF objects a process holds file descriptors to."""
    out: dict[str, set[int]] = {"prog": set(), "map": set()}
    try:
        fds = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError:
        return out
    for fd in fds:
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                text = f.read()
        except OSError:
            continue
        for kind in ("prog", "map"):
            m = re.search(rf"^{kind}_id:\s*(\d+)", text, re.M)
            if m:
                out[kind].add(int(m.group(1)))
    return out


def bpf_id_exists(kind: str, obj_id: int) -> bool:
    """Whether the kernel still holds BPF program/map ``obj_id`` (BPF_*_GET_FD_BY_ID)."""
    cmd = {"prog": 13, "map": 14}[kind]
    attr = ctypes.create_string_buffer(struct.pack("=I", obj_id), 16)
    fd = _libc.syscall(ctypes.c_long(_SYS_BPF), ctypes.c_int(cmd), attr, ctypes.c_uint(16))
    if fd >= 0:
        os.close(fd)
        return True
    return False


def end(p: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a process this bench started (by its pid): SIGTERM, then SIGKILL."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class Sampler:
    """A sampling profiler for one thread of this process (what py-spy does, without the
    dependency): every ``interval`` s a helper thread reads the thread's stack. The helper
    needs the GIL to look, so samples land where the interpreter switches threads; the
    switch interval is lowered while sampling to keep that frequent. ``cpu`` pins the
    helper elsewhere: on the profiled thread's own CPU it would mostly run while that
    thread sleeps, and over-count the waiting."""

    def __init__(self, thread_id: int | None = None, interval: float = 0.001, cpu: int | None = None):
        import threading

        self.tid = thread_id if thread_id is not None else threading.get_ident()
        self.interval = interval
        self.cpu = cpu
        self.stacks: dict[tuple[str, ...], int] = {}    # outermost first
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._switch = sys.getswitchinterval()

    @staticmethod
    def _name(code) -> str:
        path = code.co_filename
        short = os.path.relpath(path, ROOT) if path.startswith(ROOT) else os.path.basename(path)
        return f"{code.co_qualname} ({short})"

    def _run(self) -> None:
        if self.cpu is not None:
            pin(self.cpu)       # this thread only (sched_setaffinity of the calling thread)
        names: dict[object, str] = {}
        while not self._stop.wait(self.interval):
            frame = sys._current_frames().get(self.tid)
            stack = []
            while frame is not None:
                code = frame.f_code
                n = names.get(code)
                if n is None:
                    n = names[code] = self._name(code)
                stack.append(n)
                frame = frame.f_back
            key = tuple(reversed(stack))
            self.stacks[key] = self.stacks.get(key, 0) + 1

    def __enter__(self) -> "Sampler":
        sys.setswitchinterval(self.interval / 2)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        sys.setswitchinterval(self._switch)

    def _within(self, part: str) -> list[tuple[tuple[str, ...], int]]:
        out = []
        for st, n in self.stacks.items():
            for i, f in enumerate(st):
                if part in f:
                    out.append((st[i:], n))
                    break
        return out

    def profile(self, within: str, n: int = 12, idle: str = "") -> tuple[int, float, list[tuple[str, float, float]]]:
        """(samples inside the function matching ``within`` and not waiting in ``idle``,
        the share of them that waited, [(function, inclusive share, self share)] of the n
        heaviest functions of the working samples by inclusive share)."""
        stacks = self._within(within)
        everything = sum(c for _, c in stacks) or 1
        if idle:
            stacks = [(st, c) for st, c in stacks if not any(idle in f for f in st)]
        total = sum(c for _, c in stacks) or 1
        inc: dict[str, int] = {}
        own: dict[str, int] = {}
        for st, c in stacks:
            for f in set(st):
                inc[f] = inc.get(f, 0) + c
            own[st[-1]] = own.get(st[-1], 0) + c
        top = sorted(inc, key=lambda f: -inc[f])[:n]
        return total, 1 - total / everything, [(f, inc[f] / total, own.get(f, 0) / total) for f in top]

    def print_profile(self, within: str, n: int = 25) -> None:
        """``profile(within, n)`` on stderr: inclusive share, self share, function."""
        for f, inc, own in self.profile(within, n)[2]:
            print(f"{inc:5.0%} {own:5.0%} {f}", file=sys.stderr)
