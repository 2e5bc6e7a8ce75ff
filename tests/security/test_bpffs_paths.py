"""Attack 1: root deletes files through a bpffs symlink planted by an unprivileged user.

/sys/fs/bpf is world-writable and sticky, so any user may create gew's bpffs root there
before gew does. `nobody` creates it with ``instances/default`` a link to a directory
holding ``sessions/app1/data.db``; root then runs `gew session gc` and a 1 s `gew session
apply`. Before the fix, gc followed the link and deleted data.db. Now gew refuses the
root it does not own, in one line naming it, and the victim is intact.
"""
from __future__ import annotations

import os
import stat

import pytest

from tests.security.support import NOBODY, as_nobody, one_line

pytestmark = pytest.mark.root


def test_planted_bpffs_root_symlink_deletes_nothing(roots, netns_pair, tmp_path):
    victim = tmp_path / "app"
    (victim / "sessions" / "app1").mkdir(parents=True)
    db = victim / "sessions" / "app1" / "data.db"
    db.write_bytes(b"precious rows")
    as_nobody(f"mkdir -p {roots.bpffs}/instances && ln -s {victim} {roots.bpffs}/instances/default")
    assert os.lstat(roots.bpffs).st_uid == NOBODY

    gc = roots.gew("session", "gc")
    apply = roots.gew("session", "apply", "--scope", f"netns={netns_pair.a}", "--duration", "1",
                      "--record", str(tmp_path / "s.gewrec"))

    assert db.read_bytes() == b"precious rows", "root deleted a file through the planted link"
    for r in (gc, apply):
        assert r.returncode == 77, r.stderr
        line = one_line(r.stderr)
        assert roots.bpffs in line and "owned by uid 65534" in line
    assert os.path.islink(f"{roots.bpffs}/instances/default"), "nobody's link is left as it was"


def test_bpffs_and_run_roots_are_private_and_outlive_sessions(roots, netns_pair, tmp_path):
    """After a session ends both roots still exist, root-owned and 0700, so nobody can
    create them (or anything in them) before the next session; nobody's attempt fails. The
    bpffs root is left empty: the session's pins and its instance's directories are gone."""
    r = roots.gew("session", "apply", "--scope", f"netns={netns_pair.a}", "--duration", "1",
                  "--record", str(tmp_path / "s.gewrec"))
    assert r.returncode == 0, r.stderr
    for top in (roots.bpffs, roots.run):
        st = os.lstat(top)
        assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700, top
    assert os.listdir(roots.bpffs) == [], "the session's pins and directories are gone"
    with pytest.raises(AssertionError, match="could not plant"):
        as_nobody(f"mkdir -p {roots.bpffs}/instances/default")


def test_a_loose_private_root_is_refused_not_repaired(roots, netns_pair, tmp_path):
    """A root directory others may write into is refused with one line; it is not removed."""
    os.mkdir(roots.run, 0o700)
    os.chmod(roots.run, 0o777)
    (open(f"{roots.run}/left-by-someone", "w")).close()
    r = roots.gew("session", "apply", "--scope", f"netns={netns_pair.a}", "--duration", "1",
                  "--record", str(tmp_path / "s.gewrec"))
    assert r.returncode == 77
    assert roots.run in one_line(r.stderr) and "0777" in r.stderr
    assert os.path.exists(f"{roots.run}/left-by-someone")
