/* owner — which process acts on each in-scope TCP socket.
 *
 * Tracepoints: sock:sock_send_length, sock:sock_recv_length (6.3), attached raw (args:
 * struct sock *, int ret, int flags; family and protocol read from the socket at BTF
 * offsets, only for sockets not yet classified). Both fire in process context from
 * sendmsg/recvmsg, so the current task is trustworthy there. A record crosses only when a
 * socket's owner changes (one lookup per call otherwise); the decoder uses the owner to
 * attribute the socket's softirq-context events.
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

static __always_inline int gew_owner_seen(void *sk, u8 via)
{
    u64 key = (u64)sk;
    if (!sk)
        return 0;
    /* a socket in the table is an in-scope TCP socket: no need to read what it is */
    struct gew_sock *s = gew_socks.lookup(&key);
    if (!s) {
        if (gew_out_socks.lookup(&key))
            return 0;
        u16 family = 0, protocol = 0;
        bpf_probe_read_kernel(&family, 2, sk + GEW_OFF_SOCK_FAMILY);
        bpf_probe_read_kernel(&protocol, 2, sk + GEW_OFF_SOCK_PROTOCOL);
        if (protocol != GEW_IPPROTO_TCP || (family != GEW_AF_INET && family != GEW_AF_INET6))
            return 0;
        s = gew_sock_get(sk, 0, GEW_PROBE_OWNER);
        if (!s)
            return 0;
    }
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (s->owner_tgid == tgid || gew_ctx() != GEW_CTX_PROCESS)
        return 0;
    u32 prev = s->owner_tgid;
    s->owner_tgid = tgid;
    struct gew_rec_owner *r;
    r = gew_begin(sizeof(*r), GEW_K_OWNER, GEW_PROBE_OWNER);
    if (!r)
        return 0;
    r->t = s->t;
    r->sk = key;
    r->netns = s->netns;
    r->prev_tgid = prev;
    r->via = via;
    __builtin_memset(r->pad, 0, sizeof(r->pad));
    gew_submit(r, GEW_PROBE_OWNER);
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
