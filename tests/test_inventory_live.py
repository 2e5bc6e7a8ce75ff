"""A session started after client and server are already connected: nginx listening, one
idle connection from a client port in a widened ephemeral range (1024-65000, set in the
client's namespace). Their flows, with the right roles and owners, exist on the first frame:
from the inventory events the session writes before any kernel event."""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys

import pytest

from gewtui.debugger.filters import FlowFilter
from gewtui.kernel import netns as nsmod
from gewtui.kernel.cgroups import cgroup2_root
from gewtui.kernel.live import LiveSession
from gewtui.lab.lab import Lab
from gewtui.model.engine import Engine
from gewtui.recording import RecordingReader

pytestmark = pytest.mark.root
CLIENT_PORT = 1502

HOLD = """
import socket, sys, time
s = socket.socket()
s.bind((sys.argv[1], int(sys.argv[2])))
s.connect((sys.argv[3], int(sys.argv[4])))
print("connected", flush=True)
time.sleep(120)
"""


@pytest.fixture
def preconnected():
    """nginx listening; a client connected from port 1502 and idle, its process in a cgroup
    of its own (/gewt-HEX.slice/hold.service under the cgroup v2 root)."""
    if shutil.which("nginx") is None:
        pytest.skip("needs nginx (make host-setup installs it)")
    root = cgroup2_root()
    if not root:
        pytest.skip("no cgroup v2 hierarchy mounted")
    slice_ = os.path.join(root, f"gewt-{secrets.token_hex(3)}.slice")
    unit = os.path.join(slice_, "hold.service")
    with Lab("web", name="i" + secrets.token_hex(3), clients=False, max_seconds=120) as lab:
        nsmod.run(["sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000"], netns=lab.client_netns)
        os.makedirs(unit)
        p = None
        try:
            def join() -> None:
                # in the child before exec: it joins the cgroup before it makes its socket
                # (sock_diag reports the socket's cgroup, its creator's); `ip netns exec`
                # mounts its own /sys, so this is done here, not in the namespace
                with open(os.path.join(unit, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))

            p = nsmod.popen([sys.executable, "-c", HOLD, lab.addr["client"], str(CLIENT_PORT),
                             lab.server_addr, str(lab.port)], lab.client_netns,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=join)
            assert p.stdout.readline().strip() == b"connected"
            lab.cgroup = "/" + os.path.relpath(unit, root)
            yield lab
        finally:
            if p is not None:
                p.kill()
                p.wait()
            for d in (unit, slice_):
                try:
                    os.rmdir(d)
                except OSError:
                    pass


def test_flows_of_an_idle_preexisting_connection_are_on_the_first_frame(preconnected, gew_instance, tmp_path):
    lab = preconnected
    rec = str(tmp_path / "pre.gewrec")
    evs: list = []
    with LiveSession(lab.all_scope_args, record=rec, instance=gew_instance.instance_id,
                     on_event=evs.append) as live:
        live.poll(100)
    # the first frame: what the session wrote before the first kernel event
    kinds = [e.WhichOneof("body") for e in evs]
    first_kernel = next((i for i, k in enumerate(kinds) if k not in ("mark", "netns_facts", "inventory", "cgroup")),
                        len(evs))
    assert kinds[0] == "mark" and "inventory" in kinds[:first_kernel]
    eng = Engine()
    for e in evs[:first_kernel]:
        eng.feed(e)
    cli_ino, srv_ino = nsmod.netns_inode(lab.client_netns), nsmod.netns_inode(lab.server_netns)
    keys = {f.key: f for f in eng.flows()}
    c, s = lab.addr["client"], lab.server_addr
    client = keys.get(f"tcp {c} -> {s}:{lab.port} netns {cli_ino}")
    server = keys.get(f"tcp {s}:{lab.port} <- {c} netns {srv_ino}")
    listener = keys.get(f"tcp listen 0.0.0.0:{lab.port} netns {srv_ino}")
    assert client and server and listener, sorted(keys)
    assert client.counters.connections == 1 and server.counters.connections == 1
    sock = [m for m in client.members][0]
    assert sock.tuple.sport == CLIENT_PORT
    # the client's process is attributed to its cgroup and systemd unit
    # sock_diag's tcp_info came with the socket: an RTT from its handshake
    (held,) = [e.inventory for e in evs[:first_kernel] if e.WhichOneof("body") == "inventory"
               and e.inventory.tuple.sport == CLIENT_PORT]
    assert held.state == 1 and held.info.rtt_us > 0 and held.info.snd_cwnd > 0
    assert list(client.cgroups) == [lab.cgroup] and list(client.units) == ["hold.service"]
    assert FlowFilter.parse([f"cgroup {os.path.dirname(lab.cgroup)}"]).matches(client)
    assert not FlowFilter.parse([f"cgroup {os.path.dirname(lab.cgroup)}"]).matches(server)
    lineage = {f.flow_id: str(eng.chain(f.flow_id)) for f in (client, server, listener)}
    assert "python" in lineage[client.flow_id]
    assert "nginx" in lineage[server.flow_id] and "nginx" in lineage[listener.flow_id]
    # the namespace's port range is in the recording's header and in its first events
    with RecordingReader(rec) as rd:
        ranges = {r.netns: (r.lo, r.hi) for r in rd.header.port_ranges}
    assert ranges[cli_ino] == (1024, 65000) and ranges[srv_ino] == (32768, 60999)
