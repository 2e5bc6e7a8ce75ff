"""gewtui.securefs, the path primitives root uses: each rule on a small tree under tmp_path
(a 0700 root directory), plus the one the attack tests in tests/security/ rely on."""
from __future__ import annotations

import os
import stat
import time

import pytest

from gewtui import securefs
from gewtui.securefs import InputRefused, UnsafePath

pytestmark = pytest.mark.root          # ownership checks: files here must be root's


def test_open_dir_walks_without_links_and_names_the_component(tmp_path):
    (tmp_path / "real" / "sub").mkdir(parents=True)
    os.symlink(tmp_path / "real", tmp_path / "link")
    os.close(securefs.open_dir(str(tmp_path / "real" / "sub")))
    with pytest.raises(UnsafePath, match=f"refusing {tmp_path}/link: a symbolic link"):
        securefs.open_dir(str(tmp_path / "link" / "sub"))
    with pytest.raises(FileNotFoundError):
        securefs.open_dir(str(tmp_path / "missing"))


def test_a_foreign_or_loose_component_is_refused(tmp_path):
    d = tmp_path / "theirs"
    d.mkdir()
    os.chown(d, 65534, 65534)
    with pytest.raises(UnsafePath, match="owned by uid 65534"):
        securefs.open_dir(str(d), owners={0})
    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, 0o777)
    with pytest.raises(UnsafePath, match="writable by every user"):
        securefs.open_dir(str(loose))
    os.chmod(loose, 0o1777)                      # sticky: may be passed through, like /tmp
    os.close(securefs.open_dir(str(loose)))


def test_private_dirs_are_created_0700_tightened_or_refused(tmp_path):
    top = tmp_path / "state"
    os.close(securefs.open_dir(str(top / "a" / "b"), create=True, private_below=str(top)))
    for p in (top, top / "a", top / "a" / "b"):
        assert stat.S_IMODE(os.lstat(p).st_mode) == 0o700
    os.chmod(top / "a", 0o755)                   # only root could write: tightened
    os.close(securefs.open_dir(str(top / "a"), private_below=str(top)))
    assert stat.S_IMODE(os.lstat(top / "a").st_mode) == 0o700
    os.chmod(top / "a", 0o775)                   # the group could have written: refused, kept
    with pytest.raises(UnsafePath, match="mode 0775"):
        securefs.open_dir(str(top / "a"), private_below=str(top))
    assert (top / "a" / "b").is_dir()


def test_create_file_is_exclusive_or_replaces_only_files_and_links(tmp_path):
    dfd = securefs.open_dir(str(tmp_path))
    try:
        victim = tmp_path / "victim"
        victim.write_text("keep")
        os.symlink(victim, tmp_path / "out")
        with pytest.raises(FileExistsError):
            securefs.create_file(dfd, "out")
        fd = securefs.create_file(dfd, "out", replace=True)
        os.write(fd, b"new")
        os.close(fd)
        assert victim.read_text() == "keep" and (tmp_path / "out").read_bytes() == b"new"
        assert stat.S_IMODE(os.lstat(tmp_path / "out").st_mode) == 0o600
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(UnsafePath, match="a FIFO, not a regular file"):
            securefs.create_file(dfd, "fifo", replace=True)
        assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []
    finally:
        os.close(dfd)


def test_open_existing_refuses_links_hard_links_and_non_files(tmp_path):
    dfd = securefs.open_dir(str(tmp_path))
    try:
        (tmp_path / "f").write_text("x")
        os.close(securefs.open_existing(dfd, "f", os.O_WRONLY))
        os.symlink(tmp_path / "f", tmp_path / "l")
        with pytest.raises(UnsafePath, match="a symbolic link"):
            securefs.open_existing(dfd, "l", os.O_WRONLY)
        os.link(tmp_path / "f", tmp_path / "h")
        with pytest.raises(UnsafePath, match="2 hard links"):
            securefs.open_existing(dfd, "h", os.O_WRONLY)
        os.mkfifo(tmp_path / "p")
        t0 = time.monotonic()
        with pytest.raises(UnsafePath, match="a FIFO"):
            securefs.open_existing(dfd, "p", os.O_RDONLY)
        assert time.monotonic() - t0 < 1
    finally:
        os.close(dfd)


def test_open_input_refuses_non_regular_files_at_once(tmp_path):
    os.mkfifo(tmp_path / "p")
    for path, why in ((tmp_path / "p", "a FIFO"), ("/dev/zero", "a device"), (tmp_path, "is a directory")):
        t0 = time.monotonic()
        with pytest.raises(InputRefused, match=why):
            securefs.open_input(str(path))
        assert time.monotonic() - t0 < 1
    (tmp_path / "big").write_bytes(b"x" * 100)
    with pytest.raises(InputRefused, match="over the 10-byte limit"):
        securefs.read_input(str(tmp_path / "big"), 10)
    assert securefs.read_input(str(tmp_path / "big"), 100) == b"x" * 100


def test_remove_tree_removes_links_never_their_targets(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "pin").write_text("")
    os.symlink(outside, tree / "d" / "dirlink")
    os.symlink(outside / "precious", tree / "filelink")
    removed, errors = [], []
    dfd = securefs.open_dir(str(tmp_path))
    try:
        securefs.remove_tree(dfd, "tree", shown=str(tree), on_removed=removed.append,
                             on_error=lambda p, e: errors.append(p))
    finally:
        os.close(dfd)
    assert not tree.exists() and errors == []
    assert (outside / "precious").read_text() == "keep"
    assert sorted(removed) == sorted([f"{tree}/d/dirlink", f"{tree}/d/pin", f"{tree}/filelink"])
