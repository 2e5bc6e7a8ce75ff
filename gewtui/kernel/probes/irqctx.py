"""irqctx unit: tells process context (the current task is the one acting) from softirq
context (the current task was merely interrupted), for true attribution.

It emits no records; every other unit depends on it. Records are made in rare moments
(state changes, owner changes, drops), so the context is asked for only then, by
``gew_ctx()`` in bpf/gew_common.h, in the cheapest way the running kernel's BTF allows
(``context_source``):

- ``percpu`` (x86): the CPU's preempt count is the per-CPU variable ``__preempt_count``;
  this CPU's instance is found from the current task's runqueue (``task->se.cfs_rq->rq``,
  this CPU's ``runqueues``), at the distance between the two variables in BTF's
  ``.data..percpu`` section. When ``cpu_number`` follows it, the same read checks the CPU.
- ``thread_info`` (arm64 and others): ``task->thread_info.preempt_count``.
- ``tracker``: neither can be found (or PREEMPT_RT, where softirqs are not counted in
  the preempt count): a per-CPU flag set at ``irq:softirq_entry`` and cleared at
  ``irq:softirq_exit`` by the two programs below, which then run for every softirq.

See bpf/irqctx.c for why tracepoint common_flags cannot be used, and why the tracker
attaches raw.
"""
from __future__ import annotations

from gewtui.kernel.probes.base import Program, ProbeUnit
from gewtui.runtime.btf import BTFError
from gewtui.runtime.capabilities import TracepointNeed

PERCPU = ".data..percpu"


def context_source(btf) -> tuple[str, dict[str, int]]:
    """How gew_ctx() learns the context on this kernel: ("percpu" | "thread_info" |
    "tracker", the -D flags that select and describe it)."""
    try:
        btf.member("task_struct", "softirq_disable_cnt")
        return "tracker", {}      # PREEMPT_RT: softirq nesting lives in the task, not the count
    except BTFError:
        pass
    try:
        pc, _ = btf.section_var(PERCPU, "__preempt_count")
        rq, _ = btf.section_var(PERCPU, "runqueues")
        flags = {"GEW_CTX_PCPU_FROM_RQ": pc - rq,
                 "GEW_CTX_OFF_TASK_CFS_RQ": btf.member("task_struct", "se.cfs_rq").offset,
                 "GEW_CTX_OFF_CFS_RQ_RQ": btf.member("cfs_rq", "rq").offset}
        try:
            if btf.section_var(PERCPU, "cpu_number")[0] == pc + 4:
                flags["GEW_CTX_PCPU_CPU_CHECK"] = 1
        except BTFError:
            pass
        return "percpu", flags
    except BTFError:
        pass
    try:
        return "thread_info", {"GEW_CTX_TI_PREEMPT": btf.member("task_struct", "thread_info.preempt_count").offset}
    except BTFError:
        return "tracker", {}


def context_flags(btf) -> dict[str, int]:
    return context_source(btf)[1]


def programs_for(btf) -> tuple[Program, ...]:
    """The programs to load and attach on this kernel: the tracker's only when gew_ctx()
    has no cheaper way (two program runs per softirq otherwise spent for nothing)."""
    return UNIT.programs if context_source(btf)[0] == "tracker" else ()


UNIT = ProbeUnit(
    name="irqctx",
    probe_id=0,
    source="irqctx.c",
    summary="execution context (process or softirq): tells trustworthy from interrupted tasks",
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
    btf_flags=context_flags,
    programs_for=programs_for,
)
