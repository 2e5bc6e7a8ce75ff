"""The varint every event is numbered with, in C (gewtui/pbwire_native.c), against the
Python function it stands for (pbwire.uvarint_reference): the same bytes for every value,
including the edges of each byte count and values the C side hands back to Python."""
import random

from gewtui import pbwire


def test_the_extension_is_built_and_used():
    assert pbwire.uvarint is not pbwire.uvarint_reference, (
        "gewtui.pbwire_native is not built: `make venv` builds it (gcc and python3-dev from .ci/host-setup)")
    assert type(pbwire.uvarint).__name__ == "builtin_function_or_method"


def test_every_value_gives_the_reference_bytes():
    rnd = random.Random(1)
    edges = [0, 1, 127, 128, 16383, 16384, (1 << 21) - 1, 1 << 21, (1 << 28) - 1, 1 << 28, (1 << 35) - 1,
             (1 << 56), (1 << 63) - 1, 1 << 63, (1 << 64) - 1, True, False]
    values = edges + [rnd.getrandbits(rnd.randrange(1, 65)) for _ in range(100000)]
    for v in values:
        assert pbwire.uvarint(v) == pbwire.uvarint_reference(v), v


def test_values_outside_64_bits_go_to_the_reference():
    for v in (1 << 64, (1 << 70) + 5, 1 << 200):
        assert pbwire.uvarint(v) == pbwire.uvarint_reference(v)
        assert len(pbwire.uvarint(v)) >= 10
