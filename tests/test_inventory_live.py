"""A session started after client and server are already connected: nginx listening, one
idle connection from a client port in a widened ephemeral range (1024-65000, set in the
client's namespace). Their flows, with the right roles and owners, exist on the first frame:
from the inventory events the session writes before any kernel event."""
from __future__ import annotations

import secrets
import shutil
import subprocess
import sys

import pytest

from gewtui.kernel import netns as nsmod
from gewtui.kernel.session import LiveSession
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
    if shutil.which("nginx") is None:
        pytest.skip("needs nginx (make host-setup installs it)")
    with Lab("web", name="i" + secrets.token_hex(3), clients=False, max_seconds=120) as lab:
        nsmod.run(["sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000"], netns=lab.client_netns)
        p = nsmod.popen([sys.executable, "-c", HOLD, lab.addr["client"], str(CLIENT_PORT),
                         lab.server_addr, str(lab.port)], lab.client_netns,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            assert p.stdout.readline().strip() == b"connected"
            yield lab
        finally:
            p.kill()
            p.wait()


def test_flows_of_an_idle_preexisting_connection_are_on_the_first_frame(preconnected, gew_instance, tmp_path):
    lab = preconnected
    rec = str(tmp_path / "pre.gewrec")
    evs: list = []
    with LiveSession(lab.all_scope_args, record=rec, instance=gew_instance.instance_id,
                     on_event=evs.append) as live:
        live.poll(100)
    # the first frame: what the session wrote before the first kernel event
    kinds = [e.WhichOneof("body") for e in evs]
    first_kernel = next((i for i, k in enumerate(kinds) if k not in ("mark", "netns_facts", "inventory")),
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
    lineage = {f.flow_id: str(eng.chain(f.flow_id)) for f in (client, server, listener)}
    assert "python" in lineage[client.flow_id]
    assert "nginx" in lineage[server.flow_id] and "nginx" in lineage[listener.flow_id]
    # the namespace's port range is in the recording's header and in its first events
    with RecordingReader(rec) as rd:
        ranges = {r.netns: (r.lo, r.hi) for r in rd.header.port_ranges}
    assert ranges[cli_ino] == (1024, 65000) and ranges[srv_ino] == (32768, 60999)
