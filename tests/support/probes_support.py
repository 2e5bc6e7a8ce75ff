"""Shared by the probe integration tests: a two-namespace veth network named gewt-*,
entering a namespace from the current thread, a running kernel plane that collects
events, and event filters. Everything created is removed on success, failure and Ctrl-C.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import pytest

from gewtui.pb import events_pb2

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: attaches eBPF programs and creates network namespaces")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def in_ns(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return ip("netns", "exec", ns, *argv, check=check)


@dataclass
class Net:
    """Two namespaces joined by a veth pair: a (client side) and b (server side)."""

    a: str
    b: str
    veth_a: str
    veth_b: str
    ip_a: str
    ip_b: str
    ip6_a: str
    ip6_b: str
    inode_a: int = 0
    inode_b: int = 0


@contextlib.contextmanager
def veth_pair(tag: str, subnet: int) -> Iterator[Net]:
    """gewt-<tag><rand>-a / -b with veth gewt<tag><rand>a/b, 10.77.<subnet>.0/24 and
    fd77:<subnet>::/64 (no DAD, so IPv6 is usable at once). The random part keeps two runs
    of the suite on one machine from removing each other's namespaces."""
    tag = f"{tag[:3]}{secrets.token_hex(2)}"
    net = Net(a=f"gewt-{tag}-a", b=f"gewt-{tag}-b", veth_a=f"gewt{tag}a", veth_b=f"gewt{tag}b",
              ip_a=f"10.77.{subnet}.1", ip_b=f"10.77.{subnet}.2",
              ip6_a=f"fd77:{subnet:x}::1", ip6_b=f"fd77:{subnet:x}::2")
    try:
        for ns in (net.a, net.b):
            ip("netns", "del", ns, check=False)
            ip("netns", "add", ns)
            in_ns(ns, "ip", "link", "set", "lo", "up")
        ip("link", "add", net.veth_a, "netns", net.a, "type", "veth", "peer", "name", net.veth_b, "netns", net.b)
        for ns, dev, v4, v6 in ((net.a, net.veth_a, net.ip_a, net.ip6_a), (net.b, net.veth_b, net.ip_b, net.ip6_b)):
            in_ns(ns, "ip", "addr", "add", f"{v4}/24", "dev", dev)
            in_ns(ns, "ip", "-6", "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            in_ns(ns, "ip", "link", "set", dev, "up")
        net.inode_a = os.stat(f"/run/netns/{net.a}").st_ino
        net.inode_b = os.stat(f"/run/netns/{net.b}").st_ino
        yield net
    finally:
        for ns in (net.a, net.b):
            ip("netns", "del", ns, check=False)


@contextlib.contextmanager
def entered(ns: str) -> Iterator[None]:
    """Run the block with this thread in namespace ``ns``; sockets made there stay there."""
    own = os.open(f"/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(target)
        os.close(own)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Collector:
    """A running plane and the events it delivered."""

    plane: object
    events: list[events_pb2.Event] = field(default_factory=list)

    def poll_until(self, pred: Callable[[list[events_pb2.Event]], bool], timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.plane.poll(50)
            if pred(self.events):
                return True
        return pred(self.events)

    def settle(self, seconds: float = 0.3) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.plane.poll(20)


_KERNEL_SKIPS = re.compile(r"\d+ probe runs skipped by the kernel"
                           r"( \(\d+ of them uncounted by it, seen by the tracepoint's own counter\))?")
KERNEL_SKIP_STAGES = {"recursion", "unrun"}


def only_kernel_skips(reason: str) -> bool:
    """The session's incomplete reason names nothing but probe runs the kernel skipped,
    counted by it (recursion) or caught by the drop witness (unrun): no capture loss."""
    return _KERNEL_SKIPS.fullmatch(reason) is not None


def body(ev: events_pb2.Event) -> str:
    return ev.WhichOneof("body") or ""


def tuple_ports(t: events_pb2.Tuple) -> set[int]:
    return {t.sport, t.dport}


def of(events, kind: str, port: int | None = None) -> list:
    """Events of one body kind, optionally touching ``port``."""
    out = []
    for ev in events:
        if body(ev) != kind:
            continue
        b = getattr(ev, kind)
        t = getattr(b, "tuple", None)
        if port is not None:
            if kind == "fib":
                if port not in (b.sport, b.dport):
                    continue
            elif t is None or port not in tuple_ports(t):
                continue
        out.append(ev)
    return out


def states(events, port: int) -> list[tuple[int, int]]:
    return [(e.tcp_state.old_state, e.tcp_state.new_state) for e in of(events, "tcp_state", port)]


def addr(text: str) -> bytes:
    fam = socket.AF_INET6 if ":" in text else socket.AF_INET
    return socket.inet_pton(fam, text)


@contextlib.contextmanager
def running_plane(units, net: Net, config=None) -> Iterator[Collector]:
    """A plane of ``units`` attached with both namespaces of ``net`` in scope; closed on
    every path. The collector's ``plane`` is the plane."""
    from gewtui.kernel.plane import KernelPlane, PlaneConfig, ScopeFilter

    events: list = []
    plane = KernelPlane(units, config or PlaneConfig(), on_event=events.append)
    try:
        plane.stage()
        plane.verify()
        plane.set_scope(ScopeFilter(netns_inodes=(net.inode_a, net.inode_b)))
        plane.attach()
        yield Collector(plane, events)
    finally:
        plane.close()


@contextlib.contextmanager
def loopback_plane(units, tag: str, config=None) -> Iterator[tuple[str, Collector]]:
    """A scratch namespace with only ``lo`` up and a plane of ``units`` scoped to it:
    (namespace name, collector). Plane closed and namespace removed on every path."""
    from gewtui.kernel.plane import KernelPlane, PlaneConfig, ScopeFilter

    require_root()
    ns = f"gewt-{tag}-{secrets.token_hex(3)}"
    ip("netns", "add", ns)
    try:
        in_ns(ns, "ip", "link", "set", "lo", "up")
        events: list = []
        plane = KernelPlane(units, config or PlaneConfig(), on_event=events.append)
        try:
            plane.stage()
            plane.verify()
            plane.set_scope(ScopeFilter(netns_inodes=(os.stat(f"/run/netns/{ns}").st_ino,)))
            plane.attach()
            yield ns, Collector(plane, events)
        finally:
            plane.close()
    finally:
        ip("netns", "del", ns, check=False)
