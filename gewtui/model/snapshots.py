"""Flow snapshots: the registry's plain-Python flows converted to model_pb2.FlowSnapshot,
only when asked for (the feed path never builds protobuf)."""
from __future__ import annotations

from gewtui.model.flows import Flow
from gewtui.model.identity import key_text
from gewtui.pb import events_pb2, model_pb2


def flow_snapshot(f: Flow) -> model_pb2.FlowSnapshot:
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
            tuple=events_pb2.Tuple(family=m.family, saddr=saddr, daddr=daddr, sport=sport,
                                   dport=dport, protocol=m.proto)))
    for eid, dev, gw, table, err in f.path:
        s.path.append(model_pb2.PathHop(event_id=eid, device=dev, gateway=gw, table=table, err=err))
    for eid, pid, tgid, comm, cg, netns, source, uid, _via in f.procs:
        s.processes.append(events_pb2.Attribution(pid=pid, tgid=tgid, comm=comm, cgroup_id=cg,
                                                  netns=netns, source=source, uid=uid))
    c = s.counters
    c.events, c.retransmits, c.resets_sent, c.resets_received = f.n_events, f.n_retx, f.n_rst_sent, f.n_rst_recv
    c.drops, c.segments, c.bytes, c.zero_window_segments = f.n_drops, f.n_segments, f.n_bytes, f.n_zw
    c.connections = f.n_conns
    trans = [(f.first_eid, 0, f.first_t, "phase", "", "EMERGED")]
    trans += [(m.first_eid, 1, m.first_t, "member", "", hex(m.sock)) for m in f.members]
    trans += [(tr[0], 2, tr[1], tr[2], tr[3], tr[4]) for tr in f.trans]
    for eid, _o, t, what, frm, to in sorted(trans, key=lambda x: (x[0], x[1])):
        s.transitions.append(model_pb2.Transition(event_id=eid, ktime_ns=t, what=what,
                                                  to=to, **{"from": frm}))
    return s
