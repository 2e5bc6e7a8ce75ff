"""Recordings and frames a hostile or past session leaves: frames whose lengths lie, a reason
chain nested deeper than protobuf builds, and a recording of a session that had every
override and drops (for replays that must stay inert).
"""
from __future__ import annotations

from gewtui.pb import events_pb2
from gewtui.recording import MAX_RECORD_BYTES
from gewtui.recording.framing import MARKER, encode_varint


HOSTILE_FRAMES = {
    "overlong_varint": MARKER + b"\xff" * 11 + b"\x01" + b"junk" * 4,
    "ten_byte_varint_of_2_to_the_63": MARKER + encode_varint(1 << 63) + b"\x00" * 8,
    "length_just_over_the_cap": MARKER + encode_varint(MAX_RECORD_BYTES + 1) + b"\x00" * 64,
    "length_huge_unterminated": MARKER + b"\xff" * 9,
}


def _nested_reason_chain(depth: int) -> bytes:
    """A Record.intervention whose reason chain nests ReasonNode.children `depth` deep,
    built by hand (protobuf itself refuses to build it)."""
    node = b""
    for _ in range(depth):
        node = b"\x32" + encode_varint(len(node)) + node      # ReasonNode.children (6)
    chain = b"\x1a" + encode_varint(len(node)) + node          # ReasonChain.root (3)
    ir = b"\x52" + encode_varint(len(chain)) + chain           # InterventionRecord.reason_chain (10)
    return b"\x12" + encode_varint(len(ir)) + ir               # Record.intervention (2)


# -- case 13: replay stays inert in the shell, the TUI and export --------------------------
def _intervention_recording(path: str) -> None:
    """A past session that had every override (allow_intervention, allow_risky) and drops:
    one TCP flow and, for it, drops that were active, expired and undone."""
    from gewtui.pb import intervention_pb2 as ipb, recording_pb2
    from gewtui.recording import RecordingWriter

    hdr = recording_pb2.RecordingHeader()
    hdr.session.session_id = "s-past"
    hdr.session.allow_intervention = hdr.session.allow_risky = True
    tup = events_pb2.Tuple(family=2, saddr=bytes([10, 0, 0, 1]), daddr=bytes([10, 0, 0, 2]), sport=40000,
                           dport=80, protocol=6)
    states = [events_pb2.TCP_SYN_SENT, events_pb2.TCP_ESTABLISHED]
    with RecordingWriter(path, hdr) as w:
        for i, st in enumerate(states + [events_pb2.TCP_ESTABLISHED] * 4, start=1):
            ev = events_pb2.Event(id=i, ktime_ns=i * 1_000_000)
            ev.tcp_state.tuple.CopyFrom(tup)
            ev.tcp_state.sock, ev.tcp_state.new_state = 0x1000, st
            ev.tcp_state.old_state = states[0] if i == 2 else (events_pb2.TCP_CLOSE if i == 1 else st)
            w.write_event(ev)
            for outcome in (ipb.ACTIVE, ipb.EFFECTIVE, ipb.EXPIRED):
                w.write(recording_pb2.Record(intervention=ipb.InterventionRecord(
                    intervention_id=10 * i + outcome, flow_id=1, action=ipb.DROP, outcome=outcome,
                    session_id="s-past", interfaces=["gewt-gone/veth0"], tuples=[tup])))
