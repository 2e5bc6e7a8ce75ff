"""The live engine's duty gives way on a box with a CPU to spare (gewtui.kernel.spare_cpu),
judged from the kernel's idle accounting plus the engine thread's own CPU."""
from __future__ import annotations

import threading
import time

from gewtui.kernel.capture import Capture
from gewtui.kernel.spare_cpu import SpareCpu, idle_seconds


class _Box:
    """Clocks a test sets: wall time, idle CPU seconds of the whole box, the caller's CPU."""

    def __init__(self):
        self.t, self.idle, self.own = 100.0, 5000.0, 1.0

    def spare(self, **kw) -> SpareCpu:
        return SpareCpu(idle=lambda: self.idle, clock=lambda: self.t, own=lambda: self.own, **kw)

    def run(self, seconds: float, idle_cpus: float, own_cpus: float) -> None:
        self.t += seconds
        self.idle += idle_cpus * seconds
        self.own += own_cpus * seconds


def test_a_box_idle_enough_has_a_cpu_to_spare_and_a_busy_one_has_not():
    box = _Box()
    s = box.spare()
    assert not s.ample()                   # no window yet: the duty holds
    box.run(0.3, idle_cpus=1.7, own_cpus=0.0)
    assert s.ample() and abs(s.spare - 1.7) < 1e-9
    box.run(0.3, idle_cpus=0.4, own_cpus=0.1)      # a workload on both CPUs (2-vCPU churn)
    assert not s.ample() and abs(s.spare - 0.5) < 1e-9


def test_the_engines_own_cpu_counts_as_spare_it_is_using():
    """Folding flat out, the engine's CPU is not idle; it is still the CPU it may use."""
    box = _Box()
    s = box.spare(headroom=0.5)
    s.ample()
    box.run(0.3, idle_cpus=0.6, own_cpus=1.0)
    assert s.ample()                       # 1.6 >= 1 + 0.5: keeps folding flat out
    box.run(0.3, idle_cpus=0.3, own_cpus=1.0)      # the workload grew: less than the headroom left
    assert not s.ample()


def test_judged_once_a_window_and_unreadable_accounting_keeps_the_duty():
    box = _Box()
    reads = []
    s = SpareCpu(idle=lambda: reads.append(1) or box.idle, clock=lambda: box.t, own=lambda: box.own)
    s.ample()
    box.run(0.1, idle_cpus=2.0, own_cpus=0.0)
    assert not s.ample() and len(reads) == 1      # within the window: the last verdict, no read
    box.run(0.2, idle_cpus=2.0, own_cpus=0.0)
    assert s.ample() and len(reads) == 2
    broken = SpareCpu(idle=lambda: None, clock=lambda: box.t, own=lambda: box.own)
    for _ in range(3):
        box.run(0.3, idle_cpus=2.0, own_cpus=0.0)
        assert not broken.ample()


def test_idle_seconds_reads_this_kernels_accounting(tmp_path):
    a = idle_seconds()
    assert a is not None and a > 0
    fake = tmp_path / "stat"
    fake.write_text("cpu  10 0 20 4000 100 0 5 0 0 0\ncpu0 5 0 10 2000 50 0 2 0 0 0\n")
    from gewtui.kernel.spare_cpu import USER_HZ
    assert idle_seconds(str(fake)) == 4100 / USER_HZ
    fake.write_text("intr 1 2 3\n")
    assert idle_seconds(str(fake)) is None
    assert idle_seconds(str(tmp_path / "missing")) is None


class _BusyLive:
    """A capture that always finds records (the workload never stops)."""

    def __init__(self):
        self.closed = False
        self.next_id = 1
        self.write_lock = threading.RLock()

    def capture_batch(self, timeout_ms):
        time.sleep(0.002)
        raws = [b"\x08" + bytes([self.next_id % 100 + 1])]
        self.next_id += 1
        return raws, 0, 0, 1


class _Fixed:
    def __init__(self, ample):
        self.value = ample

    def ample(self):
        return self.value


def _engine_rest(ample: bool) -> float:
    """Seconds the engine gave to the capture over takes each followed by 20 ms of folding."""
    cap = Capture(_BusyLive(), poll_ms=1, yield_s=0, duty=0.1, spare=_Fixed(ample)).start()
    try:
        while not cap.busy:
            time.sleep(0.001)
        for _ in range(5):
            cap.take(100, 0.1)
            time.sleep(0.02)                # the engine's folding
    finally:
        cap.stop()
    return cap.yielded_s


def test_the_engine_rests_for_its_duty_only_where_no_cpu_is_spare():
    assert _engine_rest(ample=False) >= 4 * 0.02 * 9 * 0.9     # ~0.18 s after each take but the first
    assert _engine_rest(ample=True) == 0.0
