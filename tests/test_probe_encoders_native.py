"""The capture's reset and drop encoders in C (gewtui/kernel/probes/tcp_events_native.c,
drops_native.c) against their Python references (the ``reset`` and ``drop`` encoders in
tcp_events.py and drops.py): two decoders, one with each, fed the same records in the same
order, must write the same bytes, count the same decode losses and end in the same state
(socket ids, owners)."""
import random

import pytest

from gewtui.kernel import wire
from gewtui.kernel.decode import Decoder
from gewtui.kernel.probes import UNITS, drops, tcp_events
from gewtui.kernel.probes.base import HDR
from tests.support.kernel_records import SOCKS, _hdr, _record, _tuple, _vocab


def _decoder(native: bool):
    real = tcp_events._native_reset, drops._native_drop
    if not native:
        tcp_events._native_reset = lambda *a, **k: None
        drops._native_drop = lambda *a, **k: None
    try:
        dec = Decoder(UNITS, _vocab(), lambda ev: None)
    finally:
        tcp_events._native_reset, drops._native_drop = real
    out: list[bytes] = []
    dec.raw_sink = out.append
    # drop sites named as the live session names them (a kallsyms lookup), one as long as
    # a kernel symbol may be (KSYM_NAME_LEN, 512)
    dec.hooks["drop_site"] = lambda loc: ("s" * 512 + "+0x1" if loc == 2**64 - 1 else
                                          f"fn_{loc & 0xfff:x}+0x10" if loc & 1 else "")
    return dec, out


def _state(dec):
    return (dec.next_id, dec.events, dec.decode_errors, dec._next_sock, dict(dec._live), dict(dec._ids_new),
            dict(dec._ids_old), {k: (o.pid, o.tgid, o.comm) for k, o in dec.owners.items()})


def test_the_extensions_are_built_and_used():
    dec, _ = _decoder(True)
    for kind, module in ((tcp_events.K_RESET_SENT, "tcp_events_native"), (tcp_events.K_RESET_RECV, "tcp_events_native"),
                         (drops.K_DROP, "drops_native")):
        assert type(dec._kinds[kind][2]).__module__ == f"gewtui.kernel.probes.{module}", (
            f"gewtui.kernel.probes.{module} is not built: `make venv` builds it (gcc and python3-dev from "
            ".ci/host-setup)")


def _drop(rnd, vocab):
    reason = rnd.choice(list(vocab.drop_reasons)[:8] + [vocab.drop_reason_value("TCP_LISTEN_OVERFLOW"), 0, 70000])
    body = drops.DROP.pack(_tuple(rnd), rnd.choice(SOCKS + [0]), rnd.choice([0, 0xFFFFFFFF81000001, 2**64 - 1]),
                           reason, rnd.choice([0, 4026532001]), rnd.choice([0, 3, 2**32 - 1]),
                           rnd.choice([0, 0x0800, 0x86DD, 0xFFFF]), rnd.choice([0, 1, 2, 3, 9, 255]),
                           rnd.choice([b"veth0", b"", b"sixteen-bytes-xx", b"\xff\xfe\x00x"]))
    return _hdr(rnd, drops.K_DROP, drops.PROBE_ID) + body


def _reset(rnd):
    kind = rnd.choice([tcp_events.K_RESET_SENT, tcp_events.K_RESET_RECV])
    body = tcp_events.RESET.pack(_tuple(rnd), rnd.choice(SOCKS + [0]), rnd.choice([0, 77, 2**64 - 1]),
                                 rnd.choice([0, 4026532001]), rnd.choice([1, 7, 12, -1, 2**31 - 1]),
                                 rnd.choice([0, 1, 2, 60000, 2**32 - 1]),
                                 rnd.choice([1, 2, 0, 200]) if rnd.random() < 0.2 else
                                 (1 if kind == tcp_events.K_RESET_SENT else 2))
    return _hdr(rnd, kind, tcp_events.PROBE_ID) + body


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_c_encoders_write_what_the_python_ones_write(seed):
    """Resets and drops of every shape (each direction and attribution, unknown reasons and
    states, interfaces and drop sites, zero and largest values) among the other kinds, on
    sockets that recur, so ids and owners carry over between records."""
    (nat, nat_out), (ref, ref_out) = _decoder(True), _decoder(False)
    rnd = random.Random(seed)
    vocab = _vocab()
    made = 0
    for i in range(4000):
        r = rnd.random()
        rec = _drop(rnd, vocab) if r < 0.35 else _reset(rnd) if r < 0.7 else _record(rnd, vocab)
        made += r < 0.7
        for dec in (nat, ref):
            dec.record(rec)
        assert nat_out == ref_out, f"record {i}"
        if i % 500 == 0:
            assert _state(nat) == _state(ref), f"record {i}"
    assert _state(nat) == _state(ref)
    assert made > 2500 and len(nat_out) > 3000


def test_a_listen_overflow_is_left_to_the_unit_decoder_which_makes_both_its_events():
    rnd = random.Random(5)
    vocab = _vocab()
    rec = bytearray(_drop(rnd, vocab))
    at = HDR.size + wire.offsets(drops.DROP)[3]
    rec[at:at + 4] = vocab.drop_reason_value("TCP_LISTEN_OVERFLOW").to_bytes(4, "little")
    dec, out = _decoder(True)
    objs: list = []
    dec.sink = objs.append
    assert dec._kinds[drops.K_DROP][2](HDR.unpack_from(bytes(rec), 0), bytes(rec)) is None
    assert dec.record(bytes(rec)) == 2 and out == []
    assert sorted(ev.WhichOneof("body") for ev in objs) == ["rcvq_full", "skb_drop"]


@pytest.mark.parametrize("kind", [tcp_events.K_RESET_SENT, drops.K_DROP])
def test_a_record_of_the_wrong_size_is_refused_by_the_encoder_itself(kind):
    dec, _ = _decoder(True)
    enc = dec._kinds[kind][2]
    rec = _reset(random.Random(1)) if kind != drops.K_DROP else _drop(random.Random(1), _vocab())
    with pytest.raises(ValueError, match="layout says"):
        enc(HDR.unpack_from(rec, 0), rec[:-1])
    with pytest.raises(TypeError):
        enc(HDR.unpack_from(rec, 0), bytearray(rec))


def test_the_encoders_and_their_decoder_are_collected_together():
    """Each encoder holds its decoder's bound methods, and the decoder's table holds the
    encoder: the collector must see through the C objects to free the cycle."""
    import gc
    import weakref

    dec, _ = _decoder(True)
    ref = weakref.ref(dec)
    del dec
    gc.collect()
    assert ref() is None


def test_an_event_longer_than_the_c_buffer_is_made_by_the_unit_decoder_alike():
    """A name no kernel makes (a drop site of 5,000 bytes, a reset reason name of 3,000)
    outgrows the C encoders' bounded buffers: they hand the record back and the unit
    decoder makes the event the Python encoder writes."""
    from gewtui.pb import events_pb2 as E

    vocab = _vocab()
    rnd = random.Random(7)
    drop = bytearray(_drop(rnd, vocab))
    at = HDR.size + wire.offsets(drops.DROP)[2]
    drop[at:at + 8] = (0xFFFFFFFF81000003).to_bytes(8, "little")
    at = HDR.size + wire.offsets(drops.DROP)[3]
    drop[at:at + 4] = list(vocab.drop_reasons)[0].to_bytes(4, "little")
    reset = bytearray(_reset(rnd))
    offs = wire.offsets(tcp_events.RESET)
    reset[HDR.size + offs[5]:HDR.size + offs[5] + 4] = (4242).to_bytes(4, "little")
    reset[HDR.size + offs[6]] = 1
    reset[8:12] = tcp_events.K_RESET_SENT.to_bytes(2, "little") + reset[10:12]
    events = []
    for native in (True, False):
        dec, out = _decoder(native)
        dec.vocab.reset_reasons[4242] = "r" * 3000
        dec.hooks["drop_site"] = lambda loc: "s" * 5000 if loc == 0xFFFFFFFF81000003 else ""
        objs: list = []
        dec.sink = objs.append
        for rec in (bytes(drop), bytes(reset)):
            assert dec.record(rec) == 1
        got = [E.Event.FromString(r) for r in out] + objs
        assert dec.decode_errors == 0 and len(got) == 2
        if native:
            assert out == [] and len(objs) == 2       # both handed back
        events.append(sorted((ev.SerializeToString(deterministic=True) for ev in got)))
    assert events[0] == events[1]
    assert any(b"s" * 5000 in e for e in events[0]) and any(b"r" * 3000 in e for e in events[0])
