"""Test helpers for the debugger, the TUI and the shell: constructed L0 streams, recordings
written from them, and a tiny stand-in engine for the core's mechanics tests.

The stand-in (``ToyEngine``) is deliberately simple and deterministic: one flow per socket,
a "tcp-state" change per state event, termination on TCP_CLOSE, a "retransmission-storm"
template after three retransmits. It exercises the cursor, checkpoints and breakpoints
without depending on the observation plane's rules; integration tests use the real engine.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field

import pytest

from gewtui.pb import events_pb2, model_pb2, recording_pb2

T0 = 5_000_000_000
STEP_NS = 1_000_000          # 1 ms between events
CLIENT = bytes((10, 0, 0, 1))
SERVER = bytes((10, 0, 0, 2))
OTHER = bytes((192, 168, 7, 9))


@dataclass(frozen=True)
class Change:
    kind: str
    flow_id: int
    event_id: int
    detail: dict = field(default_factory=dict)


class ToyEngine:
    def __init__(self, templates=None):
        self._flows: dict[int, model_pb2.FlowSnapshot] = {}
        self._by_sock: dict[int, int] = {}
        self._retx: dict[int, int] = {}
        self._next = 1
        self._events = 0
        self._lost = 0
        self.templates = ("retransmission-storm",)

    # -- the Engine surface the debugger uses --
    def feed(self, ev: events_pb2.Event) -> list[Change]:
        self._events += 1
        body = ev.WhichOneof("body")
        out: list[Change] = []
        if body == "lost":
            self._lost += ev.lost.count
            return [Change("lost", 0, ev.id, {"count": str(ev.lost.count)})]
        if body not in ("tcp_state", "retransmit"):
            return out
        b = getattr(ev, body)
        fid = self._by_sock.get(b.sock)
        if fid is None:
            if body != "tcp_state":
                return out
            fid = self._next
            self._next += 1
            f = model_pb2.FlowSnapshot(flow_id=fid, phase=model_pb2.EMERGED, family=2,
                                       local_addr=b.tuple.saddr, peer_addr=b.tuple.daddr,
                                       peer_port=b.tuple.dport, in_scope=True,
                                       first_event_id=ev.id, first_ktime_ns=ev.ktime_ns,
                                       key=f"toy {b.sock:#x}")
            f.members.add(sock=b.sock, tuple=b.tuple, first_event_id=ev.id)
            self._flows[fid] = f
            self._by_sock[b.sock] = fid
            out.append(Change("emerge", fid, ev.id))
        f = self._flows[fid]
        if f.phase == model_pb2.TERMINATED:
            return out
        f.counters.events += 1
        f.last_event_id, f.last_ktime_ns = ev.id, ev.ktime_ns
        if f.phase == model_pb2.EMERGED and f.counters.events > 1:
            f.phase = model_pb2.EVOLVING
            f.transitions.add(event_id=ev.id, ktime_ns=ev.ktime_ns, what="phase",
                              to="EVOLVING", **{"from": "EMERGED"})
            out.append(Change("evolve", fid, ev.id, {"phase": "EVOLVING"}))
        if body == "tcp_state":
            old, new = f.tcp_state, b.new_state
            f.tcp_state = new
            f.members[0].state = new
            f.transitions.add(event_id=ev.id, ktime_ns=ev.ktime_ns, what="tcp-state",
                              to=events_pb2.TcpState.Name(new),
                              **{"from": events_pb2.TcpState.Name(old)})
            out.append(Change("tcp-state", fid, ev.id, {"from": events_pb2.TcpState.Name(old),
                                                        "to": events_pb2.TcpState.Name(new)}))
            if new == events_pb2.TCP_CLOSE:
                f.phase = model_pb2.TERMINATED
                f.end_reason = "closed"
                out.append(Change("terminate", fid, ev.id, {"reason": "closed"}))
        else:
            f.counters.retransmits += 1
            n = self._retx[fid] = self._retx.get(fid, 0) + 1
            if n == 3:
                f.templates.append("retransmission-storm")
                out.append(Change("template", fid, ev.id, {"template": "retransmission-storm"}))
        return out

    def flows(self):
        return [copy.deepcopy(f) for f in self._flows.values()]

    def flow(self, fid):
        f = self._flows.get(fid)
        return copy.deepcopy(f) if f is not None else None

    def chain(self, fid):
        f = self._flows.get(fid)
        if f is None or not f.templates:
            return None
        c = model_pb2.ReasonChain(flow_id=fid, at_event_id=f.last_event_id,
                                  allowed_interventions=["drop"])
        c.root.node_id, c.root.layer, c.root.kind = f"f{fid}/L3", model_pb2.L3, "verdict"
        c.root.text = f"flow {fid} suffers a retransmission storm"
        l2 = c.root.children.add(node_id=f"f{fid}/L2/retransmission-storm/0", layer=model_pb2.L2,
                                 kind="retransmission-storm", text="3 retransmits")
        l1 = l2.children.add(node_id=f"f{fid}/L1/lifecycle", layer=model_pb2.L1, kind="lifecycle",
                             text="established flow", evidence_event_ids=[f.first_event_id])
        l1.children.add(node_id=f"f{fid}/L0/{f.first_event_id}", layer=model_pb2.L0,
                        kind="tcp_state", text="state change",
                        evidence_event_ids=[f.first_event_id])
        return c

    def chains(self):
        return [c for c in (self.chain(fid) for fid in self._flows) if c is not None]

    def event(self, eid):
        return None

    @property
    def stats(self):
        live = sum(1 for f in self._flows.values() if f.phase != model_pb2.TERMINATED)
        return {"events": self._events, "flows_live": live,
                "flows_terminated": len(self._flows) - live, "evicted": 0,
                "lost_records": self._lost, "complete": self._lost == 0}

    def checkpoint(self):
        return copy.deepcopy(self.__dict__)

    @classmethod
    def restore(cls, state):
        e = cls.__new__(cls)
        e.__dict__.update(copy.deepcopy(state))
        return e


# ---- constructed streams ------------------------------------------------------------------

class StreamBuilder:
    """Numbered L0 events, 1 ms apart."""

    def __init__(self):
        self.events: list[events_pb2.Event] = []

    def _ev(self) -> events_pb2.Event:
        n = len(self.events) + 1
        ev = events_pb2.Event(id=n, ktime_ns=T0 + n * STEP_NS, cpu=0)
        self.events.append(ev)
        return ev

    def state(self, sock: int, old: int, new: int, sport: int = 40000, dst: bytes = SERVER,
              dport: int = 80) -> events_pb2.Event:
        ev = self._ev()
        s = ev.tcp_state
        s.sock, s.old_state, s.new_state = sock, old, new
        s.tuple.family, s.tuple.protocol = 2, 6
        s.tuple.saddr, s.tuple.daddr, s.tuple.sport, s.tuple.dport = CLIENT, dst, sport, dport
        ev.attr.comm, ev.attr.pid, ev.attr.tgid = "curl", 4242, 4242
        return ev

    def retransmit(self, sock: int, sport: int = 40000, dst: bytes = SERVER, dport: int = 80):
        ev = self._ev()
        r = ev.retransmit
        r.sock, r.state = sock, events_pb2.TCP_ESTABLISHED
        r.tuple.family, r.tuple.protocol = 2, 6
        r.tuple.saddr, r.tuple.daddr, r.tuple.sport, r.tuple.dport = CLIENT, dst, sport, dport
        return ev

    def drop(self, reason: str = "QDISC_DROP"):
        ev = self._ev()
        ev.skb_drop.reason_name, ev.skb_drop.reason, ev.skb_drop.ifname = reason, 5, "gewt0"
        return ev

    def lost(self, count: int):
        ev = self._ev()
        ev.lost.count, ev.lost.stage = count, "ringbuf-reserve"
        ev.lost.window_start_ns, ev.lost.window_end_ns = ev.ktime_ns - STEP_NS, ev.ktime_ns
        return ev

    def connection(self, sock: int, sport: int, dst: bytes = SERVER, dport: int = 80,
                   retransmits: int = 0, close: bool = True):
        E = events_pb2
        self.state(sock, E.TCP_CLOSE, E.TCP_SYN_SENT, sport, dst, dport)
        self.state(sock, E.TCP_SYN_SENT, E.TCP_ESTABLISHED, sport, dst, dport)
        for _ in range(retransmits):
            self.retransmit(sock, sport, dst, dport)
        if close:
            self.state(sock, E.TCP_ESTABLISHED, E.TCP_FIN_WAIT1, sport, dst, dport)
            self.state(sock, E.TCP_FIN_WAIT1, E.TCP_CLOSE, sport, dst, dport)


def toy_scenario() -> list[events_pb2.Event]:
    """The shared test scenario (the Pilot test and the shell test run the same one):
    flow 1 to 10.0.0.2:80 completes cleanly, flow 2 to 10.0.0.2:8080 retransmits four times
    (the storm template matches on its third retransmit, event #9), a drop and a lost-records
    window follow, flow 3 to 192.168.7.9:443 stays open."""
    b = StreamBuilder()
    b.connection(0x1001, 40001)                                  # events 1-4
    b.connection(0x1002, 40002, dport=8080, retransmits=4, close=False)  # 5-10 (storm at #9)
    b.drop("QDISC_DROP")                                         # 11
    b.lost(7)                                                    # 12
    b.connection(0x1003, 40003, dst=OTHER, dport=443, close=False)  # 13-14
    E = events_pb2
    b.state(0x1002, E.TCP_ESTABLISHED, E.TCP_FIN_WAIT1, 40002, SERVER, 8080)  # 15
    b.state(0x1002, E.TCP_FIN_WAIT1, E.TCP_CLOSE, 40002, SERVER, 8080)       # 16
    return b.events


STORM_EVENT_ID = 9


def header(session_id: str = "test-session") -> recording_pb2.RecordingHeader:
    h = recording_pb2.RecordingHeader()
    h.session.session_id = session_id
    h.session.instance_id = "test"
    h.capabilities.verdict = 3  # FULLY_SUPPORTED
    return h


def write_recording(path: str | os.PathLike, events, session_id: str = "test-session") -> str:
    from gewtui.recording import RecordingWriter

    with RecordingWriter(path, header(session_id)) as w:
        for ev in events:
            w.write_event(ev)
    return os.fspath(path)


def big_stream(n: int, flows: int = 1000):
    """``n`` events over ``flows`` concurrent connections (each: SYN_SENT, ESTABLISHED,
    retransmits...), generated lazily."""
    E = events_pb2
    ev = events_pb2.Event(cpu=0)
    for i in range(1, n + 1):
        ev = events_pb2.Event(id=i, ktime_ns=T0 + i * 1000)
        k = i % flows
        sock = 0x10000 + k
        gen = (i // flows)
        if gen == 0:
            s = ev.tcp_state
            s.sock, s.old_state, s.new_state = sock, E.TCP_CLOSE, E.TCP_SYN_SENT
        elif gen == 1:
            s = ev.tcp_state
            s.sock, s.old_state, s.new_state = sock, E.TCP_SYN_SENT, E.TCP_ESTABLISHED
        else:
            s = ev.retransmit
            s.sock, s.state = sock, E.TCP_ESTABLISHED
        s.tuple.family, s.tuple.protocol = 2, 6
        s.tuple.saddr, s.tuple.daddr = CLIENT, SERVER
        s.tuple.sport, s.tuple.dport = 20000 + k, 80
        yield ev


# ---- streams for the real engine (the shared TUI/shell scenario) --------------------------

@dataclass
class Scenario:
    events: list
    storm_event: int          # the 5th retransmit of the lossy flow: the storm template's event
    lossy_retransmits: list   # ids of its retransmits
    drop_event: int
    lost_event: int
    refused_event: int        # the CLOSE after the peer's reset


def lab_scenario() -> Scenario:
    """A clean connection, a lossy one (8 retransmits 50 ms apart: the storm template
    matches on the 5th), a queue drop on it, a lost-records window, a refused connection,
    then the lossy one closes."""
    from tests.support.model_streams import StreamBuilder as ModelStreams

    s = ModelStreams()
    s.healthy("10.0.0.1", "10.0.0.2", 80)
    b = s.connect("10.0.0.1", "10.0.0.2", 8080)
    s.established(b)
    retx = [e.id for e in s.lossy(b, retransmits=8, every_ms=50) if e.WhichOneof("body") == "retransmit"]
    drop = s.drop("QDISC_DROP", b)
    lost = s.lost(3, s.t - 5_000_000, s.t)
    refused = s.refused("10.0.0.1", "192.168.7.9", 443)
    s.close(b)
    closes = [e.id for e in s.events
              if e.WhichOneof("body") == "tcp_state" and e.tcp_state.new_state == events_pb2.TCP_CLOSE
              and e.tcp_state.sock == refused.sock]
    return Scenario(s.events, retx[4], retx, drop.id, lost.id, closes[0])


@pytest.fixture
def scenario() -> Scenario:
    return lab_scenario()


@pytest.fixture
def recording(tmp_path, scenario) -> str:
    """The shared scenario written as a recording (the TUI and shell tests replay it)."""
    return write_recording(tmp_path / "lab.gewrec", scenario.events)
