"""`gew session apply|list|detach|gc` as a user runs them, on the real kernel plane:
stop by --duration, SIGTERM, Ctrl-C (SIGINT) or `detach`, each leaving nothing behind and
a recording that ends with how it ended; refusals are one line with their exit code."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gewtui.kernel.bpffs import Instance
from gewtui.recording import RecordingReader
from tests.conftest import pinned_map_id, wait_maps_gone

pytestmark = pytest.mark.root
GEW = [sys.executable, "-m", "gewtui.cli.main"]


def _session_maps(inst: Instance) -> set[int]:
    """Ids of the maps the (one) running session of inst pinned."""
    [entry] = inst.sessions()
    assert entry.alive and entry.manifest.pins
    return {pinned_map_id(p) for p in entry.manifest.pins}


def _apply(inst: Instance, netns: str, rec: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(GEW + ["session", "apply", "--instance", inst.instance_id, "--scope", f"netns={netns}",
                                   "--record", rec, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _attached(p: subprocess.Popen, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if " attached (" in line:
            return line.split()[2]
        if not line and p.poll() is not None:
            break
    raise AssertionError(f"session did not attach: {p.stderr.read()}")


def _end(rec: str):
    with RecordingReader(rec) as rd:
        recs = list(rd.records())
        assert rd.report.clean, rd.report.summary()
    return rd.header, recs


def test_duration_status_lines_and_clean_end(netns_pair, gew_instance, tmp_path):
    rec = str(tmp_path / "d.gewrec")
    p = _apply(gew_instance, netns_pair.a, rec, "--duration", "2.5", "--json-status")
    _attached(p)
    maps = _session_maps(gew_instance)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    status = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert len(status) >= 2 and all({"events", "events_per_s", "lost", "recording_bytes"} <= s.keys() for s in status)
    assert "ended (duration)" in err
    header, recs = _end(rec)
    assert header.session.instance_id == gew_instance.instance_id
    assert [e.value for e in header.session.scope.entries] == [netns_pair.a]
    assert header.capabilities.verdict != 0 and header.session.probes
    assert recs[-1].end.how == "duration" and recs[-2].WhichOneof("body") == "stats"
    assert gew_instance.sessions() == []
    assert maps and wait_maps_gone(maps) == set()     # every map of the session is gone


@pytest.mark.parametrize("sig,how", [(signal.SIGTERM, "sigterm"), (signal.SIGINT, "sigint"),
                                     (signal.SIGHUP, "sighup")])
def test_signals_stop_and_clean_up(netns_pair, gew_instance, tmp_path, sig, how):
    rec = str(tmp_path / "s.gewrec")
    p = _apply(gew_instance, netns_pair.a, rec)
    sid = _attached(p)
    [entry] = gew_instance.sessions()
    assert entry.session_id == sid and all(os.path.exists(x) for x in entry.manifest.pins)
    maps = _session_maps(gew_instance)
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert f"ended ({how})" in err
    assert gew_instance.sessions() == [] and not os.path.exists(gew_instance.session_bpffs(sid))
    assert _end(rec)[1][-1].end.how == how
    assert wait_maps_gone(maps) == set()


def test_list_and_detach_a_running_session(netns_pair, gew_instance, tmp_path):
    rec = str(tmp_path / "x.gewrec")
    p = _apply(gew_instance, netns_pair.a, rec)
    try:
        sid = _attached(p)
        r = subprocess.run(GEW + ["session", "list", "--instance", gew_instance.instance_id, "--json"],
                           capture_output=True, text=True)
        [row] = json.loads(r.stdout)["sessions"]
        assert (row["session_id"], row["status"], row["owner_pid"], row["recording"]) == (sid, "alive", p.pid, rec)
        assert row["scope"] == [f"netns={netns_pair.a}"] and row["state"] == "committed"
        r = subprocess.run(GEW + ["session", "detach", sid, "--instance", gew_instance.instance_id],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert f"session {sid} detached" in r.stdout
        p.wait(timeout=10)
        assert gew_instance.sessions() == []
        assert _end(rec)[1][-1].end.how == "sigterm"
    finally:
        p.kill()
        p.wait()


def test_detach_an_orphan_cleans_it_directly(netns_pair, gew_instance, tmp_path):
    p = _apply(gew_instance, netns_pair.a, str(tmp_path / "o.gewrec"))
    sid = _attached(p)
    p.kill()
    p.wait()
    r = subprocess.run(GEW + ["session", "list", "--instance", gew_instance.instance_id],
                       capture_output=True, text=True)
    assert sid in r.stdout and "orphan" in r.stdout
    r = subprocess.run(GEW + ["session", "detach", sid, "--instance", gew_instance.instance_id, "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)["removed"][0]
    assert rep["session_id"] == sid and rep["manifest_removed"] and rep["removed_pins"]
    assert gew_instance.sessions() == []


@pytest.mark.parametrize("argv,code,msg", [
    (["--scope", "netns=gewt-no-such"], 78, "unknown network namespace"),
    (["--scope", "port=0"], 78, "bad scope port"),
    (["--scope", "wat"], 78, "bad scope"),
    (["--duration", "0"], 64, "--duration must be positive"),
    (["--ringbuf-pages", "3"], 64, "power of two"),
])
def test_refusals_are_one_line_and_leave_nothing(gew_instance, argv, code, msg):
    r = subprocess.run(GEW + ["session", "apply", "--instance", gew_instance.instance_id, *argv],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == code and msg in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert gew_instance.sessions() == []


def test_non_root_is_refused_with_77(tmp_path):
    for argv in (["session", "apply"], ["session", "list"], ["session", "gc"], ["lab", "up", "healthy"]):
        r = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", *GEW, *argv],
                           capture_output=True, text=True, cwd="/")
        assert r.returncode == 77, (argv, r.stderr)
        assert "needs root" in r.stderr and r.stderr.count("\n") == 1
