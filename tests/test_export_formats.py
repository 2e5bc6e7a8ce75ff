"""``gew export`` shapes as people read them: every JSON export names addresses as text and
enums by name and gives kernel times as wall-clock, tables and CSV hold the flows, and bad
combinations are refused with one line. Subprocesses of the installed command, no root."""
from __future__ import annotations

import csv
import io
import json
import re

import pytest

from gewtui.pb import events_pb2, intervention_pb2, recording_pb2
from gewtui.recording import RecordingWriter, open_recording
from tests.support.gew_cli import GOLDEN, LOSSY, gew

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def _rows(r) -> list[dict]:
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


@pytest.mark.parametrize("what", ["events", "flows", "reasons"])
def test_json_exports_are_greppable_for_an_ip_and_a_port(what):
    r = gew("export", str(LOSSY), "--what", what, "--json")
    rows = _rows(r)
    assert rows
    # grep finds the address as typed, and jq finds the port as a number next to it.
    assert "10.77.1.2" in r.stdout and "Ck0BAg==" not in r.stdout
    if what == "events":
        tuples = [row[k]["tuple"] for row in rows for k in row
                  if isinstance(row[k], dict) and "tuple" in row[k]]
        assert {"daddr": "10.77.1.2", "dport": 8080} in [
            {"daddr": t.get("daddr"), "dport": t.get("dport")} for t in tuples]
        assert {t.get("family") for t in tuples} <= {"AF_INET", "AF_INET6"}
        assert "TCP" in {t.get("protocol") for t in tuples}
    elif what == "flows":
        assert any(f["peer_addr"] == "10.77.1.2" and f["peer_port"] == 8080 for f in rows)
        assert all(f["phase"] in ("EMERGED", "EVOLVING", "DIVERGED", "TERMINATED") for f in rows)
        assert all(f["tcp_state"].startswith("TCP_") for f in rows)
    else:
        assert any("10.77.1.2:8080" in row["root"]["text"] for row in rows)
        assert rows[0]["root"]["layer"] == "L3"


def test_json_events_carry_wall_clock_from_the_header_offset():
    with open_recording(LOSSY) as rd:
        h = rd.header
        first = next(iter(rd.iter_events()))
    rows = _rows(gew("export", str(LOSSY), "--json", "--at", str(first.id)))
    assert len(rows) == 1 and rows[0]["ktime_ns"] == first.ktime_ns
    assert ISO.match(rows[0]["ktime_wall"])
    # This older file has no clock_offset_ns: the session's two start times give it.
    off = h.clock_offset_ns or (h.session.started_unix_ns - h.session.started_ktime_ns)
    sec = (first.ktime_ns + off) // 10**9
    import time
    assert rows[0]["ktime_wall"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))


def test_a_new_recording_header_carries_the_clock_offset(tmp_path):
    import time

    p = tmp_path / "new.gewrec"
    before = time.time_ns() - time.monotonic_ns()
    with RecordingWriter(p, recording_pb2.RecordingHeader()) as w:
        w.write_event(events_pb2.Event(id=1, ktime_ns=time.monotonic_ns()))
    after = time.time_ns() - time.monotonic_ns()
    with open_recording(p) as rd:
        off = rd.header.clock_offset_ns
    assert abs(off - before) < 10**9 and abs(off - after) < 10**9


def test_json_interventions_show_the_dropped_tuple_as_text(tmp_path):
    p = tmp_path / "iv.gewrec"
    h = recording_pb2.RecordingHeader(clock_offset_ns=1_700_000_000 * 10**9)
    t = events_pb2.Tuple(family=2, saddr=bytes([10, 0, 0, 1]), daddr=bytes([10, 0, 0, 2]),
                         sport=40000, dport=443, protocol=6)
    rec = intervention_pb2.InterventionRecord(
        intervention_id=1, flow_id=7, action=intervention_pb2.DROP,
        outcome=intervention_pb2.ACTIVE, ktime_ns=5 * 10**9, tuples=[t])
    with RecordingWriter(p, h) as w:
        w.write(recording_pb2.Record(intervention=rec))
    r = gew("export", str(p), "--what", "interventions", "--json")
    rows = _rows(r)
    assert rows == [{"kind": "intervention", "intervention_id": 1, "ktime_ns": 5 * 10**9,
                     "ktime_wall": "2023-11-14T22:13:25.000000000Z", "flow_id": 7,
                     "action": "DROP",
                     "tuples": [{"family": "AF_INET", "saddr": "10.0.0.1", "daddr": "10.0.0.2",
                                 "sport": 40000, "dport": 443, "protocol": "TCP"}],
                     "outcome": "ACTIVE"}]
    assert '"10.0.0.2"' in r.stdout and '"dport":443' in r.stdout


def test_flows_as_csv_and_table():
    r = gew("export", str(LOSSY), "--what", "flows", "--format", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    flows = _rows(gew("export", str(LOSSY), "--what", "flows", "--json"))
    assert [int(row["flow_id"]) for row in rows] == [f["flow_id"] for f in flows]
    one = next(row for row in rows if row["peer_addr"] == "10.77.1.2")
    assert one["peer_port"] == "8080" and one["local_addr"] == "10.77.1.1"
    assert int(one["retransmits"]) > 0 and ISO.match(one["first_wall"])
    table = gew("export", str(LOSSY), "--what", "flows", "--format", "table")
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["FLOW_ID", "PARENT_FLOW_ID", "PHASE"]
    assert len(lines) == len(rows) + 1 and "10.77.1.2" in table.stdout


def test_event_table_has_one_row_per_event():
    r = gew("export", str(LOSSY), "--format", "table")
    n = len(_rows(gew("export", str(LOSSY), "--json")))
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == n + 1
    assert lines[0].split()[:4] == ["ID", "WALL", "CPU", "KIND"]
    assert any("10.77.1.1:" in line and ">10.77.1.2:8080" in line for line in lines)


@pytest.mark.parametrize("args, says", [
    (["--format", "csv"], "--format csv is for --what flows"),
    (["--json", "--format", "table"], "--json is --format jsonl"),
    (["--what", "reasons", "--format", "table"], "reason chains are trees"),
    (["--perfetto", "/nonexistent/x.json", "--what", "flows"], "--perfetto writes a trace"),
])
def test_bad_format_combinations_are_one_line(args, says):
    r = gew("export", str(LOSSY), *args)
    assert r.returncode == 64 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and says in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("name", sorted(p.stem for p in GOLDEN.glob("*.gewrec")))
def test_perfetto_trace_of_a_golden_recording_has_one_track_per_flow(tmp_path, name):
    src = GOLDEN / f"{name}.gewrec"
    out = tmp_path / "trace.json"
    r = gew("export", str(src), "--perfetto", str(out))
    assert r.returncode == 0, r.stderr
    trace = json.loads(out.read_text())["traceEvents"]
    flows = _rows(gew("export", str(src), "--what", "flows", "--json"))
    tracks = {e["tid"]: e["args"]["name"] for e in trace
              if e["ph"] == "M" and e["name"] == "thread_name" and e["tid"] != 0}
    assert sorted(tracks) == sorted(f["flow_id"] for f in flows)
    for f in flows:
        assert tracks[f["flow_id"]] == f"flow {f['flow_id']} {f['key']}"
    # Every event is an instant, once; states are slices on flow tracks; matches are marked.
    events = _rows(gew("export", str(src), "--json"))
    instants = [e for e in trace if e["ph"] == "i" and e["cat"] == "event"]
    assert sorted(e["args"]["id"] for e in instants) == [e["id"] for e in events]
    by_id = {e["id"]: e for e in events}
    assert all(e["ts"] * 1000 == pytest.approx(by_id[e["args"]["id"]].get("ktime_ns", 0))
               for e in instants)
    slices = [e for e in trace if e["ph"] == "X"]
    assert all(e["tid"] in tracks and e["name"].startswith("TCP_") and e["dur"] >= 0
               for e in slices)
    if any(f.get("tcp_state") for f in flows):
        assert slices
    matched = sorted({t for f in flows for t in f.get("templates", [])})
    marks = sorted({e["name"][3:] for e in trace if e.get("cat") == "L2"})
    assert marks == matched
    # The file is private and was created, never an existing one reused.
    assert (out.stat().st_mode & 0o777) == 0o600
    again = gew("export", str(src), "--perfetto", str(out))
    assert again.returncode == 64 and "exists" in again.stderr


def test_perfetto_refuses_to_follow_a_planted_link(tmp_path):
    target = tmp_path / "victim"
    target.write_text("keep me")
    link = tmp_path / "trace.json"
    link.symlink_to(target)
    r = gew("export", str(LOSSY), "--perfetto", str(link))
    assert r.returncode == 64 and target.read_text() == "keep me"
