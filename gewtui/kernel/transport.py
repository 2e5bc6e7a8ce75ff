"""Moving data out of the kernel: the ring buffer (records to the decoder), the kernel-side
counters (produced / lost per probe and CPU), map reads for summaries, and the kernel's
per-program run-time statistics.

The ring-buffer callback copies each record once and returns 0 (bcc calls ``int()`` on
the return value; ``None`` would cost a raised-and-caught exception per record). Programs
submit most records without waking the consumer (bpf/gew_common.h), so draining runs on a
short poll slice rather than only on wakeups.
"""
from __future__ import annotations

import ctypes
import os
import platform
from dataclasses import dataclass, field
from typing import Iterator

from gewtui.kernel.probes.base import C_LOST, C_MAPFULL, C_NONETNS, C_PRODUCED, C_STRIDE, NPROBES

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "arm64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0


class RingTransport:
    """Drains the session's ring buffer into a decoder."""

    def __init__(self, bpf, decoder, map_name: str = "gew_rb"):
        self._bpf = bpf
        self._decoder = decoder
        self._string_at = ctypes.string_at
        self._record = decoder.record
        self._error: BaseException | None = None
        bpf[map_name.encode()].open_ring_buffer(self._callback)

    def _callback(self, _ctx, data, size) -> int:
        try:
            self._record(self._string_at(data, size))
        except BaseException as e:
            # an exception cannot cross the C callback: keep the first, re-raise from poll()
            if self._error is None:
                self._error = e
        return 0

    def _raise_pending(self) -> None:
        e, self._error = self._error, None
        if e is not None:
            raise e

    def poll(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for a wakeup, then drain what is there. Returns the
        number of records consumed."""
        before = self._decoder.consumed
        self._bpf.ring_buffer_poll(max(0, int(timeout_ms)))
        self._bpf.ring_buffer_consume()
        self._raise_pending()
        return self._decoder.consumed - before

    def drain(self) -> int:
        """Consume until the buffer is empty."""
        total = 0
        while True:
            before = self._decoder.consumed
            self._bpf.ring_buffer_consume()
            self._raise_pending()
            n = self._decoder.consumed - before
            total += n
            if n == 0:
                return total


@dataclass
class Counters:
    """Kernel-side counters summed per probe and per CPU."""

    produced: dict[int, int] = field(default_factory=dict)         # probe -> count
    lost: dict[tuple[int, int], int] = field(default_factory=dict)   # (probe, cpu) -> count
    map_full: dict[int, int] = field(default_factory=dict)
    no_netns: dict[int, int] = field(default_factory=dict)

    @property
    def total_produced(self) -> int:
        return sum(self.produced.values())

    @property
    def total_lost(self) -> int:
        return sum(self.lost.values())


def read_counters(bpf, table: str = "gew_counters") -> Counters:
    t = bpf[table.encode()]
    c = Counters()
    for probe in range(NPROBES):
        base = probe * C_STRIDE
        vals = {k: list(t.getvalue(t.Key(base + k))) for k in (C_PRODUCED, C_LOST, C_MAPFULL, C_NONETNS)}
        if any(vals[C_PRODUCED]):
            c.produced[probe] = int(sum(vals[C_PRODUCED]))
        for cpu, n in enumerate(vals[C_LOST]):
            if n:
                c.lost[(probe, cpu)] = int(n)
        if any(vals[C_MAPFULL]):
            c.map_full[probe] = int(sum(vals[C_MAPFULL]))
        if any(vals[C_NONETNS]):
            c.no_netns[probe] = int(sum(vals[C_NONETNS]))
    return c


def hash_items(bpf, table: str) -> Iterator[tuple[bytes, bytes]]:
    """(key bytes, value bytes) of every entry, read with one batch lookup. For per-CPU
    maps the value is the concatenation of each CPU's copy."""
    t = bpf[table.encode()]
    ksize, vsize = ctypes.sizeof(t.Key), ctypes.sizeof(t.Leaf)
    try:
        items = list(t.items_lookup_batch())
    except Exception:
        # batch ops missing (old kernel) or the map changed under the read: one by one
        items = list(t.items())
    for k, v in items:
        yield _raw(k, ksize), _raw(v, vsize)


def _raw(x, size: int) -> bytes:
    # ctypes hands scalar keys/leaves back as Python ints, structures and arrays as objects
    if isinstance(x, int):
        return (x & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    return bytes(x)


def per_cpu(raw: bytes, leaf_size: int) -> list[bytes]:
    """Split a per-CPU value into each CPU's copy (the kernel pads each to 8 bytes)."""
    step = (leaf_size + 7) // 8 * 8
    return [raw[i:i + leaf_size] for i in range(0, len(raw) - leaf_size + 1, step)]


@dataclass
class ProgStats:
    run_time_ns: int = 0
    run_cnt: int = 0
    recursion_misses: int = 0


def prog_stats(fd: int) -> ProgStats:
    """run_time_ns / run_cnt / recursion_misses of one program, from /proc/self/fdinfo."""
    s = ProgStats()
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                k, _, v = line.partition(":")
                v = v.strip()
                if k == "run_time_ns":
                    s.run_time_ns = int(v)
                elif k == "run_cnt":
                    s.run_cnt = int(v)
                elif k == "recursion_misses":
                    s.recursion_misses = int(v)
    except (OSError, ValueError):
        pass
    return s


class StatsEnabler:
    """Keeps the kernel's BPF run-time statistics on for the session's lifetime.

    BPF_ENABLE_STATS returns a file descriptor that keeps stats on while it is open (and
    the kernel closes it if this process dies), so nothing global is left changed. When
    the command is unavailable, the sysctl is set and its previous value restored."""

    def __init__(self):
        self._fd = -1
        self._sysctl_prev: str | None = None

    def enable(self) -> str:
        nr = _SYS_BPF.get(platform.machine())
        if nr is not None:
            libc = ctypes.CDLL(None, use_errno=True)
            attr = ctypes.create_string_buffer(16)
            ctypes.c_uint32.from_buffer(attr, 0).value = BPF_STATS_RUN_TIME
            libc.syscall.restype = ctypes.c_long
            fd = libc.syscall(ctypes.c_long(nr), ctypes.c_int(BPF_ENABLE_STATS), attr, ctypes.c_uint(16))
            if fd >= 0:
                self._fd = int(fd)
                return "BPF_ENABLE_STATS"
        path = "/proc/sys/kernel/bpf_stats_enabled"
        try:
            with open(path) as f:
                prev = f.read().strip()
            if prev != "1":
                with open(path, "w") as f:
                    f.write("1")
                self._sysctl_prev = prev
            return "sysctl"
        except OSError:
            return "unavailable"

    def disable(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._sysctl_prev is not None:
            try:
                with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
                    f.write(self._sysctl_prev)
            except OSError:
                pass
            self._sysctl_prev = None
