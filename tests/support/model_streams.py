"""Builders for constructed L0 event streams: realistic sequences of the events the kernel
plane emits, for tests of the observation plane (and of anything that consumes it).

    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)        # CLOSE -> SYN_SENT
    s.established(c); s.transfer(c); s.close(c)
    events = s.events                                  # list[events_pb2.Event], ids from 1

Times advance by ``step_us`` per event unless told otherwise (``s.wait(ms)``). Every helper
returns the events it appended, so tests can cite them.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from gewtui.pb import events_pb2 as E

NETNS = 4026531840
ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK, \
    LISTEN = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
PROCESS, OWNER, NONE = E.ATTRIBUTION_PROCESS_CONTEXT, E.ATTRIBUTION_SOCKET_OWNER, E.ATTRIBUTION_NONE


def ip(a: str) -> bytes:
    return ipaddress.ip_address(a).packed


@dataclass
class Conn:
    """One socket as the kernel reports it (saddr = local side)."""

    local: str
    lport: int
    peer: str
    pport: int
    sock: int
    netns: int = NETNS
    tgid: int = 1000
    comm: str = "client"

    @property
    def family(self) -> int:
        return 10 if ":" in self.local else 2

    def tuple(self, reverse: bool = False) -> E.Tuple:
        s, sp, d, dp = (self.local, self.lport, self.peer, self.pport)
        if reverse:
            s, sp, d, dp = d, dp, s, sp
        return E.Tuple(family=self.family, saddr=ip(s), daddr=ip(d), sport=sp, dport=dp, protocol=6)


class StreamBuilder:
    def __init__(self, netns: int = NETNS, start_ns: int = 1_000_000_000, step_us: int = 100):
        self.events: list[E.Event] = []
        self.t = start_ns
        self.step_ns = step_us * 1000
        self.netns = netns
        self._sock = 0xFFFF888000100000
        self._port = 40000

    # -- plumbing ---------------------------------------------------------------------------
    def wait(self, ms: float) -> None:
        self.t += int(ms * 1_000_000)

    def new_sock(self) -> int:
        self._sock += 0x1000
        return self._sock

    def new_port(self) -> int:
        self._port += 1
        return self._port

    def emit(self, kind: str, body, *, netns: int | None = None, tgid: int = 0, comm: str = "",
             source: int = NONE, dt_ns: int | None = None) -> E.Event:
        self.t += self.step_ns if dt_ns is None else dt_ns
        ev = E.Event(id=len(self.events) + 1, ktime_ns=self.t, cpu=0)
        ev.attr.netns = self.netns if netns is None else netns
        if tgid:
            ev.attr.pid = ev.attr.tgid = tgid
            ev.attr.comm = comm
        ev.attr.source = source
        getattr(ev, kind).CopyFrom(body)
        self.events.append(ev)
        return ev

    def _c(self, c: Conn, kind, body, process: bool = False, **kw) -> E.Event:
        return self.emit(kind, body, netns=c.netns, tgid=c.tgid, comm=c.comm,
                         source=PROCESS if process else OWNER, **kw)

    # -- single facts -----------------------------------------------------------------------
    def state(self, c: Conn, old: int, new: int, process: bool = False) -> E.Event:
        return self._c(c, "tcp_state", E.TcpStateChange(tuple=c.tuple(), sock=c.sock, old_state=old,
                                                        new_state=new), process)

    def retransmit(self, c: Conn, state: int = ESTABLISHED, synack: bool = False) -> E.Event:
        return self._c(c, "retransmit", E.TcpRetransmit(tuple=c.tuple(), sock=c.sock, state=state,
                                                        synack=synack))

    def reset(self, c: Conn, direction: int, state: int = 0, sock: int | None = None,
              reason_name: str = "") -> E.Event:
        return self._c(c, "reset", E.TcpReset(tuple=c.tuple(), sock=c.sock if sock is None else sock,
                                              direction=direction, state=state,
                                              reason_name=reason_name),
                       process=direction == E.RESET_SENT)

    def probe(self, c: Conn, segments: int = 10, nbytes: int = 14480, zero_window: int = 0,
              now: bool = False, final: bool = False) -> E.Event:
        return self._c(c, "tcp_probe", E.TcpProbeSummary(
            tuple=c.tuple(), sock=c.sock, segments=segments, bytes=nbytes, snd_cwnd=10,
            snd_wnd=65535 if not now else 0, rcv_wnd=65535, srtt_us=120,
            zero_window_segments=zero_window, zero_window_now=now, final=final,
            window_start_ns=self.t - 1_000_000, window_end_ns=self.t))

    def destroy(self, c: Conn) -> E.Event:
        return self._c(c, "destroy", E.SocketDestroy(tuple=c.tuple(), sock=c.sock))

    def owner(self, c: Conn, tgid: int, comm: str, via: str = "send") -> E.Event:
        prev_tgid, prev_comm = c.tgid, c.comm
        c.tgid, c.comm = tgid, comm
        return self._c(c, "owner", E.SocketOwner(tuple=c.tuple(), sock=c.sock, previous_tgid=prev_tgid,
                                                 previous_comm=prev_comm, via=via), process=True)

    def drop(self, reason_name: str, c: Conn | None = None, *, ifname: str = "veth0",
             attribution: int = E.PACKET_ATTRIBUTION_HEADERS, reverse: bool = False,
             count: int = 1, netns: int | None = None, with_sock: bool = False) -> E.Event:
        body = E.SkbDrop(reason_name=reason_name, reason=1, protocol=0x0800, ifname=ifname,
                         ifindex=2, attribution=attribution, count=count)
        if c is not None and attribution != E.PACKET_ATTRIBUTION_NONE:
            body.tuple.CopyFrom(c.tuple(reverse))
            if with_sock:
                body.sock = c.sock
        return self.emit("skb_drop", body, netns=netns)

    def qdisc(self, ifname: str = "veth0", dropped: int = 0, overlimits: int = 0,
              enqueued: int = 100, netns: int | None = None) -> E.Event:
        ns = self.netns if netns is None else netns
        return self.emit("qdisc", E.QdiscSummary(
            ifindex=2, ifname=ifname, netns=ns, handle=0x10000, kind="tbf", enqueued=enqueued,
            dequeued=enqueued - dropped, dropped=dropped, overlimits=overlimits,
            window_start_ns=self.t - 1_000_000_000, window_end_ns=self.t), netns=ns)

    def fib(self, dst: str, device: str = "veth0", gateway: str | None = None, err: int = 0,
            table: int = 254, dport: int = 0, src: str | None = None, iif: int = 1,
            netns: int | None = None) -> E.Event:
        fam = 10 if ":" in dst else 2
        body = E.FibLookup(family=fam, table=table, err=err, oif=0, iif=iif, dst=ip(dst),
                           dport=dport, protocol=6 if dport else 0, device=device if not err else "",
                           count=1)
        if gateway:
            body.gateway = ip(gateway)
        if src:
            body.src = ip(src)
        return self.emit("fib", body, netns=netns)

    def neigh(self, address: str, device: str = "veth0", state_name: str = "REACHABLE") -> E.Event:
        return self.emit("neigh", E.NeighUpdate(family=2, device=device, address=ip(address),
                                                new_state=2, new_state_name=state_name))

    def rcvq_full(self, c: Conn, listen_overflow: bool = False, sock: int | None = None) -> E.Event:
        return self._c(c, "rcvq_full", E.ReceiveQueueFull(
            tuple=c.tuple(), sock=c.sock if sock is None else sock, rmem_alloc=212992,
            truesize=2304, sk_rcvbuf=212992, listen_overflow=listen_overflow))

    def lost(self, count: int, t1: int = 0, t2: int = 0, stage: str = "ringbuf-reserve") -> E.Event:
        return self.emit("lost", E.LostRecords(count=count, stage=stage, window_start_ns=t1,
                                               window_end_ns=t2, probe="tcp_state"))

    def mark(self, kind: str, detail: str = "") -> E.Event:
        return self.emit("mark", E.SessionMark(kind=kind, detail=detail))

    def facts(self, lo: int = 32768, hi: int = 60999, *, netns: int | None = None,
              when: str = "start", listen_overflows: int = 0, name: str = "ns") -> E.Event:
        ns = self.netns if netns is None else netns
        return self.emit("netns_facts", E.NetnsFacts(netns=ns, name=name, port_lo=lo, port_hi=hi,
                                                     when=when, listen_overflows=listen_overflows),
                         netns=ns)

    def inventory(self, c: Conn, state: int = ESTABLISHED, cookie: int = 0, *, owner: bool = True,
                  rtt_us: int = 0) -> E.Event:
        """c as sock_diag reported it at the start (c.sock is then its cookie)."""
        body = E.SocketInventory(tuple=c.tuple(), sock_cookie=cookie or c.sock, state=state,
                                 index=1, total=1)
        body.info.rtt_us = rtt_us
        return self.emit("inventory", body, netns=c.netns, tgid=c.tgid if owner else 0,
                         comm=c.comm if owner else "", dt_ns=0)

    # -- connection lifecycles ---------------------------------------------------------------
    def connect(self, local: str, peer: str, pport: int, *, lport: int | None = None,
                sock: int | None = None, tgid: int = 1000, comm: str = "client",
                netns: int | None = None) -> Conn:
        c = Conn(local, lport or self.new_port(), peer, pport, sock or self.new_sock(),
                 self.netns if netns is None else netns, tgid, comm)
        # The kernel traces CLOSE -> SYN_SENT before it picks the source port: sport is 0.
        tup = c.tuple()
        tup.sport = 0
        self._c(c, "tcp_state", E.TcpStateChange(tuple=tup, sock=c.sock, old_state=CLOSE,
                                                 new_state=SYN_SENT), process=True)
        return c

    def established(self, c: Conn) -> E.Event:
        return self.state(c, SYN_SENT, ESTABLISHED)

    def transfer(self, c: Conn, summaries: int = 3, ms: float = 1.0) -> list[E.Event]:
        out = []
        for _ in range(summaries):
            self.wait(ms)
            out.append(self.probe(c))
        return out

    def close(self, c: Conn, active: bool = True, destroy: bool = True) -> list[E.Event]:
        if active:
            out = [self.state(c, ESTABLISHED, FIN_WAIT1, process=True),
                   self.state(c, FIN_WAIT1, FIN_WAIT2), self.probe(c, final=True),
                   self.state(c, FIN_WAIT2, CLOSE)]
        else:
            out = [self.state(c, ESTABLISHED, CLOSE_WAIT), self.state(c, CLOSE_WAIT, LAST_ACK, process=True),
                   self.probe(c, final=True), self.state(c, LAST_ACK, CLOSE)]
        if destroy:
            out.append(self.destroy(c))
        return out

    def routed(self, local: str, peer: str, pport: int, *, device: str = "veth0",
               gateway: str | None = None, summaries: int = 0) -> Conn:
        """A route lookup for the peer, then a connection established over it."""
        self.fib(peer, device=device, gateway=gateway, dport=pport, src=local)
        c = self.connect(local, peer, pport)
        self.established(c)
        if summaries:
            self.transfer(c, summaries)
        return c

    def healthy(self, local: str, peer: str, pport: int, *, device: str = "veth0",
                gateway: str | None = None, summaries: int = 3, **kw) -> Conn:
        """A request/response connection with a normal close, route lookup first."""
        self.fib(peer, device=device, gateway=gateway, dport=pport, src=local)
        c = self.connect(local, peer, pport, **kw)
        self.established(c)
        self.transfer(c, summaries)
        self.close(c)
        return c

    def listen(self, local: str, port: int, tgid: int = 2000, comm: str = "server") -> Conn:
        c = Conn(local, port, "0.0.0.0", 0, self.new_sock(), self.netns, tgid, comm)
        self.state(c, CLOSE, LISTEN, process=True)
        return c

    def accept(self, listener: Conn, peer: str, pport: int, incomplete_first: bool = True) -> Conn:
        """A passive open: the child is traced LISTEN -> SYN_RECV before its peer is known."""
        c = Conn(listener.local, listener.lport, peer, pport, self.new_sock(), listener.netns,
                 listener.tgid, listener.comm)
        if incomplete_first:
            blank = Conn(listener.local, listener.lport, "0.0.0.0", 0, c.sock, c.netns, c.tgid, c.comm)
            self.state(blank, LISTEN, SYN_RECV)
        self.state(c, SYN_RECV, ESTABLISHED)
        return c

    def refused(self, local: str, peer: str, pport: int, **kw) -> Conn:
        c = self.connect(local, peer, pport, **kw)
        self.reset(c, E.RESET_RECEIVED, state=SYN_SENT)
        self.state(c, SYN_SENT, CLOSE)
        self.destroy(c)
        return c

    def handshake_timeout(self, local: str, peer: str, pport: int, retries: int = 3, **kw) -> Conn:
        c = self.connect(local, peer, pport, **kw)
        delay = 1000.0
        for _ in range(retries):
            self.wait(delay)
            self.retransmit(c, state=SYN_SENT)
            delay *= 2
        self.wait(delay)
        self.state(c, SYN_SENT, CLOSE, process=True)
        self.destroy(c)
        return c

    def lossy(self, c: Conn, retransmits: int = 8, every_ms: float = 50.0) -> list[E.Event]:
        out = []
        for _ in range(retransmits):
            self.wait(every_ms)
            out.append(self.probe(c))
            out.append(self.retransmit(c))
        return out

    def peer_reset(self, c: Conn) -> list[E.Event]:
        return [self.reset(c, E.RESET_RECEIVED, state=ESTABLISHED), self.state(c, ESTABLISHED, CLOSE),
                self.destroy(c)]

    def local_abort(self, c: Conn) -> list[E.Event]:
        return [self.reset(c, E.RESET_SENT, state=ESTABLISHED, reason_name="NOT_SPECIFIED"),
                self.state(c, ESTABLISHED, CLOSE, process=True), self.destroy(c)]

    def zero_window(self, c: Conn, summaries: int = 3) -> list[E.Event]:
        out = []
        for _ in range(summaries):
            self.wait(100)
            out.append(self.probe(c, segments=2, zero_window=2, now=True))
        return out
