"""The session transaction on the real kernel: a failure injected after each step leaves
nothing — no program or map of the session, no pin, no tc filter or clsact it added, no
manifest — and a committed session holds exactly what its manifest names.

The plane here (tests/support/session_planes.py) is a stand-in that creates real kernel
objects at each step (a map at stage, a SCHED_CLS program at verify, a tc filter per scoped
veth at attach, a pin at commit), so the rollback is checked against the kernel, not
against a mock's bookkeeping.
"""
from __future__ import annotations

import os
import secrets
import time

import pytest

from gewtui.errors import GewError, ScopeError, SessionError
from gewtui.kernel import tc
from gewtui.kernel.bpffs import Instance
from gewtui.kernel.scope import ScopeEntry, resolve
from gewtui.kernel.session import STEPS, Session
from tests.conftest import kernel_bpf_objects, tc_filters, tc_qdiscs, wait_maps_gone
from tests.support.session_planes import HANDLE, PRIO, Planes, RealObjectsPlane

pytestmark = pytest.mark.root

@pytest.fixture
def instance(gew_instance):
    return gew_instance


def _assert_nothing_left(inst: Instance, sid: str, pair, before_filters: str, planes: Planes) -> None:
    assert not os.path.exists(inst.session_bpffs(sid)), "pins left behind"
    assert not os.path.exists(inst.manifest_path(sid)), "manifest left behind"
    assert not os.path.exists(inst.session_run(sid))
    assert tc_filters(pair.a, pair.a_if) == before_filters, "tc filter left behind"
    assert "clsact" not in tc_qdiscs(pair.a, pair.a_if), "our clsact left behind"
    assert wait_maps_gone(planes.ids) == set(), "program or map of the session still loaded"


@pytest.mark.parametrize("step", STEPS)
def test_injected_fault_after_each_step_leaves_nothing(netns_pair, instance, step):
    scope = resolve([ScopeEntry("netns", netns_pair.a)])
    before = tc_filters(netns_pair.a, netns_pair.a_if)
    planes = Planes()
    s = Session(scope, planes, instance=instance, fault=step)
    with pytest.raises(SessionError, match=f"{step} failed, rolled back: injected fault after {step}"):
        s.open()
    if step != "create":
        assert planes and planes[0].closed >= 1
    _assert_nothing_left(instance, s.session_id, netns_pair, before, planes)


@pytest.mark.parametrize("step", ["stage", "verify", "attach", "commit"])
def test_plane_failure_inside_each_step_rolls_back(netns_pair, instance, step):
    """The step itself fails half-way (objects of that step already exist)."""
    scope = resolve([ScopeEntry("netns", netns_pair.a)])
    before = tc_filters(netns_pair.a, netns_pair.a_if)
    planes = Planes(fail_at=step)
    s = Session(scope, planes, instance=instance)
    # attach failures are reported as an incomplete observation (a per-interface attach failed)
    err = ScopeError if step == "attach" else GewError
    with pytest.raises(err, match=f"{step} failed, rolled back"):
        s.open()
    assert planes.ids
    _assert_nothing_left(instance, s.session_id, netns_pair, before, planes)


def test_committed_session_holds_what_its_manifest_names_and_closes_clean(netns_pair, instance):
    scope = resolve([ScopeEntry("netns", netns_pair.a)])
    before = tc_filters(netns_pair.a, netns_pair.a_if)
    planes = Planes()
    s = Session(scope, planes, instance=instance, recording_path="/tmp/x.gewrec").open()
    m = instance.read_manifest(s.session_id)
    assert m.state == "committed"
    assert m.owner_pid == os.getpid() and m.owner_start_time > 0
    assert m.programs == ["gewt_obs"] and m.maps == ["gewt_state"]
    assert m.pins == [os.path.join(instance.session_bpffs(s.session_id), "gewt_state")]
    assert os.path.exists(m.pins[0])
    assert [(f.netns, f.ifname, f.direction, f.prio, f.handle, f.clsact_created, f.state)
            for f in m.tc_filters] == [(netns_pair.a, "veth0", "ingress", PRIO, HANDLE, True, "added")]
    assert m.tc_filters[0].prog_id > 0
    listed = tc.list_filters("veth0", netns_pair.a)
    assert [(f.prio, f.handle, f.name, f.prog_id) for f in listed] == [(PRIO, HANDLE, "gewt_obs", m.tc_filters[0].prog_id)]
    assert m.scope == [f"netns={netns_pair.a}"] and m.recording == "/tmp/x.gewrec"
    objs = kernel_bpf_objects()
    assert len(planes.ids) == 2 and planes.ids <= set(objs["progs"]) | set(objs["maps"])
    s.close()
    s.close()  # idempotent
    _assert_nothing_left(instance, s.session_id, netns_pair, before, planes)


def test_existing_clsact_with_foreign_filter_is_kept(netns_pair, instance, sched_cls_fd):
    """A clsact we did not create, holding a foreign filter: both survive the session."""
    assert tc.ensure_clsact("veth0", netns_pair.a) is True
    tc.add_bpf_filter("veth0", netns_pair.a, "ingress", sched_cls_fd, 1, 1, "foreign")
    before = tc_filters(netns_pair.a, netns_pair.a_if)
    s = Session(resolve([ScopeEntry("netns", netns_pair.a)]), RealObjectsPlane, instance=instance).open()
    assert instance.read_manifest(s.session_id).tc_filters[0].clsact_created is False
    s.close()
    assert tc_filters(netns_pair.a, netns_pair.a_if) == before
    assert "clsact" in tc_qdiscs(netns_pair.a, netns_pair.a_if)


def test_taken_tc_place_refuses_and_keeps_the_foreign_filter(netns_pair, instance, sched_cls_fd):
    tc.ensure_clsact("veth0", netns_pair.a)
    tc.add_bpf_filter("veth0", netns_pair.a, "ingress", sched_cls_fd, PRIO, HANDLE, "gewt_obs")
    before = tc_filters(netns_pair.a, netns_pair.a_if)
    s = Session(resolve([ScopeEntry("netns", netns_pair.a)]), RealObjectsPlane, instance=instance)
    with pytest.raises(ScopeError, match="incomplete observation forbids attaching: .*is taken"):
        s.open()
    # same prio, handle and name: only the program id tells it is not ours, and it stays
    assert tc_filters(netns_pair.a, netns_pair.a_if) == before
    assert not os.path.exists(instance.manifest_path(s.session_id))


def test_keyboard_interrupt_mid_transaction_rolls_back_and_propagates(netns_pair, instance):
    scope = resolve([ScopeEntry("netns", netns_pair.a)])
    before = tc_filters(netns_pair.a, netns_pair.a_if)

    class Interrupted(RealObjectsPlane):
        def pin(self, directory):
            super().pin(directory)
            raise KeyboardInterrupt

    planes = Planes(Interrupted)
    s = Session(scope, planes, instance=instance)
    with pytest.raises(KeyboardInterrupt):
        s.open()
    _assert_nothing_left(instance, s.session_id, netns_pair, before, planes)


def test_interface_vanishing_between_resolution_and_attach_refuses(netns_pair, instance):
    scope = resolve([ScopeEntry("netns", netns_pair.b)])
    assert any(i.ifname == "veth0" for i in scope.interfaces)
    os.system(f"ip -n {netns_pair.b} link add gewtdummy type veth peer name gewtdummy1")
    scope = resolve([ScopeEntry("netns", netns_pair.b)])
    os.system(f"ip -n {netns_pair.b} link del gewtdummy")
    s = Session(scope, RealObjectsPlane, instance=instance)
    with pytest.raises(ScopeError, match="incomplete observation forbids attaching: interface "
                                         f"{netns_pair.b}/gewtdummy1? vanished during verification"):
        s.open()
    assert not os.path.exists(instance.manifest_path(s.session_id))
