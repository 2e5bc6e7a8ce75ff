"""The plane's wakeup setting on the real kernel: records that come slowly stop forcing the
consumer awake (the programs read gew_wake_quiet), and a burst turns forced wakeups back on
within one poll slice; nothing is lost either way."""
import threading
import time

import pytest

from gewtui.kernel.plane import PlaneConfig
from tests.faults.kernel_support import refused_connects
from tests.support.probes_support import loopback_plane

pytestmark = [pytest.mark.root]


def _quiet_in_kernel(plane) -> int:
    t = plane.table("gew_wake_quiet")
    return int(t[t.Key(0)].value)


def _woken_after(plane, ns: str, n: int, wait_s: float) -> float:
    """How long the consumer sleeps on the ring buffer while ``n`` refused connects make
    records (without reading them). The connects start once the consumer is asleep: a
    record already pending when it goes to sleep returns at once, wakeup or not."""
    ring = plane._transport._ring

    def later() -> None:
        time.sleep(0.2)
        refused_connects(ns, n)
    t = threading.Thread(target=later)
    t0 = time.monotonic()
    t.start()
    ring.wait(int(wait_s * 1000))
    took = time.monotonic() - t0
    t.join()
    return took


def test_slow_records_stop_forcing_wakeups_and_a_burst_restores_them():
    with loopback_plane(["tcp_state", "tcp_events"], "wake", PlaneConfig(poll_slice_ms=50)) as (ns, col):
        plane, events = col.plane, col.events
        assert _quiet_in_kernel(plane) == 0          # a session starts with forced wakeups
        end = time.monotonic() + 3
        while time.monotonic() < end and not plane._wake.quiet:
            plane.poll(50)                           # nothing happens in the namespace
        assert plane._wake.quiet and _quiet_in_kernel(plane) == 1
        # quiet: a waiting poll lasts a whole slice even when records are already pending
        # (a caller's shorter timeout, or a return as each record trickles in, would only
        # add wakeups), and takes them all; a poll that does not wait returns at once
        refused_connects(ns, 3)
        before = col.plane.decoder.consumed
        t0 = time.monotonic()
        plane.poll(5)
        assert time.monotonic() - t0 >= 0.045
        assert plane.decoder.consumed - before >= 3
        t0 = time.monotonic()
        plane.poll(0)
        assert time.monotonic() - t0 < 0.045
        # quiet: ~100 records arrive and none of them wakes the sleeping consumer
        plane.drain()
        assert _woken_after(plane, ns, 40, 1.0) >= 0.9
        plane.poll(0)
        # a burst: refused connects, several records each, far more than one slice's
        # quiet share (WakePolicy.burst), while the consumer is not polling
        refused_connects(ns, 1500)
        plane.poll(50)
        assert not plane._wake.quiet and _quiet_in_kernel(plane) == 0
        # forced wakeups again: records wake it long before its timeout
        plane.drain()
        assert _woken_after(plane, ns, 200, 3.0) < 2.0
        plane.stop()
        st = plane.stats()
    assert st.lost == 0 and st.produced == st.consumed, (st.produced, st.consumed, st.lost)
    assert sum(1 for e in events if e.WhichOneof("body") == "reset") >= 1000
