"""Rendering records for ``gew export``: JSON lines and one readable line per record.

JSON follows protobuf's JSON mapping (``MessageToDict`` with proto field names: 64-bit
integers as strings, bytes as base64, zero values omitted) with a leading ``"kind"`` field:
``event``, ``intervention``, ``flow`` or ``reason``. The text form is for people and may
change; scripts should use JSON. Rendering only: the CLI decides what to read and which
layer (recording, or the observation plane for flows and reasons) produces the messages.
"""
from __future__ import annotations

import ipaddress
import json
from typing import Iterable

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from gewtui.pb import events_pb2, intervention_pb2, model_pb2

_HEX_FIELDS = {"sock", "location"}   # kernel addresses read better in hex
_SOURCE = {
    events_pb2.ATTRIBUTION_PROCESS_CONTEXT: "process",
    events_pb2.ATTRIBUTION_SOCKET_OWNER: "owner",
    events_pb2.ATTRIBUTION_NONE: "no-task",
}


def json_line(kind: str, msg: Message) -> str:
    """One JSON object: ``{"kind": KIND, ...the message's fields}``."""
    d = {"kind": kind}
    d.update(json_format.MessageToDict(msg, preserving_proto_field_name=True))
    return json.dumps(d, separators=(",", ":"))


# -- text ------------------------------------------------------------------------------

def addr_text(raw: bytes) -> str:
    """4 or 16 raw bytes as an IP address; anything else as hex."""
    if len(raw) in (4, 16):
        return str(ipaddress.ip_address(raw))
    return raw.hex()


def tuple_text(t: events_pb2.Tuple) -> str:
    def end(a: bytes, port: int) -> str:
        s = addr_text(a) if a else "?"
        if ":" in s:
            s = f"[{s}]"
        return f"{s}:{port}" if port else s
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
