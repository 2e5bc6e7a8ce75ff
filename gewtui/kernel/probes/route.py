"""route unit: FIB lookups (IPv4 and IPv6) folded in the kernel, and neighbour updates.

The kernel sends a lookup when its result for (netns, table, oif, src, dst) changes on a
CPU, or on a cadence, with the number of identical lookups folded into it; when the
result changed, the lookups still folded under the previous result are reported first,
as a copy of that previous result with their count. At close the plane reads the folded
counts left in the table (``flush``). The chosen device is the next hop's; ``oif`` is the
interface the caller asked for. Layouts mirror bpf/route.c.
"""
from __future__ import annotations

import struct
from typing import Iterable, Sequence

from gewtui.kernel.probes.base import AF_INET, AF_INET6, HDR, Header, Program, ProbeUnit, addr_bytes, cstr
from gewtui.pb import events_pb2
from gewtui.runtime.capabilities import BtfNeed, TracepointNeed

PROBE_ID = 7
K_FIB, K_NEIGH = 12, 13

# after the header: family, table, err, oif, iif, netns, src, dst, gw, sport, dport, proto,
# gw_family, pad[2], dev, count, prev_folded
FIB = struct.Struct("<IIiiiI16s16s16sHHBBxx16sII")
# after the header: family, netns, ifindex, old, new, lladdr_len, pad, addr, lladdr, dev
NEIGH = struct.Struct("<IIIBBBx16s32s16s")
# struct gew_fib_key and gew_fib_val (the fold table)
FIB_KEY = struct.Struct("<IIIi16s16s")
FIB_VAL = struct.Struct("<QQII")


def decode_fib(dec, hdr: Header, buf: bytes) -> Iterable[events_pb2.Event]:
    (family, table, err, oif, iif, netns, src, dst, gw, sport, dport, proto, gw_family, dev, count,
     prev_folded) = FIB.unpack_from(buf, HDR.size)
    key = (hdr.cpu, FIB_KEY.pack(netns, table, family, oif, src, dst))
    last: dict = dec.unit_state("route")
    out = []
    if prev_folded and key in last:
        # lookups that still had the previous result when it changed
        ev = dec.synthetic(hdr.ktime_ns, netns)
        ev.cpu = hdr.cpu
        ev.fib.CopyFrom(last[key])
        ev.fib.count = prev_folded
        out.append(ev)
    ev = dec.envelope(hdr, 0, netns, learn_owner=False)
    b = ev.fib
    b.family, b.table, b.err, b.oif, b.iif = family, table, err, oif, iif
    b.src = addr_bytes(family, src)
    b.dst = addr_bytes(family, dst)
    b.gateway = addr_bytes(gw_family, gw) if gw_family in (AF_INET, AF_INET6) else b""
    b.sport, b.dport, b.protocol = sport, dport, proto
    b.device = cstr(dev)
    b.count = count
    last[key] = events_pb2.FibLookup()
    last[key].CopyFrom(b)
    out.append(ev)
    return out


def flush(dec, table: Iterable[tuple[bytes, Sequence[bytes]]], ktime_ns: int) -> list[events_pb2.Event]:
    """Lookups folded since their last record, read from the fold table at close."""
    last: dict = dec.unit_state("route")
    out = []
    for raw_key, per_cpu in table:
        for cpu, raw in enumerate(per_cpu):
            _sig, last_ns, folded, _ = FIB_VAL.unpack_from(raw, 0)
            prev = last.get((cpu, bytes(raw_key)))
            if not folded or prev is None:
                continue
            ev = dec.synthetic(ktime_ns, FIB_KEY.unpack_from(raw_key, 0)[0])
            ev.cpu = cpu
            ev.fib.CopyFrom(prev)
            ev.fib.count = folded
            out.append(ev)
    return out


def _final(plane, now: int) -> None:
    from gewtui.kernel.transport import per_cpu

    table = [(k, per_cpu(v, FIB_VAL.size)) for k, v in plane.items("gew_fib_seen")]
    for ev in flush(plane.decoder, table, now):
        plane.decoder.emit(ev)


def decode_neigh(dec, hdr: Header, buf: bytes) -> Iterable[events_pb2.Event]:
    family, netns, ifindex, old, new, alen, addr, lladdr, dev = NEIGH.unpack_from(buf, HDR.size)
    ev = dec.envelope(hdr, 0, netns, learn_owner=False)
    b = ev.neigh
    b.family = family
    b.device = cstr(dev)
    b.address = addr_bytes(family, addr)
    b.lladdr = bytes(lladdr[:min(alen, 32)])
    b.old_state = old
    b.new_state = new
    names = dec.vocab.neigh_states
    b.new_state_name = names.get(new) or "|".join(n for v, n in sorted(names.items()) if new & v) or str(new)
    return (ev,)


UNIT = ProbeUnit(
    name="route",
    probe_id=PROBE_ID,
    source="route.c",
    summary="FIB lookups (v4/v6) folded in the kernel by result, neighbour state updates",
    programs=(
        Program("gew_fib4_lookup", "fib", "fib_table_lookup", raw=True),
        Program("gew_fib6_lookup", "fib6", "fib6_table_lookup", raw=True),
        Program("gew_neigh_update", "neigh", "neigh_update", raw=True),
    ),
    tracepoints=(
        TracepointNeed("fib", "fib_table_lookup", raw=True,
                       raw_args=("u32", "const struct flowi4 *", "const struct fib_nh_common *", "int")),
        TracepointNeed("fib6", "fib6_table_lookup", raw=True,
                       raw_args=("const struct net *", "const struct fib6_result *", "struct fib6_table *",
                                 "const struct flowi6 *")),
        TracepointNeed("neigh", "neigh_update", raw=True,
                       raw_args=("struct neighbour *", "const u8 *", "u8", "u32", "u32")),
    ),
    btf=(
        BtfNeed("flowi4", "__fl_common.flowic_oif", "GEW_OFF_FLOWI4_OIF"),
        BtfNeed("flowi4", "__fl_common.flowic_iif", "GEW_OFF_FLOWI4_IIF"),
        BtfNeed("flowi4", "__fl_common.flowic_proto", "GEW_OFF_FLOWI4_PROTO"),
        BtfNeed("flowi4", "saddr", "GEW_OFF_FLOWI4_SADDR"),
        BtfNeed("flowi4", "daddr", "GEW_OFF_FLOWI4_DADDR"),
        BtfNeed("flowi4", "uli.ports.sport", "GEW_OFF_FLOWI4_SPORT"),
        BtfNeed("flowi4", "uli.ports.dport", "GEW_OFF_FLOWI4_DPORT"),
        BtfNeed("flowi6", "__fl_common.flowic_oif", "GEW_OFF_FLOWI6_OIF"),
        BtfNeed("flowi6", "__fl_common.flowic_iif", "GEW_OFF_FLOWI6_IIF"),
        BtfNeed("flowi6", "__fl_common.flowic_proto", "GEW_OFF_FLOWI6_PROTO"),
        BtfNeed("flowi6", "saddr", "GEW_OFF_FLOWI6_SADDR"),
        BtfNeed("flowi6", "daddr", "GEW_OFF_FLOWI6_DADDR"),
        BtfNeed("flowi6", "uli.ports.sport", "GEW_OFF_FLOWI6_SPORT"),
        BtfNeed("flowi6", "uli.ports.dport", "GEW_OFF_FLOWI6_DPORT"),
        BtfNeed("fib_nh_common", "nhc_dev", "GEW_OFF_NHC_DEV"),
        BtfNeed("fib_nh_common", "nhc_gw_family", "GEW_OFF_NHC_GW_FAMILY"),
        BtfNeed("fib_nh_common", "nhc_gw", "GEW_OFF_NHC_GW"),
        BtfNeed("fib6_result", "nh", "GEW_OFF_FIB6_RESULT_NH"),
        BtfNeed("fib6_result", "fib6_type", "GEW_OFF_FIB6_RESULT_TYPE"),
        BtfNeed("fib6_nh", "nh_common", "GEW_OFF_FIB6_NH_COMMON"),
        BtfNeed("fib6_table", "tb6_id", "GEW_OFF_FIB6_TABLE_ID"),
        BtfNeed("neighbour", "dev", "GEW_OFF_NEIGH_DEV"),
        BtfNeed("neighbour", "tbl", "GEW_OFF_NEIGH_TBL"),
        BtfNeed("neighbour", "nud_state", "GEW_OFF_NEIGH_NUD_STATE"),
        BtfNeed("neighbour", "primary_key", "GEW_OFF_NEIGH_PRIMARY_KEY"),
        BtfNeed("neigh_table", "family", "GEW_OFF_NEIGH_TABLE_FAMILY"),
        BtfNeed("net_device", "addr_len", "GEW_OFF_NETDEV_ADDR_LEN"),
    ),
    decoders={
        K_FIB: (HDR.size + FIB.size, decode_fib),
        K_NEIGH: (HDR.size + NEIGH.size, decode_neigh),
    },
    depends=("irqctx",),
    maps=lambda config: ("gew_fib_seen",),
    final=_final,
)
