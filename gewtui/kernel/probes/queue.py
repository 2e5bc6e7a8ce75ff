"""queue unit: per-qdisc counters kept per CPU in the kernel, summarised here into
QdiscSummary events over windows (enqueued/dequeued/dropped/overlimits/requeues as window
deltas, backlog as the last value seen).

The plane reads the table on its summary timer and hands the per-CPU values to
``summaries``; a qdisc_destroy record makes the plane read that qdisc's entry one last
time and remove it (its address may be reused). Layout mirrors bpf/queue.c.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable, Sequence

from gewtui.kernel.probes.base import HDR, Header, Program, ProbeUnit, cstr
from gewtui.pb import events_pb2
from gewtui.runtime.capabilities import BtfNeed, TracepointNeed

PROBE_ID = 6
K_QDISC_GONE = 11

# struct gew_qstat
QSTAT = struct.Struct("<QQQIIIIIIIIIBBxx16s16s5I4x")
# after the header: qdisc pointer
GONE = struct.Struct("<Q")


@dataclass
class QdiscTotals:
    enqueued: int = 0
    dequeued: int = 0
    last_ns: int = 0
    ifindex: int = 0
    handle: int = 0
    parent: int = 0
    netns: int = 0
    qlen: int = 0
    backlog: int = 0
    drops: int = 0
    requeues: int = 0
    overlimits: int = 0
    in_scope: bool = False
    kind: str = ""
    ifname: str = ""
    seen_ns: int = 0   # end of the previous window
    base: list[int] | None = None   # qstats (qlen, backlog, drops, requeues, overlimits) at first sight


def fold_cpus(per_cpu: Sequence[bytes]) -> QdiscTotals | None:
    """Sum one qdisc's per-CPU entries: counters add up; the qstats copy and the
    description come from the CPU that dequeued last. None when no CPU has it in scope."""
    t = QdiscTotals()
    newest = -1
    described = False
    base: list[int] | None = None
    for raw in per_cpu:
        (enq, deq, last, ifindex, handle, parent, netns, qlen, backlog, drops, requeues, overl,
         init, in_scope, kind, ifname, *b) = QSTAT.unpack_from(raw, 0)
        if not init:
            continue
        if not in_scope:
            return None
        # the earliest snapshot (counters only grow) is the session's baseline
        base = list(b) if base is None else [min(x, y) for x, y in zip(base, b)]
        t.enqueued += enq
        t.dequeued += deq
        if not described:
            t.ifindex, t.handle, t.parent, t.netns = ifindex, handle, parent, netns
            t.kind, t.ifname, t.in_scope = cstr(kind), cstr(ifname), True
            described = True
        if last > newest:
            newest = last
            t.last_ns, t.qlen, t.backlog, t.drops, t.requeues, t.overlimits = (
                last, qlen, backlog, drops, requeues, overl)
    if not described:
        return None
    if newest <= 0 and base is not None:
        # never dequeued yet: the baseline is the latest known state
        t.qlen, t.backlog, t.drops, t.requeues, t.overlimits = base
    t.base = base or [0] * 5
    return t


def summarise(dec, qdisc: int, now: QdiscTotals, ktime_ns: int, force: bool = False
              ) -> events_pb2.Event | None:
    """A QdiscSummary for what changed since this qdisc's previous summary."""
    prev: dict[int, QdiscTotals] = dec.unit_state("queue")
    p = prev.get(qdisc)
    if p is None:
        b = now.base or [0] * 5
        p = QdiscTotals(drops=b[2], requeues=b[3], overlimits=b[4])
    if (now.enqueued, now.dequeued, now.drops) == (p.enqueued, p.dequeued, p.drops) and not force:
        return None
    ev = dec.synthetic(ktime_ns, now.netns)
    b = ev.qdisc
    b.ifindex, b.ifname, b.netns = now.ifindex, now.ifname, now.netns
    b.handle, b.parent, b.kind = now.handle, now.parent, now.kind
    b.window_start_ns = p.seen_ns
    b.window_end_ns = ktime_ns
    b.enqueued = max(now.enqueued - p.enqueued, 0)
    b.dequeued = max(now.dequeued - p.dequeued, 0)
    b.dropped = max(now.drops - p.drops, 0)
    b.backlog_packets = now.qlen
    b.overlimits = max(now.overlimits - p.overlimits, 0)
    b.requeues = max(now.requeues - p.requeues, 0)
    now.seen_ns = ktime_ns
    prev[qdisc] = now
    return ev


def summaries(dec, table: Iterable[tuple[int, Sequence[bytes]]], ktime_ns: int) -> list[events_pb2.Event]:
    out = []
    for qdisc, per_cpu in table:
        t = fold_cpus(per_cpu)
        if t is None:
            continue
        ev = summarise(dec, qdisc, t, ktime_ns)
        if ev is not None:
            out.append(ev)
    return out


def decode_gone(dec, hdr: Header, buf: bytes) -> Iterable[events_pb2.Event]:
    (qdisc,) = GONE.unpack_from(buf, HDR.size)
    hook = dec.hooks.get("qdisc_gone")
    out = list(hook(dec, qdisc, hdr.ktime_ns)) if hook is not None else []
    dec.unit_state("queue").pop(qdisc, None)
    return out


# -- lifecycle hooks (see base.ProbeUnit) --------------------------------------------------
MAP = "gew_qdiscs"


def _start(plane) -> None:
    plane.decoder.hooks["qdisc_gone"] = lambda dec, qdisc, ktime_ns: _gone(plane, dec, qdisc, ktime_ns)


def _tick(plane, now: int) -> None:
    from gewtui.kernel.transport import per_cpu

    table = [(int.from_bytes(k, "little"), per_cpu(v, QSTAT.size)) for k, v in plane.items(MAP)]
    for ev in summaries(plane.decoder, table, now):
        plane.decoder.emit(ev)


def _rescope(plane) -> None:
    plane.table(MAP).clear()


def _gone(plane, dec, qdisc: int, ktime_ns: int) -> list[events_pb2.Event]:
    """A qdisc was destroyed: its last counters, read from the map before it goes."""
    from gewtui.kernel.transport import per_cpu

    t = plane.table(MAP)
    key = t.Key(qdisc)
    try:
        raw = bytes(t[key])
    except KeyError:
        return []
    totals = fold_cpus(per_cpu(raw, QSTAT.size))
    try:
        del t[key]
    except KeyError:
        pass
    if totals is None:
        return []
    ev = summarise(dec, qdisc, totals, ktime_ns, force=True)
    return [ev] if ev is not None else []


def check_qstats_layout(btf) -> str | None:
    """bpf/queue.c copies struct gnet_stats_queue in one 20-byte read into five u32s."""
    want = ("qlen", "backlog", "drops", "requeues", "overlimits")
    try:
        for i, name in enumerate(want):
            r = btf.member("gnet_stats_queue", name)
            if r.offset != 4 * i or r.size != 4:
                return f"struct gnet_stats_queue.{name} is at {r.offset} ({r.size} bytes), probe expects {4 * i} (4)"
    except Exception as e:
        return f"struct gnet_stats_queue: {e}"
    return None


UNIT = ProbeUnit(
    name="queue",
    probe_id=PROBE_ID,
    source="queue.c",
    summary="per-qdisc enqueue/dequeue counters and qstats in the kernel, summarised per window",
    programs=(
        Program("gew_qdisc_enqueue", "qdisc", "qdisc_enqueue", raw=True),
        Program("gew_qdisc_dequeue", "qdisc", "qdisc_dequeue", raw=True),
        Program("gew_qdisc_destroy", "qdisc", "qdisc_destroy", raw=True),
    ),
    # all raw: a raw program is skipped only when it nests in itself (see bpf/queue.c)
    tracepoints=(
        TracepointNeed("qdisc", "qdisc_enqueue", raw=True,
                       raw_args=("struct Qdisc *", "const struct netdev_queue *", "struct sk_buff *")),
        TracepointNeed("qdisc", "qdisc_dequeue", raw=True,
                       raw_args=("struct Qdisc *", "const struct netdev_queue *", "int", "struct sk_buff *")),
        TracepointNeed("qdisc", "qdisc_destroy", raw=True, raw_args=("struct Qdisc *",)),
    ),
    btf=(
        BtfNeed("Qdisc", "handle", "GEW_OFF_QDISC_HANDLE"),
        BtfNeed("Qdisc", "parent", "GEW_OFF_QDISC_PARENT"),
        BtfNeed("Qdisc", "dev_queue", "GEW_OFF_QDISC_DEV_QUEUE"),
        BtfNeed("Qdisc", "ops", "GEW_OFF_QDISC_OPS"),
        BtfNeed("Qdisc", "qstats", "GEW_OFF_QDISC_QSTATS"),
        BtfNeed("Qdisc_ops", "id", "GEW_OFF_QDISC_OPS_ID"),
        BtfNeed("netdev_queue", "dev", "GEW_OFF_NETDEV_QUEUE_DEV"),
    ),
    decoders={K_QDISC_GONE: (HDR.size + GONE.size, decode_gone)},
    depends=("irqctx",),
    self_check=check_qstats_layout,
    maps=lambda config: (MAP,),
    start=_start,
    tick=_tick,
    rescope=_rescope,
)
