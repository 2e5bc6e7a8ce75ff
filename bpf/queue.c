/* queue — per-qdisc counters, kept in the kernel and summarised by userspace.
 *
 * Tracepoints, all attached raw: qdisc:qdisc_enqueue (5.x; args struct Qdisc *, const
 * struct netdev_queue *, struct sk_buff *), qdisc:qdisc_dequeue (5.x; args struct Qdisc *,
 * const struct netdev_queue *, int packets, struct sk_buff *), qdisc:qdisc_destroy (6.x;
 * struct Qdisc *). Handle, parent and the interface index (of txq->dev, as the formats
 * report them) are read at BTF offsets, only when a CPU first sees a qdisc. Raw, because a
 * perf-event tracepoint program is skipped whenever another kprobe or tracepoint program
 * runs on the CPU; a raw one only when it nests in itself.
 * qdisc_enqueue fires only on successful enqueues; packets dropped at enqueue show up in
 * skb:kfree_skb with a QDISC_* reason (drops unit) and in the qdisc's own qstats, which
 * are copied here at each dequeue. Per packet: one per-CPU hash lookup and an increment.
 * A qdisc is classified once per CPU (namespace of its device, interface scope) when
 * first seen; no packet is attributed to a flow here: the evidence is per interface.
 */
#define GEW_PROBE_QUEUE 6
#define GEW_K_QDISC_GONE 11
#ifndef GEW_MAX_QDISCS
#define GEW_MAX_QDISCS 1024
#endif

struct gew_qstat {
    u64 enqueued;
    u64 dequeued;
    u64 last_ns;
    u32 ifindex;
    u32 handle;
    u32 parent;
    u32 netns;
    u32 qlen;          /* struct gnet_stats_queue, copied at dequeue */
    u32 backlog;
    u32 drops;
    u32 requeues;
    u32 overlimits;
    u8 init;
    u8 in_scope;
    u8 pad[2];
    char kind[16];
    char ifname[16];
    u32 base[5];       /* qstats when this CPU first saw the qdisc: window baseline */
    u32 pad2;
};                     /* 120 */

struct gew_rec_qgone {
    struct gew_hdr h;
    u64 qdisc;
};                     /* 64 */

BPF_PERCPU_HASH(gew_qdiscs, u64, struct gew_qstat, GEW_MAX_QDISCS);

static __always_inline struct gew_qstat *gew_qdisc(void *q, void *txq)
{
    u64 key = (u64)q;
    struct gew_qstat *v = gew_qdiscs.lookup(&key);
    if (v && v->init)
        return v;
    /* first sight on this CPU: per-CPU maps give other CPUs a zeroed copy */
    struct gew_qstat n = {};
    n.init = 1;
    void *txdev = 0;
    if (txq)
        bpf_probe_read_kernel(&txdev, sizeof(txdev), txq + GEW_OFF_NETDEV_QUEUE_DEV);
    if (txdev)
        bpf_probe_read_kernel(&n.ifindex, sizeof(n.ifindex), txdev + GEW_OFF_NETDEV_IFINDEX);
    bpf_probe_read_kernel(&n.handle, sizeof(n.handle), q + GEW_OFF_QDISC_HANDLE);
    bpf_probe_read_kernel(&n.parent, sizeof(n.parent), q + GEW_OFF_QDISC_PARENT);
    s32 ifindex = n.ifindex;
    void *dq = 0, *dev = 0, *ops = 0;
    bpf_probe_read_kernel(&dq, sizeof(dq), q + GEW_OFF_QDISC_DEV_QUEUE);
    if (dq)
        bpf_probe_read_kernel(&dev, sizeof(dev), dq + GEW_OFF_NETDEV_QUEUE_DEV);
    n.netns = gew_dev_netns(dev);
    if (dev)
        bpf_probe_read_kernel(n.ifname, sizeof(n.ifname), dev + GEW_OFF_NETDEV_NAME);
    bpf_probe_read_kernel(&ops, sizeof(ops), q + GEW_OFF_QDISC_OPS);
    if (ops)
        bpf_probe_read_kernel(n.kind, sizeof(n.kind), ops + GEW_OFF_QDISC_OPS_ID);
    n.in_scope = gew_iface_in_scope(n.netns, ifindex, GEW_PROBE_QUEUE);
    if (n.in_scope) {
        bpf_probe_read_kernel(n.base, sizeof(n.base), q + GEW_OFF_QDISC_QSTATS);
        __builtin_memcpy(&n.qlen, n.base, sizeof(n.base));
    }
    if (v) {
        __builtin_memcpy(v, &n, sizeof(n));
        return v;
    }
    if (gew_qdiscs.update(&key, &n) != 0) {
        if (n.in_scope)
            gew_count(GEW_PROBE_QUEUE, GEW_C_MAPFULL);
        return 0;
    }
    return gew_qdiscs.lookup(&key);
}

int gew_qdisc_enqueue(struct bpf_raw_tracepoint_args *ctx)
{
    struct gew_qstat *v = gew_qdisc((void *)ctx->args[0], (void *)ctx->args[1]);
    if (!v || !v->in_scope)
        return 0;
    v->enqueued += 1;
    return 0;
}

int gew_qdisc_dequeue(struct bpf_raw_tracepoint_args *ctx)
{
    void *q = (void *)ctx->args[0];
    if (!ctx->args[3])     /* no skb: nothing dequeued */
        return 0;
    struct gew_qstat *v = gew_qdisc(q, (void *)ctx->args[1]);
    if (!v || !v->in_scope)
        return 0;
    v->dequeued += (s32)ctx->args[2];
    v->last_ns = bpf_ktime_get_ns();
    bpf_probe_read_kernel(&v->qlen, 20, q + GEW_OFF_QDISC_QSTATS);
    return 0;
}

/* A destroyed qdisc's address may be reused: tell userspace, which takes the last
 * summary from the table and removes the entry. */
int gew_qdisc_destroy(struct bpf_raw_tracepoint_args *ctx)
{
    u64 key = ctx->args[0];
    struct gew_qstat *v = gew_qdiscs.lookup(&key);
    if (!v)
        return 0;
    if (v->init && !v->in_scope) {
        /* out of scope: nothing counted, nothing to report */
        gew_qdiscs.delete(&key);
        return 0;
    }
    struct gew_rec_qgone *r;
    r = gew_begin(sizeof(*r), GEW_K_QDISC_GONE, GEW_PROBE_QUEUE);
    if (!r)
        return 0;
    r->qdisc = key;
    gew_submit(r, GEW_PROBE_QUEUE);
    return 0;
}
