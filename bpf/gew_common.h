/* gew_common.h — shared by every probe unit of one session's BPF object.
 *
 * The plane concatenates this header with the enabled units' .c files and compiles them
 * with bcc as one object: one ring buffer, one set of scope maps, one socket table.
 * Struct offsets (GEW_OFF_*) come from the running kernel's BTF via -D flags, never from
 * the kernel headers on disk (they may belong to another kernel version). Tunables come
 * as -D flags too (GEW_RB_PAGES, GEW_WAKE_EVERY, GEW_MAX_SOCKS, ...).
 *
 * Record layout: every record starts with struct gew_hdr; the Python decoders in
 * gewtui/kernel/probes/ mirror each layout with struct.Struct and tests pin the sizes.
 */
#ifndef GEW_RB_PAGES
#define GEW_RB_PAGES 256
#endif
#ifndef GEW_WAKE_EVERY
#define GEW_WAKE_EVERY 32
#endif
#ifndef GEW_MAX_SOCKS
#define GEW_MAX_SOCKS 16384
#endif
#ifndef GEW_MAX_OUT_SOCKS
#define GEW_MAX_OUT_SOCKS 65536
#endif

#define GEW_AF_INET 2
#define GEW_AF_INET6 10
#define GEW_IPPROTO_TCP 6
#define GEW_IPPROTO_UDP 17

/* Execution context of the event (the irqctx unit, gewtui/kernel/probes/irqctx.py). Tracepoint
 * records carry common_flags, but the kernel overwrites the first 8 bytes of the record with
 * a pt_regs pointer before a BPF program sees it (and the verifier refuses reads there), so
 * the context is read from the CPU's preempt count instead (or, on kernels where that cannot
 * be found, tracked from irq:softirq_entry/exit). */
#define GEW_CTX_PROCESS 0
#define GEW_CTX_SOFTIRQ 1
#define GEW_CTX_UNKNOWN 2
/* preempt_count() bits (include/linux/preempt.h): serving a softirq, hardirq, NMI. Bits
 * 9-15 only count local_bh_disable() in process context, which is still process context. */
#define GEW_PC_SOFTIRQ_OFFSET 0x100
#define GEW_PC_HARDIRQ_MASK 0xf0000
#define GEW_PC_NMI_MASK 0xf00000

/* Per-probe kernel-side counters, per CPU: index = probe * GEW_C_STRIDE + counter. */
#define GEW_C_PRODUCED 0   /* records the probe tried to emit (reserve attempts) */
#define GEW_C_LOST 1       /* ring buffer reserve failures */
#define GEW_C_MAPFULL 2    /* in-scope state the probe could not store (map full) */
#define GEW_C_NONETNS 3    /* events dropped by a netns scope because their netns was unknowable */
#define GEW_C_RESCUED 4    /* records the ring buffer refused at first and kept anyway (gew_reserve) */
#define GEW_C_RACED 5      /* lifecycle items lost or handed over twice while CPUs raced on one entry */
#define GEW_C_STRIDE 6
#define GEW_NPROBES 8

struct gew_hdr {
    u64 ktime_ns;
    u16 kind;
    u8 ctx;
    u8 probe;
    u32 cpu;
    u32 pid;           /* task fields: process context only, zero otherwise */
    u32 tgid;
    u32 uid;
    u32 netns;         /* the task's network namespace (process context only) */
    u64 cgroup;
    char comm[16];
};                     /* 56 bytes */

struct gew_tuple {
    u8 saddr[16];
    u8 daddr[16];
    u16 sport;         /* host order */
    u16 dport;
    u16 family;
    u8 protocol;
    u8 pad;
};                     /* 40 bytes */

/* log2 buckets of the srtt histogram in struct gew_sock: bucket i counts segments whose
 * smoothed RTT was in [2^i, 2^(i+1)) us, the last one everything above */
#define GEW_SRTT_BUCKETS 24

/* One in-scope TCP socket. tcp_probe keeps its per-segment counters here (lookups only on
 * the hot path); userspace reads the table for periodic summaries, and every record that
 * copies the entry (destroy, lifecycle close, zero-window) carries them, the srtt
 * histogram included. */
struct gew_sock {
    struct gew_tuple t;
    u32 netns;
    u32 owner_tgid;    /* last process-context task seen acting on the socket */
    u64 cookie;
    u64 first_ns;
    u64 last_ns;
    u64 segments;
    u64 bytes;
    u64 zw_segments;
    u32 snd_cwnd;
    u32 ssthresh;
    u32 snd_wnd;
    u32 rcv_wnd;
    u32 min_snd_wnd;
    u32 srtt_us;
    u32 max_srtt_us;
    u8 zw_now;
    u8 state;
    u8 pad[2];
    u32 srtt_hist[GEW_SRTT_BUCKETS];   /* segments by srtt, log2 buckets (tcp_probe) */
    u64 last_tick;     /* kernel only: jiffies when last_ns was taken (tcp_probe) */
};                     /* 232 bytes */

struct gew_scope_cfg {
    u32 netns_on;
    u32 prefix_on;
    u32 port_on;
    u32 iface_on;
};

struct gew_lpm_key {
    u32 prefixlen;     /* 8 (family byte) + prefix length */
    u8 family;
    u8 addr[16];
    u8 pad[3];
};

struct gew_iface_key {
    u32 netns;
    u32 ifindex;
};

/* The owner unit's per-CPU memory of the last (socket, process) it checked; valid while
 * gew_sock_gen has not moved since (see gew_sock_gen_bump). */
struct gew_owner_last {
    u64 sk;
    u32 tgid;
    u32 gen;
};

BPF_RINGBUF_OUTPUT(gew_rb, GEW_RB_PAGES);
/* Where a record goes when gew_rb refuses it (gew_reserve): a 64th of gew_rb, at most
 * 1 MiB (gewtui/kernel/plane.py sets it). */
#ifndef GEW_RESCUE_PAGES
#define GEW_RESCUE_PAGES 256
#endif
BPF_RINGBUF_OUTPUT(gew_rb_rescue, GEW_RESCUE_PAGES);
BPF_PERCPU_ARRAY(gew_counters, u64, GEW_NPROBES * GEW_C_STRIDE);
BPF_PERCPU_ARRAY(gew_irqctx, u32, 1);
/* Runs of the programs the kernel does not count when it skips them: each counts its own
 * runs per CPU, and userspace holds that against the tracepoint's own hit counter (a perf
 * counting event, gewtui/kernel/witness.py). On 6.18 a raw tracepoint program was seen not
 * to run for bursts of skb:kfree_skb events in softirq with recursion_misses still 0. The
 * counter costs each hit a few hundred ns, so only the drop program has one. */
#define GEW_W_KFREE_SKB 0
#define GEW_NWITNESS 1
BPF_PERCPU_ARRAY(gew_witness, u64, GEW_NWITNESS);
/* Generation of what the kernel side concluded about sockets: moves whenever a socket enters
 * or leaves the in-scope table or changes owner, and when userspace resets the tables. */
BPF_ARRAY(gew_sock_gen, u32, 1);
/* Set by userspace while records come slowly (gewtui/kernel/transport.py, WakePolicy): no
 * record forces a wakeup, the consumer's poll slice collects them. A forced wakeup costs a
 * workload that keeps both CPUs busy far more than the consumer's work. */
BPF_ARRAY(gew_wake_quiet, u32, 1);
BPF_PERCPU_ARRAY(gew_owner_last, struct gew_owner_last, 1);
BPF_ARRAY(gew_scope_cfg, struct gew_scope_cfg, 1);
BPF_HASH(gew_scope_netns, u32, u8, 1024);
BPF_LPM_TRIE(gew_scope_prefix, struct gew_lpm_key, u8, 1024);
BPF_HASH(gew_scope_ports, u16, u8, 1024);
BPF_HASH(gew_scope_ifaces, struct gew_iface_key, u8, 1024);
BPF_HASH(gew_socks, u64, struct gew_sock, GEW_MAX_SOCKS);
/* Sockets judged out of scope; LRU, so losing one only costs a re-classification. */
BPF_TABLE("lru_hash", u64, u8, gew_out_socks, GEW_MAX_OUT_SOCKS);

static __always_inline void gew_count_n(u32 probe, u32 counter, u64 n)
{
    u32 idx = probe * GEW_C_STRIDE + counter;
    u64 *v = gew_counters.lookup(&idx);
    if (v)
        *v += n;
}

static __always_inline void gew_count(u32 probe, u32 counter)
{
    gew_count_n(probe, counter, 1);
}

/* One run of a witnessed program on this CPU (no atomics: per CPU, and a program never
 * runs nested in itself). */
static __always_inline void gew_witness_run(u32 slot)
{
    u64 *v = gew_witness.lookup(&slot);
    if (v)
        *v += 1;
}

/* The execution context, asked only where a record is made (never per packet). Three ways,
 * chosen by the irqctx unit from the kernel's BTF:
 * - GEW_CTX_PCPU_FROM_RQ (x86: preempt_count is the per-CPU __preempt_count): this CPU's
 *   per-CPU area is found through the current task's runqueue (task->se.cfs_rq->rq is this
 *   CPU's runqueues instance: set_task_rq() keeps it on the task's CPU whatever its class),
 *   and __preempt_count lies at a fixed distance from it (both are per-CPU variables, their
 *   distance read from BTF's .data..percpu). Where cpu_number follows __preempt_count, the
 *   same read returns it and it must equal this CPU, or the context is unknown.
 * - GEW_CTX_TI_PREEMPT (arm64 and others: preempt_count in struct thread_info): one read
 *   from the current task.
 * - neither: the per-CPU flag the irqctx tracker programs set at softirq_entry and clear
 *   at softirq_exit (two program runs per softirq). */
static __always_inline u8 gew_ctx(void)
{
#if defined(GEW_CTX_PCPU_FROM_RQ) || defined(GEW_CTX_TI_PREEMPT)
    void *task = (void *)bpf_get_current_task();
    struct {
        u32 count;
        u32 cpu;
    } pc = {};
#if defined(GEW_CTX_PCPU_FROM_RQ)
    void *cfs_rq = 0, *rq = 0;
    bpf_probe_read_kernel(&cfs_rq, sizeof(cfs_rq), task + GEW_CTX_OFF_TASK_CFS_RQ);
    if (!cfs_rq)
        return GEW_CTX_UNKNOWN;
    bpf_probe_read_kernel(&rq, sizeof(rq), cfs_rq + GEW_CTX_OFF_CFS_RQ_RQ);
    if (!rq)
        return GEW_CTX_UNKNOWN;
#ifdef GEW_CTX_PCPU_CPU_CHECK
    if (bpf_probe_read_kernel(&pc, 8, rq + GEW_CTX_PCPU_FROM_RQ) != 0)
        return GEW_CTX_UNKNOWN;
    if (pc.cpu != bpf_get_smp_processor_id())
        return GEW_CTX_UNKNOWN;
#else
    if (bpf_probe_read_kernel(&pc.count, 4, rq + GEW_CTX_PCPU_FROM_RQ) != 0)
        return GEW_CTX_UNKNOWN;
#endif
#else
    if (bpf_probe_read_kernel(&pc.count, 4, task + GEW_CTX_TI_PREEMPT) != 0)
        return GEW_CTX_UNKNOWN;
#endif
    if (pc.count & (GEW_PC_SOFTIRQ_OFFSET | GEW_PC_HARDIRQ_MASK | GEW_PC_NMI_MASK))
        return GEW_CTX_SOFTIRQ;
    return GEW_CTX_PROCESS;
#else
    u32 z = 0;
    u32 *v = gew_irqctx.lookup(&z);
    if (!v)
        return GEW_CTX_UNKNOWN;
    return *v ? GEW_CTX_SOFTIRQ : GEW_CTX_PROCESS;
#endif
}

/* Something the owner unit's per-CPU memory may rely on changed (see gew_owner_last). */
static __always_inline void gew_sock_gen_bump(void)
{
    u32 z = 0;
    u32 *g = gew_sock_gen.lookup(&z);
    if (g)
        __sync_fetch_and_add(g, 1);
}

static __always_inline u32 gew_net_inum(void *net)
{
    u32 inum = 0;
    if (net)
        bpf_probe_read_kernel(&inum, sizeof(inum), net + GEW_OFF_NET_INUM);
    return inum;
}

static __always_inline u32 gew_task_netns(void)
{
    void *task = (void *)bpf_get_current_task();
    void *nsproxy = 0, *net = 0;
    bpf_probe_read_kernel(&nsproxy, sizeof(nsproxy), task + GEW_OFF_TASK_NSPROXY);
    if (!nsproxy)
        return 0;
    bpf_probe_read_kernel(&net, sizeof(net), nsproxy + GEW_OFF_NSPROXY_NET_NS);
    return gew_net_inum(net);
}

static __always_inline u32 gew_sock_netns(void *sk)
{
    void *net = 0;
    if (!sk)
        return 0;
    bpf_probe_read_kernel(&net, sizeof(net), sk + GEW_OFF_SOCK_NET);
    return gew_net_inum(net);
}

static __always_inline u32 gew_dev_netns(void *dev)
{
    void *net = 0;
    if (!dev)
        return 0;
    bpf_probe_read_kernel(&net, sizeof(net), dev + GEW_OFF_NETDEV_NET);
    return gew_net_inum(net);
}

/* Fill the header. Every byte of a ring buffer record is written (reserved memory is not
 * zeroed). The task is reported only in process context: in softirq the current task is
 * whoever was interrupted, so the decoder attributes from the socket's owner instead. */
static __always_inline void gew_fill_hdr(struct gew_hdr *h, u16 kind, u8 probe)
{
    __builtin_memset(h, 0, sizeof(*h));
    h->ktime_ns = bpf_ktime_get_ns();
    h->kind = kind;
    h->probe = probe;
    h->cpu = bpf_get_smp_processor_id();
    h->ctx = gew_ctx();
    if (h->ctx == GEW_CTX_PROCESS) {
        u64 pt = bpf_get_current_pid_tgid();
        h->pid = (u32)pt;
        h->tgid = pt >> 32;
        h->uid = (u32)bpf_get_current_uid_gid();
        h->cgroup = bpf_get_current_cgroup_id();
        bpf_get_current_comm(h->comm, sizeof(h->comm));
        h->netns = gew_task_netns();
    }
}

/* Reserve a record: counts the attempt, and the failure if it cannot be kept. Always
 * inlined with a constant size, as the verifier requires.
 * A refusal is not always a full buffer. Since the ring buffer's lock became a resilient
 * spinlock (kernel 6.15+), a reservation gives up at once, with room to spare, while the
 * lock is held in a way the kernel takes for a possible deadlock, and that can last a few
 * hundred microseconds. Measured here on real connection churn: about one record in 30,000
 * refused at the first attempt with the buffer 0.1% full; most are taken on a second
 * attempt, and every one refused twice was taken at once by a second ring buffer with its
 * own lock. So: a second attempt, then gew_rb_rescue; userspace drains both and hands their
 * records over in kernel-time order (gewtui/kernel/transport.py). A record kept that way is
 * counted (GEW_C_RESCUED), never lost; one both buffers refuse is lost. */
static __always_inline void *gew_reserve(u64 size, u32 probe)
{
    gew_count(probe, GEW_C_PRODUCED);
    void *r = gew_rb.ringbuf_reserve(size);
    if (r)
        return r;
    r = gew_rb.ringbuf_reserve(size);
    if (!r)
        r = gew_rb_rescue.ringbuf_reserve(size);
    gew_count(probe, r ? GEW_C_RESCUED : GEW_C_LOST);
    return r;
}

/* Reserve a record and fill its header; 0 when the buffer is full (already counted). */
static __always_inline void *gew_begin(u64 size, u16 kind, u8 probe)
{
    struct gew_hdr *h = gew_reserve(size, probe);
    if (h)
        gew_fill_hdr(h, kind, probe);
    return h;
}

/* Wake the consumer only every GEW_WAKE_EVERY records per CPU and probe, and not at all while
 * userspace says records come slowly (gew_wake_quiet): it drains on its poll slice anyway. */
static __always_inline void gew_submit(void *rec, u32 probe)
{
    u32 idx = probe * GEW_C_STRIDE + GEW_C_PRODUCED;
    u64 *v = gew_counters.lookup(&idx);
    u32 z = 0;
    u32 *quiet = gew_wake_quiet.lookup(&z);
    u64 flags = (v && !(quiet && *quiet) && (*v % GEW_WAKE_EVERY) == 0) ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
    gew_rb.ringbuf_submit(rec, flags);
}

/* ---- scope ------------------------------------------------------------------------ */

static __always_inline struct gew_scope_cfg *gew_cfg(void)
{
    u32 z = 0;
    return gew_scope_cfg.lookup(&z);
}

static __always_inline int gew_prefix_match(u16 family, const u8 *addr)
{
    struct gew_lpm_key k = {};
    if (family == GEW_AF_INET) {
        k.prefixlen = 8 + 32;
        k.family = GEW_AF_INET;
        __builtin_memcpy(k.addr, addr, 4);
    } else if (family == GEW_AF_INET6) {
        k.prefixlen = 8 + 128;
        k.family = GEW_AF_INET6;
        __builtin_memcpy(k.addr, addr, 16);
    } else {
        return 0;
    }
    return gew_scope_prefix.lookup(&k) != 0;
}

static __always_inline int gew_netns_ok(struct gew_scope_cfg *c, u32 netns, u32 probe)
{
    if (!c->netns_on)
        return 1;
    if (!netns) {
        gew_count(probe, GEW_C_NONETNS);
        return 0;
    }
    return gew_scope_netns.lookup(&netns) != 0;
}

/* Kinds combine with AND, values of one kind with OR; an empty kind does not filter. */
static __always_inline int gew_in_scope(u32 netns, struct gew_tuple *t, u32 probe)
{
    struct gew_scope_cfg *c = gew_cfg();
    if (!c)
        return 0;
    if (!gew_netns_ok(c, netns, probe))
        return 0;
    if (c->prefix_on && !(gew_prefix_match(t->family, t->saddr) || gew_prefix_match(t->family, t->daddr)))
        return 0;
    if (c->port_on) {
        u16 sp = t->sport, dp = t->dport;
        if (!gew_scope_ports.lookup(&sp) && !gew_scope_ports.lookup(&dp))
            return 0;
    }
    return 1;
}

static __always_inline int gew_iface_in_scope(u32 netns, u32 ifindex, u32 probe)
{
    struct gew_scope_cfg *c = gew_cfg();
    if (!c)
        return 0;
    if (!gew_netns_ok(c, netns, probe))
        return 0;
    if (c->iface_on) {
        struct gew_iface_key k = {.netns = netns, .ifindex = ifindex};
        if (!gew_scope_ifaces.lookup(&k))
            return 0;
    }
    return 1;
}

/* ---- spans ------------------------------------------------------------------------- */

/* Several fields of one kernel object in one bpf_probe_read_kernel: each read pays a fixed
 * cost (the call and its fault-proofing: about as much as copying 64 bytes) whatever its
 * size, and a route lookup or a state change reads several fields that lie close together.
 * The span [lo, hi) is a compile-time constant from the BTF offsets; the fields are taken
 * from the stack copy. Where BTF places them farther apart than GEW_SPAN_MAX, each is read
 * on its own (the #if around each use). */
#define GEW_SPAN_MAX 64
#define GEW_MIN2(a, b) ((a) < (b) ? (a) : (b))
#define GEW_MAX2(a, b) ((a) > (b) ? (a) : (b))
#define GEW_SPAN_TAKE(dst, buf, lo, off, n) __builtin_memcpy((dst), (buf) + ((off) - (lo)), (n))

/* ---- sockets ------------------------------------------------------------------------ */

/* sock_common's family, ports and IPv4 addresses: one span on every kernel so far */
#define GEW_SKC_LO GEW_MIN2(GEW_MIN2(GEW_OFF_SOCK_FAMILY, GEW_OFF_SOCK_NUM), \
                            GEW_MIN2(GEW_OFF_SOCK_DPORT, GEW_MIN2(GEW_OFF_SOCK_RCV_SADDR, GEW_OFF_SOCK_DADDR)))
#define GEW_SKC_HI GEW_MAX2(GEW_MAX2(GEW_OFF_SOCK_FAMILY + 2, GEW_OFF_SOCK_NUM + 2), \
                            GEW_MAX2(GEW_OFF_SOCK_DPORT + 2, GEW_MAX2(GEW_OFF_SOCK_RCV_SADDR + 4, GEW_OFF_SOCK_DADDR + 4)))

/* Tuple of a full socket read through BTF offsets (for probes whose tracepoint gives only
 * the socket pointer). */
static __always_inline void gew_sock_tuple(void *sk, struct gew_tuple *t)
{
    __builtin_memset(t, 0, sizeof(*t));
    u16 family = 0, num = 0, dport = 0;
#if GEW_SKC_HI - GEW_SKC_LO <= GEW_SPAN_MAX
    u8 skc[GEW_SKC_HI - GEW_SKC_LO] __attribute__((aligned(8))) = {};
    bpf_probe_read_kernel(skc, sizeof(skc), sk + GEW_SKC_LO);
    GEW_SPAN_TAKE(&family, skc, GEW_SKC_LO, GEW_OFF_SOCK_FAMILY, 2);
    GEW_SPAN_TAKE(&num, skc, GEW_SKC_LO, GEW_OFF_SOCK_NUM, 2);
    GEW_SPAN_TAKE(&dport, skc, GEW_SKC_LO, GEW_OFF_SOCK_DPORT, 2);
#else
    bpf_probe_read_kernel(&family, 2, sk + GEW_OFF_SOCK_FAMILY);
    bpf_probe_read_kernel(&num, 2, sk + GEW_OFF_SOCK_NUM);
    bpf_probe_read_kernel(&dport, 2, sk + GEW_OFF_SOCK_DPORT);
#endif
    t->family = family;
    t->sport = num;
    t->dport = bpf_ntohs(dport);
    t->protocol = GEW_IPPROTO_TCP;
    if (family == GEW_AF_INET) {
#if GEW_SKC_HI - GEW_SKC_LO <= GEW_SPAN_MAX
        GEW_SPAN_TAKE(t->saddr, skc, GEW_SKC_LO, GEW_OFF_SOCK_RCV_SADDR, 4);
        GEW_SPAN_TAKE(t->daddr, skc, GEW_SKC_LO, GEW_OFF_SOCK_DADDR, 4);
#else
        bpf_probe_read_kernel(t->saddr, 4, sk + GEW_OFF_SOCK_RCV_SADDR);
        bpf_probe_read_kernel(t->daddr, 4, sk + GEW_OFF_SOCK_DADDR);
#endif
    } else if (family == GEW_AF_INET6) {
        bpf_probe_read_kernel(t->saddr, 16, sk + GEW_OFF_SOCK_V6_RCV_SADDR);
        bpf_probe_read_kernel(t->daddr, 16, sk + GEW_OFF_SOCK_V6_DADDR);
    }
}

/* Tuple of a socket as the TCP tracepoints' formats report it (TP_STORE_ADDR_PORTS:
 * inet_saddr and inet_sport of struct inet_sock, destination from sock_common), for raw
 * tracepoint programs that get only the socket pointer. Needs GEW_OFF_INET_SADDR and
 * GEW_OFF_INET_SPORT (base.INET_TUPLE_BTF). */
#ifdef GEW_OFF_INET_SPORT
#define GEW_INET_LO GEW_MIN2(GEW_OFF_INET_SADDR, GEW_OFF_INET_SPORT)
#define GEW_INET_HI GEW_MAX2(GEW_OFF_INET_SADDR + 4, GEW_OFF_INET_SPORT + 2)
#if GEW_SKC_HI - GEW_SKC_LO <= GEW_SPAN_MAX && GEW_INET_HI - GEW_INET_LO <= GEW_SPAN_MAX
/* two reads, not five: sock_common's span, and inet_sock's source address and port */
static __always_inline void gew_inet_tuple(void *sk, struct gew_tuple *t)
{
    __builtin_memset(t, 0, sizeof(*t));
    u8 skc[GEW_SKC_HI - GEW_SKC_LO] __attribute__((aligned(8))) = {};
    u8 inet[GEW_INET_HI - GEW_INET_LO] __attribute__((aligned(8))) = {};
    u16 family = 0, sport = 0, dport = 0;
    bpf_probe_read_kernel(skc, sizeof(skc), sk + GEW_SKC_LO);
    GEW_SPAN_TAKE(&family, skc, GEW_SKC_LO, GEW_OFF_SOCK_FAMILY, 2);
    GEW_SPAN_TAKE(&dport, skc, GEW_SKC_LO, GEW_OFF_SOCK_DPORT, 2);
    t->family = family;
    t->dport = bpf_ntohs(dport);
    t->protocol = GEW_IPPROTO_TCP;
    if (family == GEW_AF_INET6) {
        bpf_probe_read_kernel(&sport, 2, sk + GEW_OFF_INET_SPORT);
        bpf_probe_read_kernel(t->saddr, 16, sk + GEW_OFF_SOCK_V6_RCV_SADDR);
        bpf_probe_read_kernel(t->daddr, 16, sk + GEW_OFF_SOCK_V6_DADDR);
    } else {
        bpf_probe_read_kernel(inet, sizeof(inet), sk + GEW_INET_LO);
        GEW_SPAN_TAKE(&sport, inet, GEW_INET_LO, GEW_OFF_INET_SPORT, 2);
        GEW_SPAN_TAKE(t->saddr, inet, GEW_INET_LO, GEW_OFF_INET_SADDR, 4);
        GEW_SPAN_TAKE(t->daddr, skc, GEW_SKC_LO, GEW_OFF_SOCK_DADDR, 4);
    }
    t->sport = bpf_ntohs(sport);
}
#else
static __always_inline void gew_inet_tuple(void *sk, struct gew_tuple *t)
{
    __builtin_memset(t, 0, sizeof(*t));
    u16 family = 0, sport = 0, dport = 0;
    bpf_probe_read_kernel(&family, 2, sk + GEW_OFF_SOCK_FAMILY);
    bpf_probe_read_kernel(&sport, 2, sk + GEW_OFF_INET_SPORT);
    bpf_probe_read_kernel(&dport, 2, sk + GEW_OFF_SOCK_DPORT);
    t->family = family;
    t->sport = bpf_ntohs(sport);
    t->dport = bpf_ntohs(dport);
    t->protocol = GEW_IPPROTO_TCP;
    if (family == GEW_AF_INET6) {
        bpf_probe_read_kernel(t->saddr, 16, sk + GEW_OFF_SOCK_V6_RCV_SADDR);
        bpf_probe_read_kernel(t->daddr, 16, sk + GEW_OFF_SOCK_V6_DADDR);
    } else {
        bpf_probe_read_kernel(t->saddr, 4, sk + GEW_OFF_INET_SADDR);
        bpf_probe_read_kernel(t->daddr, 4, sk + GEW_OFF_SOCK_DADDR);
    }
}
#endif
#endif

/* The in-scope entry of a socket, classifying it on first sight. Returns 0 for sockets
 * out of scope (remembered in the LRU so the next packet costs two lookups, not a
 * classification). ``t`` may be 0: the tuple is then read from the socket. */
static __always_inline struct gew_sock *gew_sock_get(void *sk, struct gew_tuple *t, u32 probe)
{
    u64 key = (u64)sk;
    struct gew_sock *s = gew_socks.lookup(&key);
    if (s || !sk)
        return s;
    if (gew_out_socks.lookup(&key))
        return 0;
    struct gew_sock n = {};
    if (t)
        n.t = *t;
    else
        gew_sock_tuple(sk, &n.t);
    n.netns = gew_sock_netns(sk);
    n.min_snd_wnd = 0xffffffff;
    if (!gew_in_scope(n.netns, &n.t, probe)) {
        u8 one = 1;
        gew_out_socks.update(&key, &one);
        return 0;
    }
    if (gew_socks.insert(&key, &n) != 0) {
        s = gew_socks.lookup(&key);   /* another CPU inserted it first */
        if (!s)
            gew_count(probe, GEW_C_MAPFULL);
        return s;
    }
    gew_sock_gen_bump();
    return gew_socks.lookup(&key);
}

/* Remember the task acting on the socket in process context; returns the previous owner
 * tgid when it changed (0 otherwise). */
static __always_inline u32 gew_sock_owner(struct gew_sock *s, struct gew_hdr *h)
{
    if (h->ctx != GEW_CTX_PROCESS || !h->tgid || s->owner_tgid == h->tgid)
        return 0;
    u32 prev = s->owner_tgid;
    s->owner_tgid = h->tgid;
    gew_sock_gen_bump();
    return prev ? prev : 0xffffffff;
}
