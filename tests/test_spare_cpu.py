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
        kw.setdefault("quota", lambda: None)
        return SpareCpu(idle=lambda cpus: self.idle, affinity=lambda: None, clock=lambda: self.t,
                        own=lambda: self.own, **kw)

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
    s = box.spare(headroom=0.5, hysteresis=0.2)
    s.ample()
    box.run(0.3, idle_cpus=0.6, own_cpus=1.0)
    assert s.ample()                       # 1.6 >= 1 + 0.5: folds flat out
    box.run(0.3, idle_cpus=0.35, own_cpus=1.0)     # 1.35: within the hysteresis, keeps on
    assert s.ample()
    box.run(0.3, idle_cpus=0.2, own_cpus=1.0)      # the workload grew: 1.2 < 1.3
    assert not s.ample()
    box.run(0.3, idle_cpus=0.4, own_cpus=0.1)      # 0.5, resting: the duty holds
    assert not s.ample()
    box.run(0.3, idle_cpus=1.35, own_cpus=0.1)     # 1.45: not enough to turn on again
    assert not s.ample()


def test_an_old_judgement_another_threads_or_a_quota_keeps_the_duty():
    box = _Box()
    s = box.spare()
    s.ample()
    box.run(0.3, idle_cpus=1.8, own_cpus=0.0)
    assert s.ample()
    box.run(2.0, idle_cpus=2.0, own_cpus=0.0)      # a quiet spell: the box may have changed
    assert not s.ample()
    box.run(0.3, idle_cpus=1.8, own_cpus=0.0)
    assert s.ample()
    other = []
    t = threading.Thread(target=lambda: other.append(s.ample()))
    t.start()
    t.join()
    assert other == [False]               # another thread's CPU clock: nothing to judge by
    quota = box.spare(quota=lambda: 4.0)
    for _ in range(3):
        box.run(0.3, idle_cpus=2.0, own_cpus=0.0)
        assert not quota.ample()


def test_judged_once_a_window_and_unreadable_accounting_keeps_the_duty():
    box = _Box()
    reads = []
    s = SpareCpu(idle=lambda cpus: reads.append(1) or box.idle, affinity=lambda: None, quota=lambda: None,
                 clock=lambda: box.t, own=lambda: box.own)
    s.ample()
    box.run(0.1, idle_cpus=2.0, own_cpus=0.0)
    assert not s.ample() and len(reads) == 1      # within the window: the last verdict, no read
    box.run(0.2, idle_cpus=2.0, own_cpus=0.0)
    assert s.ample() and len(reads) == 2
    broken = SpareCpu(idle=lambda cpus: None, affinity=lambda: None, quota=lambda: None, clock=lambda: box.t,
                      own=lambda: box.own)
    for _ in range(3):
        box.run(0.3, idle_cpus=2.0, own_cpus=0.0)
        assert not broken.ample()


def test_idle_seconds_reads_this_kernels_accounting_for_the_cpus_asked(tmp_path):
    a = idle_seconds()
    assert a is not None and a > 0
    assert idle_seconds({0}) <= a
    fake = tmp_path / "stat"
    fake.write_text("cpu  10 0 20 4000 100 0 5 0 0 0\ncpu0 5 0 10 2000 50 0 2 0 0 0\n"
                    "cpu1 5 0 10 1000 30 0 3 0 0 0\nintr 1 2 3\nctxt 9\n")
    from gewtui.kernel.spare_cpu import USER_HZ
    assert idle_seconds(path=str(fake)) == 3080 / USER_HZ
    assert idle_seconds({1}, path=str(fake)) == 1030 / USER_HZ     # a pinned process: its CPUs only
    fake.write_text("intr 1 2 3\n")
    assert idle_seconds(path=str(fake)) is None
    assert idle_seconds(path=str(tmp_path / "missing")) is None


def test_a_cgroup_cpu_quota_is_the_tightest_on_the_way_up(tmp_path):
    from gewtui.kernel.spare_cpu import cpu_quota

    proc = tmp_path / "cgroup"
    proc.write_text("0::/a/b\n")
    root = tmp_path / "fs"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(str(proc), str(root)) is None
    (root / "a" / "cpu.max").write_text("150000 100000\n")
    assert cpu_quota(str(proc), str(root)) == 1.5
    (root / "a" / "b" / "cpu.max").write_text("50000 100000\n")
    assert cpu_quota(str(proc), str(root)) == 0.5
    proc.write_text("4:cpu,cpuacct:/x\n")          # cgroup v1 only: not read
    assert cpu_quota(str(proc), str(root)) is None


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


def _engine_rest(ample: bool, backlog: float = 0.0) -> float:
    """Seconds the engine gave to the capture over takes each followed by 20 ms of folding."""
    live = _BusyLive()
    live.backlog = lambda: backlog
    cap = Capture(live, poll_ms=1, yield_s=0, duty=0.1, spare=_Fixed(ample)).start()
    try:
        while not cap.busy:
            time.sleep(0.001)
        for _ in range(5):
            cap.take(100, 0.1)
            time.sleep(0.02)                # the engine's folding
    finally:
        cap.stop()
    return cap.yielded_s


def test_the_engine_rests_for_its_duty_unless_a_cpu_is_spare_and_the_capture_keeps_up():
    assert _engine_rest(ample=False) >= 4 * 0.02 * 9 * 0.9     # ~0.18 s after each take but the first
    assert _engine_rest(ample=True) == 0.0
    # a capture falling behind (waiting for the interpreter lock looks idle to the kernel)
    assert _engine_rest(ample=True, backlog=0.01) >= 4 * 0.02 * 9 * 0.9
