"""Shared fixtures: root gating, a namespace pair with a veth, and tiny raw BPF objects.

Tests marked ``@pytest.mark.root`` are skipped loudly (with the reason) when not root.
Every fixture removes what it created, whatever the test did.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import struct
import subprocess
from dataclasses import dataclass
from typing import Iterator

import pytest

ROOT_REASON = "needs root: attaches to the real kernel and creates namespaces"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") and os.geteuid() != 0:
        pytest.skip(ROOT_REASON)


def root_required() -> None:
    """Call at the top of a helper that needs root outside a marked test."""
    if os.geteuid() != 0:
        pytest.skip(ROOT_REASON)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass
class NetnsPair:
    a: str                  # namespace names (gewt-<tag>-a / -b)
    b: str
    a_if: str = "veth0"     # the veth end in each namespace
    b_if: str = "veth0"
    a_addr: str = "10.66.0.1"
    b_addr: str = "10.66.0.2"
    a_addr6: str = "fd66::1"
    b_addr6: str = "fd66::2"


@pytest.fixture
def netns_pair() -> Iterator[NetnsPair]:
    """Two fresh namespaces joined by a veth pair, addressed (v4 and v6) and up."""
    root_required()
    tag = secrets.token_hex(3)
    p = NetnsPair(f"gewt-{tag}-a", f"gewt-{tag}-b")
    try:
        _ip("netns", "add", p.a)
        _ip("netns", "add", p.b)
        _ip("link", "add", p.a_if, "netns", p.a, "type", "veth", "peer", "name", p.b_if, "netns", p.b)
        for ns, ifn, a4, a6 in ((p.a, p.a_if, p.a_addr, p.a_addr6), (p.b, p.b_if, p.b_addr, p.b_addr6)):
            _ip("-n", ns, "addr", "add", f"{a4}/24", "dev", ifn)
            _ip("-n", ns, "addr", "add", f"{a6}/64", "dev", ifn, "nodad")
            _ip("-n", ns, "link", "set", ifn, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield p
    finally:
        for ns in (p.a, p.b):
            _ip("netns", "del", ns, check=False)


# -- raw bpf(2): foreign objects that owe nothing to the code under test --------------------
_SYS_BPF = 321 if os.uname().machine == "x86_64" else 280
_libc = ctypes.CDLL(None, use_errno=True)


def _bpf(cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, 128)
    r = _libc.syscall(_SYS_BPF, cmd, buf, len(attr))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def bpf_map_create(name: bytes = b"gewt_foreign") -> int:
    """A 1-entry array map (BPF_MAP_CREATE)."""
    return _bpf(0, struct.pack("=IIIIIII16s", 2, 4, 8, 1, 0, 0, 0, name[:15]))


def bpf_prog_load_sched_cls(name: bytes = b"gewt_pass") -> int:
    """A SCHED_CLS program `r0 = -1 (TC_ACT_UNSPEC); exit` (BPF_PROG_LOAD): passes everything."""
    insns = struct.pack("=BBhi", 0xB7, 0, 0, -1) + struct.pack("=BBhi", 0x95, 0, 0, 0)
    ibuf, lic = ctypes.create_string_buffer(insns), ctypes.create_string_buffer(b"GPL")
    attr = struct.pack("=IIQQIIQII16s", 3, 2, ctypes.addressof(ibuf), ctypes.addressof(lic),
                       0, 0, 0, 0, 0, name[:15])
    return _bpf(5, attr)


def bpf_obj_pin(fd: int, path: str) -> None:
    p = ctypes.create_string_buffer(path.encode())
    _bpf(6, struct.pack("=QII", ctypes.addressof(p), fd, 0))


@pytest.fixture
def foreign_pin() -> Iterator[str]:
    """A map pinned by 'another tool' elsewhere in bpffs; removed afterwards."""
    root_required()
    d = f"/sys/fs/bpf/gewt-foreign-{secrets.token_hex(3)}"
    os.makedirs(d)
    fd = bpf_map_create()
    try:
        bpf_obj_pin(fd, f"{d}/map")
        yield f"{d}/map"
    finally:
        os.close(fd)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def gew_instance():
    """A fresh gewyvern instance (gewt-<hex>); every session of it is removed afterwards,
    live or not (they are this test's), then the instance's own directories."""
    from gewtui.kernel.bpffs import Instance

    root_required()
    inst = Instance("gewt-" + secrets.token_hex(4))
    try:
        yield inst
    finally:
        drop_instance(inst)


def drop_instance(inst) -> None:
    """Remove every session of a test instance (live or not: they are the test's), then the
    instance's own directories."""
    for entry in inst.sessions():
        inst.remove_session(entry.session_id, entry.manifest)
    shutil.rmtree(inst.run_dir, ignore_errors=True)
    for d in (inst.bpffs_dir + "/sessions", inst.bpffs_dir):
        with contextlib.suppress(OSError):
            os.rmdir(d)


@pytest.fixture
def sched_cls_fd() -> Iterator[int]:
    root_required()
    fd = bpf_prog_load_sched_cls()
    try:
        yield fd
    finally:
        os.close(fd)


def tc_filters(netns: str, dev: str) -> str:
    """`tc filter show` of both clsact directions, for before/after comparisons."""
    out = []
    for d in ("ingress", "egress"):
        r = subprocess.run(["tc", "-n", netns, "filter", "show", "dev", dev, d], capture_output=True, text=True)
        out.append(f"{d}:\n{r.stdout}")
    return "".join(out)


def tc_qdiscs(netns: str, dev: str) -> str:
    return subprocess.run(["tc", "-n", netns, "qdisc", "show", "dev", dev], capture_output=True, text=True).stdout


def _get_ids(next_cmd: int) -> list[int]:
    """BPF_{PROG,MAP}_GET_NEXT_ID walk: the kernel writes next_id after start_id."""
    ids, cur = [], 0
    while True:
        buf = ctypes.create_string_buffer(struct.pack("=II", cur, 0), 128)
        if _libc.syscall(_SYS_BPF, next_cmd, buf, 8) < 0:
            return ids
        cur = struct.unpack_from("=I", buf, 4)[0]
        ids.append(cur)


def _obj_name(id_: int, fd_cmd: int, name_off: int) -> str | None:
    try:
        fd = _bpf(fd_cmd, struct.pack("=I", id_))
    except OSError:
        return None
    try:
        info = ctypes.create_string_buffer(256)
        _bpf(15, struct.pack("=IIQ", fd, 256, ctypes.addressof(info)))
        return info.raw[name_off:name_off + 16].split(b"\0")[0].decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def kernel_bpf_objects() -> dict[str, dict[int, str]]:
    """Every loaded BPF program and map in the kernel: {"progs": {id: name}, "maps": {...}}."""
    return {
        "progs": {i: n for i in _get_ids(11) if (n := _obj_name(i, 13, 64)) is not None},
        "maps": {i: n for i in _get_ids(12) if (n := _obj_name(i, 14, 24)) is not None},
    }


def pinned_map_id(path: str) -> int:
    """The kernel id of the map pinned at path (BPF_OBJ_GET, then its info)."""
    p = ctypes.create_string_buffer(path.encode())
    fd = _bpf(7, struct.pack("=QII", ctypes.addressof(p), 0, 0))
    try:
        info = ctypes.create_string_buffer(256)
        _bpf(15, struct.pack("=IIQ", fd, 256, ctypes.addressof(info)))
        return struct.unpack_from("=I", info.raw, 4)[0]
    finally:
        os.close(fd)


def wait_maps_gone(ids: set[int], timeout: float = 3.0) -> set[int]:
    """Ids (maps or programs) still loaded after up to timeout s: the kernel frees them after
    an RCU grace period once the last reference (fd, pin, tc filter) is gone."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        objs = kernel_bpf_objects()
        left = ids & (set(objs["maps"]) | set(objs["progs"]))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)
