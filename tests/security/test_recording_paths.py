"""Attacks 2 and 3: root writes recordings through links an unprivileged user planted, and
recordings are world-readable.

`nobody` plants a link (in sticky, world-writable /tmp, where this machine does not set
fs.protected_symlinks) at a path root is about to write, pointing at a file of root's.
Before the fix each of these wrote through the link: `--record`, `gew export --out`,
`gew recording index`'s reopen, the orphan recording's "ended without cleanup" append, and
the shell history under `sudo -E`. Each test asserts the victim is byte-for-byte intact.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from gewtui.kernel.bpffs import Instance, Manifest
from gewtui.recording import RecordingReader
from gewtui.recording.sample import write_sample
from tests.security.support import as_nobody, one_line

pytestmark = pytest.mark.root


@pytest.fixture
def planted(tmp_path):
    """planted(target) -> a /tmp path where nobody has put a link to ``target``."""
    made: list[str] = []

    def plant(target: Path) -> str:
        link = f"/tmp/gewt-sec-{secrets.token_hex(4)}.gewrec"
        made.append(link)
        as_nobody(f"ln -s {target} {link}")
        assert os.path.islink(link) and os.lstat(link).st_uid != 0
        return link

    yield plant
    for p in made:
        if os.path.lexists(p):
            os.unlink(p)


@pytest.fixture
def victim(tmp_path) -> Path:
    """A root file an attacker would like root to overwrite: here a valid recording, so a
    reader scanning it first (append, index) does not stop before the write."""
    p = tmp_path / "victim" / "important.gewrec"
    p.parent.mkdir()
    write_sample(p, 1500)
    return p


def _intact(victim: Path, before: bytes) -> None:
    assert not victim.is_symlink() and victim.read_bytes() == before, "root wrote through the planted link"


def _private_recording(path: str) -> None:
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600
    with RecordingReader(path) as r:
        assert r.header.format_version


def test_record_to_a_planted_symlink_replaces_the_link(roots, netns_pair, victim, planted):
    before = victim.read_bytes()
    link = planted(victim)
    r = roots.gew("session", "apply", "--scope", f"netns={netns_pair.a}", "--duration", "1", "--record", link)
    assert r.returncode == 0, r.stderr
    _intact(victim, before)
    _private_recording(link)


def test_export_out_to_a_planted_symlink_replaces_the_link(roots, victim, planted, tmp_path):
    src = tmp_path / "in.gewrec"
    write_sample(src, 200)
    before = victim.read_bytes()
    link = planted(victim)
    r = roots.gew("export", str(src), "--out", link)
    assert r.returncode == 0, r.stderr
    _intact(victim, before)
    _private_recording(link)


def test_index_reopen_through_a_planted_symlink_is_refused(roots, victim, planted):
    before = victim.read_bytes()
    link = planted(victim)
    r = roots.gew("recording", "index", link, "--every", "1000", "--force")
    assert r.returncode != 0
    assert "a symbolic link" in one_line(r.stderr)
    _intact(victim, before)


def test_orphan_append_through_a_planted_symlink_is_refused(roots, victim, planted):
    """A session killed after its manifest named the recording and before it was created:
    nobody plants a link at that name; root's gc must not append through it."""
    before = victim.read_bytes()
    link = planted(victim)
    dead = subprocess.Popen(["true"])
    dead.wait()
    inst = Instance("default", bpffs_root=roots.bpffs, run_root=roots.run)
    inst.write_manifest(Manifest(instance_id="default", session_id="killed1", owner_pid=dead.pid,
                                 owner_start_time=1, recording=link, state="committed"))
    r = roots.gew("session", "gc")
    _intact(victim, before)
    # gc reports the refused append as a cleanup error (exit 1) and still cleans the rest
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"refusing {link}: a symbolic link" in r.stdout
    assert inst.sessions() == [], "the orphan is still cleaned"


def test_shell_history_ignores_another_users_state_home(monkeypatch, tmp_path, victim):
    """Under `sudo -E`, $XDG_STATE_HOME is the invoking user's: root's history must not go
    there (a link planted in it would be appended to), and a history path in a directory
    nobody owns is refused rather than written."""
    from gewtui.shell.repl import history_path

    home = f"/tmp/gewt-sec-home-{secrets.token_hex(4)}"
    try:
        as_nobody(f"mkdir -p {home}/gewyvern && ln -s {victim} {home}/gewyvern/shell_history")
        monkeypatch.setenv("XDG_STATE_HOME", home)
        monkeypatch.setenv("HOME", home)
        assert not str(history_path()).startswith(home)
        from gewtui.securefs import UnsafePath
        from gewtui.shell.repl import open_history

        before = victim.read_bytes()
        with pytest.raises(UnsafePath, match="owned by uid 65534"):
            open_history(Path(home) / "gewyvern" / "shell_history")
        _intact(victim, before)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_shell_history_never_appends_through_a_link(tmp_path, victim):
    from gewtui.securefs import UnsafePath
    from gewtui.shell.repl import open_history

    (tmp_path / "state").mkdir()
    os.symlink(victim, tmp_path / "state" / "shell_history")
    before = victim.read_bytes()
    with pytest.raises(UnsafePath, match="a symbolic link"):
        open_history(tmp_path / "state" / "shell_history")
    h = open_history(tmp_path / "state" / "fresh_history")
    h.store_string("flows")
    _intact(victim, before)
    st = os.lstat(tmp_path / "state" / "fresh_history")
    assert stat.S_IMODE(st.st_mode) == 0o600 and b"+flows" in (tmp_path / "state" / "fresh_history").read_bytes()


def test_recordings_are_private(roots, netns_pair):
    """Attack 3: a recording holds process names, uids and every address; with a login
    umask (022) it is still 0600, in a 0700 default directory under a 0700 state dir."""
    state = "/var/lib/gewyvern"
    existed = os.path.exists(state)
    r = roots.gew("session", "apply", "--scope", f"netns={netns_pair.a}", "--duration", "1")
    m = re.search(r"recording to (\S+);", r.stderr)
    try:
        assert r.returncode == 0 and m, r.stderr
        rec = m.group(1)
        assert os.path.dirname(rec) == f"{state}/recordings"
        _private_recording(rec)
        for d in (state, f"{state}/recordings"):
            st = os.lstat(d)
            assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700, d
    finally:
        if m and os.path.exists(m.group(1)):
            os.unlink(m.group(1))
        if not existed:
            shutil.rmtree(state, ignore_errors=True)
