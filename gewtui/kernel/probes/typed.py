"""BTF-typed raw tracepoint programs ("tp_btf": BPF_PROG_TYPE_TRACING attached as
BPF_TRACE_RAW_TP), for the per-packet programs where reads are the cost.

A raw tracepoint program gets its arguments as plain numbers and reads every struct member
through bpf_probe_read_kernel(), a helper call each (~40 ns here). A typed one gets them as
pointers typed by the tracepoint's prototype (``btf_trace_<name>`` in vmlinux BTF): the
verifier checks each load against the struct's layout and lets it read members directly.
It runs through the same raw-tracepoint path (bpf_trace_run), so it is skipped only when it
nests in itself, exactly like the raw programs.

bcc loads only untyped raw tracepoints, so the program is compiled by bcc with the rest of
the session's object (its map references already resolved), and loaded and attached here
with the bpf() syscall. A kernel that refuses it (no BTF, an older verifier) keeps the raw
program: ``load`` raises and the plane falls back. Nothing here imports bcc.
"""
from __future__ import annotations

import ctypes
import os
import platform
import struct

from gewtui.runtime.btf import TYPEDEF, BTFError

_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
BPF_PROG_LOAD = 5
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_RAW_TP = 23
_ATTR_SIZE = 160     # up to attach_btf_obj_fd and beyond: the kernel accepts zeroed tails
_LOG_SIZE = 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class TypedLoadError(Exception):
    """The kernel refused the typed program (the first line of the verifier's log)."""


def _bpf(cmd: int, attr) -> int:
    if _SYS_BPF is None:
        raise TypedLoadError(f"no bpf() syscall number for {platform.machine()}")
    return _libc.syscall(ctypes.c_long(_SYS_BPF), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))


def load(insns: bytes, name: str, tracepoint: str, btf) -> int:
    """Load ``insns`` (a bcc function's compiled instructions) as a typed program for raw
    tracepoint ``tracepoint``; returns its file descriptor (the caller closes it)."""
    try:
        btf_id = btf.find(TYPEDEF, f"btf_trace_{tracepoint}")
    except BTFError as e:
        raise TypedLoadError(str(e)) from None
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(_LOG_SIZE)
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<IIQQIIQ", attr, 0, BPF_PROG_TYPE_TRACING, len(insns) // 8, ctypes.addressof(code),
                     ctypes.addressof(lic), 1, _LOG_SIZE, ctypes.addressof(log))
    raw_name = name.encode()[:15]
    attr[48:48 + len(raw_name)] = raw_name
    struct.pack_into("<I", attr, 68, BPF_TRACE_RAW_TP)      # expected_attach_type
    struct.pack_into("<I", attr, 108, btf_id)               # attach_btf_id
    fd = _bpf(BPF_PROG_LOAD, attr)
    if fd < 0:
        err = os.strerror(ctypes.get_errno())
        lines = [ln for ln in log.value.decode("utf-8", "replace").splitlines() if ln.strip()]
        raise TypedLoadError(f"{err}: {lines[-1] if lines else 'no verifier log'}")
    return int(fd)


def attach(prog_fd: int) -> int:
    """Attach a typed program to its tracepoint; returns the link's descriptor (closing it
    detaches)."""
    attr = ctypes.create_string_buffer(16)
    struct.pack_into("<QI", attr, 0, 0, prog_fd)      # name NULL: the tracepoint is in the program
    fd = _bpf(BPF_RAW_TRACEPOINT_OPEN, attr)
    if fd < 0:
        raise TypedLoadError(f"attaching: {os.strerror(ctypes.get_errno())}")
    return int(fd)


BPF_PROG_TEST_RUN = 10


def run_raw(prog_fd: int, *args: int) -> int:
    """Run a loaded raw tracepoint program once on this CPU with ``args`` as its arguments
    (BPF_PROG_TEST_RUN); returns the program's return value. Used for work userspace asks
    of the kernel side (a lifecycle entry handed over on request), never for tracing."""
    ctx = ctypes.create_string_buffer(struct.pack(f"<{len(args)}Q", *args), 8 * len(args))
    attr = ctypes.create_string_buffer(80)
    struct.pack_into("<I", attr, 0, prog_fd)
    struct.pack_into("<I", attr, 40, 8 * len(args))           # ctx_size_in
    struct.pack_into("<Q", attr, 48, ctypes.addressof(ctx))   # ctx_in
    if _bpf(BPF_PROG_TEST_RUN, attr) < 0:
        raise OSError(ctypes.get_errno(), f"running a program on request: {os.strerror(ctypes.get_errno())}")
    return struct.unpack_from("<I", attr, 4)[0]


class TypedPrograms:
    """The typed programs of one plane: their descriptors, their links, and why the kernel
    refused the ones that run raw instead."""

    def __init__(self):
        self.fds: dict[str, int] = {}       # program name -> fd
        self.links: dict[str, int] = {}     # program name -> link fd while attached
        self.refused: dict[str, str] = {}   # program name -> the kernel's reason

    def load(self, insns: bytes, name: str, tracepoint: str, btf) -> int | None:
        """The typed program's fd, or None when the kernel refused it (reason kept)."""
        try:
            self.fds[name] = load(insns, name, tracepoint, btf)
        except TypedLoadError as e:
            self.refused[name] = str(e)
            return None
        return self.fds[name]

    def attach(self, name: str) -> bool:
        """Attach ``name`` if it is loaded typed; False for a program that is not."""
        if name not in self.fds:
            return False
        self.links[name] = attach(self.fds[name])
        return True

    def detach(self, name: str) -> bool:
        fd = self.links.pop(name, None)
        if fd is None:
            return False
        os.close(fd)
        return True

    def close(self) -> None:
        for fd in list(self.links.values()) + list(self.fds.values()):
            try:
                os.close(fd)
            except OSError:
                pass
        self.links.clear()
        self.fds.clear()
