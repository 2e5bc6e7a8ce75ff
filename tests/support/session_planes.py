"""Support for the session tests (no tests here): a stand-in kernel plane that creates real
kernel objects, and a subprocess entry point running a LiveSession over it, so kill tests
can SIGKILL a real session owner at any moment.

    python -m tests.support.session_planes --instance I --scope netns=X [--record F] [--fault S]
                                         [--ids-file F]   (kernel ids of its objects, one a line)

prints "ready <session_id>" on stdout once the session is open, then polls until killed
(SIGTERM/SIGINT close it cleanly, like `gew session apply`).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from gewtui.errors import GewError
from gewtui.kernel.plane import PlaneStats, ScopeFilter
from gewtui.kernel.session import PlaneContext
from gewtui.kernel.tc import prog_id_of_fd
from gewtui.pb import events_pb2
from tests.conftest import bpf_map_create, bpf_obj_pin, bpf_prog_load_sched_cls

PRIO, HANDLE = 49152, 0x6E77


class RealObjectsPlane:
    """Creates real objects (names start with gewt_): a map at stage, a SCHED_CLS program at
    verify, one cls_bpf filter per scoped veth (through the session's tc hook) at attach, a
    pin at commit. poll() emits one synthetic event per call so the event path runs."""

    IDS_FILE: str | None = None    # subprocess owners append each object's kernel id here

    def __init__(self, ctx: PlaneContext, fail_at: str = "", fail_with: BaseException | None = None):
        self.ctx = ctx
        self.ids: set[int] = set()     # kernel ids of every program and map this plane created
        self.fail_at = fail_at
        self.fail_with = fail_with
        self.programs: list[str] = []
        self.maps: list[str] = []
        self.fds: list[int] = []
        self.prog_fd = -1
        self.map_fd = -1
        self.scope: ScopeFilter | None = None
        self.closed = 0
        self.polls = 0

    def _track(self, fd: int) -> int:
        self.fds.append(fd)
        oid = prog_id_of_fd(fd)        # BPF_OBJ_GET_INFO_BY_FD: the id is at the same place for maps
        self.ids.add(oid)
        if self.IDS_FILE:
            with open(self.IDS_FILE, "a") as f:
                f.write(f"{oid}\n")
        return fd

    def _maybe_fail(self, step: str) -> None:
        if self.fail_at == step:
            raise self.fail_with or GewError(f"plane refused at {step}")

    def stage(self) -> None:
        self.map_fd = self._track(bpf_map_create(b"gewt_state"))
        self.maps = ["gewt_state"]
        self._maybe_fail("stage")

    def verify(self) -> None:
        self.prog_fd = self._track(bpf_prog_load_sched_cls(b"gewt_obs"))
        self.programs = ["gewt_obs"]
        self._maybe_fail("verify")

    def set_scope(self, f: ScopeFilter) -> None:
        self.scope = f

    def attach(self) -> None:
        for itf in self.ctx.scope.interfaces:
            if itf.ifname.startswith("veth"):
                self.ctx.add_tc_filter(itf.ifname, itf.netns, "ingress", self.prog_fd, PRIO, HANDLE, "gewt_obs")
                self._maybe_fail("attach")

    def pin(self, directory: str) -> list[str]:
        p = os.path.join(directory, "gewt_state")
        bpf_obj_pin(self.map_fd, p)
        self._maybe_fail("commit")
        return [p]

    def poll(self, timeout_ms: int) -> int:
        time.sleep(timeout_ms / 1000)
        self.polls += 1
        ev = events_pb2.Event(ktime_ns=time.monotonic_ns())
        ev.mark.kind, ev.mark.detail = "probe-attached", f"poll {self.polls}"
        self.ctx.on_event(ev)
        return 1

    def stats(self) -> PlaneStats:
        return PlaneStats(events=self.polls, produced=self.polls)

    def close(self) -> None:
        self.closed += 1
        while self.fds:
            os.close(self.fds.pop())


class Planes(list):
    """A plane factory that keeps every plane it made (their kernel ids are checked)."""

    def __init__(self, cls=RealObjectsPlane, **kw):
        super().__init__()
        self.cls, self.kw = cls, kw

    def __call__(self, ctx):
        self.append(self.cls(ctx, **self.kw))
        return self[-1]

    @property
    def ids(self) -> set[int]:
        return set().union(*(p.ids for p in self)) if self else set()


def main() -> int:
    from gewtui.kernel.live import LiveSession

    ap = argparse.ArgumentParser()
    ap.add_argument("--instance", required=True)
    ap.add_argument("--scope", action="append", default=[])
    ap.add_argument("--record")
    ap.add_argument("--fault")
    ap.add_argument("--ids-file")
    args = ap.parse_args()
    RealObjectsPlane.IDS_FILE = args.ids_file

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    live = LiveSession(args.scope, record=args.record, instance=args.instance, plane_factory=RealObjectsPlane,
                       fault=args.fault, log=lambda s: print(s, file=sys.stderr, flush=True))
    with live:
        print(f"ready {live.session_id}", flush=True)
        while True:
            live.poll(50)


if __name__ == "__main__":
    sys.exit(main())
