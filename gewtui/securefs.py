"""Path primitives for a root process on a machine shared with unprivileged users.

Every path gew creates, opens or removes as root goes through here: bpffs pins and
manifests (kernel/bpffs.py), recordings (recording/writer.py, reader.py), the shell's
history and template files. The rules, in the OpenSSH/systemd style:

* A path is *opened*, not named: directories are walked one component at a time with
  ``openat(parent_fd, name, O_DIRECTORY|O_NOFOLLOW)`` from ``/``, so no symbolic link is
  ever followed, and every later operation is relative to a directory fd that cannot be
  swapped underneath.
* Each directory walked through is checked: owned by root (or by the caller's own uid),
  and not writable by group or others unless sticky. A root-owned sticky world-writable
  directory such as /tmp or /sys/fs/bpf may be passed through; what lies below it must
  then pass the check itself. Anything else is refused with one line naming it.
* Private directories (gew's own state: /sys/fs/bpf/gewyvern, /run/gewyvern,
  /var/lib/gewyvern) are created 0700 and must be owned by the caller. An existing one
  with a looser mode that nobody else could have written into (owner ours, no group or
  other write) is tightened to 0700 through its fd; one owned by another user, or
  writable by others, is refused. Nothing is ever "repaired" by deleting.
* Files are created with ``O_CREAT|O_EXCL|O_NOFOLLOW`` and mode 0600, or as such a
  temporary file renamed over the target (a planted link at the target is replaced, its
  target untouched). An existing file is reopened only if it is a regular file with one
  link. Trees are removed with ``unlinkat`` from directory fds, never following a link.
* An input file (a recording, a template) is opened ``O_NONBLOCK`` and ``fstat``-ed: a
  FIFO, device or directory is refused at once instead of blocking or reading forever.

Errors a user can cause are ``UnsafePath`` (EX_NOPERM) or ``InputRefused`` (EX_NOINPUT),
both one line; a missing directory is FileNotFoundError (callers decide if that is fine).
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from typing import Callable, Iterable, Iterator

from gewtui.errors import EX_NOINPUT, EX_NOPERM, GewError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: How deep remove_tree descends; gew's own trees are three levels deep.
MAX_TREE_DEPTH = 16


class UnsafePath(GewError):
    """A path root was asked to use could be controlled by another user."""

    code = EX_NOPERM


class InputRefused(GewError):
    """An input file is not a regular file (FIFO, device, directory) or cannot be opened."""

    code = EX_NOINPUT


def show(path: str) -> str:
    """A path as one printable line: control and non-ASCII characters escaped."""
    return path if path.isascii() and path.isprintable() else ascii(path)[1:-1]


def trusted_owners() -> frozenset[int]:
    """Uids whose directories root may walk through: root and ourselves.

    Under sudo the invoking user (SUDO_UID, set by sudo itself) is trusted too for paths
    that user named (``--record ~/x.gewrec``): they asked for a file there, and no other
    user can write into their directories."""
    owners = {0, os.geteuid()}
    sudo = os.environ.get("SUDO_UID", "")
    if sudo.isascii() and sudo.isdigit():
        owners.add(int(sudo))
    return frozenset(owners)


def _refuse(path: str, why: str) -> UnsafePath:
    return UnsafePath(f"refusing {show(path)}: {why}")


def check_dir_stat(st: os.stat_result, path: str, owners: Iterable[int]) -> None:
    """Refuse a directory another user could write into (sticky ones excepted)."""
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(path, "not a directory")
    if st.st_uid not in owners:
        raise _refuse(path, f"owned by uid {st.st_uid}, not by root")
    sticky = bool(st.st_mode & stat.S_ISVTX)
    if st.st_mode & stat.S_IWOTH and not sticky:
        raise _refuse(path, "writable by every user (and not sticky)")
    if st.st_mode & stat.S_IWGRP and st.st_gid != 0 and not sticky:
        raise _refuse(path, f"writable by group {st.st_gid}")


def _make_private(fd: int, path: str) -> None:
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        raise _refuse(path, f"owned by uid {st.st_uid}; gew's private directories must be "
                            f"owned by uid {os.geteuid()} and mode 0700")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        raise _refuse(path, f"mode {mode:04o} lets other users write into it; gew's private "
                            "directories must be mode 0700 (remove or fix it by hand)")
    if mode != 0o700:
        # Only we could have written into it, so tightening loses nothing and hides
        # what it holds from then on.
        os.fchmod(fd, 0o700)


def _components(path: str) -> list[str]:
    return [c for c in os.path.abspath(path).split("/") if c]


def open_dir(path: str, *, create: bool = False, private_below: str | None = None,
             owners: Iterable[int] | None = None) -> int:
    """Open directory ``path`` without following any link; return its fd (O_CLOEXEC).

    Every component is checked (``check_dir_stat``). ``create`` makes missing components
    (mode 0700). Components at or below ``private_below`` (an ancestor of ``path``, or
    ``path`` itself) must be private: owned by us, mode 0700 (see the module docstring).
    The caller closes the fd."""
    owners = frozenset(owners) if owners is not None else trusted_owners()
    parts = _components(path)
    private_from = len(_components(private_below)) if private_below is not None else None
    if private_from is not None and _components(private_below) != parts[:private_from]:
        raise ValueError(f"{private_below} is not an ancestor of {path}")
    fd = os.open("/", _DIR_FLAGS)
    shown = "/"
    try:
        check_dir_stat(os.fstat(fd), shown, owners)
        for i, name in enumerate(parts, 1):
            shown = "/" + "/".join(parts[:i])
            try:
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise FileNotFoundError(errno.ENOENT, "no such directory", shown) from None
                with contextlib.suppress(FileExistsError):   # a racing creator: checked below
                    os.mkdir(name, 0o700, dir_fd=fd)
                nfd = _open_child_dir(fd, name, shown)
            except OSError as e:
                raise _child_error(e, fd, name, shown) from None
            os.close(fd)
            fd = nfd
            st = os.fstat(fd)
            if private_from is not None and i >= private_from:
                _make_private(fd, shown)
                st = os.fstat(fd)
            check_dir_stat(st, shown, owners)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _open_child_dir(fd: int, name: str, shown: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=fd)
    except OSError as e:
        raise _child_error(e, fd, name, shown) from None


def _child_error(e: OSError, fd: int, name: str, shown: str) -> GewError:
    # O_DIRECTORY|O_NOFOLLOW on a link fails with ENOTDIR (or ELOOP): say which it was.
    if e.errno in (errno.ELOOP, errno.ENOTDIR):
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
        except OSError:
            is_link = e.errno == errno.ELOOP
        return _refuse(shown, "a symbolic link" if is_link else "not a directory")
    return UnsafePath(f"{show(shown)}: {e.strerror}", EX_NOINPUT if e.errno == errno.ENOENT else None)


def split(path: str) -> tuple[str, str]:
    """(directory, name) of a file path; the name is never empty, '.' or '..'."""
    d, name = os.path.split(os.path.abspath(path))
    if name in ("", ".", ".."):
        raise UnsafePath(f"{show(path)}: not a file name", EX_NOINPUT)
    return d, name


@contextlib.contextmanager
def dir_fd(path: str, **kw) -> Iterator[int]:
    """``open_dir`` as a context manager."""
    fd = open_dir(path, **kw)
    try:
        yield fd
    finally:
        os.close(fd)


def create_file(dfd: int, name: str, *, replace: bool = False, mode: int = 0o600,
                flags: int = os.O_WRONLY) -> int:
    """Create ``name`` in directory ``dfd`` exclusively (O_CREAT|O_EXCL|O_NOFOLLOW, ``mode``).

    With ``replace``, an existing regular file or link is replaced instead (anything else
    is refused): the file is created under a temporary name and renamed over it, so a link
    planted at ``name`` is replaced and its target never opened. Returns the fd."""
    base = flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    if not replace:
        return os.open(name, base, mode, dir_fd=dfd)
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        pass
    else:
        # Only a file or a link is replaced: a device node (/dev/null), FIFO or socket
        # given as the target stays what it is (nobody unprivileged can create devices,
        # so this check cannot be raced into replacing one).
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise _refuse(name, f"{_kind(st.st_mode)}, not a regular file to replace")
    tmp = f".{name[:200]}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, base, mode, dir_fd=dfd)
    try:
        os.fchmod(fd, mode)            # whatever the umask
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        raise
    return fd


def write_file(dfd: int, name: str, data: bytes, *, mode: int = 0o600) -> None:
    """Atomically replace ``name`` in ``dfd`` with ``data`` (temp file, fsync, rename)."""
    tmp = f".{name[:200]}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 mode, dir_fd=dfd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        raise
    finally:
        os.close(fd)


def open_existing(dfd: int, name: str, flags: int = os.O_RDONLY, *, shown: str = "") -> int:
    """Reopen an existing file in ``dfd``: never through a link, only a regular file with
    one hard link (a hard link to another file cannot be written through). Returns the fd."""
    shown = shown or name
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY,
                     dir_fd=dfd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _refuse(shown, "a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(shown, f"not a regular file ({_kind(st.st_mode)})")
        if st.st_nlink != 1:
            raise _refuse(shown, f"has {st.st_nlink} hard links")
        _blocking(fd)
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_input(path: str, *, limit: int | None = None) -> int:
    """Open a file to read as input (a recording, a template): refuse anything but a
    regular file without blocking on it (a FIFO opened O_NONBLOCK returns at once).
    ``limit`` refuses a larger file. Links are followed: reading is not writing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise InputRefused(f"{show(path)}: no such file") from None
    except IsADirectoryError:
        raise InputRefused(f"{show(path)}: is a directory") from None
    except OSError as e:
        raise InputRefused(f"{show(path)}: cannot open: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputRefused(f"{show(path)}: is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise InputRefused(f"{show(path)}: not a regular file ({_kind(st.st_mode)})")
        if limit is not None and st.st_size > limit:
            raise InputRefused(f"{show(path)}: {st.st_size:,} bytes, over the {limit:,}-byte limit")
        _blocking(fd)
        return fd
    except BaseException:
        os.close(fd)
        raise


def read_input(path: str, limit: int) -> bytes:
    """The whole of a small input file, at most ``limit`` bytes (checked again while
    reading: the file may grow after the fstat)."""
    fd = open_input(path, limit=limit)
    try:
        chunks, total = [], 0
        while True:
            b = os.read(fd, 65536)
            if not b:
                return b"".join(chunks)
            total += len(b)
            if total > limit:
                raise InputRefused(f"{show(path)}: over the {limit:,}-byte limit")
            chunks.append(b)
    finally:
        os.close(fd)


def remove_tree(parent_fd: int, name: str, *, shown: str = "",
                on_removed: Callable[[str], None] | None = None,
                on_error: Callable[[str, OSError], None] | None = None, _depth: int = 0) -> None:
    """Remove ``name`` under ``parent_fd`` and everything below it with unlinkat/rmdir
    relative to directory fds: a link anywhere in the tree is removed, never followed.
    ``on_removed`` gets the path of each file (not directory) removed; ``on_error`` each
    failure (the rest is still removed). A missing ``name`` is not an error."""
    shown = shown or name
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno not in (errno.ENOTDIR, errno.ELOOP):
            _report(on_error, shown, e)
            return
        _unlink(parent_fd, name, shown, on_removed, on_error)    # a file or a link: the entry only
        return
    try:
        if _depth >= MAX_TREE_DEPTH:
            _report(on_error, shown, OSError(errno.ELOOP, "tree deeper than expected"))
            return
        for child in sorted(os.listdir(fd)):
            path = f"{shown}/{child}"
            try:
                st = os.stat(child, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                remove_tree(fd, child, shown=path, on_removed=on_removed, on_error=on_error,
                            _depth=_depth + 1)
            else:
                _unlink(fd, child, path, on_removed, on_error)
    finally:
        os.close(fd)
    _unlink(parent_fd, name, shown, None, on_error, rmdir=True)


def _unlink(dfd: int, name: str, shown: str, on_removed, on_error, *, rmdir: bool = False) -> None:
    try:
        (os.rmdir if rmdir else os.unlink)(name, dir_fd=dfd)
    except FileNotFoundError:
        return
    except OSError as e:
        _report(on_error, shown, e)
        return
    if on_removed is not None:
        on_removed(shown)


def _report(on_error, shown: str, e: OSError) -> None:
    if on_error is not None:
        on_error(shown, e)


def _blocking(fd: int) -> None:
    import fcntl

    fl = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, fl & ~os.O_NONBLOCK)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a regular file"
