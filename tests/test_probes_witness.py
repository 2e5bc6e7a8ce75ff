"""Runs the kernel skips without counting them (gewtui/kernel/witness.py): the plane holds
each witnessed program's runs against the tracepoint's own hit counter. On the real kernel:
with the drop program attached, refused connects leave no gap; with it taken off its
tracepoint behind the plane's back (what the kernel does when it silently skips runs),
every drop becomes a counted "unrun" loss and the session is incomplete."""
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
