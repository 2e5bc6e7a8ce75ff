"""Session lifecycle faults on the real kernel plane, driven through `gew session apply` (and
`LiveSession` where the process must live on): issue 7 cases 1, 2, 3, 5, 6, 7, 9 and 15.
The case map is tests/faults/README.md.

"Nothing lost / nobody let in" here means: after a kill, a failure, a remount or a hostile
directory, and the next gc or start, no program, map, pin, manifest or tc object of ours is
left and every foreign one is as it was; the recording says how the session ended, holds
every event it had flushed and stays readable; another instance's live session goes on.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from gewtui.kernel.bpffs import Instance
from gewtui.pb import events_pb2
from gewtui.recording import RecordingReader
from tests.faults.kernel_support import (GEW, ROOT, _in_mount_ns, apply_session, attached, bpffs_tree, ended,
                                         events_of, gone_after, held_bpf_objects, obj_id, read_records,
                                         refused_connects, stopped_safe, wait_stderr)

pytestmark = pytest.mark.root


# -- case 1: SIGKILL while observing, then the next start ----------------------------------

def _all_tc(pair) -> dict[str, str]:
    from tests.conftest import tc_filters, tc_qdiscs

    return {ns: tc_filters(ns, "veth0") + tc_qdiscs(ns, "veth0") for ns in (pair.a, pair.b)}



def test_case01_sigkill_while_observing_then_next_start_restores_the_baseline(netns_pair, gew_instance,
                                                                              foreign_pin, sched_cls_fd, tmp_path):
    from gewtui.kernel import tc

    pair = netns_pair
    assert tc.ensure_clsact("veth0", pair.b)
    tc.add_bpf_filter("veth0", pair.b, "ingress", sched_cls_fd, 7, 7, "gewt_foreign")
    tc_before, bpffs_before = _all_tc(pair), bpffs_tree(gew_instance, foreign_pin)
    rec = str(tmp_path / "killed.gewrec")
    p = apply_session(gew_instance, [f"netns={pair.a}", f"netns={pair.b}"], rec)
    with stopped_safe(p):
        sid = attached(p)
        [entry] = gew_instance.sessions()
        maps = {obj_id(x) for x in entry.manifest.pins}
        progs, _ = held_bpf_objects(p.pid)
        assert refused_connects(pair.a, 25) == 25
        time.sleep(2.2)                               # two heartbeats and recording flushes
        t_kill = time.monotonic_ns()
        p.kill()
        p.wait(10)
    assert gone_after(progs, set()) == (set(), set()), "a program outlived its owner"
    assert os.path.isdir(gew_instance.session_bpffs(sid)), "the kill left the pins (orphan cleanup removes them)"
    # the next start cleans the orphan first, and says so
    r = subprocess.run(GEW + ["session", "apply", "--instance", gew_instance.instance_id, "--scope",
                              f"netns={pair.a}", "--duration", "0.5", "--record", str(tmp_path / "next.gewrec")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and f"session {sid}: removed manifest" in r.stderr, r.stderr
    assert gew_instance.sessions() == []
    assert gone_after(set(), maps) == (set(), set()), "a map of the killed session is still loaded"
    assert _all_tc(pair) == tc_before, "tc filter show differs from the pre-session baseline"
    assert bpffs_tree(gew_instance, foreign_pin) == bpffs_before, "the bpffs listing differs from the pre-session baseline"
    # the recording: readable up to the kill, then the mark with the unknown-loss window
    recs = read_records(rec)
    events = events_of(recs)
    syn = [e for e in events if e.WhichOneof("body") == "tcp_state" and e.tcp_state.tuple.dport == 9
           and e.tcp_state.new_state == events_pb2.TCP_SYN_SENT]
    assert len(syn) == 25, "events flushed before the kill are missing"
    numbered = [e.id for e in events if e.id]
    assert numbered == list(range(1, len(numbered) + 1))
    ended = [e.mark for e in events if e.WhichOneof("body") == "mark" and e.mark.kind == "ended-without-cleanup"]
    assert len(ended) == 1
    started = next(e for e in events if e.WhichOneof("body") == "mark" and e.mark.kind == "started")
    w = ended[0]
    assert started.ktime_ns < w.unknown_from_ns <= t_kill < w.unknown_to_ns, (started.ktime_ns, w, t_kill)
    assert t_kill - w.unknown_from_ns < 2_000_000_000     # the last heartbeat: at most about a second old
    assert recs[-1].end.how == "gc-after-kill" and not recs[-1].end.stats.observation_complete


# -- case 2: the real command killed at every transaction step -----------------------------

@pytest.mark.parametrize("step", ["create", "stage", "verify", "attach", "commit"])
def test_case02_sigkill_of_gew_session_apply_at_every_transaction_step(lo_ns, gew_instance, foreign_pin, tmp_path,
                                                                      step):
    from gewtui.kernel.session import FAULT_ENV

    rec = str(tmp_path / "t.gewrec")
    p = apply_session(gew_instance, [f"netns={lo_ns}"], rec, env={FAULT_ENV: f"{step}:hang"})
    with stopped_safe(p):
        wait_stderr(p, f"test fault: waiting after {step}")
        progs, maps = held_bpf_objects(p.pid)
        [entry] = gew_instance.sessions()
        m = entry.manifest
        expected_state = {"create": "creating", "stage": "staged", "verify": "verified", "attach": "attached",
                          "commit": "committed"}[step]
        assert entry.alive and m.state == expected_state
        # bcc creates the maps when it compiles (stage) and loads the programs at verify
        assert bool(maps) == (step != "create") and bool(progs) == (step in ("verify", "attach", "commit"))
        assert bool(m.maps) == bool(maps)
        p.kill()
        p.wait(10)
    # whole or nothing: every map pinned (commit), or no pin at all
    sdir = gew_instance.session_bpffs(m.session_id)
    pins = sorted(os.listdir(sdir)) if os.path.isdir(sdir) else []
    if step == "commit":
        assert pins == sorted(m.maps) and {obj_id(x) for x in m.pins} <= maps
    else:
        assert pins == []
    assert gone_after(progs, set()) == (set(), set()), "a program outlived its owner"
    [entry] = gew_instance.sessions()
    assert entry.status == "orphan"
    r = subprocess.run(GEW + ["session", "gc", "--instance", gew_instance.instance_id], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and f"session {m.session_id}:" in r.stdout, r.stdout + r.stderr
    assert gew_instance.sessions() == [] and not os.path.exists(sdir)
    assert gone_after(progs, maps) == (set(), set()), "a program or map of the killed session is still loaded"
    assert os.path.exists(foreign_pin)


# -- case 3: kernel refusals on the real plane, in a process that lives on -------------------
# The stand-in plane of tests/faults/test_session_faults.py injects verifier rejection,
# EPERM, ENOSPC and a missing device at each step; here the real bcc plane fails inside this
# test's own process, which keeps running: every program and map fd it opened must be closed
# by the rollback (a process exit would hide a leak).
@pytest.mark.parametrize("failure", ["verify", "attach", "commit", "ring-buffer-too-large"])
def test_case03_real_plane_failure_rolls_back_everything_in_a_living_process(lo_ns, gew_instance, foreign_pin,
                                                                             tmp_path, failure):
    from gewtui.errors import GewError
    from gewtui.kernel.live import LiveSession

    held_before = held_bpf_objects(os.getpid())
    tree_before = bpffs_tree(gew_instance, foreign_pin)
    kw = {"ringbuf_pages": 1 << 20} if failure == "ring-buffer-too-large" else {"fault": failure}
    live = LiveSession([f"netns={lo_ns}"], record=str(tmp_path / "r.gewrec"), instance=gew_instance.instance_id,
                       **kw)
    with pytest.raises(GewError) as ei:
        with live:
            pass
    msg = ei.value.message
    assert "\n" not in msg and "rolled back" in msg, msg
    if failure == "ring-buffer-too-large":
        assert "stage failed" in msg
    else:
        assert f"{failure} failed" in msg and "injected fault" in msg
    assert held_bpf_objects(os.getpid()) == held_before, "the rollback left a program or map fd open"
    assert gew_instance.sessions() == [] and bpffs_tree(gew_instance, foreign_pin) == tree_before
    assert not (tmp_path / "r.gewrec").exists()
    assert os.path.exists(foreign_pin)
    if failure == "ring-buffer-too-large":           # the command line refuses it in one line
        r = subprocess.run(GEW + ["session", "apply", "--instance", gew_instance.instance_id, "--scope",
                                  f"netns={lo_ns}", "--ringbuf-pages", str(1 << 20)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 64 and r.stderr.count("\n") == 1 and "--ringbuf-pages must be" in r.stderr, r.stderr



# -- case 5: two instances at once, on the real plane ---------------------------------------
def test_case05_two_instances_orphan_cleanup_never_touches_the_other_live_session(lo_ns, gew_instance, tmp_path):
    from gewtui.kernel.bpffs import proc_start_time
    from tests.conftest import drop_instance

    a, b = gew_instance, Instance(gew_instance.instance_id + "b")
    pb = apply_session(b, [f"netns={lo_ns}"], str(tmp_path / "b.gewrec"))
    pa = apply_session(a, [f"netns={lo_ns}"], str(tmp_path / "a.gewrec"))
    try:
        with stopped_safe(pb), stopped_safe(pa):
            sid_b, sid_a = attached(pb), attached(pa)
            pa.kill()
            pa.wait(10)
            m_b = b.read_manifest(sid_b)
            b_maps = sorted(obj_id(x) for x in m_b.pins)

            def b_untouched(when: str) -> None:
                [entry] = b.sessions()
                assert entry.alive and entry.session_id == sid_b, when
                assert sorted(obj_id(x) for x in m_b.pins) == b_maps, f"B's pins changed {when}"
                assert pb.poll() is None, f"B died {when}"

            r = subprocess.run(GEW + ["session", "gc", "--instance", a.instance_id], cwd=ROOT, capture_output=True,
                               text=True, timeout=60)
            assert r.returncode == 0 and f"session {sid_a}:" in r.stdout and sid_b not in r.stdout, r.stdout
            b_untouched("after A's gc")
            assert refused_connects(lo_ns, 10) == 10
            r = subprocess.run(GEW + ["session", "apply", "--instance", a.instance_id, "--scope", f"netns={lo_ns}",
                                      "--duration", "0.5", "--record", str(tmp_path / "a2.gewrec")],
                               cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and sid_b not in r.stderr, r.stderr
            b_untouched("after A's next start")
            # B's own gc: its owner is alive (pid and start time match)
            r = subprocess.run(GEW + ["session", "gc", "--instance", b.instance_id], cwd=ROOT, capture_output=True,
                               text=True, timeout=60)
            assert r.stdout.startswith("no orphan sessions"), r.stdout
            # the same pid with another start time is not the owner: a reused pid
            forged = b.read_manifest(sid_b)
            forged.session_id, forged.pins, forged.recording = "forged", [], ""
            forged.owner_start_time = (proc_start_time(pb.pid) or 0) + 1
            b.write_manifest(forged)
            r = subprocess.run(GEW + ["session", "gc", "--instance", b.instance_id], cwd=ROOT, capture_output=True,
                               text=True, timeout=60)
            assert "session forged:" in r.stdout and f"session {sid_b}:" not in r.stdout, r.stdout
            b_untouched("after B's gc of a session with B's pid and another start time")
            pb.send_signal(signal.SIGTERM)
            err = ended(pb)
        assert pb.returncode == 0 and "observation complete" in err, err
        syn = [e for e in events_of(read_records(str(tmp_path / "b.gewrec"))) if e.WhichOneof("body") == "tcp_state"
               and e.tcp_state.new_state == events_pb2.TCP_SYN_SENT and e.tcp_state.tuple.dport == 9]
        assert len(syn) == 10, "B stopped observing while A was cleaned"
    finally:
        drop_instance(b)
    assert a.sessions() == [] and b.sessions() == []


# -- case 6: hostile names and a hostile instance directory ---------------------------------
# Names are refused before any path is built (tests/faults/test_session_faults.py, tests/
# test_bpffs.py); here the directories themselves are hostile: session entries that are
# symlinks leading out of the instance, in /run and in bpffs, next to a real orphan.
def test_case06_symlinked_session_entries_never_lead_gc_outside_and_never_block_it(lo_ns, gew_instance,
                                                                                   foreign_pin, tmp_path):
    import json

    inst = gew_instance
    rec = str(tmp_path / "orphan.gewrec")
    p = apply_session(inst, [f"netns={lo_ns}"], rec)
    with stopped_safe(p):
        sid = attached(p)
        maps = {obj_id(x) for x in inst.read_manifest(sid).pins}
        p.kill()
        p.wait(10)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("not gew's\n")
    manifest = inst.read_manifest(sid)
    manifest.session_id, manifest.pins = "0evilrun", [foreign_pin]
    (outside / "manifest.json").write_text(manifest.to_json())
    before_outside = {f.name: f.read_bytes() for f in outside.iterdir()}
    # sorted before the real orphan, so a gc that stops at the first bad entry would leave it
    os.symlink(outside, os.path.join(inst.run_dir, "sessions", "0evilrun"))
    os.symlink(os.path.dirname(foreign_pin), os.path.join(inst.bpffs_dir, "sessions", "0evilpin"))
    try:
        r = subprocess.run(GEW + ["session", "gc", "--instance", inst.instance_id, "--json"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert "Traceback" not in r.stderr and r.returncode == 1, r.stdout + r.stderr   # 1: errors reported
        # nothing outside the instance was touched
        assert os.path.exists(foreign_pin)
        assert {f.name: f.read_bytes() for f in outside.iterdir()} == before_outside
        # the real orphan was cleaned all the same
        assert not os.path.exists(inst.session_bpffs(sid)) and gone_after(set(), maps) == (set(), set())
        assert sid not in [e.session_id for e in inst.sessions()]
        errors = {x["session_id"]: x["errors"] for x in json.loads(r.stdout)["removed"]}
        assert errors[sid] == []
        for bad in ("0evilrun", "0evilpin"):
            assert any("a symbolic link, not a session directory" in e for e in errors[bad]), errors[bad]
        # and the next start of the instance is not blocked by them either
        r = subprocess.run(GEW + ["session", "apply", "--instance", inst.instance_id, "--scope", f"netns={lo_ns}",
                                  "--duration", "0.5", "--record", str(tmp_path / "next.gewrec")],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "observation complete" in r.stderr, r.stderr
        assert os.path.exists(foreign_pin)
        assert {f.name: f.read_bytes() for f in outside.iterdir()} == before_outside
    finally:
        for link in (os.path.join(inst.run_dir, "sessions", "0evilrun"),
                     os.path.join(inst.bpffs_dir, "sessions", "0evilpin")):
            with contextlib.suppress(OSError):
                os.unlink(link)



# -- case 7: bpffs and tracefs unmounted and remounted between runs --------------------------
# In a private mount namespace (unshare -m), so the host's mounts are never touched; the
# first run pins into a bpffs instance of that namespace only (each bpf mount is its own).
def test_case07_tracefs_and_bpffs_remounted_between_runs_no_duplicate_attachments(lo_ns, gew_instance, tmp_path):
    host = sorted(line for line in open("/proc/self/mounts") if " bpf " in line or " tracefs " in line)
    gew = " ".join(GEW)
    inst = gew_instance.instance_id
    churn = f"{sys.executable} -m tests.faults.kernel_support churn {lo_ns} 40"
    script = f"""
        umount /sys/fs/bpf; mount -t bpf bpf /sys/fs/bpf
        {gew} session apply --instance {inst} --scope netns={lo_ns} --record {tmp_path}/a.gewrec 2> {tmp_path}/a.err &
        pid=$!
        for i in $(seq 300); do grep -q ' attached (' {tmp_path}/a.err && break; sleep 0.1; done
        ls /sys/fs/bpf/gewyvern/instances/{inst}/sessions/*/gew_counters
        kill -9 $pid; wait $pid || true
        umount /sys/fs/bpf; umount /sys/kernel/tracing
        ! grep -qE ' (bpf|tracefs) ' /proc/self/mounts
        {gew} session gc --instance {inst}
        {gew} session apply --instance {inst} --scope netns={lo_ns} --record {tmp_path}/b.gewrec --duration 4 \
            2> {tmp_path}/b.err &
        pid=$!
        for i in $(seq 300); do grep -q ' attached (' {tmp_path}/b.err && break; sleep 0.1; done
        {churn}
        wait $pid
        grep -q ' /sys/fs/bpf bpf ' /proc/self/mounts && grep -q ' /sys/kernel/tracing tracefs ' /proc/self/mounts
        {gew} session list --instance {inst}
    """
    r = _in_mount_ns(script)
    b_err = (tmp_path / "b.err").read_text() if (tmp_path / "b.err").exists() else ""
    assert r.returncode == 0, r.stdout + r.stderr + b_err
    assert "removed manifest" in r.stdout and "error" not in r.stdout
    assert r.stdout.rstrip().endswith(f"no sessions in instance {inst}")
    assert "observation complete" in b_err, b_err
    # each connect is seen once: one SYN_SENT per connect, not one per attachment
    syn = [e for e in events_of(read_records(f"{tmp_path}/b.gewrec")) if e.WhichOneof("body") == "tcp_state"
           and e.tcp_state.new_state == events_pb2.TCP_SYN_SENT and e.tcp_state.tuple.dport == 9]
    assert len(syn) == 40
    assert sorted(line for line in open("/proc/self/mounts") if " bpf " in line or " tracefs " in line) == host
    assert gew_instance.sessions() == []



# -- case 9: the recording's disk fills up mid-session --------------------------------------
def test_case09_recording_disk_full_mid_session_stops_observation_and_stays_readable(lo_ns, gew_instance, tiny_fs):
    rec = str(tiny_fs / "full.gewrec")
    p = apply_session(gew_instance, [f"netns={lo_ns}"], rec)
    with stopped_safe(p):
        sid = attached(p)
        [entry] = gew_instance.sessions()
        maps = {obj_id(x) for x in entry.manifest.pins}
        deadline = time.monotonic() + 30
        while p.poll() is None and time.monotonic() < deadline:
            refused_connects(lo_ns, 200)
        err = ended(p)
    assert p.returncode == 74, err                        # EX_IOERR: the write failed
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"gew: recording {rec}: write failed (No space left on device)"), last
    readable_to = int(last.rsplit(" ", 1)[1])
    # observation stopped, and the session removed everything it had in the kernel
    assert f"session {sid}: detached; removed {len(maps)} pin(s)" in err
    assert gew_instance.sessions() == [] and gone_after(set(), maps) == (set(), set())
    # the file stays readable: whole frames up to the byte the message names, nothing damaged
    assert os.path.getsize(rec) == readable_to
    with RecordingReader(rec) as rd:
        assert rd.header.session.session_id == sid
        events = list(rd.iter_events())
        assert rd.report.clean and rd.report.end_offset == readable_to, rd.report.summary()
    assert events[0].mark.kind == "started" and len(events) > 1000
    assert [e.id for e in events] == list(range(1, len(events) + 1))



# -- case 15: a scoped interface deleted under a real session --------------------------------
def test_case15_scoped_interface_deleted_mid_session_is_recorded_and_observation_goes_on(lo_ns, gew_instance,
                                                                                          tmp_path):
    subprocess.run(["ip", "-n", lo_ns, "link", "add", "gewtv0", "type", "veth", "peer", "name", "gewtv1"],
                   check=True)
    rec = str(tmp_path / "gone.gewrec")
    p = apply_session(gew_instance, [f"netns={lo_ns}"], rec, "--duration", "4")
    with stopped_safe(p):
        sid = attached(p)
        assert refused_connects(lo_ns, 10) == 10
        subprocess.run(["ip", "-n", lo_ns, "link", "del", "gewtv0"], check=True)   # takes its peer too
        noticed = wait_stderr(p, f"session {sid}: scope change:", timeout=5)   # within a second
        assert "gewtv" in noticed
        wait_stderr(p, "INCOMPLETE", timeout=5)             # the status line says so
        t_after = time.monotonic_ns()
        assert refused_connects(lo_ns, 10) == 10
        err = ended(p)
    assert p.returncode == 0, err
    assert f"session {sid} ended (duration)" in err and "observation INCOMPLETE" in err
    recs = read_records(rec)
    events = events_of(recs)
    changes = [e.scope_change for e in events if e.WhichOneof("body") == "scope_change"]
    assert sorted(c.iface for c in changes) == ["gewtv0", "gewtv1"]
    assert all(c.what == "iface-removed" and not c.observation_complete and c.netns == lo_ns for c in changes)
    # still observing after the change: the connects made afterwards are recorded
    later = [e for e in events if e.WhichOneof("body") == "tcp_state" and e.ktime_ns > t_after
             and e.tcp_state.new_state == events_pb2.TCP_SYN_SENT]
    assert len(later) == 10
    end = recs[-1].end
    assert end.how == "duration" and not end.stats.observation_complete
    assert "gewtv0 disappeared" in end.stats.incomplete_reason
    assert gew_instance.sessions() == []
