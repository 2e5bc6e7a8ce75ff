"""``gew export`` as users run it: a subprocess of the installed command, no root needed."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from gewtui.pb import events_pb2, intervention_pb2, recording_pb2
from gewtui.recording import RecordingWriter
from gewtui.recording.sample import mixed_records, sample_header, tcp_state_event, write_sample
from tests.support.gew_cli import GEW, gew

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[Path, list[recording_pb2.Record]]:
    path = tmp_path_factory.mktemp("export") / "mixed.gewrec"
    recs = list(mixed_records(300))
    with RecordingWriter(path, sample_header()) as w:
        for r in recs:
            w.write(r)
    return path, recs


def _events(recs):
    return [r.event for r in recs if r.HasField("event")]


def test_json_lines_parse_and_carry_every_event(mixed):
    path, recs = mixed
    r = gew("export", str(path), "--json")
    assert r.returncode == 0 and r.stderr == ""
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    want = _events(recs)
    assert [row["kind"] for row in rows] == ["event"] * len(want)
    assert [int(row["id"]) for row in rows] == [e.id for e in want]
    first_tcp = next(row for row in rows if "tcp_state" in row)
    assert first_tcp["tcp_state"]["new_state"].startswith("TCP_")
    assert first_tcp["attr"]["comm"] == "curl"


def test_text_is_one_readable_line_per_event(mixed):
    path, recs = mixed
    r = gew("export", str(path))
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    want = _events(recs)
    assert len(lines) == len(want)
    tcp = next(line for line, e in zip(lines, want) if e.HasField("tcp_state"))
    assert "tcp_state" in tcp and "10.0.0.1:" in tcp and ">10.0.0.2:80" in tcp
    assert "[curl 4242/4242 process]" in tcp
    fib = next(line for line, e in zip(lines, want) if e.HasField("fib"))
    assert "err=-101" in fib and "dst=::" in fib


def test_at_stops_after_that_event(mixed):
    path, recs = mixed
    ids = [e.id for e in _events(recs)]
    at = ids[40]
    r = gew("export", str(path), "--json", "--at", str(at))
    assert r.returncode == 0
    assert [int(json.loads(line)["id"]) for line in r.stdout.splitlines()] == ids[:41]


def test_interventions_only(mixed):
    path, recs = mixed
    want = [r.intervention for r in recs if r.HasField("intervention")]
    r = gew("export", str(path), "--what", "interventions", "--json")
    assert r.returncode == 0
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["kind"] for row in rows] == ["intervention"] * len(want)
    assert [int(row["intervention_id"]) for row in rows] == [w.intervention_id for w in want]
    text = gew("export", str(path), "--what", "interventions").stdout.splitlines()
    assert len(text) == len(want) and text[0].startswith(f"intervention {want[0].intervention_id} DROP ACTIVE")


@pytest.mark.parametrize("what", ["flows", "reasons"])
def test_flows_and_reasons_come_from_the_observation_plane(mixed, what):
    path, _ = mixed
    r = gew("export", str(path), "--what", what, "--json")
    if importlib.util.find_spec("gewtui.model.engine") is None:
        assert r.returncode != 0 and "Traceback" not in r.stderr
        assert r.stderr.strip() == (f"gew: export --what {what} needs the observation plane "
                                    "(gewtui.model), not in this build")
    else:
        assert r.returncode == 0, r.stderr
        kind = {"flows": "flow", "reasons": "reason"}[what]
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        assert all(row["kind"] == kind for row in rows)
        if what == "flows":
            assert rows, "the sample's TCP events make at least one flow"


def test_not_a_recording_exits_65_with_one_line(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("just some text\n" * 10)
    r = gew("export", str(p))
    assert r.returncode == 65
    assert r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and "not a gew recording" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_file_exits_66(tmp_path):
    r = gew("export", str(tmp_path / "nope.gewrec"))
    assert r.returncode == 66
    assert r.stderr.strip() == f"gew: {tmp_path / 'nope.gewrec'}: no such file"


def test_torn_tail_warns_and_exits_0(tmp_path):
    from gewtui.recording import open_recording

    path = tmp_path / "torn.gewrec"
    write_sample(path, 50)
    data = path.read_bytes()
    with open_recording(path) as rd:
        last_start = [off for off, _ in rd.frames()][-1]
    cut = len(data) - 37                      # inside the last (~92-byte) frame
    assert cut > last_start
    path.write_bytes(data[:cut])
    r = gew("export", str(path))
    assert r.returncode == 0
    assert len(r.stdout.splitlines()) == 49
    assert r.stderr.splitlines() == [
        f"gew: warning: {path}: torn tail, {cut - last_start} bytes ignored"]


def test_skipped_damage_prints_what_survived_then_exits_65(tmp_path):
    path = tmp_path / "dmg.gewrec"
    write_sample(path, 50)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20
    path.write_bytes(data)
    r = gew("export", str(path), "--json")
    assert r.returncode == 65
    assert len(r.stdout.splitlines()) == 49
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "1 damaged record(s) skipped" in err[0] and "incomplete" in err[0]


def test_broken_pipe_is_quiet(tmp_path):
    path = tmp_path / "many.gewrec"
    write_sample(path, 20000)
    p = subprocess.Popen([GEW, "export", str(path), "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    first = p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=60) == 0
    assert json.loads(first)["kind"] == "event"
    assert err == b""


@pytest.mark.root
def test_export_runs_as_an_unprivileged_user():
    if os.geteuid() != 0:
        pytest.skip("needs root: switches to nobody to prove export does not need root")
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to drop to nobody")
    d = tempfile.mkdtemp(prefix="gewt-export-")
    try:
        os.chmod(d, 0o755)
        path = os.path.join(d, "r.gewrec")
        with RecordingWriter(path, sample_header()) as w:
            w.write_event(tcp_state_event(1))
            w.write(recording_pb2.Record(intervention=intervention_pb2.InterventionRecord(
                intervention_id=1, action=intervention_pb2.DROP)))
        os.chmod(path, 0o644)
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            GEW, "export", path, "--json"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout.splitlines()[0])["id"] == 1
    finally:
        shutil.rmtree(d)


def test_export_of_an_event_with_every_body_kind(tmp_path):
    """Every oneof body renders in both forms (the text renderer is generic over fields); a
    lifecycle is the capture's, expanded by every reader (tests/test_lifecycle_wire.py)."""
    from gewtui.model.schema import CAPTURE_ONLY

    path = tmp_path / "kinds.gewrec"
    bodies = [fd for fd in events_pb2.Event.DESCRIPTOR.oneofs_by_name["body"].fields if fd.name not in CAPTURE_ONLY]
    with RecordingWriter(path, sample_header()) as w:
        for i, fd in enumerate(bodies, 1):
            ev = events_pb2.Event(id=i)
            getattr(ev, fd.name).SetInParent()
            w.write_event(ev)
    text = gew("export", str(path))
    js = gew("export", str(path), "--json")
    assert text.returncode == 0 and js.returncode == 0
    assert [line.split()[3] for line in text.stdout.splitlines()] == [fd.name for fd in bodies]
    assert [fd.name in json.loads(line) for line, fd in
            zip(js.stdout.splitlines(), bodies)] == [True] * len(bodies)


def test_filter_keeps_only_matching_flows(mixed):
    path, _ = mixed
    if importlib.util.find_spec("gewtui.model.engine") is None:
        pytest.skip("needs the observation plane (gewtui.model.engine), not in this build")
    every = gew("export", str(path), "--what", "flows", "--json")
    kept = gew("export", str(path), "--what", "flows", "--json", "--filter", "dport 80")
    none = gew("export", str(path), "--what", "reasons", "--json", "--filter", "dport 81")
    assert every.returncode == kept.returncode == none.returncode == 0
    rows = [json.loads(line) for line in kept.stdout.splitlines()]
    assert rows and all(row["peer_port"] == 80 for row in rows)
    assert len(rows) <= len(every.stdout.splitlines())
    assert none.stdout == ""


def test_out_writes_the_kept_part_as_a_recording(mixed, tmp_path):
    from gewtui.recording import open_recording

    if importlib.util.find_spec("gewtui.debugger.export") is None:
        pytest.skip("needs the debugger (gewtui.debugger.export), not in this build")
    path, recs = mixed
    out = tmp_path / "cut.gewrec"
    r = gew("export", str(path), "--filter", "dport 80", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"wrote {out}:")
    with open_recording(out) as rd:
        ids = [e.id for e in rd.iter_events()]
        assert rd.report.clean
        assert rd.header.session.session_id == "sample"
    assert ids and set(ids) <= {e.id for e in _events(recs)}


def test_filter_with_events_is_a_usage_error(mixed):
    path, _ = mixed
    r = gew("export", str(path), "--filter", "dport 80")
    assert r.returncode == 64 and len(r.stderr.splitlines()) == 1
