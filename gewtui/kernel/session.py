"""Sessions: the transactional attach boundary the live source is built on.

``Session`` runs ``create → stage → verify → attach → commit`` over one kernel plane.
Every step first writes the manifest (gewtui.kernel.bpffs), then changes the kernel, so a
process killed at any point leaves a manifest naming all it may have created; any failure
in-process rolls back everything done so far (plane closed, tc filters and clsact qdiscs
we added removed, pins and manifest removed) and re-raises.

``LiveSession`` (gewtui.kernel.live, built on this module) is what `gew session apply`, the
TUI and the shell use: orphan cleanup of its instance, scope resolution, capability
verification, the transaction, the recording, and a poll loop that yields L0 events and keeps the stats (events, lost, completeness,
BPF cost, recording size). It installs no signal handlers; its owner does.

Test-only failure injection: ``fault="<step>"`` makes that step fail after its work is
done, ``fault="<step>:hang"`` makes the process wait there (until a signal) so a test can
SIGKILL it mid-transaction. ``GEW_TEST_FAULT_INJECT`` carries the same value into a
`gew session apply` subprocess. It can only make a session fail or wait, never enable
anything.
"""
from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Callable

from gewtui.errors import GewError, ScopeError, SessionError, one_line
from gewtui.kernel import tc as tcmod
from gewtui.kernel.bpffs import Instance, Log, Manifest, TcFilterRecord, proc_start_time, validate_name
from gewtui.kernel.plane_contract import KernelPlaneLike
from gewtui.kernel.scope import ResolvedScope
from gewtui.pb import events_pb2

STEPS = ("create", "stage", "verify", "attach", "commit")
FAULT_ENV = "GEW_TEST_FAULT_INJECT"
RECORDINGS_DIR = "/var/lib/gewyvern/recordings"


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def fault_from_env() -> str | None:
    """The test-only fault spec from the environment (see the module docstring)."""
    v = os.environ.get(FAULT_ENV, "").strip()
    return v or None


def _parse_fault(spec: str | None) -> tuple[str, str] | None:
    if not spec:
        return None
    step, _, mode = spec.partition(":")
    if step not in STEPS or mode not in ("", "fail", "hang"):
        raise GewError(f"bad fault injection {spec!r}: use <step>[:fail|:hang], step one of {', '.join(STEPS)}")
    return step, mode or "fail"


@dataclass
class PlaneContext:
    """What a plane factory gets: the scope, the event sink and the session's tc hook."""

    session_id: str
    instance_id: str
    scope: ResolvedScope
    on_event: Callable[[events_pb2.Event], None]
    add_tc_filter: Callable[..., TcFilterRecord]
    ringbuf_pages: int | None = None
    allow_risky: bool = False
    bpf_stats: bool = False          # time every program run in the kernel (see PlaneConfig)


PlaneFactory = Callable[[PlaneContext], KernelPlaneLike]


def default_plane_factory(ctx: PlaneContext) -> KernelPlaneLike:
    from gewtui.kernel.plane import KernelPlane

    plane = KernelPlane.for_session(ctx)
    # risky probe units run only with the local --allow-risky (the plane skips them otherwise)
    plane.config.allow_risky = bool(ctx.allow_risky)
    return plane


class Session:
    """One transactional session of one instance. Use open() then close(); both idempotent."""

    def __init__(self, scope: ResolvedScope, plane_factory: PlaneFactory | None = None, *,
                 instance: str | Instance = "default", session_id: str | None = None,
                 recording_path: str = "", allow_risky: bool = False,
                 allow_intervention: bool = False, ringbuf_pages: int | None = None,
                 on_event: Callable[[events_pb2.Event], None] | None = None,
                 fault: str | None = None, log: Log | None = None, bpf_stats: bool = False,
                 before_attach: Callable[[KernelPlaneLike], None] | None = None):
        self.instance = instance if isinstance(instance, Instance) else Instance(instance)
        self.session_id = validate_name(session_id or new_session_id(), "session")
        self.scope = scope
        self.plane_factory = default_plane_factory if plane_factory is None else plane_factory
        self.before_attach = before_attach   # e.g. capability verification; may raise
        self.on_event = on_event or (lambda ev: None)
        self.ringbuf_pages = ringbuf_pages
        self.bpf_stats = bpf_stats
        self.log = log or (lambda s: None)
        self._fault = _parse_fault(fault)
        self.plane: KernelPlaneLike | None = None
        self.step = ""
        self.opened = False
        self.closed = False
        pid = os.getpid()
        self._save_lock = threading.RLock()
        self.manifest = Manifest(
            instance_id=self.instance.instance_id, session_id=self.session_id, owner_pid=pid,
            owner_start_time=proc_start_time(pid) or 0, recording=recording_path,
            scope=[str(e) for e in scope.entries] or ["netns=host"],
            allow_risky=allow_risky, allow_intervention=allow_intervention)
        self.bpffs_dir = self.instance.session_bpffs(self.session_id)

    # -- the transaction -----------------------------------------------------------------
    def open(self) -> "Session":
        if self.opened:
            return self
        try:
            for step in STEPS:
                self.step = step
                getattr(self, "_" + step)()
                self._inject(step)
        except BaseException as e:
            failed = self.step
            self._rollback()
            if isinstance(e, GewError):
                raise type(e)(f"session {self.session_id}: {failed} failed, rolled back: {e.message}",
                              e.code) from None
            if isinstance(e, Exception):
                raise SessionError(f"session {self.session_id}: {failed} failed, rolled back: "
                                   f"{one_line(e)}") from e
            raise  # KeyboardInterrupt / SystemExit: rolled back, keep propagating
        self.opened = True
        return self

    def _inject(self, step: str) -> None:
        if not self._fault or self._fault[0] != step:
            return
        if self._fault[1] == "hang":
            self.log(f"session {self.session_id}: test fault: waiting after {step}")
            while True:
                time.sleep(3600)
        raise SessionError(f"injected fault after {step}")

    def _save(self, state: str | None = None) -> None:
        # the capture thread's heartbeat and the owner's tc-filter records both save
        with self._save_lock:
            if state:
                self.manifest.state = state
            self.instance.write_manifest(self.manifest)

    def _create(self) -> None:
        self.manifest.started_unix_ns = time.time_ns()
        self.manifest.heartbeat_unix_ns = self.manifest.started_unix_ns
        self.manifest.heartbeat_ktime_ns = time.monotonic_ns()
        with self.instance.lock():  # gc of this instance never sees a half-written session
            if self.instance.session_exists(self.session_id):
                raise SessionError(f"session {self.session_id} already exists")
            self._save("creating")
        ctx = PlaneContext(self.session_id, self.instance.instance_id, self.scope,
                           self.on_event, self.add_tc_filter, self.ringbuf_pages, self.manifest.allow_risky,
                           self.bpf_stats)
        self.plane = self.plane_factory(ctx)

    def _stage(self) -> None:
        assert self.plane is not None
        self.plane.stage()
        self.manifest.programs = list(getattr(self.plane, "programs", []))
        self.manifest.maps = list(getattr(self.plane, "maps", []))
        self._save("staged")

    def _verify(self) -> None:
        assert self.plane is not None
        self.plane.verify()
        self.manifest.programs = list(getattr(self.plane, "programs", []))
        self.manifest.maps = list(getattr(self.plane, "maps", []))
        if self.before_attach is not None:
            self.before_attach(self.plane)
        self.scope.check_closed("verification")
        self.plane.set_scope(self.scope.filter)
        self._save("verified")

    def _attach(self) -> None:
        assert self.plane is not None
        self._save("attaching")
        try:
            self.plane.attach()
        except ScopeError:
            raise
        except GewError as e:
            raise ScopeError(f"incomplete observation forbids attaching: {e.message}") from None
        self.scope.check_closed("attach")
        self._save("attached")

    def _commit(self) -> None:
        assert self.plane is not None
        self.instance.make_session_bpffs(self.session_id)
        self._save("pinning")
        self.manifest.pins = list(self.plane.pin(self.bpffs_dir))
        self._save("committed")

    def _rollback(self) -> None:
        self.log(f"session {self.session_id}: rolling back after {self.step or 'create'}")
        self._teardown(verbose=True)

    def _teardown(self, verbose: bool) -> None:
        if self.plane is not None:
            try:
                self.plane.close()
            except Exception as e:  # the cleanup below must run whatever the plane says
                self.log(f"session {self.session_id}: plane close: {one_line(e)}")
        rep = self.instance.remove_session(self.session_id, self.manifest, self.log if verbose else None)
        if not verbose:
            self.log(f"session {self.session_id}: detached; removed {len(rep.removed_pins)} pin(s), "
                     f"{len(rep.removed_filters)} tc filter(s), {len(rep.removed_qdiscs)} clsact qdisc(s)")
        for e in rep.errors if not verbose else ():
            self.log(f"session {self.session_id}: cleanup: {e}")

    def close(self) -> None:
        """Detach and remove everything this session created. Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            self.manifest.state = "closing"
            self.instance.write_manifest(self.manifest)
        except OSError:
            pass
        self._teardown(verbose=False)

    # -- things added while running --------------------------------------------------------
    def heartbeat(self, events: int, lost: int, lag: int = 0) -> None:
        """Once a second from the capture: a sign of life, the counts, and how far the engine
        following the capture is behind it (``gew session list`` shows it)."""
        self.manifest.heartbeat_unix_ns = time.time_ns()
        self.manifest.heartbeat_ktime_ns = time.monotonic_ns()
        self.manifest.events, self.manifest.lost, self.manifest.lag = events, lost, lag
        if not self.closed:
            self._save()

    def register_tc_filter(self, rec: TcFilterRecord) -> TcFilterRecord:
        """Add (or update) a tc filter record in the manifest, before touching the kernel."""
        if rec not in self.manifest.tc_filters:
            self.manifest.tc_filters.append(rec)
        self._save()
        return rec

    def add_tc_filter(self, ifname: str, netns: str, direction: str, prog_fd: int, prio: int,
                      handle: int, name: str) -> TcFilterRecord:
        """Attach a cls_bpf direct-action filter, recorded write-ahead in the manifest so a
        crash at any point leaves orphan cleanup enough to remove it (and our clsact)."""
        from gewtui.kernel import netns as nsmod

        ns = "" if netns in ("", "host") else netns
        clsact_existed = tcmod.has_clsact(ifname, ns)
        if clsact_existed and any(f.prio == prio and f.handle == handle
                                  for f in tcmod.list_filters(ifname, ns, direction)):
            raise tcmod.TcError(f"tc {direction} prio {prio} handle {handle:#x} on {ns or 'host'}/{ifname} is taken")
        rec = TcFilterRecord(ifname=ifname, direction=direction, prio=prio, handle=handle, name=name,
                             netns=ns, netns_inode=nsmod.netns_inode(ns or None),
                             ifindex=_ifindex(ifname, ns), clsact_created=not clsact_existed,
                             prog_id=tcmod.prog_id_of_fd(prog_fd))
        self.register_tc_filter(rec)
        try:
            if not clsact_existed:
                rec.clsact_created = tcmod.ensure_clsact(ifname, ns)
            tcmod.add_bpf_filter(ifname, ns, direction, prog_fd, prio, handle, name)
        except BaseException:
            # Whatever happened, only a filter running our program id is removed.
            self.remove_tc_filter(rec)
            raise
        rec.state = "added"
        self._save()
        return rec

    def remove_tc_filter(self, rec: TcFilterRecord) -> None:
        """Remove one filter we added (and our clsact if now empty); drop it from the manifest."""
        tcmod.remove_owned(rec)
        if rec in self.manifest.tc_filters:
            self.manifest.tc_filters.remove(rec)
            if not self.closed:
                self._save()


def _ifindex(ifname: str, netns: str) -> int:
    from gewtui.kernel import netns as nsmod

    for idx, name in nsmod.links(netns or None):
        if name == ifname:
            return idx
    raise tcmod.TcError(f"no interface {netns or 'host'}/{ifname}")
