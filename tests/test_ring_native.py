"""The ring buffer's drain in C (gewtui/kernel/ring_native.c) against its Python reference
(MappedRing.drain_reference): the same records handed over, the same consumer positions
published, the same errors, on rings built the way the kernel lays them out."""
from __future__ import annotations

import random
import struct

import pytest

from gewtui.kernel import transport
from gewtui.kernel.transport import MappedRing
from tests.support.fake_ring import FakeKernelRing

native = pytest.importorskip("gewtui.kernel.ring_native",
                             reason="the C extension is not built (make venv builds it)")


def test_the_transport_drains_with_the_extension():
    assert transport._native_drain is native.drain


def _pair():
    ks = [FakeKernelRing(), FakeKernelRing()]
    return ks, [MappedRing(k.fd, k.size) for k in ks]


def _close(ks, rs):
    for r in rs:
        r.close()
    for k in ks:
        k.close()


@pytest.mark.parametrize("seed", range(6))
def test_random_rings_drain_alike(seed):
    """Records of random sizes, some discarded, some still reserved, drained with random
    limits and a handler that now and then raises: both drains hand over the same records
    in the same order, raise the same errors and leave the same positions."""
    rnd = random.Random(seed)
    ks, rs = _pair()
    drains = (native.drain, MappedRing.drain_reference)
    got: list[list[bytes]] = [[], []]
    busy: list[int] = []
    try:
        for _ in range(400):
            op = rnd.random()
            if op < 0.6:
                payload = rnd.randbytes(rnd.choice((0, 1, 7, 8, 60, 300, 1500)))
                discard = rnd.random() < 0.1
                hold = rnd.random() < 0.05 and not busy
                for k in ks:
                    pos = k.reserve(payload, busy=hold, discard=discard)
                if hold:
                    busy.append(pos)
            elif op < 0.7 and busy:
                pos = busy.pop()
                for k in ks:
                    k.commit(pos)
            else:
                limit = rnd.choice((1, 3, 256, 1 << 62))
                fail_at = rnd.choice((None, None, None, 0, 2))
                results = []
                for i, (r, drain) in enumerate(zip(rs, drains)):
                    seen = 0

                    def handle(b, i=i):
                        nonlocal seen
                        seen += 1
                        if seen - 1 == fail_at:
                            raise RuntimeError("sink failed")
                        got[i].append(b)

                    try:
                        results.append(("ok", drain(r, handle, limit)))
                    except RuntimeError as e:
                        results.append(("raised", str(e)))
                assert results[0] == results[1]
                assert rs[0]._pos == rs[1]._pos
                assert ks[0].cons() == ks[1].cons() == rs[0]._pos
            # room for the next records: what is drained is free again
            if ks[0].prod - ks[0].cons() > ks[0].size // 2:
                if busy:
                    for k in ks:
                        k.commit(busy[0])
                    busy.clear()
                for r, drain, out in zip(rs, drains, got):
                    drain(r, out.append, 1 << 62)
        assert got[0] == got[1] and len(got[0]) > 100
    finally:
        _close(ks, rs)


def test_the_consumer_position_is_published_every_256_records():
    k = FakeKernelRing(size=16 * 4096)
    r = MappedRing(k.fd, k.size)
    try:
        for i in range(600):
            k.reserve(struct.pack("<I", i))
        published = []
        assert r.drain(lambda b: published.append(k.cons())) == 600
        # record 257 sees what was published after record 256, 513 after 512
        assert published[255] == 0 and published[256] == published[511] == 256 * 16
        assert published[512] == 512 * 16 and k.cons() == k.prod == 600 * 16
    finally:
        r.close()
        k.close()


def test_a_ring_closed_from_inside_the_handler_fails_there_instead_of_being_read():
    k = FakeKernelRing()
    r = MappedRing(k.fd, k.size)
    try:
        for p in (b"one", b"two"):
            k.reserve(p)
        with pytest.raises(BufferError):
            r.drain(lambda b: r.close())
        assert not r._prod.closed      # the mapping outlived the attempt
    finally:
        r.close()
        k.close()


def test_a_ring_whose_mapping_is_smaller_than_its_layout_is_refused():
    class Broken:
        pass

    k = FakeKernelRing()
    good = MappedRing(k.fd, k.size)
    try:
        b = Broken()
        b._prod, b._cons, b.mask, b._pos = good._prod, good._cons, good.mask, 0
        b._data = len(good._prod) + 1
        with pytest.raises(ValueError, match="smaller than its layout"):
            native.drain(b, lambda x: None, 10)
    finally:
        good.close()
        k.close()


def test_rings_whose_numbers_would_wrap_around_are_refused_without_reading_or_writing_outside():
    """Positions and offsets near 2**64 (no kernel ring has them) are refused, not wrapped:
    a header is never read before the mapping, nor a consumer position written into a
    buffer too small for it."""
    class Ring:
        pass

    k = FakeKernelRing()
    good = MappedRing(k.fd, k.size)
    try:
        k.reserve(b"x")
        r = Ring()
        r._prod, r._cons, r._data = good._prod, good._cons, good._data
        r.mask, r._pos = 2**64 - 1, 2**64 - 10
        struct.pack_into("<Q", k.mm, 4096, 2**64 - 1)
        with pytest.raises(ValueError, match="beyond the mapping"):
            native.drain(r, lambda b: None, 10)
        r.mask, r._pos = good.mask, 2**64 - 8     # a record's step past 2**64
        with pytest.raises(ValueError, match="wrap around"):
            native.drain(r, lambda b: None, 10)
        small = Ring()
        small._prod, small._cons, small._data, small.mask, small._pos = good._prod, bytearray(4), good._data, good.mask, 0
        with pytest.raises(ValueError, match="smaller than its layout"):
            native.drain(small, lambda b: None, 10)
        assert small._cons == bytearray(4)
    finally:
        good.close()
        k.close()
