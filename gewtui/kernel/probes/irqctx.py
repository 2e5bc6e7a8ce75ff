"""irqctx unit: the per-CPU softirq flag that tells process context from softirq context.

It emits no records; every other unit depends on it for true attribution (see
bpf/irqctx.c for why tracepoint common_flags cannot be used, and why it attaches raw).
"""
from __future__ import annotations

from gewtui.kernel.probes.base import Program, ProbeUnit
from gewtui.runtime.capabilities import TracepointNeed

UNIT = ProbeUnit(
    name="irqctx",
    probe_id=0,
    source="irqctx.c",
    summary="softirq context tracker: tells trustworthy (process) from interrupted tasks",
    programs=(
        Program("gew_softirq_entry", "irq", "softirq_entry", raw=True),
        Program("gew_softirq_exit", "irq", "softirq_exit", raw=True),
    ),
    # raw: skipped only when the program nests in itself, never because another unit's
    # program is running on the CPU (see bpf/irqctx.c)
    tracepoints=(
        TracepointNeed("irq", "softirq_entry", raw=True, raw_args=("unsigned int",)),
        TracepointNeed("irq", "softirq_exit", raw=True, raw_args=("unsigned int",)),
    ),
)
