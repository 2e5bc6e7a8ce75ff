"""Capability negotiation: the report on the real kernel, verify_compatibility's three
outcomes, and `gew runtime info` as root and as an unprivileged user."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gewtui.errors import CapabilityError
from gewtui.kernel.build import capability_report
from gewtui.kernel.probes import UNITS
from gewtui.pb import session_pb2
from gewtui.runtime.capabilities import (FULLY_SUPPORTED, NOT_SUPPORTED, SUPPORTED_RISKY,
                                         get_runtime_info, verify_compatibility)

ROOT = Path(__file__).resolve().parent.parent
GEW = str(ROOT / ".venv" / "bin" / "gew")
STATES = {NOT_SUPPORTED, SUPPORTED_RISKY, FULLY_SUPPORTED}
root = pytest.mark.root
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: reads tracefs formats")


def _as_nobody(*argv: str) -> subprocess.CompletedProcess:
    if os.geteuid() != 0:
        pytest.skip("needs root: drops privileges to nobody with setpriv")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv missing (util-linux)")
    cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ.get("PATH", ""), "HOME": "/tmp", "LANG": "C.UTF-8"})


@root
@needs_root
def test_every_capability_has_one_state_and_a_reason():
    report = capability_report()
    names = [c.name for c in report.capabilities]
    assert len(names) == len(set(names)), "a capability is listed twice"
    for c in report.capabilities:
        assert c.state in STATES, c.name
        assert c.reason.strip() and "\n" not in c.reason, c.name
    # every tracepoint every probe needs is judged, and so is each unit's BTF offsets
    for u in UNITS:
        for name in u.capability_names():
            assert name in names, name
    for must in ("ringbuf", "clsact", "cls_bpf-direct-action", "bpffs-pinning", "kprobes",
                 "btf", "kernel-headers", "tcp_send_reset:reason-enum"):
        assert must in names
    assert report.runtime.kernel_release == os.uname().release
    assert report.runtime.root is True
    assert report.verdict in STATES and report.verdict_reason


@root
@needs_root
def test_runtime_info_json_parses_and_matches_the_human_table():
    r = subprocess.run([GEW, "runtime", "info", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["runtime"]["root"] is True
    assert {c["state"] for c in data["capabilities"]} <= {"NOT_SUPPORTED", "SUPPORTED_RISKY", "FULLY_SUPPORTED"}
    human = subprocess.run([GEW, "runtime", "info"], capture_output=True, text=True, timeout=120)
    assert human.returncode == 0
    for c in data["capabilities"]:
        assert c["name"] in human.stdout
    assert "verdict:" in human.stdout


@root
def test_runtime_info_as_nobody_reports_what_it_can_see():
    r = _as_nobody(GEW, "runtime", "info", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["runtime"]["root"] is False
    by = {c["name"]: c for c in data["capabilities"]}
    assert by["privileges"]["state"] == "NOT_SUPPORTED"
    assert data["verdict"] == "NOT_SUPPORTED"
    assert "Traceback" not in r.stderr


def _report(**states) -> session_pb2.CapabilityReport:
    rep = session_pb2.CapabilityReport()
    for name, st in states.items():
        rep.capabilities.add(name=name, state=st, reason=f"{name} reason", needed_by=["x"])
    return rep


def test_verify_compatibility_three_outcomes():
    rep = _report(a=FULLY_SUPPORTED, r=SUPPORTED_RISKY, n=NOT_SUPPORTED)
    assert verify_compatibility(rep, ["a"]) == FULLY_SUPPORTED
    with pytest.raises(CapabilityError, match="n is not supported: n reason"):
        verify_compatibility(rep, ["a", "n"], allow_risky=True)
    with pytest.raises(CapabilityError, match="--allow-risky"):
        verify_compatibility(rep, ["r"])
    assert verify_compatibility(rep, ["a", "r"], allow_risky=True) == SUPPORTED_RISKY
    with pytest.raises(CapabilityError, match="not in the capability report"):
        verify_compatibility(rep, ["missing"])
    assert CapabilityError("x").code == 69


def test_a_unit_can_run_only_when_its_capabilities_allow():
    unit = next(u for u in UNITS if u.name == "tcp_state")
    names = unit.capability_names()
    rep = _report(**{n: FULLY_SUPPORTED for n in names})
    assert unit.can_run(rep) is None
    rep.capabilities[0].state = SUPPORTED_RISKY
    assert "allow-risky" in unit.can_run(rep)
    assert unit.can_run(rep, allow_risky=True) is None
    rep.capabilities[0].state = NOT_SUPPORTED
    assert unit.can_run(rep, allow_risky=True).startswith(names[0])


def test_runtime_info_without_root_needs_no_kernel_access():
    info = get_runtime_info()
    assert info.kernel_release == os.uname().release
    assert info.python == sys.version.split()[0]
