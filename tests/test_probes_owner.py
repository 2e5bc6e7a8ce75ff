"""Socket owners on the real kernel: two processes share one connected socket (the same
file, inherited) and take turns sending and receiving on it. The owner unit remembers per
CPU the last (socket, process) pair it checked and skips the socket table while the pair
repeats (and nothing about sockets changed since); every change of hands must still be one
owner event, with the previous owner and the call that showed it, and a repeated call by
the same process none. On one CPU the remembered pair changes with every change of hands;
on two, a CPU still remembers its process's pair when the other CPU's process took the
socket over, and only the moved generation tells it."""
import os
import socket
import subprocess
import sys

import pytest

from gewtui.pb import events_pb2 as E
from tests.support.probes_support import entered, of, require_root, running_plane, veth_pair

pytestmark = [pytest.mark.root]

# A process holding the shared socket (its descriptor number in argv) on one CPU (argv): one
# command per line on stdin, "ok" after each.
HOLDER = """
import os, socket, sys
os.sched_setaffinity(0, {int(sys.argv[2])})
s = socket.socket(fileno=int(sys.argv[1]))
for line in sys.stdin:
    if line.strip() == "send":
        s.sendall(b"x" * 10)
    elif line.strip() == "recv":
        s.recv(100)
    print("ok", flush=True)
"""


@pytest.mark.parametrize("cpus", [(0, 0), (0, 1)], ids=["one-cpu", "two-cpus"])
def test_every_change_of_hands_is_one_owner_event(cpus):
    require_root()
    if max(cpus) >= (os.cpu_count() or 1):
        pytest.skip(f"needs {max(cpus) + 1} CPUs: the holders run on different CPUs")
    port = 20601
    holders: list[subprocess.Popen] = []
    with veth_pair("own", 47) as net, running_plane(["owner"], net) as col:
        try:
            with entered(net.b):
                srv = socket.socket()
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind((net.ip_b, port))
            srv.listen(1)
            with entered(net.a):
                c = socket.create_connection((net.ip_b, port), timeout=5)
            peer, _ = srv.accept()
            for cpu in cpus:
                holders.append(subprocess.Popen([sys.executable, "-c", HOLDER, str(c.fileno()), str(cpu)],
                                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                                pass_fds=(c.fileno(),)))
            c.close()      # the holders keep the socket

            def do(i: int, what: str) -> None:
                if what == "recv":
                    peer.sendall(b"y" * 10)
                holders[i].stdin.write(what + "\n")
                holders[i].stdin.flush()
                assert holders[i].stdout.readline().strip() == "ok"

            steps = [(0, "send"), (0, "send"), (1, "send"), (0, "send"), (0, "send"), (1, "recv"),
                     (1, "send"), (0, "recv"), (0, "send")]
            for i, what in steps:
                do(i, what)
            pids = [h.pid for h in holders]
            # the changes of hands: each step whose process differs from the one before (the
            # first from this process, which connected the socket)
            want = [(pids[i], pids[steps[k - 1][0]] if k else os.getpid(), what)
                    for k, (i, what) in enumerate(steps) if k == 0 or steps[k - 1][0] != i]

            def client_owners(evs):
                return [e for e in of(evs, "owner", port) if e.owner.tuple.dport == port]

            assert col.poll_until(lambda evs: len(client_owners(evs)) >= len(want))
            col.settle(0.3)
            got = [(e.attr.tgid, e.owner.previous_tgid, e.owner.via) for e in client_owners(col.events)]
            assert got == want
            assert all(e.attr.source == E.ATTRIBUTION_PROCESS_CONTEXT for e in client_owners(col.events))
            st = col.plane.stats()
            assert st.lost == 0 and st.decode_errors == 0
            peer.close()
            srv.close()
        finally:
            for h in holders:
                if h.stdin:
                    h.stdin.close()
                try:
                    h.wait(5)
                except subprocess.TimeoutExpired:
                    h.kill()
                    h.wait()
