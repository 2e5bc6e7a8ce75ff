"""The committed gewtui/pb code must be exactly what proto/ generates."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_matches_schema():
    r = subprocess.run([sys.executable, str(ROOT / "proto" / "gen_proto.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_generated_code_imports_and_roundtrips():
    from gewtui.pb import events_pb2, recording_pb2

    ev = events_pb2.Event(id=7, ktime_ns=123)
    ev.tcp_state.new_state = events_pb2.TCP_SYN_SENT
    rec = recording_pb2.Record(event=ev)
    back = recording_pb2.Record.FromString(rec.SerializeToString())
    assert back.event.WhichOneof("body") == "tcp_state"
    assert back.event.tcp_state.new_state == events_pb2.TCP_SYN_SENT
