"""Fakes for the intervention controller's collaborators (no kernel): a live session, an
engine, a recorder, a drop backend and a clock, and a debugger over them whose drops go
through the real controller (``setup``)."""
from __future__ import annotations

import socket
from dataclasses import dataclass, field

from gewtui.debugger import commands
from gewtui.debugger.core import Debugger
from gewtui.debugger.sources import SourceInfo, SourceStats
from gewtui.errors import RecordingError
from gewtui.intervene.classifier import DenyCounters, DenyTuple
from gewtui.intervene.controller import InterventionController
from gewtui.intervene.log import Actor
from gewtui.intervene.ports import GateFacts
from gewtui.intervene.targets import Attachment
from gewtui.pb import events_pb2, model_pb2
from gewtui.model.identity import DEFAULT_RANGE

ARGV = ["gew-tui", "--allow-intervention"]
SID = "s-fake"
NS = 1_000_000_000


class Clock:
    def __init__(self, t: int = 10_000 * NS):
        self.t = t

    def __call__(self) -> int:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += int(seconds * NS)


@dataclass(frozen=True)
class Itf:
    netns: str
    netns_inode: int
    ifname: str
    ifindex: int = 1


@dataclass
class Scope:
    interfaces: list = field(default_factory=list)


class FakeSession:
    is_live = True

    def __init__(self, session_id: str = SID, allow_intervention: bool = True):
        self.session_id = session_id
        self.allow_intervention = allow_intervention
        self.complete = True
        self.lost = 0
        self.at_event_id = 1
        self.scope = Scope([Itf("ns-a", 4001, "veth-a"), Itf("ns-a", 4001, "lo"),
                            Itf("ns-b", 4002, "veth-b")])

    def gate_facts(self) -> GateFacts:
        return GateFacts(self.complete, self.lost, "" if self.complete else "lab", self.at_event_id)


class FakeRecorder:
    def __init__(self):
        self.records = []
        self.flushes = 0
        self.failed = None

    def write(self, record):
        if self.failed is not None:
            raise self.failed
        self.records.append(record.intervention)

    def flush(self):
        self.flushes += 1

    def break_it(self):
        self.failed = RecordingError("recording x: write failed (No space left on device)")


class FakeEngine:
    def __init__(self):
        self.flows: dict[int, model_pb2.FlowSnapshot] = {}
        self.chains: dict[int, model_pb2.ReasonChain] = {}
        self.interventions = []
        self.port_ranges: dict[int, tuple[int, int]] = {}   # netns -> ephemeral range

    def flow(self, flow_id):
        return self.flows.get(flow_id)

    def chain(self, flow_id):
        return self.chains.get(flow_id)

    def add_intervention(self, rec):
        self.interventions.append(rec)

    def port_range(self, netns):
        return self.port_ranges.get(netns, DEFAULT_RANGE)


class FakeBackend:
    """A deny map and a set of attached interfaces, in memory."""

    def __init__(self):
        self.map: dict[DenyTuple, list[int]] = {}    # tuple -> [packets, expires]
        self.attached: set[Attachment] = set()
        self.calls: list[str] = []
        self.fail_attach: str | None = None
        self.closed = False

    def _find(self, t):
        return t if t in self.map else (t.reversed() if t.reversed() in self.map else None)

    def deny(self, tuples, expires_ns):
        self.calls.append("deny")
        added = []
        for t in tuples:
            if self._find(t) is None:
                self.map[t] = [0, expires_ns]
                added.append(t)
        return added

    def allow(self, tuples):
        self.calls.append("allow")
        out = {}
        for t in tuples:
            k = self._find(t)
            if k is not None:
                out[t] = DenyCounters(self.map.pop(k)[0])
        return out

    def counters(self, tuples):
        return DenyCounters(sum(self.map[k][0] for k in (self._find(t) for t in tuples) if k))

    def hit(self, t: DenyTuple, n: int = 1) -> bool:
        """A packet of ``t`` reaches an attached classifier; True if it was dropped."""
        k = self._find(t)
        if k is None or not self.attached:
            return False
        self.map[k][0] += n
        return True

    def attach(self, where):
        self.calls.append(f"attach {where.label}")
        if self.fail_attach == where.ifname:
            raise OSError("injected attach failure")
        self.attached.add(where)

    def detach(self, where):
        self.calls.append(f"detach {where.label}")
        self.attached.discard(where)

    def close(self):
        self.closed = True


def tup(i: int, sport: int = 40000, dport: int = 8080, fam: int = socket.AF_INET) -> events_pb2.Tuple:
    if fam == socket.AF_INET:
        s, d = bytes([10, 0, i, 1]), bytes([10, 0, i, 2])
    else:
        s = socket.inet_pton(socket.AF_INET6, f"fd00::{i}:1")
        d = socket.inet_pton(socket.AF_INET6, f"fd00::{i}:2")
    return events_pb2.Tuple(family=fam, saddr=s, daddr=d, sport=sport, dport=dport, protocol=6)


def make_flow(fid: int, *, in_scope=True, netns=4001, devices=("veth-a",), both_ends=True,
              v6=False, templates=("retransmission-storm",), identity=False) -> model_pb2.FlowSnapshot:
    """A flow with one connection (both of its sockets observed) and a listener. With
    ``identity`` it carries its client flow key, as the engine renders it."""
    f = model_pb2.FlowSnapshot(flow_id=fid, in_scope=in_scope, netns=netns,
                               templates=list(templates))
    t = tup(fid, fam=socket.AF_INET6 if v6 else socket.AF_INET)
    if identity:
        fam = socket.AF_INET6 if v6 else socket.AF_INET
        f.family, f.local_addr, f.peer_addr, f.peer_port = t.family, t.saddr, t.daddr, t.dport
        f.key = (f"tcp {socket.inet_ntop(fam, t.saddr)} -> {socket.inet_ntop(fam, t.daddr)}:"
                 f"{t.dport} netns {netns}")
    f.members.add(sock=1, tuple=t, state=events_pb2.TCP_ESTABLISHED)
    if both_ends:  # the peer's socket, observed too: the same connection reversed
        r = events_pb2.Tuple(family=t.family, saddr=t.daddr, daddr=t.saddr, sport=t.dport,
                             dport=t.sport, protocol=6)
        f.members.add(sock=2, tuple=r, state=events_pb2.TCP_ESTABLISHED)
    listener = events_pb2.Tuple(family=t.family, saddr=t.daddr, daddr=bytes(len(t.daddr)),
                                sport=t.dport, dport=0, protocol=6)
    f.members.add(sock=3, tuple=listener, state=events_pb2.TCP_LISTEN)
    for d in devices:
        f.path.add(device=d)
    return f


def make_chain(fid: int, allowed=("drop",), session_id: str = SID) -> model_pb2.ReasonChain:
    c = model_pb2.ReasonChain(flow_id=fid, at_event_id=5, session_id=session_id,
                              allowed_interventions=list(allowed))
    c.root.layer = model_pb2.L3
    c.root.flow_id = fid
    return c


def deny_tuple(fid: int, **kw) -> DenyTuple:
    return DenyTuple.from_pb(tup(fid, **kw))


class FakeLiveSource:
    live = True
    exhausted = False

    def __init__(self):
        self.interventions = []

    def read(self, max_events, timeout_s=0.0):
        return []

    def info(self):
        return SourceInfo(SID, "live", "FULLY_SUPPORTED", "netns=ns-a", "", True)

    def stats(self):
        return SourceStats()


def setup(typed: str | None):
    engine = FakeEngine()
    for fid in (1, 2):
        engine.flows[fid], engine.chains[fid] = make_flow(fid), make_chain(fid)
    engine.feed = lambda ev: []
    src = FakeLiveSource()
    d = Debugger(src, engine_factory=lambda: engine, engine_restore=lambda s: engine)
    backend, rec = FakeBackend(), FakeRecorder()
    d.intervention = InterventionController(FakeSession(), engine, rec, backend=backend,
                                            argv=ARGV, actor=Actor(0, ""),
                                            on_record=src.interventions.append)
    ctx = commands.Context(d, None, (lambda prompt, fid: typed) if typed is not None else None)
    return ctx, backend, src
