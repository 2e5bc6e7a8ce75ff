"""Templates: each packaged template fires on the stream it describes (and only the
expected ones fire), none fires on healthy traffic, and loading errors are one clear line."""
from __future__ import annotations

import textwrap

import pytest

from tests.support.model_streams import (ESTABLISHED, SYN_SENT, StreamBuilder)

from gewtui.errors import GewError
from gewtui.model.engine import Engine
from gewtui.model.templates import TemplateError, load_templates
from gewtui.pb import events_pb2 as E

REQUIRED = {"connection-refused", "handshake-timeout", "retransmission-storm", "peer-reset",
            "local-abort", "zero-window", "queue-drops", "route-change", "no-route",
            "netfilter-drop", "listen-overflow"}


def fired(events, **kw) -> dict[int, list[str]]:
    eng = Engine(**kw)
    for ev in events:
        eng.feed(ev)
    return {f.flow_id: list(f.templates) for f in eng.flows()}, eng


def all_fired(events) -> set[str]:
    got, _ = fired(events)
    return {t for ts in got.values() for t in ts}


def test_packaged_set_has_every_required_template():
    assert REQUIRED <= set(load_templates().ids())


def test_healthy_traffic_fires_no_template():
    s = StreamBuilder()
    for i in range(5):
        s.healthy("10.0.0.1", "10.0.0.2", 80, summaries=5)
        s.healthy("10.0.0.1", f"10.0.1.{i + 1}", 443)
        s.qdisc("veth0", dropped=0)
    lst = s.listen("10.0.0.1", 8080)
    for i in range(3):
        c = s.accept(lst, "10.0.0.9", 41000 + i)
        s.transfer(c)
        s.close(c, active=False)
    s.wait(3000)
    s.mark("stopped")
    got, eng = fired(s.events)
    assert got and all(t == [] for t in got.values()), got
    for ch in eng.chains():
        assert [n for n in ch.root.children if n.layer == 3] == []


def stream_for(name: str) -> StreamBuilder:
    s = StreamBuilder()
    if name == "connection-refused":
        s.refused("10.0.0.1", "10.0.0.2", 81)
    elif name == "handshake-timeout":
        s.handshake_timeout("10.0.0.1", "10.0.0.2", 80)
    elif name == "retransmission-storm":
        c = s.connect("10.0.0.1", "10.0.0.2", 80)
        s.established(c)
        s.lossy(c, retransmits=8, every_ms=50)
    elif name == "peer-reset":
        c = s.connect("10.0.0.1", "10.0.0.2", 80)
        s.established(c)
        s.transfer(c)
        s.peer_reset(c)
    elif name == "local-abort":
        c = s.connect("10.0.0.1", "10.0.0.2", 80)
        s.established(c)
        s.local_abort(c)
    elif name == "zero-window":
        c = s.connect("10.0.0.1", "10.0.0.2", 80)
        s.established(c)
        s.zero_window(c)
    elif name == "queue-drops":
        s.fib("10.0.0.2", device="veth7")
        c = s.connect("10.0.0.1", "10.0.0.2", 80)
        s.established(c)
        s.transfer(c)
        s.qdisc("veth7", dropped=12, overlimits=30)
    elif name == "route-change":
        s.fib("10.0.0.2", device="veth1")
        c = s.connect("10.0.0.1", "10.0.0.2", 80)
        s.established(c)
        s.fib("10.0.0.2", device="veth2")
        s.transfer(c, 1)
    elif name == "no-route":
        c = s.connect("10.0.0.1", "10.0.0.2", 80)
        s.established(c)
        s.drop("IP_OUTNOROUTES", c, attribution=E.PACKET_ATTRIBUTION_SOCKET, with_sock=True)
    elif name == "netfilter-drop":
        c = s.connect("10.0.0.1", "10.0.0.2", 80)
        s.drop("NETFILTER_DROP", c, count=1)
        s.wait(1000)
        s.retransmit(c, state=SYN_SENT)
    elif name == "listen-overflow":
        lst = s.listen("10.0.0.2", 8080)
        c = s.connect("10.0.0.1", "10.0.0.2", 8080)
        s.drop("TCP_LISTEN_OVERFLOW", c, reverse=True)   # the SYN as the listener got it
        s.rcvq_full(lst, listen_overflow=True)
    elif name == "stall":
        c = s.connect("10.0.0.1", "10.0.0.2", 80)
        s.established(c)
        s.transfer(c, 1)
        s._c(c, "cong_state", E.TcpCongState(tuple=c.tuple(), sock=c.sock, ca_state=4, ca_state_name="Loss"))
    elif name == "slow-handshake":
        c = s.connect("10.0.0.1", "10.0.0.2", 80)
        s.wait(250)
        s.established(c)
    elif name == "rtt-inflation":
        c = s.connect("10.0.0.1", "10.0.0.2", 80)
        s.established(c)
        ev = s.probe(c)
        ev.tcp_probe.srtt_us, ev.tcp_probe.max_srtt_us = 90_000, 150_000
    elif name == "receive-queue-full":
        c = s.connect("10.0.0.1", "10.0.0.2", 80)
        s.established(c)
        s.rcvq_full(c)
    else:
        raise AssertionError(name)
    return s


EXPECTED = {
    "connection-refused": {"connection-refused"},
    "handshake-timeout": {"handshake-timeout"},
    "retransmission-storm": {"retransmission-storm"},
    "peer-reset": {"peer-reset"},
    "local-abort": {"local-abort"},
    "zero-window": {"zero-window", "stall"},   # a zero window now is also a stall
    "stall": {"stall"},
    "slow-handshake": {"slow-handshake"},
    "rtt-inflation": {"rtt-inflation"},
    "queue-drops": {"queue-drops"},
    "route-change": {"route-change"},
    "no-route": {"no-route"},
    "netfilter-drop": {"netfilter-drop"},
    "listen-overflow": {"listen-overflow"},
    "receive-queue-full": {"receive-queue-full"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_fires_on_its_stream_and_nothing_else_does(name):
    assert all_fired(stream_for(name).events) == EXPECTED[name]


def test_retransmission_storm_needs_its_threshold_within_its_window():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    s.lossy(c, retransmits=4, every_ms=50)           # 4 < 5
    s.wait(2000)
    s.lossy(c, retransmits=6, every_ms=400)          # 5 never within 1000 ms
    assert all_fired(s.events) == set()


def test_storm_episode_grows_while_retransmissions_continue():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    s.lossy(c, retransmits=60, every_ms=20)
    got, eng = fired(s.events)
    ch = eng.chain(1)
    [l2] = [n for n in ch.root.children if n.kind == "retransmission-storm"]
    assert l2.fields["count"] == "60"
    assert len(l2.evidence_event_ids) == 32                # capped, first ones and the latest
    assert l2.evidence_event_ids[-1] == s.events[-1].id


def test_single_syn_retransmit_is_not_a_handshake_timeout():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.wait(1000)
    s.retransmit(c, state=SYN_SENT)
    s.established(c)
    # over a second to establish is slow (slow-handshake), but one retransmit is no timeout
    assert all_fired(s.events) == {"slow-handshake"}


def test_slow_handshake_threshold_is_the_templates():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.wait(150)
    s.established(c)
    assert all_fired(s.events) == set()                 # 150 ms < 200 ms


def test_peer_reset_needs_an_established_connection():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.reset(c, E.RESET_RECEIVED)                      # in SYN_SENT: refused, not peer reset
    s.state(c, SYN_SENT, 7)
    assert all_fired(s.events) == {"connection-refused"}


def test_sockless_reset_is_not_a_local_abort():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    s.reset(c, E.RESET_SENT, state=ESTABLISHED, sock=0)
    assert all_fired(s.events) == set()


def test_queue_drops_on_another_interface_do_not_count():
    s = StreamBuilder()
    s.routed("10.0.0.1", "10.0.0.2", 80, device="veth7")
    s.qdisc("veth8", dropped=12)
    s.drop("QDISC_DROP", attribution=E.PACKET_ATTRIBUTION_NONE, ifname="veth8")
    assert all_fired(s.events) == set()


def test_unattributed_qdisc_drop_on_the_path_interface_counts():
    s = StreamBuilder()
    s.routed("10.0.0.1", "10.0.0.2", 80, device="veth7")
    s.drop("QDISC_DROP", attribution=E.PACKET_ATTRIBUTION_NONE, ifname="veth7", count=4)
    assert all_fired(s.events) == {"queue-drops"}


def test_netfilter_drop_seen_in_another_namespace_is_path_evidence_of_the_flow():
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.drop("NETFILTER_DROP", c, netns=999)              # dropped in the server's namespace
    got, _ = fired(s.events)
    assert got == {1: ["netfilter-drop"]}


def test_routine_table_misses_are_not_no_route():
    s = StreamBuilder()
    s.fib("10.0.0.2", err=-11, table=255, dport=80)    # local table miss, then main found
    s.fib("10.0.0.2", device="veth0", dport=80)
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.established(c)
    assert all_fired(s.events) == set()


def test_miss_in_the_main_table_is_no_route():
    s = StreamBuilder()
    s.fib("10.0.0.2", err=-11, table=255, dport=80)
    s.fib("10.0.0.2", err=-11, table=254, dport=80)
    assert all_fired(s.events) == {"no-route"}


# -- loading and validation -----------------------------------------------------------------

GOOD = """
id = "{id}"
title = "Test"
classification = "test"
severity = "info"
allows = ["drop"]
text = "{{count}} resets to {{peer}}, first {{first.reason_name}}"

[pattern]
[[pattern.step]]
event = "reset"
where = {{ direction = "RESET_RECEIVED" }}
"""


def reset_received(templates) -> Engine:
    """An engine with these templates fed one connection attempt that receives a reset."""
    s = StreamBuilder()
    c = s.connect("10.0.0.1", "10.0.0.2", 80)
    s.reset(c, E.RESET_RECEIVED)
    eng = Engine(templates=templates)
    for ev in s.events:
        eng.feed(ev)
    return eng


def write(tmp_path, name, text):
    p = tmp_path / f"{name}.toml"
    p.write_text(textwrap.dedent(text))
    return p


def test_user_directory_adds_templates_and_may_override_a_packaged_one(tmp_path):
    write(tmp_path, "my-resets", GOOD.format(id="my-resets"))
    write(tmp_path, "peer-reset", GOOD.format(id="peer-reset"))
    with pytest.raises(TemplateError, match="packaged template; replacing it needs --override-template peer-reset"):
        load_templates([tmp_path])
    ts = load_templates([tmp_path], allow_override=["peer-reset"])
    assert "my-resets" in ts and ts["peer-reset"].source.startswith(str(tmp_path))
    assert ts.overridden == ("peer-reset",)
    assert ts.override_notes() == (f"template peer-reset replaced by {tmp_path}/peer-reset.toml",)
    eng = reset_received(ts)
    assert set(eng.flows()[0].templates) == {"my-resets", "peer-reset"}
    l2 = [n for n in eng.chain(1).root.children if n.kind == "my-resets"][0]
    assert l2.text == "1 resets to 10.0.0.2:80, first no reason_name recorded" and l2.severity == "info"
    replaced = [n for n in eng.chain(1).root.children if n.kind == "peer-reset"][0]
    assert replaced.text.endswith(f"(template peer-reset from {tmp_path}/peer-reset.toml, replacing the packaged one)")
    assert replaced.fields["replaces_packaged"] == f"{tmp_path}/peer-reset.toml"


BAD = [
    ("unknown field", 'where = { reson_name = "X" }', "pattern.step[0].where.reson_name: unknown field"),
    ("bad enum", 'where = { direction = "SIDEWAYS" }', "pattern.step[0].where.direction: unknown value"),
    ("bad op", 'where = { state = { around = 1 } }', "pattern.step[0].where.state.around: unknown operator"),
    ("bad type", 'where = { sock = "x" }', "pattern.step[0].where.sock: expects an integer"),
    ("bad threshold", 'count = 0', "pattern.step[0].count: must be an integer from 1 to 10000"),
    ("threshold without window", 'count = 3', "pattern.step[0].window_ms: required when count > 1"),
    ("bad window", 'count = 2\nwindow_ms = -5', "pattern.step[0].window_ms: must be between"),
    ("unknown step key", 'within = 3', "pattern.step[0].within: unknown key"),
]


@pytest.mark.parametrize("what,line,message", BAD, ids=[b[0] for b in BAD])
def test_invalid_pattern_is_one_line_naming_file_and_field(tmp_path, what, line, message):
    text = GOOD.format(id="bad").replace('where = { direction = "RESET_RECEIVED" }', line)
    p = write(tmp_path, "bad", text)
    with pytest.raises(TemplateError) as ei:
        load_templates([tmp_path], packaged=False)
    msg = ei.value.message
    assert "\n" not in str(ei.value)
    assert msg.startswith(str(p) + ": ") and message in msg, msg
    assert isinstance(ei.value, GewError) and ei.value.code != 0


@pytest.mark.parametrize("change,message", [
    (('severity = "info"', 'severity = "dire"'), "severity: 'dire' is not one of"),
    (('allows = ["drop"]', 'allows = ["nuke"]'), "allows: must be a list of"),
    (('text = "{count}', 'text = "{nope}'), "text: unknown placeholder {nope}"),
    (('{first.reason_name}', '{first.rtt}'), "text: {first.rtt} names a field"),
    (('{first.reason_name}', '{s2.id}'), "text: unknown placeholder {s2.id}"),
    (('title = "Test"\n', ''), "title: missing"),
    (('id = "bad"', 'id = "other"'), "id: 'other' must match the file name"),
    (('[pattern]', 'colour = "red"\n[pattern]'), "colour: unknown key"),
    (('event = "reset"', 'event = "teleport"'), "pattern.step[0].event: unknown event kind 'teleport'"),
])
def test_invalid_template_fields_are_named(tmp_path, change, message):
    text = GOOD.format(id="bad").replace(*change)
    write(tmp_path, "bad", text)
    with pytest.raises(TemplateError, match=None) as ei:
        load_templates([tmp_path], packaged=False)
    assert message in ei.value.message, ei.value.message


def test_not_toml_and_missing_dir_and_duplicates(tmp_path):
    (tmp_path / "a").mkdir()
    write(tmp_path / "a", "x", "id = [")
    with pytest.raises(TemplateError, match="not valid TOML"):
        load_templates([tmp_path / "a"], packaged=False)
    with pytest.raises(TemplateError, match="not a directory"):
        load_templates([tmp_path / "missing"])
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    write(tmp_path / "b", "dup", GOOD.format(id="dup"))
    write(tmp_path / "c", "dup", GOOD.format(id="dup"))
    with pytest.raises(TemplateError, match="already defined"):
        load_templates([tmp_path / "b", tmp_path / "c"])


def test_a_template_cannot_inject_code_through_values(tmp_path):
    text = GOOD.format(id="inj").replace('where = { direction = "RESET_RECEIVED" }',
                                         'where = { reason_name = "x\') or __import__(\'os\') or (\'" }')
    write(tmp_path, "inj", text)
    ts = load_templates([tmp_path], packaged=False)
    assert reset_received(ts).flows()[0].templates == []


def test_ipv6_null_entry_in_the_local_table_is_a_routine_miss_but_not_in_main():
    s = StreamBuilder()
    s.fib("fd00::2", device="lo", err=-113, table=255, dport=80)   # local table: routine
    s.fib("fd00::2", device="veth0", dport=80)
    c = s.connect("fd00::1", "fd00::2", 80)
    s.established(c)
    assert all_fired(s.events) == set()
    s.fib("fd00::2", device="lo", err=-113, table=254, dport=80)   # main table: no route
    assert all_fired(s.events) == {"no-route"}
