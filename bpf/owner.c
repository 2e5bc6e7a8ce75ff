/* owner — which process acts on each in-scope TCP socket.
 *
 * Tracepoints: sock:sock_send_length, sock:sock_recv_length (6.3), attached raw (args:
 * struct sock *, int ret, int flags; family and protocol read from the socket at BTF
 * offsets, only for sockets not yet classified). Both fire in process context from
 * sendmsg/recvmsg, so the current task is trustworthy there. A record crosses only when a
 * socket's owner changes; the decoder uses the owner to attribute the socket's
 * softirq-context events.
 * They fire on every send and receive call, so the common case costs no map lookup: each
 * CPU remembers the last (socket, process) it checked (gew_owner_last) with the
 * generation of socket facts it was checked under (gew_sock_gen); the same pair under the
 * same generation has nothing new to say. The generation moves whenever a socket enters or
 * leaves the in-scope table or changes owner (gew_sock_gen_bump) and when userspace resets
 * the tables, so a remembered pair is never trusted across such a change.
 * With the lifecycle on (bpf/tcp_state.c), an owner change is held in the socket's
 * lifecycle entry and crosses with its transitions instead of as a record of its own.
 * Raw, because a perf-event tracepoint program is skipped whenever another kprobe or
 * tracepoint program runs on the CPU; a raw one only when it nests in itself.
 */
#define GEW_PROBE_OWNER 4
#define GEW_K_OWNER 8

struct gew_rec_owner {
    struct gew_hdr h;
    struct gew_tuple t;
    u64 sk;
    u32 netns;
    u32 prev_tgid;
    u8 via;            /* 1 send, 2 recv */
    u8 pad[7];
};                     /* 128 */

/* The slow path: look the socket up (classifying it on first sight) and emit an owner
 * record if ``tgid`` is new to it. Returns 1 when the pair may be remembered: what it
 * concluded holds until the generation moves. */
static __always_inline int gew_owner_check(void *sk, u32 tgid, u8 via)
{
    u64 key = (u64)sk;
    /* a socket in the table is an in-scope TCP socket: no need to read what it is */
    struct gew_sock *s = gew_socks.lookup(&key);
    if (!s) {
        if (gew_out_socks.lookup(&key))
            return 1;
        u16 family = 0, protocol = 0;
        bpf_probe_read_kernel(&family, 2, sk + GEW_OFF_SOCK_FAMILY);
        bpf_probe_read_kernel(&protocol, 2, sk + GEW_OFF_SOCK_PROTOCOL);
        if (protocol != GEW_IPPROTO_TCP || (family != GEW_AF_INET && family != GEW_AF_INET6))
            return 1;
        /* 0 when out of scope (the next call finds it in the LRU) or the table is full
         * (counted, and tried again on the next call) */
        s = gew_sock_get(sk, 0, GEW_PROBE_OWNER);
        if (!s)
            return 0;
    }
    if (s->owner_tgid == tgid)
        return 1;
    if (gew_ctx() != GEW_CTX_PROCESS)
        return 0;
    u32 prev = s->owner_tgid;
    s->owner_tgid = tgid;
    gew_sock_gen_bump();
#ifdef GEW_LIFE_ON
    /* held with the socket's transitions (bpf/tcp_state.c), crossing with them */
    struct gew_hdr h;
    gew_fill_hdr(&h, GEW_K_OWNER, GEW_PROBE_OWNER);
    gew_life_add(key, s, &s->t, &h, GEW_LIFE_OWNER, via, 0, prev, GEW_PROBE_OWNER);
    return 1;
#else
    struct gew_rec_owner *r;
    r = gew_begin(sizeof(*r), GEW_K_OWNER, GEW_PROBE_OWNER);
    if (!r)
        return 1;   /* counted as lost; the owner is set all the same */
    r->t = s->t;
    r->sk = key;
    r->netns = s->netns;
    r->prev_tgid = prev;
    r->via = via;
    __builtin_memset(r->pad, 0, sizeof(r->pad));
    gew_submit(r, GEW_PROBE_OWNER);
    return 1;
#endif
}

static __always_inline int gew_owner_seen(void *sk, u8 via)
{
    if (!sk)
        return 0;
    u32 z = 0;
    u32 *genp = gew_sock_gen.lookup(&z);
    struct gew_owner_last *last = gew_owner_last.lookup(&z);
    if (!genp || !last)
        return 0;
    /* read before the check: a change made meanwhile moves it past what is remembered */
    u32 gen = *(volatile u32 *)genp;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (last->sk == (u64)sk && last->tgid == tgid && last->gen == gen)
        return 0;
    if (!gew_owner_check(sk, tgid, via))
        return 0;
    last->sk = (u64)sk;
    last->tgid = tgid;
    last->gen = gen;
    return 0;
}

int gew_sock_send(struct bpf_raw_tracepoint_args *ctx)
{
    return gew_owner_seen((void *)ctx->args[0], 1);
}

int gew_sock_recv(struct bpf_raw_tracepoint_args *ctx)
{
    return gew_owner_seen((void *)ctx->args[0], 2);
}
