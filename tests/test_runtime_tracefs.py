"""Tracepoint format parsing against formats captured from the project's kernel
(tests/data/tracefs), and the vocabularies read from them. No root, no kernel."""
from pathlib import Path

import pytest

from gewtui.runtime.capabilities import FULLY_SUPPORTED, NOT_SUPPORTED, TracepointNeed, check_tracepoint
from gewtui.runtime.tracefs import FormatError, Tracefs, parse_format, parse_symbolic

DATA = Path(__file__).parent / "data" / "tracefs"


@pytest.fixture(scope="module")
def tf():
    return Tracefs(str(DATA))


def test_fields_of_a_tcp_format(tf):
    fmt = tf.read("sock", "inet_sock_set_state")
    assert fmt.id > 0
    assert fmt.fields["skaddr"].size == 8
    assert fmt.fields["saddr_v6"].type == "__u8[16]"
    assert fmt.fields["saddr_v6"].is_array
    assert fmt.fields["oldstate"].signed and not fmt.fields["sport"].signed
    assert fmt.fields["daddr"].offset == 36


def test_data_loc_and_enum_field_types(tf):
    assert tf.read("neigh", "neigh_update").fields["dev"].type == "__data_loc char[]"
    reason = tf.read("tcp", "tcp_send_reset").fields["reason"]
    assert reason.type == "enum sk_rst_reason" and reason.size == 4
    assert tf.read("skb", "kfree_skb").fields["reason"].type == "enum skb_drop_reason"


def test_drop_reasons_come_from_print_symbolic(tf):
    reasons = tf.symbols("skb", "kfree_skb", "reason")
    assert len(reasons) > 100
    names = set(reasons.values())
    assert {"NETFILTER_DROP", "QDISC_DROP", "TCP_LISTEN_OVERFLOW", "NO_SOCKET"} <= names
    # values are the kernel's, whatever they are: each name appears once
    assert len(names) == len(reasons)


def test_reset_reasons_inside_a_conditional_print_fmt(tf):
    # tcp_send_reset's fmt nests a __print_symbolic inside "state ? ... : UNKNOWN"
    fmt = tf.read("tcp", "tcp_send_reset")
    assert fmt.symbols["reason"][0] == "NOT_SPECIFIED"
    assert "TCP_ABORT_ON_CLOSE" in fmt.symbols["reason"].values()
    assert fmt.symbols["state"][1] == "TCP_ESTABLISHED"


def test_symbolic_identifiers_resolved_through_inet_sock_set_state(tf):
    # tcp_retransmit_skb names states by C identifier only; the numbers come from
    # inet_sock_set_state's numeric table
    fmt = tf.read("tcp", "tcp_retransmit_skb")
    states = tf.symbols("sock", "inet_sock_set_state", "newstate")
    assert fmt.symbols["state"] == states
    assert not fmt.unresolved


def test_unresolvable_identifiers_are_reported_not_guessed():
    syms, unresolved = parse_symbolic('"%s", __print_symbolic(REC->x, { FOO, "FOO" }, { 3, "BAR" })')
    assert syms == {"x": {3: "BAR"}}
    assert unresolved == {"x": [("FOO", "FOO")]}


def test_missing_tracepoint_and_unparsable_format(tf, tmp_path):
    with pytest.raises(FormatError, match="does not exist"):
        tf.read("tcp", "no_such_tracepoint")
    with pytest.raises(FormatError, match="no fields"):
        parse_format("name: x\nID: 1\nformat:\nprint fmt: \"\"\n")
    assert Tracefs(str(tmp_path)).symbols("skb", "kfree_skb", "reason") == {}


def _fake_format(tmp_path, group, name, fields):
    d = tmp_path / "events" / group / name
    d.mkdir(parents=True)
    lines = [f"name: {name}", "ID: 7", "format:",
             "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;"]
    lines += [f"\tfield:{decl};\toffset:{off};\tsize:{size};\tsigned:0;" for decl, off, size in fields]
    lines.append('print fmt: "x"')
    (d / "format").write_text("\n".join(lines) + "\n")
    return Tracefs(str(tmp_path))


def test_tracepoint_need_checks_fields_and_sizes(tmp_path):
    tf = _fake_format(tmp_path, "skb", "kfree_skb", [("void * skbaddr", 8, 8), ("u16 reason", 16, 2)])
    ok = TracepointNeed("skb", "kfree_skb", (("skbaddr", 8),))
    assert check_tracepoint(tf, ok)[0] == FULLY_SUPPORTED
    state, why = check_tracepoint(tf, TracepointNeed("skb", "kfree_skb", (("reason", 4),)))
    assert state == NOT_SUPPORTED and "2 bytes" in why
    state, why = check_tracepoint(tf, TracepointNeed("skb", "kfree_skb", (("rx_sk", 8),)))
    assert state == NOT_SUPPORTED and "rx_sk missing" in why
    state, why = check_tracepoint(tf, TracepointNeed("tcp", "tcp_probe", ()))
    assert state == NOT_SUPPORTED and "does not exist" in why


def test_captured_formats_cover_every_probe_need(tf):
    """The captured copies are what the probes were built against: every tracepoint a unit
    needs is there, with the fields and sizes its record layout reads."""
    from gewtui.kernel.probes import UNITS

    for u in UNITS:
        for need in u.tracepoints:
            fmt = tf.read(need.group, need.name)   # raises if a capture is missing
            for name, size in need.fields:
                assert fmt.fields[name].size == size, (need.capability, name)
            if not need.raw:
                assert check_tracepoint(tf, need)[0] == FULLY_SUPPORTED, need.capability
