"""The decoder's bytes-level fast path (gewtui.kernel.wire) against the unit decoders it
stands in for, and the memory-mapped ring-buffer reader against a ring laid out as the
kernel lays it out (no kernel: a memfd plays the map)."""
import random

import pytest
from google.protobuf.internal.encoder import _VarintBytes

from gewtui.kernel import wire
from gewtui.kernel.decode import Decoder, Vocab
from gewtui.kernel.probes import UNITS, tcp_state
from gewtui.kernel.probes.base import HDR, tuple_pb
from gewtui.kernel.transport import MappedRing
from gewtui.pb import events_pb2 as E
from tests.support.fake_ring import PAGE, FakeKernelRing
from tests.support.kernel_records import SOCKS, _record, _tuple, _vocab


def test_varints_match_protobuf():
    values = [0, 1, 127, 128, 300, 16383, 16384, 2**21 - 1, 2**21, 2**28 - 1, 2**28, 2**35, 2**56 - 1,
              2**56, 2**63, 2**64 - 1, 0xFFFF888012345678, 123_456_789_012_345]
    rnd = random.Random(1)
    values += [rnd.getrandbits(rnd.randrange(1, 65)) for _ in range(3000)]
    for v in values:
        assert wire.uvarint(v) == _VarintBytes(v), hex(v)
    for v in (-1, -101, -(2**31)):
        assert wire.ivarint(v) == _VarintBytes(v & (2**64 - 1))


def test_tuple_payloads_match_the_unit_conversion():
    enc = wire.Encoders(Decoder(UNITS, Vocab(), lambda ev: None))
    rnd = random.Random(2)
    for _ in range(500):
        raw = _tuple(rnd)
        assert enc.tuple_payload(raw) == tuple_pb(raw).SerializeToString()


@pytest.mark.parametrize("seed", range(4))
def test_fast_path_equals_the_unit_decoders(seed):
    """Same records, same order, through both paths: the same events (fields and bytes)
    and the same learnt socket owners, including records the fast path hands back."""
    vocab = _vocab()
    fast_out, ref_out = [], []
    fast = Decoder(UNITS, vocab, fast_out.append, clock=lambda: 5)
    ref = Decoder(UNITS, vocab, ref_out.append, clock=lambda: 5, fast=False)
    assert fast.fast_kinds and not ref.fast_kinds
    rnd = random.Random(seed)
    for _ in range(1500):
        rec = _record(rnd, vocab)
        assert fast.record(rec) == ref.record(rec)
        assert fast.owners == ref.owners
    assert len(fast_out) == len(ref_out) > 1500
    kinds = set()
    for a, b in zip(fast_out, ref_out):
        assert a == b
        assert a.SerializeToString() == b.SerializeToString()
        kinds.add(a.WhichOneof("body"))
    assert kinds >= {"tcp_state", "cong_state", "destroy", "retransmit", "reset", "skb_drop", "rcvq_full",
                     "tcp_probe"}
    assert (fast.decode_errors, fast.events, fast.next_id) == (ref.decode_errors, ref.events, ref.next_id)


def test_fast_path_refuses_bad_records_like_the_unit_decoders():
    fast = Decoder(UNITS, _vocab(), lambda ev: None)
    good = HDR.pack(1, tcp_state.K_STATE, 0, 1, 0, 1, 1, 0, 0, 0, b"x") + tcp_state.STATE.pack(
        _tuple(random.Random(3)), SOCKS[0], 0, 7, 2)
    assert fast.record(good[:-1]) == 0 and fast.record(good + b"\0") == 0 and fast.record(good[:20]) == 0
    assert fast.decode_errors == 3 and fast.record(good) == 1


def test_a_failing_sink_surfaces_and_is_no_decode_error():
    def sink(ev):
        raise RuntimeError("sink failed")

    dec = Decoder(UNITS, _vocab(), sink)
    rec = HDR.pack(1, tcp_state.K_STATE, 0, 1, 0, 1, 1, 0, 0, 0, b"x") + tcp_state.STATE.pack(
        _tuple(random.Random(4)), SOCKS[0], 0, 7, 2)
    with pytest.raises(RuntimeError, match="sink failed"):
        dec.record(rec)
    assert dec.decode_errors == 0 and dec.events == 1


def test_envelopes_of_unit_decoders_keep_their_attribution():
    out = []
    dec = Decoder(UNITS, _vocab(), out.append)
    h = HDR.pack(10, tcp_state.K_STATE, 0, 1, 3, 42, 42, 1000, 4026531840, 77, b"curl")
    ev = dec.envelope(dec_header(h), SOCKS[0], 5)
    assert (ev.ktime_ns, ev.cpu, ev.attr.comm, ev.attr.source) == (10, 3, "curl", E.ATTRIBUTION_PROCESS_CONTEXT)
    soft = dec.envelope(dec_header(HDR.pack(11, 1, 1, 1, 0, 0, 0, 0, 0, 0, b"")), SOCKS[0], 5)
    assert (soft.attr.tgid, soft.attr.comm, soft.attr.source) == (42, "curl", E.ATTRIBUTION_SOCKET_OWNER)
    none = dec.envelope(dec_header(HDR.pack(12, 1, 1, 1, 0, 0, 0, 0, 0, 0, b"")), SOCKS[1], 5)
    assert (none.attr.netns, none.attr.source, none.attr.tgid) == (5, E.ATTRIBUTION_NONE, 0)


def dec_header(raw):
    from gewtui.kernel.probes.base import parse_header
    return parse_header(raw)


# -- the mapped ring -------------------------------------------------------------------------

@pytest.fixture
def ring():
    k = FakeKernelRing()
    r = MappedRing(k.fd, k.size)
    yield k, r
    r.close()
    k.close()


def test_mapped_ring_delivers_records_in_order_and_frees_their_space(ring):
    k, r = ring
    got = []
    for p in (b"a", b"bcdefghi", b"\0" * 100):
        k.reserve(p)
    k.reserve(b"discarded", discard=True)
    assert r.drain(got.append) == 3
    assert got == [b"a", b"bcdefghi", b"\0" * 100]
    assert k.cons() == k.prod        # discarded space is released too
    assert r.drain(got.append) == 0


def test_mapped_ring_drains_at_most_the_limit(ring):
    k, r = ring
    got = []
    for i in range(5):
        k.reserve(bytes([i]))
    assert r.drain(got.append, limit=2) == 2 and got == [b"\0", b"\1"]
    assert k.cons() < k.prod
    assert r.drain(got.append, limit=10) == 3 and k.cons() == k.prod


def test_mapped_ring_stops_at_a_busy_record_and_resumes_after_commit(ring):
    k, r = ring
    got = []
    k.reserve(b"first")
    pos = k.reserve(b"in-flight", busy=True)
    k.reserve(b"after")
    assert r.drain(got.append) == 1 and got == [b"first"]
    k.commit(pos)
    assert r.drain(got.append) == 2 and got == [b"first", b"in-flight", b"after"]


def test_mapped_ring_reads_records_that_wrap_around(ring):
    k, r = ring
    got = []
    payloads = [bytes([i % 251]) * (300 + i) for i in range(60)]   # 2.5 laps of a 2-page ring
    for p in payloads:
        k.reserve(p)
        assert r.drain(got.append) == 1
    assert got == payloads and k.cons() == k.prod > 2 * k.size


def test_mapped_ring_raises_the_handlers_error_once_and_keeps_the_rest(ring):
    k, r = ring
    seen = []

    def handle(b):
        if b == b"bad":
            raise RuntimeError("sink failed")
        seen.append(b)

    for p in (b"ok", b"bad", b"later"):
        k.reserve(p)
    with pytest.raises(RuntimeError, match="sink failed"):
        r.drain(handle)
    assert seen == [b"ok"]
    assert r.drain(handle) == 1 and seen == [b"ok", b"later"] and k.cons() == k.prod


def test_mapped_ring_refuses_a_size_that_is_not_a_ring(ring):
    k, _ = ring
    with pytest.raises(ValueError):
        MappedRing(k.fd, 3 * PAGE)
