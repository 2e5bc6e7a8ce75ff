"""Ring-buffer records -> L0 protobuf events: the envelope (monotonic id, kernel time, CPU),
OS attribution, and dispatch to each probe unit's decoder.

Ids are assigned in decode order, from 1, per plane. Attribution is never guessed: a
record made in process context carries the acting task; one made in softirq context is
attributed to the socket's last process-context owner seen in this session
(ATTRIBUTION_SOCKET_OWNER) or left empty (ATTRIBUTION_NONE). The kernel vocabularies used
for names (TCP states, drop and reset reasons, neighbour states) come from the running
kernel's tracepoint formats and BTF, never from a table in this code.

No bcc here: tests feed crafted bytes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from gewtui.kernel.probes.base import CTX_PROCESS, HDR, Header, ProbeUnit, parse_header
from gewtui.pb import events_pb2
from gewtui.runtime.tracefs import Tracefs

EventSink = Callable[[events_pb2.Event], None]


@dataclass
class Vocab:
    """Kernel vocabularies, {value: name}."""

    tcp_states: dict[int, str] = field(default_factory=dict)
    drop_reasons: dict[int, str] = field(default_factory=dict)
    reset_reasons: dict[int, str] = field(default_factory=dict)
    neigh_states: dict[int, str] = field(default_factory=dict)
    ca_states: dict[int, str] = field(default_factory=dict)

    @classmethod
    def from_kernel(cls, tf: Tracefs, btf=None) -> "Vocab":
        v = cls(
            tcp_states=tf.symbols("sock", "inet_sock_set_state", "newstate"),
            drop_reasons=tf.symbols("skb", "kfree_skb", "reason"),
            reset_reasons=tf.symbols("tcp", "tcp_send_reset", "reason"),
            neigh_states=tf.symbols("neigh", "neigh_update", "new_state"),
        )
        if btf is not None:
            try:
                # enum tcp_ca_state: TCP_CA_Open = 0, ... ; the format prints a bare number
                v.ca_states = {val: name.removeprefix("TCP_CA_") for name, val in btf.enum("tcp_ca_state").items()}
            except Exception:
                pass
        return v

    def drop_reason_value(self, name: str) -> int | None:
        for k, v in self.drop_reasons.items():
            if v == name:
                return k
        return None


@dataclass(frozen=True)
class Owner:
    pid: int
    tgid: int
    comm: str
    uid: int
    cgroup: int
    netns: int


def monotonic_ns() -> int:
    """Same clock as bpf_ktime_get_ns()."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class Decoder:
    """Turns raw records into events and hands them to ``sink`` in decode order."""

    def __init__(self, units: Iterable[ProbeUnit], vocab: Vocab, sink: EventSink,
                 clock: Callable[[], int] = monotonic_ns):
        self.vocab = vocab
        self.sink = sink
        self.clock = clock
        self.next_id = 1
        self.events = 0
        self.consumed = 0           # records taken from the ring buffer (decoded or not)
        self.decode_errors = 0
        self.owners: dict[int, Owner] = {}
        self.unit_names: dict[int, str] = {}
        # per-unit decoder state (tcp_probe windows, fib last results, ...)
        self.state: dict[str, dict] = {}
        # callbacks the plane installs for records that need a map read (qdisc gone)
        self.hooks: dict[str, Callable[..., Iterable[events_pb2.Event]]] = {}
        self._kinds: dict[int, tuple[int, Callable]] = {}
        for u in units:
            self.unit_names[u.probe_id] = u.name
            for kind, (size, fn) in u.decoders.items():
                if kind in self._kinds:
                    raise ValueError(f"record kind {kind} declared twice")
                self._kinds[kind] = (size, fn)

    # -- records ---------------------------------------------------------------------------
    def record(self, data: bytes) -> int:
        """Decode one ring-buffer record; returns the number of events emitted."""
        self.consumed += 1
        try:
            if len(data) < HDR.size:
                raise ValueError(f"record of {len(data)} bytes is shorter than the header")
            hdr = parse_header(data)
            entry = self._kinds.get(hdr.kind)
            if entry is None:
                raise ValueError(f"unknown record kind {hdr.kind}")
            size, fn = entry
            if len(data) != size:
                # records are reserved at their exact size: a mismatch means C and Python
                # layouts drifted apart
                raise ValueError(f"kind {hdr.kind}: {len(data)} bytes, layout says {size}")
            events = list(fn(self, hdr, data))
        except Exception:
            # a record that cannot be decoded is a lost record (stage "decode"), never a crash
            self.decode_errors += 1
            return 0
        for ev in events:
            self.emit(ev)
        return len(events)

    def emit(self, ev: events_pb2.Event) -> None:
        ev.id = self.next_id
        self.next_id += 1
        self.events += 1
        self.sink(ev)

    # -- envelopes -------------------------------------------------------------------------
    def envelope(self, hdr: Header, sock: int = 0, obj_netns: int = 0,
                 learn_owner: bool = True) -> events_pb2.Event:
        """An event with time, CPU and attribution from a record header. ``sock`` names
        the full socket the event is about (0 if none); ``obj_netns`` the namespace of the
        object (socket, device), used when no task can be named."""
        ev = events_pb2.Event(ktime_ns=hdr.ktime_ns, cpu=hdr.cpu)
        a = ev.attr
        if hdr.ctx == CTX_PROCESS and hdr.tgid:
            comm = hdr.comm_str
            a.pid, a.tgid, a.comm, a.uid = hdr.pid, hdr.tgid, comm, hdr.uid
            a.cgroup_id, a.netns = hdr.cgroup, hdr.netns
            a.source = events_pb2.ATTRIBUTION_PROCESS_CONTEXT
            if sock and learn_owner:
                o = self.owners.get(sock)
                if o is None or o.tgid != hdr.tgid or o.pid != hdr.pid:
                    self.owners[sock] = Owner(hdr.pid, hdr.tgid, comm, hdr.uid, hdr.cgroup, hdr.netns)
            return ev
        o = self.owners.get(sock) if sock else None
        if o is not None:
            a.pid, a.tgid, a.comm, a.uid = o.pid, o.tgid, o.comm, o.uid
            a.cgroup_id, a.netns = o.cgroup, o.netns
            a.source = events_pb2.ATTRIBUTION_SOCKET_OWNER
        else:
            a.netns = obj_netns
            a.source = events_pb2.ATTRIBUTION_NONE
        return ev

    def synthetic(self, ktime_ns: int | None = None, netns: int = 0) -> events_pb2.Event:
        """An envelope for an event userspace makes (summaries, lost notices): no task."""
        ev = events_pb2.Event(ktime_ns=self.clock() if ktime_ns is None else ktime_ns, cpu=0)
        ev.attr.source = events_pb2.ATTRIBUTION_NONE
        ev.attr.netns = netns
        return ev

    def about_socket(self, sock: int, ktime_ns: int, obj_netns: int = 0) -> events_pb2.Event:
        """An envelope for a userspace-made event about a socket (e.g. a periodic summary
        read from a map): attributed to the socket's owner when known, never to a task
        that happens to be running."""
        ev = self.synthetic(ktime_ns, obj_netns)
        o = self.owners.get(sock)
        if o is not None:
            a = ev.attr
            a.pid, a.tgid, a.comm, a.uid = o.pid, o.tgid, o.comm, o.uid
            a.cgroup_id, a.netns = o.cgroup, o.netns
            a.source = events_pb2.ATTRIBUTION_SOCKET_OWNER
        return ev

    def forget_socket(self, sock: int) -> None:
        self.owners.pop(sock, None)

    def unit_state(self, unit: str) -> dict:
        return self.state.setdefault(unit, {})
