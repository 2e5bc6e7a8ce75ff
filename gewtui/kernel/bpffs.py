"""Ownership of everything a session leaves in the kernel: names, paths, manifests, orphans.

A session owns exactly two directories and nothing else:

    /sys/fs/bpf/gewyvern/instances/<instance>/sessions/<session>/   pinned maps (bpffs)
    /run/gewyvern/instances/<instance>/sessions/<session>/manifest.json

bpffs holds only pins, so the manifest (what the session created: programs, maps, pins,
tc filters and clsact qdiscs, owner pid and process start time) lives beside it under /run.
The manifest is written ahead of every kernel change, so a session killed at any moment
leaves a manifest naming everything it may have created. Orphan cleanup reads only our
own instance's manifests and removes only what they name: the global bpffs is never
scanned, a foreign pin or tc filter is never touched.

Liveness is pid plus the process start time (/proc/PID/stat field 22), so a reused pid
is not mistaken for the owner.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import stat
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

from gewtui import securefs
from gewtui.errors import GewError, UsageError

BPFFS_MOUNT = "/sys/fs/bpf"
BPFFS_ROOT = BPFFS_MOUNT + "/gewyvern"
RUN_ROOT = "/run/gewyvern"
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
_MAX_MANIFEST = 4 << 20             # a manifest names pins and filters: far below this
#: Owners a directory on the way to gew's roots may have: root (and our own uid).
_OWNERS = frozenset({0, os.geteuid()})

_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

Log = Callable[[str], None]
# (recording, ktime_ns, why) -> the intervention records ending the drops a dead session had
# in force (gewtui.intervene.recovery.removed_after_kill). The kernel plane knows no
# interventions: whoever runs orphan cleanup hands it over (the CLI does).
EndDrops = Callable[[str, int, str], list]


def validate_name(value: str, what: str) -> str:
    """Refuse any instance or session name that could leave its directory.

    Only [A-Za-z0-9_-]{1,64}: no '.', '/', '..', spaces, control or non-ASCII characters,
    so a name can never be a path component other than itself."""
    if isinstance(value, str) and _NAME_RE.fullmatch(value):
        return value
    shown = ascii(value if isinstance(value, str) else str(value))
    if len(shown) > 40:
        shown = shown[:37] + "..."
    raise UsageError(f"invalid {what} name {shown}: use 1-64 characters from A-Z a-z 0-9 _ -")


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot), or None if the pid is gone.

    The comm field (2) may hold spaces and parentheses, so split after the last ')'."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2:].split()
    # rest[0] is field 3 (state); field 22 is rest[19].
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def owner_alive(pid: int, start_time: int) -> bool:
    """True only if the pid exists and is the same process that wrote the manifest."""
    if pid <= 0:
        return False
    return proc_start_time(pid) == start_time


@dataclass
class TcFilterRecord:
    """One tc filter (and possibly its clsact qdisc) a session added.

    Written to the manifest *before* the filter is added (state "intent"), updated to
    "added" with the kernel program id afterwards; cleanup deletes a filter only when
    prio, handle, kind, name and (once known) program id all match, so a foreign filter
    at the same place is never removed."""

    ifname: str
    direction: str                  # "ingress" | "egress"
    prio: int
    handle: int
    name: str
    netns: str = ""                 # ip netns name; "" = the host netns
    netns_inode: int = 0
    ifindex: int = 0
    clsact_created: bool = False    # we created the clsact qdisc: remove it when empty
    prog_id: int = 0
    state: str = "intent"

    @classmethod
    def from_dict(cls, d: dict) -> "TcFilterRecord":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


@dataclass
class Manifest:
    instance_id: str
    session_id: str
    owner_pid: int
    owner_start_time: int
    started_unix_ns: int = 0
    state: str = "creating"         # creating → staged → verified → attached → committed → closing
    recording: str = ""
    scope: list[str] = field(default_factory=list)
    programs: list[str] = field(default_factory=list)
    maps: list[str] = field(default_factory=list)
    pins: list[str] = field(default_factory=list)
    tc_filters: list[TcFilterRecord] = field(default_factory=list)
    heartbeat_unix_ns: int = 0      # last sign of life; bounds the unknown window after a kill
    heartbeat_ktime_ns: int = 0     # the same instant on CLOCK_MONOTONIC (event timestamps)
    events: int = 0
    lost: int = 0
    lag: int = 0                    # events the engine following the capture had not taken yet
    allow_risky: bool = False
    allow_intervention: bool = False
    version: int = MANIFEST_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError("manifest is not an object")
        d = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        d["tc_filters"] = [TcFilterRecord.from_dict(t) for t in d.get("tc_filters", [])]
        m = cls(**d)
        validate_name(m.instance_id, "instance")
        validate_name(m.session_id, "session")
        return m


@dataclass
class SessionEntry:
    """One session directory of an instance as `list` and `gc` see it."""

    session_id: str
    manifest: Manifest | None
    alive: bool
    problem: str = ""               # why the manifest could not be read, if it could not

    @property
    def status(self) -> str:
        return "alive" if self.alive else "orphan"


@dataclass
class CleanupReport:
    session_id: str
    removed_pins: list[str] = field(default_factory=list)
    removed_filters: list[str] = field(default_factory=list)
    removed_qdiscs: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)      # named in the manifest, not ours any more
    errors: list[str] = field(default_factory=list)
    manifest_removed: bool = False
    unknown_window_ns: tuple[int, int] = (0, 0)

    def lines(self) -> list[str]:
        out = [f"removed pin {p}" for p in self.removed_pins]
        out += [f"removed tc filter {f}" for f in self.removed_filters]
        out += [f"removed clsact qdisc {q}" for q in self.removed_qdiscs]
        out += [f"kept {k}" for k in self.kept]
        out += [f"error {e}" for e in self.errors]
        if self.manifest_removed:
            out.append("removed manifest")
        return out


class Instance:
    """One instance's part of the ownership tree. Everything else is out of reach.

    Both roots (/sys/fs/bpf/gewyvern, /run/gewyvern) and everything below them are private
    to root: created 0700, checked on every start (``ensure_roots``), never removed, and
    walked only through directory fds without following links (gewtui.securefs). A root
    that fails the check stops the session with one line naming it; an unprivileged user
    who creates /sys/fs/bpf/gewyvern first (bpffs is world-writable and sticky) can stop
    gew, but never make it touch a file of theirs or anyone else's."""

    def __init__(self, instance_id: str = "default", *, bpffs_root: str = BPFFS_ROOT,
                 run_root: str = RUN_ROOT, end_drops: EndDrops | None = None):
        self.instance_id = validate_name(instance_id, "instance")
        self.end_drops = end_drops          # None: an orphan's recording gets the mark only
        self.bpffs_root, self.run_root = bpffs_root, run_root
        self.bpffs_dir = os.path.join(bpffs_root, "instances", self.instance_id)
        self.run_dir = os.path.join(run_root, "instances", self.instance_id)

    # -- paths -------------------------------------------------------------------------
    def _open(self, path: str, *, create: bool = False) -> int:
        """A directory fd for ``path`` (inside one of the two roots), walked without links;
        FileNotFoundError when it does not exist and ``create`` is false."""
        top = self.bpffs_root if path.startswith(self.bpffs_root + os.sep) or path == self.bpffs_root \
            else self.run_root
        return securefs.open_dir(path, create=create, private_below=top, owners=_OWNERS)

    def _inside(self, path: str) -> str:
        """``path`` if every existing component of it is a private directory of ours (a
        link or a foreign directory raises UnsafePath naming it); nothing is created."""
        try:
            os.close(self._open(path))
        except FileNotFoundError:
            pass
        return path

    def ensure_roots(self, *, create: bool = True) -> None:
        """Create (or, without ``create``, only check those that exist) both roots: 0700,
        root-owned; UnsafePath names one that fails."""
        for top in (self.run_root, self.bpffs_root):
            if create or os.path.lexists(top):
                os.close(securefs.open_dir(top, create=create, private_below=top, owners=_OWNERS))

    def session_bpffs(self, session_id: str) -> str:
        sid = validate_name(session_id, "session")
        return self._inside(os.path.join(self.bpffs_dir, "sessions", sid))

    def session_run(self, session_id: str) -> str:
        sid = validate_name(session_id, "session")
        return self._inside(os.path.join(self.run_dir, "sessions", sid))

    def manifest_path(self, session_id: str) -> str:
        return os.path.join(self.session_run(session_id), MANIFEST)

    def make_session_bpffs(self, session_id: str) -> str:
        """Create the session's pin directory (0700, every parent checked); its path.

        Pinning goes by path (the kernel pins by name), which is safe below a root-only
        0700 directory: nobody else can place anything there."""
        path = self.session_bpffs(session_id)
        for attempt in range(3):
            try:
                os.close(self._open(path, create=True))
                return path
            except FileNotFoundError:
                # another instance's last session pruned an empty parent while this walk
                # was between two components: walk again
                if attempt == 2:
                    raise
        return path

    def session_exists(self, session_id: str) -> bool:
        for path in (self.session_run(session_id), self.session_bpffs(session_id)):
            try:
                os.close(self._open(path))
                return True
            except FileNotFoundError:
                pass
        return False

    # -- lock: create and gc never interleave within one instance -----------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        # The bpffs root is only checked here: bpffs may not be mounted (gc after an
        # unmount); the session's pin directory creates it when it pins.
        self.ensure_roots(create=False)
        dfd = self._open(self.run_dir, create=True)
        try:
            fd = os.open(".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dfd)
        finally:
            os.close(dfd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- manifests ---------------------------------------------------------------------
    def write_manifest(self, m: Manifest) -> None:
        """Atomic replace: a reader sees the old or the new manifest, never half of one."""
        if m.instance_id != self.instance_id:
            raise UsageError(f"manifest of instance {m.instance_id} written to {self.instance_id}")
        dfd = self._open(self.session_run(m.session_id), create=True)
        try:
            securefs.write_file(dfd, MANIFEST, m.to_json().encode())
        finally:
            os.close(dfd)

    def read_manifest(self, session_id: str) -> Manifest:
        dfd = self._open(self.session_run(session_id))
        try:
            fd = securefs.open_existing(dfd, MANIFEST, shown=self.manifest_path(session_id))
        finally:
            os.close(dfd)
        with os.fdopen(fd, "rb") as f:
            data = f.read(_MAX_MANIFEST + 1)
        if len(data) > _MAX_MANIFEST:
            raise ValueError(f"manifest over {_MAX_MANIFEST} bytes")
        m = Manifest.from_json(data.decode())
        if m.session_id != session_id or m.instance_id != self.instance_id:
            raise ValueError("manifest names another session")
        return m

    def session_ids(self) -> list[str]:
        """Session directories under this instance only (both trees); odd names are ignored."""
        ids: set[str] = set()
        for root in (os.path.join(self.run_dir, "sessions"), os.path.join(self.bpffs_dir, "sessions")):
            try:
                dfd = self._open(root)
            except FileNotFoundError:
                continue
            try:
                names = os.listdir(dfd)
            finally:
                os.close(dfd)
            ids.update(n for n in names if _NAME_RE.fullmatch(n))
        return sorted(ids)

    def sessions(self) -> list[SessionEntry]:
        out = []
        for sid in self.session_ids():
            try:
                m = self.read_manifest(sid)
            except FileNotFoundError:
                out.append(SessionEntry(sid, None, False, "no manifest"))
                continue
            except (OSError, ValueError, TypeError, GewError) as e:
                out.append(SessionEntry(sid, None, False, f"unreadable manifest: {_why(e)}"))
                continue
            out.append(SessionEntry(sid, m, owner_alive(m.owner_pid, m.owner_start_time)))
        return out

    # -- cleanup -----------------------------------------------------------------------
    def remove_session(self, session_id: str, manifest: Manifest | None, log: Log | None = None,
                       *, orphan: bool = False, problem: str = "") -> CleanupReport:
        """Remove everything the manifest names, then the pins, then the manifest.

        Idempotent: anything already gone is skipped. The manifest goes last, so a cleanup
        interrupted half-way is finished by the next one. For an orphan, its recording gets
        a record saying the session ended without cleanup, with the unknown window.
        Directories are removed through fds (securefs.remove_tree): a link is unlinked,
        never followed."""
        log = log or (lambda s: None)
        sid = validate_name(session_id, "session")
        rep = CleanupReport(session_id)
        if problem:
            rep.errors.append(f"{problem}: tc filters it may have named cannot be found")
        if manifest is not None:
            rep.unknown_window_ns = (manifest.heartbeat_ktime_ns, time.monotonic_ns())
            for rec in reversed(manifest.tc_filters):
                self._remove_tc(rec, rep)
            if orphan and manifest.recording:
                _mark_recording_ended(manifest, rep, self.end_drops)
        self._remove_dir(os.path.join(self.bpffs_dir, "sessions"), sid, rep, pins=True)
        self._remove_dir(os.path.join(self.run_dir, "sessions"), sid, rep, pins=False)
        self._prune_empty_bpffs()
        for line in rep.lines():
            log(f"session {session_id}: {line}")
        return rep

    def _remove_dir(self, parent: str, sid: str, rep: CleanupReport, *, pins: bool) -> None:
        try:
            pfd = self._open(parent)
        except FileNotFoundError:
            return
        removed: list[str] = []
        try:
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISLNK(os.stat(sid, dir_fd=pfd, follow_symlinks=False).st_mode):
                    # Only root can write here, so this is damage, not ours: said, and the
                    # link itself removed (remove_tree unlinks it, never follows it).
                    rep.errors.append(f"{os.path.join(parent, sid)}: a symbolic link, not a session "
                                      "directory; removed the link, not what it names")
            securefs.remove_tree(pfd, sid, shown=os.path.join(parent, sid), on_removed=removed.append,
                                 on_error=lambda p, e: rep.errors.append(
                                     f"{'unpin' if pins else 'remove'} {p}: {e.strerror}"))
        finally:
            os.close(pfd)
        if pins:
            rep.removed_pins += removed
        else:
            rep.manifest_removed = any(p.endswith("/" + MANIFEST) for p in removed)

    def _prune_empty_bpffs(self) -> None:
        """Remove this instance's bpffs directories once no session is left in them, and
        ``instances`` once no instance is, so a finished session leaves nothing in bpffs but
        the empty, root-only root. rmdir refuses a non-empty directory, so a session being
        created keeps its directories (and one racing this prune retries its creation:
        ``make_session_bpffs``). The root itself is never removed: a removed root is a name
        an unprivileged user could create first in world-writable bpffs."""
        instances = os.path.dirname(self.bpffs_dir)
        for parent, name in ((self.bpffs_dir, "sessions"), (instances, self.instance_id),
                             (os.path.dirname(instances), os.path.basename(instances))):
            try:
                pfd = self._open(parent)
            except (OSError, GewError):
                return
            try:
                os.rmdir(name, dir_fd=pfd)
            except OSError:
                return
            finally:
                os.close(pfd)

    def _remove_tc(self, rec: TcFilterRecord, rep: CleanupReport) -> None:
        from gewtui.kernel import tc

        where = f"{rec.netns or 'host'}/{rec.ifname} {rec.direction} prio {rec.prio} handle {rec.handle:#x}"
        try:
            res = tc.remove_owned(rec)
        except Exception as e:  # one failing device must not stop the rest of the cleanup
            rep.errors.append(f"tc {where}: {e}")
            return
        if res.filter_removed:
            rep.removed_filters.append(where)
        if res.foreign:
            rep.kept.append(f"tc filter at {where}: {res.foreign}")
        if res.clsact_removed:
            rep.removed_qdiscs.append(f"{rec.netns or 'host'}/{rec.ifname}")

    def gc(self, log: Log | None = None, *, skip: str | None = None) -> list[CleanupReport]:
        """Clean every orphan of this instance; live sessions (pid + start time) are left alone."""
        reports: list[CleanupReport] = []
        self.ensure_roots(create=False)   # a root another user made is said, even with nothing to do
        if not os.path.lexists(self.run_dir) and not os.path.lexists(self.bpffs_dir):
            return reports            # nothing of this instance exists: leave no trace either
        with self.lock():
            for entry in self.sessions():
                if entry.alive or entry.session_id == skip:
                    continue
                try:
                    reports.append(self.remove_session(entry.session_id, entry.manifest, log,
                                                       orphan=True, problem=entry.problem))
                except (GewError, OSError) as e:
                    # One bad entry (a symlink leading out of the instance, an unreadable
                    # directory) is reported and left; it must not stop the others' cleanup.
                    rep = CleanupReport(entry.session_id)
                    rep.errors.append(f"not cleaned: {_why(e)}")
                    if log is not None:
                        log(f"session {entry.session_id}: {rep.errors[-1]}")
                    reports.append(rep)
        return reports


def _mark_recording_ended(m: Manifest, rep: CleanupReport, end_drops: EndDrops | None) -> None:
    """Append 'ended without cleanup' (a SessionMark event with the unknown window, then a
    SessionEnd) to an orphan's recording; its torn tail, if any, is cut first."""
    try:
        from gewtui.pb import events_pb2, recording_pb2, session_pb2
        from gewtui.recording import RecordingWriter

        if not os.path.isfile(m.recording):
            return
        start, end = rep.unknown_window_ns
        ev = events_pb2.Event(ktime_ns=end)   # id 0: not numbered by the dead session
        ev.mark.kind = "ended-without-cleanup"
        ev.mark.detail = f"owner pid {m.owner_pid} died; cleaned by gc (pid {os.getpid()})"
        ev.mark.unknown_from_ns, ev.mark.unknown_to_ns = start, end
        stats = session_pb2.SessionStats(ktime_ns=end, events=m.events, lost_records=m.lost,
                                         observation_complete=False,
                                         incomplete_reason="session ended without cleanup")
        # Drops the dead session had in force ended with its tc filters (removed above);
        # the intervention log says when and why (its records are intervene's to write).
        ended = end_drops(m.recording, end, ev.mark.detail) if end_drops is not None else []
        with RecordingWriter.append(m.recording) as w:
            w.write_event(ev)
            for rec in ended:
                w.write(recording_pb2.Record(intervention=rec))
            w.write(recording_pb2.Record(end=session_pb2.SessionEnd(
                ktime_ns=end, how="gc-after-kill", detail=ev.mark.detail, stats=stats)))
        rep.kept.append(f"recording {m.recording} (marked ended without cleanup)")
    except Exception as e:  # the kernel cleanup matters more than the note in the file
        rep.errors.append(f"recording {m.recording}: {e}")


def _why(e: BaseException) -> str:
    return e.message if isinstance(e, GewError) else str(e)
