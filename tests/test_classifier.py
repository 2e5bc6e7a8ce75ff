"""bpf/deny.c under BPF_PROG_RUN: crafted packets in, verdicts out. Only denied tuples are
shot; everything else (other tuples, other protocols, malformed or truncated packets) is
TC_ACT_UNSPEC so the next tc filter still runs. Nothing is attached to any interface."""
from __future__ import annotations

import os
import socket
import struct
import time

import pytest

from gewtui.intervene.classifier import (AF_INET, AF_INET6, TC_ACT_SHOT, TC_ACT_UNSPEC,
                                         DenyTuple)

pytestmark = pytest.mark.root

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def v4(a: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, a)


def v6(a: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, a)


def eth(ethertype: int, payload: bytes, vlans: tuple[int, ...] = ()) -> bytes:
    """Ethernet frame; ``vlans`` are the TPIDs of stacked tags, outermost first."""
    types = list(vlans) + [ethertype]
    hdr = struct.pack("!H", types[0]) + b"".join(struct.pack("!HH", 100, t) for t in types[1:])
    return MAC_B + MAC_A + hdr + payload


def l4(proto: int, sport: int, dport: int, payload: bytes = b"x" * 8) -> bytes:
    if proto == 6:
        return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x18, 65535, 0, 0) + payload
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(src: str, dst: str, proto: int, body: bytes, frag_off: int = 0x4000,
         ihl: int = 5, version: int = 4) -> bytes:
    opts = b"\x01" * ((ihl - 5) * 4)  # NOPs
    hdr = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, 20 + len(opts) + len(body), 1,
                      frag_off, 64, proto, 0, v4(src), v4(dst))
    return hdr + opts + body


def ipv6(src: str, dst: str, nexthdr: int, body: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(body), nexthdr, 64, v6(src), v6(dst)) + body


def ext(nexthdr: int, length_units: int = 0) -> bytes:
    """A hop-by-hop/destination/routing-style extension header of (length_units+1)*8 bytes."""
    return struct.pack("!BB", nexthdr, length_units) + b"\x01\x00" * (3 + 4 * length_units)


def frag6(nexthdr: int, offset_units: int, more: bool) -> bytes:
    return struct.pack("!BBHI", nexthdr, 0, (offset_units << 3) | int(more), 0x1234)


def pkt4(src, sport, dst, dport, proto=6, **kw) -> bytes:
    return eth(0x0800, ipv4(src, dst, proto, l4(proto, sport, dport), **kw))


def pkt6(src, sport, dst, dport, proto=6, exts: bytes = b"", first_nh: int | None = None) -> bytes:
    return eth(0x86DD, ipv6(src, dst, proto if first_nh is None else first_nh,
                            exts + l4(proto, sport, dport)))


FAR = time.monotonic_ns() + 3600 * 10**9   # an expiry no test reaches
T4 = DenyTuple(AF_INET, 6, v4("10.77.0.1"), v4("10.77.0.2"), 40000, 8080)
U4 = DenyTuple(AF_INET, 17, v4("10.77.0.1"), v4("10.77.0.2"), 5353, 53)
T6 = DenyTuple(AF_INET6, 6, v6("fd77::1"), v6("fd77::2"), 41000, 443)


@pytest.fixture(scope="module")
def loaded():
    if os.geteuid() != 0:
        pytest.skip("needs root: loading a BPF program")
    from gewtui.intervene.classifier import DenyClassifier

    c = DenyClassifier()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def clf(loaded):
    loaded.clear()
    yield loaded
    loaded.clear()


def test_empty_map_passes_everything(clf):
    assert clf.prog_run(pkt4("10.77.0.1", 40000, "10.77.0.2", 8080)) == TC_ACT_UNSPEC
    assert clf.prog_run(pkt6("fd77::1", 41000, "fd77::2", 443)) == TC_ACT_UNSPEC


def test_v4_tcp_both_directions_shot_others_pass(clf):
    assert clf.add(T4, FAR)
    assert clf.prog_run(pkt4("10.77.0.1", 40000, "10.77.0.2", 8080)) == TC_ACT_SHOT
    assert clf.prog_run(pkt4("10.77.0.2", 8080, "10.77.0.1", 40000)) == TC_ACT_SHOT
    # Each field differing once must pass.
    for p in (pkt4("10.77.0.1", 40001, "10.77.0.2", 8080),
              pkt4("10.77.0.1", 40000, "10.77.0.2", 8081),
              pkt4("10.77.0.3", 40000, "10.77.0.2", 8080),
              pkt4("10.77.0.1", 40000, "10.77.0.4", 8080),
              pkt4("10.77.0.1", 40000, "10.77.0.2", 8080, proto=17),
              # same addresses, ports swapped but not the addresses: a different connection
              pkt4("10.77.0.1", 8080, "10.77.0.2", 40000)):
        assert clf.prog_run(p) == TC_ACT_UNSPEC


def test_v4_udp(clf):
    clf.add(U4, FAR)
    assert clf.prog_run(pkt4("10.77.0.1", 5353, "10.77.0.2", 53, proto=17)) == TC_ACT_SHOT
    assert clf.prog_run(pkt4("10.77.0.2", 53, "10.77.0.1", 5353, proto=17)) == TC_ACT_SHOT
    assert clf.prog_run(pkt4("10.77.0.1", 5353, "10.77.0.2", 53, proto=6)) == TC_ACT_UNSPEC


def test_v4_options_and_fragments(clf):
    clf.add(T4, FAR)
    # IP options move the L4 header; the key must still be found.
    assert clf.prog_run(pkt4("10.77.0.1", 40000, "10.77.0.2", 8080, ihl=7)) == TC_ACT_SHOT
    # First fragment (MF set, offset 0) carries the ports.
    assert clf.prog_run(pkt4("10.77.0.1", 40000, "10.77.0.2", 8080, frag_off=0x2000)) == TC_ACT_SHOT
    # A later fragment has no L4 header: never guessed, passes.
    assert clf.prog_run(pkt4("10.77.0.1", 40000, "10.77.0.2", 8080, frag_off=0x0010)) == TC_ACT_UNSPEC


def test_v6_tcp_with_extension_headers(clf):
    clf.add(T6, FAR)
    assert clf.prog_run(pkt6("fd77::1", 41000, "fd77::2", 443)) == TC_ACT_SHOT
    assert clf.prog_run(pkt6("fd77::2", 443, "fd77::1", 41000)) == TC_ACT_SHOT
    assert clf.prog_run(pkt6("fd77::1", 41000, "fd77::3", 443)) == TC_ACT_UNSPEC
    assert clf.prog_run(pkt6("fd77::1", 41001, "fd77::2", 443)) == TC_ACT_UNSPEC
    # hop-by-hop (16 bytes) -> destination options (8) -> TCP
    chain = ext(60, 1) + ext(6, 0)
    assert clf.prog_run(pkt6("fd77::1", 41000, "fd77::2", 443, exts=chain, first_nh=0)) == TC_ACT_SHOT
    # first fragment: ports present
    assert clf.prog_run(pkt6("fd77::1", 41000, "fd77::2", 443, exts=frag6(6, 0, True),
                             first_nh=44)) == TC_ACT_SHOT
    # later fragment: no ports, passes
    assert clf.prog_run(pkt6("fd77::1", 41000, "fd77::2", 443, exts=frag6(6, 10, False),
                             first_nh=44)) == TC_ACT_UNSPEC
    # ESP hides the transport header: passes
    assert clf.prog_run(pkt6("fd77::1", 41000, "fd77::2", 443, first_nh=50)) == TC_ACT_UNSPEC
    # a chain longer than the walker's bound is treated as no match, not an error
    long_chain = b"".join(ext(60, 0) for _ in range(7)) + ext(6, 0)
    assert clf.prog_run(pkt6("fd77::1", 41000, "fd77::2", 443, exts=long_chain,
                             first_nh=60)) == TC_ACT_UNSPEC


def test_v4_key_does_not_match_v6_packet(clf):
    # IPv4-mapped address bytes in an IPv6 packet are a different family: no match.
    clf.add(T4, FAR)
    assert clf.prog_run(pkt6("::ffff:10.77.0.1", 40000, "::ffff:10.77.0.2", 8080)) == TC_ACT_UNSPEC


def test_vlan_tagged(clf):
    clf.add(T4, FAR)
    inner = ipv4("10.77.0.1", "10.77.0.2", 6, l4(6, 40000, 8080))
    assert clf.prog_run(eth(0x0800, inner, vlans=(0x8100,))) == TC_ACT_SHOT
    assert clf.prog_run(eth(0x0800, inner, vlans=(0x88A8, 0x8100))) == TC_ACT_SHOT


def test_malformed_and_truncated_pass(clf):
    clf.add(T4, FAR)
    clf.add(T6, FAR)
    good4 = pkt4("10.77.0.1", 40000, "10.77.0.2", 8080)
    good6 = pkt6("fd77::1", 41000, "fd77::2", 443)
    assert clf.prog_run(good4) == TC_ACT_SHOT
    # Cut inside the ports: never an error, never shot.
    for cut in (34, 35, 36, 37):
        assert clf.prog_run(good4[:cut]) == TC_ACT_UNSPEC, cut
    for cut in (54, 55, 56, 57):
        assert clf.prog_run(good6[:cut]) == TC_ACT_UNSPEC, cut
    # BPF_PROG_RUN itself refuses an untagged frame whose IP header is cut (EINVAL), but not
    # a VLAN-tagged one, so a tag lets the classifier's own bounds checks be exercised on
    # every cut inside the IP header.
    tagged4 = eth(0x0800, good4[14:], vlans=(0x8100,))
    tagged6 = eth(0x86DD, good6[14:], vlans=(0x8100,))
    assert clf.prog_run(tagged4) == TC_ACT_SHOT and clf.prog_run(tagged6) == TC_ACT_SHOT
    ports_end4 = 14 + 4 + 20 + 4      # Ethernet, tag, IPv4, sport+dport
    ports_end6 = 14 + 4 + 40 + 4
    for cut in range(14, ports_end4):
        assert clf.prog_run(tagged4[:cut]) == TC_ACT_UNSPEC, cut
    for cut in range(14, ports_end6):
        assert clf.prog_run(tagged6[:cut]) == TC_ACT_UNSPEC, cut
    assert clf.prog_run(tagged4[:ports_end4]) == TC_ACT_SHOT
    assert clf.prog_run(tagged6[:ports_end6]) == TC_ACT_SHOT
    # ihl below 5, wrong version, unknown ethertype, ARP, garbage.
    assert clf.prog_run(pkt4("10.77.0.1", 40000, "10.77.0.2", 8080, ihl=4)) == TC_ACT_UNSPEC
    assert clf.prog_run(pkt4("10.77.0.1", 40000, "10.77.0.2", 8080, version=6)) == TC_ACT_UNSPEC
    assert clf.prog_run(good4[:12] + b"\x88\xb5" + good4[14:]) == TC_ACT_UNSPEC
    assert clf.prog_run(good4[:12] + b"\x08\x06" + good4[14:]) == TC_ACT_UNSPEC
    assert clf.prog_run(bytes(range(256)) * 2) == TC_ACT_UNSPEC
    # An IPv6 extension header whose length points past the packet.
    bad = pkt6("fd77::1", 41000, "fd77::2", 443, exts=struct.pack("!BB", 6, 255) + b"\0" * 6,
               first_nh=0)
    assert clf.prog_run(bad) == TC_ACT_UNSPEC


def test_counters_count_each_shot(clf):
    clf.add(T4, FAR)
    clf.add(U4, FAR)
    for _ in range(5):
        clf.prog_run(pkt4("10.77.0.1", 40000, "10.77.0.2", 8080))
    for _ in range(3):
        clf.prog_run(pkt4("10.77.0.2", 8080, "10.77.0.1", 40000))
    for _ in range(4):  # passes: must not count anywhere
        clf.prog_run(pkt4("10.77.0.1", 40001, "10.77.0.2", 8080))
    c = clf.counters(T4)
    assert c.packets == 8
    assert c.bytes == 8 * len(pkt4("10.77.0.1", 40000, "10.77.0.2", 8080))
    assert c.last_ns > 0
    assert clf.counters(U4).packets == 0
    assert clf.counters(T4.reversed()) == c   # either orientation finds the same entry


def test_add_is_idempotent_across_orientations(clf):
    assert clf.add(T4, FAR)
    clf.prog_run(pkt4("10.77.0.1", 40000, "10.77.0.2", 8080))
    assert not clf.add(T4, FAR)
    assert not clf.add(T4.reversed(), FAR)      # its reverse is the same connection
    assert len(clf.entries()) == 1
    assert clf.counters(T4).packets == 1  # re-adding did not reset the counter


def test_remove_restores_pass_and_returns_final_counters(clf):
    clf.add(T6, FAR)
    clf.prog_run(pkt6("fd77::1", 41000, "fd77::2", 443))
    final = clf.remove(T6.reversed())
    assert final is not None and final.packets == 1
    assert clf.prog_run(pkt6("fd77::1", 41000, "fd77::2", 443)) == TC_ACT_UNSPEC
    assert clf.remove(T6) is None
    assert clf.entries() == {}


def test_entries_roundtrip_pb(clf):
    clf.add(T4.to_pb(), FAR)
    clf.add(T6, FAR)
    assert set(clf.entries()) == {T4, T6}
    assert DenyTuple.from_pb(T4.to_pb()) == T4


@pytest.mark.parametrize("bad", [
    DenyTuple(AF_INET, 6, v4("10.0.0.1"), v4("10.0.0.2"), 40000, 0),        # listener
    DenyTuple(AF_INET, 1, v4("10.0.0.1"), v4("10.0.0.2"), 1, 2),            # ICMP
    DenyTuple(AF_INET6, 6, v4("10.0.0.1"), v4("10.0.0.2"), 1, 2),           # length mismatch
    DenyTuple(99, 6, b"", b"", 1, 2),
])
def test_incomplete_tuples_refused(clf, bad):
    with pytest.raises(ValueError):
        clf.add(bad, FAR)
    assert clf.entries() == {}


def test_expired_entry_stops_dropping_in_the_kernel(clf):
    clf.add(T4, time.monotonic_ns() + 300_000_000)
    p = pkt4("10.77.0.1", 40000, "10.77.0.2", 8080)
    assert clf.prog_run(p) == TC_ACT_SHOT
    time.sleep(0.35)
    assert clf.prog_run(p) == TC_ACT_UNSPEC
    assert clf.prog_run(p) == TC_ACT_UNSPEC
    c = clf.counters(T4)
    assert c.packets == 1                 # packets after the deadline are not counted
    assert 0 < c.last_ns < c.expires_ns <= time.monotonic_ns()


# -- flow keys: one side's ephemeral port left out ------------------------------------------
K4 = DenyTuple(AF_INET, 6, v4("10.77.0.1"), v4("10.77.0.2"), 0, 8080)      # client flow
K6 = DenyTuple(AF_INET6, 6, v6("fd77::1"), v6("fd77::2"), 0, 443)


def test_client_flow_key_drops_every_reconnect_and_nothing_else(clf):
    clf.add(K4, FAR)
    for sport in (32768, 40001, 55555, 60999):        # any ephemeral local port
        assert clf.prog_run(pkt4("10.77.0.1", sport, "10.77.0.2", 8080)) == TC_ACT_SHOT, sport
        assert clf.prog_run(pkt4("10.77.0.2", 8080, "10.77.0.1", sport)) == TC_ACT_SHOT, sport
    for p in (pkt4("10.77.0.1", 1000, "10.77.0.2", 8080),     # a fixed, non-ephemeral port
              pkt4("10.77.0.1", 61000, "10.77.0.2", 8080),    # outside the range
              pkt4("10.77.0.1", 40001, "10.77.0.2", 8081),    # another service
              pkt4("10.77.0.3", 40001, "10.77.0.2", 8080),    # another local address
              pkt4("10.77.0.1", 40001, "10.77.0.2", 8080, proto=17),
              # the peer connecting to a service of ours on 8080 is not this flow
              pkt4("10.77.0.2", 40001, "10.77.0.1", 8080)):
        assert clf.prog_run(p) == TC_ACT_UNSPEC
    assert clf.counters(K4).packets == 8


def test_a_flow_key_covers_its_own_namespaces_range(clf):
    # a namespace with a widened ip_local_port_range (busy boxes widen it): its client flow's
    # reconnects from ports Linux's default range leaves out are dropped too, while a key of
    # a namespace with the default range still leaves them alone, in the same classifier
    wide = DenyTuple(AF_INET, 6, v4("10.77.0.1"), v4("10.77.0.2"), 0, 8080, ephemeral=(1024, 65000))
    narrow = DenyTuple(AF_INET, 6, v4("10.77.0.5"), v4("10.77.0.2"), 0, 8080)
    clf.add(wide, FAR)
    clf.add(narrow, FAR)
    for sport in (1024, 2000, 40001, 61000, 65000):
        assert clf.prog_run(pkt4("10.77.0.1", sport, "10.77.0.2", 8080)) == TC_ACT_SHOT, sport
        assert clf.prog_run(pkt4("10.77.0.2", 8080, "10.77.0.1", sport)) == TC_ACT_SHOT, sport
    for sport in (1023, 65001):
        assert clf.prog_run(pkt4("10.77.0.1", sport, "10.77.0.2", 8080)) == TC_ACT_UNSPEC, sport
    assert clf.prog_run(pkt4("10.77.0.5", 40001, "10.77.0.2", 8080)) == TC_ACT_SHOT
    for sport in (2000, 61000):
        assert clf.prog_run(pkt4("10.77.0.5", sport, "10.77.0.2", 8080)) == TC_ACT_UNSPEC, sport
    assert clf.counters(wide).packets == 10 and clf.counters(narrow).packets == 1


def test_server_flow_key(clf):
    key = DenyTuple(AF_INET, 6, v4("10.77.0.2"), v4("10.77.0.1"), 8080, 0)   # server's view
    clf.add(key, FAR)
    assert clf.prog_run(pkt4("10.77.0.1", 40001, "10.77.0.2", 8080)) == TC_ACT_SHOT
    assert clf.prog_run(pkt4("10.77.0.2", 8080, "10.77.0.1", 50000)) == TC_ACT_SHOT
    assert clf.prog_run(pkt4("10.77.0.1", 40001, "10.77.0.2", 8081)) == TC_ACT_UNSPEC
    assert clf.prog_run(pkt4("10.77.0.3", 40001, "10.77.0.2", 8080)) == TC_ACT_UNSPEC


def test_v6_flow_key_and_exact_entry_together(clf):
    clf.add(K6, FAR)
    clf.add(T4, FAR)
    assert clf.prog_run(pkt6("fd77::1", 45000, "fd77::2", 443)) == TC_ACT_SHOT
    assert clf.prog_run(pkt6("fd77::2", 443, "fd77::1", 45001)) == TC_ACT_SHOT
    assert clf.prog_run(pkt6("fd77::1", 45000, "fd77::2", 444)) == TC_ACT_UNSPEC
    assert clf.prog_run(pkt4("10.77.0.1", 40000, "10.77.0.2", 8080)) == TC_ACT_SHOT
    assert clf.counters(T4).packets == 1 and clf.counters(K6).packets == 2


@pytest.mark.parametrize("bad", [
    DenyTuple(AF_INET, 6, v4("10.0.0.1"), v4("10.0.0.2"), 0, 0),           # both ports open
    DenyTuple(AF_INET, 6, v4("10.0.0.1"), v4("10.0.0.2"), 0, 40000),       # ephemeral fixed side
    DenyTuple(AF_INET, 6, v4("0.0.0.0"), v4("10.0.0.2"), 0, 80),           # wildcard address
    # a fixed side in Linux's default range, however wide the namespace's
    DenyTuple(AF_INET, 6, v4("10.0.0.1"), v4("10.0.0.2"), 0, 40000, ephemeral=(1024, 65000)),
    DenyTuple(AF_INET, 6, v4("10.0.0.1"), v4("10.0.0.2"), 0, 80, ephemeral=(0, 65000)),  # not a range
])
def test_flow_keys_that_would_drop_too_much_are_refused(clf, bad):
    with pytest.raises(ValueError):
        clf.add(bad, FAR)
