"""The inventory anchor: what existed before the session, taken into the registry.

A live session starts its recording with one ``NetnsFacts`` event per scoped namespace (its
ephemeral port range and TCP counters) and one ``SocketInventory`` event per socket found by
sock_diag (gewtui.kernel.inventory), listeners first. From them:

* the namespace is known to have had its listeners inventoried, so a socket first seen
  mid-life on no listening port is a client (gewtui.model.identity.role_from_ports), even
  where a widened ephemeral range (kept with the facts) holds both its ports;
* each socket becomes a member of its flow at once, with its role: a listener's flow, a
  server socket (its local port is a listener's) or a client (its local port is ephemeral),
  so connections made before the session, even idle ones, are flows on the first frame.

sock_diag gives a socket's cookie, not the socket id the probes name, so an inventoried member
is held under ``INVENTORIED + cookie`` (gewtui.model.flows: a range apart from the decoder's
socket ids, which are small counters like cookies: a member held under the bare cookie was
taken for whatever socket later got that id) until the first probe event on its exact tuple
in its namespace names the socket (TcpAnchor rebinds it) or an event carrying the cookie
ends it.
NetnsFacts read later ("end", "handshake-timeout") are kept per namespace for the
listen-overflow cause rule (gewtui.model.causes).
"""
from __future__ import annotations

from gewtui.model.anchors import Anchor, TcpAnchor
from gewtui.model.flows import COOKIE_SPAN, INVENTORIED
from gewtui.model.identity import LISTENER, make_key, role_from_ports

FACTS_CAP = 64               # per namespace: the first (start) and the latest are kept
_LISTEN, _TIME_WAIT, _CLOSE = 10, 6, 7


def _zero(raw: bytes) -> bool:
    return raw.count(0) == len(raw)


CGROUPS_CAP = 65536


class InventoryAnchor(Anchor):
    kinds = ("inventory", "netns_facts", "cgroup")

    def cgroup(self, ev, b, eid, t, out) -> None:
        """A cgroup id's name (path, container, unit): lineage and filters read it."""
        reg = self.reg
        if not b.id or b.id in reg.cgroups or len(reg.cgroups) >= CGROUPS_CAP:
            return
        reg.pin(eid, ev)
        reg.cgroups[b.id] = (b.path, b.container, b.unit, eid)

    def netns_facts(self, ev, b, eid, t, out) -> None:
        reg = self.reg
        netns = b.netns or ev.attr.netns
        if b.port_lo and b.port_hi and b.port_lo <= b.port_hi:
            reg.port_ranges[netns] = (b.port_lo, b.port_hi)
        facts = reg.ns_facts.setdefault(netns, [])
        reg.pin(eid, ev)
        facts.append((eid, t, b.when, b.listen_overflows))
        if len(facts) > FACTS_CAP:
            reg.unpin(facts.pop(1)[0])
        reg.note_session(ev, eid)

    def inventory(self, ev, b, eid, t, out) -> None:
        reg = self.reg
        tup = b.tuple
        netns = ev.attr.netns
        saddr, daddr, sport, dport = tup.saddr, tup.daddr, tup.sport, tup.dport
        state = b.state
        if state == _LISTEN:
            role = LISTENER
        else:
            role = role_from_ports(sport, dport, (netns, sport) in reg.listeners,
                                   reg.port_ranges.get(netns), netns in reg.port_ranges)
            if _zero(daddr) or not dport:
                reg.unattributed += 1
                return
        sock = INVENTORIED + b.sock_cookie
        if not b.sock_cookie or b.sock_cookie >= COOKIE_SPAN or sock in reg.socks:
            reg.unattributed += 1   # no usable cookie: nothing could ever find it again
            return
        key = make_key(role, netns, tup.family, tup.protocol or 6, saddr, sport, daddr, dport)
        fid = reg.keys.get(key)
        f = reg.flows[fid] if fid else None
        if f is None:
            f = reg.emerge(key, ev, eid, t, out)
        else:
            f.n_events += 1
            f.last_eid, f.last_t = eid, t
        m = reg.add_member(f, sock, (saddr, sport, daddr, dport), state, ev, eid, t, out)
        f.tcp_state = state
        if ev.attr.tgid:
            TcpAnchor._attribute(self, f, ev, eid, "inventory", out)  # type: ignore[arg-type]
        cts = reg.matcher.by_kind.get("inventory")
        if cts:
            reg.matcher.offer(reg, f, m, "inventory", ev, b, eid, t, out)
        if state in (_TIME_WAIT, _CLOSE):
            reg.close_member(m, t)   # no further event will name it

