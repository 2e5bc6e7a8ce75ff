"""The flow registry (L1): emergent flows, their member sockets, paths and lifecycle.

Anchors (gewtui.model.anchors) translate L0 events into calls on this registry; it applies
the identity rule (gewtui.model.identity), keeps the lifecycle monotonic
(EMERGED -> EVOLVING -> DIVERGED | TERMINATED) and holds the evidence store every reason
node cites. All state is plain Python objects with __slots__ — protobuf is built only when a
snapshot or a chain is asked for — and checkpoint() copies only what can still change:
terminated flows are immutable and shared between copies.
"""
from __future__ import annotations

import gc
import heapq
from collections import deque

from gewtui.addresses import addr_text
from gewtui.model.changes import change
from gewtui.model.entities import (CLOSED_MEMBERS_CAP, CONTEXT_CAP, DIVERGED, EMERGED, EVOLVING,
                                   LOST_CAP, PATH_CAP, TERMINATED, TRANSITIONS_CAP,
                                   TRANSITIONS_KEEP, Flow, IfaceContext, Member, ix_add, ix_del)
from gewtui.model.identity import LISTENER, key_text
from gewtui.model.matcher import Matcher
from gewtui.pb import events_pb2


# An inventoried member is held under INVENTORIED + its socket cookie (sock_diag names no
# address) until a probe event names the socket: a range that neither the decoder's socket
# ids (small counters from 1, the same size as cookies) nor kernel addresses (older
# recordings: the upper half of the address space) can fall in.
INVENTORIED = 1 << 48
COOKIE_SPAN = 1 << 47


def inventoried(sock: int) -> bool:
    return INVENTORIED <= sock < INVENTORIED + COOKIE_SPAN


class Registry:
    __slots__ = ("matcher", "silence_ns", "max_terminated", "ring_size", "ring", "flows", "keys",
                 "socks", "tuples", "listeners", "peers", "paths", "routes", "ifctx", "pending",
                 "idle", "terminated", "pinned", "refs", "lost", "context", "next_fid",
                 "live_count", "n_events", "evicted", "lost_records", "complete", "unattributed",
                 "last_eid", "now", "last_lost_t", "attrs", "port_ranges", "ns_facts", "cgroups")

    def __init__(self, matcher: Matcher, *, silence_ns: int, max_terminated: int,
                 recent_events: int):
        self.matcher = matcher
        self.silence_ns = silence_ns
        self.max_terminated = max_terminated
        self.ring_size = recent_events
        self.ring: list = [None] * recent_events
        self.flows: dict[int, Flow] = {}
        self.keys: dict[tuple, int] = {}
        self.socks: dict[int, Member] = {}
        self.tuples: dict[tuple, Member | list[Member]] = {}   # see ix_add
        self.listeners: dict[tuple, int] = {}
        self.peers: dict[bytes, int | list[int]] = {}        # peer address -> flow ids
        self.paths: dict[tuple, dict[int, None]] = {}
        self.routes: dict[tuple, tuple] = {}
        self.ifctx: dict[tuple, IfaceContext] = {}
        self.pending: dict[int, list[int]] = {}
        self.idle: list[tuple[int, int]] = []
        self.terminated: deque[int] = deque()
        # Evidence: event id -> its serialized bytes, and the reference count of the few held
        # more than once (absent from refs: exactly one). Most events are cited once, so one
        # dict entry per pinned event instead of two (see ref_count).
        self.pinned: dict[int, bytes] = {}
        self.refs: dict[int, int] = {}
        self.lost: list[tuple] = []      # (id, count, t1, t2, stage)
        self.context: list[int] = []     # session-level notable event ids, pinned
        self.next_fid = 1
        self.live_count = 0
        self.n_events = 0
        self.evicted = 0
        self.lost_records = 0
        self.complete = True
        self.unattributed = 0
        self.last_eid = 0
        self.now = 0
        self.last_lost_t = 0
        self.attrs: dict[tuple, tuple] = {}   # interned attributions (one per process)
        # Per network namespace (inode): its ephemeral port range, and the NetnsFacts events
        # read from /proc, as (event id, ktime, when, listen_overflows), pinned; see
        # gewtui.model.inventory.
        self.port_ranges: dict[int, tuple[int, int]] = {}
        self.ns_facts: dict[int, list[tuple]] = {}
        # cgroup id -> (path, container, unit, event id of its CgroupInfo, pinned)
        self.cgroups: dict[int, tuple] = {}

    # -- evidence store ---------------------------------------------------------------------
    def pin(self, eid: int, ev, raw: bytes | None = None) -> None:
        """Hold event ``ev`` as evidence (``raw``: its wire bytes, when the feeder has them)."""
        if eid in self.pinned:
            self.refs[eid] = self.refs.get(eid, 1) + 1
        else:
            self.pinned[eid] = raw if raw is not None else ev.SerializeToString(deterministic=True)

    def pin_id(self, eid: int) -> bool:
        if eid in self.pinned:
            self.refs[eid] = self.refs.get(eid, 1) + 1
            return True
        ev = self.ring[eid % self.ring_size]
        if ev is None or ev.id != eid:
            return False
        self.pinned[eid] = ev.SerializeToString(deterministic=True)
        return True

    def unpin(self, eid: int) -> None:
        r = self.refs.get(eid)
        if r is None:
            self.pinned.pop(eid, None)
        elif r <= 2:
            del self.refs[eid]
        else:
            self.refs[eid] = r - 1

    def ref_count(self, eid: int) -> int:
        """How many citations hold the event pinned (0: not pinned)."""
        return self.refs.get(eid) or (1 if eid in self.pinned else 0)

    def ref_counts(self) -> dict[int, int]:
        """Every pinned event's reference count (for checks; the feed path never builds it)."""
        return {eid: self.refs.get(eid, 1) for eid in self.pinned}

    def event(self, eid: int):
        raw = self.pinned.get(eid)
        if raw is not None:
            return events_pb2.Event.FromString(raw)
        ev = self.ring[eid % self.ring_size]
        if ev is not None and ev.id == eid:
            return ev
        return None

    # -- lifecycle ----------------------------------------------------------------------------
    def emerge(self, key, ev, eid, t, out, parent: Flow | None = None) -> Flow:
        role, netns, family, proto, local, lport, peer, pport = key
        f = Flow.__new__(Flow)
        f.fid = fid = self.next_fid
        self.next_fid = fid + 1
        f.key = key
        f.phase = EMERGED
        f.parent = parent.fid if parent else 0
        f.members = f.path = f.procs = f.trans = f.children = f.templates = f.episodes = ()
        f.rtt = f.clat = ()
        f.open = 0
        f.n_events = 1
        f.n_retx = f.n_rst_sent = f.n_rst_recv = f.n_drops = f.n_segments = 0
        f.n_bytes = f.n_zw = f.n_conns = f.trans_elided = f.members_elided = f.evolved = 0
        f.first_eid = f.last_eid = eid
        f.first_t = f.last_t = t
        f.tcp_state = parent.tcp_state if parent else 0
        f.tstate = None
        f.idle_since = -1
        f.end_reason, f.end_t = "", 0
        f.dev = None
        self.pin(eid, ev)
        self.flows[fid] = f
        self.keys[key] = fid
        self.live_count += 1
        if peer:
            ix_add(self.peers, peer, fid)
        if role == LISTENER:
            self.listeners[(netns, lport)] = fid
        detail = {"key": key_text(key), "role": role}
        if parent:
            detail["parent"] = str(parent.fid)
        if parent is None and peer:
            hop = self.routes.get((netns, peer))
            if hop is not None:
                self.adopt(f, hop, eid, None)
                detail["device"] = hop[1]
        out.append(change("emerge", fid, eid, detail))
        return f

    def evolve(self, f: Flow, eid: int, t: int, out) -> None:
        """Second evidence: EMERGED -> EVOLVING (called by anchors only while EMERGED)."""
        f.phase = EVOLVING
        self.pin_id(eid)
        f.evolved = eid
        out.append(change("evolve", f.fid, eid, {"phase": "EVOLVING"}))

    def add_trans(self, f: Flow, tr) -> None:
        """Record a transition: an int is a tcp-state change read back from its pinned
        event; a tuple is (id, ktime, what, from, to, extra id). The caller pinned it."""
        trans = f.trans
        if not trans:
            f.trans = [tr]
            return
        trans.append(tr)
        if len(trans) > TRANSITIONS_CAP:
            old = trans.pop(TRANSITIONS_KEEP)
            if old.__class__ is int:
                self.unpin(old)
            else:
                self.unpin(old[0])
                if old[5]:
                    self.unpin(old[5])
            f.trans_elided += 1

    def go_idle(self, f: Flow, t: int) -> None:
        f.idle_since = t
        heapq.heappush(self.idle, (t + self.silence_ns, f.fid))

    def sweep(self, t: int, eid: int, out) -> None:
        """Terminate idle flows whose silence window ended before ``t``."""
        idle = self.idle
        silence = self.silence_ns
        while idle and idle[0][0] < t:
            _, fid = heapq.heappop(idle)
            f = self.flows.get(fid)
            if f is None or f.phase >= DIVERGED or f.idle_since < 0 or f.open:
                continue
            deadline = max(f.idle_since, f.last_t) + silence
            if deadline >= t:
                heapq.heappush(idle, (deadline, fid))
                continue
            self.terminate(f, "closed" if f.n_conns else "silence", eid, deadline, out)

    def terminate(self, f: Flow, reason: str, eid: int, t: int, out, phase: int = TERMINATED) -> None:
        if phase == TERMINATED:
            # The evidence of an ending is the event at which it was decided (for a silence:
            # the first event past the window), pinned like any transition.
            self.pin_id(eid)
            self.add_trans(f, (eid, t, "phase", _phase_name(f.phase), "TERMINATED", 0))
        f.phase = phase
        f.end_reason, f.end_t = reason, t
        if self.keys.get(f.key) == f.fid:
            del self.keys[f.key]
        self._unindex(f)
        for m in f.members:
            self.release(m)
            if m.tstate:
                Matcher.drop_progress(self, m)
        self.live_count -= 1
        self.terminated.append(f.fid)
        out.append(change("diverge" if phase == DIVERGED else "terminate", f.fid, eid,
                          {"reason": reason}))
        while len(self.terminated) > self.max_terminated:
            self.evict(self.terminated.popleft(), eid, out)

    def _unindex(self, f: Flow) -> None:
        peer = f.key[6]
        if peer:
            ix_del(self.peers, peer, f.fid)
        if f.dev is not None:
            pk = (f.key[1], f.dev)
            d = self.paths.get(pk)
            if d is not None:
                d.pop(f.fid, None)
                if not d:
                    del self.paths[pk]
        if f.key[0] == LISTENER and self.listeners.get((f.key[1], f.key[5])) == f.fid:
            del self.listeners[(f.key[1], f.key[5])]

    def evict(self, fid: int, eid: int, out) -> None:
        f = self.flows.pop(fid, None)
        if f is None:
            return
        for e in f.cited():
            self.unpin(e)
        self.evicted += 1
        out.append(change("evict", fid, eid, {"reason": f.end_reason}))

    def release(self, m: Member) -> None:
        """Forget a socket's kernel address and tuple (closed for good, or its flow ended)."""
        if not m.indexed:
            return
        m.indexed = False
        if self.socks.get(m.sock) is m:
            del self.socks[m.sock]
        ix_del(self.tuples, m.tkey, m)

    def add_member(self, f: Flow, sock: int, tkey: tuple, state: int, ev, eid: int, t: int,
                   out, raw: bytes | None = None) -> Member:
        m = Member.__new__(Member)
        m.sock, m.flow, m.tkey = sock, f, tkey
        m.state, m.first_eid, m.last_eid = state, eid, eid
        m.closed, m.rst_eid, m.tstate, m.indexed = False, 0, None, True
        self.pin(eid, ev, raw)
        old = self.socks.get(sock)
        if old is not None:
            self.release(old)
        self.socks[sock] = m
        ix_add(self.tuples, tkey, m)
        if f.members:
            out.append(change("evolve", f.fid, eid, {"member": hex(sock),
                                                       "connections": str(f.n_conns + 1)}))
            f.members.append(m)
        else:
            f.members = [m]
        f.n_conns += 1
        f.open += 1
        f.idle_since = -1
        if len(f.members) - f.open > CLOSED_MEMBERS_CAP:
            for i, om in enumerate(f.members):
                if om.closed:
                    del f.members[i]
                    self.release(om)
                    self.unpin(om.first_eid)
                    if om.tstate:
                        Matcher.drop_progress(self, om)
                    f.members_elided += 1
                    break
        return m

    def adopt_address(self, sock: int, tkey: tuple, netns: int) -> Member | None:
        """The inventoried member (held under its socket cookie, gewtui.model.inventory) on
        this exact tuple in this namespace, now held under the kernel address ``sock`` the
        probes name; None when there is none."""
        hit = self.tuples.get(tkey)
        if hit is None:
            return None
        for m in (hit if hit.__class__ is list else (hit,)):
            if inventoried(m.sock) and not m.closed and m.flow.key[1] == netns:
                if self.socks.get(m.sock) is m:
                    del self.socks[m.sock]
                m.sock = sock
                self.socks[sock] = m
                return m
        return None

    def close_member(self, m: Member, t: int) -> None:
        if m.closed:
            return
        m.closed = True
        if m.tstate:
            Matcher.drop_progress(self, m)
        f = m.flow
        if f.phase < DIVERGED:
            f.open -= 1
            if f.open == 0:
                self.go_idle(f, t)

    def adopt(self, f: Flow, hop: tuple, eid: int, out) -> None:
        """The flow's path: a route for its peer (first one, or after an error)."""
        self._add_hop(f, hop)
        self._set_dev(f, hop[1])
        if out is not None:
            out.append(change("path", f.fid, eid, {"device": hop[1], "gateway": _gw(hop[2])}))

    def _add_hop(self, f: Flow, hop: tuple) -> None:
        self.pin_id(hop[0])
        path = f.path + (hop,)
        if len(path) > PATH_CAP:
            self.unpin(path[1][0])
            path = path[:1] + path[2:]
        f.path = path

    def add_err_hop(self, f: Flow, hop: tuple) -> None:
        self._add_hop(f, hop)

    def _set_dev(self, f: Flow, dev: str) -> None:
        netns = f.key[1]
        if f.dev is not None and f.dev != dev:
            old = (netns, f.dev)
            d = self.paths.get(old)
            if d is not None:
                d.pop(f.fid, None)
                if not d:
                    del self.paths[old]
        f.dev = dev
        self.paths.setdefault((netns, dev), {})[f.fid] = None

    def diverge(self, f: Flow, hop: tuple, ev, eid: int, t: int, out) -> Flow:
        """A path change: a child flow continues the conversation, ``f`` ends DIVERGED."""
        old = f.cur_hop()
        moving = [m for m in f.members if not m.closed]
        keep = []
        for m in f.members:
            if m.closed:
                keep.append(m)
            else:  # the parent keeps a record of the socket as it was
                c = m.clone(f)
                c.indexed = False
                self.pin_id(c.first_eid)
                keep.append(c)
        f.members = keep
        self.keys.pop(f.key, None)
        child = self.emerge(f.key, ev, eid, t, out, parent=f)
        child.procs = f.procs
        for p in child.procs:
            self.pin_id(p[0])
        for m in moving:
            m.flow = child
            if m.tstate:
                Matcher.drop_progress(self, m)
        child.members = moving if moving else ()
        child.open = len(moving)
        child.n_conns = len(moving)
        if not moving:
            self.go_idle(child, t)
        f.children = list(f.children) + [child.fid]
        f.open = 0
        self.pin_id(eid)
        self.add_trans(f, (eid, t, "phase", _phase_name(f.phase), "DIVERGED", 0))
        self.terminate(f, "diverged", eid, t, out, phase=DIVERGED)
        out[-1].detail.update({"child": str(child.fid), "from": old[1] if old else "",
                               "to": hop[1]})
        self.adopt(child, hop, eid, out)
        sig = {"from_device": old[1] if old else "", "to_device": hop[1],
               "from_gateway": _gw(old[2]) if old else "", "to_gateway": _gw(hop[2]),
               "parent_flow": str(f.fid), "child_flow": str(child.fid)}
        self.matcher.offer(self, f, None, "l1.diverge", ev, sig, eid, t, out)
        self.matcher.offer(self, child, None, "l1.diverge", ev, sig, eid, t, out)
        return child

    def end_all(self, reason: str, eid: int, t: int, out) -> None:
        for fid in sorted(self.keys.values()):
            f = self.flows[fid]
            self.terminate(f, "closed" if (f.open == 0 and f.n_conns) else reason, eid, t, out)

    # -- per-interface and session context --------------------------------------------------
    def iface(self, netns: int, ifname: str) -> IfaceContext:
        k = (netns, ifname)
        c = self.ifctx.get(k)
        if c is None:
            c = self.ifctx[k] = IfaceContext(netns, ifname)
        return c

    def note_iface(self, ctx: IfaceContext, ev, eid: int, t: int) -> None:
        self.pin(eid, ev)
        ctx.notable.append((t, eid))
        if len(ctx.notable) > CONTEXT_CAP:
            self.unpin(ctx.notable.pop(0)[1])

    def note_session(self, ev, eid: int) -> None:
        self.pin(eid, ev)
        self.context.append(eid)
        if len(self.context) > CONTEXT_CAP:
            self.unpin(self.context.pop(0))

    def note_lost(self, ev, eid: int, count: int, t1: int, t2: int, stage: str) -> None:
        self.pin(eid, ev)
        self.lost.append((eid, count, t1, t2, stage))
        if len(self.lost) > LOST_CAP:
            self.unpin(self.lost.pop(0)[0])

    # -- checkpoint -------------------------------------------------------------------------
    def clone(self) -> "Registry":
        # Tens of thousands of small objects are made here and none is garbage: a collection
        # pass in the middle would only walk them all. The collector is paused meanwhile.
        was = gc.isenabled()
        gc.disable()
        try:
            return self._clone()
        finally:
            if was:
                gc.enable()

    def _clone(self) -> "Registry":
        c = Registry.__new__(Registry)
        for k in Registry.__slots__:
            setattr(c, k, getattr(self, k))
        flows = {}
        memo: dict[int, Member] = {}
        for fid, f in self.flows.items():
            flows[fid] = f.clone(memo) if f.phase < DIVERGED else f
        c.flows = flows
        c.ring = list(self.ring)
        c.keys = dict(self.keys)
        c.listeners = dict(self.listeners)
        c.routes = dict(self.routes)
        c.ifctx = {k: v.clone() for k, v in self.ifctx.items()}
        c.pending = {k: list(v) for k, v in self.pending.items()}
        c.idle = list(self.idle)
        c.terminated = deque(self.terminated)
        c.pinned = dict(self.pinned)
        c.refs = dict(self.refs)
        c.lost = list(self.lost)
        c.context = list(self.context)
        c.attrs = dict(self.attrs)
        c.port_ranges = dict(self.port_ranges)
        c.ns_facts = {k: list(v) for k, v in self.ns_facts.items()}
        c.cgroups = dict(self.cgroups)
        # Indexes point at members and flows: rebuild them over the copies, in the original
        # insertion order so iteration stays identical to the original's.
        c.socks = {sock: memo[id(m)] for sock, m in self.socks.items()}
        c.tuples = {k: (memo[id(v)] if v.__class__ is Member else [memo[id(m)] for m in v])
                    for k, v in self.tuples.items()}
        c.peers = {k: (v if v.__class__ is int else list(v)) for k, v in self.peers.items()}
        c.paths = {k: dict(v) for k, v in self.paths.items()}
        return c


def _gw(raw: bytes) -> str:
    return addr_text(raw) if raw and any(raw) else ""


def _phase_name(p: int) -> str:
    return {EMERGED: "EMERGED", EVOLVING: "EVOLVING", DIVERGED: "DIVERGED",
            TERMINATED: "TERMINATED"}[p]
