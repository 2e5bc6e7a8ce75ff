"""Moving data out of the kernel: the ring buffer (records to the decoder), the kernel-side
counters (produced / lost per probe and CPU), map reads for summaries, and the kernel's
per-program run-time statistics.

The ring buffer is read straight from its memory mapping (``MappedRing``): the consumer
page, the producer page and the data pages the kernel maps twice in a row, so a record
that wraps is still contiguous. A drain reads the producer position once and walks every
committed record in one loop (C, ring_native.c; the Python loop is its reference), copying
each out and handing it to the decoder, then publishes the new consumer position; no bcc
callback per record. A record the main ring's
lock refuses goes to a small second ring (``gew_rb_rescue``, bpf/gew_common.h says when);
its records are rare, and each is handed over just before the first main-ring record with a
later kernel time, so the decoder still sees kernel order. Where the mapping is not
available (a fake in tests, an architecture whose memory ordering plain loads do not
follow), bcc's callback path is used: it copies each record once and returns 0 (bcc calls
``int()`` on the return value; ``None`` would cost a raised-and-caught exception per
record). Programs submit most records without waking the consumer (bpf/gew_common.h), so
draining runs on a short poll slice rather than only on wakeups.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import platform
import select
import struct
import time
from dataclasses import dataclass, field
from typing import Iterator

from gewtui.kernel.probes.base import C_LOST, C_MAPFULL, C_NONETNS, C_PRODUCED, C_RACED, C_RESCUED, C_STRIDE, NPROBES

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "arm64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0


# Ring-buffer record header (kernel/bpf/ringbuf.c): u32 length with two flag bits, u32
# page offset; records are 8-byte aligned.
_RB_BUSY = 1 << 31
_RB_DISCARD = 1 << 30
_RB_LEN = _RB_DISCARD - 1
_RB_HDR = 8
_U64 = struct.Struct("<Q")
# struct gew_hdr begins with the record's kernel time (bpf/gew_common.h)
_ktime = _U64.unpack_from
_U32 = struct.Struct("<I")
# Architectures where loads are not reordered with older loads (x86-TSO, s390): reading
# the record's length word before its bytes then needs no fence, which Python cannot issue.
_ORDERED_LOADS = ("x86_64", "amd64", "i686", "s390x")


class MappedRing:
    """A BPF ring buffer read through mmap, as libbpf's consumer does."""

    def __init__(self, map_fd: int, size: int):
        if size <= 0 or size & (size - 1) or size % mmap.PAGESIZE:
            raise ValueError(f"ring buffer size {size} is not a power-of-two number of pages")
        page = mmap.PAGESIZE
        self.size = size
        self.mask = size - 1
        self._cons = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        try:
            # producer page, then the data pages twice
            self._prod = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        except BaseException:
            self._cons.close()
            raise
        self._data = page
        self._pos = _U64.unpack_from(self._cons, 0)[0]
        self._poller = select.poll()
        self._poller.register(map_fd, select.POLLIN)

    def pending(self) -> int:
        """Bytes the kernel has committed or reserved that this consumer has not taken yet
        (read from any thread: two loads, no side effect)."""
        return _U64.unpack_from(self._prod, 0)[0] - self._pos

    def wait(self, timeout_ms: int) -> None:
        """Block until the kernel wakes consumers or data is pending, at most timeout_ms."""
        if _U64.unpack_from(self._prod, 0)[0] == self._pos and timeout_ms > 0:
            self._poller.poll(timeout_ms)

    def drain(self, handle, limit: int = 1 << 62) -> int:
        """Hand committed records to ``handle(bytes)``, oldest first, up to ``limit``;
        returns how many. The consumer position is published every 256 records (so the
        kernel can reuse the space during a long drain) and at the end; a record
        ``handle`` raised on counts as consumed, the ones after it wait for the next drain.
        ``drain_reference`` in C (ring_native.c) where the extension is built."""
        return _native_drain(self, handle, limit)

    def drain_reference(self, handle, limit: int = 1 << 62) -> int:
        """drain's rules in Python."""
        prod_mm, cons_mm = self._prod, self._cons
        unpack_u32, pack_u64 = _U32.unpack_from, _U64.pack_into
        data, mask = self._data, self.mask
        pos = self._pos
        prod = _U64.unpack_from(prod_mm, 0)[0]
        n = 0
        try:
            while pos < prod and n < limit:
                off = data + (pos & mask)
                word = unpack_u32(prod_mm, off)[0]
                if word & _RB_BUSY:
                    break                      # reserved, not yet committed: the rest waits
                length = word & _RB_LEN
                pos += (length + _RB_HDR + 7) & ~7
                if not word & _RB_DISCARD:
                    n += 1
                    handle(prod_mm[off + _RB_HDR:off + _RB_HDR + length])
                    if not n & 255:
                        pack_u64(cons_mm, 0, pos)
                if pos >= prod:
                    prod = _U64.unpack_from(prod_mm, 0)[0]   # what arrived meanwhile
        finally:
            self._pos = pos
            pack_u64(cons_mm, 0, pos)
        return n

    def close(self) -> None:
        self._cons.close()
        self._prod.close()


def _drain_impl():
    try:
        from gewtui.kernel.ring_native import drain
    except ImportError:
        return MappedRing.drain_reference   # not built (a source tree run without installing)
    return drain


_native_drain = _drain_impl()


class RingTransport:
    """Drains the session's ring buffer into a decoder. ``poll`` hands over at most
    ``batch`` records, so a consumer that is behind still gets the events in bounded
    batches (and its memory stays bounded) instead of one drain that lasts while the
    producer keeps up."""

    batch = 4096

    def __init__(self, bpf, decoder, map_name: str = "gew_rb", *, mapped: bool | None = None,
                 rescue_name: str = "gew_rb_rescue"):
        # mapped: read through mmap (None: wherever it is safe and available)
        self._bpf = bpf
        self._decoder = decoder
        self._string_at = ctypes.string_at
        self._record = decoder.record
        self._error: BaseException | None = None
        self._ring: MappedRing | None = None
        self._rescue: MappedRing | None = None
        # rescue records waiting for the main ring to pass their kernel time, oldest first
        self._held: list[bytes] = []
        table = bpf[map_name.encode()]
        try:
            rescue = bpf[rescue_name.encode()]
        except (KeyError, TypeError):
            rescue = None       # a fake in tests, or an object without the second ring
        if mapped is None:
            mapped = platform.machine() in _ORDERED_LOADS
        if mapped:
            try:
                self._ring = MappedRing(int(table.map_fd), int(table.max_entries))
                if rescue is not None:
                    self._rescue = MappedRing(int(rescue.map_fd), int(rescue.max_entries))
            except (AttributeError, TypeError, ValueError, OSError):
                if self._ring is not None:
                    self._ring.close()
                self._ring = None   # not a kernel map (tests) or no mapping: bcc's callbacks
        if self._ring is None:
            # (bcc's callbacks hand each ring's records over as they come: no merge by time)
            table.open_ring_buffer(self._callback)
            if rescue is not None:
                rescue.open_ring_buffer(self._callback)

    @property
    def mapped(self) -> bool:
        return self._ring is not None

    @property
    def size(self) -> int:
        return self._ring.size if self._ring is not None else 0

    def pending(self) -> int:
        """Bytes waiting in the ring buffer (0 when it is not read through the mapping)."""
        ring = self._ring
        return ring.pending() if ring is not None else 0

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

    def poll(self, timeout_ms: int, hold: bool = False) -> int:
        """Wait up to ``timeout_ms`` for a wakeup, then drain what is there. Returns the
        number of records consumed. ``hold``: wait the whole time even if records are
        pending (records that force no wakeup are collected a slice at a time, not one
        poll each as they trickle in)."""
        before = self._decoder.consumed
        timeout_ms = max(0, int(timeout_ms))
        if hold and timeout_ms:
            time.sleep(timeout_ms / 1000)
        if self._ring is not None:
            if not hold:
                self._ring.wait(timeout_ms)
            self._drain_mapped(self.batch)
            return self._decoder.consumed - before
        if not hold:
            self._bpf.ring_buffer_poll(timeout_ms)
        self._bpf.ring_buffer_consume()
        self._raise_pending()
        return self._decoder.consumed - before

    def drain(self) -> int:
        """Consume until the buffer is empty."""
        total = 0
        while True:
            before = self._decoder.consumed
            if self._ring is not None:
                self._drain_mapped()
            else:
                self._bpf.ring_buffer_consume()
                self._raise_pending()
            n = self._decoder.consumed - before
            total += n
            if n == 0:
                return total

    def _drain_mapped(self, limit: int = 1 << 62) -> None:
        """Drain the main ring; rescue records (rare) join it in kernel-time order."""
        ring, rescue, held = self._ring, self._rescue, self._held
        if rescue is None or not (held or rescue.pending()):
            ring.drain(self._record, limit)      # the usual case: no per-record check
            return
        rescue.drain(held.append)
        held.sort(key=lambda r: _ktime(r, 0)[0])
        record = self._record

        def merged(data: bytes) -> None:
            k = _ktime(data, 0)[0]
            while held and _ktime(held[0], 0)[0] <= k:
                record(held.pop(0))
            record(data)

        ring.drain(merged, limit)
        if held and not ring.pending():
            # nothing older can still come from the main ring (pending counts a record
            # reserved and not yet committed): the rest goes now
            for data in held:
                record(data)
            held.clear()

    def close(self) -> None:
        for ring in (self._ring, self._rescue):
            if ring is not None:
                ring.close()
        self._ring = self._rescue = None


class WakePolicy:
    """Whether records force the consumer awake (bpf/gew_common.h, gew_wake_quiet).

    A forced wakeup puts the consumer on a CPU the workload wants. While records come slowly,
    the consumer's poll slice collects them as well, and every wakeup is pure cost
    (docs/probes.md, "Transport"). While they come fast, a slice would let the consumer's
    next burst grow long, and a closed-loop workload (connection churn through one redis
    thread) feels that more than the wakeups. So: quiet once a window of ``window_ns``
    averaged fewer than ``low`` records a second (0: never); forced wakeups again as soon as
    one poll brings more than ``burst`` (twice that rate over a slice), or a window averages
    more."""

    window_ns = 250_000_000

    def __init__(self, slice_ms: int, low: int):
        self.quiet = False
        self.low = low
        self.burst = max(1, 2 * self.low * max(1, slice_ms) // 1000)
        self._consumed = 0
        self._at = 0

    def observe(self, consumed: int, took: int, now_ns: int) -> bool | None:
        """After a poll that took ``took`` records: the setting to switch to, or None."""
        if self.quiet and took > self.burst:
            self._consumed, self._at = consumed, now_ns
            return False
        if not self._at:
            self._consumed, self._at = consumed, now_ns
            return None
        dt = now_ns - self._at
        if dt < self.window_ns:
            return None
        slow = (consumed - self._consumed) * 1_000_000_000 < self.low * dt
        self._consumed, self._at = consumed, now_ns
        return slow if slow != self.quiet else None


@dataclass
class Counters:
    """Kernel-side counters summed per probe and per CPU."""

    produced: dict[int, int] = field(default_factory=dict)         # probe -> count
    lost: dict[tuple[int, int], int] = field(default_factory=dict)   # (probe, cpu) -> count
    map_full: dict[int, int] = field(default_factory=dict)
    no_netns: dict[int, int] = field(default_factory=dict)
    # records gew_rb refused at first and kept anyway: on a second try, or in gew_rb_rescue
    rescued: dict[int, int] = field(default_factory=dict)
    # lifecycle items lost or handed over twice while CPUs raced on one entry (tcp_state.c)
    raced: dict[int, int] = field(default_factory=dict)

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
        vals = {k: list(t.getvalue(t.Key(base + k)))
                for k in (C_PRODUCED, C_LOST, C_MAPFULL, C_NONETNS, C_RESCUED, C_RACED)}
        if any(vals[C_PRODUCED]):
            c.produced[probe] = int(sum(vals[C_PRODUCED]))
        for cpu, n in enumerate(vals[C_LOST]):
            if n:
                c.lost[(probe, cpu)] = int(n)
        if any(vals[C_MAPFULL]):
            c.map_full[probe] = int(sum(vals[C_MAPFULL]))
        if any(vals[C_NONETNS]):
            c.no_netns[probe] = int(sum(vals[C_NONETNS]))
        if any(vals[C_RESCUED]):
            c.rescued[probe] = int(sum(vals[C_RESCUED]))
        if any(vals[C_RACED]):
            c.raced[probe] = int(sum(vals[C_RACED]))
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
