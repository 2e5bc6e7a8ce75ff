"""Bring lab scenarios up and down: namespaces, veth paths, addresses, routes, setup
commands, and generator processes — all recorded write-ahead in a state file.

/run/gewyvern/lab/state.json names every namespace a lab created and every generator pid
(with its process start time), before each is created. `down` reads only that file: it ends
exactly those pids (if the start time still matches) and deletes exactly those namespaces,
also after a crash of whoever ran `up`. Nothing here touches anything it did not create.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from gewtui.errors import EX_UNAVAILABLE, GewError, UsageError
from gewtui.kernel import netns as nsmod
from gewtui.kernel.bpffs import owner_alive, proc_start_time
from gewtui.lab.scenarios import PORT, Scenario, addresses, get

LAB_DIR = "/run/gewyvern/lab"
STATE = os.path.join(LAB_DIR, "state.json")
PREFIX = "gewlab-"
MAX_SECONDS = 600.0
_LAB_NAME_RE = re.compile(r"[a-z0-9]{1,12}")


class LabError(GewError):
    """The lab could not be built or taken down; the message says which step."""

    code = EX_UNAVAILABLE


@contextlib.contextmanager
def _locked_state() -> Iterator[dict]:
    """The state file under an exclusive lock; changes are written back atomically."""
    os.makedirs(LAB_DIR, mode=0o755, exist_ok=True)
    fd = os.open(os.path.join(LAB_DIR, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with open(STATE) as f:
                state = json.load(f)
            if not isinstance(state, dict) or not isinstance(state.get("labs"), dict):
                state = {"labs": {}}
        except (FileNotFoundError, ValueError):
            state = {"labs": {}}
        yield state
        tmp = STATE + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, STATE)
    finally:
        os.close(fd)


def read_state() -> dict:
    try:
        with open(STATE) as f:
            s = json.load(f)
        return s if isinstance(s, dict) and isinstance(s.get("labs"), dict) else {"labs": {}}
    except (OSError, ValueError):
        return {"labs": {}}


def netns_names(lab: str) -> dict[str, str]:
    mid = "" if lab == "default" else f"{lab}-"
    return {"client": f"{PREFIX}{mid}client", "server": f"{PREFIX}{mid}server"}


@dataclass
class Lab:
    """`with Lab("refused") as lab:` — up on enter, down on exit (exceptions included)."""

    scenario_name: str
    name: str = "default"
    max_seconds: float = MAX_SECONDS
    clients: bool = True             # False: servers and faults only (a test drives clients)
    scenario: Scenario = field(init=False)
    up_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.scenario = get(self.scenario_name)
        if self.name != "default" and not _LAB_NAME_RE.fullmatch(self.name):
            raise UsageError(f"invalid lab name {ascii(self.name)[:40]}: use 1-12 of a-z 0-9")
        self.netns = netns_names(self.name)
        self.addr = addresses(self.scenario.ipv6)
        self.run_dir = os.path.join(LAB_DIR, self.name)

    # -- what callers use ------------------------------------------------------------------
    @property
    def client_netns(self) -> str:
        return self.netns["client"]

    @property
    def server_netns(self) -> str:
        return self.netns["server"]

    @property
    def server_addr(self) -> str:
        return self.addr["service"] if self.scenario.service_on_lo else self.addr["server"]

    @property
    def port(self) -> int:
        return PORT

    @property
    def scope_args(self) -> list[str]:
        """The suggested --scope values: the namespaces where the behaviour shows."""
        return [f"netns={self.netns[r]}" for r in self.scenario.scope_roles]

    @property
    def all_scope_args(self) -> list[str]:
        return [f"netns={n}" for n in self.netns.values()]

    def status(self, gen: str) -> dict[str, Any]:
        """A generator's last counters ({} before its first report)."""
        try:
            with open(os.path.join(self.run_dir, f"{gen}.json")) as f:
                return dict(json.load(f).get("counters", {}))
        except (OSError, ValueError):
            return {}

    def counters(self, role: str) -> dict[str, int]:
        """The namespace's SNMP counters (/proc/net/snmp, netstat, snmp6), e.g. TcpRetransSegs,
        TcpExtListenOverflows — what the kernel itself counted, for checking a scenario."""
        r = nsmod.run(["cat", "/proc/net/snmp", "/proc/net/netstat", "/proc/net/snmp6"], netns=self.netns[role])
        return parse_snmp(r.stdout)

    # -- up ----------------------------------------------------------------------------------
    def __enter__(self) -> "Lab":
        self.up()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.down()

    def up(self) -> "Lab":
        t0 = time.monotonic()
        with _locked_state() as st:
            if self.name in st["labs"]:
                cur = st["labs"][self.name]
                raise LabError(f"lab {self.name} is already up ({cur.get('scenario')}); run `gew lab down` first")
            clash = [n for n in self.netns.values() if nsmod.exists(n)]
            if clash:
                raise LabError(f"network namespace {clash[0]} exists but is not in the lab state; "
                               f"remove it with `ip netns del {clash[0]}` if it is a leftover")
            st["labs"][self.name] = {"scenario": self.scenario.name, "namespaces": [], "pids": [],
                                     "created_unix": time.time(), "run_dir": self.run_dir}
        try:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            os.makedirs(self.run_dir, mode=0o755)
            self._build()
            self._start_generators()
        except BaseException:
            self.down()
            raise
        self.up_seconds = time.monotonic() - t0
        return self

    def _record(self, key: str, item: Any) -> None:
        with _locked_state() as st:
            st["labs"].setdefault(self.name, {"namespaces": [], "pids": []})[key].append(item)

    def _ip(self, ns: str, *args: str) -> None:
        nsmod.run(["ip", "-n", ns, *args])

    def _build(self) -> None:
        c, s = self.netns["client"], self.netns["server"]
        v6 = self.scenario.ipv6
        for ns in (c, s):
            self._record("namespaces", ns)           # write-ahead: down removes it even if add dies
            nsmod.run(["ip", "netns", "add", ns])
            self._ip(ns, "link", "set", "lo", "up")
            # rp_filter off: route-flap sends from one source over two paths. No DAD: a
            # tentative link-local address delays neighbour discovery by a second or two.
            for key in ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter",
                        "net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"):
                nsmod.run(["sysctl", "-qw", f"{key}=0"], netns=ns)
        for p in range(1, self.scenario.paths + 1):
            dev = f"veth{p - 1}"
            self._ip(c, "link", "add", dev, "type", "veth", "peer", "name", dev, "netns", s)
            for ns, host in ((c, 1), (s, 2)):
                a4, a6 = f"10.77.{p}.{host}/24", f"fd77:{p}::{host}/64"
                self._ip(ns, "addr", "add", a4, "dev", dev)
                self._ip(ns, "-6", "addr", "add", a6, "dev", dev, "nodad")
                self._ip(ns, "link", "set", dev, "up")
        if self.scenario.service_on_lo:
            fam = ["-6"] if v6 else []
            plen = "/128" if v6 else "/32"
            self._ip(s, *fam, "addr", "add", self.addr["service"] + plen, "dev", "lo")
            self._ip(c, *fam, "addr", "add", self.addr["client_lo"] + plen, "dev", "lo")
            self._ip(c, *fam, "route", "add", self.addr["service"] + plen, "via", self.addr["path1"], "dev", "veth0",
                     "src", self.addr["client_lo"])
            back = "fd77:1::1" if v6 else "10.77.1.1"
            self._ip(s, *fam, "route", "add", self.addr["client_lo"] + plen, "via", back, "dev", "veth0")
        for role, cmd in self.scenario.setup:
            nsmod.run(shlex.split(cmd), netns=self.netns[role])

    def _fill(self, args: tuple[str, ...]) -> list[str]:
        return [a.format(**self.addr) for a in args]

    def _start_generators(self) -> None:
        for g in self.scenario.gens:
            if not (g.server or self.clients):
                continue
            status = os.path.join(self.run_dir, f"{g.name}.json")
            ready = os.path.join(self.run_dir, f"{g.name}.ready")
            argv = [sys.executable, "-m", "gewtui.lab.traffic", g.role, *self._fill(g.args),
                    "--max-seconds", str(self.max_seconds), "--status", status]
            if g.server:
                argv += ["--ready", ready]
            log = open(os.path.join(self.run_dir, f"{g.name}.log"), "wb")
            env = dict(os.environ, PYTHONPATH=_package_root() + os.pathsep + os.environ.get("PYTHONPATH", ""))
            # A session of its own: Ctrl-C at the terminal that ran `up` does not reach it.
            p = nsmod.popen(argv, self.netns[g.netns], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True, close_fds=True, env=env)
            log.close()
            start = _wait_start_time(p.pid)
            self._record("pids", {"pid": p.pid, "start": start, "gen": g.name})
            if g.server:
                self._wait_ready(p, ready, g.name)

    def _wait_ready(self, p: subprocess.Popen, ready: str, name: str) -> None:
        deadline = time.monotonic() + 10
        while not os.path.exists(ready):
            if p.poll() is not None:
                raise LabError(f"lab generator {name} exited at start: {self._log_tail(name)}")
            if time.monotonic() > deadline:
                raise LabError(f"lab generator {name} did not start listening within 10 s")
            time.sleep(0.01)

    def _log_tail(self, name: str) -> str:
        try:
            with open(os.path.join(self.run_dir, f"{name}.log"), "rb") as f:
                lines = f.read().decode(errors="replace").strip().splitlines()
            return lines[-1] if lines else "no output"
        except OSError:
            return "no log"

    # -- down --------------------------------------------------------------------------------
    def down(self) -> list[str]:
        return down(self.name)


def parse_snmp(text: str) -> dict[str, int]:
    """'Tcp: A B' / 'Tcp: 1 2' header-value line pairs, and snmp6's 'Name value' lines."""
    out: dict[str, int] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        parts = lines[i].split()
        if parts and parts[0].endswith(":") and i + 1 < len(lines):
            vals = lines[i + 1].split()
            if vals and vals[0] == parts[0]:
                prefix = parts[0][:-1]
                for k, v in zip(parts[1:], vals[1:]):
                    with contextlib.suppress(ValueError):
                        out[prefix + k] = int(v)
                i += 2
                continue
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                out[parts[0]] = int(parts[1])
        i += 1
    return out


def _package_root() -> str:
    import gewtui

    return os.path.dirname(os.path.dirname(os.path.abspath(gewtui.__file__)))


def _wait_start_time(pid: int) -> int:
    # `ip netns exec` execs the generator in place (same pid); the start time is the pid's.
    return proc_start_time(pid) or 0


def _end_pids(pids: list[dict]) -> list[str]:
    """SIGTERM each recorded pid that is still the same process, SIGKILL after 2 s."""
    done, live = [], []
    for p in pids:
        pid, start = int(p.get("pid", 0)), int(p.get("start", 0))
        if pid > 0 and owner_alive(pid, start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            live.append((pid, start, p.get("gen", "?")))
    deadline = time.monotonic() + 2
    while live and time.monotonic() < deadline:
        live2 = []
        for pid, start, gen in live:
            _reap(pid)
            if owner_alive(pid, start):
                live2.append((pid, start, gen))
            else:
                done.append(f"ended {gen} (pid {pid})")
        live = live2
        if live:
            time.sleep(0.02)
    for pid, start, gen in live:
        if owner_alive(pid, start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _reap(pid, block=True)
            done.append(f"killed {gen} (pid {pid})")
    return done


def _reap(pid: int, block: bool = False) -> None:
    """Collect our own child's exit status (a zombie keeps /proc/PID alive)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0 if block else os.WNOHANG)


def down(name: str = "default") -> list[str]:
    """Take one lab down from its state entry; idempotent. Returns what it did."""
    with _locked_state() as st:
        entry = st["labs"].get(name)
        if entry is None:
            return []
        did = _end_pids(list(entry.get("pids", [])))
        for ns in entry.get("namespaces", []):
            if ns.startswith(PREFIX) and nsmod.delete(ns):
                did.append(f"removed netns {ns}")
        left = [ns for ns in entry.get("namespaces", []) if nsmod.exists(ns)]
        if left:
            raise LabError(f"lab {name}: could not remove network namespace {left[0]}")
        run_dir = entry.get("run_dir", "")
        if run_dir.startswith(LAB_DIR + "/"):
            shutil.rmtree(run_dir, ignore_errors=True)
        del st["labs"][name]
    return did


def down_all() -> list[str]:
    did: list[str] = []
    for name in sorted(read_state()["labs"]):
        did += down(name)
    return did
