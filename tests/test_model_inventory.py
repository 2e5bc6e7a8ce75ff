"""The start-of-session inventory and per-namespace port ranges in the model: flows of
sockets that existed before the session, with their roles, from the inventory events alone;
later probe events of those sockets join the same members."""
from __future__ import annotations

import pytest

from gewtui.model.engine import Engine
from gewtui.pb import model_pb2
from tests.support.model_streams import ESTABLISHED, LISTEN, NETNS, SYN_RECV, TIME_WAIT, Conn, StreamBuilder

SERVER_NS, CLIENT_NS = 4026532001, 4026532002


def _fold(events):
    eng = Engine()
    for ev in events:
        eng.feed(ev)
    return eng


def _by_key(eng, part):
    hits = [f for f in eng.flows() if part in f.key]
    assert len(hits) == 1, [f.key for f in eng.flows()]
    return hits[0]


def _widened_client():
    """A client socket on port 1502 in a namespace whose range is 1024-65000: (engine, flow)."""
    s = StreamBuilder(netns=CLIENT_NS)
    s.facts(1024, 65000)
    s.probe(Conn("10.0.0.1", 1502, "10.0.0.2", 80, s.new_sock(), CLIENT_NS))
    eng = _fold(s.events)
    return eng, _by_key(eng, "10.0.0.2:80")


def test_widened_port_range_makes_a_low_client_port_a_client():
    _eng, f = _widened_client()
    assert f.key.startswith("tcp 10.0.0.1 -> 10.0.0.2:80"), f.key


def test_a_drop_of_a_flow_covers_its_namespaces_widened_range():
    # the engine hands the controller the range the inventory read, and the flow key then
    # covers the client's port 1502, outside Linux's default range (one entry, no exact one)
    from gewtui.intervene.targets import deny_entries, flow_key

    eng, f = _widened_client()
    assert eng.port_range(f.netns) == (1024, 65000)
    assert eng.port_range(SERVER_NS) == (32768, 60999)      # not read: Linux's default
    key = flow_key(f, eng.port_range(f.netns))
    assert key is not None and deny_entries(f, eng.port_range(f.netns)) == [key]
    assert len(deny_entries(f)) == 2                         # by the default range: 1502 stays exact


def test_in_an_inventoried_namespace_both_ports_in_the_widened_range_is_still_a_client():
    s = StreamBuilder(netns=CLIENT_NS)
    s.facts(1024, 65000)
    c = Conn("10.0.0.1", 1502, "10.0.0.2", 8080, s.new_sock(), CLIENT_NS)   # 8080 is in range too
    s.probe(c)
    f = _by_key(_fold(s.events), "10.0.0.2:8080")
    assert f.key.startswith("tcp 10.0.0.1 -> 10.0.0.2:8080"), f.key


def test_in_an_inventoried_namespace_a_socket_on_a_listening_port_is_a_server():
    s = StreamBuilder(netns=SERVER_NS)
    s.facts(1024, 65000, netns=SERVER_NS)
    s.inventory(Conn("0.0.0.0", 8080, "0.0.0.0", 0, 5, SERVER_NS), LISTEN)
    c = Conn("10.0.0.2", 8080, "10.0.0.1", 1502, s.new_sock(), SERVER_NS)
    s.probe(c)
    f = _by_key(_fold(s.events), "<- 10.0.0.1")
    assert f.key == f"tcp 10.0.0.2:8080 <- 10.0.0.1 netns {SERVER_NS}", f.key


def test_without_the_range_the_default_cannot_tell_the_sides():
    # the same socket with no facts read: 1502 and 80 are both outside 32768-60999
    s = StreamBuilder(netns=CLIENT_NS)
    c = Conn("10.0.0.1", 1502, "10.0.0.2", 80, s.new_sock(), CLIENT_NS)
    s.probe(c)
    f = _by_key(_fold(s.events), "10.0.0.2:80")
    assert "<->" in f.key, f.key     # exact 4-tuple: no role


def _preconnected():
    s = StreamBuilder(netns=SERVER_NS)
    s.facts(32768, 60999, netns=SERVER_NS, name="server")
    s.facts(1024, 65000, netns=CLIENT_NS, name="client")
    lst = Conn("0.0.0.0", 80, "0.0.0.0", 0, 11, SERVER_NS, 500, "nginx")
    srv = Conn("10.0.0.2", 80, "10.0.0.1", 1502, 12, SERVER_NS, 501, "nginx")
    cli = Conn("10.0.0.1", 1502, "10.0.0.2", 80, 13, CLIENT_NS, 700, "python3")
    s.inventory(lst, LISTEN)
    s.inventory(srv)
    s.inventory(cli)
    return s, lst, srv, cli


def test_inventory_gives_flows_with_roles_on_the_first_frame():
    s, *_ = _preconnected()
    eng = _fold(s.events)
    keys = sorted(f.key for f in eng.flows())
    assert keys == sorted([
        f"tcp listen 0.0.0.0:80 netns {SERVER_NS}",
        f"tcp 10.0.0.2:80 <- 10.0.0.1 netns {SERVER_NS}",
        f"tcp 10.0.0.1 -> 10.0.0.2:80 netns {CLIENT_NS}",
    ]), keys
    client = _by_key(eng, "tcp 10.0.0.1 -> ")
    assert client.counters.connections == 1
    chain = eng.chain(client.flow_id)
    assert chain is not None
    # the owner the kernel named is in the lineage
    assert "python3[700]" in str(chain)


def test_later_events_of_an_inventoried_socket_join_its_member():
    s, _lst, srv, cli = _preconnected()
    cli.sock = 0xFFFF888000AA0000          # the probes name the kernel address
    s.probe(cli)
    s.state(cli, ESTABLISHED, 4)           # FIN_WAIT1
    eng = _fold(s.events)
    client = _by_key(eng, "tcp 10.0.0.1 -> ")
    assert client.counters.connections == 1
    assert len(eng.flows()) == 3


def test_a_destroy_naming_the_cookie_closes_the_inventoried_member():
    s, _lst, _srv, cli = _preconnected()
    from gewtui.pb import events_pb2 as E
    s.emit("destroy", E.SocketDestroy(tuple=cli.tuple(), sock=0xFFFF888000BB0000, sock_cookie=13),
           netns=CLIENT_NS)
    s.wait(5000)
    s.mark("stopped")
    eng = _fold(s.events)
    client = _by_key(eng, "tcp 10.0.0.1 -> ")
    assert client.end_reason == "closed", client.end_reason


def test_time_wait_sockets_are_members_already_closed():
    s = StreamBuilder(netns=NETNS)
    s.facts()
    c = Conn("10.0.0.1", 40001, "10.0.0.2", 80, 21, NETNS)
    s.inventory(c, TIME_WAIT)
    s.wait(3000)
    s.probe(Conn("10.0.0.9", 40002, "10.0.0.8", 80, 0xFFFF888000CC0000, NETNS))
    eng = _fold(s.events)
    f = _by_key(eng, "10.0.0.2:80")
    assert f.phase == model_pb2.TERMINATED and f.end_reason == "closed", (f.phase, f.end_reason)


@pytest.mark.parametrize("listen_on, peer_known_at_birth", [
    ("0.0.0.0", True),       # as this kernel traces a child: the id alone collides
    ("10.0.0.2", False),     # a child traced before its peer has its listener's own tuple
])
def test_a_child_is_never_taken_for_an_inventoried_listener(listen_on, peer_known_at_birth):
    # sock_diag's cookies and the decoder's socket ids are both small counters: a listener
    # inventoried under cookie 178 and the child the probes name 178 are two sockets (on a
    # freshly booted box every such child passed for the listener, and a server flow
    # counted one connection less than the kernel's PassiveOpens)
    s = StreamBuilder(netns=SERVER_NS)
    s.facts(netns=SERVER_NS)
    s.inventory(Conn(listen_on, 8080, "0.0.0.0", 0, 178, SERVER_NS, 500, "nginx"), LISTEN)
    for port, sock in ((40000, s.new_sock()), (40001, 178), (40002, s.new_sock())):
        child = Conn("10.0.0.2", 8080, "10.0.0.1", port, sock, SERVER_NS, 500, "nginx")
        born = child if peer_known_at_birth else Conn("10.0.0.2", 8080, "0.0.0.0", 0, sock, SERVER_NS)
        s.state(born, LISTEN, SYN_RECV)
        s.state(child, SYN_RECV, ESTABLISHED)
    eng = _fold(s.events)
    assert _by_key(eng, "<- 10.0.0.1").counters.connections == 3
    assert _by_key(eng, "listen").counters.connections == 1
