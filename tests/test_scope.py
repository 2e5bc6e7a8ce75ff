"""Scope: parsing (one-line errors, exit 78), resolution to inodes and ifindexes, closure,
and the watcher that notices interfaces and namespaces going away mid-session."""
from __future__ import annotations

import os
import subprocess

import pytest

from gewtui.errors import EX_CONFIG, ScopeError
from gewtui.kernel.scope import ScopeEntry, ScopeWatcher, parse_scope, resolve

BAD = [
    ("colour=red", "bad scope"), ("netns", "bad scope"), ("port=", "empty value"),
    ("port=0", "bad scope port"), ("port=65536", "bad scope port"), ("port=http", "bad scope port"),
    ("port=-1", "bad scope port"), ("port=1.5", "bad scope port"),
    ("cidr=10.0.0.0/33", "bad scope cidr"), ("cidr=banana", "bad scope cidr"), ("cidr=fd00::/129", "bad scope cidr"),
    ("iface=a/b/c", "bad scope"), ("iface=" + "x" * 16, "bad scope iface"), ("iface=eth 0", "bad scope iface"),
    ("netns=..", "bad scope netns"), ("netns=é", "bad scope netns"), ("iface=../eth0", "bad scope netns"),
]


@pytest.mark.parametrize("text,why", BAD)
def test_bad_scope_is_one_line_exit_78(text, why):
    with pytest.raises(ScopeError) as ei:
        parse_scope([text])
    assert ei.value.code == EX_CONFIG == 78
    assert why in ei.value.message and "\n" not in ei.value.message and ei.value.message.isascii()


def test_parse_normalises_and_dedups():
    got = parse_scope(["cidr=10.1.2.3/24", "port=80,port=443", "port=80", "iface=ns1/eth0", "iface=lo",
                       "cidr=FD00::1/64", "netns=host"])
    assert [str(e) for e in got] == ["cidr=10.1.2.0/24", "port=80", "port=443", "iface=ns1/eth0", "iface=lo",
                                     "cidr=fd00::/64", "netns=host"]


@pytest.mark.root
def test_no_scope_is_the_host_namespace():
    rs = resolve([])
    host = os.stat("/proc/self/ns/net").st_ino   # the tests run in the host namespace
    assert rs.netns == {"host": host} and rs.whole_netns
    assert rs.filter.netns_inodes == (host,) and rs.filter.ifindexes == ()
    names = {i.ifname for i in rs.interfaces}
    assert "lo" in names
    assert rs.describe() == "netns=host"


@pytest.mark.root
def test_netns_scope_resolves_inode_and_every_interface(netns_pair):
    rs = resolve(parse_scope([f"netns={netns_pair.a}", "port=8080", "cidr=10.66.0.0/24"]))
    ino = os.stat(f"/run/netns/{netns_pair.a}").st_ino
    assert rs.netns == {netns_pair.a: ino}
    assert sorted(i.ifname for i in rs.interfaces) == ["lo", "veth0"]
    f = rs.filter
    assert f.netns_inodes == (ino,) and f.ports == (8080,) and f.prefixes == ("10.66.0.0/24",)
    assert f.ifindexes == ()                    # the whole namespace: filtered by inode
    pb = rs.to_pb()
    assert [(e.kind, e.value) for e in pb.entries] == [("netns", netns_pair.a), ("port", "8080"),
                                                       ("cidr", "10.66.0.0/24")]
    assert list(pb.netns_inodes) == [ino] and pb.closed
    assert sorted(pb.interfaces) == [f"{netns_pair.a}/lo", f"{netns_pair.a}/veth0"]


@pytest.mark.root
def test_iface_scope_names_netns_and_ifindex(netns_pair):
    rs = resolve(parse_scope([f"iface={netns_pair.b}/veth0"]))
    out = subprocess.run(["ip", "-n", netns_pair.b, "-o", "link", "show", "veth0"], capture_output=True, text=True)
    idx = int(out.stdout.split(":")[0])
    ino = os.stat(f"/run/netns/{netns_pair.b}").st_ino
    assert [(i.netns, i.ifname, i.ifindex) for i in rs.interfaces] == [(netns_pair.b, "veth0", idx)]
    assert rs.filter.ifindexes == ((ino, idx),) and rs.filter.netns_inodes == (ino,)


@pytest.mark.root
@pytest.mark.parametrize("scope,msg", [
    (["netns=gewt-no-such-ns"], "unknown network namespace 'gewt-no-such-ns'"),
    (["iface=gewt-no-such-ns/eth0"], "unknown network namespace 'gewt-no-such-ns'"),
    (["iface=gewtnosuch0"], "unknown interface 'gewtnosuch0' in the host"),
])
def test_unknown_names_refuse(scope, msg):
    with pytest.raises(ScopeError, match=msg) as ei:
        resolve(parse_scope(scope))
    assert ei.value.code == 78


@pytest.mark.root
def test_iface_outside_the_scoped_netns_is_an_empty_scope(netns_pair):
    with pytest.raises(ScopeError, match="scope is empty"):
        resolve(parse_scope([f"netns={netns_pair.a}", f"iface={netns_pair.b}/veth0"]))
    with pytest.raises(ScopeError, match="scope is empty: iface host/veth0 .*iface=NETNS/IFACE"):
        resolve(parse_scope([f"netns={netns_pair.a}", "iface=veth0"]))   # bare name = host
    with pytest.raises(ScopeError, match=f"unknown interface 'nope0' in netns {netns_pair.a}"):
        resolve(parse_scope([f"netns={netns_pair.a}", f"iface={netns_pair.a}/nope0"]))


@pytest.mark.root
def test_closure_refuses_when_an_interface_vanished(netns_pair):
    subprocess.run(["ip", "-n", netns_pair.a, "link", "add", "gewtx0", "type", "dummy"], check=False)
    subprocess.run(["ip", "-n", netns_pair.a, "link", "add", "gewtx0", "type", "veth", "peer", "name", "gewtx1"],
                   check=True)
    rs = resolve(parse_scope([f"netns={netns_pair.a}"]))
    rs.check_closed("verification")           # nothing changed: fine
    subprocess.run(["ip", "-n", netns_pair.a, "link", "del", "gewtx0"], check=True)
    with pytest.raises(ScopeError, match="incomplete observation forbids attaching: interface "
                                         f"{netns_pair.a}/gewtx[01] vanished during attach"):
        rs.check_closed("attach")
    assert rs.closed is False and not rs.to_pb().closed


@pytest.mark.root
def test_closure_takes_in_interfaces_that_appeared(netns_pair):
    rs = resolve(parse_scope([f"netns={netns_pair.a}"]))
    subprocess.run(["ip", "-n", netns_pair.a, "link", "add", "gewtx0", "type", "veth", "peer", "name", "gewtx1"],
                   check=True)
    rs.check_closed("verification")
    assert {"gewtx0", "gewtx1"} <= {i.ifname for i in rs.interfaces}


@pytest.mark.root
def test_watcher_reports_removed_and_added_interfaces_and_a_gone_netns(netns_pair):
    rs = resolve(parse_scope([f"netns={netns_pair.a}", f"netns={netns_pair.b}"]))
    w = ScopeWatcher(rs)
    assert w.poll() == [] and w.complete
    subprocess.run(["ip", "-n", netns_pair.a, "link", "add", "gewtx0", "type", "veth", "peer", "name", "gewtx1"],
                   check=True)
    added = w.poll()
    assert sorted((c.what, c.iface) for c in added) == [("iface-added", "gewtx0"), ("iface-added", "gewtx1")]
    assert all(c.observation_complete for c in added) and w.complete
    # deleting veth0 in a removes its peer in b too
    subprocess.run(["ip", "-n", netns_pair.a, "link", "del", "veth0"], check=True)
    gone = w.poll()
    assert sorted((c.what, c.netns, c.iface) for c in gone) == [
        ("iface-removed", netns_pair.a, "veth0"), ("iface-removed", netns_pair.b, "veth0")]
    assert not any(c.observation_complete for c in gone) and not w.complete
    assert w.poll() == []                       # reported once
    subprocess.run(["ip", "netns", "del", netns_pair.b], check=True)
    [c] = w.poll()
    assert (c.what, c.netns, c.observation_complete) == ("netns-removed", netns_pair.b, False)
