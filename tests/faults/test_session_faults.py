"""Session faults (issue 7 cases 1, 2, 3, 5, 6, 15): killed owners, failures at every
transaction step, two instances, hostile names, a scoped interface vanishing mid-session.

"Nothing lost / nobody let in" here means: after the fault and the next gc (or the next
start), none of our pins, tc filters, clsact qdiscs or manifests remain; every foreign pin,
clsact and tc filter is exactly as before; the recording is readable up to the fault and
says how the session ended.

Session owners run in a subprocess (tests/support/session_planes.py) over a stand-in plane
that creates real kernel objects, so SIGKILL hits a real owner holding real objects.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gewtui.errors import EX_USAGE, GewError, ScopeError
from gewtui.kernel import tc
from gewtui.kernel.bpffs import Instance, proc_start_time
from gewtui.kernel.live import LiveSession
from gewtui.kernel.scope import ScopeEntry, resolve
from gewtui.kernel.session import STEPS, Session
from gewtui.recording import RecordingReader
from tests.conftest import drop_instance, pinned_map_id, tc_filters, tc_qdiscs, wait_maps_gone
from tests.faults.kernel_support import _in_mount_ns
from tests.support.session_planes import Planes, RealObjectsPlane

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
GEW = [sys.executable, "-m", "gewtui.cli.main"]


@pytest.fixture
def foreign_tc(netns_pair, sched_cls_fd):
    """A foreign clsact + cls_bpf filter on b's veth0 (same kind as ours, other prio)."""
    assert tc.ensure_clsact("veth0", netns_pair.b)
    tc.add_bpf_filter("veth0", netns_pair.b, "ingress", sched_cls_fd, 7, 7, "foreign_filter")
    return tc_filters(netns_pair.b, "veth0")


def _owner(instance: str, scope: list[str], ids_file: Path, record: str | None = None,
           fault: str | None = None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "tests.support.session_planes", "--instance", instance, "--ids-file", str(ids_file)]
    for s in scope:
        argv += ["--scope", s]
    if record:
        argv += ["--record", record]
    if fault:
        argv += ["--fault", fault]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_line(stream, needle: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        if needle in line:
            return line
    raise AssertionError(f"never saw {needle!r}")


def _kill(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGKILL)
    p.wait()


def _ids(ids_file: Path) -> set[int]:
    """Kernel ids of the objects a subprocess owner created (tests/support/session_planes.py)."""
    return {int(x) for x in ids_file.read_text().split()} if ids_file.exists() else set()


def _assert_clean(inst: Instance, pair, foreign_before: str, foreign_pin: str, ids: set[int]) -> None:
    assert not os.path.exists(os.path.join(inst.bpffs_dir, "sessions")) or \
        os.listdir(os.path.join(inst.bpffs_dir, "sessions")) == [], "pins left"
    assert inst.sessions() == [], "manifest left"
    assert tc_filters(pair.a, "veth0") == "ingress:\negress:\n", "our filter left on a"
    assert "clsact" not in tc_qdiscs(pair.a, "veth0"), "the clsact we created on a was left"
    assert tc_filters(pair.b, "veth0") == foreign_before, "foreign filter on b changed"
    assert "clsact" in tc_qdiscs(pair.b, "veth0"), "foreign clsact on b removed"
    assert os.path.exists(foreign_pin), "foreign pin removed"
    assert wait_maps_gone(ids) == set(), "a program or map of the session is still loaded"


def _bpffs_top() -> list[str]:
    """The top of bpffs, less other tests' foreign pins (gewt-*) appearing meanwhile."""
    return sorted(n for n in os.listdir("/sys/fs/bpf") if not n.startswith("gewt-"))


def _gc(inst: Instance) -> subprocess.CompletedProcess:
    return subprocess.run(GEW + ["session", "gc", "--instance", inst.instance_id], capture_output=True, text=True)


# -- case 1: SIGKILL while observing, then gc / the next start ----------------------------------
@pytest.mark.parametrize("cleaner", ["gc", "next-start"])
def test_sigkill_while_observing_then_cleanup(netns_pair, gew_instance, foreign_pin, foreign_tc, tmp_path, cleaner):
    rec = str(tmp_path / "s.gewrec")
    ids = tmp_path / "ids"
    p = _owner(gew_instance.instance_id, [f"netns={netns_pair.a}", f"netns={netns_pair.b}"], ids, record=rec)
    sid = _wait_line(p.stdout, "ready").split()[1]
    time.sleep(1.3)                                   # a heartbeat and a recording flush
    m = gew_instance.read_manifest(sid)
    assert m.state == "committed" and len(m.tc_filters) == 2 and len(m.pins) == 1
    assert [f.clsact_created for f in m.tc_filters] == [True, False]   # a: ours; b: foreign clsact
    _kill(p)
    assert os.path.exists(m.pins[0]) and "gewt_obs" in tc_filters(netns_pair.a, "veth0")  # the kill left it
    if cleaner == "gc":
        r = _gc(gew_instance)
        assert r.returncode == 0, r.stderr
        assert f"session {sid}:" in r.stdout and "removed tc filter" in r.stdout and "removed pin" in r.stdout
        assert "removed clsact qdisc" in r.stdout and "removed manifest" in r.stdout
    else:
        with LiveSession([f"netns={netns_pair.a}"], instance=gew_instance.instance_id,
                         plane_factory=RealObjectsPlane) as live:
            assert [r.session_id for r in live.gc_reports] == [sid]
            assert gew_instance.read_manifest(live.session_id).state == "committed"
    assert len(_ids(ids)) == 2
    _assert_clean(gew_instance, netns_pair, foreign_tc, foreign_pin, _ids(ids))
    # the recording is readable up to the kill and says the session ended without cleanup
    with RecordingReader(rec) as rd:
        assert rd.header.session.session_id == sid
        recs = list(rd.records())
    events = [r.event for r in recs if r.WhichOneof("body") == "event"]
    assert events[0].mark.kind == "started" and len(events) >= 3
    ended = [e for e in events if e.mark.kind == "ended-without-cleanup"]
    assert len(ended) == 1 and ended[0].mark.unknown_to_ns > ended[0].mark.unknown_from_ns > 0
    assert recs[-1].WhichOneof("body") == "end" and recs[-1].end.how == "gc-after-kill"
    assert not recs[-1].end.stats.observation_complete


@pytest.mark.parametrize("cleaner", ["gc", "next-start"])
def test_sigkill_of_gew_session_apply_then_cleanup(netns_pair, gew_instance, foreign_pin, foreign_tc, tmp_path,
                                                   cleaner):
    """The real command on the real kernel plane, killed mid-session."""
    rec = str(tmp_path / "k.gewrec")
    bpffs_before = _bpffs_top()
    p = subprocess.Popen(GEW + ["session", "apply", "--instance", gew_instance.instance_id,
                                "--scope", f"netns={netns_pair.a}", "--scope", f"netns={netns_pair.b}",
                                "--record", rec], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sid = _wait_line(p.stderr, " attached (", timeout=60).split()[2]
    _wait_line(p.stderr, "events", timeout=10)          # a status line: it is observing
    [entry] = gew_instance.sessions()
    maps = {pinned_map_id(x) for x in entry.manifest.pins}
    _kill(p)
    [entry] = gew_instance.sessions()
    assert entry.status == "orphan" and all(os.path.exists(x) for x in entry.manifest.pins)
    if cleaner == "gc":
        r = _gc(gew_instance)
        assert r.returncode == 0 and f"session {sid}:" in r.stdout and "removed pin" in r.stdout, r.stdout + r.stderr
    else:
        r = subprocess.run(GEW + ["session", "apply", "--instance", gew_instance.instance_id,
                                  "--scope", f"netns={netns_pair.a}", "--record", str(tmp_path / "n.gewrec"),
                                  "--duration", "0.5"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert f"session {sid}: removed manifest" in r.stderr
    assert gew_instance.sessions() == []
    assert wait_maps_gone(maps) == set(), "a map of the killed session is still loaded"
    assert _bpffs_top() == bpffs_before
    assert not os.path.exists(gew_instance.session_bpffs(sid))
    assert os.path.exists(foreign_pin) and tc_filters(netns_pair.b, "veth0") == foreign_tc
    assert tc_filters(netns_pair.a, "veth0") == "ingress:\negress:\n"
    with RecordingReader(rec) as rd:
        recs = list(rd.records())
    marks = [r.event.mark for r in recs if r.WhichOneof("body") == "event" and r.event.WhichOneof("body") == "mark"]
    assert marks[0].kind == "started" and marks[-1].kind == "ended-without-cleanup"
    assert recs[-1].end.how == "gc-after-kill"


# -- case 2: kill at every transaction step ------------------------------------------------------
@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_every_transaction_step(netns_pair, gew_instance, foreign_pin, foreign_tc, step, tmp_path):
    ids = tmp_path / "ids"
    p = _owner(gew_instance.instance_id, [f"netns={netns_pair.a}", f"netns={netns_pair.b}"], ids, fault=f"{step}:hang")
    _wait_line(p.stderr, f"test fault: waiting after {step}")
    [entry] = gew_instance.sessions()
    assert entry.alive and entry.manifest is not None
    _kill(p)
    [entry] = gew_instance.sessions()
    assert not entry.alive
    r = _gc(gew_instance)
    assert r.returncode == 0, r.stdout + r.stderr
    _assert_clean(gew_instance, netns_pair, foreign_tc, foreign_pin, _ids(ids))


@pytest.mark.parametrize("step", STEPS)
def test_sigterm_at_every_transaction_step_rolls_back_by_itself(netns_pair, gew_instance, foreign_pin, foreign_tc,
                                                                step, tmp_path):
    ids = tmp_path / "ids"
    p = _owner(gew_instance.instance_id, [f"netns={netns_pair.a}", f"netns={netns_pair.b}"], ids, fault=f"{step}:hang")
    _wait_line(p.stderr, f"test fault: waiting after {step}")
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)
    _assert_clean(gew_instance, netns_pair, foreign_tc, foreign_pin, _ids(ids))   # no gc needed


# -- case 3: injected attach failures -----------------------------------------------------------
FAILURES = [
    ("verify", GewError("bpf: verifier rejected gewt_obs: R1 invalid mem access")),
    ("attach", PermissionError(1, "Operation not permitted")),
    ("attach", OSError(28, "No space left on device")),
    ("commit", OSError(28, "No space left on device")),
]


@pytest.mark.parametrize("step,exc", FAILURES, ids=[f"{s}-{type(e).__name__}-{i}" for i, (s, e) in enumerate(FAILURES)])
def test_injected_kernel_failures_leave_nothing(netns_pair, gew_instance, foreign_pin, foreign_tc, step, exc):
    scope = resolve([ScopeEntry("netns", netns_pair.a), ScopeEntry("netns", netns_pair.b)])
    planes = Planes(fail_at=step, fail_with=exc)
    s = Session(scope, planes, instance=gew_instance)
    with pytest.raises((GewError, OSError)) as ei:
        s.open()
    assert "rolled back" in str(ei.value)
    assert planes.ids
    _assert_clean(gew_instance, netns_pair, foreign_tc, foreign_pin, planes.ids)


def test_missing_device_at_attach_refuses_and_leaves_nothing(netns_pair, gew_instance, foreign_pin, foreign_tc):
    scope = resolve([ScopeEntry("netns", netns_pair.a), ScopeEntry("netns", netns_pair.b)])

    class DeviceGoes(RealObjectsPlane):
        def attach(self):
            subprocess.run(["ip", "-n", netns_pair.a, "link", "add", "vethgone", "type", "veth", "peer",
                            "name", "vethgone1"], check=True)
            self.ctx.scope.interfaces.append(type(self.ctx.scope.interfaces[0])(netns_pair.a, 0, "vethgone", 999))
            subprocess.run(["ip", "-n", netns_pair.a, "link", "del", "vethgone"], check=True)
            super().attach()

    planes = Planes(DeviceGoes)
    with pytest.raises(ScopeError, match="incomplete observation forbids attaching: .*vethgone"):
        Session(scope, planes, instance=gew_instance).open()
    _assert_clean(gew_instance, netns_pair, foreign_tc, foreign_pin, planes.ids)


# -- case 5: two instances at once --------------------------------------------------------------
def test_two_instances_gc_and_start_never_touch_the_other_live_session(netns_pair, gew_instance, foreign_pin,
                                                                        tmp_path):
    other = Instance(gew_instance.instance_id + "b")
    p = _owner(other.instance_id, [f"netns={netns_pair.a}"], tmp_path / "ids")
    try:
        sid = _wait_line(p.stdout, "ready").split()[1]
        m = other.read_manifest(sid)
        before = (tc_filters(netns_pair.a, "veth0"), sorted(os.listdir(other.session_bpffs(sid))))
        assert _gc(gew_instance).stdout.startswith("no orphan sessions")
        with LiveSession([f"netns={netns_pair.b}"], instance=gew_instance.instance_id,
                         plane_factory=RealObjectsPlane) as live:
            assert live.gc_reports == []
        assert (tc_filters(netns_pair.a, "veth0"), sorted(os.listdir(other.session_bpffs(sid)))) == before
        # its own gc leaves it too: the owner is alive (pid and start time match)
        assert _gc(other).stdout.startswith("no orphan sessions")
        assert other.read_manifest(sid).owner_pid == p.pid
        # the same pid with another start time is an orphan (a reused pid is not the owner)
        m.owner_start_time = (proc_start_time(p.pid) or 0) + 1
        m.session_id, m.pins, m.tc_filters = "forged", [], []
        other.write_manifest(m)
        r = _gc(other)
        assert "session forged:" in r.stdout and f"session {sid}:" not in r.stdout
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)
    finally:
        p.kill()
        p.wait()
        drop_instance(other)
    assert tc_filters(netns_pair.a, "veth0") == "ingress:\negress:\n"


# -- case 6: hostile names through the command line ---------------------------------------------
@pytest.mark.parametrize("argv", [
    ["session", "list", "--instance", "../x"],
    ["session", "gc", "--instance", "."],
    ["session", "apply", "--instance", "a/b", "--duration", "1"],
    ["session", "list", "--instance", "x" * 65],
    ["session", "list", "--instance", "ünï"],
    ["session", "detach", "../../etc"],
    ["session", "detach", ".."],
])
def test_hostile_names_from_the_command_line_are_refused(argv):
    before = sorted(os.listdir("/run/gewyvern")) if os.path.isdir("/run/gewyvern") else []
    r = subprocess.run(GEW + argv, capture_output=True, text=True)
    assert r.returncode == EX_USAGE, r.stderr
    assert r.stderr.startswith("gew: invalid ") and r.stderr.count("\n") == 1
    assert (sorted(os.listdir("/run/gewyvern")) if os.path.isdir("/run/gewyvern") else []) == before


# -- case 7: bpffs / tracefs not mounted, or remounted between runs -----------------------------
# Run in a private mount namespace (unshare -m, tests/faults/kernel_support.py), so the host's
# mounts are never touched.
def _host_mounts() -> list[str]:
    return sorted(line for line in open("/proc/self/mounts") if " bpf " in line or " tracefs " in line)


def test_bpffs_and_tracefs_not_mounted_are_mounted(netns_pair, gew_instance, tmp_path):
    host = _host_mounts()
    rec = tmp_path / "m.gewrec"
    gew = " ".join(GEW)
    r = _in_mount_ns(f"""
        umount /sys/fs/bpf; umount /sys/kernel/tracing
        ! grep -qE ' (bpf|tracefs) ' /proc/self/mounts
        {gew} session apply --instance {gew_instance.instance_id} --scope netns={netns_pair.a} \
            --duration 1 --record {rec}
        grep -q ' /sys/fs/bpf bpf ' /proc/self/mounts && grep -q ' tracefs ' /proc/self/mounts
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "observation complete" in r.stderr
    assert _host_mounts() == host
    assert gew_instance.sessions() == []
    with RecordingReader(str(rec)) as rd:
        assert list(rd.records())[-1].end.how == "duration"


def test_bpffs_remounted_between_runs(netns_pair, gew_instance, tmp_path):
    """Killed owner, then bpffs replaced (its pins gone): gc removes the manifest without
    error, and the next session of the instance attaches normally (nothing doubled)."""
    gew = " ".join(GEW)
    inst, ns = gew_instance.instance_id, netns_pair.a
    r = _in_mount_ns(f"""
        umount /sys/fs/bpf; mount -t bpf bpf /sys/fs/bpf
        {gew} session apply --instance {inst} --scope netns={ns} --record {tmp_path}/a.gewrec 2> {tmp_path}/a.err &
        pid=$!
        for i in $(seq 300); do grep -q ' attached (' {tmp_path}/a.err && break; sleep 0.1; done
        ls /sys/fs/bpf/gewyvern/instances/{inst}/sessions/*/gew_rb
        kill -9 $pid; wait $pid || true
        umount /sys/fs/bpf; mount -t bpf bpf /sys/fs/bpf
        {gew} session list --instance {inst} | grep -q orphan
        {gew} session gc --instance {inst}
        {gew} session apply --instance {inst} --scope netns={ns} --duration 1 --record {tmp_path}/b.gewrec
        {gew} session list --instance {inst}
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "removed manifest" in r.stdout and "removed pin" not in r.stdout and "error" not in r.stdout
    assert r.stdout.rstrip().endswith(f"no sessions in instance {inst}")
    assert "observation complete" in r.stderr
    assert gew_instance.sessions() == []


# -- case 15: a scoped interface disappears mid-session -----------------------------------------
def test_scoped_interface_vanishing_is_recorded_and_the_session_keeps_running(netns_pair, gew_instance, tmp_path):
    rec = str(tmp_path / "s.gewrec")
    subprocess.run(["ip", "-n", netns_pair.a, "link", "add", "gewtx0", "type", "veth", "peer", "name", "gewtx1"],
                   check=True)
    with LiveSession([f"netns={netns_pair.a}"], record=rec, instance=gew_instance.instance_id,
                     plane_factory=RealObjectsPlane) as live:
        assert live.stats.complete
        subprocess.run(["ip", "-n", netns_pair.a, "link", "del", "gewtx0"], check=True)
        changes = []
        deadline = time.monotonic() + 5
        while len(changes) < 2 and time.monotonic() < deadline:
            changes += [e for e in live.poll(50) if e.WhichOneof("body") == "scope_change"]
        assert sorted(c.scope_change.iface for c in changes) == ["gewtx0", "gewtx1"]
        assert all(c.scope_change.what == "iface-removed" and not c.scope_change.observation_complete
                   for c in changes)
        st = live.stats
        assert not st.complete and "gewtx0 disappeared" in st.incomplete_reason
        n = st.events
        for _ in range(5):
            live.poll(20)
        assert live.stats.events > n                  # still observing
    with RecordingReader(rec) as rd:
        recs = list(rd.records())
    assert sum(1 for r in recs if r.WhichOneof("body") == "event" and r.event.WhichOneof("body") == "scope_change") == 2
    end = recs[-1].end
    assert end.how == "stopped" and not end.stats.observation_complete
    assert "gewtx0 disappeared" in end.stats.incomplete_reason
