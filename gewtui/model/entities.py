"""The registry's entities: a flow, its member sockets, an interface's context, and the
small indexes the registry keeps them in. Plain objects with __slots__ (the feed path touches
them for every event; protobuf is built from them only on demand, in gewtui.model.snapshots).
"""
from __future__ import annotations

from gewtui.model.matcher import clone_tstate, tstate_cited

EMERGED, EVOLVING, DIVERGED, TERMINATED = 1, 2, 3, 4
CLOSE = 7
TRANSITIONS_CAP = 64    # per flow; past it the oldest after the first 8 are elided
TRANSITIONS_KEEP = 8
CLOSED_MEMBERS_CAP = 4  # closed sockets kept per flow (open ones are always kept)
PATH_CAP = 8
PROCS_CAP = 16
CONTEXT_CAP = 16        # notable events kept per interface and for the session
LOST_CAP = 256


class Member:
    """One socket of a flow, identified by its kernel address while it lives."""

    __slots__ = ("sock", "flow", "tkey", "state", "first_eid", "last_eid", "closed", "rst_eid",
                 "tstate", "indexed")

    def clone(self, flow) -> "Member":
        c = Member.__new__(Member)
        c.sock, c.flow, c.tkey, c.state = self.sock, flow, self.tkey, self.state
        c.first_eid, c.last_eid, c.closed = self.first_eid, self.last_eid, self.closed
        c.rst_eid, c.indexed = self.rst_eid, self.indexed
        c.tstate = None
        return c


class Flow:
    """One emergent flow. Identity fields are read from ``key`` (see gewtui.model.identity);
    rarely used containers start as the shared empty tuple and become lists when used."""

    __slots__ = ("fid", "key", "phase", "parent", "children", "members", "open", "path", "procs",
                 "n_events", "n_retx", "n_rst_sent", "n_rst_recv", "n_drops", "n_segments",
                 "n_bytes", "n_zw", "n_conns", "first_eid", "last_eid", "first_t", "last_t",
                 "tcp_state", "trans", "trans_elided", "evolved", "templates", "episodes",
                 "tstate", "idle_since", "end_reason", "end_t", "dev", "members_elided",
                 # latency: srtt log2 bucket counts, and connect latency as
                 # [min_us, max_us, bucket counts...]; the shared empty tuple until used
                 "rtt", "clat")

    # key = (role, netns, family, proto, local, local_port, peer, peer_port)
    role = property(lambda self: self.key[0])
    netns = property(lambda self: self.key[1])
    family = property(lambda self: self.key[2])
    proto = property(lambda self: self.key[3])
    local = property(lambda self: self.key[4])
    local_port = property(lambda self: self.key[5])
    peer = property(lambda self: self.key[6])
    peer_port = property(lambda self: self.key[7])

    def cur_hop(self):
        for h in reversed(self.path):
            if h[4] == 0:
                return h
        return None

    def live(self) -> bool:
        return self.phase < DIVERGED

    def clone(self, memo: dict | None = None) -> "Flow":
        """A copy that can change independently; ``memo`` collects old member id -> copy."""
        c = Flow.__new__(Flow)
        _copy_slots(self, c)
        c.children = list(self.children) if self.children else ()
        c.trans = list(self.trans) if self.trans else ()
        c.templates = list(self.templates) if self.templates else ()
        c.rtt = list(self.rtt) if self.rtt else ()
        c.clat = list(self.clat) if self.clat else ()
        ep_map = {id(e): e.clone() for e in self.episodes}
        c.episodes = [ep_map[id(e)] for e in self.episodes] if self.episodes else ()
        members = []
        for m in self.members:
            mc = m.clone(c)
            if m.tstate:
                mc.tstate = clone_tstate(m.tstate, ep_map)
            members.append(mc)
            if memo is not None:
                memo[id(m)] = mc
        c.members = members if members else ()
        c.tstate = clone_tstate(self.tstate, ep_map) if self.tstate else None
        return c

    def cited(self):
        """Every pinned evidence id this flow holds (with multiplicity)."""
        yield self.first_eid
        if self.evolved:
            yield self.evolved
        for tr in self.trans:
            if tr.__class__ is int:
                yield tr
            else:
                yield tr[0]
                if tr[5]:
                    yield tr[5]
        for h in self.path:
            yield h[0]
        for m in self.members:
            yield m.first_eid
            if m.tstate:
                yield from tstate_cited(m.tstate)
        for p in self.procs:
            yield p[0]
        for e in self.episodes:
            yield from e.eids
        if self.tstate:
            yield from tstate_cited(self.tstate)


def _slot_copier(names: tuple[str, ...]):
    """copy(src, dst) assigning each slot in one statement: twice as fast as a getattr/setattr
    loop. The source is built from the class's own slot names, nothing else."""
    ns: dict = {}
    exec("def copy(s, c):\n" + "".join(f"    c.{n} = s.{n}\n" for n in names), ns)  # noqa: S102
    return ns["copy"]


_copy_slots = _slot_copier(Flow.__slots__)


class IfaceContext:
    """Per-interface facts no flow owns: qdisc summaries, unattributed drops, neighbours."""

    __slots__ = ("netns", "ifname", "notable", "counts")

    def __init__(self, netns, ifname):
        self.netns, self.ifname = netns, ifname
        self.notable: list[tuple[int, int]] = []   # (ktime, id), pinned
        self.counts: dict[str, int] = {}           # kind or drop reason -> records

    def clone(self) -> "IfaceContext":
        c = IfaceContext(self.netns, self.ifname)
        c.notable, c.counts = list(self.notable), dict(self.counts)
        return c


# Small indexes (peer -> flows, tuple -> members) hold the one value itself and become a list
# only when a second arrives: most keys ever have one.
def ix_add(d: dict, k, v) -> None:
    cur = d.get(k)
    if cur is None:
        d[k] = v
    elif cur.__class__ is list:
        cur.append(v)
    else:
        d[k] = [cur, v]


def ix_del(d: dict, k, v) -> None:
    cur = d.get(k)
    if cur is None:
        return
    if cur.__class__ is list:
        if v in cur:
            cur.remove(v)
        if len(cur) == 1:
            d[k] = cur[0]
        elif not cur:
            del d[k]
    elif cur is v or cur == v:
        del d[k]


def ix_get(d: dict, k) -> tuple | list:
    cur = d.get(k)
    if cur is None:
        return ()
    return cur if cur.__class__ is list else (cur,)
