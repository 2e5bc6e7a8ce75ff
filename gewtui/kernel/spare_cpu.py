"""How much CPU the box leaves idle, for the live engine's duty (gewtui.kernel.capture).

While a busy capture runs, the engine folds at most a share of the wall time so that it never
takes a CPU the traced workload needs. On a box with CPUs to spare that share only makes the
engine lag for nothing: it may then fold flat out. ``SpareCpu.ample()`` says which box this
is, from the kernel's own accounting: the time ``/proc/stat`` counted idle over the last
window on the CPUs this process may run on (its affinity), plus the CPU the calling (engine)
thread itself used in it, since a resting engine's CPU shows up as idle. Folding flat out
needs one CPU and leaves ``headroom`` of a CPU idle besides; the verdict turns back once less
than ``headroom - hysteresis`` is left, so it does not flip on the accounting's 10 ms ticks.

The duty always holds where this cannot be judged: the accounting cannot be read, a cgroup
CPU quota applies (its idle CPUs are not this process's to take), the caller changed
threads, or the last judgement is older than a few windows (the box may have changed since).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable

PROC_STAT = "/proc/stat"
PROC_CGROUP = "/proc/self/cgroup"
CGROUP_ROOT = "/sys/fs/cgroup"
USER_HZ = os.sysconf("SC_CLK_TCK")
MAX_STAT_BYTES = 1 << 20      # the per-CPU lines come first; the rest of the file is not read
# /proc/stat's CPU lines: cpuN user nice system idle iowait irq softirq steal ...
_IDLE, _IOWAIT = 4, 5


def _cpu_lines(path: str) -> list[bytes] | None:
    """/proc/stat's per-CPU lines ("cpuN ..."), read until the first other line."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = b""
        while len(data) < MAX_STAT_BYTES:
            chunk = os.read(fd, 1 << 16)
            data += chunk
            if not chunk or b"\nintr" in data or b"\nctxt" in data:
                break
    except OSError:
        return None
    finally:
        os.close(fd)
    out = []
    for line in data.split(b"\n")[1:]:     # the first line is the sum over all CPUs
        if not line.startswith(b"cpu"):
            break
        out.append(line)
    return out


def idle_seconds(cpus: set[int] | None = None, path: str = PROC_STAT) -> float | None:
    """CPU seconds the CPUs in ``cpus`` (every CPU when None) spent idle (idle + iowait)
    since boot; None if the accounting cannot be read."""
    lines = _cpu_lines(path)
    if not lines:
        return None
    total = 0
    try:
        for line in lines:
            f = line.split()
            if cpus is not None and int(f[0][3:]) not in cpus:
                continue
            total += int(f[_IDLE]) + int(f[_IOWAIT])
    except (ValueError, IndexError):
        return None
    return total / USER_HZ


def cpu_quota(proc_cgroup: str = PROC_CGROUP, root: str = CGROUP_ROOT) -> float | None:
    """The CPUs a cgroup v2 quota (``cpu.max``) allows this process, the tightest of its
    cgroup and their parents; None when none applies or it cannot be read."""
    try:
        with open(proc_cgroup, "rb") as f:
            lines = f.read(1 << 16).split(b"\n")
    except OSError:
        return None
    rel = next((ln[3:].decode("utf-8", "replace") for ln in lines if ln.startswith(b"0::")), None)
    if rel is None:
        return None
    parts = [p for p in rel.split("/") if p and p not in (".", "..")]
    tightest = None
    for depth in range(len(parts), -1, -1):
        try:
            with open(os.path.join(root, *parts[:depth], "cpu.max"), "rb") as f:
                quota, _, period = f.read(256).decode("ascii", "replace").strip().partition(" ")
        except OSError:
            continue
        if quota == "max":
            continue
        try:
            cpus = int(quota) / int(period)
        except (ValueError, ZeroDivisionError):
            continue
        tightest = cpus if tightest is None else min(tightest, cpus)
    return tightest


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


class SpareCpu:
    """Whether the box has a CPU to spare for the calling thread, judged per ``window_s``."""

    def __init__(self, *, window_s: float = 0.25, headroom: float = 0.5, hysteresis: float = 0.2,
                 idle: Callable[[set[int] | None], float | None] = idle_seconds,
                 affinity: Callable[[], set[int] | None] = _affinity,
                 quota: Callable[[], float | None] = cpu_quota,
                 clock: Callable[[], float] = time.monotonic,
                 own: Callable[[], float] = time.thread_time) -> None:
        self.window_s, self.headroom, self.hysteresis = window_s, headroom, hysteresis
        self._idle, self._affinity, self._clock, self._own = idle, affinity, clock, own
        self.quota = quota()                  # read once: a session's cgroup does not move
        self._at: tuple[float, float, float, int] | None = None   # (wall, idle, own, thread) at the window's start
        self._ample = False
        self.spare = 0.0                      # CPUs, over the last whole window

    def ample(self) -> bool:
        now = self._clock()
        me = threading.get_ident()
        at = self._at
        if at is not None and at[3] == me and now - at[0] < self.window_s:
            return self._ample
        if self.quota is not None:
            return False
        idle, own = self._idle(self._affinity()), self._own()
        if idle is None:
            self._at, self._ample = None, False
            return False
        dt = now - at[0] if at is not None else 0.0
        if at is None or at[3] != me or dt > 4 * self.window_s or dt <= 0:
            # nothing to judge by yet, or a judgement too old or of another thread: the duty holds
            self._ample = False
        else:
            self.spare = ((idle - at[1]) + (own - at[2])) / dt
            need = 1 + self.headroom - (self.hysteresis if self._ample else 0.0)
            self._ample = self.spare >= need
        self._at = (now, idle, own, me)
        return self._ample
