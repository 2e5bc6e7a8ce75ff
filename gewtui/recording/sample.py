"""Synthetic recordings: plausible L0 events and records without a kernel.

Tests, benchmarks and documentation examples need recordings of a known shape and size
(up to millions of events) quickly and without root. Nothing here pretends to be observed
data: the header's ``writer`` says "sample".
"""
from __future__ import annotations

import os
from typing import Iterator

from gewtui.pb import events_pb2, intervention_pb2, recording_pb2, session_pb2


def sample_header(session_id: str = "sample") -> recording_pb2.RecordingHeader:
    h = recording_pb2.RecordingHeader(writer="gew-tui sample")
    h.session.session_id = session_id
    h.session.instance_id = "sample"
    h.session.started_ktime_ns = 1_000_000_000
    h.drop_reasons[2] = "NOT_SPECIFIED"
    h.reset_reasons[1] = "NOT_SPECIFIED"
    return h


def tcp_state_event(i: int, ev: events_pb2.Event | None = None) -> events_pb2.Event:
    """Event ``i``: a TCP state change of a typical size (~80 bytes serialized).

    Passing ``ev`` back in reuses it (only the changing fields are set), which is what
    makes a million events cheap to produce.
    """
    if ev is None:
        ev = events_pb2.Event(cpu=1)
        a = ev.attr
        a.pid = a.tgid = 4242
        a.comm = "curl"
        a.cgroup_id = 7777
        a.netns = 4026531840
        a.source = events_pb2.ATTRIBUTION_PROCESS_CONTEXT
        t = ev.tcp_state.tuple
        t.family = 2
        t.saddr = bytes((10, 0, 0, 1))
        t.daddr = bytes((10, 0, 0, 2))
        t.dport = 80
        t.protocol = 6
        ev.tcp_state.sock = 0xFFFF888012345678
    ev.id = i
    ev.ktime_ns = 1_000_000_000 + i * 1_000
    st = ev.tcp_state
    st.tuple.sport = 32768 + i % 28000
    st.old_state = events_pb2.TCP_SYN_SENT if i % 2 else events_pb2.TCP_ESTABLISHED
    st.new_state = events_pb2.TCP_ESTABLISHED if i % 2 else events_pb2.TCP_FIN_WAIT1
    return ev


def mixed_records(n: int) -> Iterator[recording_pb2.Record]:
    """``n`` records of every kind: events of several bodies (short and long), an
    intervention, periodic stats and an end record, so framing sees many sizes."""
    for i in range(1, n + 1):
        k = i % 7
        if k == 3:
            r = recording_pb2.Record()
            r.intervention.CopyFrom(intervention_pb2.InterventionRecord(
                intervention_id=i, flow_id=i // 7, action=intervention_pb2.DROP,
                outcome=intervention_pb2.ACTIVE, detail="x" * (i * 53 % 400)))
            yield r
            continue
        if k == 5:
            yield recording_pb2.Record(stats=session_pb2.SessionStats(ktime_ns=i, events=i))
            continue
        if k == 1:
            ev = events_pb2.Event(id=i, ktime_ns=1_000_000_000 + i, cpu=i % 2)
            ev.skb_drop.reason = 2
            ev.skb_drop.reason_name = "NOT_SPECIFIED"
            ev.skb_drop.ifname = "gewt" + "y" * (i * 29 % 200)
        elif k == 6:
            ev = events_pb2.Event(id=i, ktime_ns=1_000_000_000 + i, cpu=i % 2)
            ev.fib.dst = bytes(16)
            ev.fib.err = -101
        else:
            ev = tcp_state_event(i)
        yield recording_pb2.Record(event=ev)
    yield recording_pb2.Record(end=session_pb2.SessionEnd(ktime_ns=n, how="duration"))


def write_sample(path: str | os.PathLike[str], events: int) -> None:
    """A recording of ``events`` TCP state changes, as fast as the writer allows."""
    from gewtui.recording.writer import RecordingWriter

    with RecordingWriter(path, sample_header()) as w:
        ev = tcp_state_event(1)
        write = w.write_event
        for i in range(1, events + 1):
            write(tcp_state_event(i, ev))
