"""Flow identity: the cases issue 4 asks to pin, each a constructed L0 stream."""
from __future__ import annotations

from tests.support.model_streams import CLOSE, ESTABLISHED, SYN_SENT, StreamBuilder

from gewtui.model.engine import Engine
from gewtui.pb import events_pb2 as E
from gewtui.pb import model_pb2

SILENCE = 2_000_000_000


def feed(events, **kw):
    eng = Engine(**kw)
    changes = []
    for ev in events:
        changes.extend(eng.feed(ev))
    return eng, changes


def kinds(changes, flow_id=None):
    return [c.kind for c in changes if flow_id is None or c.flow_id == flow_id]


def test_one_connection_whole_lifecycle_is_one_flow_that_emerges_evolves_terminates():
    s = StreamBuilder()
    c = s.healthy("10.0.0.1", "10.0.0.2", 80)
    s.wait(3000)
    s.mark("stopped")
    eng, changes = feed(s.events)
    flows = eng.flows()
    assert len(flows) == 1
    f = flows[0]
    assert f.phase == model_pb2.TERMINATED and f.end_reason == "closed"
    assert [m.sock for m in f.members] == [c.sock]
    ks = kinds(changes, f.flow_id)
    assert ks.index("emerge") < ks.index("evolve") < ks.index("terminate")
    states = [(t.__getattribute__("from"), t.to) for t in f.transitions if t.what == "tcp-state"]
    assert states[0] == ("TCP_CLOSE", "TCP_SYN_SENT") and states[-1] == ("TCP_FIN_WAIT2", "TCP_CLOSE")
    assert f.counters.connections == 1 and f.counters.segments > 0


def test_flow_is_not_terminated_before_the_silence_window_ends():
    s = StreamBuilder()
    s.healthy("10.0.0.1", "10.0.0.2", 80)
    s.wait(1000)
    s.qdisc("eth9")      # time passes, within the window
    eng, _ = feed(s.events)
    assert eng.flows()[0].phase == model_pb2.EVOLVING
    assert eng.stats["flows_live"] == 1


def test_reconnect_right_after_close_with_new_socket_and_port_continues_the_flow():
    s = StreamBuilder()
    a = s.healthy("10.0.0.1", "10.0.0.2", 80)
    s.wait(200)
    b = s.healthy("10.0.0.1", "10.0.0.2", 80)
    assert (a.sock, a.lport) != (b.sock, b.lport)
    eng, changes = feed(s.events)
    flows = eng.flows()
    assert len(flows) == 1
    f = flows[0]
    assert f.phase == model_pb2.EVOLVING
    assert [m.sock for m in f.members] == [a.sock, b.sock]
    assert f.counters.connections == 2
    assert "terminate" not in kinds(changes)


def test_reconnect_after_a_long_silence_ends_the_flow_and_a_new_one_emerges():
    s = StreamBuilder()
    s.healthy("10.0.0.1", "10.0.0.2", 80)
    s.wait(5000)
    s.healthy("10.0.0.1", "10.0.0.2", 80)
    eng, changes = feed(s.events)
    first, second = eng.flows()
    assert first.phase == model_pb2.TERMINATED and first.end_reason == "closed"
    assert second.phase == model_pb2.EVOLVING and second.key == first.key
    assert second.parent_flow_id == 0
    assert kinds(changes).count("emerge") == 2


def test_silence_window_is_configurable():
    s = StreamBuilder()
    s.healthy("10.0.0.1", "10.0.0.2", 80)
    s.wait(500)
    s.healthy("10.0.0.1", "10.0.0.2", 80)
    assert len(feed(s.events, silence_ns=100_000_000)[0].flows()) == 2
    assert len(feed(s.events, silence_ns=SILENCE)[0].flows()) == 1


def test_socket_handed_to_another_process_stays_the_same_flow_and_gains_the_process():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80, tgid=100, comm="parent")
    s.established(c)
    s.transfer(c, 2)
    s.owner(c, 200, "worker", via="send")
    s.transfer(c, 2)
    eng, changes = feed(s.events)
    [f] = eng.flows()
    assert [(p.tgid, p.comm) for p in f.processes] == [(100, "parent"), (200, "worker")]
    assert f.phase == model_pb2.EVOLVING
    assert any(c.kind == "owner" and c.detail["comm"] == "worker" for c in changes)
    assert "terminate" not in kinds(changes) and kinds(changes).count("emerge") == 1
    owner = [t for t in f.transitions if t.what == "owner"]
    assert owner and owner[0].to == "worker[200]" and getattr(owner[0], "from") == "parent[100]"


def test_forked_child_writing_the_socket_stays_the_same_flow():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80, tgid=100, comm="server")
    s.established(c)
    # The child acts on the socket in process context (close): attribution, not a new flow.
    c.tgid, c.comm = 101, "server-child"
    s.state(c, ESTABLISHED, 4, process=True)
    eng, _ = feed(s.events)
    [f] = eng.flows()
    assert {p.tgid for p in f.processes} == {100, 101}


def test_route_change_mid_connection_makes_a_new_flow_diverged_from_its_parent():
    s = StreamBuilder()
    c = s.routed("10.0.0.1", "10.0.9.2", 80, device="veth1", gateway="10.0.1.1", summaries=2)
    fib2 = s.fib("10.0.9.2", device="veth2", gateway="10.0.2.1", dport=80, src="10.0.0.1")
    s.transfer(c, 2)
    eng, changes = feed(s.events)
    parent, child = eng.flows()
    assert parent.phase == model_pb2.DIVERGED and parent.end_reason == "diverged"
    assert list(parent.child_flow_ids) == [child.flow_id]
    assert child.parent_flow_id == parent.flow_id
    assert child.phase == model_pb2.EVOLVING
    assert [h.device for h in parent.path] == ["veth1"]
    assert [h.device for h in child.path] == ["veth2"] and child.path[0].event_id == fib2.id
    assert [m.sock for m in child.members] == [c.sock]       # the socket moved on
    assert child.counters.segments > 0 and child.key == parent.key
    assert "route-change" in child.templates and "route-change" in parent.templates
    d = [x for x in changes if x.kind == "diverge"][0]
    assert d.flow_id == parent.flow_id and d.detail["child"] == str(child.flow_id)
    assert d.detail["from"] == "veth1" and d.detail["to"] == "veth2"


def test_same_route_again_does_not_diverge_and_a_flap_diverges_twice():
    s = StreamBuilder()
    s.fib("10.0.9.2", device="veth1")
    c = s.connect("10.0.0.1", "10.0.9.2", 80)
    s.established(c)
    s.fib("10.0.9.2", device="veth1")          # same route: continuity
    s.transfer(c, 1)
    s.fib("10.0.9.2", device="veth2")
    s.transfer(c, 1)
    s.fib("10.0.9.2", device="veth1")
    s.transfer(c, 1)
    eng, _ = feed(s.events)
    a, b, d = eng.flows()
    assert (a.phase, b.phase, d.phase) == (model_pb2.DIVERGED, model_pb2.DIVERGED, model_pb2.EVOLVING)
    assert b.parent_flow_id == a.flow_id and d.parent_flow_id == b.flow_id
    assert [h.device for h in d.path] == ["veth1"]


def test_concurrent_conversations_with_different_peers_or_services_are_different_flows():
    s = StreamBuilder()
    a = s.connect("10.0.0.1", "10.0.0.2", 80)
    b = s.connect("10.0.0.1", "10.0.0.3", 80)      # other peer
    c = s.connect("10.0.0.1", "10.0.0.2", 443)     # other service on the same peer
    for x in (a, b, c):
        s.established(x)
    eng, _ = feed(s.events)
    flows = eng.flows()
    assert len(flows) == 3
    assert sorted(m.sock for f in flows for m in f.members) == sorted([a.sock, b.sock, c.sock])


def test_concurrent_connections_to_one_service_are_one_flow():
    s = StreamBuilder()
    a = s.connect("10.0.0.1", "10.0.0.2", 80)
    b = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(a)
    s.established(b)
    s.close(a)
    eng, _ = feed(s.events)
    [f] = eng.flows()
    assert f.counters.connections == 2 and f.phase == model_pb2.EVOLVING


def test_same_addresses_in_two_network_namespaces_are_different_flows():
    s = StreamBuilder()
    s.connect("10.0.0.1", "10.0.0.2", 80, netns=111)
    s.connect("10.0.0.1", "10.0.0.2", 80, netns=222)
    eng, _ = feed(s.events)
    assert sorted(f.netns for f in eng.flows()) == [111, 222]


def test_terminated_flows_are_kept_up_to_a_bound_and_evicted_oldest_first():
    s = StreamBuilder()
    for i in range(6):
        s.refused("10.0.0.1", f"10.0.1.{i + 1}", 80)
        s.wait(2500)   # each flow ends by silence before the next one starts
    s.mark("stopped")
    eng, changes = feed(s.events, max_terminated=3)
    kept = eng.flows()
    assert [f.flow_id for f in kept] == [4, 5, 6]
    assert eng.stats["evicted"] == 3 and eng.stats["flows_terminated"] == 3
    ev = [c for c in changes if c.kind == "evict"]
    assert [c.flow_id for c in ev] == [1, 2, 3]
    assert eng.flow(1) is None and eng.chain(1) is None


def test_server_side_connections_key_by_listening_port_and_reconnects_continue():
    s = StreamBuilder()
    lst = s.listen("10.0.0.2", 8080)
    a = s.accept(lst, "10.0.0.1", 40001)
    s.close(a, active=False)
    b = s.accept(lst, "10.0.0.1", 40002)
    s.close(b, active=False)
    eng, _ = feed(s.events)
    flows = eng.flows()
    roles = {f.key.split(" ")[1]: f for f in flows}
    assert len(flows) == 2                       # the listener, the conversation with 10.0.0.1
    listener = roles["listen"]
    conv = [f for f in flows if f is not listener][0]
    assert "10.0.0.2:8080 <- 10.0.0.1" in conv.key
    assert [m.sock for m in conv.members] == [a.sock, b.sock]
    # The child was traced before its peer was known; that transition is kept in its flow.
    first = [t for t in conv.transitions if t.what == "tcp-state"][0]
    assert (getattr(first, "from"), first.to) == ("TCP_LISTEN", "TCP_SYN_RECV")


def test_socket_first_seen_mid_life_is_keyed_by_its_ephemeral_port_side():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    mid = StreamBuilder(start_ns=s.t)
    mid.probe(c)                                  # no state change seen for this socket
    eng, _ = feed(mid.events)
    [f] = eng.flows()
    assert f.key.startswith("tcp 10.0.0.1 -> 10.0.0.2:80")


def test_a_reused_kernel_socket_address_is_a_new_member():
    s = StreamBuilder()
    a = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(a)
    s.close(a, destroy=False)
    b = s.connect("10.0.0.1", "10.0.0.3", 80, sock=a.sock)   # same address, other conversation
    s.established(b)
    eng, _ = feed(s.events)
    f1, f2 = eng.flows()
    assert f1.members[0].state == CLOSE and f2.members[0].state == ESTABLISHED
    assert f2.members[0].tuple.daddr == bytes([10, 0, 0, 3])


def test_no_route_at_connect_time_emerges_a_flow_from_the_routing_anchor():
    s = StreamBuilder()
    s.fib("10.9.9.9", err=-101, dport=443, src="10.0.0.1")
    s.wait(3000)
    s.qdisc()
    eng, _ = feed(s.events)
    [f] = eng.flows()
    assert f.phase == model_pb2.TERMINATED and f.end_reason == "silence"
    assert "no-route" in f.templates and f.path[0].err == -101


def test_process_change_and_socket_change_never_terminate_or_diverge():
    s = StreamBuilder()
    a = s.connect("10.0.0.1", "10.0.0.2", 80, tgid=1, comm="a")
    s.established(a)
    s.owner(a, 2, "b")
    s.close(a)
    b = s.connect("10.0.0.1", "10.0.0.2", 80, tgid=3, comm="c")
    s.established(b)
    eng, changes = feed(s.events)
    assert {c.kind for c in changes}.isdisjoint({"terminate", "diverge"})
    assert len(eng.flows()) == 1 and len(eng.flows()[0].processes) == 3
    assert SYN_SENT  # the builder's constants are the kernel's numbers


def test_source_port_learned_after_syn_sent_indexes_the_full_tuple():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)          # traced with sport 0, like the kernel
    assert s.events[0].tcp_state.tuple.sport == 0
    s.established(c)
    s.drop("NETFILTER_DROP", c)                        # found by its full tuple
    eng, _ = feed(s.events)
    [f] = eng.flows()
    assert f.members[0].tuple.sport == c.lport
    assert f.counters.drops == 1 and f.templates == ["netfilter-drop"]


def test_late_events_after_destroy_stay_with_the_old_socket_and_a_reused_address_is_new():
    # Seen on the lab's reset scenario: a server socket closes and is destroyed, its final
    # tcp_probe summary and a congestion-state reset with a blank tuple come after the
    # destroy, then the freed address is reused by a client socket in another namespace.
    s = StreamBuilder()
    lst = s.listen("10.0.0.2", 8080)
    srv = s.accept(lst, "10.0.0.1", 40001)
    s.state(srv, ESTABLISHED, CLOSE)
    s.destroy(srv)
    s.probe(srv, final=True)
    blank = type(srv)("0.0.0.0", 8080, "10.0.0.1", 0, srv.sock, srv.netns)
    s.emit("cong_state", E.TcpCongState(tuple=blank.tuple(), sock=srv.sock, ca_state=0),
           netns=srv.netns)
    cli = s.connect("10.0.0.1", "10.0.0.2", 8080, sock=srv.sock, netns=777)
    s.established(cli)
    eng, _ = feed(s.events)
    flows = {f.key.split(" netns")[0]: f for f in eng.flows()}
    server = flows["tcp 10.0.0.2:8080 <- 10.0.0.1"]
    client = flows["tcp 10.0.0.1 -> 10.0.0.2:8080"]
    assert server.counters.connections == 1 and client.counters.connections == 1
    assert server.members[0].state == CLOSE and client.members[0].state == ESTABLISHED
    assert eng.stats["unattributed"] == 0


def test_a_new_socket_at_the_address_of_one_whose_close_was_missed_is_a_new_member():
    s = StreamBuilder()
    a = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(a)                                   # its close is never seen
    b = s.connect("10.0.0.1", "10.0.0.3", 80, sock=a.sock)
    s.established(b)
    eng, _ = feed(s.events)
    f1, f2 = eng.flows()
    assert f1.members[0].state == ESTABLISHED and f1.counters.connections == 1
    assert f2.members[0].tuple.daddr == bytes([10, 0, 0, 3])
