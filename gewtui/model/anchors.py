"""Protocol anchors: how the L0 events of each lifecycle feed the flow registry.

One small interface — an anchor names the event kinds it takes and applies one event to the
registry, appending the Changes it caused — and one implementation per lifecycle:
TcpAnchor (TCP state, retransmits, resets, probes, owners, destroy, receive-queue overflow),
QueueAnchor (drops, qdisc summaries), RouteAnchor (fib lookups, neighbours) and
SessionAnchor (lost records, scope changes, session marks). Anchors hold no state of their
own: everything lives in the registry, so a checkpoint copies one object.

Handlers are called as ``h(ev, body, eid, t, out)``; the engine has already read the kind,
id and time once (this is the hot path: no protobuf is built here).
"""
from __future__ import annotations

from typing import Callable

from gewtui.model.changes import Change, change
from gewtui.model.entities import (CLOSE, DIVERGED, EMERGED, PROCS_CAP, TRANSITIONS_CAP, ix_add,
                                   ix_get)
from gewtui.model.flows import INVENTORIED, Registry
from gewtui.model.latency import add_rtt, connected
from gewtui.model.identity import CLIENT, LISTENER, born, make_key, role_from_ports, role_from_state
from gewtui.model.schema import TCP_STATE_NAMES

Handler = Callable[..., None]
_FRESH_OLD = frozenset({CLOSE, 3, 10, 12})   # CLOSE, SYN_RECV, LISTEN, NEW_SYN_RECV
_RESET_RECEIVED, _ATTR_PROCESS, _PKT_NONE = 2, 1, 3
_EAGAIN, _EHOSTUNREACH, _MAIN_TABLE = -11, -113, 254
PENDING_CAP, ROUTES_CAP, ATTRS_CAP = 4096, 65536, 65536
_STATE = dict(TCP_STATE_NAMES)
_NETNS: dict[int, int] = {}
# Local addresses are few, shared by many flows: one bytes object each (interning saves memory)
_LOCAL: dict[bytes, bytes] = {}
_LOCAL_CAP = 4096


class Anchor:
    """Takes the L0 events of one lifecycle into the registry."""

    kinds: tuple[str, ...] = ()

    def __init__(self, reg: Registry):
        self.reg = reg

    def handlers(self) -> dict[str, Handler]:
        """kind -> handler(ev, body, eid, t, out)"""
        return {k: getattr(self, k) for k in self.kinds}

    def apply(self, ev, out: list[Change]) -> list[Change]:   # the slow, generic entry
        kind = ev.WhichOneof("body")
        self.handlers()[kind](ev, getattr(ev, kind), ev.id, ev.ktime_ns, out)
        return out


def _zero(raw: bytes) -> bool:   # all bytes zero (or none); bytes.count runs in C
    return raw.count(0) == len(raw)


class TcpAnchor(Anchor):
    kinds = ("tcp_state", "retransmit", "reset", "tcp_probe", "cong_state", "destroy", "owner",
             "rcvq_full")

    def __init__(self, reg: Registry):
        super().__init__(reg)
        self._socks = reg.socks
        by_kind = reg.matcher.by_kind
        self._m = {k: by_kind.get(k, ()) for k in self.kinds}
        offers = reg.matcher.offers
        # the hot kinds' unrolled offers (None: no template takes that kind)
        self._offer_state = offers.get("tcp_state")
        self._offer_probe = offers.get("tcp_probe")
        self.raw: bytes | None = None   # the wire bytes of the event being fed, if known

    # -- socket to member -------------------------------------------------------------------
    def _member(self, ev, b, sock, eid, t, out, old=0, new=0):
        """The member for an event whose socket the registry does not hold open (slow path)."""
        reg = self.reg
        m = reg.socks.get(sock) if sock else None
        if m is not None and m.closed and not (old and old in _FRESH_OLD):
            # A late event of a closed socket (a final summary, a congestion-state reset, a
            # destroy) stays with it until a state change starts a new one at its address.
            self._touch(m.flow, eid, t, out)
            return m
        tup = b.tuple
        family, saddr, daddr = tup.family, tup.saddr, tup.daddr
        sport, dport, proto = tup.sport, tup.dport, tup.protocol or 6
        if m is None and sock and reg.port_ranges and not born(old, new):
            # an inventory was taken: its socket? (never one being born: a listener's child
            # traced before its peer is filled in has the listener's own tuple)
            m = reg.adopt_address(sock, (saddr, sport, daddr, dport), ev.attr.netns)
            if m is not None:
                return self._touch(m.flow, eid, t, out) or m
        if m is not None and not m.closed:
            # A new socket at the address of one whose end was not seen (lost records, or a
            # socket of another namespace reusing freed memory): the old one is over.
            reg.close_member(m, t)
            reg.release(m)
        netns = ev.attr.netns
        netns = _NETNS.setdefault(netns, netns)   # one int object per namespace, not per flow
        local = _LOCAL.get(saddr)
        if local is not None:
            saddr = local
        elif len(_LOCAL) < _LOCAL_CAP:
            _LOCAL[saddr] = saddr
        role = role_from_state(old, new) if old or new else None
        if role is None:
            role = role_from_ports(sport, dport, (netns, sport) in reg.listeners,
                                   reg.port_ranges.get(netns), netns in reg.port_ranges)
        if role != LISTENER and (_zero(daddr) or dport == 0):
            # A passive child is traced before its peer is filled in: hold its facts until
            # an event names the peer.
            if sock:
                p = reg.pending.setdefault(sock, [])
                if len(p) < 8:
                    reg.pin(eid, ev)
                    p.append(eid)
                else:
                    reg.unattributed += 1
                if len(reg.pending) > PENDING_CAP:
                    first = next(iter(reg.pending))
                    held = reg.pending.pop(first)
                    reg.unattributed += len(held)
                    for e in held:
                        reg.unpin(e)
            else:
                reg.unattributed += 1
            return None
        key = make_key(role, netns, family, proto, saddr, sport, daddr, dport)
        fid = reg.keys.get(key)
        f = reg.flows[fid] if fid else None
        if f is not None and f.open == 0 and f.idle_since >= 0 and \
                t - max(f.idle_since, f.last_t) > reg.silence_ns:
            reg.terminate(f, "closed" if f.n_conns else "silence", eid, t, out)
            f = None
        if f is None:
            f = reg.emerge(key, ev, eid, t, out)
        else:
            f.n_events += 1
            f.last_eid, f.last_t = eid, t
            if f.phase == EMERGED:
                reg.evolve(f, eid, t, out)
        m = reg.add_member(f, sock, (saddr, sport, daddr, dport), new or 0, ev, eid, t, out, self.raw)
        held = reg.pending.pop(sock, None)
        if held:
            for e in held:
                pev = reg.event(e)
                pb = pev.tcp_state if pev is not None and pev.WhichOneof("body") == "tcp_state" else None
                if pb is not None:
                    self._transition(f, m, pb.old_state, pb.new_state, e, pev.ktime_ns, out, pinned=True)
                else:
                    reg.unpin(e)
        return m

    def _transition(self, f, m, old, new, eid, t, out, pinned=False) -> None:
        reg = self.reg
        extra = m.rst_eid if (new == CLOSE and m.rst_eid) else 0
        if not pinned:
            reg.pin_id(eid)
        frm, to = _STATE.get(old) or str(old), _STATE.get(new) or str(new)
        if extra:
            reg.pin_id(extra)
            reg.add_trans(f, (eid, t, "tcp-state", frm, to, extra))
            detail = {"from": frm, "to": to, "sock": hex(m.sock), "after_reset": str(extra)}
        else:
            reg.add_trans(f, eid)   # read back from the pinned event when rendered
            detail = {"from": frm, "to": to, "sock": hex(m.sock)}
        m.state = new
        f.tcp_state = new
        out.append(change("tcp-state", f.fid, eid, detail))

    def _attribute(self, f, ev, eid, via: str, out) -> None:
        a = ev.attr
        tgid = a.tgid
        if not tgid:
            return
        for p in f.procs:
            if p[1][1] == tgid:
                return
        reg = self.reg
        key = (a.pid, tgid, a.comm, a.cgroup_id, a.netns, a.source, a.uid)
        who = reg.attrs.get(key)
        if who is None:
            who = key
            if len(reg.attrs) < ATTRS_CAP:
                reg.attrs[key] = key
        reg.pin_id(eid)
        procs = f.procs + ((eid, who, via),)
        if len(procs) > PROCS_CAP:
            reg.unpin(procs[1][0])
            procs = procs[:1] + procs[2:]
        f.procs = procs
        if len(f.procs) > 1:
            # A process change: attribution grows, the flow goes on.
            prev = f.procs[-2][1]
            reg.pin_id(eid)
            reg.add_trans(f, (eid, ev.ktime_ns, "owner", f"{prev[2]}[{prev[1]}]",
                              f"{a.comm}[{tgid}]", 0))
            out.append(change("owner", f.fid, eid, {"tgid": str(tgid), "comm": a.comm, "via": via}))

    def _touch(self, f, eid, t, out) -> None:
        f.n_events += 1
        f.last_eid, f.last_t = eid, t
        if f.phase == EMERGED:
            self.reg.evolve(f, eid, t, out)

    # -- handlers ----------------------------------------------------------------------------
    def tcp_state(self, ev, b, eid, t, out) -> None:
        # Every connection makes ~6 of these: the common path is inlined.
        sock = b.sock
        old, new = b.old_state, b.new_state
        reg = self.reg
        m = self._socks.get(sock)
        if m is None or (old in _FRESH_OLD and (m.closed or old != m.state)):
            m = self._member(ev, b, sock, eid, t, out, old, new)
            if m is None:
                return
            f = m.flow
        else:
            f = m.flow
            f.n_events += 1
            f.last_eid = eid
            f.last_t = t
            if f.phase == EMERGED:
                reg.evolve(f, eid, t, out)
            if not m.tkey[1]:
                self._learn_port(m, b)
        m.last_eid = eid
        # The transition (see _transition, the general form).
        frm, to = _STATE.get(old) or str(old), _STATE.get(new) or str(new)
        pinned = reg.pinned
        if eid in pinned:
            reg.refs[eid] = reg.refs.get(eid, 1) + 1
        else:
            raw = self.raw
            pinned[eid] = raw if raw is not None else ev.SerializeToString(deterministic=True)
        if new == CLOSE and m.rst_eid:
            extra = m.rst_eid
            reg.pin_id(extra)
            reg.add_trans(f, (eid, t, "tcp-state", frm, to, extra))
            detail = {"from": frm, "to": to, "sock": hex(sock), "after_reset": str(extra)}
        else:
            trans = f.trans
            if trans and len(trans) < TRANSITIONS_CAP:
                trans.append(eid)
            else:
                reg.add_trans(f, eid)
            detail = {"from": frm, "to": to, "sock": hex(sock)}
        m.state = new
        f.tcp_state = new
        out.append(change("tcp-state", f.fid, eid, detail))
        if old == 2 and new == 1:   # SYN_SENT -> ESTABLISHED: connect latency
            connected(reg, f, m, t)
        if ev.attr.source == _ATTR_PROCESS:
            self._attribute(f, ev, eid, "state", out)
        if self._offer_state is not None:
            self._offer_state(reg, f, m, ev, b, eid, t, out)
        if new == CLOSE:
            reg.close_member(m, t)

    def _sock_event(self, ev, b, eid, t, out):
        """The member an event of an existing socket belongs to, its flow touched."""
        sock = b.sock
        m = self._socks.get(sock)
        if m is None or m.closed:
            m = self._member(ev, b, sock, eid, t, out)
            if m is None:
                return None
        else:
            self._touch(m.flow, eid, t, out)
            if not m.tkey[1]:
                self._learn_port(m, b)
        m.last_eid = eid
        return m

    def _learn_port(self, m, b) -> None:
        """A connecting socket is traced CLOSE -> SYN_SENT before its source port is chosen:
        take the port from the first event that has it, and index the full tuple."""
        sport = b.tuple.sport
        if sport:
            reg = self.reg
            saddr, _, daddr, dport = m.tkey
            reg.release(m)
            m.tkey = (saddr, sport, daddr, dport)
            m.indexed = True
            reg.socks[m.sock] = m
            ix_add(reg.tuples, m.tkey, m)

    def retransmit(self, ev, b, eid, t, out) -> None:
        m = self._sock_event(ev, b, eid, t, out)
        if m is None:
            return
        f = m.flow
        f.n_retx += 1
        cts = self._m["retransmit"]
        if cts:
            self.reg.matcher.offer(self.reg, f, m, "retransmit", ev, b, eid, t, out)

    def reset(self, ev, b, eid, t, out) -> None:
        if not b.sock:
            # The kernel answered without a socket (e.g. a closed port): no local flow has it.
            self.reg.note_session(ev, eid)
            self.reg.unattributed += 1
            return
        m = self._sock_event(ev, b, eid, t, out)
        if m is None:
            return
        f = m.flow
        if b.direction == _RESET_RECEIVED:
            f.n_rst_recv += 1
            m.rst_eid = eid
        else:
            f.n_rst_sent += 1
            if ev.attr.source == _ATTR_PROCESS:
                self._attribute(f, ev, eid, "reset", out)
        cts = self._m["reset"]
        if cts:
            self.reg.matcher.offer(self.reg, f, m, "reset", ev, b, eid, t, out)

    def tcp_probe(self, ev, b, eid, t, out) -> None:
        # The most frequent event: the open-socket path is inlined.
        m = self._socks.get(b.sock)
        if m is not None and not m.closed:
            f = m.flow
            f.n_events += 1
            f.last_eid = eid
            f.last_t = t
            if f.phase == EMERGED:
                self.reg.evolve(f, eid, t, out)
            m.last_eid = eid
            if not m.tkey[1]:
                self._learn_port(m, b)
        else:
            m = self._sock_event(ev, b, eid, t, out)
            if m is None:
                return
            f = m.flow
        f.n_segments += b.segments
        f.n_bytes += b.bytes
        zw = b.zero_window_segments
        if zw:
            f.n_zw += zw
        if b.srtt_log2_hist:
            add_rtt(f, b.srtt_log2_hist)
        if self._offer_probe is not None:
            self._offer_probe(self.reg, f, m, ev, b, eid, t, out)

    def cong_state(self, ev, b, eid, t, out) -> None:
        m = self._sock_event(ev, b, eid, t, out)
        if m is None:
            return
        cts = self._m["cong_state"]
        if cts:
            self.reg.matcher.offer(self.reg, m.flow, m, "cong_state", ev, b, eid, t, out)

    def destroy(self, ev, b, eid, t, out) -> None:
        reg = self.reg
        m = reg.socks.get(b.sock) or (reg.socks.get(INVENTORIED + b.sock_cookie) if b.sock_cookie else None)
        if m is None:
            # A socket the registry no longer (or never) held: nothing to end.
            reg.unattributed += 1
            return
        f = m.flow
        self._touch(f, eid, t, out)
        m.last_eid = eid
        cts = self._m["destroy"]
        if cts:
            reg.matcher.offer(reg, f, m, "destroy", ev, b, eid, t, out)
        reg.close_member(m, t)   # stays indexed: late events still follow (see _member)

    def owner(self, ev, b, eid, t, out) -> None:
        m = self._sock_event(ev, b, eid, t, out)
        if m is None:
            return
        f = m.flow
        self._attribute(f, ev, eid, b.via or "owner", out)
        cts = self._m["owner"]
        if cts:
            self.reg.matcher.offer(self.reg, f, m, "owner", ev, b, eid, t, out)

    def rcvq_full(self, ev, b, eid, t, out) -> None:
        reg = self.reg
        m = reg.socks.get(b.sock) if b.sock else None
        if m is None and b.listen_overflow:
            fid = reg.listeners.get((ev.attr.netns, b.tuple.sport)) or \
                reg.listeners.get((ev.attr.netns, b.tuple.dport))
            if fid:
                f = reg.flows[fid]
                self._touch(f, eid, t, out)
                f.n_drops += 1
                reg.matcher.offer(reg, f, None, "rcvq_full", ev, b, eid, t, out)
                return
        if m is None and _zero(b.tuple.daddr) and not b.listen_overflow:
            reg.unattributed += 1
            return
        m = self._sock_event(ev, b, eid, t, out)
        if m is None:
            return
        m.flow.n_drops += 1
        reg.matcher.offer(reg, m.flow, m, "rcvq_full", ev, b, eid, t, out)


class QueueAnchor(Anchor):
    kinds = ("skb_drop", "qdisc")

    def _path(self, netns, ifname, kind, ev, b, eid, t, out) -> None:
        """Offer a per-interface fact to the path-scoped templates of flows routed there."""
        reg = self.reg
        cts = reg.matcher.path_kind.get(kind)
        if not cts:
            return
        fids = reg.paths.get((netns, ifname))
        if not fids:
            return
        live = [c for c in cts if c.steps0.get(kind) is not None and c.steps0[kind](ev, b)] \
            if all(c.single for c in cts) else list(cts)
        if not live:
            return
        for fid in list(fids):
            reg.matcher.offer(reg, reg.flows[fid], None, kind, ev, b, eid, t, out, live)

    def _flows_for(self, ev, b, netns):
        """Flows a packet-level drop belongs to: by socket, by tuple (this netns first, then
        any netns: the packet was dropped on the path), by listener port."""
        reg = self.reg
        sock = b.sock
        if sock:
            m = reg.socks.get(sock)
            if m is not None:
                return [(m.flow, m)]
        tup = b.tuple
        s, d, sp, dp = tup.saddr, tup.daddr, tup.sport, tup.dport
        found = list(ix_get(reg.tuples, (s, sp, d, dp))) + list(ix_get(reg.tuples, (d, dp, s, sp)))
        if not found:
            # A connecting socket whose source port no event has shown yet (its SYN dropped):
            # every such socket to this service is a member of the same client flow.
            found = list(ix_get(reg.tuples, (s, 0, d, dp))) + list(ix_get(reg.tuples, (d, 0, s, sp)))
        if found:
            same = [m for m in found if m.flow.netns == netns]
            pick = same or found
            seen, out = set(), []
            for m in sorted(pick, key=lambda m: m.flow.fid):
                if m.flow.fid not in seen:
                    seen.add(m.flow.fid)
                    out.append((m.flow, m))
            return out
        fid = reg.listeners.get((netns, dp)) or reg.listeners.get((netns, sp))
        if fid:
            return [(reg.flows[fid], None)]
        return []

    def skb_drop(self, ev, b, eid, t, out) -> None:
        reg = self.reg
        netns = ev.attr.netns
        hits = self._flows_for(ev, b, netns) if b.attribution != _PKT_NONE else []
        n = b.count or 1
        for f, m in hits:
            f.n_events += 1
            f.last_eid, f.last_t = eid, t
            if f.phase == EMERGED:
                reg.evolve(f, eid, t, out)
            f.n_drops += n
            reg.matcher.offer(reg, f, m, "skb_drop", ev, b, eid, t, out)
        if not hits:
            reg.unattributed += 1
            ifname = b.ifname or str(b.ifindex)
            ctx = reg.iface(netns, ifname)
            key = b.reason_name or str(b.reason)
            ctx.counts[key] = ctx.counts.get(key, 0) + n
            reg.note_iface(ctx, ev, eid, t)
            self._path(netns, ifname, "skb_drop", ev, b, eid, t, out)

    def qdisc(self, ev, b, eid, t, out) -> None:
        reg = self.reg
        netns = b.netns or ev.attr.netns
        ifname = b.ifname or str(b.ifindex)
        ctx = reg.iface(netns, ifname)
        ctx.counts["qdisc"] = ctx.counts.get("qdisc", 0) + 1
        if b.dropped or b.overlimits:
            reg.note_iface(ctx, ev, eid, t)
            self._path(netns, ifname, "qdisc", ev, b, eid, t, out)


class RouteAnchor(Anchor):
    kinds = ("fib", "neigh")

    def fib(self, ev, b, eid, t, out) -> None:
        reg = self.reg
        if b.iif > 1:
            return   # an input-route lookup (a packet arriving): not a path of a local flow
        err = b.err
        netns = ev.attr.netns
        dst = b.dst
        rk = (netns, dst)
        if err == 0:
            dev, gw = b.device, b.gateway
            if _zero(gw):
                gw = b""
            old = reg.routes.get(rk)
            if old is not None and old[1] == dev and old[2] == gw:
                return
            hop = (eid, dev, gw, b.table, 0)
            reg.pin(eid, ev)
            if old is not None:
                reg.unpin(old[0])
            elif len(reg.routes) >= ROUTES_CAP:
                first = next(iter(reg.routes))
                reg.unpin(reg.routes.pop(first)[0])
            reg.routes[rk] = hop
            fids = [x for x in ix_get(reg.peers, dst) if reg.flows[x].key[1] == netns]
            if not fids:
                return
            src = b.src
            for fid in sorted(fids):
                f = reg.flows.get(fid)
                if f is None or f.phase >= DIVERGED:
                    continue
                if not _zero(src) and f.local and not _zero(f.local) and src != f.local:
                    continue
                cur = f.cur_hop()
                f.n_events += 1
                f.last_eid, f.last_t = eid, t
                if f.phase == EMERGED:
                    reg.evolve(f, eid, t, out)
                if cur is None:
                    reg.adopt(f, hop, eid, out)
                elif cur[1] != dev or cur[2] != gw:
                    reg.diverge(f, hop, ev, eid, t, out)
            return
        if b.table != _MAIN_TABLE and (err == _EAGAIN or (err == _EHOSTUNREACH and b.family == 10)):
            # A miss in one table of several (local before main) is routine: IPv4 reports it
            # as -EAGAIN, IPv6 as its null entry (unreachable, -EHOSTUNREACH).
            return
        hits = [reg.flows[x] for x in sorted(ix_get(reg.peers, dst)) if reg.flows[x].key[1] == netns]
        if not hits and b.protocol and b.dport:
            # A connection attempt that found no route never reaches SYN_SENT: the routing
            # lifecycle is its only anchor, so the flow emerges here.
            key = make_key(CLIENT, netns, b.family, b.protocol, b.src if not _zero(b.src) else b"",
                           b.sport, dst, b.dport)
            fid = reg.keys.get(key)
            if fid:
                hits = [reg.flows[fid]]
            else:
                f = reg.emerge(key, ev, eid, t, out)
                reg.go_idle(f, t)
                hits = [f]
                f.n_events -= 1   # emerge counted it; counted again below
        for f in hits:
            f.n_events += 1
            f.last_eid, f.last_t = eid, t
            if f.phase == EMERGED and f.first_eid != eid:
                reg.evolve(f, eid, t, out)
            if f.idle_since >= 0 and not f.open:
                f.idle_since = max(f.idle_since, t)
            reg.add_err_hop(f, (eid, b.device, b"", b.table, err))
            reg.matcher.offer(reg, f, None, "fib", ev, b, eid, t, out)

    def neigh(self, ev, b, eid, t, out) -> None:
        reg = self.reg
        ctx = reg.iface(ev.attr.netns, b.device)
        ctx.counts["neigh"] = ctx.counts.get("neigh", 0) + 1
        reg.note_iface(ctx, ev, eid, t)


class SessionAnchor(Anchor):
    kinds = ("lost", "scope_change", "mark")

    def lost(self, ev, b, eid, t, out) -> None:
        reg = self.reg
        t1, t2 = b.window_start_ns, b.window_end_ns
        if not t2:
            t1, t2 = reg.last_lost_t, t   # no window given: anywhere since the last known loss
        reg.last_lost_t = t
        reg.lost_records += b.count
        reg.complete = False
        reg.note_lost(ev, eid, b.count, t1, t2, b.stage)
        out.append(change("lost", 0, eid, {"count": str(b.count), "stage": b.stage,
                                           "from_ns": str(t1), "to_ns": str(t2)}))

    def scope_change(self, ev, b, eid, t, out) -> None:
        reg = self.reg
        reg.note_session(ev, eid)
        if not b.observation_complete:
            reg.complete = False
            reg.note_lost(ev, eid, 0, t, t, b.what)
            out.append(change("lost", 0, eid, {"what": b.what, "iface": b.iface,
                                               "netns": b.netns, "detail": b.detail}))

    def mark(self, ev, b, eid, t, out) -> None:
        reg = self.reg
        reg.note_session(ev, eid)
        if b.unknown_to_ns:
            reg.complete = False
            reg.note_lost(ev, eid, 0, b.unknown_from_ns, b.unknown_to_ns, b.kind)
            out.append(change("lost", 0, eid, {"kind": b.kind, "from_ns": str(b.unknown_from_ns),
                                               "to_ns": str(b.unknown_to_ns)}))
        if b.kind == "stopped":
            reg.end_all("session-end", eid, t, out)
