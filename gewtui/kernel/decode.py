"""Ring-buffer records -> L0 protobuf events: the envelope (monotonic id, kernel time, CPU),
OS attribution, and dispatch to each probe unit's decoder.

Ids are assigned in decode order, from 1, per plane. Attribution is never guessed: a
record made in process context carries the acting task; one made in softirq context is
attributed to the socket's last process-context owner seen in this session
(ATTRIBUTION_SOCKET_OWNER) or left empty (ATTRIBUTION_NONE). The kernel vocabularies used
for names (TCP states, drop and reset reasons, neighbour states) come from the running
kernel's tracepoint formats and BTF, never from a table in this code. Sockets are named by
opaque per-session ids (``sock_id``): kernel addresses are used inside the decoder only.
A record may stand for several per-event records (a lifecycle record): its unit's decoder
rebuilds them and decodes each with ``expand``, through the same code as a record of its own.

Speed: a busy session decodes hundreds of thousands of records a second on one core. The
frequent kinds take their unit's fast encoder (ProbeUnit.fast, on gewtui.kernel.wire: the
event's wire bytes written directly, parsed once); every other kind goes to its unit's decoder, whose envelope is built
the same way. Attributions are encoded once per task or owner and cached.

No bcc here: tests feed crafted bytes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from gewtui.kernel import wire
from gewtui.kernel.probes.base import CTX_PROCESS, HDR, Header, ProbeUnit
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
    # the envelope's attr field for events attributed to this owner (encoded once)
    attr_field: bytes = field(default=b"", compare=False, repr=False)


_Event = events_pb2.Event
_FromString = events_pb2.Event.FromString
_HDR_UNPACK = HDR.unpack_from
_make_header = Header._make
_PROCESS = events_pb2.ATTRIBUTION_PROCESS_CONTEXT
_SOCKET_OWNER = events_pb2.ATTRIBUTION_SOCKET_OWNER
_NONE = events_pb2.ATTRIBUTION_NONE
_uvarint = wire.uvarint
# bodies whose ``sock`` names a socket by kernel address until the decoder hides it
_SOCK_BODIES = frozenset(("tcp_state", "retransmit", "reset", "tcp_probe", "cong_state", "destroy", "owner",
                          "skb_drop", "rcvq_full"))
_K_CPU, _K_ATTR = wire.K_CPU, wire.K_ATTR
# Event.id (field 1) and Event.ktime_ns (field 2): written ahead of the fast path's bytes so
# the event's whole wire form is what SerializeToString gives (fields in number order).
_K_ID, _K_KTIME = wire.keys(events_pb2.Event, "id", "ktime_ns")


def _attr_field(**fields) -> bytes:
    return wire.ld(_K_ATTR, events_pb2.Attribution(**fields).SerializeToString())


def monotonic_ns() -> int:
    """Same clock as bpf_ktime_get_ns()."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class Decoder:
    """Turns raw records into events and hands them to ``sink`` in decode order."""

    def __init__(self, units: Iterable[ProbeUnit], vocab: Vocab, sink: EventSink,
                 clock: Callable[[], int] = monotonic_ns, fast: bool = True):
        units = tuple(units)
        # fast=False decodes every kind with its unit's decoder (the reference the fast
        # path is tested against)
        self.vocab = vocab
        self.sink = sink
        # raw_sink(bytes): when set, the fast path hands over the event's serialized form
        # (numbered, canonical) instead of a parsed Event: capture writes bytes, never objects
        self.raw_sink: Callable[[bytes], None] | None = None
        self.clock = clock
        self.next_id = 1
        self.events = 0
        self.consumed = 0           # records taken from the ring buffer (decoded or not)
        self.decode_errors = 0
        # events that travel inside another (a Lifecycle stands for several): events - folded
        # is what the raw sink was handed
        self.folded = 0
        self.owners: dict[int, Owner] = {}
        self.unit_names: dict[int, str] = {}
        # per-unit decoder state (tcp_probe windows, fib last results, ...)
        self.state: dict[str, dict] = {}
        # callbacks the plane installs for records that need a map read (qdisc gone)
        self.hooks: dict[str, Callable[..., Iterable[events_pb2.Event]]] = {}
        # kind -> (record size, unit decoder, fast encoder or None)
        self._kinds: dict[int, tuple[int, Callable, Callable | None]] = {}
        for u in units:
            self.unit_names[u.probe_id] = u.name
            for kind, (size, fn) in u.decoders.items():
                if kind in self._kinds:
                    raise ValueError(f"record kind {kind} declared twice")
                self._kinds[kind] = (size, fn, None)
        # Opaque socket ids: kernel addresses never leave the decoder. An id is minted on a
        # socket's first sight and again when a new life begins at its address (leaving
        # CLOSE, or a listener's child: tcp_state.born) or after its destroy. A socket with a
        # state change is held until its destroy (``_live``, bounded by the kernel's socket
        # table, emptied into the generations only if destroys went missing past
        # ``live_limit``); addresses seen
        # only in resets and drops (request and timewait sockets, which have no destroy)
        # live in two generations of at most ``sock_id_limit`` entries (an id unused for two
        # whole generations is forgotten).
        self._live: dict[int, int] = {}
        self._ids_new: dict[int, int] = {}
        self._ids_old: dict[int, int] = {}
        self._next_sock = 1
        self.sock_id_limit = 65536
        self.live_limit = 1 << 18
        self._forget: list[int] = []
        # (pid, tgid, uid, netns, cgroup, comm) -> process-context attr field; netns -> none
        self._task_attr = wire.Cache(lambda key: self._task_seen(key) or self._task_field(key, _PROCESS))
        # the same key -> the Owner a socket acted on by that task gets (immutable, shared)
        self._task_owner = wire.Cache(lambda key: self._task_seen(key) or self._owner(key))
        self._none_attr = wire.Cache(lambda netns: _attr_field(netns=netns, source=_NONE))
        # (CPU 0 is left out, as protobuf leaves out every zero scalar)
        self._cpu = wire.Cache(lambda cpu: _K_CPU + _uvarint(cpu) if cpu else b"")
        if fast:
            for kind, enc in wire.Encoders(self, units).table().items():
                size, fn, _ = self._kinds[kind]
                self._kinds[kind] = (size, fn, enc)

    @property
    def fast_kinds(self) -> list[int]:
        """Record kinds decoded by the fast path."""
        return sorted(k for k, (_, _, enc) in self._kinds.items() if enc is not None)

    # -- records ---------------------------------------------------------------------------
    def record(self, data: bytes) -> int:
        """Decode one ring-buffer record; returns the number of events emitted."""
        self.consumed += 1
        try:
            h = _HDR_UNPACK(data, 0)     # struct.error when shorter than the header
            entry = self._kinds.get(h[1])
            if entry is None:
                raise ValueError(f"unknown record kind {h[1]}")
            size, fn, fast = entry
            if len(data) != size:
                # records are reserved at their exact size: a mismatch means C and Python
                # layouts drifted apart
                raise ValueError(f"kind {h[1]}: {len(data)} bytes, layout says {size}")
            ev = raw = events = None
            count = 1
            if fast is not None:
                payload = fast(h, data)
                if type(payload) is list:
                    events = payload    # several events, each (ktime, payload), numbered below
                elif type(payload) is tuple:
                    # one event standing for ``count`` (a Lifecycle): numbered for all of them
                    count, payload = payload
                    raw = (_K_ID + _uvarint(self.next_id) + (_K_KTIME + _uvarint(h[0]) if h[0] else b"")
                           + payload)
                elif payload is not None:
                    # the whole event, numbered here once: id, ktime, then cpu, attr, body
                    raw = (_K_ID + _uvarint(self.next_id) + (_K_KTIME + _uvarint(h[0]) if h[0] else b"")
                           + payload)
                    if self.raw_sink is None:
                        ev = _FromString(raw)
            if raw is None and events is None:
                events = self._unit_events(fn, h, data)
        except Exception:
            # a record that cannot be decoded is a lost record (stage "decode"), never a crash
            self.decode_errors += 1
            self._forget.clear()
            return 0
        if raw is not None:   # the fast path's one event
            if count != 1:
                self.next_id += count
                self.events += count
                self.folded += count - 1
                self.raw_sink(raw)  # type: ignore[misc]
                if self._forget:
                    self._forgotten()
                return count
            self.next_id += 1
            self.events += 1
            if ev is None:
                self.raw_sink(raw)  # type: ignore[misc]
            else:
                self.sink(ev)
            if self._forget:
                self._forgotten()
            return 1
        sink, raw_sink = self.sink, self.raw_sink
        for ev in events:
            if type(ev) is tuple:   # an event still in its wire form (a fast encoder's list, expand)
                ktime, payload = ev
                raw = _K_ID + _uvarint(self.next_id) + (_K_KTIME + _uvarint(ktime) if ktime else b"") + payload
                if raw_sink is None:
                    sink(_FromString(raw))
                else:
                    raw_sink(raw)
            else:
                ev.id = self.next_id
                sink(ev)
            self.next_id += 1
            self.events += 1
        if self._forget:
            self._forgotten()
        return len(events)

    def _unit_events(self, fn: Callable, h: tuple, data: bytes) -> list:
        """A unit decoder's events with kernel addresses replaced by socket ids (a decoder
        marked ``sock_ids``, such as a lifecycle expansion, returns them so already)."""
        events = fn(self, _make_header(h), data)
        if type(events) is not tuple and type(events) is not list:
            events = list(events)
        if not getattr(fn, "sock_ids", False):
            for ev in events:
                self._hide_sock(ev)
        return events

    def expand(self, data: bytes) -> list:
        """The events one record of the per-event layout would have made (a lifecycle
        record's items are rebuilt as such records), without ids and without counting it as
        consumed: every field mapping stays written once, in the kind's own decoder or
        encoder. Where the kind has a fast encoder and the capture takes bytes
        (``raw_sink``), an event stays bytes: ``(ktime_ns, payload)``, numbered and framed by
        ``record`` like any fast-path event, never parsed and serialized again. Raises on a
        malformed record; the caller's record is then a decode loss."""
        h = _HDR_UNPACK(data, 0)
        size, fn, fast = self._kinds[h[1]]
        if len(data) != size:
            raise ValueError(f"kind {h[1]}: {len(data)} bytes, layout says {size}")
        if fast is not None:
            payload = fast(h, data)
            if payload is not None:
                if type(payload) is not list:
                    payload = [(h[0], payload)]
                if self.raw_sink is not None:
                    return payload
                out = []
                for ktime, p in payload:
                    ev = _FromString(p)
                    ev.ktime_ns = ktime
                    out.append(ev)
                return out
        return self._unit_events(fn, h, data)

    # -- socket ids ------------------------------------------------------------------------
    def sock_id(self, ptr: int) -> int:
        """The session's opaque id of the socket at kernel address ``ptr`` (0 stays 0)."""
        sid = self._live.get(ptr)
        if sid is not None:
            return sid
        sid = self._ids_new.get(ptr)
        if sid is not None:
            return sid
        if not ptr:
            return 0
        sid = self._ids_old.pop(ptr, None)
        if sid is None:
            sid = self._next_sock
            self._next_sock += 1
        if len(self._ids_new) >= self.sock_id_limit:
            self._ids_old = self._ids_new
            self._ids_new = {}
        self._ids_new[ptr] = sid
        return sid

    def live_sock_id(self, ptr: int) -> int:
        """sock_id for a socket with a state change: kept until its destroy, however long
        it stays quiet."""
        sid = self._live.get(ptr)
        if sid is not None:
            return sid
        sid = self.sock_id(ptr)
        self._ids_new.pop(ptr, None)
        if len(self._live) >= self.live_limit:
            self._ids_old.update(self._live)    # destroys went missing: age them out
            self._live = {}
        self._live[ptr] = sid
        return sid

    def renew_socket(self, ptr: int) -> None:
        """A new life begins at ``ptr`` (tcp_state.born): it gets a new id."""
        self._live.pop(ptr, None)
        self._ids_new.pop(ptr, None)
        self._ids_old.pop(ptr, None)

    def _hide_sock(self, ev: events_pb2.Event) -> None:
        which = ev.WhichOneof("body")
        if which in _SOCK_BODIES:
            b = getattr(ev, which)
            if b.sock:
                b.sock = self.live_sock_id(b.sock) if which == "tcp_state" else self.sock_id(b.sock)

    def _forgotten(self) -> None:
        # after the record's events took their ids: a destroyed socket's address is free
        for ptr in self._forget:
            self.owners.pop(ptr, None)
            self._live.pop(ptr, None)
            self._ids_new.pop(ptr, None)
            self._ids_old.pop(ptr, None)
        self._forget.clear()

    def emit(self, ev: events_pb2.Event) -> None:
        """Hand over an event made outside a record (summaries read from a map, loss
        notices); a kernel address in its ``sock`` becomes the socket's id."""
        self._hide_sock(ev)
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
        ev = _FromString(self.envelope_bytes(hdr, sock, obj_netns, learn_owner))
        ev.ktime_ns = hdr[0]
        return ev

    def envelope_bytes(self, h: tuple, sock: int = 0, obj_netns: int = 0, learn_owner: bool = True) -> bytes:
        """envelope()'s cpu and attr fields as wire bytes (the caller sets ktime_ns); ``h``
        is a Header or the plain tuple HDR unpacks. Learns the socket's owner in process
        context."""
        # h: ktime, kind, ctx, probe, cpu, pid, tgid, uid, netns, cgroup, comm
        if h[2] == CTX_PROCESS and h[6]:
            key = h[5:]
            if sock and learn_owner:
                o = self.owners.get(sock)
                if o is None or o.tgid != h[6] or o.pid != h[5]:
                    self.owners[sock] = self._task_owner[key]
            return self._cpu[h[4]] + self._task_attr[key]
        o = self.owners.get(sock) if sock else None
        if o is not None:
            return self._cpu[h[4]] + o.attr_field
        return self._cpu[h[4]] + self._none_attr[obj_netns]

    def _task_seen(self, key: tuple) -> None:
        """A task the caches have not seen lately: its cgroup goes to the ``task_seen`` hook
        (the live session's inventory names cgroups; the fast path hands over bytes, so it
        cannot be read back from the events)."""
        hook = self.hooks.get("task_seen")
        if hook is not None and key[4]:
            hook(key[4])

    @staticmethod
    def _task_field(key: tuple, source: int) -> bytes:
        pid, tgid, uid, netns, cgroup, comm = key
        return _attr_field(pid=pid, tgid=tgid, comm=_comm(comm), uid=uid, cgroup_id=cgroup, netns=netns,
                           source=source)

    def _owner(self, key: tuple) -> Owner:
        pid, tgid, uid, netns, cgroup, comm = key
        return Owner(pid, tgid, _comm(comm), uid, cgroup, netns, self._task_field(key, _SOCKET_OWNER))

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
        """The socket at ``sock`` was destroyed: its owner and id are dropped once the
        current record's events are out (they still name it)."""
        self._forget.append(sock)
        if len(self._forget) > 64:
            self._forgotten()

    def unit_state(self, unit: str) -> dict:
        return self.state.setdefault(unit, {})


def _comm(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
