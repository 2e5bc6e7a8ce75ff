"""Turns engine output (protobuf snapshots, chains, events) into the immutable view values.

Place in the pipeline: called by the debugger core when it builds a ``DebugView`` or a
command result; the front ends never see a protobuf message. Formatting choices that both
front ends share (how an address, a state or a duration reads) are made here once.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from google.protobuf.descriptor import FieldDescriptor

from gewtui.debugger import names
from gewtui.debugger.view import (ChainNode, EventView, FieldDiff, FlowRow, GateConditionView,
                                  GateView, InterventionView, PathView, TimelineEntry)
from gewtui.pb import events_pb2, intervention_pb2, model_pb2

_ADDR_FIELDS = {"saddr", "daddr", "src", "dst", "gateway", "address", "local_addr", "peer_addr"}


def flow_row(f: model_pb2.FlowSnapshot) -> FlowRow:
    c = f.counters
    procs = ", ".join(f"{p.comm}({p.tgid})" for p in f.processes[:3])
    return FlowRow(
        flow_id=f.flow_id, parent_id=f.parent_flow_id, phase=names.phase_name(f.phase),
        peer=names.endpoint_text(f.peer_addr, f.peer_port), local=names.addr_text(f.local_addr),
        tcp_state=names.tcp_state_name(f.tcp_state), events=c.events,
        retransmits=c.retransmits, drops=c.drops, resets=c.resets_sent + c.resets_received,
        segments=c.segments, bytes=c.bytes, templates=tuple(f.templates), netns=f.netns,
        first_ktime_ns=f.first_ktime_ns, last_ktime_ns=f.last_ktime_ns,
        last_event_id=f.last_event_id, end_reason=f.end_reason,
        children=tuple(f.child_flow_ids), processes=procs, srtt=_median_srtt(f.srtt_log2_hist),
        containers=", ".join([c[:12] for c in f.containers] or list(f.units)),
    )


def _median_srtt(hist) -> str:
    from gewtui.model.latency import bucket_text, median_bucket

    i = median_bucket(list(hist))
    return bucket_text(i) if i is not None else ""


def chain_node(n: model_pb2.ReasonNode) -> ChainNode:
    return ChainNode(
        node_id=n.node_id, layer=names.LAYERS.get(n.layer, "?"), kind=n.kind, text=n.text,
        severity=n.severity, evidence=tuple(n.evidence_event_ids),
        fields=tuple(sorted(n.fields.items())),
        children=tuple(chain_node(c) for c in n.children), flow_id=n.flow_id,
    )


def gate_evaluation_view(g: intervention_pb2.GateEvaluation) -> GateView:
    return GateView(
        allowed=g.allowed, at_event_id=g.at_event_id,
        conditions=tuple(GateConditionView(c.name, c.ok, c.why) for c in g.conditions),
    )


def intervention_view(r: intervention_pb2.InterventionRecord) -> InterventionView:
    return InterventionView(
        intervention_id=r.intervention_id,
        action=intervention_pb2.InterventionAction.Name(r.action).lower(),
        outcome=intervention_pb2.InterventionOutcome.Name(r.outcome).lower().replace("_", " "),
        detail=r.detail or (r.verification.verdict if r.HasField("verification") else ""),
    )


def tuple_text(t: events_pb2.Tuple) -> str:
    if not t.saddr and not t.daddr:
        return "-"
    return f"{names.endpoint_text(t.saddr, t.sport)} → {names.endpoint_text(t.daddr, t.dport)}"


def _value_text(fd: FieldDescriptor, value: Any) -> str:
    if fd.type == FieldDescriptor.TYPE_ENUM:
        ev = fd.enum_type.values_by_number.get(value)
        return ev.name if ev else str(value)
    if fd.type == FieldDescriptor.TYPE_BYTES:
        if fd.name in _ADDR_FIELDS:
            return names.addr_text(value)
        return ":".join(f"{b:02x}" for b in value) if fd.name == "lladdr" else value.hex()
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return "true" if value else "false"
    if fd.name in ("sock", "sock_cookie", "location") and isinstance(value, int):
        return hex(value)
    return str(value)


def flatten(msg: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Every set field of a message as (dotted name, text), in declaration order."""
    out: list[tuple[str, str]] = []
    for fd, value in msg.ListFields():
        name = prefix + fd.name
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            if fd.message_type.GetOptions().map_entry:
                out.extend((f"{name}[{k}]", str(v)) for k, v in sorted(value.items()))
            elif fd.is_repeated:
                for i, item in enumerate(value):
                    out.extend(flatten(item, f"{name}[{i}]."))
            else:
                out.extend(flatten(value, name + "."))
        elif fd.is_repeated:
            out.extend((f"{name}[{i}]", _value_text(fd, v)) for i, v in enumerate(value))
        else:
            out.append((name, _value_text(fd, value)))
    return out


def event_summary(e: events_pb2.Event) -> str:
    kind = e.WhichOneof("body") or "empty"
    b = getattr(e, kind) if kind != "empty" else None
    st = names.tcp_state_name
    if kind == "tcp_state":
        return f"{tuple_text(b.tuple)}  {st(b.old_state)} → {st(b.new_state)}"
    if kind == "retransmit":
        return f"{tuple_text(b.tuple)}  retransmit{' synack' if b.synack else ''} in {st(b.state)}"
    if kind == "reset":
        d = "sent" if b.direction == events_pb2.RESET_SENT else "received"
        why = f" ({b.reason_name})" if b.reason_name else ""
        return f"{tuple_text(b.tuple)}  reset {d} in {st(b.state)}{why}"
    if kind == "tcp_probe":
        zw = " zero-window" if b.zero_window_now else ""
        return (f"{tuple_text(b.tuple)}  {b.segments} segs {b.bytes} B cwnd {b.snd_cwnd} "
                f"srtt {b.srtt_us}us{zw}{' final' if b.final else ''}")
    if kind == "cong_state":
        return f"{tuple_text(b.tuple)}  congestion {b.ca_state_name or b.ca_state}"
    if kind == "destroy":
        return f"{tuple_text(b.tuple)}  socket destroyed"
    if kind == "owner":
        return f"{tuple_text(b.tuple)}  owner {e.attr.comm}({e.attr.tgid}) via {b.via}"
    if kind == "skb_drop":
        where = f" on {b.ifname}" if b.ifname else ""
        n = f" ×{b.count}" if b.count > 1 else ""
        return f"drop {b.reason_name or b.reason}{where}{n}  {tuple_text(b.tuple)}"
    if kind == "qdisc":
        return (f"qdisc {b.kind} {b.ifname}: enq {b.enqueued} deq {b.dequeued} "
                f"drop {b.dropped} backlog {b.backlog_packets}")
    if kind == "rcvq_full":
        return f"{tuple_text(b.tuple)}  receive queue full{' (listen overflow)' if b.listen_overflow else ''}"
    if kind == "fib":
        dev = b.device or "-"
        res = f"err {b.err}" if b.err else f"via {names.addr_text(b.gateway)} dev {dev}" \
            if b.gateway else f"dev {dev}"
        return f"fib {names.addr_text(b.src)} → {names.addr_text(b.dst)} table {b.table}: {res}"
    if kind == "neigh":
        return f"neigh {names.addr_text(b.address)} on {b.device}: {b.new_state_name or b.new_state}"
    if kind == "lost":
        return f"LOST {b.count} records ({b.stage}{', ' + b.probe if b.probe else ''}) cpu {b.cpu}"
    if kind == "scope_change":
        return f"scope {b.what} {b.netns}/{b.iface}{'' if b.observation_complete else ' (incomplete)'}"
    if kind == "mark":
        return f"session {b.kind}{': ' + b.detail if b.detail else ''}"
    return kind


def event_view(e: events_pb2.Event, first_ktime: int) -> EventView:
    return EventView(
        event_id=e.id, ktime_ns=e.ktime_ns,
        rel=names.duration_text(e.ktime_ns - first_ktime) if first_ktime else "",
        kind=e.WhichOneof("body") or "empty", summary=event_summary(e),
        fields=tuple(flatten(e)),
    )


def path_views(f: model_pb2.FlowSnapshot) -> tuple[PathView, ...]:
    return tuple(PathView(h.event_id, h.device or "-", names.addr_text(h.gateway) if h.gateway else "",
                          h.table, h.err) for h in f.path)


def _short(state: str) -> str:
    """``TCP_ESTABLISHED`` -> ``ESTABLISHED``; empty (nothing before) -> ``-``."""
    if not state or state.endswith("UNSPECIFIED"):
        return "-"
    return state.removeprefix("TCP_").lower() if state.isupper() and not state.startswith("TCP_") \
        else state.removeprefix("TCP_")


def timeline(f: model_pb2.FlowSnapshot, gaps: Iterable[tuple[int, int, int, int]],
             first_ktime: int) -> tuple[TimelineEntry, ...]:
    """The flow's transitions, with each lost-records window that overlaps the flow's life
    drawn where it happened. ``gaps`` are (event_id, count, start_ns, end_ns)."""
    def rel(ns: int) -> str:
        # An event can precede the session's first (a socket seen before the scope opened):
        # "-106.852ms", never "+-106.852ms".
        if not (first_ktime and ns):
            return ""
        d = ns - first_ktime
        return ("+" if d >= 0 else "") + names.duration_text(d)

    entries = [TimelineEntry(t.ktime_ns, rel(t.ktime_ns), t.event_id, t.what,
                             f"{t.what} {_short(getattr(t, 'from'))} → {_short(t.to)}")
               for t in f.transitions]
    lo = f.first_ktime_ns
    hi = f.last_ktime_ns if f.phase == model_pb2.TERMINATED else None
    for event_id, count, start, end in gaps:
        if end < lo or (hi is not None and start > hi):
            continue
        entries.append(TimelineEntry(
            max(start, lo), rel(max(start, lo)), event_id, "gap",
            f"up to {count} records may be missing between {rel(start) or start} and {rel(end) or end}",
        ))
    entries.sort(key=lambda e: (e.ktime_ns, e.event_id))
    return tuple(entries)


def _diff_fields(f: model_pb2.FlowSnapshot) -> dict[str, str]:
    c = f.counters
    d = {
        "phase": names.phase_name(f.phase), "tcp state": names.tcp_state_name(f.tcp_state),
        "path": " > ".join(h.device or "?" for h in f.path), "members": str(len(f.members)),
        "templates": ", ".join(f.templates), "end": f.end_reason,
        "processes": ", ".join(sorted({f"{p.comm}({p.tgid})" for p in f.processes})),
    }
    for fd in c.DESCRIPTOR.fields:
        d[fd.name.replace("_", " ")] = str(getattr(c, fd.name))
    return d


def diff(before: model_pb2.FlowSnapshot | None, after: model_pb2.FlowSnapshot) -> tuple[FieldDiff, ...]:
    a = _diff_fields(after)
    b = _diff_fields(before) if before is not None else {}
    keys: Sequence[str] = list(dict.fromkeys([*b, *a]))
    out = []
    for k in keys:
        if before is None and k not in ("phase", "tcp state"):
            continue
        old, new = b.get(k, ""), a.get(k, "")
        if old != new:
            out.append(FieldDiff(k, old or "-", new or "-"))
    return tuple(out)
