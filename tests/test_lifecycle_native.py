"""The C expansion of lifecycle events (gewtui/recording/lifecycle_native.c) against the
Python one it must equal byte for byte (lifecycle.expand_reference): on what a capture
writes it never declines and never differs; on crafted bytes it either gives exactly what
the reference gives or declines, so a forged recording cannot make the two disagree."""
import random
import struct

import pytest

from gewtui.kernel.decode import Decoder
from gewtui.kernel.probes import UNITS
from gewtui.pb import events_pb2
from gewtui.pbwire import length
from gewtui.recording import lifecycle
from tests.support.kernel_records import _life_record, _vocab

ITEM = struct.Struct("<QIIHHBBBB")


def _captured(seed: int, n: int) -> list[bytes]:
    """Lifecycle events as a capture's decoder writes them, from random kernel records."""
    raws: list[bytes] = []
    dec = Decoder(UNITS, _vocab(), lambda ev: None)
    dec.raw_sink = raws.append
    rnd = random.Random(seed)
    for _ in range(n):
        dec.record(_life_record(rnd))
    return [r for r in raws if lifecycle.is_lifecycle(r)]


def _ascii_strings(raw: bytes) -> bool:
    life = events_pb2.Event.FromString(raw).lifecycle
    comms = [getattr(life, k).comm for k in ("task", "owner", "learnt", "closer") if life.HasField(k)]
    return all(s.isascii() for s in comms + list(life.ca_state_names))


def _reference(raw: bytes):
    try:
        return lifecycle.expand_reference(raw)
    except Exception as e:          # noqa: BLE001 - any refusal is the reference's answer
        return type(e)


def test_the_extension_is_built_and_used():
    assert lifecycle.NATIVE, ("gewtui.recording.lifecycle_native is not built: `make venv` builds it "
                              "(gcc and python3-dev from .ci/host-setup)")
    raw = _captured(1, 50)[0]
    assert lifecycle._native(raw) == lifecycle.expand_reference(raw)


def test_what_a_capture_writes_expands_the_same_in_c():
    lives = _captured(2, 3000)
    assert len(lives) > 1000
    assert sum(not _ascii_strings(r) for r in lives) > 100     # task names decoded with replacements
    for raw in lives:
        assert lifecycle._native(raw) == lifecycle.expand_reference(raw)


def test_crafted_bytes_expand_as_the_reference_or_are_declined():
    """Random damage (a byte changed, bytes cut, put in or repeated) to captured lifecycles:
    whatever the C walk accepts, it expands exactly as the reference does, which must not
    refuse it; expand() as readers call it always answers as the reference."""
    rnd = random.Random(5)
    seeds = _captured(3, 400)
    accepted = refused = 0
    for i in range(30000):
        raw = bytearray(rnd.choice(seeds))
        for _ in range(rnd.choice([1, 1, 2, 4])):
            at = rnd.randrange(len(raw))
            op = rnd.randrange(4)
            if op == 0:
                raw[at] = rnd.getrandbits(8)
            elif op == 1:
                del raw[at:at + rnd.randrange(1, 6)]
            elif op == 2:
                raw[at:at] = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 4)))
            else:
                raw[at:at] = raw[at:at + rnd.randrange(1, 12)]
        raw = bytes(raw)
        want = _reference(raw)
        got = lifecycle._native(raw)
        if got is not None:
            accepted += 1
            assert got == want, f"mutation {i}"
        try:
            answer = lifecycle.expand(raw)
        except Exception as e:      # noqa: BLE001
            answer = type(e)
        assert answer == want
        refused += isinstance(want, type)
    assert accepted > 1000 and refused > 1000      # both paths exercised


def _event(body: bytes, envelope: bytes = b"\x08\x0a\x10\x05") -> bytes:
    """An Event as bytes: ``envelope`` (id 10, ktime 5), then a Lifecycle made of ``body``."""
    return envelope + lifecycle.K_LIFE + length(len(body)) + body


_ONE_ITEM = ITEM.pack(7, 1, 0, 80, 443, 1, 1, 7, 2)
_TUPLE = events_pb2.Tuple(family=2, saddr=b"\x0a\0\0\1", daddr=b"\x0a\0\0\2", sport=80, dport=443,
                          protocol=6).SerializeToString()
_ITEMS = b"\x3a" + bytes([len(_ONE_ITEM)]) + _ONE_ITEM


@pytest.mark.parametrize("raw, what", [
    (_event(b"\x0a" + bytes([len(_TUPLE)]) + _TUPLE + _ITEMS), "the capture's form (taken)"),
    (_event(b"\x0a" + bytes([len(_TUPLE)]) + _TUPLE + _ITEMS, b"\x08\x0a\x22\x02\x08\x01"),
     "an attribution on the envelope"),
    (_event(b"\x0a" + bytes([len(_TUPLE)]) + _TUPLE + b"\x0a\x02\x20\x51" + _ITEMS), "the tuple twice (merged)"),
    (_event(b"\x10\x04\x0a" + bytes([len(_TUPLE)]) + _TUPLE + _ITEMS), "fields out of order"),
    (_event(b"\x0a" + bytes([len(_TUPLE)]) + _TUPLE + b"\x18\x00" + _ITEMS), "a zero written out"),
    (_event(b"\x0a" + bytes([len(_TUPLE)]) + _TUPLE + b"\x18\x84\x00" + _ITEMS), "a varint not minimal"),
    (_event(b"\x0a" + bytes([len(_TUPLE)]) + _TUPLE + _ITEMS + b"\x50\x02"), "a bool of 2"),
    (_event(b"\x0a" + bytes([len(_TUPLE)]) + _TUPLE + b"\x22\x02\x40\x01" + _ITEMS), "a field the schema lacks"),
    (_event(b"\x0a" + bytes([len(_TUPLE)]) + _TUPLE + _ITEMS + b"\x48\x01"),
     "a field the schema lacks, after the items"),
    (_event(b"\x0a" + bytes([len(_TUPLE)]) + _TUPLE + _ITEMS + b"\x50\x01\xa8\x01\x05"), "a histogram not packed"),
])
def test_other_forms_are_left_to_the_reference(raw, what):
    """Forms protobuf reads but the capture never writes: the C walk declines each (only the
    first case is the capture's own form), and expand() answers as the reference."""
    got = lifecycle._native(raw)
    assert (got is not None) == what.endswith("(taken)"), what
    assert lifecycle.expand(raw) == lifecycle.expand_reference(raw)


def _attr_event(comm: bytes) -> bytes:
    """A captured-form lifecycle whose task's name is ``comm``, bytes as they are."""
    attr = b"\x10\x2a" + b"\x1a" + length(len(comm)) + comm          # tgid 42, comm
    return _event(b"\x0a" + bytes([len(_TUPLE)]) + _TUPLE + b"\x22" + length(len(attr)) + attr + _ITEMS)


@pytest.mark.parametrize("comm, taken", [
    ("redis-server".encode(), True),
    ("réd\ufffd\ufffdis".encode(), True),           # replacement characters: how the kernel's bad bytes read
    (b"\xc3\x28", False),                             # not UTF-8: protobuf refuses it
    (b"\xed\xa0\x80", False),                         # a surrogate
    (b"\xc0\xaf", False),                             # an overlong form
    (b"x" * (lifecycle.MAX_NAME + 1), False),          # longer than any a capture writes
])
def test_task_names_are_taken_when_well_formed(comm, taken):
    raw = _attr_event(comm)
    assert (lifecycle._native(raw) is not None) == taken
    try:
        want = lifecycle.expand_reference(raw)
    except Exception as e:          # noqa: BLE001
        want = type(e)
    assert (want is not None and not isinstance(want, type)) == taken
    if taken:
        assert lifecycle._native(raw) == want


def test_a_long_address_or_name_is_refused_before_it_is_repeated():
    """Each event a lifecycle stands for repeats its tuple and names: a crafted megabyte
    address would come back out 66 times. Both expansions refuse it at once."""
    big = events_pb2.Event(id=1, ktime_ns=2)
    big.lifecycle.tuple.saddr = b"A" * (1 << 20)
    big.lifecycle.items = ITEM.pack(1, 0, 0, 1, 2, 1, 1, 1, 1) * 64
    big.lifecycle.destroyed = True
    raw = big.SerializeToString()
    assert lifecycle._native(raw) is None
    with pytest.raises(ValueError, match="longer than a capture writes"):
        lifecycle.expand(raw)
    named = events_pb2.Event(id=1, ktime_ns=2)
    named.lifecycle.items = ITEM.pack(1, 0, 0, 1, 2, 3, 1, 0, 0)
    named.lifecycle.ca_state_names.append("x" * (lifecycle.MAX_NAME + 1))
    with pytest.raises(ValueError, match="longer than a capture writes"):
        lifecycle.expand(named.SerializeToString())
