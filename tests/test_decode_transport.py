"""The ring-buffer transport without a kernel: records reach the decoder byte for byte,
the callback returns 0, and an exception from the event sink is raised from poll(), not
lost inside the C callback."""
import ctypes

import pytest

from gewtui.kernel.transport import RingTransport, _raw, per_cpu


class FakeRing:
    def __init__(self):
        self.cb = None
        self.pending: list[bytes] = []
        self.returns: list[int] = []

    def open_ring_buffer(self, cb):
        self.cb = cb

    def deliver(self):
        while self.pending:
            buf = ctypes.create_string_buffer(self.pending.pop(0))
            self.returns.append(self.cb(None, ctypes.addressof(buf), len(buf.raw) - 1))


class FakeBPF:
    def __init__(self):
        self.ring = FakeRing()

    def __getitem__(self, name):
        assert name == b"gew_rb"
        return self.ring

    def ring_buffer_poll(self, timeout):
        self.ring.deliver()

    def ring_buffer_consume(self):
        self.ring.deliver()


class Dec:
    def __init__(self, fail_on=None):
        self.consumed = 0
        self.seen = []
        self.fail_on = fail_on

    def record(self, data):
        self.consumed += 1
        if data == self.fail_on:
            raise RuntimeError("sink failed")
        self.seen.append(data)


def test_records_reach_the_decoder_and_callbacks_return_zero():
    bpf, dec = FakeBPF(), Dec()
    t = RingTransport(bpf, dec)
    bpf.ring.pending = [b"\x01\x02\x00\x03", b"abc"]
    assert t.poll(0) == 2
    assert dec.seen == [b"\x01\x02\x00\x03", b"abc"]
    assert bpf.ring.returns == [0, 0]
    assert t.drain() == 0


def test_a_failing_sink_surfaces_from_poll():
    bpf, dec = FakeBPF(), Dec(fail_on=b"bad")
    t = RingTransport(bpf, dec)
    bpf.ring.pending = [b"ok", b"bad", b"later"]
    with pytest.raises(RuntimeError, match="sink failed"):
        t.poll(0)
    assert dec.seen == [b"ok", b"later"] and bpf.ring.returns == [0, 0, 0]
    assert t.poll(0) == 0   # raised once


def test_map_values_to_bytes():
    assert _raw(0x0102, 8) == b"\x02\x01" + b"\0" * 6
    assert _raw(-1, 2) == b"\xff\xff"
    two = b"A" * 12 + b"\0" * 4 + b"B" * 12 + b"\0" * 4   # 12-byte leaves padded to 16 per CPU
    assert per_cpu(two, 12) == [b"A" * 12, b"B" * 12]
