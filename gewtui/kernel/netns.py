"""Named network namespaces: identity (inode), listing, and running code or commands inside.

Scope resolution names namespaces by their inode (what the BPF programs compare against);
the lab and the tests run commands inside them. Code runs inside a namespace on a
short-lived thread that enters it with setns(2), so the caller's threads never move.
"""
from __future__ import annotations

import ctypes
import functools
import os
import subprocess
import threading
from typing import Any, Callable, Sequence, TypeVar

from gewtui.errors import GewError

NETNS_RUN = "/run/netns"
HOST_NETNS = "/proc/1/ns/net"
SELF_NETNS = "/proc/self/ns/net"
CLONE_NEWNET = 0x40000000

T = TypeVar("T")


@functools.lru_cache(maxsize=1)
def host_netns_path() -> str:
    """pid 1's namespace is the host's; where pid 1 is out of reach (a sandbox denying
    ptrace access to it), this process's own namespace stands in for it."""
    try:
        os.stat(HOST_NETNS)
        return HOST_NETNS
    except OSError:
        return SELF_NETNS


def netns_path(name: str | None) -> str:
    """The file that names the namespace: /run/netns/NAME, or the host's (see above)."""
    if not name or name == "host":
        return host_netns_path()
    if "/" in name or name in (".", ".."):
        raise GewError(f"invalid network namespace name {ascii(name)}")
    return os.path.join(NETNS_RUN, name)


def netns_inode(name: str | None) -> int:
    """st_ino of the namespace; the kernel's netns inode number (what BPF sees)."""
    try:
        return os.stat(netns_path(name)).st_ino
    except FileNotFoundError:
        raise GewError(f"no network namespace {name!r}") from None


def exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_RUN))
    except FileNotFoundError:
        return []


def netns_cmd(argv: Sequence[str], netns: str | None) -> list[str]:
    """argv prefixed with `ip netns exec NAME` (ip execs the command: the pid stays the same)."""
    if not netns or netns == "host":
        return list(argv)
    return ["ip", "netns", "exec", netns, *argv]


def run(argv: Sequence[str], netns: str | None = None, check: bool = True,
        timeout: float = 30.0) -> subprocess.CompletedProcess:
    r = subprocess.run(netns_cmd(argv, netns), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise GewError(f"{' '.join(argv[:4])} failed in {netns or 'host'}: {msg[0] if msg else r.returncode}")
    return r


def popen(argv: Sequence[str], netns: str | None = None, **kw: Any) -> subprocess.Popen:
    return subprocess.Popen(netns_cmd(argv, netns), **kw)


def add(name: str) -> bool:
    """Create the namespace; False if it already existed."""
    if exists(name):
        return False
    run(["ip", "netns", "add", name])
    return True


def delete(name: str) -> bool:
    """Delete the namespace if it exists (idempotent); True if it was removed."""
    if not exists(name):
        return False
    r = run(["ip", "netns", "del", name], check=False)
    return r.returncode == 0 and not exists(name)


def links(netns: str | None) -> list[tuple[int, str]]:
    """(ifindex, ifname) of every interface in the namespace, by netlink (the socket is
    made on a thread inside the namespace: pyroute2's netns= would fork this process)."""
    def here() -> list[tuple[int, str]]:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            return sorted((int(l["index"]), str(l.get_attr("IFLA_IFNAME"))) for l in ipr.get_links())

    if not netns or netns == "host":
        return here()
    if not exists(netns):
        raise GewError(f"no network namespace {netns!r}")
    return call_in_netns(netns, here)


def call_in_netns(name: str | None, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Run fn(*args) on a fresh thread that has entered the namespace; return its result.

    setns(2) moves only the calling thread, and that thread ends with fn, so nothing else
    in this process changes namespace."""
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns {name}: {os.strerror(e)}")
            finally:
                os.close(fd)
            box["value"] = fn(*args, **kw)
        except BaseException as e:  # handed back to the caller's thread
            box["error"] = e

    t = threading.Thread(target=body, name=f"netns-{name}", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
