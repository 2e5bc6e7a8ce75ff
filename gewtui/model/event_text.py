"""L0 text: an event's fields as strings and its one-line text, from its fields only.

Used lazily, when a flow snapshot or a reason chain is asked for — never on the feed path.
Every text here is a fixed format filled from the event; nothing is inferred.
"""
from __future__ import annotations

import errno

from gewtui.addresses import addr_text, host_text
from gewtui.model.schema import ADDRESS_FIELDS, HEX_FIELDS, KIND_FIELDS, FieldInfo, enum_name


def errno_text(err: int) -> str:
    """-101 -> "-101 ENETUNREACH"."""
    if err == 0:
        return "0"
    name = errno.errorcode.get(-err) if err < 0 else None
    return f"{err} {name}" if name else str(err)


def short_state(name: str) -> str:
    """TCP_SYN_SENT -> SYN_SENT (texts only; fields keep the enum name)."""
    return name[4:] if name.startswith("TCP_") else name


def value_text(info: FieldInfo, value) -> str:
    if info.type == "enum":
        return enum_name(info, value)
    if info.type == "bool":
        return "true" if value else "false"
    if info.type == "bytes":
        if info.name in ADDRESS_FIELDS:
            return addr_text(value)
        if info.name == "lladdr":
            return ":".join(f"{b:02x}" for b in value)
        return value.hex()
    if info.name in HEX_FIELDS:
        return hex(value)
    return str(value)


def get_path(obj, path: tuple[str, ...]):
    for p in path:
        obj = getattr(obj, p)
    return obj


def _converter(info: FieldInfo):
    if info.type == "enum":
        names = {v.number: v.name for v in info.enum.values}
        return lambda v: names.get(v) or str(v)
    if info.type == "bool":
        return lambda v: "true" if v else "false"
    if info.type == "bytes":
        if info.name in ADDRESS_FIELDS:
            return addr_text
        if info.name == "lladdr":
            return lambda v: ":".join(f"{b:02x}" for b in v)
        return bytes.hex
    if info.name in HEX_FIELDS:
        return hex
    return str


def _build_tables():
    """Per field descriptor: its flat name and converter; per kind: every field's default text.
    event_fields then reads only the fields that are set (ListFields, in C) over a copy of
    the defaults — far cheaper than reading every field."""
    from gewtui.pb import events_pb2
    by_fd = {}
    ev_desc = events_pb2.Event.DESCRIPTOR
    defaults = {}
    for kind, table in KIND_FIELDS.items():
        body_fd = ev_desc.fields_by_name[kind]
        d = {"event": kind}
        for name, info in table.items():
            if info.owner == "body":
                owner = body_fd.message_type
                if len(info.path) == 2:
                    owner = owner.fields_by_name[info.path[0]].message_type
                fd = owner.fields_by_name[info.path[-1]]
            elif len(info.path) == 2:
                fd = ev_desc.fields_by_name["attr"].message_type.fields_by_name[info.path[1]]
            else:
                fd = ev_desc.fields_by_name[info.path[0]]
            conv = _converter(info)
            by_fd[fd] = (name, conv)
            d[name] = conv(fd.default_value if fd.type != fd.TYPE_ENUM else fd.enum_type.values[0].number)
        defaults[kind] = d
    return by_fd, defaults


_BY_FD, _DEFAULTS = _build_tables()


def _fill(msg, out: dict) -> None:
    for fd, v in msg.ListFields():
        if fd.message_type is not None:
            _fill(v, out)
        else:
            got = _BY_FD.get(fd)
            if got is not None:
                out[got[0]] = got[1](v)


def event_fields(ev) -> dict[str, str]:
    """Every field of the event (envelope, attribution, body) as flat name -> text."""
    kind = ev.WhichOneof("body")
    if kind is None:
        return {"event": "", "id": str(ev.id), "ktime_ns": str(ev.ktime_ns)}
    out = dict(_DEFAULTS[kind])
    _fill(ev, out)
    return out


def host(addr: str) -> str:
    """An address as text beside others: IPv6 bracketed ([fd00::1]), empty as "*"."""
    return host_text(addr) if addr else "*"


def hostport(addr: str, port) -> str:
    return f"{host(addr)}:{port}"


def _endpoints(f: dict[str, str]) -> str:
    return f"{hostport(f['saddr'], f['sport'])} -> {hostport(f['daddr'], f['dport'])}"


def _iface(f: dict[str, str], name: str = "ifname") -> str:
    """An interface by name, else by index, never empty."""
    if f.get(name):
        return f[name]
    idx = f.get("ifindex", "0")
    return f"ifindex {idx}" if idx not in ("", "0") else "an unnamed interface"


def _tcp_state(f):
    return (f"{_endpoints(f)} {short_state(f['old_state'])} -> {short_state(f['new_state'])}"
            f" (sock {f['sock']})")


def _retransmit(f):
    what = "SYN-ACK retransmitted" if f["synack"] == "true" else "retransmit"
    err = f" err {errno_text(int(f['err']))}" if f["err"] != "0" else ""
    return f"{what} {_endpoints(f)} in {short_state(f['state'])}{err}"


def _reset(f):
    d = {"RESET_SENT": "reset sent", "RESET_RECEIVED": "reset received"}.get(f["direction"], "reset")
    st = f" in {short_state(f['state'])}" if f["state"] != "TCP_STATE_UNSPECIFIED" else ""
    why = f" reason {f['reason_name']}" if f["reason_name"] else ""
    sock = f" (sock {f['sock']})" if f["sock"] != "0x0" else " (no socket)"
    return f"{d} {_endpoints(f)}{st}{why}{sock}"


def _tcp_probe(f):
    zw = f", {f['zero_window_segments']} segments under a zero window" \
        if f["zero_window_segments"] != "0" else ""
    now = ", zero window now" if f["zero_window_now"] == "true" else ""
    return (f"tcp_probe summary {_endpoints(f)}: {f['segments']} segments, {f['bytes']} bytes,"
            f" cwnd {f['snd_cwnd']}, snd_wnd {f['snd_wnd']}, srtt {f['srtt_us']} us{zw}{now}")


def _cong_state(f):
    return f"congestion state {f['ca_state_name'] or f['ca_state']} {_endpoints(f)}"


def _destroy(f):
    return f"socket destroyed {_endpoints(f)} (sock {f['sock']})"


def _owner(f):
    return (f"socket {_endpoints(f)} acted on by {f['attr.comm']}[{f['attr.tgid']}] via"
            f" {f['via']} (previous owner {f['previous_comm']}[{f['previous_tgid']}])")


def _skb_drop(f):
    how = {"PACKET_ATTRIBUTION_HEADERS": "tuple from packet headers",
           "PACKET_ATTRIBUTION_SOCKET": "tuple of the socket",
           "PACKET_ATTRIBUTION_NONE": "counted per interface, not per flow"}.get(f["attribution"], "")
    tup = f" {_endpoints(f)}" if f["attribution"] != "PACKET_ATTRIBUTION_NONE" else ""
    site = f" at {f['location_symbol']}" if f.get("location_symbol") else ""
    return (f"{f['count']} packet(s) dropped: {f['reason_name'] or f['reason']} on {_iface(f)}"
            f"{site}{tup} ({how})")


def _qdisc(f):
    return (f"qdisc {f['kind']} {f['handle']} on {_iface(f)}: enqueued"
            f" {f['enqueued']}, dropped {f['dropped']}, overlimits {f['overlimits']}, backlog"
            f" {f['backlog_packets']} (per-qdisc counter, not per-flow)")


def _rcvq_full(f):
    what = "listen queue overflow" if f["listen_overflow"] == "true" else "receive queue full"
    return f"{what} {_endpoints(f)}: rmem {f['rmem_alloc']} + {f['truesize']} > rcvbuf {f['sk_rcvbuf']}"


def _fib(f):
    dst = f"{host(f['src'])} -> {hostport(f['dst'], f['dport'])}"
    if f["err"] != "0":
        return f"route lookup {dst} table {f['table']} failed: {errno_text(int(f['err']))}"
    gw = f" gw {f['gateway']}" if f["gateway"] and f["gateway"] not in ("0.0.0.0", "::") else ""
    return f"route lookup {dst} table {f['table']}: via {f['device']}{gw}"


def _neigh(f):
    return f"neighbour {host(f['address'])} on {f['device'] or 'an unnamed interface'}: state {f['old_state']} -> {f['new_state_name'] or f['new_state']}"


def _lost(f):
    return f"{f['count']} records lost at {f['stage']} (cpu {f['cpu']}, probe {f['probe'] or '-'})"


def _scope_change(f):
    return f"scope change {f['what']} {f['netns']}/{f['iface']}: observation complete {f['observation_complete']}"


def _mark(f):
    return f"session {f['kind']}" + (f": {f['detail']}" if f["detail"] else "")


def _inventory(f):
    st = short_state(f["state"])
    who = f" owned by {f['attr.comm']}[{f['attr.tgid']}]" if f["attr.tgid"] != "0" else ""
    if f["state"] == "TCP_LISTEN":
        what = (f"listening on {hostport(f['saddr'], f['sport'])}, accept queue {f['rqueue']}"
                f" of {f['wqueue']}")
    else:
        rtt = f", srtt {f['rtt_us']} us" if f["rtt_us"] != "0" else ""
        what = (f"{_endpoints(f)} in {st}{rtt}, {f['total_retrans']} segments retransmitted"
                f" over its life")
    return f"at session start: socket {f['index']} of {f['total']} {what}{who}"


def _cgroup(f):
    what = "".join(f"{k} {f[k]}, " for k in ("container", "unit") if f[k])
    return f"cgroup {f['id']}: {what}path {f['path'] or 'not found (the cgroup is gone)'}"


def _netns_facts(f):
    return (f"netns {f['name'] or f['netns']} ({f['when']}): ephemeral ports {f['port_lo']}-"
            f"{f['port_hi']}, ListenOverflows {f['listen_overflows']}, PassiveOpens"
            f" {f['passive_opens']}, ActiveOpens {f['active_opens']}, RetransSegs"
            f" {f['retrans_segs']}")


_TEXT = {
    "tcp_state": _tcp_state, "retransmit": _retransmit, "reset": _reset, "tcp_probe": _tcp_probe,
    "cong_state": _cong_state, "destroy": _destroy, "owner": _owner, "skb_drop": _skb_drop,
    "qdisc": _qdisc, "rcvq_full": _rcvq_full, "fib": _fib, "neigh": _neigh, "lost": _lost,
    "scope_change": _scope_change, "mark": _mark, "inventory": _inventory,
    "netns_facts": _netns_facts, "cgroup": _cgroup,
}
assert set(_TEXT) == set(KIND_FIELDS), "every event kind needs a text"


def event_text(ev, fields: dict[str, str] | None = None) -> str:
    f = fields if fields is not None else event_fields(ev)
    kind = f["event"]
    return _TEXT[kind](f) if kind in _TEXT else f"event {f['id']} with no body"
