"""This host's key for stored engine states: what makes a state count as written here.

Place in the pipeline: gewtui.model.persist authenticates every state it writes with an
HMAC under this key and uses a stored state only when its HMAC checks, so a state that
another host, another user or an editor produced never changes what a replay concludes.

The key is 32 random bytes in ``/etc/gewyvern/state.key``, created once, exclusively
(``O_CREAT|O_EXCL|O_NOFOLLOW``, 0600), inside a directory that must be root-owned, mode
0700 and not a link: anyone else able to write there could plant a key they know. Both are
opened from a directory descriptor with ``O_NOFOLLOW``, and checked on the descriptor. A
directory or key that fails the check is refused with one line naming it, never repaired
(nothing is deleted or chmod-ed). Reading it needs root: without root a replay has no key,
so it ignores stored states and folds the events.
"""
from __future__ import annotations

import errno
import os
import stat
import time

from gewtui.errors import EX_CONFIG, GewError, NotRootError

KEY_DIR = "/etc/gewyvern"
KEY_NAME = "state.key"
KEY_BYTES = 32

_cache: dict[str, bytes] = {}


class KeyRefused(GewError):
    """The key's directory or file fails its checks (one line naming it)."""

    code = EX_CONFIG


def _open_dir(path: str, create: bool) -> int:
    made = False
    if create:
        try:
            os.mkdir(path, 0o700)
            made = True
        except FileExistsError:
            pass
        except OSError as e:
            raise KeyRefused(f"{path}: cannot create ({e.strerror})") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        if made and os.fstat(fd).st_uid == 0:
            os.fchmod(fd, 0o700)        # ours, just made: exactly 0700 whatever the umask
    except FileNotFoundError:
        raise KeyRefused(f"{path}: no key directory (stored states are written by root)") from None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise KeyRefused(f"{path}: not a directory (a link?); refused") from None
        raise KeyRefused(f"{path}: {e.strerror}") from None
    st = os.fstat(fd)
    if st.st_uid != 0 or stat.S_IMODE(st.st_mode) != 0o700:
        os.close(fd)
        raise KeyRefused(f"{path}: must be owned by root with mode 0700 (is uid {st.st_uid}, "
                        f"mode {stat.S_IMODE(st.st_mode):04o}); refused, nothing changed")
    return fd


def _read(dfd: int, path: str) -> bytes | None:
    try:
        fd = os.open(KEY_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                     dir_fd=dfd)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise KeyRefused(f"{path}/{KEY_NAME}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or stat.S_IMODE(st.st_mode) != 0o600:
            raise KeyRefused(f"{path}/{KEY_NAME}: must be a root-owned 0600 regular file; refused")
        return os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)


def state_key(create: bool = False) -> bytes:
    """This host's key (created when ``create`` and missing). NotRootError without root;
    KeyRefused when the directory or the key fails its checks."""
    path = KEY_DIR
    got = _cache.get(path)
    if got is not None:
        return got
    if os.geteuid() != 0:
        raise NotRootError("stored engine states are authenticated with a root-only key: "
                           "without root they are ignored")
    dfd = _open_dir(path, create)
    try:
        key = _read(dfd, path)
        if key is None and create:
            try:
                fd = os.open(KEY_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            except FileExistsError:
                fd = -1              # another gew made it meanwhile: read theirs
            if fd >= 0:
                try:
                    os.fchmod(fd, 0o600)    # ours, just made: exactly 0600 whatever the umask
                    os.write(fd, os.urandom(KEY_BYTES))
                    os.fsync(fd)
                finally:
                    os.close(fd)
            key = _read(dfd, path)
        for _ in range(50):
            # a key another process is still writing: wait for it, briefly
            if key is None or len(key) >= KEY_BYTES:
                break
            time.sleep(0.01)
            key = _read(dfd, path)
    finally:
        os.close(dfd)
    if key is None:
        raise KeyRefused(f"{path}/{KEY_NAME}: no key yet (states are written by root)")
    if len(key) != KEY_BYTES:
        raise KeyRefused(f"{path}/{KEY_NAME}: not a {KEY_BYTES}-byte key; refused")
    _cache[path] = key
    return key


def forget() -> None:
    """Drop the cached key (tests that move KEY_DIR)."""
    _cache.clear()
