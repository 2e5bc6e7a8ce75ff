"""The ring-buffer transport without a kernel: records reach the decoder byte for byte,
the callback returns 0, and an exception from the event sink is raised from poll(), not
lost inside the C callback; records of the rescue ring join the main ring's in kernel-time
order."""
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
        if name != b"gew_rb":
            raise KeyError(name)    # as bcc does for a map the object lacks
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


class ListRing:
    """A ring read through the mapping, reduced to what the transport asks of it: committed
    records oldest first, and whether anything (committed or reserved) is still pending."""

    def __init__(self, records=(), busy=False):
        self.records = list(records)
        self.busy = busy

    def pending(self):
        return len(self.records) + self.busy

    def drain(self, handle, limit=1 << 62):
        n = 0
        while self.records and n < limit:
            handle(self.records.pop(0))
            n += 1
        return n

    def wait(self, timeout_ms):
        pass

    def close(self):
        pass


def _rec(ktime: int, tag: bytes) -> bytes:
    return ktime.to_bytes(8, "little") + tag


def _mapped_transport(main, rescue):
    dec = Dec()
    t = RingTransport(FakeBPF(), dec, mapped=False)
    t._ring, t._rescue = main, rescue
    return t, dec


def test_rescued_records_join_the_main_ring_in_kernel_time_order():
    main = ListRing([_rec(10, b"a"), _rec(20, b"b"), _rec(40, b"d")])
    rescue = ListRing([_rec(30, b"c"), _rec(15, b"x")])
    t, dec = _mapped_transport(main, rescue)
    t.poll(0)
    assert [r[8:] for r in dec.seen] == [b"a", b"x", b"b", b"c", b"d"]


def test_a_rescued_record_waits_while_an_older_main_record_may_still_come():
    # the main ring has a record reserved and not committed: the rescued one (newer than
    # everything consumed so far) waits for it
    main = ListRing([_rec(10, b"a")], busy=True)
    rescue = ListRing([_rec(30, b"c")])
    t, dec = _mapped_transport(main, rescue)
    t.poll(0)
    assert [r[8:] for r in dec.seen] == [b"a"]
    main.records, main.busy = [_rec(25, b"b"), _rec(35, b"d")], False
    t.poll(0)
    assert [r[8:] for r in dec.seen] == [b"a", b"b", b"c", b"d"]


def test_rescued_records_alone_are_handed_over():
    t, dec = _mapped_transport(ListRing(), ListRing([_rec(5, b"r")]))
    assert t.drain() == 1
    assert [r[8:] for r in dec.seen] == [b"r"]


def test_wake_policy_goes_quiet_when_records_come_slowly_and_wakes_on_a_burst():
    from gewtui.kernel.transport import WakePolicy

    w = WakePolicy(slice_ms=100, low=2000)
    assert not w.quiet and w.burst == 400        # a 100 ms slice at twice the quiet rate
    ms = 1_000_000
    assert w.observe(0, 0, 1000 * ms) is None      # the first poll only starts a window
    assert w.observe(100, 100, 1100 * ms) is None  # a window is 250 ms
    assert w.observe(400, 300, 1300 * ms) is True  # 400 records in 300 ms: 1,333/s, below 2,000
    w.quiet = True
    assert w.observe(500, 100, 1600 * ms) is None  # 333/s: stays quiet
    assert w.observe(950, 450, 1650 * ms) is False  # one poll brought a burst: wakeups at once
    w.quiet = False
    assert w.observe(1500, 550, 1700 * ms) is None  # inside the window
    assert w.observe(9000, 7500, 2000 * ms) is None  # 25,000/s: stays as it is
    w.quiet = True
    assert w.observe(10_000, 300, 2300 * ms) is False   # a window over the rate, no single burst
