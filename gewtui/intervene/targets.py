"""What a drop of one flow targets: its deny entries and the interfaces it runs on.

Place in the pipeline: the intervention controller asks, at the moment of execution, which
deny entries stand for the flow (``deny_entries``: its flow key, so reconnects are covered,
plus each live connection the key does not cover) and where to attach the classifier
(``attachments_for``: the scoped interfaces of the flow's namespace on its path). Pure:
protobuf snapshots in, deny tuples and interface names out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from gewtui.intervene.classifier import DenyTuple
from gewtui.model.identity import DEFAULT_RANGE
from gewtui.pb import events_pb2, model_pb2


@dataclass(frozen=True)
class Attachment:
    """Where a drop's classifier runs: one interface, both directions."""

    netns: str            # "host" or an ip netns name
    ifname: str
    netns_inode: int = 0

    @property
    def label(self) -> str:
        return self.ifname if self.netns in ("", "host") else f"{self.netns}/{self.ifname}"


_DEAD = (events_pb2.TCP_CLOSE, events_pb2.TCP_TIME_WAIT)
_NOT_CONNECTED = _DEAD + (events_pb2.TCP_LISTEN, events_pb2.TCP_STATE_UNSPECIFIED)


def member_tuples(flow: model_pb2.FlowSnapshot) -> list[DenyTuple]:
    """The flow's current live connections, one tuple each (a socket and its peer's socket
    are the same connection when both ends are observed). A connection is dead when one of
    its members reached CLOSE or TIME_WAIT and no later member of that tuple (a reuse) is in
    a connected state; listeners and incomplete tuples are skipped."""
    by_conn: dict[DenyTuple, list[model_pb2.FlowMember]] = {}
    for m in flow.members:
        t = DenyTuple.from_pb(m.tuple)
        try:
            t.check()
        except ValueError:
            continue
        key = t if t.reversed() not in by_conn else t.reversed()
        by_conn.setdefault(key, []).append(m)
    out = []
    for t, ms in by_conn.items():
        if all(m.state == events_pb2.TCP_LISTEN for m in ms):
            continue
        died = max((m.last_event_id for m in ms if m.state in _DEAD), default=None)
        if died is not None and not any(m.state not in _NOT_CONNECTED and m.last_event_id > died
                                        for m in ms):
            continue
        out.append(t)
    return out


def flow_key(flow: model_pb2.FlowSnapshot, ephemeral: tuple[int, int] = DEFAULT_RANGE) -> DenyTuple | None:
    """The flow's identity as one deny entry with its ephemeral side's port left out, so the
    drop covers the flow's reconnects (gewtui.model.identity): a client flow is
    (local, *, peer, peer port), a server flow (local, local port, peer, *). ``ephemeral``:
    the ports ``*`` stands for, the flow's namespace's ip_local_port_range (a client's ports
    come from it; for a server flow it stands in for the peers' ranges, which the session
    cannot read). None for listeners, exact-tuple flows, or when the snapshot does not pin
    the key down."""
    k = flow.key
    role = ("client" if " -> " in k and " <-> " not in k else
            "server" if " <- " in k and " <-> " not in k else None)
    local, peer = bytes(flow.local_addr), bytes(flow.peer_addr)
    if role is None or not local or not peer:
        return None
    proto = 17 if k.startswith("udp ") else 6 if k.startswith("tcp ") else 0
    mine = []
    for m in flow.members:
        t = DenyTuple.from_pb(m.tuple)
        if t.saddr == peer and t.daddr == local:
            t = t.reversed()
        if t.saddr == local and t.daddr == peer:
            mine.append(t)
    if role == "client":
        key = DenyTuple(flow.family, proto, local, peer, 0, flow.peer_port, ephemeral)
    else:
        lports = {t.sport for t in mine}
        if len(lports) != 1:
            return None
        key = DenyTuple(flow.family, proto, local, peer, lports.pop(), 0, ephemeral)
    try:
        key.check()
    except ValueError:
        return None
    return key


def deny_entries(flow: model_pb2.FlowSnapshot, ephemeral: tuple[int, int] = DEFAULT_RANGE) -> list[DenyTuple]:
    """What a drop of ``flow`` puts in the deny map: its flow key (reconnects included, see
    flow_key for ``ephemeral``) and every live connection the key does not already cover."""
    key = flow_key(flow, ephemeral)
    out = [key] if key is not None else []
    for t in member_tuples(flow):
        if key is None or not _covered(t, key):
            out.append(t)
    return out


def _covered(t: DenyTuple, key: DenyTuple) -> bool:
    lo, hi = key.ephemeral
    for c in (t, t.reversed()):
        if (c.family, c.protocol, c.saddr, c.daddr) != (key.family, key.protocol, key.saddr, key.daddr):
            continue
        if key.sport == 0 and c.dport == key.dport and lo <= c.sport <= hi:
            return True
        if key.dport == 0 and c.sport == key.sport and lo <= c.dport <= hi:
            return True
    return False


def denied(t: DenyTuple, entries: list[DenyTuple]) -> bool:
    """Whether the classifier would drop ``t``'s packets with these entries."""
    return any(t == e or t.reversed() == e or (e.is_flow_key and _covered(t, e)) for e in entries)


def attachments_for(flow: model_pb2.FlowSnapshot, scoped: Iterable[Any]) -> list[Attachment]:
    """Interfaces of the session scope the flow's packets cross: the scoped interfaces in
    the flow's namespace that its path names, or all of them when the path names none.

    ``scoped`` holds gewtui.kernel.scope.ScopedInterface-like objects (netns, netns_inode,
    ifname). Never an interface outside the scope."""
    same_ns = [s for s in scoped if not flow.netns or s.netns_inode == flow.netns]
    on_path = {h.device for h in flow.path if h.device}
    chosen = [s for s in same_ns if s.ifname in on_path] or same_ns
    seen: list[Attachment] = []
    for s in chosen:
        a = Attachment(s.netns, s.ifname, s.netns_inode)
        if a not in seen:
            seen.append(a)
    return seen
