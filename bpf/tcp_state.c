/* tcp_state — TCP lifecycle anchors.
 *
 * Tracepoints, attached raw: sock:inet_sock_set_state (4.16; args const struct sock *,
 * int oldstate, int newstate), tcp:tcp_destroy_sock (5.x; struct sock *),
 * tcp:tcp_cong_state_set (6.3; struct sock *, u8 ca_state). Protocol and tuple are read
 * from the socket at BTF offsets as the formats' TP_STORE_ADDR_PORTS reads them. The
 * destroy record's cookie is read, not generated as the format did: 0 when nothing asked
 * the kernel for the socket's cookie. Raw, because a perf-event tracepoint program is
 * skipped whenever another kprobe or tracepoint program runs on the CPU; a raw one only
 * when it nests in itself.
 * Maintains the in-scope socket table (gew_socks): a socket is classified on each state
 * change (a new socket may reuse a freed one's address) and removed when destroyed, each
 * change moving gew_sock_gen (the owner unit's per-CPU memory relies on it). The destroy
 * record carries the socket's final tcp_probe counters.
 * Lifecycle (GEW_LIFECYCLE=1, the default): a socket's state transitions, owner changes
 * (bpf/owner.c) and returns to congestion state Open are kept in the kernel (gew_life, one
 * entry per in-scope socket beside gew_socks), each item with its own time, CPU, context
 * and ports. A life's first item crosses at once (it is what places the socket in a flow);
 * the rest crosses as one K_LIFE record when the socket is destroyed, with the destroy and
 * the final counters: two records for a healthy short connection instead of one per
 * transition. Held items cross earlier, as a non-final K_LIFE record, when the entry is
 * full (GEW_LIFE_ITEMS); when a task other than the one the entry holds acts on the socket,
 * or its addresses change (one task and one address pair per record); before any record
 * about the socket that crosses at once (congestion states other than Open here, resets
 * and retransmits in tcp_events, zero-window edges in tcp_probe, drops and full receive
 * queues in drops: GEW_LIFE_FLUSH, so a socket's events keep the kernel's order); when a
 * new life begins at the address; and when userspace asks (gew_life_asked, run with
 * BPF_PROG_TEST_RUN for entries held longer than a short bound, so long connections show
 * live). An entry that cannot be made
 * (gew_life full) is a map-full loss: the item is not kept and the session is incomplete.
 * Items are numbered per life (seq + index) so the decoder drops one delivered twice.
 * GEW_LIFECYCLE=0 keeps the per-event path: one K_STATE record per transition, one
 * K_DESTROY record, owner records from the owner unit.
 */
#define GEW_PROBE_TCP_STATE 1
#define GEW_K_STATE 1
#define GEW_K_DESTROY 2
#define GEW_K_CONG 3
#define GEW_K_LIFE 14
#ifndef GEW_LIFECYCLE
#define GEW_LIFECYCLE 1
#endif
#ifndef GEW_LIFE_ITEMS
#define GEW_LIFE_ITEMS 8
#endif
#ifndef GEW_MAX_LIFE
#define GEW_MAX_LIFE GEW_MAX_SOCKS
#endif
#ifndef GEW_LIFE_SPIN
#define GEW_LIFE_SPIN 256
#endif
#define GEW_LIFE_STATE 1
#define GEW_LIFE_OWNER 2
#define GEW_LIFE_CONG 3
#define GEW_TCP_CA_OPEN 0
/* why held items crossed */
#define GEW_LIFE_CLOSE 1
#define GEW_LIFE_FULL 2
#define GEW_LIFE_TASK 3
#define GEW_LIFE_ADDRS 4
#define GEW_LIFE_ANOMALY 5
#define GEW_LIFE_ASKED 6
#define GEW_LIFE_NEWLIFE 7
#define GEW_LIFE_FIRST 8
#define GEW_TCP_SYN_RECV 3
#define GEW_TCP_CLOSE 7
#define GEW_TCP_LISTEN 10

struct gew_rec_state {
    struct gew_hdr h;
    struct gew_tuple t;
    u64 sk;
    u32 netns;
    u8 oldstate;
    u8 newstate;
    u8 pad[2];
};                     /* 112 */

struct gew_rec_destroy {
    struct gew_hdr h;
    u64 sk;
    u64 cookie;
    struct gew_sock s;
};                     /* 304 */

struct gew_rec_cong {
    struct gew_hdr h;
    struct gew_tuple t;
    u64 sk;
    u32 netns;
    u8 ca_state;
    u8 pad[3];
};                     /* 112 */

/* One held transition or owner change: what its per-event record's header and body would
 * have carried, less what the entry holds once (task, addresses, namespace). */
struct gew_life_item {
    u64 ktime_ns;
    u32 cpu;
    u32 aux;           /* owner change: the previous owner's tgid */
    u16 sport;
    u16 dport;
    u8 kind;           /* GEW_LIFE_STATE, GEW_LIFE_OWNER, GEW_LIFE_CONG */
    u8 ctx;
    u8 a;              /* state: old state; owner: via; congestion: ca_state */
    u8 b;              /* state: new state */
};                     /* 24 */

/* The task of the entry's process-context items (gew_hdr's task fields). */
struct gew_life_task {
    u32 pid;
    u32 tgid;
    u32 uid;
    u32 netns;
    u64 cgroup;
    char comm[16];
};                     /* 40 */

struct gew_life {
    u32 n;             /* items held */
    u32 seq;           /* items of this socket's life that crossed before items[0] */
    u32 netns;         /* the socket's namespace (gew_sock.netns) */
    u8 has_task;
    u8 pad[3];
    struct gew_life_task task;
    struct gew_tuple t;   /* the latest tuple; items keep their own ports */
    struct gew_life_item items[GEW_LIFE_ITEMS];
    u32 added;         /* items this life ever held, counted atomically (gew_life_end) */
    u32 pad2;
    u64 busy;          /* the entry's lock (gew_life_lock); 2: its socket was destroyed */
};                     /* 304 with 8 items */

struct gew_rec_life {
    struct gew_hdr h;  /* when the items crossed; for a close, the destroy's own header */
    u64 sk;
    u64 cookie;        /* close only */
    u8 final;          /* 1: the socket was destroyed; s holds its final counters */
    u8 why;            /* GEW_LIFE_CLOSE ... */
    u8 pad[6];
    struct gew_life l;
    struct gew_sock s;
};                     /* 616 with 8 items */

#if GEW_LIFECYCLE
#define GEW_LIFE_ON 1
BPF_HASH(gew_life, u64, struct gew_life, GEW_MAX_LIFE);
/* an all-zero entry to insert from (too large for the stack) */
BPF_PERCPU_ARRAY(gew_life_zero, struct gew_life, 1);

/* An entry is changed only under its lock. Tracing programs cannot take a bpf_spin_lock,
 * so a compare-and-swap word stands in, tried GEW_LIFE_SPIN times: an owner change runs in
 * process context after sendmsg/recvmsg has released the socket, and a state change of the
 * same socket can run in softirq on another CPU meanwhile (as can a drop's hand-over, or
 * userspace's, gew_life_asked); the holder is done in well under a microsecond. What cannot
 * wait is a program that interrupted the holder on its own CPU: it gives up, and an item
 * it brought is a counted raced loss (GEW_C_RACED). A destroyed socket's entry stays locked
 * (busy 2), so an item that comes after its destroy copied it is counted, not dropped
 * unseen. */
static __always_inline int gew_life_lock(struct gew_life *l)
{
    for (int i = 0; i < GEW_LIFE_SPIN; i++)
        if (__sync_val_compare_and_swap(&l->busy, 0, 1) == 0)
            return 1;
    return 0;
}

static __always_inline void gew_life_unlock(struct gew_life *l, u64 to)
{
    __sync_lock_test_and_set(&l->busy, to);
}

/* Hand the held items over as one record and start holding anew (under the lock). A
 * record the ring buffer cannot take is counted lost (gew_reserve) with everything it held. */
static __always_inline void gew_life_emit(u64 key, struct gew_life *l, u8 why)
{
    u32 n = l->n;
    if (!n)
        return;
    struct gew_rec_life *r;
    r = gew_begin(sizeof(*r), GEW_K_LIFE, GEW_PROBE_TCP_STATE);
    if (r) {
        r->sk = key;
        r->cookie = 0;
        r->final = 0;
        r->why = why;
        __builtin_memset(r->pad, 0, sizeof(r->pad));
        __builtin_memcpy(&r->l, l, sizeof(r->l));
        __builtin_memset(&r->s, 0, sizeof(r->s));
        gew_submit(r, GEW_PROBE_TCP_STATE);
    }
    l->seq += n;
    l->n = 0;
    l->has_task = 0;
}

/* Before a record about socket ``key`` crosses at once: what the socket holds goes first. */
static __always_inline void gew_life_flush(u64 key)
{
    struct gew_life *l = gew_life.lookup(&key);
    if (l && l->n && gew_life_lock(l)) {
        gew_life_emit(key, l, GEW_LIFE_ANOMALY);
        gew_life_unlock(l, 0);
    }
}
#define GEW_LIFE_FLUSH(key) gew_life_flush(key)

/* A life ends (destroy, or a new life at the address): every item it ever held must have
 * crossed once, ``crossed`` of them (seq + n of what was handed over last). The lock keeps
 * adders apart, but a life's end that could not take it (it interrupted the holder on its
 * own CPU) goes on without it; the add counter is atomic, so an item lost or handed over
 * twice that way shows as a difference, counted (GEW_C_RACED). It is the net difference: a
 * lost item and a duplicated one in the same life cancel out. */
static __always_inline void gew_life_end(struct gew_life *l, u32 crossed)
{
    u32 added = l->added;
    if (added != crossed)
        gew_count_n(GEW_PROBE_TCP_STATE, GEW_C_RACED, added > crossed ? added - crossed : crossed - added);
}

/* A life ends without its destroy's record (a new life at the address, or a socket whose
 * table entry went first): what it held crosses as it was, is checked, and the entry goes,
 * left locked for any adder still holding it. */
static __always_inline void gew_life_close(u64 key, u8 why)
{
    struct gew_life *l = gew_life.lookup(&key);
    if (l) {
        int locked = gew_life_lock(l);
        gew_life_emit(key, l, why);
        gew_life_end(l, l->seq + l->n);
        if (locked)
            gew_life_unlock(l, 2);
    }
    gew_life.delete(&key);
}

static __always_inline int gew_same_task(struct gew_life_task *a, struct gew_hdr *h)
{
    u64 *ca = (u64 *)a->comm, *ch = (u64 *)h->comm;
    return a->pid == h->pid && a->tgid == h->tgid && a->uid == h->uid && a->netns == h->netns &&
           a->cgroup == h->cgroup && ca[0] == ch[0] && ca[1] == ch[1];
}

static __always_inline int gew_same_addrs(struct gew_tuple *a, struct gew_tuple *b)
{
    u64 *x = (u64 *)a->saddr, *y = (u64 *)b->saddr;
    return a->family == b->family && a->protocol == b->protocol && x[0] == y[0] && x[1] == y[1] &&
           x[2] == y[2] && x[3] == y[3];
}

/* Hold one item for socket ``key`` (``h``: the header its per-event record would have had).
 * Returns 0 when held, -1 when no entry could be made (counted map-full for ``probe``). */
static __always_inline int gew_life_add(u64 key, struct gew_sock *s, struct gew_tuple *t, struct gew_hdr *h,
                                        u8 kind, u8 a, u8 b, u32 aux, u32 probe)
{
    struct gew_life *l = gew_life.lookup(&key);
    if (!l) {
        u32 z = 0;
        struct gew_life *zero = gew_life_zero.lookup(&z);
        if (!zero)
            return -1;
        if (gew_life.insert(&key, zero) != 0 && !gew_life.lookup(&key)) {
            gew_count(probe, GEW_C_MAPFULL);
            return -1;
        }
        l = gew_life.lookup(&key);
        if (!l)
            return -1;
    }
    if (!gew_life_lock(l)) {
        gew_count(GEW_PROBE_TCP_STATE, GEW_C_RACED);
        return 0;
    }
    if (h->ctx == GEW_CTX_PROCESS && l->has_task && !gew_same_task(&l->task, h))
        gew_life_emit(key, l, GEW_LIFE_TASK);
    if (l->n && !gew_same_addrs(&l->t, t))
        gew_life_emit(key, l, GEW_LIFE_ADDRS);
    if (l->n >= GEW_LIFE_ITEMS)
        gew_life_emit(key, l, GEW_LIFE_FULL);
    if (h->ctx == GEW_CTX_PROCESS && !l->has_task) {
        l->task.pid = h->pid;
        l->task.tgid = h->tgid;
        l->task.uid = h->uid;
        l->task.netns = h->netns;
        l->task.cgroup = h->cgroup;
        __builtin_memcpy(l->task.comm, h->comm, sizeof(l->task.comm));
        l->has_task = 1;
    }
    u32 i = l->n;
    if (i >= GEW_LIFE_ITEMS) {
        gew_life_unlock(l, 0);
        return -1;
    }
    struct gew_life_item *it = &l->items[i];
    it->ktime_ns = h->ktime_ns;
    it->cpu = h->cpu;
    it->aux = aux;
    it->sport = t->sport;
    it->dport = t->dport;
    it->kind = kind;
    it->ctx = h->ctx;
    it->a = a;
    it->b = b;
    l->t = *t;
    l->netns = s->netns;
    l->n = i + 1;
    __sync_fetch_and_add(&l->added, 1);
    /* A life's first item crosses at once: it is what makes a socket part of a flow (or
     * a flow emerge), and a flow holding an open socket is never ended for silence, so
     * what stays held can no longer change which flow anything belongs to. */
    if (l->seq == 0 && i == 0)
        gew_life_emit(key, l, GEW_LIFE_FIRST);
    gew_life_unlock(l, 0);
    return 0;
}

/* Userspace's request (BPF_PROG_TEST_RUN, args[0] = the socket's key): hand over what the
 * socket holds now. Loaded, never attached. */
int gew_life_asked(struct bpf_raw_tracepoint_args *ctx)
{
    u64 key = ctx->args[0];
    struct gew_life *l = gew_life.lookup(&key);
    /* a busy entry is being handed over or added to: the next tick asks again */
    if (l && l->n && gew_life_lock(l)) {
        gew_life_emit(key, l, GEW_LIFE_ASKED);
        gew_life_unlock(l, 0);
    }
    return 0;
}
#else
#define GEW_LIFE_FLUSH(key) do {} while (0)
#endif

int gew_tcp_set_state(struct bpf_raw_tracepoint_args *ctx)
{
    void *sk = (void *)ctx->args[0];
    u8 oldstate = (u8)ctx->args[1];
    u8 newstate = (u8)ctx->args[2];
    u16 protocol = 0;
    bpf_probe_read_kernel(&protocol, 2, sk + GEW_OFF_SOCK_PROTOCOL);
    if (protocol != GEW_IPPROTO_TCP)
        return 0;
    u64 key = (u64)sk;
    /* A socket found out of scope when its life began stays out until a new life begins
     * (leaving CLOSE or LISTEN, or an accepted child leaving SYN_RECV): on a busy box most
     * transitions are of such sockets, and this is all they cost. */
    if (oldstate != GEW_TCP_CLOSE && oldstate != GEW_TCP_LISTEN && oldstate != GEW_TCP_SYN_RECV &&
        gew_out_socks.lookup(&key))
        return 0;
    struct gew_tuple t;
    gew_inet_tuple(sk, &t);
    struct gew_sock *s = gew_socks.lookup(&key);
    /* A socket's life begins leaving CLOSE (connect, listen) or SYN_RECV (an accepted
     * child). An entry found then is stale: its destroy was never seen (a skipped run), and
     * the address now belongs to a new socket, maybe in another namespace: classify again.
     * Not when the entry saw this socket enter SYN_RECV: an accepted child is cloned from
     * its listener and first moves LISTEN -> SYN_RECV, then SYN_RECV -> ESTABLISHED. */
    if (s && (oldstate == GEW_TCP_CLOSE || (oldstate == GEW_TCP_SYN_RECV && s->state != GEW_TCP_SYN_RECV))) {
#if GEW_LIFECYCLE
        /* what the previous life held crosses as it was, then the entry starts over */
        gew_life_close(key, GEW_LIFE_NEWLIFE);
#endif
        gew_socks.delete(&key);
        gew_sock_gen_bump();
        s = 0;
    }
    if (!s) {
        gew_out_socks.delete(&key);
        s = gew_sock_get(sk, &t, GEW_PROBE_TCP_STATE);
        if (!s)
            return 0;
    }
    /* the source port is often assigned after SYN_SENT is set: keep the latest tuple */
    s->t = t;
    s->state = newstate;
#if GEW_LIFECYCLE
    struct gew_hdr h;
    gew_fill_hdr(&h, GEW_K_STATE, GEW_PROBE_TCP_STATE);
    gew_sock_owner(s, &h);
    gew_life_add(key, s, &t, &h, GEW_LIFE_STATE, oldstate, newstate, 0, GEW_PROBE_TCP_STATE);
#else
    struct gew_rec_state *r;
    r = gew_begin(sizeof(*r), GEW_K_STATE, GEW_PROBE_TCP_STATE);
    if (!r)
        return 0;
    gew_sock_owner(s, &r->h);
    r->t = t;
    r->sk = key;
    r->netns = s->netns;
    r->oldstate = oldstate;
    r->newstate = newstate;
    r->pad[0] = 0;
    r->pad[1] = 0;
    gew_submit(r, GEW_PROBE_TCP_STATE);
#endif
    return 0;
}

int gew_tcp_destroy(struct bpf_raw_tracepoint_args *ctx)
{
    void *sk = (void *)ctx->args[0];
    u64 key = (u64)sk;
    gew_out_socks.delete(&key);
    struct gew_sock *s = gew_socks.lookup(&key);
    if (!s) {
#if GEW_LIFECYCLE
        /* the socket's table entry went before it (a scope change racing its events): what
         * its life held still crosses, without the destroy and counters the entry had */
        gew_life_close(key, GEW_LIFE_CLOSE);
#endif
        return 0;
    }
#if GEW_LIFECYCLE
    /* the socket's last record: what it still holds, its destroy and its final counters */
    struct gew_life *l = gew_life.lookup(&key);
    int locked = l ? gew_life_lock(l) : 0;
    struct gew_rec_life *lr;
    lr = gew_begin(sizeof(*lr), GEW_K_LIFE, GEW_PROBE_TCP_STATE);
    if (lr) {
        lr->sk = key;
        lr->cookie = 0;
        bpf_probe_read_kernel(&lr->cookie, sizeof(lr->cookie), sk + GEW_OFF_SOCK_COOKIE);
        lr->final = 1;
        lr->why = GEW_LIFE_CLOSE;
        __builtin_memset(lr->pad, 0, sizeof(lr->pad));
        if (l) {
            __builtin_memcpy(&lr->l, l, sizeof(lr->l));
        } else {
            u32 z = 0;
            struct gew_life *zero = gew_life_zero.lookup(&z);
            if (zero)
                __builtin_memcpy(&lr->l, zero, sizeof(lr->l));
            else
                lr->l.n = 0;
        }
        __builtin_memcpy(&lr->s, s, sizeof(lr->s));
    }
    /* held against what the record took (an item added after the copy did not cross);
     * without a record, what the entry held is lost with it and counted as such */
    if (l)
        gew_life_end(l, lr ? lr->l.seq + lr->l.n : l->seq + l->n);
    if (locked)
        gew_life_unlock(l, 2);
    gew_life.delete(&key);
    /* The entry goes before the record is submitted: userspace reads the table for its
     * periodic summaries right after draining the ring, and a summary read from an entry
     * whose final record it has already decoded would count the last window twice.
     * Removed even when the record was lost, or the table would leak. */
    gew_socks.delete(&key);
    gew_sock_gen_bump();
    if (lr)
        gew_submit(lr, GEW_PROBE_TCP_STATE);
#else
    struct gew_rec_destroy *r;
    r = gew_begin(sizeof(*r), GEW_K_DESTROY, GEW_PROBE_TCP_STATE);
    if (r) {
        r->sk = key;
        r->cookie = 0;
        bpf_probe_read_kernel(&r->cookie, sizeof(r->cookie), sk + GEW_OFF_SOCK_COOKIE);
        __builtin_memcpy(&r->s, s, sizeof(r->s));
    }
    /* (as above: the entry before the record) */
    gew_socks.delete(&key);
    gew_sock_gen_bump();
    if (r)
        gew_submit(r, GEW_PROBE_TCP_STATE);
#endif
    return 0;
}

int gew_tcp_cong(struct bpf_raw_tracepoint_args *ctx)
{
    void *sk = (void *)ctx->args[0];
    u8 ca_state = (u8)ctx->args[1];
    struct gew_tuple t;
    gew_inet_tuple(sk, &t);
    struct gew_sock *s = gew_sock_get(sk, &t, GEW_PROBE_TCP_STATE);
    if (!s)
        return 0;
#if GEW_LIFECYCLE
    /* a return to Open is the normal course of a connection (every healthy one makes one):
     * held with its transitions; Disorder, CWR, Recovery and Loss cross at once */
    if (ca_state == GEW_TCP_CA_OPEN) {
        struct gew_hdr h;
        gew_fill_hdr(&h, GEW_K_CONG, GEW_PROBE_TCP_STATE);
        gew_sock_owner(s, &h);
        gew_life_add((u64)sk, s, &t, &h, GEW_LIFE_CONG, ca_state, 0, 0, GEW_PROBE_TCP_STATE);
        return 0;
    }
#endif
    GEW_LIFE_FLUSH((u64)sk);
    struct gew_rec_cong *r;
    r = gew_begin(sizeof(*r), GEW_K_CONG, GEW_PROBE_TCP_STATE);
    if (!r)
        return 0;
    gew_sock_owner(s, &r->h);
    r->t = t;
    r->sk = (u64)sk;
    r->netns = s->netns;
    r->ca_state = ca_state;
    r->pad[0] = 0;
    r->pad[1] = 0;
    r->pad[2] = 0;
    gew_submit(r, GEW_PROBE_TCP_STATE);
    return 0;
}
