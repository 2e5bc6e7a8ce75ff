"""Ownership: names that cannot escape, liveness by pid + start time, orphan cleanup that
only ever reads our own instance and removes only what a manifest names."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from gewtui.errors import UsageError
from gewtui.kernel.bpffs import (Instance, Manifest, TcFilterRecord, owner_alive, proc_start_time,
                                 validate_name)
from gewtui.securefs import UnsafePath
from tests.conftest import bpf_map_create, bpf_obj_pin, drop_instance

HOSTILE = [".", "..", "/", "a/b", "../x", "x/..", "", " ", "a b", "tab\tx", "nl\nx", "x" * 65,
           "é", "ünïcødé", "日本", "a\x00b", "-/..", "a.b", "~", "$HOME", "*"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_with_one_line(name):
    for what in ("instance", "session"):
        with pytest.raises(UsageError) as ei:
            validate_name(name, what)
        msg = ei.value.message
        assert msg.startswith(f"invalid {what} name") and "\n" not in msg
        assert msg.isascii() and len(msg) < 140


@pytest.mark.parametrize("name", ["default", "A-b_9", "x" * 64, "-", "_", "0"])
def test_plain_names_are_accepted(name):
    assert validate_name(name, "session") == name


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_never_reach_a_path(tmp_path, name):
    with pytest.raises(UsageError):
        Instance(name, bpffs_root=str(tmp_path / "b"), run_root=str(tmp_path / "r"))
    inst = Instance("ok", bpffs_root=str(tmp_path / "b"), run_root=str(tmp_path / "r"))
    for fn in (inst.session_bpffs, inst.session_run, inst.manifest_path):
        with pytest.raises(UsageError):
            fn(name)
    # nothing was created anywhere by the refusals
    assert not (tmp_path / "b").exists() and not (tmp_path / "r").exists()


def test_a_symlinked_session_dir_cannot_lead_outside(tmp_path):
    inst = Instance("ok", bpffs_root=str(tmp_path / "b"), run_root=str(tmp_path / "r"))
    os.makedirs(inst.run_dir + "/sessions")
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", inst.run_dir + "/sessions/evil")
    with pytest.raises(UnsafePath, match="evil: a symbolic link"):
        inst.session_run("evil")


def test_proc_start_time_and_liveness():
    me = os.getpid()
    st = proc_start_time(me)
    assert st and st > 0
    assert owner_alive(me, st)
    assert not owner_alive(me, st + 1)           # same pid, another process start
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert proc_start_time(p.pid) is None         # reaped: no /proc entry
    assert not owner_alive(p.pid, 12345)
    assert not owner_alive(0, 0) and not owner_alive(-1, 0)


def test_proc_start_time_survives_a_comm_with_spaces_and_parens(tmp_path):
    exe = tmp_path / "a b) c"
    os.symlink(sys.executable, exe)
    p = subprocess.Popen([str(exe), "-c", "import time; time.sleep(5)"])
    try:
        deadline = time.monotonic() + 5
        while "a b) c" not in open(f"/proc/{p.pid}/stat").read() and time.monotonic() < deadline:
            time.sleep(0.01)
        st = proc_start_time(p.pid)
        fields = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
        assert st == int(fields[19])
    finally:
        p.kill()
        p.wait()


def _manifest(inst: Instance, sid: str, pid: int, start: int, **kw) -> Manifest:
    m = Manifest(instance_id=inst.instance_id, session_id=sid, owner_pid=pid, owner_start_time=start, **kw)
    inst.write_manifest(m)
    return m


def test_manifest_roundtrip_and_atomic_write(tmp_path):
    inst = Instance("i1", bpffs_root=str(tmp_path / "b"), run_root=str(tmp_path / "r"))
    m = _manifest(inst, "s1", 1, 2, scope=["netns=x"], tc_filters=[
        TcFilterRecord("veth0", "ingress", 5, 6, "gew_x", netns="n", clsact_created=True, prog_id=9)])
    back = inst.read_manifest("s1")
    assert back == m
    assert sorted(os.listdir(inst.session_run("s1"))) == ["manifest.json"]


def test_manifest_naming_another_session_is_not_trusted(tmp_path):
    inst = Instance("i1", bpffs_root=str(tmp_path / "b"), run_root=str(tmp_path / "r"))
    _manifest(inst, "s1", 1, 2)
    os.rename(inst.session_run("s1"), inst.run_dir + "/sessions/s2")
    [entry] = inst.sessions()
    assert entry.session_id == "s2" and entry.manifest is None and "unreadable" in entry.problem


def test_gc_by_liveness_pid_plus_start_time(tmp_path):
    inst = Instance("i1", bpffs_root=str(tmp_path / "b"), run_root=str(tmp_path / "r"))
    me, st = os.getpid(), proc_start_time(os.getpid())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _manifest(inst, "alive", me, st)
    _manifest(inst, "reused-pid", me, st - 1)      # the pid lives, but it is another process
    _manifest(inst, "dead", dead.pid, 1)
    os.makedirs(inst.session_bpffs("nomanifest"))  # a bpffs dir with no manifest beside it
    statuses = {e.session_id: e.status for e in inst.sessions()}
    assert statuses == {"alive": "alive", "reused-pid": "orphan", "dead": "orphan", "nomanifest": "orphan"}
    logged: list[str] = []
    reports = inst.gc(logged.append)
    assert sorted(r.session_id for r in reports) == ["dead", "nomanifest", "reused-pid"]
    assert [e.session_id for e in inst.sessions()] == ["alive"]
    assert any("reused-pid: removed manifest" in line for line in logged)


def test_unreadable_manifest_is_an_orphan_and_says_so(tmp_path):
    inst = Instance("i1", bpffs_root=str(tmp_path / "b"), run_root=str(tmp_path / "r"))
    os.makedirs(inst.session_run("s1"))
    with open(inst.manifest_path("s1"), "w") as f:
        f.write("{not json")
    [rep] = inst.gc()
    assert any("cannot be found" in e for e in rep.errors)
    assert not os.path.exists(inst.session_run("s1"))


@pytest.mark.root
def test_gc_of_one_instance_never_touches_another_or_a_foreign_pin(tmp_path, foreign_pin):
    """Instance A's orphan cleanup on the real bpffs leaves B's live session and a foreign pin."""
    a = Instance("gewt-gc-a")
    b = Instance("gewt-gc-b")
    fds = []
    try:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        for inst, sid, pid, st in ((a, "orphan1", dead.pid, 1),
                                   (b, "live1", os.getpid(), proc_start_time(os.getpid())),
                                   (b, "orphan2", dead.pid, 1)):
            d = inst.session_bpffs(sid)
            os.makedirs(d)
            fd = bpf_map_create(b"gewt_gc")
            fds.append(fd)
            bpf_obj_pin(fd, d + "/m")
            _manifest(inst, sid, pid, st, pins=[d + "/m"])
        reports = a.gc()
        assert [r.session_id for r in reports] == ["orphan1"]
        assert reports[0].removed_pins == [a.session_bpffs("orphan1") + "/m"]
        assert not os.path.exists(a.session_bpffs("orphan1"))
        # B is untouched: its live session AND its orphan (B's own gc will do that one)
        assert os.path.exists(b.session_bpffs("live1") + "/m")
        assert os.path.exists(b.session_bpffs("orphan2") + "/m")
        assert os.path.exists(foreign_pin)
        assert [r.session_id for r in b.gc()] == ["orphan2"]
        assert os.path.exists(b.session_bpffs("live1") + "/m") and os.path.exists(foreign_pin)
    finally:
        for fd in fds:
            os.close(fd)
        for inst in (a, b):
            drop_instance(inst)
