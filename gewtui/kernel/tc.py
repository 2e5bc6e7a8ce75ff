"""tc clsact and cls_bpf helpers (pyroute2), always inside a named network namespace.

Used by sessions and by the intervention drop classifier. The rules they keep:
only clsact qdiscs (never a root qdisc); our filters are cls_bpf direct-action filters
found by (direction, prio, handle) and checked by name and program id before removal;
a clsact qdisc is removed only if we created it and it holds no filter at all, so a
foreign filter — or a foreign clsact — is never disturbed.
"""
from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from gewtui.errors import GewError

TC_H_CLSACT = 0xFFFF0000
PARENTS = {"ingress": 0xFFFFFFF2, "egress": 0xFFFFFFF3}
TCA_BPF_ID = 11
_SYS_BPF = 321 if os.uname().machine == "x86_64" else 280


T = TypeVar("T")


class TcError(GewError):
    """A tc operation failed; the message names the device and the step."""


@dataclass(frozen=True)
class TcFilter:
    direction: str
    prio: int
    handle: int
    kind: str
    name: str = ""
    prog_id: int = 0
    direct_action: bool = False


@dataclass
class RemoveResult:
    filter_removed: bool = False
    clsact_removed: bool = False
    foreign: str = ""               # why a recorded place now holds something not ours


def _with_ipr(netns: str, fn: Callable[[Any], T]) -> T:
    """Run fn(ipr) with a netlink socket inside the namespace. The socket is made on a
    thread that entered the namespace (gewtui.kernel.netns.call_in_netns): pyroute2's own
    netns= option forks the whole process for it, which a process holding bcc should not do."""
    from gewtui.kernel import netns as nsmod

    def body() -> T:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            return fn(ipr)

    if not netns:
        return body()
    if not os.path.exists(f"/run/netns/{netns}"):
        raise TcError(f"network namespace {netns!r} does not exist")
    return nsmod.call_in_netns(netns, body)


def _where(ifname: str, netns: str) -> str:
    return f"{netns or 'host'}/{ifname}"


def _index(ipr: Any, ifname: str, netns: str) -> int:
    idx = ipr.link_lookup(ifname=ifname)
    if not idx:
        raise TcError(f"no interface {_where(ifname, netns)}")
    return int(idx[0])


def _parent(direction: str) -> int:
    try:
        return PARENTS[direction]
    except KeyError:
        raise TcError(f"tc direction must be ingress or egress, not {direction!r}") from None


def _netlink_errno(e: Exception) -> int:
    return int(getattr(e, "code", 0) or 0)


def _has_clsact(ipr: Any, idx: int) -> bool:
    for q in ipr.get_qdiscs(idx):
        if q.get_attr("TCA_KIND") == "clsact" and q["index"] == idx:
            return True
    return False


def has_clsact(ifname: str, netns: str = "") -> bool:
    return _with_ipr(netns, lambda ipr: _has_clsact(ipr, _index(ipr, ifname, netns)))


def ensure_clsact(ifname: str, netns: str = "") -> bool:
    """Add a clsact qdisc if the device has none; True if we created it."""
    def op(ipr: Any) -> bool:
        idx = _index(ipr, ifname, netns)
        if _has_clsact(ipr, idx):
            return False
        try:
            ipr.tc("add", "clsact", idx)
        except Exception as e:
            if _netlink_errno(e) == errno.EEXIST:  # someone else added it meanwhile
                return False
            raise TcError(f"cannot add clsact on {_where(ifname, netns)}: {e}") from None
        return True

    return _with_ipr(netns, op)


def _bpf_prog_id(opts: Any) -> int:
    """TCA_BPF_ID (attribute 11, u32) from the raw TCA_OPTIONS: pyroute2 0.9 does not
    decode it, and it is what tells our filter from a foreign one at the same place."""
    try:
        buf, pos, end = opts.data, opts.offset + 4, opts.offset + opts.length
        while pos + 4 <= end:
            length, kind = struct.unpack_from("=HH", buf, pos)
            if length < 4:
                break
            if kind & 0x3FFF == TCA_BPF_ID and length >= 8:
                return int(struct.unpack_from("=I", buf, pos + 4)[0])
            pos += (length + 3) & ~3
    except (AttributeError, struct.error, TypeError):
        pass
    return 0


def prog_id_of_fd(prog_fd: int) -> int:
    """The kernel id of a loaded program (BPF_OBJ_GET_INFO_BY_FD), known before attaching,
    so a filter can be recorded, and later recognised, by the program it runs."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    info = ctypes.create_string_buffer(128)
    attr = ctypes.create_string_buffer(struct.pack("=IIQ", prog_fd, 128, ctypes.addressof(info)), 32)
    if libc.syscall(_SYS_BPF, 15, attr, 16) < 0:
        e = ctypes.get_errno()
        raise TcError(f"program fd {prog_fd}: {os.strerror(e)}")
    return int(struct.unpack_from("=I", info.raw, 4)[0])


def _list(ipr: Any, idx: int, directions: tuple[str, ...]) -> list[TcFilter]:
    out = []
    for direction in directions:
        for f in ipr.get_filters(idx, parent=_parent(direction)):
            handle = int(f["handle"])
            if handle == 0:  # the per-prio chain header, not a filter
                continue
            kind = f.get_attr("TCA_KIND") or ""
            name, prog_id, da = "", 0, False
            opts = f.get_attr("TCA_OPTIONS")
            if kind == "bpf" and opts is not None:
                name = opts.get_attr("TCA_BPF_NAME") or ""
                prog_id = _bpf_prog_id(opts)
                flags = int(opts.get_attr("TCA_BPF_FLAGS") or 0)
                da = bool(flags & 1)
            out.append(TcFilter(direction, int(f["info"]) >> 16, handle, kind, name, prog_id, da))
    return out


def list_filters(ifname: str, netns: str = "", direction: str | None = None) -> list[TcFilter]:
    """Every filter under the device's clsact (both directions unless one is named)."""
    dirs = (direction,) if direction else ("ingress", "egress")

    def op(ipr: Any) -> list[TcFilter]:
        idx = _index(ipr, ifname, netns)
        return _list(ipr, idx, dirs) if _has_clsact(ipr, idx) else []

    return _with_ipr(netns, op)


def add_bpf_filter(ifname: str, netns: str, direction: str, prog_fd: int, prio: int,
                   handle: int, name: str) -> TcFilter:
    """Attach prog_fd as a cls_bpf direct-action filter; the clsact must exist.

    Refuses if (prio, handle) is taken, so an existing filter is never replaced."""
    parent = _parent(direction)
    if not (1 <= prio <= 0xFFFF) or not (1 <= handle <= 0xFFFFFFFF):
        raise TcError(f"tc prio must be 1..65535 and handle 1..2^32-1 (got {prio}, {handle})")

    def op(ipr: Any) -> TcFilter:
        idx = _index(ipr, ifname, netns)
        if not _has_clsact(ipr, idx):
            raise TcError(f"no clsact qdisc on {_where(ifname, netns)}")
        for f in _list(ipr, idx, (direction,)):
            if f.prio == prio and f.handle == handle:
                raise TcError(f"tc {direction} prio {prio} handle {handle:#x} on {_where(ifname, netns)} is taken")
        try:
            ipr.tc("add-filter", "bpf", idx, handle, fd=prog_fd, name=name, parent=parent,
                   classid=1, direct_action=True, prio=prio)
        except Exception as e:
            raise TcError(f"cannot add tc filter on {_where(ifname, netns)} {direction}: {e}") from None
        for f in _list(ipr, idx, (direction,)):
            if f.prio == prio and f.handle == handle:
                return f
        raise TcError(f"tc filter on {_where(ifname, netns)} vanished right after it was added")

    return _with_ipr(netns, op)


def remove_filter(ifname: str, netns: str, direction: str, prio: int, handle: int,
                  name: str | None = None, prog_id: int = 0) -> bool:
    """Delete our filter if it is there and still ours (name and program id match)."""
    def op(ipr: Any) -> bool:
        idx = ipr.link_lookup(ifname=ifname)
        return bool(idx) and _remove(ipr, int(idx[0]), direction, prio, handle, name, prog_id) == ""

    return _with_ipr(netns, op)


def _remove(ipr: Any, idx: int, direction: str, prio: int, handle: int, name: str | None,
            prog_id: int) -> str:
    """'' if removed, 'absent' if not there, otherwise why it is not ours."""
    if not _has_clsact(ipr, idx):
        return "absent"
    for f in _list(ipr, idx, (direction,)):
        if f.prio != prio or f.handle != handle:
            continue
        if f.kind != "bpf" or (name is not None and f.name != name) or (prog_id and f.prog_id != prog_id):
            return f"holds {f.kind} filter {f.name or '?'} (program id {f.prog_id}), not ours"
        try:
            ipr.tc("del-filter", "bpf", idx, handle, parent=_parent(direction), prio=prio)
        except Exception as e:
            if _netlink_errno(e) in (errno.ENOENT, errno.EINVAL):
                return "absent"
            raise TcError(f"cannot remove tc filter prio {prio} handle {handle:#x}: {e}") from None
        return ""
    return "absent"


def remove_clsact_if_empty(ifname: str, netns: str = "") -> bool:
    """Remove the clsact qdisc only when it holds no filter in either direction."""
    def op(ipr: Any) -> bool:
        idx = ipr.link_lookup(ifname=ifname)
        return bool(idx) and _remove_clsact_if_empty(ipr, int(idx[0]))

    return _with_ipr(netns, op)


def _remove_clsact_if_empty(ipr: Any, idx: int) -> bool:
    if not _has_clsact(ipr, idx) or _list(ipr, idx, ("ingress", "egress")):
        return False
    try:
        ipr.tc("del", "clsact", idx)
    except Exception as e:
        if _netlink_errno(e) in (errno.ENOENT, errno.EINVAL):
            return False
        raise TcError(f"cannot remove clsact: {e}") from None
    return True


def remove_owned(rec: Any) -> RemoveResult:
    """Undo one manifest TcFilterRecord (see gewtui.kernel.bpffs) if it is still ours.

    The recorded netns inode and ifindex must still match: if the namespace or device
    was replaced, our filter died with the old one and the new one is not ours."""
    from gewtui.kernel import netns as nsmod

    res = RemoveResult()
    if rec.netns and not os.path.exists(f"/run/netns/{rec.netns}"):
        return res
    if rec.netns_inode and nsmod.netns_inode(rec.netns or None) != rec.netns_inode:
        res.foreign = "network namespace was replaced"
        return res

    def op(ipr: Any) -> RemoveResult:
        found = ipr.link_lookup(ifname=rec.ifname)
        if not found:
            return res
        idx = int(found[0])
        if rec.ifindex and idx != rec.ifindex:
            res.foreign = "device was replaced"
            return res
        why = _remove(ipr, idx, rec.direction, rec.prio, rec.handle, rec.name, rec.prog_id)
        res.filter_removed = why == ""
        if why not in ("", "absent"):
            res.foreign = why
        if rec.clsact_created:
            res.clsact_removed = _remove_clsact_if_empty(ipr, idx)
        return res

    return _with_ipr(rec.netns, op)
