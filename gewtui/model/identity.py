"""Flow identity: the rule deciding which sockets and facts are one emergent flow.

A flow is a conversation between a local endpoint and a service, in one network namespace:

* client side (the socket opened actively, CLOSE -> SYN_SENT):
  (netns, family, protocol, local address, peer address, peer port) — the ephemeral local
  port is not part of it, so a reconnect with a new socket and port continues the flow;
* server side (a socket born from a listener, LISTEN/SYN_RECV -> ...):
  (netns, family, protocol, local address, local port, peer address);
* a listener (-> LISTEN): (netns, family, protocol, local address, local port);
* a socket first seen mid-life whose side is unknown: by its listener port if one is known,
  else, in a namespace the session inventoried (its listeners and its ip_local_port_range are
  known), a client: a socket on no listening port was opened actively; elsewhere by which of
  its ports is in Linux's default ephemeral range 32768-60999, else the exact 4-tuple (no
  reconnect continuity then).

PIDs, socket addresses and interfaces are not part of any key. Continuity in time (the
silence window) and in path (fib results) is decided by the registry.
"""
from __future__ import annotations

from gewtui.addresses import addr_text

CLIENT = "client"
SERVER = "server"
LISTENER = "listener"
EXACT = "exact"

EPHEMERAL_LO, EPHEMERAL_HI = 32768, 60999
DEFAULT_RANGE = (EPHEMERAL_LO, EPHEMERAL_HI)

# TCP state numbers (include/net/tcp_states.h), as in events.proto.
ESTABLISHED, SYN_SENT, SYN_RECV, CLOSE, LISTEN, NEW_SYN_RECV = 1, 2, 3, 7, 10, 12
_PASSIVE_OLD = frozenset({LISTEN, SYN_RECV, NEW_SYN_RECV})

#: A flow key: (role, netns, family, protocol, local, local_port, peer, peer_port); the ports
#: a role leaves out are 0 and a listener's peer is b"".
Key = tuple


def born(old: int, new: int) -> bool:
    """Whether a transition begins a socket's life: out of CLOSE (a socket a process made),
    or LISTEN -> SYN_RECV (a child its listener cloned, which starts in the listener's
    state). The decoder gives such a socket a new id (gewtui.kernel.probes.tcp_state keeps
    the same rule: the kernel plane imports no model) and it is never an inventoried one."""
    return old == CLOSE or (old == LISTEN and new == SYN_RECV)


def role_from_state(old: int, new: int) -> str | None:
    """The side a tcp_state transition proves, or None when it proves none."""
    if new == LISTEN or (old == LISTEN and new == CLOSE):
        return LISTENER
    if old == CLOSE and new == SYN_SENT:
        return CLIENT
    if old in _PASSIVE_OLD:
        return SERVER
    return None


def role_from_ports(sport: int, dport: int, listening: bool,
                    port_range: tuple[int, int] | None = None, listeners_known: bool = False) -> str:
    """The side of a socket first seen mid-life (see the module docstring). ``port_range``:
    its namespace's ephemeral range (Linux's default when None); ``listeners_known``: the
    session inventoried the namespace's listeners, so a socket on no listening port was
    opened actively: a client, even where a widened range holds both its ports."""
    if listening:
        return SERVER
    if listeners_known:
        return CLIENT
    port_range = port_range or DEFAULT_RANGE
    lo, hi = port_range
    s_eph, d_eph = lo <= sport <= hi, lo <= dport <= hi
    if s_eph and not d_eph:
        return CLIENT
    if d_eph and not s_eph:
        return SERVER
    return EXACT


def make_key(role: str, netns: int, family: int, proto: int, local: bytes, lport: int,
             peer: bytes, pport: int) -> Key:
    if role == CLIENT:
        return (CLIENT, netns, family, proto, local, 0, peer, pport)
    if role == SERVER:
        return (SERVER, netns, family, proto, local, lport, peer, 0)
    if role == LISTENER:
        return (LISTENER, netns, family, proto, local, lport, b"", 0)
    return (EXACT, netns, family, proto, local, lport, peer, pport)


def _proto(p: int) -> str:
    return {6: "tcp", 17: "udp"}.get(p, f"proto{p}")


def _hp(addr: bytes, port: int) -> str:
    a = addr_text(addr) or "*"
    a = f"[{a}]" if ":" in a else a
    return f"{a}:{port}"


def _h(addr: bytes) -> str:
    a = addr_text(addr) or "*"
    return f"[{a}]" if ":" in a else a


def key_text(key: Key) -> str:
    """The identity key as one line, e.g. ``tcp 10.0.0.1 -> 10.0.0.2:80 netns 4026531840``;
    IPv6 addresses are bracketed everywhere, with or without a port."""
    role, netns, _family, proto, local, lport, peer, pport = key
    p = _proto(proto)
    if role == CLIENT:
        s = f"{p} {_h(local)} -> {_hp(peer, pport)}"
    elif role == SERVER:
        s = f"{p} {_hp(local, lport)} <- {_h(peer)}"
    elif role == LISTENER:
        s = f"{p} listen {_hp(local, lport)}"
    else:
        s = f"{p} {_hp(local, lport)} <-> {_hp(peer, pport)}"
    return f"{s} netns {netns}"


def peer_text(key: Key) -> str:
    role, _n, _f, _p, local, lport, peer, pport = key
    if role == CLIENT or role == EXACT:
        return _hp(peer, pport)
    if role == SERVER:
        return _h(peer)
    return "*"


def local_text(key: Key) -> str:
    role, _n, _f, _p, local, lport, _peer, _pport = key
    if role == CLIENT:
        return _h(local)
    return _hp(local, lport)
