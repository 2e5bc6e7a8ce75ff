"""Faults on the real kernel plane through `gew session apply` (issue 7 cases 2, 4, 7, 8, 9,
13 and 15; the case map is tests/faults/README.md).

"Nothing lost / nobody let in" here means:
- case 2: a real session killed at any transaction step exists whole or not at all: after
  the kill and gc, no program, map, pin or manifest of it is left;
- case 4: a foreign tracepoint program, a foreign clsact with foreign filters and foreign
  pins keep working, unchanged, through a whole session, a drop and gc;
- case 7: with bpffs and tracefs remounted between runs, the next run attaches exactly one
  program per tracepoint and leaves none;
- case 8: with the consumer stopped, every record the kernel produced is in the recording
  or counted lost there, exactly, and the TUI shows the loss;
- case 9: a recording that fills its disk stops the observation with one line and stays
  readable;
- case 13: replaying a recording full of interventions through the shell, the TUI and
  export makes no bpf(2) call and opens no netlink socket;
- case 15: a scoped interface deleted under a real session is recorded and the session
  keeps observing.

Run as a module (``python -m tests.faults.test_kernel_faults WHAT ...``) it is one of the
children these tests start: a foreign tracepoint counter, or the TUI replaying a file.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from gewtui.kernel.bpffs import Instance
from gewtui.kernel.probes import UNITS
from gewtui.kernel.probes.base import C_LOST, C_PRODUCED, C_STRIDE, NPROBES
from gewtui.pb import events_pb2
from gewtui.recording import RecordingReader
from tests.conftest import _bpf

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
GEW = [sys.executable, "-m", "gewtui.cli.main"]
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


# -- helpers -------------------------------------------------------------------------------
def _apply(inst: Instance, scope: list[str], record: str, *extra: str,
           env: dict | None = None) -> subprocess.Popen:
    argv = GEW + ["session", "apply", "--instance", inst.instance_id, "--record", record]
    for s in scope:
        argv += ["--scope", s]
    return subprocess.Popen(argv + list(extra), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=None if env is None else {**os.environ, **env})


def _wait_stderr(p: subprocess.Popen, needle: str, timeout: float = 60) -> str:
    """Read p's stderr up to the first line containing needle (p keeps running)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"never saw {needle!r} on stderr: {''.join(seen)[-3000:]}")


def _attached(p: subprocess.Popen) -> str:
    return _wait_stderr(p, " attached (").split()[2]


def _end(p: subprocess.Popen, timeout: float = 60) -> str:
    """Wait for p; its remaining stderr."""
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        raise AssertionError(f"gew session apply did not end: {err[-2000:]}")
    return err


@contextlib.contextmanager
def _stopped_safe(p: subprocess.Popen) -> Iterator[None]:
    """Whatever the test does, p ends: SIGCONT (it may be stopped), then SIGKILL."""
    try:
        yield
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait(10)


@contextlib.contextmanager
def _entered(ns: str) -> Iterator[None]:
    """This thread in network namespace ns for the block (sockets made there stay there)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(target)
        os.close(own)


def _refused_connects(ns: str, n: int, budget_s: float = 5.0) -> int:
    """Connection churn inside ns: n connects to a closed loopback port (each is a
    SYN_SENT→CLOSE, a reset and a drop in the kernel). Returns how many were made."""
    done = 0
    end = time.monotonic() + budget_s
    with _entered(ns):
        while done < n and time.monotonic() < end:
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", 9))
            except ConnectionRefusedError:
                pass
            finally:
                s.close()
            done += 1
    return done


def _records(path: str) -> list:
    with RecordingReader(path) as rd:
        recs = list(rd.records())
        assert rd.report.clean, rd.report.summary()
    return recs


def _events(recs: list) -> list:
    return [r.event for r in recs if r.WhichOneof("body") == "event"]


def _possible_cpus() -> int:
    """The kernel sizes per-CPU map values by possible CPUs ("0-3", "0,2-5", ...)."""
    n = 0
    for part in open("/sys/devices/system/cpu/possible").read().strip().split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def read_pinned_counters(path: str) -> dict[int, tuple[int, dict[int, int]]]:
    """The kernel's own per-probe counters, read by this test from the session's pinned
    gew_counters map with bpf(2) (BPF_OBJ_GET, BPF_MAP_LOOKUP_ELEM), not through gew:
    {probe id: (produced, {cpu: lost})}."""
    p = ctypes.create_string_buffer(path.encode())
    fd = _bpf(7, struct.pack("=QII", ctypes.addressof(p), 0, 0))
    ncpu = _possible_cpus()
    out: dict[int, tuple[int, dict[int, int]]] = {}
    try:
        def per_cpu(idx: int) -> list[int]:
            key = ctypes.create_string_buffer(struct.pack("=I", idx))
            val = ctypes.create_string_buffer(8 * ncpu)
            _bpf(1, struct.pack("=IIQQQ", fd, 0, ctypes.addressof(key), ctypes.addressof(val), 0))
            return list(struct.unpack(f"={ncpu}Q", val.raw))

        for probe in range(NPROBES):
            produced = sum(per_cpu(probe * C_STRIDE + C_PRODUCED))
            lost = {cpu: n for cpu, n in enumerate(per_cpu(probe * C_STRIDE + C_LOST)) if n}
            if produced or lost:
                out[probe] = (produced, lost)
    finally:
        os.close(fd)
    return out


# -- case 8: event flood with the consumer stopped -------------------------------------------
# Each record of these units decodes to exactly one event of these kinds (a destroy's final
# tcp_probe summary and a listen overflow's rcvq_full companion are other kinds); the route,
# queue and tcp_probe units also emit summaries read from maps, so they are checked in total.
ONE_TO_ONE = {"tcp_state": ("tcp_state", "destroy", "cong_state"), "tcp_events": ("retransmit", "reset"),
              "drops": ("skb_drop",), "owner": ("owner",)}


@pytest.fixture
def lo_ns() -> Iterator[str]:
    """A namespace with only lo, up: nothing in it makes a record unless the test does."""
    ns = f"gewt-{secrets.token_hex(3)}-lo"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_case08_event_flood_with_consumer_stopped_is_counted_exactly(lo_ns, gew_instance, tmp_path):
    ns = lo_ns
    rec = str(tmp_path / "flood.gewrec")
    p = _apply(gew_instance, [f"netns={ns}"], rec, "--ringbuf-pages", "4")
    with _stopped_safe(p):
        sid = _attached(p)
        [entry] = gew_instance.sessions()
        counters = next(x for x in entry.manifest.pins if x.endswith("/gew_counters"))
        assert _refused_connects(ns, 30) == 30           # consumed normally
        time.sleep(0.5)
        p.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "T":
            assert time.monotonic() < deadline, "the consumer did not stop"
            time.sleep(0.01)
        made = _refused_connects(ns, 3000)
        time.sleep(0.2)
        kernel = read_pinned_counters(counters)           # the consumer is still stopped
        p.send_signal(signal.SIGCONT)
        _wait_stderr(p, "INCOMPLETE", timeout=10)          # the live status line says so
        p.send_signal(signal.SIGTERM)
        err = _end(p)
    assert p.returncode == 0, err
    assert f"session {sid} ended (sigterm)" in err and "observation INCOMPLETE" in err

    produced_k = sum(v[0] for v in kernel.values())
    lost_k = {(probe, cpu): n for probe, (_, lost) in kernel.items() for cpu, n in lost.items()}
    print(f"flood: {made} connects while stopped; kernel produced {produced_k}, lost {sum(lost_k.values())}")
    assert made >= 500 and sum(lost_k.values()) > 0, "a 16 KiB ring must overflow while nobody reads it"

    recs = _records(rec)
    events = _events(recs)
    end = recs[-1].end
    assert end.how == "sigterm"
    st = end.stats
    # every gap is a record: LostRecords per probe and CPU, with the window it covers
    lost_evs = [e for e in events if e.WhichOneof("body") == "lost"]
    ring_lost = [e.lost for e in lost_evs if e.lost.stage == "ringbuf-reserve"]
    assert [e.lost.stage for e in lost_evs if e.lost.stage != "ringbuf-reserve"] == []
    names = {u.probe_id: u.name for u in UNITS}
    by_probe_cpu: dict[tuple[int, int], int] = {}
    inv = {v: k for k, v in names.items()}
    for x in ring_lost:
        assert x.count > 0 and 0 < x.window_start_ns < x.window_end_ns
        by_probe_cpu[(inv[x.probe], x.cpu)] = by_probe_cpu.get((inv[x.probe], x.cpu), 0) + x.count
    assert by_probe_cpu == lost_k, "LostRecords in the recording differ from the kernel's counters"
    # nothing was produced after the flood: the final stats are the kernel counters read above
    lost_total = sum(lost_k.values())
    assert st.produced == produced_k and st.lost_records == lost_total
    # produced = recorded + lost, exactly
    assert st.produced == st.consumed + lost_total, (st.produced, st.consumed, lost_total)
    kinds: dict[str, int] = {}
    for e in events:
        kinds[e.WhichOneof("body")] = kinds.get(e.WhichOneof("body"), 0) + 1
    recorded_1to1 = 0
    for unit, ks in ONE_TO_ONE.items():
        pid = inv[unit]
        produced_u = kernel.get(pid, (0, {}))[0]
        lost_u = sum(kernel.get(pid, (0, {}))[1].values())
        recorded_u = sum(kinds.get(k, 0) for k in ks)
        assert produced_u == recorded_u + lost_u, (unit, produced_u, recorded_u, lost_u)
        recorded_1to1 += recorded_u
    assert kernel[inv["tcp_state"]][0] >= 2 * made           # SYN_SENT and CLOSE per connect
    # the rest of the records (route lookups) are the consumed ones not accounted above
    others = sum(v[0] - sum(v[1].values()) for k, v in kernel.items() if names[k] not in ONE_TO_ONE)
    assert st.consumed == recorded_1to1 + others
    # every event of the session is in the recording, ids without a gap
    assert [e.id for e in events] == list(range(1, len(events) + 1)) and st.events == len(events)
    # the session is marked incomplete, with the reason
    assert not st.observation_complete and "lost" in st.incomplete_reason
    # and the TUI shows it
    _tui_shows_the_loss(rec, lost_total, [x for x in ring_lost])


def _tui_shows_the_loss(rec: str, lost_total: int, gaps: list) -> None:
    import asyncio

    from gewtui.debugger.core import Debugger
    from gewtui.debugger.sources import ReplaySource
    from gewtui.tui.app import FixedClock, build_app
    from gewtui.tui.widgets.bars import StatusBar
    from gewtui.tui.widgets.panels import FlowView
    from tests.test_tui import command, text_of

    lo = min(g.window_start_ns for g in gaps)
    hi = max(g.window_end_ns for g in gaps)

    async def drive() -> tuple[str, str]:
        app = build_app(Debugger(ReplaySource(rec)), clock=FixedClock(), cursor_blink=False)
        async with app.run_test(size=(160, 50)) as pilot:
            await app.settle()
            v = await command(app, pilot, "goto end")
            assert v.cursor.complete and v.status.lost == lost_total
            status = text_of(app.screen.query_one(StatusBar))
            inside = [f.flow_id for f in v.flows.values() if lo <= f.first_ktime_ns <= hi]
            assert inside, "no flow lived inside the loss window"
            await command(app, pilot, f"flow {inside[0]}")
            return status, text_of(app.screen.query_one(FlowView).query_one("#flow-body"))

    status, flow = asyncio.run(drive())
    assert f"lost {lost_total}" in status, status
    assert "records may be missing between" in flow, flow


# -- case 4: coexistence with a foreign tracepoint program, clsact, filters and pins ----------
# The foreign program is built here from raw instructions and attached with perf_event_open,
# as another tool would: nothing of gew is involved. It counts every sock:inet_sock_set_state.
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


def _pinned_u64(path: str) -> int:
    p = ctypes.create_string_buffer(path.encode())
    fd = _bpf(7, struct.pack("=QII", ctypes.addressof(p), 0, 0))
    try:
        key, val = ctypes.create_string_buffer(4), ctypes.create_string_buffer(8)
        _bpf(1, struct.pack("=IIQQQ", fd, 0, ctypes.addressof(key), ctypes.addressof(val), 0))
        return struct.unpack("=Q", val.raw)[0]
    finally:
        os.close(fd)


def _obj_id(path: str) -> int:
    p = ctypes.create_string_buffer(path.encode())
    fd = _bpf(7, struct.pack("=QII", ctypes.addressof(p), 0, 0))
    try:
        info = ctypes.create_string_buffer(256)
        _bpf(15, struct.pack("=IIQ", fd, 256, ctypes.addressof(info)))
        return struct.unpack_from("=I", info.raw, 4)[0]
    finally:
        os.close(fd)


def bpffs_foreign_snapshot(*own: str) -> dict[str, int]:
    """Every pin in bpffs outside gew's own tree, with the id of the object it holds. Test
    pins (gewt-*) come and go while other suites run: only those under ``own`` count."""
    mine = {p.split("/")[4] for p in own}                # /sys/fs/bpf/<top>/...
    out = {}
    for d, dirs, files in os.walk("/sys/fs/bpf"):
        if d == "/sys/fs/bpf":
            dirs[:] = [x for x in dirs if x != "gewyvern" and (not x.startswith("gewt-") or x in mine)]
            files = [f for f in files if not f.startswith("gewt-") or f in mine]
        for f in files:
            path = os.path.join(d, f)
            with contextlib.suppress(OSError):
                out[path] = _obj_id(path)
    return out


@pytest.fixture
def foreign_tracer() -> Iterator[tuple[str, int]]:
    """A foreign tool's tracepoint program, in its own process: (pinned counter, prog id)."""
    pin_dir = f"/sys/fs/bpf/gewt-foreign-tp-{secrets.token_hex(3)}"
    p = subprocess.Popen([sys.executable, "-m", "tests.faults.test_kernel_faults", "foreign-tracer", pin_dir],
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
    from tests.faults.test_intervention_faults import _kill, _ours, _spawn_child, _tuple_json
    from tests.test_intervention_lab import Stream

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
        c0 = _pinned_u64(count_pin)
        assert _refused_connects(pair.b, 20) == 20
        c1 = _pinned_u64(count_pin)
        assert c1 - c0 >= 40, f"the foreign tracepoint program stopped counting {when}"
        return c1

    foreign_counts("before the session")
    # 1. a whole session on the same tracepoint
    rec = str(tmp_path / "co.gewrec")
    p = _apply(gew_instance, [f"netns={pair.a}", f"netns={pair.b}"], rec, "--duration", "3")
    with _stopped_safe(p):
        _attached(p)
        c0 = _pinned_u64(count_pin)
        assert _refused_connects(pair.a, 50) == 50
        c1 = foreign_counts("during the session")
        foreign_unchanged("during the session")
        err = _end(p)
    assert p.returncode == 0 and "observation complete" in err, err
    ours = [e for e in _events(_records(rec)) if e.WhichOneof("body") == "tcp_state"]
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



# -- case 2: the real command killed at every transaction step -----------------------------
def held_bpf_objects(pid: int) -> tuple[set[int], set[int]]:
    """(prog ids, map ids) process pid holds file descriptors for (from /proc/PID/fdinfo)."""
    progs, maps = set(), set()
    d = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(d):
        with contextlib.suppress(OSError):
            for line in open(os.path.join(d, fd)):
                if line.startswith("prog_id:"):
                    progs.add(int(line.split()[1]))
                elif line.startswith("map_id:"):
                    maps.add(int(line.split()[1]))
    return progs, maps


def _gone(progs: set[int], maps: set[int], timeout: float = 5.0) -> tuple[set[int], set[int]]:
    """The ids still loaded after up to timeout s (freed after an RCU grace period)."""
    from tests.conftest import kernel_bpf_objects

    deadline = time.monotonic() + timeout
    while True:
        now = kernel_bpf_objects()
        left = (progs & set(now["progs"]), maps & set(now["maps"]))
        if not any(left) or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


@pytest.mark.parametrize("step", ["create", "stage", "verify", "attach", "commit"])
def test_case02_sigkill_of_gew_session_apply_at_every_transaction_step(lo_ns, gew_instance, foreign_pin, tmp_path,
                                                                      step):
    from gewtui.kernel.session import FAULT_ENV

    rec = str(tmp_path / "t.gewrec")
    p = _apply(gew_instance, [f"netns={lo_ns}"], rec, env={FAULT_ENV: f"{step}:hang"})
    with _stopped_safe(p):
        _wait_stderr(p, f"test fault: waiting after {step}")
        progs, maps = held_bpf_objects(p.pid)
        [entry] = gew_instance.sessions()
        m = entry.manifest
        expected_state = {"create": "creating", "stage": "staged", "verify": "verified", "attach": "attached",
                          "commit": "committed"}[step]
        assert entry.alive and m.state == expected_state
        # bcc creates the maps when it compiles (stage) and loads the programs at verify
        assert bool(maps) == (step != "create") and bool(progs) == (step in ("verify", "attach", "commit"))
        assert bool(m.maps) == bool(maps)
        p.kill()
        p.wait(10)
    # whole or nothing: every map pinned (commit), or no pin at all
    sdir = gew_instance.session_bpffs(m.session_id)
    pins = sorted(os.listdir(sdir)) if os.path.isdir(sdir) else []
    if step == "commit":
        assert pins == sorted(m.maps) and {_obj_id(x) for x in m.pins} <= maps
    else:
        assert pins == []
    assert _gone(progs, set()) == (set(), set()), "a program outlived its owner"
    [entry] = gew_instance.sessions()
    assert entry.status == "orphan"
    r = subprocess.run(GEW + ["session", "gc", "--instance", gew_instance.instance_id], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and f"session {m.session_id}:" in r.stdout, r.stdout + r.stderr
    assert gew_instance.sessions() == [] and not os.path.exists(sdir)
    assert _gone(progs, maps) == (set(), set()), "a program or map of the killed session is still loaded"
    assert os.path.exists(foreign_pin)



# -- case 7: bpffs and tracefs unmounted and remounted between runs --------------------------
# In a private mount namespace (unshare -m), so the host's mounts are never touched; the
# first run pins into a bpffs instance of that namespace only (each bpf mount is its own).
def test_case07_tracefs_and_bpffs_remounted_between_runs_no_duplicate_attachments(lo_ns, gew_instance, tmp_path):
    host = sorted(line for line in open("/proc/self/mounts") if " bpf " in line or " tracefs " in line)
    gew = " ".join(GEW)
    inst = gew_instance.instance_id
    churn = f"{sys.executable} -m tests.faults.test_kernel_faults churn {lo_ns} 40"
    script = f"""
        umount /sys/fs/bpf; mount -t bpf bpf /sys/fs/bpf
        {gew} session apply --instance {inst} --scope netns={lo_ns} --record {tmp_path}/a.gewrec 2> {tmp_path}/a.err &
        pid=$!
        for i in $(seq 300); do grep -q ' attached (' {tmp_path}/a.err && break; sleep 0.1; done
        ls /sys/fs/bpf/gewyvern/instances/{inst}/sessions/*/gew_counters
        kill -9 $pid; wait $pid || true
        umount /sys/fs/bpf; umount /sys/kernel/tracing
        ! grep -qE ' (bpf|tracefs) ' /proc/self/mounts
        {gew} session gc --instance {inst}
        {gew} session apply --instance {inst} --scope netns={lo_ns} --record {tmp_path}/b.gewrec --duration 4 \
            2> {tmp_path}/b.err &
        pid=$!
        for i in $(seq 300); do grep -q ' attached (' {tmp_path}/b.err && break; sleep 0.1; done
        {churn}
        wait $pid
        grep -q ' /sys/fs/bpf bpf ' /proc/self/mounts && grep -q ' /sys/kernel/tracing tracefs ' /proc/self/mounts
        {gew} session list --instance {inst}
    """
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-euc", script],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    b_err = (tmp_path / "b.err").read_text() if (tmp_path / "b.err").exists() else ""
    assert r.returncode == 0, r.stdout + r.stderr + b_err
    assert "removed manifest" in r.stdout and "error" not in r.stdout
    assert r.stdout.rstrip().endswith(f"no sessions in instance {inst}")
    assert "observation complete" in b_err, b_err
    # each connect is seen once: one SYN_SENT per connect, not one per attachment
    syn = [e for e in _events(_records(f"{tmp_path}/b.gewrec")) if e.WhichOneof("body") == "tcp_state"
           and e.tcp_state.new_state == events_pb2.TCP_SYN_SENT and e.tcp_state.tuple.dport == 9]
    assert len(syn) == 40
    assert sorted(line for line in open("/proc/self/mounts") if " bpf " in line or " tracefs " in line) == host
    assert gew_instance.sessions() == []



# -- case 9: the recording's disk fills up mid-session --------------------------------------
@pytest.fixture
def tiny_fs(tmp_path) -> Iterator[Path]:
    d = tmp_path / "gewt-tiny"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "gewt-tiny", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_case09_recording_disk_full_mid_session_stops_observation_and_stays_readable(lo_ns, gew_instance, tiny_fs):
    rec = str(tiny_fs / "full.gewrec")
    p = _apply(gew_instance, [f"netns={lo_ns}"], rec)
    with _stopped_safe(p):
        sid = _attached(p)
        [entry] = gew_instance.sessions()
        maps = {_obj_id(x) for x in entry.manifest.pins}
        deadline = time.monotonic() + 30
        while p.poll() is None and time.monotonic() < deadline:
            _refused_connects(lo_ns, 200)
        err = _end(p)
    assert p.returncode == 74, err                        # EX_IOERR: the write failed
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"gew: recording {rec}: write failed (No space left on device)"), last
    readable_to = int(last.rsplit(" ", 1)[1])
    # observation stopped, and the session removed everything it had in the kernel
    assert f"session {sid}: detached; removed {len(maps)} pin(s)" in err
    assert gew_instance.sessions() == [] and _gone(set(), maps) == (set(), set())
    # the file stays readable: whole frames up to the byte the message names, nothing damaged
    assert os.path.getsize(rec) == readable_to
    with RecordingReader(rec) as rd:
        assert rd.header.session.session_id == sid
        events = list(rd.iter_events())
        assert rd.report.clean and rd.report.end_offset == readable_to, rd.report.summary()
    assert events[0].mark.kind == "started" and len(events) > 1000
    assert [e.id for e in events] == list(range(1, len(events) + 1))



# -- case 13: replay stays inert in the shell, the TUI and export --------------------------
def _intervention_recording(path: str) -> None:
    """A past session that had every override (allow_intervention, allow_risky) and drops:
    one TCP flow and, for it, drops that were active, expired and undone."""
    from gewtui.pb import intervention_pb2 as ipb, recording_pb2
    from gewtui.recording import RecordingWriter

    hdr = recording_pb2.RecordingHeader()
    hdr.session.session_id = "s-past"
    hdr.session.allow_intervention = hdr.session.allow_risky = True
    tup = events_pb2.Tuple(family=2, saddr=bytes([10, 0, 0, 1]), daddr=bytes([10, 0, 0, 2]), sport=40000,
                           dport=80, protocol=6)
    states = [events_pb2.TCP_SYN_SENT, events_pb2.TCP_ESTABLISHED]
    with RecordingWriter(path, hdr) as w:
        for i, st in enumerate(states + [events_pb2.TCP_ESTABLISHED] * 4, start=1):
            ev = events_pb2.Event(id=i, ktime_ns=i * 1_000_000)
            ev.tcp_state.tuple.CopyFrom(tup)
            ev.tcp_state.sock, ev.tcp_state.new_state = 0x1000, st
            ev.tcp_state.old_state = states[0] if i == 2 else (events_pb2.TCP_CLOSE if i == 1 else st)
            w.write_event(ev)
            for outcome in (ipb.ACTIVE, ipb.EFFECTIVE, ipb.EXPIRED):
                w.write(recording_pb2.Record(intervention=ipb.InterventionRecord(
                    intervention_id=10 * i + outcome, flow_id=1, action=ipb.DROP, outcome=outcome,
                    session_id="s-past", interfaces=["gewt-gone/veth0"], tuples=[tup])))


def _replay_frontend(frontend: str, path: str) -> None:
    """Child: replay path through one front end's real wiring and try to drop flow 1 with
    the typed confirmation an operator would give. Prints what the front end said."""
    import argparse
    import asyncio
    import io

    from gewtui.cli import tui_cmd

    ap = argparse.ArgumentParser()
    tui_cmd.add_arguments(ap, ("tui",))
    args = ap.parse_args(["--replay", path])
    with tui_cmd.open_debugger(args, path) as d:
        if frontend == "shell":
            from gewtui.debugger.runner import Runner
            from gewtui.shell.repl import Shell, make_console

            class Operator:                      # types the flow id when asked to confirm
                def prompt(self, text: str) -> str:
                    print("asked:", text)
                    return "1"

            out = io.StringIO()
            runner = Runner(d).start()
            try:
                shell = Shell(runner, console=make_console(out, width=200))
                shell._session = Operator()
                for line in ("goto end", "flow 1", "drop 1", "undo 1", "gate 1"):
                    shell.execute(line)
            finally:
                runner.stop()
            print(out.getvalue())
            return
        from gewtui.tui.app import FixedClock, build_app
        from gewtui.tui.messages import CommandOutput
        from gewtui.tui.widgets.bars import CommandBar

        app = build_app(d, clock=FixedClock(), cursor_blink=False)
        said: list[str] = []

        def hook(m) -> None:
            if isinstance(m, CommandOutput):
                said.extend(str(getattr(o, "text", o)) for o in m.outputs)

        async def drive() -> None:
            async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
                await app.settle()
                for line in ("goto end", "flow 1"):
                    await pilot.press("colon")
                    app.screen.query_one(CommandBar).value = line
                    await pilot.press("enter")
                    await app.settle()
                await pilot.press("d")               # drop: the typed confirmation dialog
                await pilot.pause()
                await pilot.press("1", "enter")
                await app.settle()
                await pilot.pause(0.2)

        asyncio.run(drive())
        print("\n".join(said))


def _strace(argv: list[str], tmp_path: Path, name: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run argv under strace, tracing bpf(2) and socket(2) in every thread and child."""
    out = tmp_path / f"{name}.strace"
    r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=bpf,socket", "-o", str(out), *argv], cwd=ROOT,
                       capture_output=True, text=True, timeout=120, input="goto end\nflow 1\ndrop 1\n")
    return r, out.read_text()


@pytest.mark.parametrize("frontend", ["shell", "tui", "gew-shell-cli", "export"])
def test_case13_replay_of_interventions_is_inert_in_every_front_end(tmp_path, frontend):
    import shutil

    if not shutil.which("strace"):
        pytest.skip("strace missing: it shows that replay makes no bpf(2) call")
    # the method can see a kernel call: a process that creates one map shows its bpf(2)
    _, control = _strace([sys.executable, "-c", "from tests.conftest import bpf_map_create; bpf_map_create()"],
                         tmp_path, "control")
    assert "bpf(BPF_MAP_CREATE" in control, control[-2000:]
    rec = str(tmp_path / "past.gewrec")
    _intervention_recording(rec)
    if frontend in ("shell", "tui"):
        argv = [sys.executable, "-m", "tests.faults.test_kernel_faults", "replay", frontend, rec]
    elif frontend == "gew-shell-cli":
        argv = GEW + ["shell", rec]
    else:
        argv = GEW + ["export", rec, "--what", "interventions"]
    r, trace = _strace(argv, tmp_path, frontend)
    # a scripted gew shell ends with 64 when a command was refused (the drop)
    assert r.returncode == (64 if frontend == "gew-shell-cli" else 0), r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    calls = [ln for ln in trace.splitlines() if " bpf(" in ln or "AF_NETLINK" in ln]
    assert calls == [], f"replay reached the kernel: {calls[:5]}"
    said = r.stdout
    if frontend == "export":
        assert said.count("DROP") >= 6 and "ACTIVE" in said
    elif frontend == "gew-shell-cli":
        assert "drop needs an interactive terminal" in said + r.stderr
    else:
        assert "a replayed recording is inert" in said, said
        if frontend == "shell":
            assert "asked:" in said                 # the operator did confirm



# -- case 15: a scoped interface deleted under a real session --------------------------------
def test_case15_scoped_interface_deleted_mid_session_is_recorded_and_observation_goes_on(lo_ns, gew_instance,
                                                                                          tmp_path):
    subprocess.run(["ip", "-n", lo_ns, "link", "add", "gewtv0", "type", "veth", "peer", "name", "gewtv1"],
                   check=True)
    rec = str(tmp_path / "gone.gewrec")
    p = _apply(gew_instance, [f"netns={lo_ns}"], rec, "--duration", "4")
    with _stopped_safe(p):
        sid = _attached(p)
        assert _refused_connects(lo_ns, 10) == 10
        subprocess.run(["ip", "-n", lo_ns, "link", "del", "gewtv0"], check=True)   # takes its peer too
        noticed = _wait_stderr(p, f"session {sid}: scope change:", timeout=5)   # within a second
        assert "gewtv" in noticed
        _wait_stderr(p, "INCOMPLETE", timeout=5)             # the status line says so
        t_after = time.monotonic_ns()
        assert _refused_connects(lo_ns, 10) == 10
        err = _end(p)
    assert p.returncode == 0, err
    assert f"session {sid} ended (duration)" in err and "observation INCOMPLETE" in err
    recs = _records(rec)
    events = _events(recs)
    changes = [e.scope_change for e in events if e.WhichOneof("body") == "scope_change"]
    assert sorted(c.iface for c in changes) == ["gewtv0", "gewtv1"]
    assert all(c.what == "iface-removed" and not c.observation_complete and c.netns == lo_ns for c in changes)
    # still observing after the change: the connects made afterwards are recorded
    later = [e for e in events if e.WhichOneof("body") == "tcp_state" and e.ktime_ns > t_after
             and e.tcp_state.new_state == events_pb2.TCP_SYN_SENT]
    assert len(later) == 10
    end = recs[-1].end
    assert end.how == "duration" and not end.stats.observation_complete
    assert "gewtv0 disappeared" in end.stats.incomplete_reason
    assert gew_instance.sessions() == []



# -- case 1: SIGKILL while observing, then the next start ----------------------------------
def _bpffs_tree(inst: Instance, *own: str) -> dict[str, int]:
    """Every pin outside gew's tree (with its object id), plus every directory and pin under
    this test's instance; other instances (other tests running meanwhile) are not this
    test's business."""
    tree = bpffs_foreign_snapshot(*own)
    for d, _, files in os.walk(inst.bpffs_dir):
        tree[d] = 0
        for f in files:
            tree[os.path.join(d, f)] = 0
    return tree


def _all_tc(pair) -> dict[str, str]:
    from tests.conftest import tc_filters, tc_qdiscs

    return {ns: tc_filters(ns, "veth0") + tc_qdiscs(ns, "veth0") for ns in (pair.a, pair.b)}


def test_case01_sigkill_while_observing_then_next_start_restores_the_baseline(netns_pair, gew_instance,
                                                                              foreign_pin, sched_cls_fd, tmp_path):
    from gewtui.kernel import tc

    pair = netns_pair
    assert tc.ensure_clsact("veth0", pair.b)
    tc.add_bpf_filter("veth0", pair.b, "ingress", sched_cls_fd, 7, 7, "gewt_foreign")
    tc_before, bpffs_before = _all_tc(pair), _bpffs_tree(gew_instance, foreign_pin)
    rec = str(tmp_path / "killed.gewrec")
    p = _apply(gew_instance, [f"netns={pair.a}", f"netns={pair.b}"], rec)
    with _stopped_safe(p):
        sid = _attached(p)
        [entry] = gew_instance.sessions()
        maps = {_obj_id(x) for x in entry.manifest.pins}
        progs, _ = held_bpf_objects(p.pid)
        assert _refused_connects(pair.a, 25) == 25
        time.sleep(2.2)                               # two heartbeats and recording flushes
        t_kill = time.monotonic_ns()
        p.kill()
        p.wait(10)
    assert _gone(progs, set()) == (set(), set()), "a program outlived its owner"
    assert os.path.isdir(gew_instance.session_bpffs(sid)), "the kill left the pins (orphan cleanup removes them)"
    # the next start cleans the orphan first, and says so
    r = subprocess.run(GEW + ["session", "apply", "--instance", gew_instance.instance_id, "--scope",
                              f"netns={pair.a}", "--duration", "0.5", "--record", str(tmp_path / "next.gewrec")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and f"session {sid}: removed manifest" in r.stderr, r.stderr
    assert gew_instance.sessions() == []
    assert _gone(set(), maps) == (set(), set()), "a map of the killed session is still loaded"
    assert _all_tc(pair) == tc_before, "tc filter show differs from the pre-session baseline"
    assert _bpffs_tree(gew_instance, foreign_pin) == bpffs_before, "the bpffs listing differs from the pre-session baseline"
    # the recording: readable up to the kill, then the mark with the unknown-loss window
    recs = _records(rec)
    events = _events(recs)
    syn = [e for e in events if e.WhichOneof("body") == "tcp_state" and e.tcp_state.tuple.dport == 9
           and e.tcp_state.new_state == events_pb2.TCP_SYN_SENT]
    assert len(syn) == 25, "events flushed before the kill are missing"
    numbered = [e.id for e in events if e.id]
    assert numbered == list(range(1, len(numbered) + 1))
    ended = [e.mark for e in events if e.WhichOneof("body") == "mark" and e.mark.kind == "ended-without-cleanup"]
    assert len(ended) == 1
    started = next(e for e in events if e.WhichOneof("body") == "mark" and e.mark.kind == "started")
    w = ended[0]
    assert started.ktime_ns < w.unknown_from_ns <= t_kill < w.unknown_to_ns, (started.ktime_ns, w, t_kill)
    assert t_kill - w.unknown_from_ns < 2_000_000_000     # the last heartbeat: at most about a second old
    assert recs[-1].end.how == "gc-after-kill" and not recs[-1].end.stats.observation_complete



# -- case 3: kernel refusals on the real plane, in a process that lives on -------------------
# The stand-in plane of tests/faults/test_session_faults.py injects verifier rejection,
# EPERM, ENOSPC and a missing device at each step; here the real bcc plane fails inside this
# test's own process, which keeps running: every program and map fd it opened must be closed
# by the rollback (a process exit would hide a leak).
@pytest.mark.parametrize("failure", ["verify", "attach", "commit", "ring-buffer-too-large"])
def test_case03_real_plane_failure_rolls_back_everything_in_a_living_process(lo_ns, gew_instance, foreign_pin,
                                                                             tmp_path, failure):
    from gewtui.errors import GewError
    from gewtui.kernel.live import LiveSession

    held_before = held_bpf_objects(os.getpid())
    tree_before = _bpffs_tree(gew_instance, foreign_pin)
    kw = {"ringbuf_pages": 1 << 20} if failure == "ring-buffer-too-large" else {"fault": failure}
    live = LiveSession([f"netns={lo_ns}"], record=str(tmp_path / "r.gewrec"), instance=gew_instance.instance_id,
                       **kw)
    with pytest.raises(GewError) as ei:
        with live:
            pass
    msg = ei.value.message
    assert "\n" not in msg and "rolled back" in msg, msg
    if failure == "ring-buffer-too-large":
        assert "stage failed" in msg
    else:
        assert f"{failure} failed" in msg and "injected fault" in msg
    assert held_bpf_objects(os.getpid()) == held_before, "the rollback left a program or map fd open"
    assert gew_instance.sessions() == [] and _bpffs_tree(gew_instance, foreign_pin) == tree_before
    assert not (tmp_path / "r.gewrec").exists()
    assert os.path.exists(foreign_pin)



# -- case 6: hostile names and a hostile instance directory ---------------------------------
# Names are refused before any path is built (tests/faults/test_session_faults.py, tests/
# test_bpffs.py); here the directories themselves are hostile: session entries that are
# symlinks leading out of the instance, in /run and in bpffs, next to a real orphan.
def test_case06_symlinked_session_entries_never_lead_gc_outside_and_never_block_it(lo_ns, gew_instance,
                                                                                   foreign_pin, tmp_path):
    import json

    inst = gew_instance
    rec = str(tmp_path / "orphan.gewrec")
    p = _apply(inst, [f"netns={lo_ns}"], rec)
    with _stopped_safe(p):
        sid = _attached(p)
        maps = {_obj_id(x) for x in inst.read_manifest(sid).pins}
        p.kill()
        p.wait(10)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("not gew's\n")
    manifest = inst.read_manifest(sid)
    manifest.session_id, manifest.pins = "0evilrun", [foreign_pin]
    (outside / "manifest.json").write_text(manifest.to_json())
    before_outside = {f.name: f.read_bytes() for f in outside.iterdir()}
    # sorted before the real orphan, so a gc that stops at the first bad entry would leave it
    os.symlink(outside, os.path.join(inst.run_dir, "sessions", "0evilrun"))
    os.symlink(os.path.dirname(foreign_pin), os.path.join(inst.bpffs_dir, "sessions", "0evilpin"))
    try:
        r = subprocess.run(GEW + ["session", "gc", "--instance", inst.instance_id, "--json"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert "Traceback" not in r.stderr and r.returncode == 1, r.stdout + r.stderr   # 1: errors reported
        # nothing outside the instance was touched
        assert os.path.exists(foreign_pin)
        assert {f.name: f.read_bytes() for f in outside.iterdir()} == before_outside
        # the real orphan was cleaned all the same
        assert not os.path.exists(inst.session_bpffs(sid)) and _gone(set(), maps) == (set(), set())
        assert sid not in [e.session_id for e in inst.sessions()]
        errors = {x["session_id"]: x["errors"] for x in json.loads(r.stdout)["removed"]}
        assert errors[sid] == []
        for bad in ("0evilrun", "0evilpin"):
            assert len(errors[bad]) == 1 and "is outside instance" in errors[bad][0]
        # and the next start of the instance is not blocked by them either
        r = subprocess.run(GEW + ["session", "apply", "--instance", inst.instance_id, "--scope", f"netns={lo_ns}",
                                  "--duration", "0.5", "--record", str(tmp_path / "next.gewrec")],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "observation complete" in r.stderr, r.stderr
        assert os.path.exists(foreign_pin)
        assert {f.name: f.read_bytes() for f in outside.iterdir()} == before_outside
    finally:
        for link in (os.path.join(inst.run_dir, "sessions", "0evilrun"),
                     os.path.join(inst.bpffs_dir, "sessions", "0evilpin")):
            with contextlib.suppress(OSError):
                os.unlink(link)



# -- case 5: two instances at once, on the real plane ---------------------------------------
def test_case05_two_instances_orphan_cleanup_never_touches_the_other_live_session(lo_ns, gew_instance, tmp_path):
    from gewtui.kernel.bpffs import proc_start_time
    from tests.conftest import drop_instance

    a, b = gew_instance, Instance(gew_instance.instance_id + "b")
    pb = _apply(b, [f"netns={lo_ns}"], str(tmp_path / "b.gewrec"))
    pa = _apply(a, [f"netns={lo_ns}"], str(tmp_path / "a.gewrec"))
    try:
        with _stopped_safe(pb), _stopped_safe(pa):
            sid_b, sid_a = _attached(pb), _attached(pa)
            pa.kill()
            pa.wait(10)
            m_b = b.read_manifest(sid_b)
            b_maps = sorted(_obj_id(x) for x in m_b.pins)

            def b_untouched(when: str) -> None:
                [entry] = b.sessions()
                assert entry.alive and entry.session_id == sid_b, when
                assert sorted(_obj_id(x) for x in m_b.pins) == b_maps, f"B's pins changed {when}"
                assert pb.poll() is None, f"B died {when}"

            r = subprocess.run(GEW + ["session", "gc", "--instance", a.instance_id], cwd=ROOT, capture_output=True,
                               text=True, timeout=60)
            assert r.returncode == 0 and f"session {sid_a}:" in r.stdout and sid_b not in r.stdout, r.stdout
            b_untouched("after A's gc")
            assert _refused_connects(lo_ns, 10) == 10
            r = subprocess.run(GEW + ["session", "apply", "--instance", a.instance_id, "--scope", f"netns={lo_ns}",
                                      "--duration", "0.5", "--record", str(tmp_path / "a2.gewrec")],
                               cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and sid_b not in r.stderr, r.stderr
            b_untouched("after A's next start")
            # B's own gc: its owner is alive (pid and start time match)
            r = subprocess.run(GEW + ["session", "gc", "--instance", b.instance_id], cwd=ROOT, capture_output=True,
                               text=True, timeout=60)
            assert r.stdout.startswith("no orphan sessions"), r.stdout
            # the same pid with another start time is not the owner: a reused pid
            forged = b.read_manifest(sid_b)
            forged.session_id, forged.pins, forged.recording = "forged", [], ""
            forged.owner_start_time = (proc_start_time(pb.pid) or 0) + 1
            b.write_manifest(forged)
            r = subprocess.run(GEW + ["session", "gc", "--instance", b.instance_id], cwd=ROOT, capture_output=True,
                               text=True, timeout=60)
            assert "session forged:" in r.stdout and f"session {sid_b}:" not in r.stdout, r.stdout
            b_untouched("after B's gc of a session with B's pid and another start time")
            pb.send_signal(signal.SIGTERM)
            err = _end(pb)
        assert pb.returncode == 0 and "observation complete" in err, err
        syn = [e for e in _events(_records(str(tmp_path / "b.gewrec"))) if e.WhichOneof("body") == "tcp_state"
               and e.tcp_state.new_state == events_pb2.TCP_SYN_SENT and e.tcp_state.tuple.dport == 9]
        assert len(syn) == 10, "B stopped observing while A was cleaned"
    finally:
        drop_instance(b)
    assert a.sessions() == [] and b.sessions() == []


if __name__ == "__main__" and len(sys.argv) >= 3:
    if sys.argv[1] == "foreign-tracer":
        _foreign_tracer(sys.argv[2])
    elif sys.argv[1] == "replay":
        _replay_frontend(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "churn":
        sys.exit(0 if _refused_connects(sys.argv[2], int(sys.argv[3])) == int(sys.argv[3]) else 1)
