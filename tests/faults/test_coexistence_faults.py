"""Coexistence (issue 7 case 4): a foreign tracepoint program on the same tracepoint as gew,
a foreign clsact with foreign filters on the interface a drop goes to, and foreign pins in
bpffs, all untouched and working through a whole session, a drop, its owner's SIGKILL and gc.

The foreign program is built from raw instructions and attached with perf_event_open in
its own process, as another tool would: nothing of gew is involved in it.

    python -m tests.faults.test_coexistence_faults foreign-tracer PIN_DIR
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import struct
import subprocess
import sys
import time
from typing import Iterator

import pytest

from tests.conftest import _bpf
from tests.faults.kernel_support import (GEW, ROOT, apply_session, attached, bpffs_foreign_snapshot, ended,
                                         events_of, pinned_u64, read_records, refused_connects, stopped_safe)

pytestmark = pytest.mark.root
_libc = ctypes.CDLL(None, use_errno=True)


# The foreign program counts every sock:inet_sock_set_state, in every namespace.
_SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}.get(os.uname().machine, 298)
PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_SET_BPF = 0x2400, 0x40042408


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("=BBhi", code, dst | src << 4, off, imm)


def _counting_tracepoint_prog(map_fd: int) -> int:
    """BPF_PROG_TYPE_TRACEPOINT: ``(*map[0])++`` atomically, return 0."""
    insns = b"".join([
        _insn(0x62, dst=10, off=-4, imm=0),          # *(u32 *)(r10 - 4) = 0
        _insn(0xBF, dst=2, src=10),                  # r2 = r10
        _insn(0x07, dst=2, imm=-4),                  # r2 += -4
        _insn(0x18, dst=1, src=1, imm=map_fd),       # r1 = map (ld_imm64, pseudo map fd)
        _insn(0x00),
        _insn(0x85, imm=1),                          # call bpf_map_lookup_elem
        _insn(0x15, dst=0, off=2, imm=0),            # if r0 == 0 goto +2
        _insn(0xB7, dst=1, imm=1),                   # r1 = 1
        _insn(0xDB, dst=0, src=1, off=0, imm=0),     # lock *(u64 *)(r0 + 0) += r1
        _insn(0xB7, dst=0, imm=0),                   # r0 = 0
        _insn(0x95),                                 # exit
    ])
    ibuf, lic = ctypes.create_string_buffer(insns), ctypes.create_string_buffer(b"GPL")
    attr = struct.pack("=IIQQIIQII16s", 5, len(insns) // 8, ctypes.addressof(ibuf), ctypes.addressof(lic),
                       0, 0, 0, 0, 0, b"gewt_foreign_tp")
    return _bpf(5, attr)


def _attach_tracepoint(prog_fd: int, group: str, name: str) -> int:
    tp_id = int(open(f"/sys/kernel/tracing/events/{group}/{name}/id").read())
    attr = ctypes.create_string_buffer(struct.pack("=IIQQQQQ", 2, 112, tp_id, 1, 0, 0, 0), 112)
    fd = _libc.syscall(_SYS_PERF_EVENT_OPEN, attr, -1, 0, -1, 8)   # PERF_FLAG_FD_CLOEXEC
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"perf_event_open: {os.strerror(e)}")
    libc_ioctl = _libc.ioctl
    if libc_ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd) != 0 or libc_ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"attaching to {group}:{name}: {os.strerror(e)}")
    return fd


def _foreign_tracer(pin_dir: str) -> None:
    """Child: attach the counting program, pin its map at pin_dir/count, say "ready PROG_ID",
    hold everything until killed."""
    from tests.conftest import bpf_map_create, bpf_obj_pin

    map_fd = bpf_map_create(b"gewt_foreign_ct")
    prog_fd = _counting_tracepoint_prog(map_fd)
    _attach_tracepoint(prog_fd, "sock", "inet_sock_set_state")
    os.makedirs(pin_dir, exist_ok=True)
    bpf_obj_pin(map_fd, f"{pin_dir}/count")
    info = ctypes.create_string_buffer(256)
    _bpf(15, struct.pack("=IIQ", prog_fd, 256, ctypes.addressof(info)))
    print("ready", struct.unpack_from("=I", info.raw, 4)[0], flush=True)
    while True:
        time.sleep(3600)


@pytest.fixture
def foreign_tracer() -> Iterator[tuple[str, int]]:
    """A foreign tool's tracepoint program, in its own process: (pinned counter, prog id)."""
    pin_dir = f"/sys/fs/bpf/gewt-foreign-tp-{secrets.token_hex(3)}"
    p = subprocess.Popen([sys.executable, "-m", "tests.faults.test_coexistence_faults", "foreign-tracer", pin_dir],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        if not line.startswith("ready"):
            p.kill()
            raise AssertionError(f"the foreign tracer did not start: {line!r} {p.stderr.read()[-2000:]}")
        yield f"{pin_dir}/count", int(line.split()[1])
        assert p.poll() is None, "the foreign tool died"
    finally:
        p.kill()
        p.wait(10)
        with contextlib.suppress(OSError):
            os.unlink(f"{pin_dir}/count")
        with contextlib.suppress(OSError):
            os.rmdir(pin_dir)


def _prog_loaded(prog_id: int) -> bool:
    from tests.conftest import kernel_bpf_objects

    return prog_id in kernel_bpf_objects()["progs"]


def test_case04_coexistence_foreign_tracepoint_clsact_filters_and_pins_through_session_drop_and_gc(
        netns_pair, gew_instance, foreign_pin, foreign_tracer, sched_cls_fd, tmp_path):
    from gewtui.kernel import tc
    from tests.conftest import tc_filters, tc_qdiscs
    from tests.support.drop_owner import _kill, _ours, _spawn_child, _tuple_json
    from tests.support.intervention_lab import Stream

    count_pin, foreign_prog = foreign_tracer
    pair = netns_pair
    # a foreign clsact on a's veth (where the drop goes) with two foreign filters
    subprocess.run(["tc", "-n", pair.a, "qdisc", "add", "dev", pair.a_if, "clsact"], check=True)
    tc.add_bpf_filter(pair.a_if, pair.a, "ingress", sched_cls_fd, 300, 7, "gewt_foreign")
    subprocess.run(["tc", "-n", pair.a, "filter", "add", "dev", pair.a_if, "egress", "prio", "5", "protocol",
                    "ip", "u32", "match", "ip", "dst", "192.0.2.1/32"], check=True)
    base_tc = {ns: (tc_filters(ns, "veth0"), tc_qdiscs(ns, "veth0")) for ns in (pair.a, pair.b)}
    base_pins = bpffs_foreign_snapshot(count_pin, foreign_pin)
    assert count_pin in base_pins and foreign_pin in base_pins

    def foreign_unchanged(when: str) -> None:
        assert {ns: (tc_filters(ns, "veth0"), tc_qdiscs(ns, "veth0")) for ns in base_tc} == base_tc, \
            f"foreign tc objects changed {when}"
        now = bpffs_foreign_snapshot(count_pin, foreign_pin)
        assert {k: now.get(k) for k in base_pins} == base_pins, f"foreign pins changed {when}"
        assert _prog_loaded(foreign_prog), f"the foreign tracepoint program is gone {when}"

    def foreign_counts(when: str) -> int:
        c0 = pinned_u64(count_pin)
        assert refused_connects(pair.b, 20) == 20
        c1 = pinned_u64(count_pin)
        assert c1 - c0 >= 40, f"the foreign tracepoint program stopped counting {when}"
        return c1

    foreign_counts("before the session")
    # 1. a whole session on the same tracepoint
    rec = str(tmp_path / "co.gewrec")
    p = apply_session(gew_instance, [f"netns={pair.a}", f"netns={pair.b}"], rec, "--duration", "3")
    with stopped_safe(p):
        attached(p)
        c0 = pinned_u64(count_pin)
        assert refused_connects(pair.a, 50) == 50
        c1 = foreign_counts("during the session")
        foreign_unchanged("during the session")
        err = ended(p)
    assert p.returncode == 0 and "observation complete" in err, err
    ours = [e for e in events_of(read_records(rec)) if e.WhichOneof("body") == "tcp_state"]
    assert len(ours) >= 2 * 70
    # both programs ran on every transition: the foreign one saw at least what gew recorded
    assert c1 - c0 >= len(ours)
    foreign_unchanged("after the session")
    foreign_counts("after the session")
    # 2. a drop on the interface holding the foreign clsact, its owner killed, then gc
    stream = Stream(pair, 5041)
    try:
        child, sid = _spawn_child({"netns": pair.a, "ifname": pair.a_if, "record": str(tmp_path / "drop.gewrec"),
                                   "instance": gew_instance.instance_id, "tuple": _tuple_json(stream.tuple()),
                                   "ttl": 120})
        try:
            assert len(_ours(pair)) == 2
            time.sleep(0.3)
            assert stream.rate(0.5) == 0, "the drop is not in force"
            foreign_counts("while a drop is active")
        finally:
            _kill(child)
        r = subprocess.run(GEW + ["session", "gc", "--instance", gew_instance.instance_id], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and f"session {sid}:" in r.stdout, r.stdout + r.stderr
        assert _ours(pair) == []
    finally:
        stream.close()
    foreign_unchanged("after the drop and gc")
    foreign_counts("after the drop and gc")
    assert gew_instance.sessions() == []




if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "foreign-tracer":
    _foreign_tracer(sys.argv[2])
