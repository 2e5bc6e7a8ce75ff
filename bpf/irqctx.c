/* irqctx — execution-context tracker (attribution).
 *
 * Tracepoints: irq:softirq_entry, irq:softirq_exit (Linux 2.6.37).
 * Keeps one per-CPU flag: set while a softirq handler runs. The other units read it to
 * decide whether the current task is the one acting (process context) or just whoever
 * was interrupted (softirq), because tracepoint records' common_flags are not readable
 * from BPF. Softirqs do not nest on one CPU, so a flag (not a depth) is exact; hardirq
 * context is not tracked because none of the probed tracepoints fire there.
 */
int gew_softirq_entry(struct tracepoint__irq__softirq_entry *args)
{
    u32 z = 0;
    u32 *v = gew_irqctx.lookup(&z);
    if (v)
        *v = 1;
    return 0;
}

int gew_softirq_exit(struct tracepoint__irq__softirq_exit *args)
{
    u32 z = 0;
    u32 *v = gew_irqctx.lookup(&z);
    if (v)
        *v = 0;
    return 0;
}
