"""The deny classifier: bpf/deny.c compiled with bcc, its deny map, and a BPF_PROG_RUN helper.

Place in the pipeline: the controller (gewtui.intervene.controller) decides a flow-level
drop; this module turns it into packet-level state. It loads the tc classifier
(BPF_PROG_TYPE_SCHED_CLS, direct-action), fills the ``deny`` hash map with the flow's
tuples and reads back the per-entry drop counters. Attaching the program to interfaces is
the session's tc helper's job (so the session manifest records every filter); this module
only hands out the program fd and name.

One deny entry per connection: the kernel side looks a packet up in its own orientation and
reversed, so a tuple inserted as the local socket sees it matches both directions, and its
counter counts both. Inserting a tuple whose reverse is already present is a no-op. An entry
with one port 0 is a flow key: it matches that side's every port in the entry's ephemeral
range (``DenyTuple.ephemeral``: the range of the flow's namespace, Linux's default when
unknown; kept in the entry's value, so one classifier serves namespaces with different
ranges), so a flow's reconnects are dropped too.

``prog_run`` runs the loaded program on a crafted packet with the bpf(2) command
BPF_PROG_TEST_RUN (bcc 0.26 does not expose it), so tests can prove what is dropped without
attaching anything.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket
from dataclasses import dataclass, field
from typing import Iterable

from gewtui.model.identity import DEFAULT_RANGE
from gewtui.pb import events_pb2
from gewtui.resources import bpf_source

PROGRAM_NAME = "gew_deny"
MAP_NAME = "deny"
SOURCE = "deny.c"

# Return values of a direct-action classifier (include/uapi/linux/pkt_cls.h).
TC_ACT_UNSPEC = -1
TC_ACT_OK = 0
TC_ACT_SHOT = 2

AF_INET = socket.AF_INET      # 2
AF_INET6 = socket.AF_INET6    # 10
_PROTOCOLS = (6, 17)          # TCP, UDP

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "riscv64": 280, "ppc64le": 361,
            "s390x": 351}
_BPF_PROG_TEST_RUN = 10


class _TestRunAttr(ctypes.Structure):
    """union bpf_attr, the BPF_PROG_TEST_RUN member (include/uapi/linux/bpf.h)."""

    _fields_ = [
        ("prog_fd", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("data_in", ctypes.c_uint64),
        ("data_out", ctypes.c_uint64),
        ("repeat", ctypes.c_uint32),
        ("duration", ctypes.c_uint32),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_uint64),
        ("ctx_out", ctypes.c_uint64),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long


@dataclass(frozen=True)
class DenyCounters:
    packets: int = 0
    bytes: int = 0
    last_ns: int = 0
    expires_ns: int = 0

    @classmethod
    def of(cls, v) -> "DenyCounters":
        return cls(v.packets, v.bytes, v.last_ns, v.expires_ns)


@dataclass(frozen=True)
class DenyTuple:
    """A deny map key in Python terms: addresses as 4 or 16 raw bytes, ports host order.
    ``ephemeral``: for a flow key, the ports its wildcard side covers (the flow's namespace's
    ip_local_port_range); not part of the key's identity."""

    family: int
    protocol: int
    saddr: bytes
    daddr: bytes
    sport: int
    dport: int
    ephemeral: tuple[int, int] = field(default=DEFAULT_RANGE, compare=False)

    @classmethod
    def from_pb(cls, t: events_pb2.Tuple) -> "DenyTuple":
        return cls(t.family, t.protocol or 6, bytes(t.saddr), bytes(t.daddr), t.sport, t.dport)

    def to_pb(self) -> events_pb2.Tuple:
        return events_pb2.Tuple(family=self.family, saddr=self.saddr, daddr=self.daddr,
                                sport=self.sport, dport=self.dport, protocol=self.protocol)

    def reversed(self) -> "DenyTuple":
        return DenyTuple(self.family, self.protocol, self.daddr, self.saddr,
                         self.dport, self.sport, self.ephemeral)

    @property
    def is_flow_key(self) -> bool:
        return (self.sport == 0) != (self.dport == 0)

    def check(self) -> None:
        """Raise ValueError unless this is a complete, connected 5-tuple, or a flow key
        (one side's port 0, the other side's a fixed, non-ephemeral port)."""
        alen = {AF_INET: 4, AF_INET6: 16}.get(self.family)
        if alen is None:
            raise ValueError(f"family {self.family} is neither AF_INET nor AF_INET6")
        if self.protocol not in _PROTOCOLS:
            raise ValueError(f"protocol {self.protocol} is neither TCP nor UDP")
        if len(self.saddr) != alen or len(self.daddr) != alen:
            raise ValueError(f"address length does not match family {self.family}")
        if not any(self.saddr) or not any(self.daddr):
            raise ValueError("a deny entry needs both addresses")
        for port in (self.sport, self.dport):
            if not 0 <= port < 65536:
                raise ValueError(f"port {port} is out of range")
        if self.sport == 0 and self.dport == 0:
            raise ValueError("a deny entry needs at least one fixed port")
        lo, hi = self.ephemeral
        if self.is_flow_key and not 0 < lo <= hi < 65536:
            raise ValueError(f"a flow key's ephemeral range {lo}-{hi} is not a port range")
        fixed = self.dport if self.sport == 0 else self.sport if self.dport == 0 else None
        if fixed is not None and DEFAULT_RANGE[0] <= fixed <= DEFAULT_RANGE[1]:
            # A listener-like key (the service port left out) would drop every connection
            # to an address pair; a flow key leaves out only the ephemeral side. Judged by
            # Linux's default range: a widened one holds service ports too (8080, 6379)
            raise ValueError(f"a flow key's fixed port {fixed} must not be ephemeral")

    def __str__(self) -> str:
        fam = socket.AF_INET if self.family == AF_INET else socket.AF_INET6
        proto = {6: "tcp", 17: "udp"}.get(self.protocol, str(self.protocol))
        s, d = socket.inet_ntop(fam, self.saddr), socket.inet_ntop(fam, self.daddr)
        if self.family == AF_INET6:
            s, d = f"[{s}]", f"[{d}]"
        return f"{proto} {s}:{self.sport or '*'} -> {d}:{self.dport or '*'}"


def _sys_bpf(cmd: int, attr: ctypes.Structure) -> int:
    nr = _SYS_BPF.get(os.uname().machine)
    if nr is None:
        raise OSError(errno.ENOSYS, f"bpf(2) syscall number unknown on {os.uname().machine}")
    ret = _libc.syscall(nr, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf(BPF_PROG_TEST_RUN): {os.strerror(err)}")
    return ret


def prog_test_run(prog_fd: int, packet: bytes, repeat: int = 1) -> tuple[int, int]:
    """Run a loaded skb program once (or ``repeat`` times) on ``packet`` through
    BPF_PROG_TEST_RUN. Returns (signed return value, mean duration in ns).

    The kernel wants at least an Ethernet header (14 bytes) for tc programs."""
    buf = ctypes.create_string_buffer(bytes(packet), len(packet))
    attr = _TestRunAttr(prog_fd=prog_fd, data_size_in=len(packet),
                        data_in=ctypes.addressof(buf), repeat=repeat)
    _sys_bpf(_BPF_PROG_TEST_RUN, attr)
    return ctypes.c_int32(attr.retval).value, attr.duration


class DenyClassifier:
    """One compiled and loaded copy of bpf/deny.c with its deny map.

    Nothing is attached by this class; ``fd`` and ``name`` are what a tc helper attaches.
    ``close`` frees the program and the map (attached filters keep their own reference to
    the program, so detach first)."""

    def __init__(self, source: str | None = None, cflags: Iterable[str] = ()):
        from bcc import BPF  # heavy import kept out of the package import path

        flags = list(cflags)
        from gewtui.kernel.build import load_bpf  # closes what a refused load leaves open

        self._bpf = load_bpf(src_file=(source or str(bpf_source(SOURCE))).encode(), cflags=flags)
        self._fn = self._bpf.load_func(PROGRAM_NAME.encode(), BPF.SCHED_CLS)
        self._map = self._bpf[MAP_NAME.encode()]
        self._cfg = self._bpf[b"deny_cfg"]
        self._closed = False

    # -- what a tc helper and the manifest need ------------------------------------------
    @property
    def fd(self) -> int:
        return self._fn.fd

    @property
    def name(self) -> str:
        return PROGRAM_NAME

    @property
    def map_fd(self) -> int:
        return self._map.map_fd

    # -- deny map ---------------------------------------------------------------------
    def _key(self, t: DenyTuple):
        t.check()
        k = self._map.Key()
        k.family, k.proto, k.sport, k.dport = t.family, t.protocol, t.sport, t.dport
        ctypes.memmove(k.saddr, t.saddr, len(t.saddr))
        ctypes.memmove(k.daddr, t.daddr, len(t.daddr))
        return k

    def _lookup(self, t: DenyTuple):
        try:
            return self._map[self._key(t)]
        except KeyError:
            return None

    def _shapes(self) -> None:
        """Tell the program which entry shapes exist (deny.c: deny_cfg), so a packet only
        pays for lookups that can hit. Called after every insert and removal."""
        exact = swild = dwild = 0
        for k in self._map.keys():
            if k.sport == 0:
                swild += 1
            elif k.dport == 0:
                dwild += 1
            else:
                exact += 1
        v = self._cfg.Leaf()
        v.exact, v.sport_wild, v.dport_wild = exact, swild, dwild
        self._cfg[self._cfg.Key(0)] = v

    def add(self, t: DenyTuple | events_pb2.Tuple, expires_ns: int) -> bool:
        """Deny ``t`` (both directions) until ``expires_ns`` (CLOCK_MONOTONIC, the clock of
        bpf_ktime_get_ns and time.monotonic_ns); the kernel stops dropping at that moment
        even if nobody removes the entry. Returns False when it, or its reverse, is already
        denied (nothing changes then, counters and expiry included)."""
        t = t if isinstance(t, DenyTuple) else DenyTuple.from_pb(t)
        if self._lookup(t) is not None or self._lookup(t.reversed()) is not None:
            return False
        leaf = self._map.Leaf()
        leaf.expires_ns = expires_ns
        if t.is_flow_key:
            leaf.eph_lo, leaf.eph_hi = t.ephemeral
        self._map[self._key(t)] = leaf
        self._shapes()              # after the insert: a packet never sees a shape without entries
        return True

    def remove(self, t: DenyTuple | events_pb2.Tuple) -> DenyCounters | None:
        """Stop denying ``t`` (whichever orientation was inserted); returns its final
        counters, or None when it was not denied."""
        t = t if isinstance(t, DenyTuple) else DenyTuple.from_pb(t)
        for cand in (t, t.reversed()):
            v = self._lookup(cand)
            if v is not None:
                final = DenyCounters.of(v)
                try:
                    del self._map[self._key(cand)]
                except KeyError:
                    pass
                self._shapes()
                return final
        return None

    def counters(self, t: DenyTuple | events_pb2.Tuple) -> DenyCounters | None:
        t = t if isinstance(t, DenyTuple) else DenyTuple.from_pb(t)
        for cand in (t, t.reversed()):
            v = self._lookup(cand)
            if v is not None:
                return DenyCounters.of(v)
        return None

    def entries(self) -> dict[DenyTuple, DenyCounters]:
        out: dict[DenyTuple, DenyCounters] = {}
        for k, v in self._map.items():
            alen = 4 if k.family == AF_INET else 16
            t = DenyTuple(k.family, k.proto, bytes(k.saddr)[:alen], bytes(k.daddr)[:alen],
                          k.sport, k.dport)
            out[t] = DenyCounters.of(v)
        return out

    def clear(self) -> None:
        self._map.clear()
        self._shapes()

    # -- testing ----------------------------------------------------------------------
    def prog_run(self, packet: bytes) -> int:
        """The classifier's verdict on ``packet`` (TC_ACT_SHOT or TC_ACT_UNSPEC)."""
        return prog_test_run(self.fd, packet)[0]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bpf.cleanup()

    def __enter__(self) -> "DenyClassifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
