"""The session's kernel side alone, as an observer for bench_churn.py: every probe unit
attached with the session's scope and ring buffer, and a consumer that takes each record off
the ring buffer and does nothing else (no decoding, no recording). Not something gew does;
it bounds what userspace work could ever give back: the workload's rate under it is the
most a session's capture could reach on this box.

    python bench/churn_kernel_only.py --netns NAME [--netns NAME ...] [--wake-every N]
        [--poll-slice-ms MS] [--no-drain]

``--wake-every`` and ``--poll-slice-ms`` set how often the consumer is woken (the plane's
defaults otherwise); ``--always-wake`` keeps records forcing wakeups while they come slowly; ``--no-drain`` leaves the programs attached and never reads the ring
(what the programs alone cost; records pile up and, past the buffer, are lost);
``--no-witness`` opens no perf counters on the witnessed tracepoints;
``--ring-mib`` sizes the ring buffer (``--no-drain`` needs one that holds a whole run);
``--empty-programs`` attaches, on each tracepoint the session's programs use, a program that
returns at once and nothing else (no maps, no ring buffer): what attaching at all costs.

Prints ``ready`` once attached; a line on stdin stops it, and it prints one JSON object:
records taken, records the kernel lost, records the second ring buffer kept.
"""
from __future__ import annotations

import argparse
import json
import mmap
import os
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--netns", required=True, action="append", help="a named network namespace (ip netns)")
    ap.add_argument("--wake-every", type=int, default=0, help="records per CPU and probe between wakeups")
    ap.add_argument("--poll-slice-ms", type=int, default=0, help="longest wait before draining unwoken records")
    ap.add_argument("--no-drain", action="store_true", help="never read the ring buffer")
    ap.add_argument("--no-witness", action="store_true",
                    help="no perf counters on the witnessed tracepoints (what they cost)")
    ap.add_argument("--always-wake", action="store_true",
                    help="records force wakeups however slowly they come (no quiet spells)")
    ap.add_argument("--ring-mib", type=int, default=0,
                    help="the ring buffer's size in MiB, a power of two (a live session's 64 otherwise)")
    ap.add_argument("--empty-programs", action="store_true",
                    help="programs that return at once on the session's tracepoints, nothing else")
    a = ap.parse_args()
    if a.empty_programs:
        return empty_programs()
    from gewtui.kernel.plane import KernelPlane, PlaneConfig
    from gewtui.kernel.plane_contract import ScopeFilter
    from gewtui.kernel.probes import DEFAULT
    from gewtui.kernel.transport import read_counters

    inodes = tuple(os.stat(f"/run/netns/{n}").st_ino for n in a.netns)
    from gewtui.kernel.live import RINGBUF_PAGES

    # the ring buffer a live session has (64 MiB)
    cfg = PlaneConfig(ringbuf_pages=(a.ring_mib << 20) // mmap.PAGESIZE if a.ring_mib else RINGBUF_PAGES)
    if a.wake_every:
        cfg.wake_every = a.wake_every
    if a.poll_slice_ms:
        cfg.poll_slice_ms = a.poll_slice_ms
    if a.always_wake:
        cfg.quiet_below = 0
    if a.no_witness:
        cfg.witness = False
    plane = KernelPlane(DEFAULT, cfg, on_event=lambda ev: None)
    taken = [0]

    def take(data: bytes) -> int:
        taken[0] += 1
        plane.decoder.consumed += 1     # the plane's wakeup policy counts records by it
        return 0

    try:
        plane.stage()
        plane.verify()
        plane.set_scope(ScopeFilter(netns_inodes=inodes))
        plane.decoder.record = take
        plane.attach()
        stop = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
        print("ready", flush=True)
        if a.no_drain:
            stop.wait()
        while not stop.is_set():
            plane.poll(50)
        counters = read_counters(plane.bpf)
        lost, rescued = counters.total_lost, sum(counters.rescued.values())
        made = counters.total_produced
    finally:
        plane.close()
    # (never drained: the records made and left on the ring, which closing the plane reads)
    print(json.dumps({"records": made if a.no_drain else taken[0], "lost": lost, "rescued": rescued,
                      "quiet_at_end": plane._wake.quiet}),
          flush=True)
    return 0


def empty_programs() -> int:
    """A raw-tracepoint program returning 0 on every tracepoint the session's programs
    attach to on this kernel (the units a staged plane chose, and their programs), so the
    cost of the tracepoints' dispatch alone can be set beside that of gew's programs. (Where
    the plane attaches a BTF-typed program, this attaches a raw one: the dispatch is the
    tracepoint's either way.)"""
    from bcc import BPF

    from gewtui.kernel.plane import KernelPlane, PlaneConfig
    from gewtui.kernel.probes import DEFAULT

    plane = KernelPlane(DEFAULT, PlaneConfig(), on_event=lambda ev: None)
    try:
        plane.stage()
        points = sorted({p.name for u in plane._units for p in plane._programs(u)})
    finally:
        plane.close()
    b = BPF(text="\n".join(f"int gew_empty_{i}(void *ctx) {{ return 0; }}" for i in range(len(points))))
    try:
        for i, tp in enumerate(points):
            b.attach_raw_tracepoint(tp=tp.encode(), fn_name=f"gew_empty_{i}".encode())
        print("ready", flush=True)
        sys.stdin.readline()
    finally:
        b.cleanup()
    print(json.dumps({"records": 0, "lost": 0, "rescued": 0, "tracepoints": points}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
