"""A tracepoint the kernel lacks makes only the probes that need it unsupported: the
capability report says why, the others still compile, load and run."""
import shutil
from pathlib import Path

import pytest

from gewtui.errors import CapabilityError
from gewtui.kernel.build import capability_report, runnable
from gewtui.kernel.plane import KernelPlane, PlaneConfig
from gewtui.kernel.probes import UNITS
from gewtui.pb import session_pb2
from gewtui.runtime.btf import BTFError, load_vmlinux
from gewtui.runtime.tracefs import Tracefs
from tests.support.probes_support import require_root

DATA = Path(__file__).parent / "data" / "tracefs"


def _tracefs_without(tmp_path, *tracepoints: str) -> Tracefs:
    root = tmp_path / "tracefs"
    shutil.copytree(DATA, root)
    for tp in tracepoints:
        shutil.rmtree(root / "events" / tp)
    return Tracefs(str(root))


def test_missing_tracepoint_disables_only_its_probes(tmp_path):
    tf = _tracefs_without(tmp_path, "tcp/tcp_probe")
    report = capability_report(tracefs=tf)
    by = {c.name: c for c in report.capabilities}
    cap = by["raw_tracepoint:tcp:tcp_probe"]
    assert cap.state == session_pb2.NOT_SUPPORTED and "does not exist" in cap.reason
    ok, skipped = runnable(UNITS, report)
    assert set(skipped) == {"tcp_probe"}
    assert {u.name for u in ok} == {u.name for u in UNITS} - {"tcp_probe"}


def test_missing_base_tracepoint_takes_its_dependents_along(tmp_path):
    tf = _tracefs_without(tmp_path, "sock/inet_sock_set_state")
    ok, skipped = runnable(UNITS, capability_report(tracefs=tf))
    assert "inet_sock_set_state" in skipped["tcp_state"]
    for dependent in ("tcp_events", "tcp_probe", "drops", "owner"):
        assert skipped[dependent].startswith("needs probe tcp_state"), skipped[dependent]
    assert {u.name for u in ok} == {"irqctx", "route", "queue"}


@pytest.mark.root
def test_plane_runs_without_the_unsupported_probe(tmp_path):
    require_root()
    report = capability_report(tracefs=_tracefs_without(tmp_path, "tcp/tcp_probe"))
    plane = KernelPlane(None, PlaneConfig(), report=report)
    try:
        plane.stage()
        plane.verify()
        assert "tcp_probe" in plane.skipped and "tcp_probe" not in plane.units
        assert "gew_tcp_probe" not in plane.programs and "gew_tcp_set_state" in plane.programs
    finally:
        plane.close()
    strict = KernelPlane(None, PlaneConfig(strict=True), report=report)
    try:
        with pytest.raises(CapabilityError, match="tcp_probe"):
            strict.stage()
    finally:
        strict.close()


class _BtfWithout:
    """The running kernel's BTF, except for the members named: as a kernel lacking them."""

    def __init__(self, btf, *missing: str):
        self._btf, self._missing = btf, missing

    def __getattr__(self, name):
        return getattr(self._btf, name)

    def member(self, struct_name, path):
        if f"{struct_name}.{path}" in self._missing:
            raise BTFError(f"struct {struct_name} has no member {path}")
        return self._btf.member(struct_name, path)

    def bitfield(self, struct_name, path):
        if f"{struct_name}.{path}" in self._missing:
            raise BTFError(f"struct {struct_name} has no member {path}")
        return self._btf.bitfield(struct_name, path)


def test_missing_btf_member_of_a_raw_program_disables_its_unit_with_the_reason():
    btf = load_vmlinux()
    byte, shift, bits = btf.bitfield("tcp_sock", "inet_conn.icsk_ca_state")
    assert bits == 5 and shift + bits <= 8 and byte > 0
    with pytest.raises(BTFError, match="bitfield"):
        btf.bitfield("tcp_sock", "snd_cwnd")   # a plain member is not a bitfield
    for missing, unit, why in (("tcp_sock.inet_conn.icsk_ca_state", "tcp_probe", "icsk_ca_state"),
                               ("tcp_sock.srtt_us", "tcp_probe", "srtt_us"),
                               ("inet_sock.inet_sport", "tcp_state", "inet_sport")):
        report = capability_report(btf=_BtfWithout(btf, missing))
        by = {c.name: c for c in report.capabilities}
        cap = by[f"btf-offsets:{unit}"]
        assert cap.state == session_pb2.NOT_SUPPORTED and why in cap.reason, (missing, cap.reason)
        ok, skipped = runnable(UNITS, report)
        assert unit in skipped and unit not in {u.name for u in ok}
