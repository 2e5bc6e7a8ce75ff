"""Runs the kernel skips without counting them (gewtui/kernel/witness.py): the plane holds
each witnessed program's runs against the tracepoint's own hit counter. On the real kernel:
with the drop program attached, refused connects leave no gap; with it taken off its
tracepoint behind the plane's back (what the kernel does when it silently skips runs),
every drop becomes a counted "unrun" loss and the session is incomplete."""
import os

import pytest

from gewtui.kernel.witness import online_cpus, skipped
from tests.faults.kernel_support import refused_connects
from tests.support.probes_support import loopback_plane


def test_online_cpus_reads_the_kernels_list():
    assert online_cpus("0-3,6\n") == [0, 1, 2, 3, 6]
    assert online_cpus("0\n") == [0]


def test_runs_ahead_of_hits_never_count_as_skipped():
    assert skipped({0: 10, 1: 5}, {0: 12, 1: 2}) == {0: 0, 1: 3}
    assert skipped({0: 4}, {}) == {0: 4}


def _unrun(events, probe: str) -> int:
    return sum(e.lost.count for e in events
               if e.WhichOneof("body") == "lost" and e.lost.stage == "unrun" and e.lost.probe == probe)


@pytest.mark.root
def test_a_drop_the_program_never_saw_is_counted_and_marks_the_session_incomplete():
    with loopback_plane(["drops"], "wit") as (ns, col):
        plane, events = col.plane, col.events
        assert not plane.witness_refused, plane.witness_refused
        refused_connects(ns, 20)             # each SYN is dropped: NO_SOCKET
        plane.poll(100)
        plane._tick(force=True)
        drops = sum(1 for e in events if e.WhichOneof("body") == "skb_drop")
        assert drops >= 20 and _unrun(events, "drops") == 0
        # the kernel not running the program: taken off its tracepoint, the counter stays
        plane.bpf.detach_raw_tracepoint(tp=b"kfree_skb")
        plane._attached = [p for p in plane._attached if p.fn != "gew_kfree_skb"]
        refused_connects(ns, 30)
        plane.poll(100)
        plane.stop()
        st = plane.stats()
    assert _unrun(events, "drops") >= 30
    assert not st.observation_complete and "uncounted" in st.incomplete_reason, st.incomplete_reason
    assert st.lost == 0          # nothing was refused by the ring buffer: the runs never happened


@pytest.mark.root
def test_counters_that_cannot_open_leave_the_session_running_and_say_so(monkeypatch):
    from gewtui.kernel import witness

    def refuse(self, group, name, cpus=None):
        raise OSError(1, f"perf_event_open({group}:{name}): Operation not permitted")

    monkeypatch.setattr(witness.Witness, "__init__", refuse)
    with loopback_plane(["drops"], "wit") as (ns, col):
        assert "Operation not permitted" in col.plane.witness_refused["gew_kfree_skb"]
        refused_connects(ns, 5)
        assert col.poll_until(lambda evs: sum(1 for e in evs if e.WhichOneof("body") == "skb_drop") >= 5)
        col.plane.stop()
        st = col.plane.stats()
    assert st.observation_complete, st.incomplete_reason


class _Counter:
    """A Witness stand-in: hits per CPU set by the test."""

    def __init__(self, *a, **k):
        self.now, self.fail, self.closed = {0: 0, 1: 0}, False, False

    def hits(self):
        if self.fail:
            raise OSError(5, "counter gone")
        return dict(self.now)

    def stop(self):
        pass

    def close(self):
        self.closed = True


def _witnesses(monkeypatch, runs, misses):
    from types import SimpleNamespace

    from gewtui.kernel import witness

    made = []
    monkeypatch.setattr(witness, "Witness", lambda *a, **k: made.append(_Counter()) or made[-1])
    monkeypatch.setattr(witness, "online_cpus", lambda text=None: [0, 1])
    w = witness.Witnesses(lambda slot: dict(runs), lambda fn: misses[0])
    w.open([("drops", SimpleNamespace(fn="gew_kfree_skb", group="skb", name="kfree_skb", witness=0))])
    return w, made[0]


def test_a_hit_counted_before_its_run_is_held_one_check(monkeypatch):
    # perf's probe registered first counts a hit the program has not run for yet
    runs, misses = {0: 0, 1: 0}, [0]
    w, c = _witnesses(monkeypatch, runs, misses)
    c.now = {0: 5, 1: 0}
    assert w.check() == []                  # its runs may still be coming
    runs[0] = 5
    assert w.check() == []                  # they came
    c.now = {0: 9, 1: 0}
    assert w.check() == []
    assert w.check() == [("drops", 4)]      # a whole check later, still no run: skipped
    w.stop()
    c.now = {0: 10, 1: 0}
    assert w.check() == [("drops", 1)]      # stopped: the final hits count at once
    assert w.unrun == 5


def test_skips_the_kernel_counted_itself_are_not_counted_twice(monkeypatch):
    runs, misses = {0: 0, 1: 0, 2: 0}, [0]
    w, c = _witnesses(monkeypatch, runs, misses)
    c.now = {0: 0, 1: 500}
    runs[1] = 500
    w.check()
    assert w.check() == []
    c.now = {0: 7, 1: 500}
    runs[0] = 4
    misses[0] = 2                           # two of the three the kernel counted itself
    w.stop()
    assert w.check() == [("drops", 1)]


def test_a_counter_that_fails_stops_witnessing_and_says_so(monkeypatch):
    w, c = _witnesses(monkeypatch, {0: 0, 1: 0}, [0])
    c.fail = True
    assert w.check() == [] and c.closed
    assert "counter failed" in w.refused["gew_kfree_skb"]
    assert w.check() == []



@pytest.mark.root
def test_a_perf_user_registered_first_does_not_make_the_witness_invent_skips():
    # perf's probe on kfree_skb registered before the plane's program: each hit is counted
    # before the program runs for it; checks in a tight loop on one CPU while another makes
    # drops must still report none
    import subprocess
    import sys
    import time

    from gewtui.kernel.witness import Witness

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip(f"needs two CPUs to drop on one and check on the other; this machine has {len(cpus)}")
    early = Witness("skb", "kfree_skb")
    load = ("import socket, time\nend = time.time() + 2\nwhile time.time() < end:\n"
            "    s = socket.socket()\n    try: s.connect(('127.0.0.1', 9))\n    except OSError: pass\n    s.close()\n")
    try:
        with loopback_plane(["drops"], "ord") as (ns, col):
            os.sched_setaffinity(0, {cpus[0]})
            try:
                p = subprocess.Popen(["ip", "netns", "exec", ns, "taskset", "-c", str(cpus[1]), sys.executable, "-c", load])
                checks = 0
                while p.poll() is None:
                    col.plane._witnesses.check()
                    checks += 1
            finally:
                os.sched_setaffinity(0, set(cpus))
            time.sleep(0.1)
            col.plane.poll(50)
            col.plane.stop()
            st = col.plane.stats()
    finally:
        early.close()
    drops = sum(1 for e in col.events if e.WhichOneof("body") == "skb_drop")
    assert checks > 100 and drops > 100, (checks, drops)
    assert _unrun(col.events, "drops") == 0 and col.plane._witnesses.unrun == 0, st.incomplete_reason
