"""Event flood with the consumer stopped (issue 7 case 8), on the real kernel plane.

`gew session apply` with a small ring buffer is SIGSTOPped while connection churn runs in a
test namespace, then continued. "Nothing lost" means the accounting is exact: the kernel's
own counters, read by this test from the session's pinned map with bpf(2), equal what the
recording holds: produced = consumed + lost, per probe unit the events recorded plus the
records lost equal what it produced, every loss is a LostRecords record with its window;
the session ends incomplete, and the TUI, replaying the recording, shows the loss.
"""
from __future__ import annotations

import ctypes
import os
import signal
import struct
import time

import pytest

from gewtui.kernel.probes import UNITS
from gewtui.kernel.probes.base import C_LOST, C_PRODUCED, C_STRIDE, NPROBES
from tests.conftest import _bpf
from tests.faults.kernel_support import (apply_session, attached, ended, events_of, read_records, refused_connects,
                                         stopped_safe, wait_stderr)

pytestmark = pytest.mark.root


def _possible_cpus() -> int:
    """The kernel sizes per-CPU map values by possible CPUs ("0-3", "0,2-5", ...)."""
    n = 0
    for part in open("/sys/devices/system/cpu/possible").read().strip().split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def read_pinned_counters(path: str) -> dict[int, tuple[int, dict[int, int]]]:
    """The kernel's own per-probe counters, read by this test from the session's pinned
    gew_counters map with bpf(2) (BPF_OBJ_GET, BPF_MAP_LOOKUP_ELEM), not through gew:
    {probe id: (produced, {cpu: lost})}."""
    p = ctypes.create_string_buffer(path.encode())
    fd = _bpf(7, struct.pack("=QII", ctypes.addressof(p), 0, 0))
    ncpu = _possible_cpus()
    out: dict[int, tuple[int, dict[int, int]]] = {}
    try:
        def per_cpu(idx: int) -> list[int]:
            key = ctypes.create_string_buffer(struct.pack("=I", idx))
            val = ctypes.create_string_buffer(8 * ncpu)
            _bpf(1, struct.pack("=IIQQQ", fd, 0, ctypes.addressof(key), ctypes.addressof(val), 0))
            return list(struct.unpack(f"={ncpu}Q", val.raw))

        for probe in range(NPROBES):
            produced = sum(per_cpu(probe * C_STRIDE + C_PRODUCED))
            lost = {cpu: n for cpu, n in enumerate(per_cpu(probe * C_STRIDE + C_LOST)) if n}
            if produced or lost:
                out[probe] = (produced, lost)
    finally:
        os.close(fd)
    return out



# -- case 8: event flood with the consumer stopped -------------------------------------------
# Each record of these units decodes to exactly one event of these kinds (a destroy's final
# tcp_probe summary and a listen overflow's rcvq_full companion are other kinds); the route,
# queue and tcp_probe units also emit summaries read from maps, so they are checked in total.
# Units whose every record is one event. tcp_state's lifecycle records carry a socket's
# transitions, owner changes and destroy together (a record, several events): they are
# counted with the others, and each of them made at least one event.
ONE_TO_ONE = {"tcp_events": ("retransmit", "reset"), "drops": ("skb_drop",)}
LIFECYCLE = ("tcp_state", "destroy", "cong_state", "owner")



def test_case08_event_flood_with_consumer_stopped_is_counted_exactly(lo_ns, gew_instance, tmp_path):
    ns = lo_ns
    rec = str(tmp_path / "flood.gewrec")
    p = apply_session(gew_instance, [f"netns={ns}"], rec, "--ringbuf-pages", "4")
    with stopped_safe(p):
        sid = attached(p)
        [entry] = gew_instance.sessions()
        counters = next(x for x in entry.manifest.pins if x.endswith("/gew_counters"))
        assert refused_connects(ns, 30) == 30           # consumed normally
        time.sleep(0.5)
        p.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "T":
            assert time.monotonic() < deadline, "the consumer did not stop"
            time.sleep(0.01)
        made = refused_connects(ns, 3000)
        time.sleep(0.2)
        kernel = read_pinned_counters(counters)           # the consumer is still stopped
        p.send_signal(signal.SIGCONT)
        wait_stderr(p, "INCOMPLETE", timeout=10)          # the live status line says so
        p.send_signal(signal.SIGTERM)
        err = ended(p)
    assert p.returncode == 0, err
    assert f"session {sid} ended (sigterm)" in err and "observation INCOMPLETE" in err

    produced_k = sum(v[0] for v in kernel.values())
    lost_k = {(probe, cpu): n for probe, (_, lost) in kernel.items() for cpu, n in lost.items()}
    print(f"flood: {made} connects while stopped; kernel produced {produced_k}, lost {sum(lost_k.values())}")
    assert made >= 500 and sum(lost_k.values()) > 0, "a 16 KiB ring must overflow while nobody reads it"

    recs = read_records(rec)
    events = events_of(recs)
    end = recs[-1].end
    assert end.how == "sigterm"
    st = end.stats
    # every gap is a record: LostRecords per probe and CPU, with the window it covers
    lost_evs = [e for e in events if e.WhichOneof("body") == "lost"]
    ring_lost = [e.lost for e in lost_evs if e.lost.stage == "ringbuf-reserve"]
    assert [e.lost.stage for e in lost_evs if e.lost.stage != "ringbuf-reserve"] == []
    names = {u.probe_id: u.name for u in UNITS}
    by_probe_cpu: dict[tuple[int, int], int] = {}
    inv = {v: k for k, v in names.items()}
    for x in ring_lost:
        assert x.count > 0 and 0 < x.window_start_ns < x.window_end_ns
        by_probe_cpu[(inv[x.probe], x.cpu)] = by_probe_cpu.get((inv[x.probe], x.cpu), 0) + x.count
    assert by_probe_cpu == lost_k, "LostRecords in the recording differ from the kernel's counters"
    # nothing was produced after the flood: the final stats are the kernel counters read above
    lost_total = sum(lost_k.values())
    assert st.produced == produced_k and st.lost_records == lost_total
    # produced = recorded + lost, exactly
    assert st.produced == st.consumed + lost_total, (st.produced, st.consumed, lost_total)
    kinds: dict[str, int] = {}
    for e in events:
        kinds[e.WhichOneof("body")] = kinds.get(e.WhichOneof("body"), 0) + 1
    recorded_1to1 = 0
    for unit, ks in ONE_TO_ONE.items():
        pid = inv[unit]
        produced_u = kernel.get(pid, (0, {}))[0]
        lost_u = sum(kernel.get(pid, (0, {}))[1].values())
        recorded_u = sum(kinds.get(k, 0) for k in ks)
        assert produced_u == recorded_u + lost_u, (unit, produced_u, recorded_u, lost_u)
        recorded_1to1 += recorded_u
    assert kernel[inv["tcp_state"]][0] >= 2 * made           # SYN_SENT at once, then the rest at close
    state_consumed = kernel[inv["tcp_state"]][0] - sum(kernel[inv["tcp_state"]][1].values())
    assert sum(kinds.get(k, 0) for k in LIFECYCLE) >= state_consumed
    # the rest of the records (route lookups) are the consumed ones not accounted above
    others = sum(v[0] - sum(v[1].values()) for k, v in kernel.items() if names[k] not in ONE_TO_ONE)
    assert st.consumed == recorded_1to1 + others
    # every event of the session is in the recording, ids without a gap
    assert [e.id for e in events] == list(range(1, len(events) + 1)) and st.events == len(events)
    # the session is marked incomplete, with the reason
    assert not st.observation_complete and "lost" in st.incomplete_reason
    # and the TUI shows it
    _tui_shows_the_loss(rec, lost_total, [x for x in ring_lost])


def _tui_shows_the_loss(rec: str, lost_total: int, gaps: list) -> None:
    import asyncio

    from gewtui.debugger.core import Debugger
    from gewtui.debugger.sources import ReplaySource
    from gewtui.tui.app import FixedClock, build_app
    from gewtui.tui.widgets.bars import StatusBar
    from gewtui.tui.widgets.panels import FlowView
    from tests.support.tui_driver import command, text_of

    lo = min(g.window_start_ns for g in gaps)
    hi = max(g.window_end_ns for g in gaps)

    async def drive() -> tuple[str, str]:
        app = build_app(Debugger(ReplaySource(rec)), clock=FixedClock(), cursor_blink=False)
        async with app.run_test(size=(160, 50)) as pilot:
            await app.settle()
            v = await command(app, pilot, "goto end")
            assert v.cursor.complete and v.status.lost == lost_total
            status = text_of(app.screen.query_one(StatusBar))
            inside = [f.flow_id for f in v.flows.values() if lo <= f.first_ktime_ns <= hi]
            assert inside, "no flow lived inside the loss window"
            await command(app, pilot, f"flow {inside[0]}")
            return status, text_of(app.screen.query_one(FlowView).query_one("#flow-body"))

    status, flow = asyncio.run(drive())
    assert f"lost {lost_total}" in status, status
    assert "records may be missing between" in flow, flow
