"""Rendering records for ``gew export``: JSON lines, tables, CSV and one readable line per
record.

JSON is for people with ``jq`` and ``grep`` as much as for scripts, so it is not
protobuf's JSON mapping: addresses are text (``"10.0.0.2"``), enums are names
(``"TCP_ESTABLISHED"``, ``"AF_INET"``), integers are numbers (a ``sock`` is the session's opaque socket id), kernel text
addresses are hex strings, and every kernel time ``X_ns`` (CLOCK_MONOTONIC) also appears as
``X_wall``, ISO-8601 UTC from the recording's clock offset. Each object leads with a
``"kind"`` field: ``event``, ``intervention``, ``flow`` or ``reason``. The protobuf in the
recording stays the contract; this is a view of it. The text form is for people and may
change. Rendering only: the CLI decides what to read and which layer (recording, or the
observation plane for flows and reasons) produces the messages.
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from gewtui.addresses import addr_text, endpoint_text
from gewtui.pb import events_pb2, intervention_pb2, model_pb2

_HEX_FIELDS = {"location"}   # kernel text addresses read better in hex
_SOURCE = {
    events_pb2.ATTRIBUTION_PROCESS_CONTEXT: "process",
    events_pb2.ATTRIBUTION_SOCKET_OWNER: "owner",
    events_pb2.ATTRIBUTION_NONE: "no-task",
}


@dataclass(frozen=True)
class ExportContext:
    """What a recording's header adds to its records when they are rendered."""
    clock_offset_ns: int = 0          # unix_ns = ktime_ns + offset; 0: unknown
    drop_reasons: Mapping[int, str] = field(default_factory=dict)
    reset_reasons: Mapping[int, str] = field(default_factory=dict)

    @classmethod
    def from_header(cls, h: Any) -> "ExportContext":
        off = h.clock_offset_ns
        if not off and h.session.started_unix_ns and h.session.started_ktime_ns:
            # Older recordings: the two start times were read a moment apart; close enough.
            off = h.session.started_unix_ns - h.session.started_ktime_ns
        return cls(off, dict(h.drop_reasons), dict(h.reset_reasons))

    def wall(self, ktime_ns: int) -> str | None:
        if not self.clock_offset_ns or not ktime_ns:
            return None
        return wall_text(ktime_ns + self.clock_offset_ns)


def wall_text(unix_ns: int) -> str:
    """ISO-8601 UTC with nanoseconds: ``2026-12-07T02:20:40.123456789Z``."""
    sec, ns = divmod(unix_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{ns:09d}Z"


_NO_CONTEXT = ExportContext()
_FAMILY = {2: "AF_INET", 10: "AF_INET6"}
_PROTOCOL = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPV6"}
# Kernel times (CLOCK_MONOTONIC) that get a wall-clock twin; ttl_ns and the like are spans.
_KTIME = {"ktime_ns", "window_start_ns", "window_end_ns", "unknown_from_ns", "unknown_to_ns"}


def _is_ktime(name: str) -> bool:
    return name in _KTIME or name.endswith("_ktime_ns")


def to_dict(msg: Message, ctx: ExportContext = _NO_CONTEXT) -> dict[str, Any]:
    """A message's set fields as plain JSON values (see the module docstring)."""
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        name = fd.name
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            vf = fd.message_type.fields_by_name["value"]
            out[name] = {str(k): _json_value(vf, value[k], ctx) for k in sorted(value)}
        elif fd.is_repeated:
            out[name] = [_json_value(fd, v, ctx) for v in value]
        else:
            out[name] = _json_value(fd, value, ctx)
            if fd.type != FieldDescriptor.TYPE_MESSAGE and _is_ktime(name):
                wall = ctx.wall(int(value))  # type: ignore[call-overload]
                if wall is not None:
                    out[name[:-3] + "_wall"] = wall
    # Names for numbers the kernel defines and the header carries.
    if "reason" in out and msg.DESCRIPTOR.name == "TcpReset" and "reason_name" not in out:
        name = ctx.reset_reasons.get(out["reason"])
        if name:
            out["reason_name"] = name
    if msg.DESCRIPTOR.name == "SkbDrop" and "reason" in out and "reason_name" not in out:
        name = ctx.drop_reasons.get(out["reason"])
        if name:
            out["reason_name"] = name
    return out


def _json_value(fd: FieldDescriptor, value: Any, ctx: ExportContext) -> Any:
    if fd.message_type is not None:
        return to_dict(value, ctx)
    if fd.enum_type is not None:
        v = fd.enum_type.values_by_number.get(value)
        return v.name if v is not None else value
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return addr_text(value) if value else ""
    if fd.name in _HEX_FIELDS:
        return hex(value)
    if fd.name == "family" and value in _FAMILY:
        return _FAMILY[value]
    if fd.name == "protocol" and fd.containing_type.name == "Tuple" and value in _PROTOCOL:
        return _PROTOCOL[value]
    return value


def json_line(kind: str, msg: Message, ctx: ExportContext = _NO_CONTEXT) -> str:
    """One JSON object: ``{"kind": KIND, ...the message's fields}``."""
    d: dict[str, Any] = {"kind": kind}
    d.update(to_dict(msg, ctx))
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


# -- tables and CSV ------------------------------------------------------------------------

FLOW_COLUMNS = ("flow_id", "parent_flow_id", "phase", "tcp_state", "local_addr", "peer_addr",
                "peer_port", "netns", "events", "retransmits", "drops", "resets", "segments",
                "bytes", "first_event_id", "last_event_id", "first_wall", "last_wall",
                "templates", "end_reason")


def flow_row(f: model_pb2.FlowSnapshot, ctx: ExportContext = _NO_CONTEXT) -> tuple[str, ...]:
    c = f.counters
    return tuple(str(x) for x in (
        f.flow_id, f.parent_flow_id or "", model_pb2.FlowPhase.Name(f.phase),
        events_pb2.TcpState.Name(f.tcp_state),
        addr_text(f.local_addr) if f.local_addr else "",
        addr_text(f.peer_addr) if f.peer_addr else "", f.peer_port or "", f.netns or "",
        c.events, c.retransmits, c.drops, c.resets_sent + c.resets_received, c.segments,
        c.bytes, f.first_event_id, f.last_event_id, ctx.wall(f.first_ktime_ns) or "",
        ctx.wall(f.last_ktime_ns) or "", " ".join(f.templates), f.end_reason))


def csv_lines(header: Iterable[str], rows: Iterable[Iterable[str]]) -> Iterable[str]:
    """RFC 4180 lines (without their line ends), the header first."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="")
    w.writerow(header)
    yield buf.getvalue()
    for row in rows:
        buf.seek(0)
        buf.truncate()
        w.writerow(row)
        yield buf.getvalue()


def table_lines(header: Iterable[str], rows: Iterable[Iterable[str]]) -> Iterable[str]:
    """Columns padded to their widest cell (everything is read first: for flows, which
    the engine already holds, not for a stream of events)."""
    head = [h.upper() for h in header]
    body = [list(r) for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(head)]
    for r in [head] + body:
        yield "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()


EVENT_COLUMNS = ("id", "wall", "cpu", "kind", "tuple", "process", "detail")


def event_row(ev: events_pb2.Event, ctx: ExportContext = _NO_CONTEXT) -> tuple[str, ...]:
    kind = ev.WhichOneof("body") or "empty"
    body = getattr(ev, kind) if kind != "empty" else None
    tup = ""
    detail = ""
    if body is not None:
        if "tuple" in body.DESCRIPTOR.fields_by_name and body.HasField("tuple"):
            tup = tuple_text(body.tuple)
        detail = " ".join(w for w in fields_text(body).split(" ") if w and w != tup)
    a = ev.attr
    who = f"{a.comm}/{a.tgid}" if a.comm or a.tgid else ""
    return (str(ev.id), ctx.wall(ev.ktime_ns) or f"{ev.ktime_ns / 1e9:.6f}", str(ev.cpu), kind,
            tup, who, detail)


# -- text ------------------------------------------------------------------------------

def tuple_text(t: events_pb2.Tuple) -> str:
    def end(a: bytes, port: int) -> str:
        return endpoint_text(addr_text(a) if a else "?", port)
    return f"{end(t.saddr, t.sport)}>{end(t.daddr, t.dport)}"


def fields_text(msg: Message) -> str:
    """The set fields of a message as ``name=value`` words, rendered for reading."""
    words = []
    for fd, value in msg.ListFields():
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            vf = fd.message_type.fields_by_name["value"]
            items = [f"{k}:{_value_text(vf, value[k])}" for k in sorted(value)]
            words.append(f"{fd.name}={{{','.join(items)}}}")
        elif fd.is_repeated:
            items = [_value_text(fd, v) for v in value]
            words.append(f"{fd.name}=[{','.join(items)}]")
        elif fd.message_type is not None and fd.message_type.name == "Tuple":
            words.append(tuple_text(value))
        else:
            words.append(f"{fd.name}={_value_text(fd, value)}")
    return " ".join(words)


def _value_text(fd: FieldDescriptor, value: object) -> str:
    if fd.message_type is not None:
        if fd.message_type.name == "Tuple":
            return tuple_text(value)  # type: ignore[arg-type]
        return "{" + fields_text(value) + "}"  # type: ignore[arg-type]
    if fd.enum_type is not None:
        v = fd.enum_type.values_by_number.get(value)  # type: ignore[arg-type]
        return v.name if v is not None else str(value)
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return addr_text(value)  # type: ignore[arg-type]
    if fd.type == FieldDescriptor.TYPE_STRING:
        s = str(value)
        return s if s and " " not in s else json.dumps(s)
    if fd.name in _HEX_FIELDS:
        return hex(value)  # type: ignore[arg-type]
    return str(value)


def event_text(ev: events_pb2.Event, t0_ns: int = 0) -> str:
    """``#ID +SECONDS cpuN KIND fields [comm tgid/pid source]``; time relative to t0_ns."""
    kind = ev.WhichOneof("body") or "empty"
    t = (ev.ktime_ns - t0_ns) / 1e9 if t0_ns and ev.ktime_ns >= t0_ns else ev.ktime_ns / 1e9
    line = f"#{ev.id} {'+' if t0_ns else ''}{t:.6f}s cpu{ev.cpu} {kind}"
    if kind != "empty":
        body = fields_text(getattr(ev, kind))
        if body:
            line += " " + body
    a = ev.attr
    if a.tgid or a.pid or a.comm or a.source:
        who = f"{a.comm or '?'} {a.tgid}/{a.pid}" if (a.tgid or a.pid or a.comm) else "-"
        src = _SOURCE.get(a.source, "")
        line += f" [{who}{' ' + src if src else ''}]"
    return line


def intervention_text(r: intervention_pb2.InterventionRecord) -> str:
    action = intervention_pb2.InterventionAction.Name(r.action)
    outcome = intervention_pb2.InterventionOutcome.Name(r.outcome)
    line = f"intervention {r.intervention_id} {action} {outcome} flow {r.flow_id}"
    if r.ttl_ns:
        line += f" ttl {r.ttl_ns / 1e9:g}s"
    if r.HasField("gate"):
        line += " gate " + ("allowed" if r.gate.allowed else "refused")
        failed = [c.name for c in r.gate.conditions if not c.ok]
        if failed:
            line += f" ({','.join(failed)})"
    if r.refers_to:
        line += f" refers-to {r.refers_to}"
    if r.tuples:
        line += " " + " ".join(tuple_text(t) for t in r.tuples)
    if r.wildcard_port_hi:
        line += f" (a side without a port: any port {r.wildcard_port_lo}-{r.wildcard_port_hi})"
    if r.detail:
        line += f" {json.dumps(r.detail)}"
    return line


def flow_text(f: model_pb2.FlowSnapshot) -> str:
    phase = model_pb2.FlowPhase.Name(f.phase)
    state = events_pb2.TcpState.Name(f.tcp_state)
    line = f"flow {f.flow_id} {phase} {f.key or '-'} {state}"
    if f.parent_flow_id:
        line += f" parent {f.parent_flow_id}"
    counters = fields_text(f.counters)
    if counters:
        line += " " + counters
    line += f" events #{f.first_event_id}..#{f.last_event_id}"
    if f.templates:
        line += f" templates {','.join(f.templates)}"
    if f.end_reason:
        line += f" ended {f.end_reason}"
    return line


def reason_lines(c: model_pb2.ReasonChain) -> Iterable[str]:
    """A reason chain as a tree: its heading, then one indented line per node."""
    yield f"reasons flow {c.flow_id} as of #{c.at_event_id}"
    stack = [(c.root, 1)] if c.HasField("root") else []
    while stack:
        node, depth = stack.pop()
        layer = model_pb2.ReasonLayer.Name(node.layer)
        sev = f" [{node.severity}]" if node.severity else ""
        ev = f" (#{', #'.join(map(str, node.evidence_event_ids))})" if node.evidence_event_ids else ""
        yield f"{'  ' * depth}{layer}{sev} {node.kind}: {node.text}{ev}"
        stack.extend((child, depth + 1) for child in reversed(node.children))
