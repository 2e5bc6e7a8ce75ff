"""Attribution is true: a server accept()ing in one namespace and a client in another, as
separate processes. The server's SYN_RECV -> ESTABLISHED runs in softirq, on the client's
CPU time (veth delivers in the sender's context): it must not be attributed to the client
(bcc#2304), and once the server has acted on the socket, its softirq events name the server.
Both ways the kernel side learns the context: the CPU's preempt count (read where a record
is made; no program of its own) and, where that cannot be found, the softirq tracker
programs."""
import os
import subprocess
import sys
import time

import pytest

from gewtui.kernel.plane import KernelPlane, PlaneConfig, ScopeFilter
from gewtui.kernel.probes import irqctx
from gewtui.pb import events_pb2 as E
from gewtui.runtime.btf import load_vmlinux
from tests.support.probes_support import Collector, of, require_root, veth_pair

pytestmark = [pytest.mark.root]

SERVER = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4)
print("ready", flush=True)
a, _ = s.accept()
d = a.recv(100); a.sendall(d)
a.recv(100)            # returns b"" when the client closed
time.sleep(0.3); a.close(); s.close()
"""

CLIENT = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.sendall(b"ping"); c.recv(100)
time.sleep(0.2); c.close(); time.sleep(0.5)
"""


@pytest.fixture(scope="module", params=["preempt-count", "tracker"])
def setup(request):
    require_root()
    with veth_pair("att", 43) as net, pytest.MonkeyPatch.context() as mp:
        if request.param == "tracker":
            # as on a kernel whose BTF shows no way to the preempt count
            mp.setattr(irqctx, "context_source", lambda btf: ("tracker", {}))
        events = []
        plane = KernelPlane(["tcp_state", "owner"], PlaneConfig(), on_event=events.append)
        try:
            plane.stage()
            plane.verify()
            tracker = {"gew_softirq_entry", "gew_softirq_exit"}
            assert (tracker <= set(plane.programs)) == (request.param == "tracker"), plane.programs
            if request.param == "preempt-count":
                assert irqctx.context_source(load_vmlinux())[0] != "tracker"
            plane.set_scope(ScopeFilter(netns_inodes=(net.inode_a, net.inode_b)))
            plane.attach()
            yield net, Collector(plane, events)
        finally:
            plane.close()


def test_softirq_state_changes_are_not_attributed_to_the_interrupted_task(setup):
    net, col = setup
    port = 20301
    srv = subprocess.Popen(["ip", "netns", "exec", net.b, sys.executable, "-c", SERVER, net.ip_b, str(port)],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().strip() == "ready"
        cli = subprocess.Popen(["ip", "netns", "exec", net.a, sys.executable, "-c", CLIENT, net.ip_b, str(port)])
        assert cli.wait(15) == 0
        assert srv.wait(15) == 0
    finally:
        for p in (srv,):
            if p.poll() is None:
                p.kill()
    server_pid, client_pid = srv.pid, cli.pid

    def server_child(evs):
        return [e for e in of(evs, "tcp_state", port) if e.tcp_state.tuple.sport == port
                and e.tcp_state.old_state != E.TCP_CLOSE and e.tcp_state.new_state != E.TCP_LISTEN
                and not (e.tcp_state.old_state == E.TCP_LISTEN and e.tcp_state.new_state == E.TCP_CLOSE)]

    assert col.poll_until(lambda evs: any(e.tcp_state.new_state == E.TCP_CLOSE for e in server_child(evs)))
    col.settle(0.2)
    evs = col.events
    by_pair = {(e.tcp_state.old_state, e.tcp_state.new_state): e for e in server_child(evs)}

    # the listener was made by the server in process context
    listen = [e for e in of(evs, "tcp_state", port) if e.tcp_state.new_state == E.TCP_LISTEN][0]
    assert listen.attr.source == E.ATTRIBUTION_PROCESS_CONTEXT and listen.attr.tgid == server_pid
    assert listen.attr.netns == net.inode_b

    # the client's connect is its own, in process context
    syn_sent = [e for e in of(evs, "tcp_state", port)
                if (e.tcp_state.old_state, e.tcp_state.new_state) == (E.TCP_CLOSE, E.TCP_SYN_SENT)][0]
    assert syn_sent.attr.source == E.ATTRIBUTION_PROCESS_CONTEXT and syn_sent.attr.tgid == client_pid
    assert syn_sent.attr.comm.startswith("python")

    # the server's new socket: softirq work, done while the client's task was on the CPU
    for pair in ((E.TCP_LISTEN, E.TCP_SYN_RECV), (E.TCP_SYN_RECV, E.TCP_ESTABLISHED)):
        ev = by_pair[pair]
        assert ev.attr.tgid != client_pid, f"{pair} attributed to the interrupted client"
        assert ev.attr.source == E.ATTRIBUTION_NONE
        assert ev.attr.pid == 0 and ev.attr.comm == ""
        assert ev.attr.netns == net.inode_b   # the socket's namespace is a kernel fact

    # the server then received on the socket in process context: it is the owner
    owners = [e for e in of(evs, "owner", port) if e.owner.tuple.sport == port]
    assert owners and owners[0].attr.tgid == server_pid
    # the client's FIN reaches the server's socket in softirq: attributed to its owner
    cw = by_pair[(E.TCP_ESTABLISHED, E.TCP_CLOSE_WAIT)]
    assert cw.attr.source == E.ATTRIBUTION_SOCKET_OWNER and cw.attr.tgid == server_pid
    assert cw.attr.tgid != client_pid
