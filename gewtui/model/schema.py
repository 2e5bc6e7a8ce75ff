"""The L0 event vocabulary as the observation plane sees it: per event kind, the flat field
names that templates may test and reason texts may cite.

Built once from the protobuf descriptors (never hand-listed), so a field added to
events.proto is usable in templates at once. Names are flat: the fields of a body's ``tuple``
appear without prefix (``saddr``, ``dport``), the envelope adds ``id``, ``ktime_ns``, ``cpu``
and ``attr.<field>``; ``event`` is the kind itself.
"""
from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import FieldDescriptor as FD

from gewtui.pb import events_pb2

# Address-valued bytes fields: rendered as IP text, comparable to IP strings in templates.
ADDRESS_FIELDS = frozenset({"saddr", "daddr", "src", "dst", "gateway", "address"})
# Kernel addresses and cookies: rendered in hex.
HEX_FIELDS = frozenset({"sock", "location", "sock_cookie"})

_INT_TYPES = {FD.TYPE_INT32, FD.TYPE_INT64, FD.TYPE_SINT32, FD.TYPE_SINT64, FD.TYPE_SFIXED32,
              FD.TYPE_SFIXED64}
_UINT_TYPES = {FD.TYPE_UINT32, FD.TYPE_UINT64, FD.TYPE_FIXED32, FD.TYPE_FIXED64}


@dataclass(frozen=True)
class FieldInfo:
    name: str                 # flat name
    path: tuple[str, ...]     # attribute path from the owner (body, envelope or attr)
    owner: str                # "body", "envelope" or "signal"
    type: str                 # "int", "uint", "bool", "str", "bytes", "enum"
    enum: object = None       # EnumDescriptor for enums

    @property
    def numeric(self) -> bool:
        return self.type in ("int", "uint")


def _type_of(fd) -> str:
    if fd.type == FD.TYPE_ENUM:
        return "enum"
    if fd.type == FD.TYPE_BOOL:
        return "bool"
    if fd.type == FD.TYPE_STRING:
        return "str"
    if fd.type == FD.TYPE_BYTES:
        return "bytes"
    if fd.type in _INT_TYPES:
        return "int"
    if fd.type in _UINT_TYPES:
        return "uint"
    raise TypeError(f"unsupported field type for {fd.full_name}")


#: Bodies only the capture and the recording's readers know: a lifecycle stands for other
#: events and every reader expands it (gewtui.recording.lifecycle) before the model sees it.
CAPTURE_ONLY = frozenset({"lifecycle"})


def _build() -> dict[str, dict[str, FieldInfo]]:
    ev_desc = events_pb2.Event.DESCRIPTOR
    envelope: dict[str, FieldInfo] = {}
    for name in ("id", "ktime_ns", "cpu"):
        fd = ev_desc.fields_by_name[name]
        envelope[name] = FieldInfo(name, (name,), "envelope", _type_of(fd))
    for fd in ev_desc.fields_by_name["attr"].message_type.fields:
        flat = "attr." + fd.name
        envelope[flat] = FieldInfo(flat, ("attr", fd.name), "envelope", _type_of(fd),
                                   fd.enum_type if fd.type == FD.TYPE_ENUM else None)
    kinds: dict[str, dict[str, FieldInfo]] = {}
    for fd in ev_desc.oneofs_by_name["body"].fields:
        if fd.name in CAPTURE_ONLY:
            continue
        table = dict(envelope)
        for bf in fd.message_type.fields:
            if bf.type == FD.TYPE_MESSAGE:
                # Only Tuple is nested in bodies; its fields are flattened without prefix.
                for tf in bf.message_type.fields:
                    table[tf.name] = FieldInfo(tf.name, (bf.name, tf.name), "body", _type_of(tf))
                continue
            table[bf.name] = FieldInfo(bf.name, (bf.name,), "body", _type_of(bf),
                                       bf.enum_type if bf.type == FD.TYPE_ENUM else None)
        kinds[fd.name] = table
    return kinds


#: kind -> flat field name -> FieldInfo, for every body of the Event oneof.
KIND_FIELDS: dict[str, dict[str, FieldInfo]] = _build()
EVENT_KINDS: tuple[str, ...] = tuple(KIND_FIELDS)

#: L1 signals the registry raises itself; a template step may name them like an event kind.
#: Their evidence is the L0 event that caused them; their fields come from the registry.
SIGNAL_FIELDS: dict[str, dict[str, FieldInfo]] = {
    "l1.diverge": {n: FieldInfo(n, (n,), "signal", "str") for n in (
        "from_device", "to_device", "from_gateway", "to_gateway", "parent_flow", "child_flow")},
}
#: The L0 kinds each signal's evidence is drawn from.
SIGNAL_SOURCES: dict[str, frozenset[str]] = {"l1.diverge": frozenset({"fib"})}


def fields_of(kind: str) -> dict[str, FieldInfo]:
    """Field table for an event kind or L1 signal; KeyError if unknown."""
    if kind in KIND_FIELDS:
        return KIND_FIELDS[kind]
    return SIGNAL_FIELDS[kind]


def enum_value(info: FieldInfo, name: str) -> int | None:
    v = info.enum.values_by_name.get(name)
    return None if v is None else v.number


def enum_name(info: FieldInfo, number: int) -> str:
    v = info.enum.values_by_number.get(number)
    return v.name if v is not None else str(number)


TCP_STATE_NAMES: dict[int, str] = {v.number: v.name for v in events_pb2.TcpState.DESCRIPTOR.values}
