"""Start-of-session inventory: what existed in the scope before the first probe fired.

A socket appears to the probes only at its next event and a listener only when it changes
state, so without this an idle connection made before the session is invisible and the
identity rule does not know which ports are listening. When a session opens, for each scoped
network namespace this unit reads:

* its ephemeral port range (``net.ipv4.ip_local_port_range``: per namespace, often widened
  in production) and the TCP counters a diagnosis holds against (``/proc/net/snmp`` Tcp,
  ``/proc/net/netstat`` TcpExt) -> one ``NetnsFacts`` event (``when = "start"``);
* every TCP socket through ``sock_diag`` (pyroute2), listeners first, each with its
  ``tcp_info`` and cgroup id, and its owning process where a process holds a descriptor for
  the socket's inode -> one ``SocketInventory`` event each.

It also names drop sites (gewtui.kernel.kallsyms) in the events before they are recorded.
The counters are read again at the end (``when = "end"``) and, at most once a second per
namespace, after a connection attempt retransmitted its SYN (``when = "handshake-timeout"``),
so the listen-overflow cause rule can compare ListenOverflows around a handshake timeout.

Everything is read on a thread that entered the namespace (gewtui.kernel.netns): /proc/net is
/proc/self/net, the process's namespace, so counters are read from /proc/thread-self/net.
Work is bounded (sockets per namespace, processes and descriptors scanned).
"""
from __future__ import annotations

import ipaddress
import os
import socket
import time
from typing import Callable, Iterable

from gewtui.kernel import netns as nsmod
from gewtui.kernel.cgroups import CgroupMap, describe
from gewtui.kernel.kallsyms import Kallsyms
from gewtui.pb import events_pb2

Sink = Callable[[events_pb2.Event], None]

SOCKETS_CAP = 65536          # per namespace: an inventory beyond this is cut and says so
PROCS_CAP = 32768
FDS_CAP = 1 << 20
DEFAULT_RANGE = (32768, 60999)
CGROUPS_CAP = 65536          # cgroup ids named per session
_LISTEN, _TIME_WAIT, _SYN_SENT = 10, 6, 2
_TCPINFO = {  # TcpInfoSnapshot field <- tcp_info member
    "rtt_us": "tcpi_rtt", "rttvar_us": "tcpi_rttvar", "min_rtt_us": "tcpi_min_rtt",
    "snd_cwnd": "tcpi_snd_cwnd", "snd_ssthresh": "tcpi_snd_ssthresh",
    "retransmits": "tcpi_retransmits", "total_retrans": "tcpi_total_retrans",
    "unacked": "tcpi_unacked", "lost": "tcpi_lost", "last_data_recv_ms": "tcpi_last_data_recv",
    "last_data_sent_ms": "tcpi_last_data_sent", "bytes_acked": "tcpi_bytes_acked",
    "bytes_received": "tcpi_bytes_received", "snd_wnd": "tcpi_snd_wnd", "ca_state": "tcpi_ca_state",
}
_SNMP = {"passive_opens": ("Tcp", "PassiveOpens"), "active_opens": ("Tcp", "ActiveOpens"),
         "attempt_fails": ("Tcp", "AttemptFails"), "retrans_segs": ("Tcp", "RetransSegs"),
         "estab_resets": ("Tcp", "EstabResets"), "listen_overflows": ("TcpExt", "ListenOverflows"),
         "listen_drops": ("TcpExt", "ListenDrops")}
_U64 = (1 << 64) - 1
_U32 = (1 << 32) - 1


# -- per-namespace reads (run on a thread inside the namespace) -------------------------------
def _read_small(path: str, limit: int = 65536) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return os.read(fd, limit).decode("ascii", "replace")
    finally:
        os.close(fd)


def port_range_here() -> tuple[int, int]:
    """This thread's namespace's ephemeral port range (the default when unreadable)."""
    try:
        lo, hi = (int(x) for x in _read_small("/proc/sys/net/ipv4/ip_local_port_range").split()[:2])
    except (OSError, ValueError):
        return DEFAULT_RANGE
    if not (0 < lo <= hi <= 65535):
        return DEFAULT_RANGE
    return lo, hi


def parse_counters(*texts: str) -> dict[tuple[str, str], int]:
    """/proc/net/snmp and /proc/net/netstat: header line then value line per group."""
    out: dict[tuple[str, str], int] = {}
    for text in texts:
        lines = text.splitlines()
        for head, vals in zip(lines[::2], lines[1::2]):
            hn, _, hrest = head.partition(":")
            vn, _, vrest = vals.partition(":")
            if hn != vn:
                continue
            for k, v in zip(hrest.split(), vrest.split()):
                try:
                    out[(hn, k)] = int(v)
                except ValueError:
                    pass
    return out


def counters_here() -> dict[tuple[str, str], int]:
    """Tcp and TcpExt counters of this thread's namespace."""
    texts = []
    for name in ("snmp", "netstat"):
        try:
            texts.append(_read_small(f"/proc/thread-self/net/{name}", 1 << 20))
        except OSError:
            pass
    return parse_counters(*texts)


def _sockets_here() -> list[dict]:
    from pyroute2 import DiagSocket

    rows: list[dict] = []
    with DiagSocket() as ds:
        ds.bind()
        for family in (socket.AF_INET, socket.AF_INET6):
            # extensions: INET_DIAG_INFO (tcp_info); states: all
            for msg in ds.get_sock_stats(family=family, states=0xFFF, protocol=socket.IPPROTO_TCP,
                                         extensions=1 << (2 - 1)):
                rows.append(msg)
                if len(rows) >= SOCKETS_CAP:
                    return rows
    return rows


def _read_ns(name: str) -> tuple[tuple[int, int], dict, list[dict]]:
    def here():
        return port_range_here(), counters_here(), _sockets_here()

    return nsmod.call_in_netns(name, here)


def read_counters(name: str) -> dict[tuple[str, str], int]:
    return nsmod.call_in_netns(name, counters_here)


# -- owners ----------------------------------------------------------------------------------
def socket_owners(inodes: set[int]) -> dict[int, tuple[int, str]]:
    """socket inode -> (tgid, comm) of the first process holding a descriptor for it.
    Reads /proc/PID/fd links (readlink never follows them); bounded."""
    found: dict[int, tuple[int, str]] = {}
    if not inodes:
        return found
    fds = 0
    try:
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())[:PROCS_CAP]
    except OSError:
        return found
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for n in names:
            fds += 1
            if fds > FDS_CAP:
                return found
            try:
                link = os.readlink(f"/proc/{pid}/fd/{n}")
            except OSError:
                continue
            if link.startswith("socket:["):
                try:
                    ino = int(link[8:-1])
                except ValueError:
                    continue
                if ino in inodes and ino not in found:
                    try:
                        comm = _read_small(f"/proc/{pid}/comm", 64).strip()
                    except OSError:
                        comm = ""
                    found[ino] = (pid, comm)
        if len(found) == len(inodes):
            break
    return found


# -- events ----------------------------------------------------------------------------------
def _addr(text: str, family: int) -> bytes:
    try:
        return ipaddress.ip_address(text).packed
    except ValueError:
        return bytes(4 if family == socket.AF_INET else 16)


def facts_event(netns: int, name: str, rng: tuple[int, int], counters: dict, when: str,
                ktime_ns: int) -> events_pb2.Event:
    ev = events_pb2.Event(ktime_ns=ktime_ns)
    ev.attr.netns = netns
    f = ev.netns_facts
    f.netns, f.name, f.port_lo, f.port_hi, f.when = netns, name, rng[0], rng[1], when
    for field, key in _SNMP.items():
        setattr(f, field, max(0, min(_U64, int(counters.get(key, 0)))))
    return ev


def _attr(msg, name: str):
    """A netlink attribute of a sock_diag message (pyroute2's get_attr), or None; plain
    dicts (tests) keep theirs under "attrs" as (name, value) pairs."""
    get = getattr(msg, "get_attr", None)
    if get is not None:
        return get(name)
    for a in msg.get("attrs", ()):
        if a[0] == name:
            return a[1]
    return None


def _in_scope(msg: dict, prefixes, ports) -> bool:
    if ports and msg["idiag_sport"] not in ports and msg["idiag_dport"] not in ports:
        return False
    if prefixes:
        addrs = []
        for k in ("idiag_src", "idiag_dst"):
            try:
                addrs.append(ipaddress.ip_address(msg[k]))
            except ValueError:
                pass
        if not any(a in p for a in addrs for p in prefixes if a.version == p.version):
            return False
    return True


def inventory_events(netns: int, rows: list[dict], owners: dict[int, tuple[int, str]],
                     ktime_ns: int, prefixes=(), ports=()) -> list[events_pb2.Event]:
    """One SocketInventory event per socket, listeners first (roles of the rest depend on
    them), then by state and tuple so the order is stable."""
    rows = [r for r in rows if _in_scope(r, prefixes, ports)]
    rows.sort(key=lambda r: (r["idiag_state"] != _LISTEN, r["idiag_state"], r["idiag_family"],
                             r["idiag_src"], r["idiag_sport"], r["idiag_dst"], r["idiag_dport"]))
    out = []
    total = len(rows)
    for i, r in enumerate(rows, 1):
        ev = events_pb2.Event(ktime_ns=ktime_ns)
        ev.attr.netns = netns
        fam = int(r["idiag_family"])
        b = ev.inventory
        t = b.tuple
        t.family, t.protocol = fam, socket.IPPROTO_TCP
        t.saddr, t.daddr = _addr(r["idiag_src"], fam), _addr(r["idiag_dst"], fam)
        t.sport, t.dport = int(r["idiag_sport"]), int(r["idiag_dport"])
        b.sock_cookie = int(r.get("idiag_cookie") or 0) & _U64
        b.state = int(r["idiag_state"])
        b.inode, b.uid = int(r["idiag_inode"]) & _U32, int(r["idiag_uid"]) & _U32
        b.rqueue, b.wqueue = int(r["idiag_rqueue"]) & _U32, int(r["idiag_wqueue"]) & _U32
        b.index, b.total = i, total
        cg = _attr(r, "INET_DIAG_CGROUP_ID")
        if isinstance(cg, int):
            b.cgroup_id = ev.attr.cgroup_id = cg & _U64
        info = _attr(r, "INET_DIAG_INFO")
        if isinstance(info, dict):
            for field, key in _TCPINFO.items():
                v = info.get(key)
                if isinstance(v, int) and v >= 0:
                    setattr(b.info, field, min(v, _U64 if field.startswith("bytes") else _U32))
        who = owners.get(b.inode)
        if who is not None:
            ev.attr.tgid, ev.attr.comm = who[0], who[1][:16]
        out.append(ev)
    return out


class Inventory:
    """The unit a live session drives: ``start`` when it opens, ``see`` for every event,
    ``tick`` once a second, ``end`` before it closes. Each emits through ``sink``."""

    def __init__(self, netns: dict[str, int], prefixes: Iterable[str] = (), ports: Iterable[int] = (),
                 log: Callable[[str], None] | None = None):
        self.netns = dict(sorted(netns.items()))
        self.prefixes = tuple(ipaddress.ip_network(p, strict=False) for p in prefixes)
        self.ports = frozenset(int(p) for p in ports)
        self.port_ranges: dict[int, tuple[str, int, int]] = {}   # inode -> (name, lo, hi)
        self.log = log or (lambda m: None)
        self._by_inode = {v: k for k, v in self.netns.items()}
        self._timeouts: set[int] = set()
        self._last_read: dict[int, float] = {}
        self.errors: list[str] = []
        self.symbols = Kallsyms()   # drop sites named as the events pass (see)
        self.cgroups = CgroupMap()
        self._cg_done: set[int] = set()     # ids already written as CgroupInfo
        self._cg_new: list[int] = []        # ids seen since the last tick
        self._taken: list | None = None
        self._owners: dict[int, tuple[int, str]] = {}

    def read(self) -> None:
        """Read every scoped namespace (port ranges known after this, for the header)."""
        taken = self._taken = []
        for name, inode in self.netns.items():
            try:
                rng, counters, rows = _read_ns(name)
            except Exception as e:   # a namespace gone or unreadable: say so, go on
                self.errors.append(f"inventory of netns {name}: {e}")
                self.log(self.errors[-1])
                continue
            self.port_ranges[inode] = (name, rng[0], rng[1])
            taken.append((name, inode, rng, counters, rows))
        inodes = {int(r["idiag_inode"]) for *_x, rows in taken for r in rows if r["idiag_inode"]}
        self._owners = socket_owners(inodes)
        self.symbols.load()

    def start(self, sink: Sink) -> int:
        """Facts and sockets of every scoped namespace; returns the sockets emitted."""
        if self._taken is None:
            self.read()
        taken, owners, self._taken = self._taken or [], self._owners, []
        cgs = sorted({c for *_x, rows in taken for r in rows
                      if isinstance(c := _attr(r, "INET_DIAG_CGROUP_ID"), int) and c})
        cgs = [c for c in cgs if c not in self._cg_done][:CGROUPS_CAP]
        self._cg_done.update(cgs)
        self._cgroup_events(sink, cgs)
        n = 0
        for name, inode, rng, counters, rows in taken:
            now = time.monotonic_ns()
            sink(facts_event(inode, name, rng, counters, "start", now))
            for ev in inventory_events(inode, rows, owners, now, self.prefixes, self.ports):
                sink(ev)
                n += 1
        return n

    def see(self, ev: events_pb2.Event) -> None:
        """Before a parsed event is recorded: note its cgroup, name a drop's site, note a
        connection attempt retransmitting its SYN (a handshake timing out)."""
        kind = ev.WhichOneof("body")
        if ev.attr.cgroup_id:
            self.cgroup_seen(ev.attr.cgroup_id)
        if kind == "skb_drop":
            self.symbols.annotate(ev)
        elif kind == "retransmit" and ev.retransmit.state == _SYN_SENT:
            self._timeouts.add(ev.attr.netns)

    def cgroup_seen(self, cg: int) -> None:
        if cg not in self._cg_done and len(self._cg_done) < CGROUPS_CAP:
            self._cg_done.add(cg)
            self._cg_new.append(cg)

    def hook(self, dec) -> None:
        """What see() learns from parsed events, for the decoder's fast path, which hands
        over bytes: a task's cgroup, a SYN retransmitted, a drop site's name."""
        dec.hooks["task_seen"] = self.cgroup_seen
        dec.hooks["syn_retransmit"] = lambda netns: self._timeouts.add(netns)   # tick swaps the set
        dec.hooks["drop_site"] = self.symbols.resolve

    def _cgroup_events(self, sink: Sink, ids) -> None:
        for cid in ids:
            path = self.cgroups.path(cid)
            container, unit = describe(path)
            ev = events_pb2.Event(ktime_ns=time.monotonic_ns())
            ev.attr.cgroup_id = cid
            ev.cgroup.id, ev.cgroup.path, ev.cgroup.container, ev.cgroup.unit = cid, path, container, unit
            sink(ev)

    def tick(self, sink: Sink) -> None:
        """Names of cgroups first seen since the last tick; counters of namespaces where a
        handshake timed out since the last tick."""
        if self._cg_new:
            new, self._cg_new = self._cg_new, []
            self._cgroup_events(sink, new)
        if not self._timeouts:
            return
        pending, self._timeouts = self._timeouts, set()
        # a SYN goes out from the client's namespace; its listener may be in any scoped one
        now = time.monotonic()
        for inode in sorted(self._by_inode) if pending else ():
            if now - self._last_read.get(inode, 0.0) < 1.0:
                continue
            self._last_read[inode] = now
            self._emit(sink, inode, "handshake-timeout")

    def end(self, sink: Sink) -> None:
        for inode in sorted(self._by_inode):
            self._emit(sink, inode, "end")

    def _emit(self, sink: Sink, inode: int, when: str) -> None:
        name = self._by_inode[inode]
        try:
            counters = read_counters(name)
        except Exception as e:
            self.errors.append(f"counters of netns {name}: {e}")
            return
        _n, lo, hi = self.port_ranges.get(inode, (name, *DEFAULT_RANGE))
        sink(facts_event(inode, name, (lo, hi), counters, when, time.monotonic_ns()))
