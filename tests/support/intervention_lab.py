"""Real traffic for drop tests: TCP streams across a veth pair at a fixed rate, an engine that
reports the real sockets' flows, and a plane that attaches nothing (so the only kernel
objects are the intervention's own).
"""
from __future__ import annotations

import socket
import struct
import threading
import time

from gewtui.kernel import netns as nsmod
from gewtui.kernel.plane import PlaneStats
from gewtui.pb import events_pb2, model_pb2
from gewtui.model.identity import DEFAULT_RANGE


RATE = 8 * 1024 * 1024          # bytes/s per flow: far below the veth's capacity


class NullPlane:
    """A kernel plane that observes nothing (the observation plane is not under test)."""

    programs: list[str] = []
    maps: list[str] = []

    def __init__(self, ctx):
        self.ctx = ctx

    def stage(self): ...
    def verify(self): ...
    def set_scope(self, scope): ...
    def attach(self): ...

    def pin(self, directory):
        return []

    def poll(self, timeout_ms):
        time.sleep(min(timeout_ms, 20) / 1000)
        return 0

    def stats(self):
        return PlaneStats()

    def close(self): ...


def no_capability_check(*args, **kw):
    from gewtui.pb import session_pb2

    return session_pb2.CapabilityReport(verdict_reason="not checked: the plane loads no probe")


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def _listen(addr: str, port: int) -> socket.socket:
    s = socket.socket(_family(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(4)
    return s


def _connect(addr: str, port: int, timeout: float = 5) -> socket.socket:
    return socket.create_connection((addr, port), timeout=timeout)


class Stream:
    """One paced TCP stream from namespace a to namespace b, counted at the receiver."""

    def __init__(self, pair, port: int, v6: bool = False):
        server = pair.b_addr6 if v6 else pair.b_addr
        self.listener = nsmod.call_in_netns(pair.b, _listen, server, port)
        self.client = nsmod.call_in_netns(pair.a, _connect, server, port)
        self.server, _ = self.listener.accept()
        self.received = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True),
                        threading.Thread(target=self._recv, daemon=True)]
        for t in self.threads:
            t.start()

    def _send(self) -> None:
        chunk = b"g" * 16384
        self.client.settimeout(0.1)
        nxt = time.monotonic()
        while not self.stop.is_set():
            nxt += len(chunk) / RATE
            try:
                self.client.send(chunk)
            except (socket.timeout, BlockingIOError):
                pass
            except OSError:
                return
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                nxt = time.monotonic()

    def _recv(self) -> None:
        self.server.settimeout(0.1)
        while not self.stop.is_set():
            try:
                n = len(self.server.recv(65536))
            except socket.timeout:
                continue
            except OSError:
                return
            if n == 0:
                return
            self.received += n

    def rate(self, seconds: float) -> float:
        a = self.received
        time.sleep(seconds)
        return (self.received - a) / seconds

    def total_retrans(self) -> int:
        """tcpi_total_retrans of the client socket (struct tcp_info, offset 100)."""
        info = self.client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        return struct.unpack_from("=I", info, 100)[0]

    def tuple(self) -> events_pb2.Tuple:
        fam = self.client.family
        (sa, sp), (da, dp) = self.client.getsockname()[:2], self.client.getpeername()[:2]
        return events_pb2.Tuple(family=int(fam), saddr=socket.inet_pton(fam, sa),
                                daddr=socket.inet_pton(fam, da), sport=sp, dport=dp, protocol=6)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=2)
        for s in (self.client, self.server, self.listener):
            s.close()


class LabEngine:
    """Flow snapshots as the engine would hold them for the two streams."""

    def __init__(self, netns: str, ifname: str, tuples: dict[int, events_pb2.Tuple]):
        inode = nsmod.netns_inode(netns)
        self.flows, self.chains, self.interventions = {}, {}, []
        self.port_ranges: dict[int, tuple[int, int]] = {}   # netns -> ephemeral range
        for fid, t in tuples.items():
            fam = socket.AF_INET6 if t.family == socket.AF_INET6 else socket.AF_INET
            # The client flow's identity, as gewtui.model renders it (ephemeral port left out).
            key = (f"tcp {socket.inet_ntop(fam, t.saddr)} -> {socket.inet_ntop(fam, t.daddr)}:"
                   f"{t.dport} netns {inode}")
            f = model_pb2.FlowSnapshot(flow_id=fid, in_scope=True, netns=inode, key=key,
                                       family=t.family, local_addr=t.saddr, peer_addr=t.daddr,
                                       peer_port=t.dport, templates=["lab"],
                                       tcp_state=events_pb2.TCP_ESTABLISHED)
            f.members.add(sock=fid, tuple=t, state=events_pb2.TCP_ESTABLISHED)
            f.path.add(device=ifname)
            c = model_pb2.ReasonChain(flow_id=fid, at_event_id=1, allowed_interventions=["drop"])
            c.root.layer = model_pb2.L3
            self.flows[fid], self.chains[fid] = f, c

    def flow(self, fid):
        return self.flows.get(fid)

    def chain(self, fid):
        return self.chains.get(fid)

    def add_intervention(self, rec):
        self.interventions.append(rec)

    def port_range(self, netns):
        return self.port_ranges.get(netns, DEFAULT_RANGE)
