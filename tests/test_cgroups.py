"""Container attribution: cgroup ids named by the cgroup v2 tree (id = directory inode), the
container id or systemd unit their path shows, in the flow's lineage and snapshot, and the
`cgroup` / `container` filters."""
from __future__ import annotations

import os

import pytest

from gewtui.debugger.filters import FlowFilter
from gewtui.errors import UsageError
from gewtui.kernel.cgroups import CgroupMap, describe
from gewtui.model.engine import Engine
from gewtui.pb import events_pb2 as E
from tests.support.model_streams import StreamBuilder

DOCKER = "4f1d2c3b4a5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"


@pytest.mark.parametrize("path,want", [
    (f"/system.slice/docker-{DOCKER}.scope", (DOCKER, f"docker-{DOCKER}.scope")),
    (f"/kubepods.slice/kubepods-burstable.slice/cri-containerd-{DOCKER}.scope", (DOCKER, f"cri-containerd-{DOCKER}.scope")),
    (f"/machine.slice/libpod-{DOCKER}.scope/container", (DOCKER, f"libpod-{DOCKER}.scope")),
    (f"/docker/{DOCKER}", (DOCKER, "")),
    ("/system.slice/nginx.service", ("", "nginx.service")),
    ("/user.slice/user-0.slice/session-3.scope", ("", "session-3.scope")),
    ("/", ("", "")),
])
def test_container_and_unit_from_the_path(path, want):
    assert describe(path) == want


def test_ids_are_directory_inodes_and_links_are_not_followed(tmp_path):
    (tmp_path / "system.slice" / "nginx.service").mkdir(parents=True)
    os.symlink(tmp_path / "system.slice", tmp_path / "loop")
    m = CgroupMap(str(tmp_path))
    ino = os.stat(tmp_path / "system.slice" / "nginx.service").st_ino
    assert m.path(ino) == "/system.slice/nginx.service"
    assert m.path(os.stat(tmp_path).st_ino) == "/"
    assert "/loop" not in m._paths.values()
    assert m.path(123456789) == ""


def _flow_in_cgroup(cid: int, path: str, container: str, unit: str):
    s = StreamBuilder()
    s.emit("cgroup", E.CgroupInfo(id=cid, path=path, container=container, unit=unit))
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.events[-1].attr.cgroup_id = cid
    s.established(c)
    eng = Engine()
    for ev in s.events:
        eng.feed(ev)
    return eng


def test_lineage_names_the_container_and_the_snapshot_carries_it():
    eng = _flow_in_cgroup(77, f"/system.slice/docker-{DOCKER}.scope", DOCKER, f"docker-{DOCKER}.scope")
    f = eng.flow(1)
    assert list(f.containers) == [DOCKER] and list(f.cgroups) == [f"/system.slice/docker-{DOCKER}.scope"]
    assert list(eng.flow_summary(1).containers) == [DOCKER]
    (procs,) = [n for n in eng.chain(1).root.children if n.node_id == "f1/L1/lineage/processes"]
    assert procs.text == (f"processes: client[1000] via state in container {DOCKER[:12]}, cgroup"
                          f" /system.slice/docker-{DOCKER}.scope")
    assert 1 in procs.evidence_event_ids      # the CgroupInfo event is cited


def test_filters_by_cgroup_and_container():
    f = _flow_in_cgroup(78, "/system.slice/nginx.service", "", "nginx.service").flow(1)
    assert FlowFilter.parse(["cgroup /system.slice"]).matches(f)
    assert FlowFilter.parse(["cgroup /system.slice/nginx.service/"]).matches(f)
    assert not FlowFilter.parse(["cgroup /system.sl"]).matches(f)         # whole components only
    assert FlowFilter.parse(["container nginx.service"]).matches(f)
    assert not FlowFilter.parse(["container 4f1d"]).matches(f)
    d = _flow_in_cgroup(79, f"/docker/{DOCKER}", DOCKER, "").flow(1)
    assert FlowFilter.parse(["container 4f1d2c3b"]).matches(d)
    with pytest.raises(UsageError):
        FlowFilter.parse(["cgroup system.slice"])
