"""The capture's K_LIFE encoder in C (gewtui/kernel/probes/tcp_state_native.c) against its
Python reference (tcp_state._life_encoder): two decoders, one with each, fed the same
records in the same order, must write the same bytes, count the same decode losses and end
in the same state (socket ids, owners, the lives they remember)."""
import random

import pytest

from gewtui.kernel import wire
from gewtui.kernel.decode import Decoder
from gewtui.kernel.probes import UNITS, tcp_state
from tests.support.kernel_records import _life_record, _record, _vocab


def _decoder(native: bool, units=UNITS):
    real = tcp_state._native_encoder
    if not native:
        tcp_state._native_encoder = lambda enc: None
    try:
        dec = Decoder(units, _vocab(), lambda ev: None)
    finally:
        tcp_state._native_encoder = real
    out: list[bytes] = []
    dec.raw_sink = out.append
    return dec, out


def _state(dec):
    return (dec.next_id, dec.events, dec.folded, dec.decode_errors, dec._next_sock, dict(dec._live),
            dict(dec._ids_new), dict(dec._ids_old), {k: (o.pid, o.tgid, o.comm) for k, o in dec.owners.items()},
            dict(dec.unit_state("tcp_state.life")), sorted(dec.unit_state("tcp_probe")))


def test_the_extension_is_built_and_used():
    dec, _ = _decoder(True)
    enc = dec._kinds[tcp_state.K_LIFE][2]
    assert type(enc).__module__ == "gewtui.kernel.probes.tcp_state_native", (
        "gewtui.kernel.probes.tcp_state_native is not built: `make venv` builds it (gcc and python3-dev "
        "from .ci/host-setup)")


@pytest.mark.parametrize("units", ["all", "no tcp_probe"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_c_encoder_writes_what_the_python_one_writes(seed, units):
    """Lifecycle records of every shape (items of each kind and context, with and without a
    task, final or not, numbered after items that crossed before) among the other kinds,
    sockets reused so lives, owners and windows carry over between records."""
    chosen = UNITS if units == "all" else [u for u in UNITS if u.name != "tcp_probe"]
    (nat, nat_out), (ref, ref_out) = _decoder(True, chosen), _decoder(False, chosen)
    rnd = random.Random(seed)
    vocab = _vocab()
    lives = 0
    for i in range(4000):
        if rnd.random() < 0.6:
            rec = _life_record(rnd)
            lives += 1
        else:
            rec = _record(rnd, vocab)
        for dec in (nat, ref):
            dec.record(rec)
        assert nat_out == ref_out, f"record {i}"
        if i % 500 == 0:
            assert _state(nat) == _state(ref), f"record {i}"
    assert _state(nat) == _state(ref)
    assert lives > 2000 and len(nat_out) > 3000


def test_a_record_with_too_many_items_is_a_decode_loss_in_both():
    rnd = random.Random(4)
    rec = bytearray(_life_record(rnd))
    at = tcp_state.HDR.size + wire.offsets(tcp_state._REC_HEAD)[4]
    rec[at:at + 4] = (tcp_state.LIFE_ITEMS + 1).to_bytes(4, "little")
    for native in (True, False):
        dec, out = _decoder(native)
        assert dec.record(bytes(rec)) == 0
        assert dec.decode_errors == 1 and out == []


def test_objects_wanted_as_events_take_the_item_by_item_decoder():
    """Without a raw sink (events wanted as objects) both encoders leave the record to
    decode_life, which makes the same events."""
    got = []
    for native in (True, False):
        dec, _ = _decoder(native)
        dec.raw_sink = None
        evs = []
        dec.sink = evs.append
        r = random.Random(6)
        for _ in range(300):
            dec.record(_life_record(r))
        got.append([e.SerializeToString() for e in evs])
    assert got[0] == got[1] and len(got[0]) > 300


def test_a_decoder_with_the_c_encoder_is_freed():
    """The encoder holds the decoder and the decoder's table holds the encoder: the
    collector must see that cycle, or every decoder a session makes stays in memory."""
    import gc
    import weakref

    dec, _ = _decoder(True)
    dec.record(_life_record(random.Random(7)))
    gone = weakref.ref(dec)
    del dec
    gc.collect()
    assert gone() is None
