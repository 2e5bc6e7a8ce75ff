"""Support for the fault tests on the real kernel plane (no tests here): running
`gew session apply` as a user would, traffic inside a test namespace, what a process holds
in the kernel, what bpffs holds outside gew's tree, reading a pinned map with bpf(2).

    python -m tests.faults.kernel_support churn NETNS N    # N refused connects inside NETNS
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from gewtui.kernel.bpffs import Instance
from gewtui.recording import RecordingReader
from tests.conftest import _bpf, pinned_map_id
from tests.support.probes_support import entered

ROOT = Path(__file__).resolve().parents[2]
GEW = [sys.executable, "-m", "gewtui.cli.main"]


def apply_session(inst: Instance, scope: list[str], record: str, *extra: str,
           env: dict | None = None) -> subprocess.Popen:
    argv = GEW + ["session", "apply", "--instance", inst.instance_id, "--record", record]
    for s in scope:
        argv += ["--scope", s]
    return subprocess.Popen(argv + list(extra), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=None if env is None else {**os.environ, **env})


def wait_stderr(p: subprocess.Popen, needle: str, timeout: float = 60) -> str:
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


def attached(p: subprocess.Popen) -> str:
    return wait_stderr(p, " attached (").split()[2]


def ended(p: subprocess.Popen, timeout: float = 60) -> str:
    """Wait for p; its remaining stderr."""
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        raise AssertionError(f"gew session apply did not end: {err[-2000:]}")
    return err


@contextlib.contextmanager
def stopped_safe(p: subprocess.Popen) -> Iterator[None]:
    """Whatever the test does, p ends: SIGCONT (it may be stopped), then SIGKILL."""
    try:
        yield
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait(10)


def refused_connects(ns: str, n: int, budget_s: float = 5.0) -> int:
    """Connection churn inside ns: n connects to a closed loopback port (each is a
    SYN_SENT→CLOSE, a reset and a drop in the kernel). Returns how many were made."""
    done = 0
    end = time.monotonic() + budget_s
    with entered(ns):
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


def read_records(path: str) -> list:
    with RecordingReader(path) as rd:
        recs = list(rd.records())
        assert rd.report.clean, rd.report.summary()
    return recs


def events_of(recs: list) -> list:
    return [r.event for r in recs if r.WhichOneof("body") == "event"]



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


def gone_after(progs: set[int], maps: set[int], timeout: float = 5.0) -> tuple[set[int], set[int]]:
    """The ids still loaded after up to timeout s (freed after an RCU grace period)."""
    from tests.conftest import kernel_bpf_objects

    deadline = time.monotonic() + timeout
    while True:
        now = kernel_bpf_objects()
        left = (progs & set(now["progs"]), maps & set(now["maps"]))
        if not any(left) or time.monotonic() > deadline:
            return left
        time.sleep(0.05)



def obj_id(path: str) -> int:
    """The kernel id of the object pinned at path (map or program: the id follows the type
    in both info structs)."""
    return pinned_map_id(path)


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
                out[path] = obj_id(path)
    return out



def pinned_u64(path: str) -> int:
    p = ctypes.create_string_buffer(path.encode())
    fd = _bpf(7, struct.pack("=QII", ctypes.addressof(p), 0, 0))
    try:
        key, val = ctypes.create_string_buffer(4), ctypes.create_string_buffer(8)
        _bpf(1, struct.pack("=IIQQQ", fd, 0, ctypes.addressof(key), ctypes.addressof(val), 0))
        return struct.unpack("=Q", val.raw)[0]
    finally:
        os.close(fd)


def bpffs_tree(inst: Instance, *own: str) -> dict[str, int]:
    """Every pin outside gew's tree (with its object id), plus every directory and pin under
    this test's instance; other instances (other tests running meanwhile) are not this
    test's business."""
    tree = bpffs_foreign_snapshot(*own)
    for d, _, files in os.walk(inst.bpffs_dir):
        tree[d] = 0
        for f in files:
            tree[os.path.join(d, f)] = 0
    return tree


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "churn":
    sys.exit(0 if refused_connects(sys.argv[2], int(sys.argv[3])) == int(sys.argv[3]) else 1)


def _in_mount_ns(script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a shell script in a private mount namespace (unshare -m), so the host's mounts
    are never touched."""
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-euc", script],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
