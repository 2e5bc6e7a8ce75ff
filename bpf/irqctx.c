/* irqctx — execution-context tracker (attribution), the fallback of gew_ctx().
 *
 * gew_ctx() in gew_common.h reads the CPU's preempt count when the kernel's BTF shows
 * where it lies (gewtui/kernel/probes/irqctx.py: context_source), and then these programs
 * are neither loaded nor attached. Otherwise (PREEMPT_RT, or no per-CPU __preempt_count
 * and no thread_info.preempt_count to find) they keep the context themselves:
 *
 * Tracepoints: irq:softirq_entry, irq:softirq_exit (Linux 2.6.37), attached raw
 * (args: unsigned int vec_nr). Keeps one per-CPU flag: set while a softirq handler runs.
 * The other units read it to decide whether the current task is the one acting (process
 * context) or just whoever was interrupted (softirq), because tracepoint records'
 * common_flags are not readable from BPF. Softirqs do not nest on one CPU, so a flag (not
 * a depth) is exact; hardirq context is not tracked because none of the probed
 * tracepoints fire there.
 * Raw, not perf-event tracepoints: a perf tracepoint program is skipped whenever any
 * kprobe/tracepoint program is running on the CPU (a softirq arriving while a
 * process-context probe runs), which would leave the flag wrong for the raw programs of
 * that softirq. A raw program is skipped only if it nests in itself, which a softirq
 * handler cannot.
 */
int gew_softirq_entry(struct bpf_raw_tracepoint_args *ctx)
{
    u32 z = 0;
    u32 *v = gew_irqctx.lookup(&z);
    if (v)
        *v = 1;
    return 0;
}

int gew_softirq_exit(struct bpf_raw_tracepoint_args *ctx)
{
    u32 z = 0;
    u32 *v = gew_irqctx.lookup(&z);
    if (v)
        *v = 0;
    return 0;
}
