"""Real programs against the kernel's own counters: lab scenarios built from nginx, ab, wrk,
curl and iperf3 (Debian), faults from nftables and tc, a live session over both namespaces.

Each test brings the lab's servers and faults up without clients, reads the kernel's
counters, opens a session, runs the client program itself inside the session, lets the session
drain and close, and reads the counters again; so the counters' deltas cover exactly the
traffic the session saw. Then it asserts one fact of gew against the kernel's counter for it:
nft rule counters, the namespace's /proc/net/snmp and /proc/net/netstat, `tc -s qdisc`.

Retransmissions: `tcp:tcp_retransmit_skb` fires once per retransmitted skb, while
Tcp RetransSegs counts segments (an skb may carry several under GSO), so gew's retransmit
records are at most RetransSegs and at least one when it moved.
"""
from __future__ import annotations

import collections
import os
import re
import secrets
import shutil
import subprocess
import time

import pytest

from gewtui.kernel import netns as nsmod
from gewtui.kernel.inventory import counters_here, parse_counters
from gewtui.kernel.live import LiveSession
from gewtui.lab import programs
from gewtui.lab.lab import Lab
from gewtui.model.engine import Engine
from gewtui.pb import events_pb2 as pb

pytestmark = pytest.mark.root
NEED = ("nginx", "ab", "wrk", "curl", "iperf3", "nft", "tc")


@pytest.fixture(autouse=True)
def _programs_installed():
    missing = [p for p in NEED if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs the Debian programs {', '.join(missing)} (make host-setup installs them)")


def _snmp(ns: str) -> dict:
    return nsmod.call_in_netns(ns, counters_here)


def _nft_packets(ns: str, name: str) -> int:
    out = nsmod.run(["nft", "list", "counter", "inet", "gewlab", name], netns=ns).stdout
    return int(re.search(r"packets (\d+)", out).group(1))


def _tc_dropped(ns: str, dev: str) -> int:
    out = nsmod.run(["tc", "-s", "qdisc", "show", "dev", dev], netns=ns).stdout
    return sum(int(x) for x in re.findall(r"dropped (\d+)", out))


def _session(lab: Lab, client_argv: list[str], seconds: float, instance: str, at_end=None):
    """Run client_argv in the client namespace inside a live session; all events, in order.
    ``at_end()``, if given, runs inside the session once the client is done and the capture
    has caught up (to read a kernel counter while gew still observes)."""
    evs: list = []   # every event, also those the session drains while it closes
    with LiveSession(lab.all_scope_args, instance=instance, on_event=evs.append) as live:
        live.poll(100)
        p = nsmod.popen(client_argv, lab.client_netns, stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + seconds
            while p.poll() is None and time.monotonic() < deadline:
                live.poll(100)
        finally:
            if p.poll() is None:
                p.kill()
            p.wait()
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            live.poll(100)
        if at_end is not None:
            at_end()
            live.poll(100)
    st = live.stats
    assert st.lost == 0, st.incomplete_reason
    _session.last_incomplete = st.incomplete_reason     # a test's message may show it
    return evs


class _Cut:
    """A kernel counter read inside the session, bracketed by two kernel clock readings:
    closing sockets go on retransmitting into a dropping rule after the client exits, so a
    counter is only comparable with the drops gew saw up to the moment it was read. ``count``
    gives (drops seen before the reading began, drops seen before it ended): the counter
    must lie between them."""

    def __init__(self, read):
        self.read, self.value, self.t0, self.t1 = read, None, 0, 0

    def __call__(self) -> None:
        self.t0 = time.monotonic_ns()   # CLOCK_MONOTONIC: the events' ktime_ns
        self.value = self.read()
        self.t1 = time.monotonic_ns()

    def count(self, drops) -> tuple[int, int]:
        return (sum(b.count or 1 for e, b in drops if e.ktime_ns <= self.t0),
                sum(b.count or 1 for e, b in drops if e.ktime_ns <= self.t1))


def _of(evs, kind):
    return [(e, getattr(e, kind)) for e in evs if e.WhichOneof("body") == kind]


def _fold(evs) -> Engine:
    eng = Engine()
    for e in evs:
        eng.feed(e)
    return eng


def _links(eng, rule: str) -> list:
    return [n for ch in eng.chains() for n in ch.root.children
            if n.kind == "cause" and n.fields.get("rule") == rule]


def _lab(scenario: str) -> Lab:
    return Lab(scenario, name="p" + secrets.token_hex(3), clients=False, max_seconds=120)


def test_ab_against_nginx_passive_opens_equal_the_kernels(gew_instance):
    with _lab("web") as lab:
        srv = lab.server_netns
        ns_inode = nsmod.netns_inode(srv)
        before = _snmp(srv)
        evs = _session(lab, programs.ab_argv(lab.server_addr, lab.port, 400, 8), 60,
                       gew_instance.instance_id)
        after = _snmp(srv)
    opened = after[("Tcp", "PassiveOpens")] - before[("Tcp", "PassiveOpens")]
    # a passive open is a child socket SYN_RECV -> ESTABLISHED in the server's namespace
    seen = [b for e, b in _of(evs, "tcp_state") if e.attr.netns == ns_inode
            and b.old_state == pb.TCP_SYN_RECV and b.new_state == pb.TCP_ESTABLISHED]
    # ab opens a few connections beyond its requests (its last concurrent ones): >= 400
    assert opened >= 400 and len(seen) == opened, (len(seen), opened)
    eng = _fold(evs)
    server = [f for f in eng.flows() if f.key.startswith("tcp ") and " <- " in f.key]
    assert sum(f.counters.connections for f in server) == opened
    listener = [f for f in eng.flows() if " listen " in f.key and f":{lab.port} " in f.key]
    assert listener, "nginx's listener is a flow from the inventory"


def _unrun_drops(evs) -> int:
    """Drop-probe runs the kernel skipped without counting them, as the session's witness
    reported them (lost events of stage "unrun")."""
    return sum(b.count for _e, b in _of(evs, "lost") if b.stage == "unrun" and b.probe == "drops")


def test_netfilter_drops_equal_the_nft_counter_and_explain_retransmissions(gew_instance):
    with _lab("web-lossy") as lab:
        srv, cli = lab.server_netns, lab.client_netns
        n0 = _nft_packets(srv, "lossy")
        s0, c0 = _snmp(srv), _snmp(cli)
        cut = _Cut(lambda: (_nft_packets(srv, "lossy"), _snmp(srv), _snmp(cli)))
        evs = _session(lab, programs.wrk_argv(lab.server_addr, lab.port, 8, 4), 30,
                       gew_instance.instance_id, at_end=cut)
        n1, s1, c1 = cut.value
    dropped = n1 - n0
    drops = [(e, b) for e, b in _of(evs, "skb_drop") if b.reason_name == "NETFILTER_DROP"]
    seen = cut.count(drops)
    # drops the kernel did not run the program for, as in the qdisc test below: the
    # tracepoint's own counter says how many, and the session says it is incomplete
    unrun = _unrun_drops(evs)
    assert dropped > 0 and seen[0] <= dropped <= seen[1] + unrun, (seen, dropped, unrun, _session.last_incomplete)
    assert not unrun or "uncounted" in _session.last_incomplete
    # each drop site named as function+offset (kallsyms), and the names kept in the events
    sites = {b.location_symbol for _e, b in _of(evs, "skb_drop") if b.reason_name == "NETFILTER_DROP"}
    assert sites and all(re.fullmatch(r"\w+\+0x[0-9a-f]+( \[\w+\])?", x) for x in sites), sites
    segs = (s1[("Tcp", "RetransSegs")] - s0[("Tcp", "RetransSegs")]) + \
        (c1[("Tcp", "RetransSegs")] - c0[("Tcp", "RetransSegs")])
    skbs = len([e for e, _b in _of(evs, "retransmit") if e.ktime_ns <= cut.t0])
    assert 0 < skbs <= segs, (skbs, segs)
    eng = _fold(evs)
    links = _links(eng, "drops-retransmissions")
    assert links, "no retransmission storm was tied to the netfilter drops"
    # the totals the chains' netfilter-drop texts state add up to every drop gew saw (the
    # nft counter, read above while gew observed, lies within the drops seen around it)
    stated = [int(re.search(r"dropped (\d+) packet", n.text).group(1))
              for ch in eng.chains() for n in ch.root.children if n.kind == "netfilter-drop"]
    assert sum(stated) == sum(b.count or 1 for _e, b in drops), (stated, dropped)


def test_refused_attempts_equal_the_nft_reject_counter(gew_instance):
    with _lab("web-refused") as lab:
        srv, cli = lab.server_netns, lab.client_netns
        n0, c0 = _nft_packets(srv, "refused"), _snmp(cli)
        loop = ["sh", "-c", f"for i in $(seq 20); do curl -s -o /dev/null --max-time 2"
                            f" http://{lab.server_addr}:8081/; done"]
        evs = _session(lab, loop, 60, gew_instance.instance_id)
        n1, c1 = _nft_packets(srv, "refused"), _snmp(cli)
    rejected = n1 - n0
    fails = c1[("Tcp", "AttemptFails")] - c0[("Tcp", "AttemptFails")]
    eng = _fold(evs)
    refused = [n for ch in eng.chains() for n in ch.root.children if n.kind == "connection-refused"]
    closes = [b for e, b in _of(evs, "tcp_state") if b.old_state == pb.TCP_SYN_SENT
              and b.new_state == pb.TCP_CLOSE and b.tuple.dport == 8081]
    assert rejected == 20 and fails == rejected and len(closes) == rejected, (rejected, fails, len(closes))
    assert refused
    assert _links(eng, "netfilter-reject-refused"), "no refusal tied to the netfilter reject"


def test_listen_overflows_of_a_stalled_nginx_explain_handshake_timeouts(gew_instance):
    with _lab("web-overflow") as lab:
        srv = lab.server_netns
        time.sleep(1.5)                                   # nginx stops after 1 s
        before = _snmp(srv)
        evs = _session(lab, programs.wrk_argv(lab.server_addr, lab.port, 64, 8), 15,
                       gew_instance.instance_id)
        after = _snmp(srv)
    overflows = after[("TcpExt", "ListenOverflows")] - before[("TcpExt", "ListenOverflows")]
    facts = [b for _e, b in _of(evs, "netns_facts") if b.name == srv]
    assert facts[0].when == "start" and facts[-1].when == "end"
    assert overflows > 0 and facts[-1].listen_overflows - facts[0].listen_overflows == overflows
    eng = _fold(evs)
    assert _links(eng, "listen-overflow-handshake"), "no handshake timeout tied to the overflow"


def test_qdisc_drops_equal_tc_s(gew_instance):
    with _lab("bulk-congested") as lab:
        cli = lab.client_netns
        d0 = _tc_dropped(cli, "veth0")
        cut = _Cut(lambda: _tc_dropped(cli, "veth0"))
        evs = _session(lab, ["iperf3", "-c", lab.server_addr, "-p", str(lab.port), "-t", "3"], 20,
                       gew_instance.instance_id, at_end=cut)
        d1 = cut.value
    dropped = d1 - d0
    cli_ino = {b.netns for _e, b in _of(evs, "netns_facts") if b.name == cli}
    # tc -s counts a qdisc's drops whatever reason the kernel frees them with: every reason of
    # the qdisc family (QDISC_DROP, QDISC_OVERLIMIT, QDISC_CONGESTED) counts; the message
    # shows the reasons seen when they disagree
    drops = [(e, b) for e, b in _of(evs, "skb_drop") if e.attr.netns in cli_ino]
    seen = cut.count([(e, b) for e, b in drops if b.reason_name.startswith("QDISC_")])
    reasons = collections.Counter(b.reason_name for _e, b in drops)
    sites = collections.Counter((b.reason_name, b.location_symbol) for _e, b in drops
                                if not b.reason_name.startswith("QDISC_"))
    elsewhere = collections.Counter((e.attr.netns, b.ifname) for e, b in _of(evs, "skb_drop")
                                    if b.reason_name.startswith("QDISC_") and e.attr.netns not in cli_ino)
    # drops the kernel did not run the program for (about one run in 20 here: bursts in
    # softirq, which the kernel does not count as misses): the tracepoint's own counter
    # says how many, the session is incomplete, and tc's count lies within them
    unrun = _unrun_drops(evs)
    assert dropped > 0 and seen[0] <= dropped <= seen[1] + unrun, (seen, dropped, unrun, reasons, sites,
                                                                   elsewhere, _session.last_incomplete)
    assert not unrun or "uncounted" in _session.last_incomplete


def test_counters_parse_like_the_kernel_writes_them():
    text = "Tcp: RtoAlgorithm PassiveOpens\nTcp: 1 42\nTcpExt: ListenOverflows\nTcpExt: 7\n"
    assert parse_counters(text) == {("Tcp", "RtoAlgorithm"): 1, ("Tcp", "PassiveOpens"): 42,
                                    ("TcpExt", "ListenOverflows"): 7}


def _pids_of(name: str) -> set[int]:
    out = set()
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() == name:
                        out.add(int(p))
            except OSError:
                pass
    return out


def test_a_real_program_lab_leaves_no_program_behind():
    before = _pids_of("nginx") | _pids_of("wrk")
    with Lab("web", name="p" + secrets.token_hex(3), max_seconds=120) as lab:
        deadline = time.monotonic() + 10
        while not lab.status("client").get("runs") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _pids_of("nginx") - before, "nginx did not run"
    time.sleep(0.5)
    assert not ((_pids_of("nginx") | _pids_of("wrk")) - before), "a program outlived the lab"
