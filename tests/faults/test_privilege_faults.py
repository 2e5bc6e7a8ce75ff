"""Privilege faults (issue 7 case 14): who may put anything into the kernel, and where the
overrides may come from.

- Every entry point that touches the kernel refuses a non-root user, and a root process
  without CAP_BPF/CAP_SYS_ADMIN/CAP_PERFMON (or without CAP_NET_ADMIN), with one line and
  exit 77, no traceback, before it creates anything (no manifest, no pin).
- ``--allow-risky`` and ``--allow-intervention`` count only on the local command line: the
  same words in the environment or in a config file change nothing (the session's own
  record of its options says so), and a recording that had them makes a replay no more
  able to act (--allow-intervention with --replay is refused; see also case 13).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gewtui.errors import EX_USAGE
from gewtui.kernel.bpffs import Instance
from gewtui.recording import RecordingReader

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"

# (how the privileges are dropped, the argument prefix, the capability the refusal names)
DROPS = {
    "non-root": (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"], "needs root"),
    "root-without-bpf-sys_admin-perfmon": (["setpriv", "--inh-caps=-all",
                                            "--bounding-set=-bpf,-sys_admin,-perfmon"],
                                           "needs CAP_BPF, CAP_PERFMON, which this root process lacks"),
    "root-without-net_admin": (["setpriv", "--inh-caps=-all", "--bounding-set=-net_admin"],
                               "needs CAP_NET_ADMIN, which this root process lacks"),
}


def _entry_points(instance: str, tmp: Path) -> dict[str, list[str]]:
    gew = str(BIN / "gew")
    return {
        "session-apply": [gew, "session", "apply", "--instance", instance, "--duration", "1",
                          "--record", str(tmp / "a.gewrec")],
        "session-gc": [gew, "session", "gc", "--instance", instance],
        "session-list": [gew, "session", "list", "--instance", instance],
        "probe-list": [gew, "probe", "list"],
        "lab-up": [gew, "lab", "up", "healthy", "--name", "gewtpriv"],
        "gew-tui-live": [str(BIN / "gew-tui"), "--scope", "netns=host", "--record", str(tmp / "t.gewrec")],
        "gew-shell-live": [gew, "shell", "--record", str(tmp / "s.gewrec")],
    }


@pytest.mark.parametrize("who", sorted(DROPS))
@pytest.mark.parametrize("entry", ["session-apply", "session-gc", "session-list", "probe-list", "lab-up",
                                   "gew-tui-live", "gew-shell-live"])
def test_case14_without_privileges_every_kernel_entry_point_refuses_with_77(gew_instance, tmp_path, who, entry):
    if not shutil.which("setpriv"):
        pytest.skip("setpriv missing (util-linux): it drops the privileges")
    prefix, words = DROPS[who]
    os.chmod(tmp_path, 0o777)                         # nobody could write here, and must not need to
    argv = prefix + _entry_points(gew_instance.instance_id, tmp_path)[entry]
    bpffs_before = sorted(os.listdir("/sys/fs/bpf/gewyvern")) if os.path.isdir("/sys/fs/bpf/gewyvern") else []
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd="/", stdin=subprocess.DEVNULL,
                       env={"PATH": os.environ.get("PATH", ""), "HOME": "/tmp", "LANG": "C.UTF-8", "TERM": "dumb"})
    assert r.returncode == 77, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gew: ") and words in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    # refused before anything was made
    assert gew_instance.sessions() == [] and not os.path.exists(gew_instance.run_dir + "/sessions")
    assert (sorted(os.listdir("/sys/fs/bpf/gewyvern")) if os.path.isdir("/sys/fs/bpf/gewyvern") else []) \
        == bpffs_before
    assert not list(tmp_path.iterdir()), "a recording was started"
    assert not os.path.exists("/run/netns/gewlab-gewtpriv-client")


# -- the overrides come only from the local command line ---------------------------------------
def _apply(inst: Instance, netns: str, rec: Path, extra: list[str], env: dict[str, str]) -> RecordingReader:
    r = subprocess.run([sys.executable, "-m", "gewtui.cli.main", "session", "apply", "--instance", inst.instance_id,
                        "--scope", f"netns={netns}", "--duration", "0.5", "--record", str(rec), *extra],
                       cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    with RecordingReader(str(rec)) as rd:
        return rd.header.session


HOSTILE_ENV = {
    "GEW_ALLOW_RISKY": "1", "GEW_ALLOW_INTERVENTION": "1", "GEWTUI_ALLOW_RISKY": "1",
    "GEW_TUI_ALLOW_INTERVENTION": "1", "ALLOW_RISKY": "1", "ALLOW_INTERVENTION": "1",
    "GEW_OPTS": "--allow-risky --allow-intervention", "GEW_ARGS": "--allow-risky --allow-intervention",
}


def test_case14_overrides_only_from_the_local_command_line(netns_pair, gew_instance, tmp_path):
    cfg = tmp_path / "config"
    for d in (cfg / "gewyvern", tmp_path / "home" / ".config" / "gewyvern"):
        d.mkdir(parents=True)
        (d / "config.toml").write_text("allow_risky = true\nallow_intervention = true\n")
        (d / "config.json").write_text('{"allow_risky": true, "allow_intervention": true}\n')
    env = {**HOSTILE_ENV, "XDG_CONFIG_HOME": str(cfg), "HOME": str(tmp_path / "home")}
    # environment and config files say yes: the session records that it was not allowed
    s = _apply(gew_instance, netns_pair.a, tmp_path / "env.gewrec", [], env)
    assert not s.allow_risky and not s.allow_intervention
    # the same session with the words on its own command line: allowed (the check can fail)
    s = _apply(gew_instance, netns_pair.a, tmp_path / "argv.gewrec", ["--allow-risky", "--allow-intervention"], {})
    assert s.allow_risky and s.allow_intervention
    assert gew_instance.sessions() == []


def test_case14_a_recording_that_had_the_overrides_grants_nothing_to_its_replay(tmp_path):
    from tests.support.hostile_recordings import _intervention_recording

    rec = str(tmp_path / "past.gewrec")
    _intervention_recording(rec)                      # allow_intervention and allow_risky in its header
    r = subprocess.run([str(BIN / "gew-tui"), "--replay", rec, "--allow-intervention"], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == EX_USAGE and r.stderr.strip().splitlines() == [
        "gew: a replayed recording is inert: --allow-intervention has no meaning with it"], r.stderr
    # and without the flag the replay's gate still refuses (the header's override is not the
    # local command line)
    from gewtui.debugger.core import Debugger
    from gewtui.debugger.gating import gate_view
    from gewtui.debugger.sources import ReplaySource

    d = Debugger(ReplaySource(rec))
    while d.ingest(1000):
        pass
    override = [c for c in gate_view(d, 1).conditions if c.name == "override"]
    assert override and not override[0].ok and "inert" in override[0].why
