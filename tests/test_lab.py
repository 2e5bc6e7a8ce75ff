"""The lab on the real kernel: every scenario produces its behaviour (checked with the
kernel's own counters and the generators' reports), and leaves nothing behind — no
namespace, no link, no generator process, no state entry — also after a crash."""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time

import pytest

from gewtui.errors import UsageError
from gewtui.kernel.bpffs import proc_start_time
from gewtui.lab import SCENARIOS, Lab, LabError, down, read_state
from gewtui.lab import lab as labmod
from tests.support.waiting import wait_for as _wait

pytestmark = pytest.mark.root


def _netns() -> set[str]:
    """Lab namespaces only: other suites create their own gewt-* namespaces meanwhile."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {w for w in out.split() if w.startswith("gewlab-")}


def _links() -> set[str]:
    """Host links a lab could have leaked (it creates its veths inside its namespaces)."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}
    return {n for n in names if n.startswith(("veth", "gewlab"))}


def _name() -> str:
    return "t" + secrets.token_hex(4)


def _ours(name: str) -> set[str]:
    return {n for n in _netns() if n.startswith(f"gewlab-{name}-")}


@pytest.fixture
def baseline():
    before_links = _links()
    yield
    assert _links() == before_links, "a link in the host namespace changed"


def _check_healthy(lab: Lab) -> None:
    st = _wait(lambda: lab.status("client").get("exchanges", 0) >= 10 and lab.status("client"), 8)
    assert st and st["exchanges"] >= 10 and "ECONNREFUSED" not in st and "ECONNRESET" not in st
    c = lab.counters("client")
    assert c["TcpActiveOpens"] >= 2 and c["TcpAttemptFails"] == 0 and c["TcpEstabResets"] == 0


def _check_refused(lab: Lab) -> None:
    st = _wait(lambda: lab.status("client").get("ECONNREFUSED", 0) >= 3 and lab.status("client"), 8)
    assert st and st["ECONNREFUSED"] >= 3 and "connected" not in st
    assert lab.counters("client")["TcpAttemptFails"] >= 3
    assert lab.counters("server")["TcpOutRsts"] >= 3


def _check_lossy(lab: Lab) -> None:
    assert _wait(lambda: lab.counters("client")["TcpRetransSegs"] >= 5, 10)
    # it still gets through (the client reports once a second: the retransmits can come first)
    assert _wait(lambda: lab.status("client").get("exchanges", 0) > 0, 10)


def _check_reset(lab: Lab) -> None:
    assert _wait(lambda: lab.status("client").get("ECONNRESET", 0) >= 2, 10)
    assert lab.counters("client")["TcpEstabResets"] >= 2
    assert lab.status("server").get("aborted", 0) >= 2


def _check_route_flap(lab: Lab) -> None:
    fam = ["-6"] if lab.scenario.ipv6 else []

    def dev() -> str:
        r = subprocess.run(["ip", *fam, "-n", lab.client_netns, "route", "show", lab.server_addr],
                           capture_output=True, text=True).stdout
        return r.split(" dev ")[1].split()[0] if " dev " in r else ""

    seen = {dev()}
    assert _wait(lambda: (seen.add(dev()) or len(seen - {""}) >= 2), 8), seen
    sent = lab.status("client").get("bytes_sent", 0)
    # one long connection throughout, still moving data after the route changed
    assert _wait(lambda: lab.status("client").get("bytes_sent", 0) > sent, 4)
    assert lab.status("client").get("connections") == 1


def _check_congested(lab: Lab) -> None:
    def drops() -> int:
        out = subprocess.run(["tc", "-n", lab.client_netns, "-s", "qdisc", "show", "dev", "veth0"],
                             capture_output=True, text=True).stdout
        return int(out.split("dropped ")[1].split(",")[0]) if "dropped " in out else 0

    assert "tbf" in subprocess.run(["tc", "-n", lab.client_netns, "qdisc", "show", "dev", "veth0"],
                                   capture_output=True, text=True).stdout
    assert _wait(lambda: drops() >= 10, 10)


def _check_listen_overflow(lab: Lab) -> None:
    assert _wait(lambda: lab.counters("server")["TcpExtListenOverflows"] >= 5, 10)
    assert "accepted" not in lab.status("server")


CHECKS = {"healthy": _check_healthy, "refused": _check_refused, "lossy": _check_lossy, "reset": _check_reset,
          "route-flap": _check_route_flap, "congested": _check_congested, "listen-overflow": _check_listen_overflow}


@pytest.mark.parametrize("scenario", list(CHECKS) + ["healthy6", "refused6", "route-flap6"])
def test_scenario_produces_its_behaviour_and_leaves_nothing(scenario, baseline):
    name = _name()
    with Lab(scenario, name=name) as lab:
        assert _ours(name) == {lab.client_netns, lab.server_netns}
        assert read_state()["labs"][name]["scenario"] == scenario
        pids = [p["pid"] for p in read_state()["labs"][name]["pids"]]
        assert pids and all(proc_start_time(p) for p in pids)
        CHECKS[scenario.rstrip("6")](lab)
    assert _ours(name) == set()
    assert name not in read_state()["labs"]
    assert not os.path.exists(os.path.join(labmod.LAB_DIR, name))
    assert all(proc_start_time(p) is None for p in pids), "a generator outlived the lab"


def test_every_scenario_has_a_check_and_an_ipv6_variant():
    # the real-program scenarios (IPv4) are checked against kernel counters in
    # tests/test_lab_programs.py
    programs = {n for n, s in SCENARIOS.items() if s.extra.get("programs")}
    assert programs == {"web", "web-lossy", "web-refused", "web-overflow", "bulk-congested"}
    base = {n for n, s in SCENARIOS.items() if not s.ipv6} - programs
    assert base == set(CHECKS)
    assert {n + "6" for n in base} == {n for n, s in SCENARIOS.items() if s.ipv6}


def test_lab_comes_down_on_an_exception_inside(baseline):
    name = _name()
    before = _netns()
    with pytest.raises(RuntimeError):
        with Lab("healthy", name=name):
            raise RuntimeError("boom")
    assert _netns() == before and name not in read_state()["labs"]


def test_down_after_the_owner_crashed(baseline):
    """The process that brought the lab up is SIGKILLed; `gew lab down` still removes all."""
    name = _name()
    before = _netns()
    code = ("import os, time, sys; from gewtui.lab import Lab; Lab('healthy', name=sys.argv[1]).up(); "
            "print('up', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code, name], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "up"
        pids = [x["pid"] for x in read_state()["labs"][name]["pids"]]
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        assert _ours(name) and all(proc_start_time(x) for x in pids)   # the crash left it all
        r = subprocess.run([sys.executable, "-m", "gewtui.cli.main", "lab", "down", "--name", name],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert f"removed netns gewlab-{name}-client" in r.stdout
        assert _netns() == before and name not in read_state()["labs"]
        assert _wait(lambda: all(proc_start_time(x) is None for x in pids), 3)
    finally:
        p.kill()
        down(name)


def test_down_with_a_half_written_state_entry(baseline):
    """Killed during `up`: the state names a namespace that was never created and a pid
    that is now another process (our own, with another start time). Down skips both."""
    name = _name()
    with labmod._locked_state() as st:
        st["labs"][name] = {"scenario": "healthy", "namespaces": [f"gewlab-{name}-client"],
                            "pids": [{"pid": os.getpid(), "start": (proc_start_time(os.getpid()) or 0) + 1,
                                      "gen": "client"}], "run_dir": os.path.join(labmod.LAB_DIR, name)}
    assert down(name) == []
    assert name not in read_state()["labs"]          # and we are still alive


def test_generators_stop_by_themselves():
    name = _name()
    with Lab("healthy", name=name, max_seconds=1.5):
        pids = [x["pid"] for x in read_state()["labs"][name]["pids"]]
        assert _wait(lambda: all(_gone_or_zombie(x) for x in pids), 8), "a generator ran past its limit"


def _gone_or_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_two_labs_at_once_and_a_second_up_refused(baseline):
    a, b = _name(), _name()
    with Lab("healthy", name=a) as la, Lab("refused", name=b) as lb:
        assert la.client_netns != lb.client_netns
        with pytest.raises(LabError, match=f"lab {a} is already up"):
            Lab("refused", name=a).up()
        _check_healthy(la)
        _check_refused(lb)
    assert not _ours(a) and not _ours(b)


@pytest.mark.parametrize("bad", ["Default", "a-b", "x" * 13, "../x", "é"])
def test_lab_names_are_checked(bad):
    with pytest.raises(UsageError):
        Lab("healthy", name=bad)
    with pytest.raises(UsageError, match="unknown lab scenario"):
        Lab("no-such-scenario")


def test_cli_up_list_down_json():
    name = _name()
    gew = [sys.executable, "-m", "gewtui.cli.main"]
    r = subprocess.run(gew + ["lab", "up", "refused", "--ipv6", "--name", name, "--json"],
                       capture_output=True, text=True)
    try:
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert info["scenario"] == "refused6" and info["scope_args"] == [f"netns=gewlab-{name}-client"]
        listed = json.loads(subprocess.run(gew + ["lab", "list", "--json"], capture_output=True, text=True).stdout)
        assert listed["up"][name] == "refused6"
        assert {s["name"] for s in listed["scenarios"]} == set(SCENARIOS)
    finally:
        r = subprocess.run(gew + ["lab", "down", "--name", name, "--json"], capture_output=True, text=True)
    assert r.returncode == 0
    assert f"removed netns gewlab-{name}-server" in json.loads(r.stdout)["removed"]
    assert not _ours(name)
