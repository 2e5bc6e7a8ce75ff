"""Flow snapshots: the registry's plain-Python flows converted to model_pb2.FlowSnapshot,
only when asked for (the feed path never builds protobuf)."""
from __future__ import annotations

from gewtui.model.entities import Flow
from gewtui.model.identity import key_text
from gewtui.model.schema import TCP_STATE_NAMES
from gewtui.pb import events_pb2, model_pb2


def _state_name(n: int) -> str:
    return TCP_STATE_NAMES.get(n, str(n))


def expand_transitions(reg, f: Flow) -> list[tuple]:
    """The flow's transitions as (id, ktime, what, from, to, extra id), in event order: the
    stored ones (compact tcp-state ids read back from their events) plus the derived ones
    (emerged, evolving, members joining, path hops)."""
    out = [(f.first_eid, f.first_t, "phase", "", "EMERGED", 0, 0)]
    if f.evolved:
        ev = reg.event(f.evolved)
        out.append((f.evolved, ev.ktime_ns if ev else 0, "phase", "EMERGED", "EVOLVING", 0, 3))
    for m in f.members:
        ev = reg.event(m.first_eid)
        out.append((m.first_eid, ev.ktime_ns if ev else 0, "member", "", hex(m.sock), 0, 1))
    for h in f.path:
        ev = reg.event(h[0])
        out.append((h[0], ev.ktime_ns if ev else 0, "path", "", h[1] if not h[4] else f"err {h[4]}", 0, 2))
    for tr in f.trans:
        if tr.__class__ is int:
            ev = reg.event(tr)
            if ev is None or ev.WhichOneof("body") != "tcp_state":
                continue
            b = ev.tcp_state
            out.append((tr, ev.ktime_ns, "tcp-state", _state_name(b.old_state),
                        _state_name(b.new_state), 0, 4))
        else:
            out.append(tuple(tr) + (4,))
    out.sort(key=lambda x: (x[0], x[6]))
    return [x[:6] for x in out]


def _fill_cgroups(s: model_pb2.FlowSnapshot, f: Flow, reg) -> None:
    """Cgroup paths, containers and units of the flow's processes, as CgroupInfo named them."""
    if reg is None or not reg.cgroups:
        return
    for _eid, who, _via in f.procs:
        cg = reg.cgroups.get(who[3])
        if cg is None:
            continue
        for field, v in ((s.cgroups, cg[0]), (s.containers, cg[1]), (s.units, cg[2])):
            if v and v not in field:
                field.append(v)


def flow_summary(f: Flow, reg=None) -> model_pb2.FlowSnapshot:
    """A FlowSnapshot with what a one-line listing shows: identity, phase, state, counters,
    templates, lineage and processes; no members, path, transitions or key text (those read
    evidence back and cost ~10x more). Every field it has equals flow_snapshot's."""
    s = model_pb2.FlowSnapshot(
        flow_id=f.fid, parent_flow_id=f.parent, child_flow_ids=f.children, phase=f.phase,
        family=f.family, local_addr=f.local, peer_addr=f.peer, peer_port=f.peer_port,
        netns=f.netns, tcp_state=f.tcp_state, first_event_id=f.first_eid,
        last_event_id=f.last_eid, first_ktime_ns=f.first_t, last_ktime_ns=f.last_t,
        templates=f.templates, in_scope=True, end_reason=f.end_reason)
    _fill_processes_and_counters(s, f)
    _fill_cgroups(s, f, reg)
    return s


def _fill_processes_and_counters(s: model_pb2.FlowSnapshot, f: Flow) -> None:
    for _eid, (pid, tgid, comm, cg, netns, source, uid), _via in f.procs:
        s.processes.append(events_pb2.Attribution(pid=pid, tgid=tgid, comm=comm, cgroup_id=cg,
                                                  netns=netns, source=source, uid=uid))
    c = s.counters
    c.events, c.retransmits, c.resets_sent, c.resets_received = f.n_events, f.n_retx, f.n_rst_sent, f.n_rst_recv
    c.drops, c.segments, c.bytes, c.zero_window_segments = f.n_drops, f.n_segments, f.n_bytes, f.n_zw
    c.connections = f.n_conns
    if f.rtt:
        s.srtt_log2_hist.extend(_trim(f.rtt))
    if f.clat:
        s.connect_latency_min_us, s.connect_latency_max_us = f.clat[0], f.clat[1]
        s.connect_latency_log2_hist.extend(_trim(f.clat[2:]))


def _trim(hist) -> list[int]:
    out = list(hist)
    while out and not out[-1]:
        out.pop()
    return out


def flow_snapshot(f: Flow, reg) -> model_pb2.FlowSnapshot:
    s = model_pb2.FlowSnapshot(
        flow_id=f.fid, parent_flow_id=f.parent, child_flow_ids=f.children, phase=f.phase,
        key=key_text(f.key), family=f.family, local_addr=f.local, peer_addr=f.peer,
        peer_port=f.peer_port, netns=f.netns, tcp_state=f.tcp_state,
        first_event_id=f.first_eid, last_event_id=f.last_eid, first_ktime_ns=f.first_t,
        last_ktime_ns=f.last_t, templates=f.templates, in_scope=True, end_reason=f.end_reason)
    for m in f.members:
        saddr, sport, daddr, dport = m.tkey
        s.members.append(model_pb2.FlowMember(
            sock=m.sock, state=m.state, first_event_id=m.first_eid, last_event_id=m.last_eid,
            tuple=events_pb2.Tuple(family=f.family, saddr=saddr, daddr=daddr, sport=sport,
                                   dport=dport, protocol=f.proto)))
    for eid, dev, gw, table, err in f.path:
        s.path.append(model_pb2.PathHop(event_id=eid, device=dev, gateway=gw, table=table, err=err))
    _fill_processes_and_counters(s, f)
    _fill_cgroups(s, f, reg)
    for eid, t, what, frm, to, _extra in expand_transitions(reg, f):
        s.transitions.append(model_pb2.Transition(event_id=eid, ktime_ns=t, what=what,
                                                  to=to, **{"from": frm}))
    return s
