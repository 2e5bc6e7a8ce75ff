"""A peer's drop proposal on the real kernel: nothing happens until the operator, at the
keyboard of a live `gew shell --serve --allow-intervention` (driven through a pseudo-terminal,
exactly as a person types), confirms it; then the drop is in the intervention log, naming
the peer that proposed it.

The traffic: curl in one namespace connecting to a port whose SYNs nftables drops in the
other, so the client retransmits its SYN and the handshake-timeout template (which allows
a drop) matches the flow.
"""
from __future__ import annotations

import os
import pty
import re
import subprocess
import threading
import time

import pytest

from gewtui.control.client import CallFailed
from gewtui.pb import control_pb2 as cpb
from gewtui.pb import intervention_pb2 as ipb
from tests.support.control_support import GEW, client, make_peer, pair, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]
PORT = 7777
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\r")


class Terminal:
    """A child process on a pseudo-terminal; what it printed, without escape sequences."""

    def __init__(self, argv: list[str], env: dict):
        master, slave = pty.openpty()
        self.master = master
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.buf = b""
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.buf += data
            if b"\x1b[6n" in data:             # answer prompt_toolkit's cursor position request
                os.write(self.master, b"\x1b[1;1R")

    def text(self) -> str:
        with self._lock:
            return _ANSI.sub("", self.buf.decode("utf-8", "replace"))

    def expect(self, what: str, timeout: float, after: int = 0) -> int:
        got = wait_for(lambda: self.text().find(what, after) + 1, timeout, 0.1)
        assert got, f"{what!r} not seen; terminal:\n{self.text()[-3000:]}"
        return got

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, 6)         # PYTHONFAULTHANDLER: every thread's stack
                time.sleep(2)
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError("the shell hung at exit:\n" + self.text()[-8000:]) from None
        os.close(self.master)


@pytest.fixture
def blackhole(netns_pair):
    ns = netns_pair.b
    subprocess.run(["ip", "netns", "exec", ns, "nft", "add table inet gewctl"], check=True)
    subprocess.run(["ip", "netns", "exec", ns, "nft", "add chain inet gewctl in { type filter hook input priority 0 ; }"], check=True)
    subprocess.run(["ip", "netns", "exec", ns, "nft", f"add rule inet gewctl in tcp dport {PORT} counter drop"], check=True)
    yield
    subprocess.run(["ip", "netns", "exec", ns, "nft", "delete table inet gewctl"], capture_output=True)


def test_peer_drop_waits_for_the_keyboard_then_is_logged_with_the_peer(netns_pair, blackhole, tmp_path):
    etc = tmp_path / "etc"
    key = make_peer(tmp_path)
    pair(etc, key)
    env = dict(os.environ, GEWYVERN_ETC=str(etc), PYTHONFAULTHANDLER="1", TERM="xterm", NO_COLOR="1", COLUMNS="200", LINES="50",
               XDG_STATE_HOME=str(tmp_path / "state"))
    sh = Terminal(GEW + ["shell", "--scope", f"netns={netns_pair.a}", "--serve", "--allow-intervention",
                         "--record", str(tmp_path / "s.gewrec")], env)
    curl = None
    try:
        sock = wait_for(lambda: next(iter(
            [p for p in (os.path.join(r, "control.sock") for r in _session_dirs()) if os.path.exists(p)
             and _owned_by(p, sh.proc.pid)]), ""), 90, 0.2)
        assert sock, f"no control socket; terminal:\n{sh.text()[-3000:]}"
        curl = subprocess.Popen(["ip", "netns", "exec", netns_pair.a, "curl", "-s", "--connect-timeout", "40",
                                 f"http://{netns_pair.b_addr}:{PORT}/"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        with client(sock, key) as c:
            fid = wait_for(lambda: _find_flow(c, netns_pair.b_addr), 20, 0.5)
            assert fid, "the handshake-timeout flow did not show"
            p = c.call("RequestDrop", cpb.DropRequest(flow_id=fid, reason="SYNs unanswered"))
            assert p.state == cpb.PENDING and p.peer == "fleet1"
            time.sleep(2)
            # nothing happened: no record, no drop, the proposal is still pending
            lst = c.call("ListInterventions")
            assert not lst.records
            assert [(x.flow_id, x.state) for x in lst.proposals] == [(fid, cpb.PENDING)]
            assert not _deny_filters(netns_pair.a)
            # the operator, at the keyboard
            sh.expect("gew ", 10)
            mark = len(sh.text())
            sh.type(f"drop {fid}")
            sh.expect("Type the flow id to confirm", 15, mark)
            sh.type(str(fid))
            sh.expect(f"drop flow {fid}: active", 30, mark)
            recs = wait_for(lambda: [r for r in c.call("ListInterventions").records if r.action == ipb.DROP], 5)
            assert recs and recs[0].flow_id == fid and recs[0].outcome == ipb.ACTIVE
            assert "proposed by peer fleet1" in recs[0].detail and "confirmed locally" in recs[0].detail
            assert {c_.name for c_ in recs[0].gate.conditions if c_.ok} >= {"override", "confirmation"}
            (prop,) = c.call("ListInterventions").proposals
            assert prop.state == cpb.CONFIRMED and prop.intervention_id == recs[0].intervention_id
            assert _deny_filters(netns_pair.a)
            with pytest.raises(CallFailed) as e:
                c.call("RequestDrop", cpb.DropRequest(flow_id=10**9))
            assert e.value.status == "NOT_FOUND"
    finally:
        if curl is not None and curl.poll() is None:
            curl.terminate()
            curl.wait(10)
        sh.type("quit")
        time.sleep(1)
        sh.close()
    assert not _deny_filters(netns_pair.a)       # the session's end removed the drop


def _session_dirs() -> list[str]:
    root = "/run/gewyvern/instances/default/sessions"
    try:
        return [os.path.join(root, n) for n in os.listdir(root)]
    except FileNotFoundError:
        return []


def _owned_by(sock: str, pid: int) -> bool:
    import json

    try:
        with open(os.path.join(os.path.dirname(sock), "manifest.json")) as f:
            return json.load(f).get("owner_pid") == pid
    except (OSError, ValueError):
        return False


def _find_flow(c, addr: str) -> int:
    import ipaddress

    want = ipaddress.ip_address(addr).packed
    for fid in range(1, 64):
        try:
            f = c.call("GetFlow", cpb.FlowRequest(flow_id=fid))
        except CallFailed:
            continue
        if f.peer_addr == want and f.peer_port == PORT and "handshake-timeout" in f.templates:
            return fid
    return 0


def _deny_filters(ns: str) -> str:
    out = subprocess.run(["tc", "-n", ns, "filter", "show", "dev", "veth0", "egress"], capture_output=True, text=True)
    return out.stdout.strip()
