"""The decoder's fast path: frequent ring-buffer records straight to serialized L0 events.

Building an Event field by field costs ~150 ns per attribute set with the upb protobuf
runtime (a state-change event needs ~20), while parsing a whole serialized event costs
~0.5 us. So for the record kinds a busy session sees most (state changes, resets,
retransmits, drops, congestion states, destroys) the decoder writes the protobuf wire
format itself and parses it once (``Event.FromString``). What repeats is encoded once and
cached: a tuple, an attribution, a reason name; only times and socket ids are encoded per
record. The protobuf primitives (varints, field keys, bounded caches) are gewtui.pbwire's;
this module holds what the units share on top of them (envelope keys, tuples, the table of
encoders); each probe unit writes its own kinds' encoders beside its decoders (ProbeUnit.fast), and
imports this module, never the other way round. ``tests/test_decode_fastpath.py`` checks
every kind against its unit decoder on crafted records.

An encoder returns the event's bytes without its id; or, for a record that makes several
events, a list of ``(ktime_ns, bytes)``, numbered in that order by the decoder; or None when
the record needs what only the unit decoder does: the decoder then runs that one.
No bcc here.
"""
from __future__ import annotations

import re
import struct
from typing import Callable

from socket import AF_INET, AF_INET6   # Linux's 2 and 10, as struct gew_tuple carries them
from gewtui.pb import events_pb2
from gewtui.pbwire import (_LEN, _SMALL, Cache, field_cache, ivarint, keys, ld, length, opt,  # noqa: F401
                           string_field, tag, uvarint)

_TF_FAMILY, _TF_SADDR, _TF_DADDR, _TF_SPORT, _TF_DPORT, _TF_PROTO = keys(
    events_pb2.Tuple, "family", "saddr", "daddr", "sport", "dport", "protocol")


# The envelope's keys (the decoder writes them); the units write their bodies.
E = events_pb2.Event
K_CPU, K_ATTR = keys(E, "cpu", "attr")
TUPLE1 = tag(events_pb2.TcpStateChange, "tuple")   # field 1 of every TCP body
S_SOCK = tag(events_pb2.TcpStateChange, "sock")    # field 2 of every TCP body
for _body in (events_pb2.TcpRetransmit, events_pb2.TcpReset, events_pb2.TcpCongState, events_pb2.SocketDestroy):
    if tag(_body, "tuple") != TUPLE1 or tag(_body, "sock") != S_SOCK:
        raise ImportError(f"wire: {_body.__name__} no longer has tuple and sock as fields 1 and 2")
SMALL = _SMALL

class Encoders:
    """One decoder's shared caches (tuples, socket ids) and the fast encoders of the units
    it runs: ``table()`` maps record kinds to encoders, each unit contributing its own
    (ProbeUnit.fast). Every value that repeats is looked up as a ready-made field."""

    def __init__(self, dec, units=()):
        self.dec = dec
        self.units = tuple(units)
        self.tuples = TupleFields(TUPLE1)
        self.socks = field_cache(S_SOCK)      # field 2 of every TCP body (checked at import), by socket id

    def tuple_fields(self, key: bytes) -> "TupleFields":
        """Tuples as another body's field ``key`` (SkbDrop's is not field 1)."""
        return TupleFields(key)

    def tuple_payload(self, raw: bytes) -> bytes:
        """A struct gew_tuple as a serialized Tuple (see TupleFields)."""
        return self.tuples.payload(raw)

    def table(self) -> dict[int, Callable[[tuple, bytes], bytes | list | None]]:
        """kind -> encoder(header tuple, record) for the units the decoder runs. An encoder
        returns the event's bytes without id and ktime, or None when the record needs the
        unit's decoder; a list of (ktime_ns, bytes) for several events."""
        out: dict[int, Callable[[tuple, bytes], bytes | list | None]] = {}
        for u in self.units:
            if u.fast is not None:
                out.update(u.fast(self))
        return out


class TupleFields(dict):
    """raw struct gew_tuple -> a Tuple field (key, length, payload), as base.fill_tuple
    would set it: 4 or 16 address bytes by family, zero fields left out as protobuf
    writes them. Every connection brings new tuples, so a first sight is built from
    cached parts (addresses, ports) in one call."""

    limit = 8192

    def __init__(self, key: bytes):
        # the layout is the probes' (base.TUPLE), imported here and not at module level: the
        # units import this module
        from gewtui.kernel.probes.base import TUPLE

        self.unpack = TUPLE.unpack_from
        super().__init__()
        self.key = key
        self.addrs = Cache(_addr_fields, 1024)
        self.sports = field_cache(_TF_SPORT, limit=65536)
        self.dports = field_cache(_TF_DPORT, limit=65536)
        self.protos = field_cache(_TF_PROTO, limit=256)

    def payload(self, raw: bytes) -> bytes:
        s, d, sport, dport, family, proto = self.unpack(raw, 0)
        out = self.addrs[(family, s, d)]
        if sport:
            out += self.sports[sport]
        if dport:
            out += self.dports[dport]
        if proto:
            out += self.protos[proto]
        return out

    def __missing__(self, raw: bytes) -> bytes:
        p = self.payload(raw)
        v = self.key + _LEN[len(p)] + p
        if len(self) >= self.limit:
            self.clear()
        self[raw] = v
        return v


def _addr_fields(key: tuple) -> bytes:
    family, s, d = key
    n = 4 if family == AF_INET else 16 if family == AF_INET6 else 0
    out = _TF_FAMILY + uvarint(family) if family else b""
    if n:
        out += _TF_SADDR + _SMALL[n] + s[:n] + _TF_DADDR + _SMALL[n] + d[:n]
    return out


def offsets(layout: struct.Struct) -> list[int]:
    """Where each field of a struct layout begins (pad bytes are not fields): what a C
    encoder is told, so no offset is restated in C."""
    out, fmt = [], layout.format
    for m in re.finditer(r"(\d*)([a-zA-Z?])", fmt[1:]):
        if m.group(2) != "x":
            out.append(struct.calcsize(fmt[0] + fmt[1:m.start() + 1]))
            if m.group(2) != "s" and m.group(1):
                raise ValueError(f"{fmt}: a repeated field")
    return out


def native_tuple() -> tuple[dict, dict]:
    """The keys and layout entries a C encoder's tuple needs (gewtui/kernel/probes/
    fields_native.h, ``tuple_layout_init``): what TupleFields writes, from the same layout."""
    from gewtui.kernel.probes.base import TUPLE

    s, d, sport, dport, family, proto = offsets(TUPLE)
    keys = dict(t_family=_TF_FAMILY, t_saddr=_TF_SADDR, t_daddr=_TF_DADDR, t_sport=_TF_SPORT, t_dport=_TF_DPORT,
                t_proto=_TF_PROTO)
    layout = dict(t_saddr_at=s, t_daddr_at=d, t_sport_at=sport, t_dport_at=dport, t_family_at=family,
                  t_proto_at=proto, tup_size=TUPLE.size, af_inet=AF_INET, af_inet6=AF_INET6)
    return keys, layout
