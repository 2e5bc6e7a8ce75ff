"""Root-only configuration files under /etc/gewyvern, opened, never named.

Place in the pipeline: under the pairing store and the key files. The directory is walked
from ``/`` with ``openat`` and ``O_NOFOLLOW`` one component at a time, each component checked
(root-owned, not writable by others unless sticky), and the directory itself must be a
root-owned 0700 directory: anything else is refused in one line and never "repaired" by
deleting or chmod-ing what is there. Files are created with ``O_EXCL|O_NOFOLLOW`` and mode
0600, and read only if they are regular, root-owned, private and small.

``GEWYVERN_ETC`` moves the tree (tests use a directory of their own); the same checks apply.
"""
from __future__ import annotations

import os
import stat

from gewtui.errors import EX_NOPERM, GewError

ETC_DIR = "/etc/gewyvern"
MAX_FILE_BYTES = 64 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(GewError):
    code = EX_NOPERM


def etc_dir() -> str:
    return os.environ.get("GEWYVERN_ETC") or ETC_DIR


def _check_component(st: os.stat_result, path: str) -> None:
    if st.st_uid != 0:
        raise UnsafePath(f"refusing {path}: owned by uid {st.st_uid}, not root")
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise UnsafePath(f"refusing {path}: writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})")


def _check_private_dir(st: os.stat_result, path: str) -> None:
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"refusing {path}: not a directory")
    if st.st_uid != 0 or stat.S_IMODE(st.st_mode) & 0o077:
        raise UnsafePath(f"refusing {path}: must be a root-owned 0700 directory "
                         f"(it is uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}); fix it by hand")


def open_private_dir(path: str, *, create: bool) -> int:
    """An fd of ``path``, a root-owned 0700 directory; created (0700) when missing and asked
    to. Every parent is opened without following links and checked."""
    if not os.path.isabs(path):
        raise UnsafePath(f"refusing {path}: not an absolute path")
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise UnsafePath(f"refusing {path}: not a plain path")
    fd = os.open("/", _DIR_FLAGS)
    walked = ""
    try:
        for i, name in enumerate(parts):
            walked += "/" + name
            last = i == len(parts) - 1
            try:
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not (last and create):
                    raise UnsafePath(f"refusing {path}: {walked} does not exist") from None
                os.mkdir(name, 0o700, dir_fd=fd)     # fails if something appeared meanwhile
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                # ELOOP/ENOTDIR: a link or a file where a directory should be
                raise UnsafePath(f"refusing {path}: {walked}: {e.strerror}") from None
            os.close(fd)
            fd = nfd
            st = os.fstat(fd)
            (_check_private_dir if last else _check_component)(st, walked)
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_subdir(dfd: int, name: str, where: str, *, create: bool) -> int:
    """A root-owned 0700 subdirectory of an already checked directory."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
    except FileNotFoundError:
        if not create:
            raise
        os.mkdir(name, 0o700, dir_fd=dfd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
    except OSError as e:
        raise UnsafePath(f"refusing {where}/{name}: {e.strerror}") from None
    try:
        _check_private_dir(os.fstat(fd), f"{where}/{name}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_new(dfd: int, name: str, data: bytes) -> None:
    """Create ``name`` exclusively (mode 0600); FileExistsError if it is there already."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=dfd)
    try:
        os.fchmod(fd, 0o600)          # whatever the umask said
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(name, dir_fd=dfd)
        raise
    os.close(fd)


def read_private(dfd: int, name: str, where: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular, root-owned 0600 file of at most ``limit`` bytes."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise UnsafePath(f"refusing {where}/{name}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or stat.S_IMODE(st.st_mode) & 0o077:
            raise UnsafePath(f"refusing {where}/{name}: must be a root-owned 0600 regular file")
        if st.st_size > limit:
            raise UnsafePath(f"refusing {where}/{name}: larger than {limit} bytes")
        return os.read(fd, limit + 1)[:limit]
    finally:
        os.close(fd)


def names(dfd: int) -> list[str]:
    return sorted(os.listdir(dfd))
