"""The tracepoint's own count of its hits, held against a program's count of its runs: runs
the kernel skipped without counting them.

Place in the pipeline: the kernel plane's loss accounting (gewtui.kernel.plane). A program
the kernel skips because it is already running on the CPU is counted in its
``recursion_misses``. On this machine's 6.18 kernel a raw tracepoint program on
skb:kfree_skb was also seen not to run for bursts of events in softirq (6 to 26 of ~350
drops in about one run of 20 of a tbf-limited iperf3 stream), with ``recursion_misses`` 0,
while ftrace and a perf counter on the same tracepoint saw every one (docs/probes.md,
"Runs the kernel skips without counting them"). So for the programs whose every run matters
(a drop: the gate acts on them) the plane opens a counting perf event on the tracepoint on
each CPU (no samples, no buffer) and the program counts its runs in ``gew_witness``; hits
minus runs, per CPU, is what the kernel skipped silently. A counting event still costs each
hit a few hundred ns (the perf tracepoint path fills its record), so state changes, ten per
short connection, have none (measured: docs/probes.md).

Order keeps the figure a lower bound, never an invention: the counters open after the
program is attached and stop before it is detached; each check reads the counters before
the runs and holds the runs against the hits of the check before (see Witnesses); runs
are read for every possible CPU, so a CPU gone offline keeps its runs; and skips the kernel
counted itself are taken off. No bcc here.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from gewtui.runtime.tracefs import tracefs_path

_PERF_TYPE_TRACEPOINT = 2
_PERF_EVENT_IOC_DISABLE = 0x2401
_SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "riscv64": 241, "ppc64le": 319, "s390x": 331,
                        "armv7l": 364}
_U64 = struct.Struct("=Q")     # the kernel writes the count in host order


class _Attr(ctypes.Structure):
    """struct perf_event_attr up to what a counting event needs; the rest stays zero (the
    kernel accepts a zeroed tail up to the size we pass)."""

    _fields_ = [("type", ctypes.c_uint32), ("size", ctypes.c_uint32), ("config", ctypes.c_uint64),
                ("sample_period", ctypes.c_uint64), ("sample_type", ctypes.c_uint64),
                ("read_format", ctypes.c_uint64), ("flags", ctypes.c_uint64),
                ("_rest", ctypes.c_uint8 * 80)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def online_cpus(text: str | None = None) -> list[int]:
    """CPUs listed in /sys/devices/system/cpu/online ("0-3,6")."""
    if text is None:
        with open("/sys/devices/system/cpu/online") as f:
            text = f.read()
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def tracepoint_id(group: str, name: str) -> int:
    root = tracefs_path()
    if root is None:
        raise OSError(errno.ENOENT, "tracefs is not mounted")
    with open(os.path.join(root, "events", group, name, "id")) as f:
        return int(f.read())


class Witness:
    """Per-CPU hit counters of one tracepoint (perf counting events, all tasks)."""

    def __init__(self, group: str, name: str, cpus: list[int] | None = None):
        nr = _SYS_PERF_EVENT_OPEN.get(os.uname().machine)
        if nr is None:
            raise OSError(errno.ENOSYS, f"perf_event_open is unknown on {os.uname().machine}")
        self.tracepoint = f"{group}:{name}"
        attr = _Attr(type=_PERF_TYPE_TRACEPOINT, size=ctypes.sizeof(_Attr), config=tracepoint_id(group, name))
        self.fds: dict[int, int] = {}
        try:
            for cpu in (cpus if cpus is not None else online_cpus()):
                fd = _libc.syscall(nr, ctypes.byref(attr), -1, cpu, -1, 0)
                if fd < 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"perf_event_open({self.tracepoint}, cpu {cpu}): {os.strerror(err)}")
                self.fds[cpu] = fd
        except BaseException:
            self.close()
            raise

    def hits(self) -> dict[int, int]:
        """cpu -> the tracepoint's hits on it since the counter opened (OSError when a
        counter cannot be read)."""
        out = {}
        for cpu, fd in self.fds.items():
            raw = os.read(fd, 8)
            if len(raw) != 8:
                raise OSError(errno.EIO, f"{self.tracepoint}: the counter on cpu {cpu} gave {len(raw)} bytes")
            out[cpu] = _U64.unpack(raw)[0]
        return out

    def stop(self) -> None:
        """Stop counting (before the program is detached: later hits have no run to match)."""
        for fd in self.fds.values():
            try:
                fcntl.ioctl(fd, _PERF_EVENT_IOC_DISABLE, 0)
            except OSError:
                pass

    def close(self) -> None:
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = {}


def skipped(hits: dict[int, int], runs: dict[int, int]) -> dict[int, int]:
    """cpu -> hits the program has no run for (never below 0: runs may be ahead, by the
    events between the two reads and before the counters opened)."""
    return {cpu: max(0, h - runs.get(cpu, 0)) for cpu, h in hits.items()}


@dataclass
class _Watched:
    """One witnessed program: its counter, its runs and kernel-counted misses before the
    counter opened, the hits read at the last check, and the skips reported so far."""

    unit: str
    program: Any
    counter: Witness
    runs0: dict[int, int]
    misses0: int
    last: dict[int, int] = field(default_factory=dict)
    reported: int = 0


class Witnesses:
    """A plane's witnessed programs. ``runs(slot)`` reads a program's runs per CPU from
    ``gew_witness`` (every possible CPU); ``misses(fn)`` the kernel's ``recursion_misses``
    of program ``fn`` (skips it counted itself, reported as such: not again here).

    Why each check holds the runs against the hits of the check before: the kernel calls a
    tracepoint's probes in the order they registered, and perf registers one probe for all
    its events on a tracepoint when the first is opened. If another tool (or another gew
    session) had a perf event there before this plane attached, perf counts a hit before
    the program runs for it; a hit read now may not have run yet, but one read a check ago
    has had a whole poll slice to. After ``stop`` the counters are still, and the check
    takes their final values."""

    def __init__(self, runs: Callable[[int], dict[int, int]], misses: Callable[[str], int]):
        self._runs, self._misses = runs, misses
        self._open: list[_Watched] = []
        self._stopped = False
        self.refused: dict[str, str] = {}     # program -> why its counters could not open (or failed)
        self.unrun = 0

    def open(self, programs: Iterable[tuple[str, Any]]) -> None:
        """(unit, Program) pairs, already attached: their runs so far, then the counters."""
        for unit, p in programs:
            before, misses = self._runs(p.witness), self._misses(p.fn)
            try:
                w = Witness(p.group, p.name, sorted(self._cpus(before)))
            except OSError as e:
                self.refused[p.fn] = str(e)
                continue
            self._open.append(_Watched(unit, p, w, before, misses))

    @staticmethod
    def _cpus(runs: dict[int, int]) -> list[int]:
        online = set(online_cpus())
        return [cpu for cpu in runs if cpu in online]

    def check(self) -> list[tuple[str, int]]:
        """(unit, hits) the programs have had no run for, beyond what the kernel counted
        as skipped, since the last check."""
        out = []
        for w in list(self._open):
            p = w.program
            try:
                now = w.counter.hits()       # first: runs read after can only be ahead
            except OSError as e:
                self.refused[p.fn] = f"its counter failed: {e}"
                w.counter.close()
                self._open.remove(w)
                continue
            hits, w.last = (now if self._stopped else w.last), now
            runs = self._runs(p.witness)
            gap = skipped(hits, {cpu: n - w.runs0.get(cpu, 0) for cpu, n in runs.items()})
            # a skip the kernel counted (recursion) never ran either: it is reported once,
            # as such (read last: a later count only makes this smaller)
            total = max(0, sum(gap.values()) - (self._misses(p.fn) - w.misses0))
            if total > w.reported:
                out.append((w.unit, total - w.reported))
                self.unrun += total - w.reported
                w.reported = total
        return out

    def stop(self) -> None:
        for w in self._open:
            w.counter.stop()
        self._stopped = True

    def close(self) -> None:
        for w in self._open:
            w.counter.close()
        self._open = []
