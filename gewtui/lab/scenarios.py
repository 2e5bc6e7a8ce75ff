"""The lab's scenarios as data: topology, per-namespace setup, and the generators to run.

Addresses exist only inside the lab's own namespaces: 10.77.<path>.0/24 and
fd77:<path>::/64 on the veth paths, 10.77.100.1 / fd77:100::1 as the server's service
address on its loopback (route-flap), 10.77.99.1 / fd77:99::1 as the client's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PORT = 8080
CLOSED_PORT = 8081


@dataclass(frozen=True)
class Gen:
    """One generator: the namespace role it runs in ("client"/"server") and its arguments.
    "{server}", "{client}", "{service}", "{client_lo}" and "{pathN}"/"{devN}" are filled in."""

    name: str
    netns: str
    role: str
    args: tuple[str, ...] = ()
    server: bool = False             # wait for it to listen before starting the next ones


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    shows: str                       # what a session scoped to the lab must record
    gens: tuple[Gen, ...]
    paths: int = 1                   # veth pairs between client and server
    setup: tuple[tuple[str, str], ...] = ()   # (netns role, command with placeholders)
    scope_roles: tuple[str, ...] = ("client",)
    service_on_lo: bool = False
    ipv6: bool = False
    extra: dict = field(default_factory=dict)


def _v(ipv6: bool) -> dict[str, str]:
    if ipv6:
        return {"server": "fd77:1::2", "client": "fd77:1::1", "service": "fd77:100::1", "client_lo": "fd77:99::1",
                "path1": "fd77:1::2", "path2": "fd77:2::2"}
    return {"server": "10.77.1.2", "client": "10.77.1.1", "service": "10.77.100.1", "client_lo": "10.77.99.1",
            "path1": "10.77.1.2", "path2": "10.77.2.2"}


def _build(ipv6: bool) -> dict[str, Scenario]:
    P, C = str(PORT), str(CLOSED_PORT)
    echo = Gen("server", "server", "echo-server", ("--bind", "{any}", "--port", P), server=True)
    s = [
        Scenario("healthy", "steady request/response between client and server",
                 "SYN_SENT→ESTABLISHED→…→CLOSE per connection, no resets, no retransmits",
                 (echo, Gen("client", "client", "rr-client",
                            ("--connect", "{server}", "--port", P, "--interval", "0.2", "--per-conn", "5")))),
        Scenario("refused", "the client connects to a closed port, again and again",
                 "SYN_SENT→CLOSE with a received reset on the client's tuple",
                 (Gen("client", "client", "refused-client",
                      ("--connect", "{server}", "--port", C, "--interval", "0.2")),)),
        Scenario("lossy", "10% of packets to the server are dropped (nftables numgen), causing retransmits",
                 "retransmits on the client's flows; drops with an nftables/netfilter reason in the server",
                 (echo, Gen("client", "client", "rr-client",
                            ("--connect", "{server}", "--port", P, "--size", "32768", "--per-conn", "20",
                             "--interval", "0.05"))),
                 setup=(("server", "nft add table inet gewlab"),
                        ("server", "nft add chain inet gewlab input { type filter hook input priority 0 ; }"),
                        ("server", f"nft add rule inet gewlab input tcp dport {P} numgen random mod 100 < 10 drop"))),
        Scenario("reset", "the server aborts each connection mid-stream (SO_LINGER 0)",
                 "a reset sent by the server and received by the client on an ESTABLISHED flow",
                 (Gen("server", "server", "reset-server", ("--bind", "{any}", "--port", P, "--after-bytes", "65536"),
                      server=True),
                  Gen("client", "client", "stream-client",
                      ("--connect", "{server}", "--port", P, "--chunk", "8192", "--pause", "0.01",
                       "--interval", "0.3"))),
                 scope_roles=("client", "server")),
        Scenario("route-flap", "two paths to the server's address; its route switches every 2 s during one long connection",
                 "fib lookups for one destination with two different results (veth0, veth1)",
                 (echo, Gen("client", "client", "stream-client",
                            ("--connect", "{service}", "--bind", "{client_lo}", "--port", P, "--chunk", "1024",
                             "--pause", "0.05", "--interval", "0.5")),
                  Gen("flapper", "client", "route-flapper",
                      ("--dest", "{service}", "--bind", "{client_lo}", "--path", "{path1}@veth0",
                       "--path", "{path2}@veth1", "--period", "2"))),
                 paths=2, service_on_lo=True),
        Scenario("congested", "a bulk sender through a tbf qdisc with a tiny queue on the client's veth",
                 "qdisc drops (QDISC_DROP) attributed to the bulk flow",
                 (Gen("server", "server", "sink-server", ("--bind", "{any}", "--port", P), server=True),
                  Gen("client", "client", "stream-client",
                      ("--connect", "{server}", "--port", P, "--chunk", "65536", "--interval", "0.2"))),
                 setup=(("client", "tc qdisc add dev veth0 root tbf rate 8mbit burst 16kb limit 16kb"),)),
        Scenario("listen-overflow", "a listener with backlog 1 that never accepts; many clients connect",
                 "client SYNs retransmitted and connections SYN_SENT→CLOSE never established, no reset "
                 "(the server drops the SYNs silently: only its ListenOverflows counter moves)",
                 (Gen("server", "server", "backlog-server", ("--bind", "{any}", "--port", P), server=True),
                  Gen("client", "client", "swarm-client",
                      ("--connect", "{server}", "--port", P, "--connections", "16", "--interval", "2.5"))),
                 scope_roles=("client", "server")),
    ]
    out = {}
    for sc in s:
        name = sc.name + ("6" if ipv6 else "")
        out[name] = Scenario(name, sc.summary + (" (IPv6)" if ipv6 else ""), sc.shows, sc.gens, sc.paths,
                             sc.setup, sc.scope_roles, sc.service_on_lo, ipv6)
    return out


def _programs() -> dict[str, Scenario]:
    """Scenarios driven by real Debian programs (gewtui.lab.programs), faults from nftables
    and tc. Rule counters are named so tests read them back: `nft list counter`."""
    P, C = str(PORT), str(CLOSED_PORT)
    nginx = Gen("server", "server", "nginx-server", ("--bind", "{any}", "--port", P), server=True)
    wrk = Gen("client", "client", "wrk-client", ("--connect", "{server}", "--port", P,
                                                 "--connections", "8", "--interval", "1"))
    nft = (("server", "nft add table inet gewlab"),
           ("server", "nft add chain inet gewlab input { type filter hook input priority 0 ; }"))

    def counted(name: str, match: str, verdict: str) -> tuple[tuple[str, str], ...]:
        """A server input rule with a named counter (tests read it with `nft list counter`)."""
        return nft + (("server", f"nft add counter inet gewlab {name}"),
                      ("server", f"nft add rule inet gewlab input {match} counter name {name} {verdict}"))
    s = [
        Scenario("web", "nginx serving wrk: steady HTTP keep-alive load",
                 "server flows of nginx's listener, client flows of wrk, no resets, no drops",
                 (nginx, wrk), scope_roles=("client", "server")),
        Scenario("web-lossy", "nginx serving wrk while nftables drops 5% of the packets to nginx",
                 "netfilter drops equal to the nft counter `lossy`; retransmissions caused by them",
                 (nginx, wrk),
                 setup=counted("lossy", f"tcp dport {P} numgen random mod 100 < 5", "drop"),
                 scope_roles=("client", "server")),
        Scenario("web-refused", "curl to a port nftables rejects with a TCP reset",
                 "refused connections caused by the netfilter reject, as many as the nft counter `refused`",
                 (nginx, Gen("client", "client", "curl-client", ("--connect", "{server}", "--port", C,
                                                                  "--interval", "0.2"))),
                 setup=counted("refused", f"tcp dport {C}", "reject with tcp reset"),
                 scope_roles=("client", "server")),
        Scenario("web-overflow", "nginx with a backlog of 4 stalls (SIGSTOP) while wrk opens 64 connections",
                 "handshake timeouts caused by the listener's overflow (ListenOverflows rises)",
                 (Gen("server", "server", "nginx-server", ("--bind", "{any}", "--port", P, "--backlog", "4",
                                                          "--pause", "1"), server=True),
                  Gen("client", "client", "wrk-client", ("--connect", "{server}", "--port", P,
                                                         "--connections", "64", "--interval", "1"))),
                 scope_roles=("client", "server")),
        Scenario("bulk-congested", "iperf3 through a tbf qdisc with a tiny queue on the client's veth",
                 "qdisc drops equal to `tc -s qdisc`'s dropped counter",
                 (Gen("server", "server", "iperf3-server", ("--bind", "{any}", "--port", P), server=True),
                  Gen("client", "client", "iperf3-client", ("--connect", "{server}", "--port", P,
                                                            "--interval", "0.5"))),
                 setup=(("client", "tc qdisc add dev veth0 root tbf rate 20mbit burst 32kb limit 32kb"),),
                 scope_roles=("client", "server")),
    ]
    return {sc.name: Scenario(sc.name, sc.summary, sc.shows, sc.gens, sc.paths, sc.setup, sc.scope_roles,
                              extra={"programs": tuple(sorted({g.role.split("-")[0] for g in sc.gens}))})
            for sc in s}


SCENARIOS: dict[str, Scenario] = {**_build(False), **_build(True), **_programs()}


def addresses(ipv6: bool) -> dict[str, str]:
    d = _v(ipv6)
    d["any"] = "::" if ipv6 else "0.0.0.0"
    return d


def get(name: str) -> Scenario:
    from gewtui.errors import UsageError

    try:
        return SCENARIOS[name]
    except KeyError:
        raise UsageError(f"unknown lab scenario {ascii(name)[:40]}; `gew lab list` shows them") from None
