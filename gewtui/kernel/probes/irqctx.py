"""irqctx unit: the per-CPU softirq flag that tells process context from softirq context.

It emits no records; every other unit depends on it for true attribution (see
bpf/irqctx.c for why tracepoint common_flags cannot be used).
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
        Program("gew_softirq_entry", "irq", "softirq_entry"),
        Program("gew_softirq_exit", "irq", "softirq_exit"),
    ),
    tracepoints=(
        TracepointNeed("irq", "softirq_entry", (("vec", 4),)),
        TracepointNeed("irq", "softirq_exit", (("vec", 4),)),
    ),
)
