"""How much CPU the box leaves idle, for the live engine's duty (gewtui.kernel.capture).

While a busy capture runs, the engine folds at most a share of the wall time so that it never
takes a CPU the traced workload needs. On a box with CPUs to spare that share only makes the
engine lag for nothing: it may then fold flat out. ``SpareCpu.ample()`` says which box this
is, from the kernel's own accounting: the CPUs ``/proc/stat`` counted idle over the last
window, plus the CPU the calling (engine) thread itself used in it, since a resting engine's
CPU shows up as idle. Folding flat out needs one CPU and leaves ``headroom`` of a CPU idle
besides; a box that cannot give that (or whose accounting cannot be read) keeps the duty.
"""
from __future__ import annotations

import os
import time
from typing import Callable

PROC_STAT = "/proc/stat"
USER_HZ = os.sysconf("SC_CLK_TCK")
# /proc/stat's aggregate line: user nice system idle iowait irq softirq steal ...
_IDLE, _IOWAIT = 3, 4


def idle_seconds(path: str = PROC_STAT) -> float | None:
    """CPU seconds all CPUs spent idle (idle + iowait) since boot; None if unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            head = os.read(fd, 512)
        finally:
            os.close(fd)
        fields = head.split(b"\n", 1)[0].split()
        if fields[:1] != [b"cpu"]:
            return None
        return (int(fields[1 + _IDLE]) + int(fields[1 + _IOWAIT])) / USER_HZ
    except (OSError, ValueError, IndexError):
        return None


class SpareCpu:
    """Whether the box has a CPU to spare for the calling thread, judged per ``window_s``."""

    def __init__(self, *, window_s: float = 0.25, headroom: float = 0.5,
                 idle: Callable[[], float | None] = idle_seconds,
                 clock: Callable[[], float] = time.monotonic,
                 own: Callable[[], float] = time.thread_time) -> None:
        self.window_s, self.headroom = window_s, headroom
        self._idle, self._clock, self._own = idle, clock, own
        self._at: tuple[float, float, float] | None = None    # (wall, idle, own) at the window's start
        self._ample = False
        self.spare = 0.0                                        # CPUs, over the last whole window

    def ample(self) -> bool:
        now = self._clock()
        if self._at is not None and now - self._at[0] < self.window_s:
            return self._ample
        idle, own = self._idle(), self._own()
        if idle is None:
            self._at, self._ample = None, False
            return False
        if self._at is not None:
            t0, idle0, own0 = self._at
            dt = now - t0
            self.spare = ((idle - idle0) + (own - own0)) / dt
            self._ample = self.spare >= 1 + self.headroom
        self._at = (now, idle, own)
        return self._ample
