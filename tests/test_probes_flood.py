"""Overrunning a one-page ring buffer with real events: every record the kernel tried to
emit is either consumed or counted lost, exactly, and the plane says it is incomplete."""
import secrets
import socket
import time

import pytest

from gewtui.kernel.plane import KernelPlane, PlaneConfig, ScopeFilter
from tests.support.probes_support import entered, ip, in_ns, require_root

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def flood_ns():
    require_root()
    ns = f"gewt-flood-{secrets.token_hex(3)}"
    ip("netns", "del", ns, check=False)
    ip("netns", "add", ns)
    try:
        in_ns(ns, "ip", "link", "set", "lo", "up")
        yield ns
    finally:
        ip("netns", "del", ns, check=False)


def test_small_ring_buffer_overrun_is_counted_exactly(flood_ns):
    import os

    inode = os.stat(f"/run/netns/{flood_ns}").st_ino
    events = []
    plane = KernelPlane(["tcp_state", "tcp_events"], PlaneConfig(ringbuf_pages=1), on_event=events.append)
    try:
        plane.stage()
        plane.verify()
        plane.set_scope(ScopeFilter(netns_inodes=(inode,)))
        plane.attach()
        # rapid connects to a closed port, without draining: ~5 records each, 4 KiB of buffer
        n = 0
        end = time.monotonic() + 2.0
        with entered(flood_ns):
            while n < 3000 and time.monotonic() < end:
                s = socket.socket()
                try:
                    s.connect(("127.0.0.1", 9))
                except ConnectionRefusedError:
                    pass
                finally:
                    s.close()
                n += 1
        plane.stop()   # detach, drain, final loss accounting
        st = plane.stats()
    finally:
        plane.close()
    print(f"flood: {n} connects, produced {st.produced}, consumed {st.consumed}, rescued {st.rescued}, "
          f"lost {st.lost}")
    assert n >= 500
    assert st.lost > 0, "a one-page buffer must overflow under this load"
    # the records the full main ring refused went to the rescue ring until it was full too,
    # and were consumed from there: kept, counted apart, never counted lost
    assert st.rescued > 0
    assert st.produced == st.consumed + st.lost, (st.produced, st.consumed, st.lost)
    assert st.consumed > 0 and st.decode_errors == 0
    assert not st.observation_complete and "lost" in st.incomplete_reason
    # the loss reached the event stream as LostRecords events, per CPU, adding up exactly
    lost = [e.lost for e in events if e.WhichOneof("body") == "lost" and e.lost.stage == "ringbuf-reserve"]
    assert sum(x.count for x in lost) == st.lost
    assert {x.probe for x in lost} <= {"tcp_state", "tcp_events"}
    assert sum(st.per_cpu_lost.values()) == st.lost
    # stats survive close (taken when the plane stopped)
    assert plane.stats().lost == st.lost
