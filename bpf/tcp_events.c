/* tcp_events — retransmits and resets.
 *
 * Tracepoints, attached raw: tcp:tcp_retransmit_skb (4.15; args const struct sock *,
 * const struct sk_buff *, int err), tcp:tcp_retransmit_synack (4.15; const struct sock *,
 * const struct request_sock *), tcp:tcp_send_reset (4.15; const struct sock *, const struct
 * sk_buff *, and since 6.10 enum sk_rst_reason), tcp:tcp_receive_reset (4.15; struct
 * sock *). Tuples and states are read at BTF offsets the way the formats' TP_fast_assign
 * reads them (gew_inet_tuple for full sockets; a request socket's own sock_common; for a
 * reset answering a packet, that packet's headers reversed). The reset reason is the raw
 * 4-byte enum value (GEW_RST_REASON_ARG says the kernel passes one); its names come from
 * the format at runtime. The received-reset cookie is read, not generated as the format
 * did: 0 when nothing asked the kernel for it. Raw, because a perf-event tracepoint program
 * is skipped whenever another kprobe or tracepoint program runs on the CPU; a raw one only
 * when it nests in itself.
 */
#define GEW_PROBE_TCP_EVENTS 2
#define GEW_K_RETRANS 4
#define GEW_K_RESET_SENT 5
#define GEW_K_RESET_RECV 6
#define GEW_TCP_TIME_WAIT 6
#define GEW_TCP_NEW_SYN_RECV 12
/* what a socket holds in its lifecycle entry crosses before a record about it (tcp_state.c) */
#ifndef GEW_LIFE_FLUSH
#define GEW_LIFE_FLUSH(key) do {} while (0)
#endif
#ifndef GEW_RST_REASON_ARG
#define GEW_RST_REASON_ARG 0
#endif

struct gew_rec_retrans {
    struct gew_hdr h;
    struct gew_tuple t;
    u64 sk;
    u32 netns;
    s32 state;
    s32 err;
    u8 synack;
    u8 pad[3];
};                     /* 120 */

struct gew_rec_reset {
    struct gew_hdr h;
    struct gew_tuple t;
    u64 sk;
    u64 cookie;
    u32 netns;
    s32 state;
    u32 reason;
    u8 direction;      /* 1 sent, 2 received */
    u8 pad[3];
};                     /* 128 */

static __always_inline int gew_emit_retrans(void *sk, struct gew_tuple *t, u32 netns,
                                            s32 state, s32 err, u8 synack, struct gew_sock *s)
{
    if (s)
        GEW_LIFE_FLUSH((u64)sk);
    struct gew_rec_retrans *r;
    r = gew_begin(sizeof(*r), GEW_K_RETRANS, GEW_PROBE_TCP_EVENTS);
    if (!r)
        return 0;
    if (s)
        gew_sock_owner(s, &r->h);
    r->t = *t;
    r->sk = (u64)sk;
    r->netns = netns;
    r->state = state;
    r->err = err;
    r->synack = synack;
    r->pad[0] = 0;
    r->pad[1] = 0;
    r->pad[2] = 0;
    gew_submit(r, GEW_PROBE_TCP_EVENTS);
    return 0;
}

static __always_inline s32 gew_sk_state(void *sk)
{
    u8 state = 0;
    if (sk)
        bpf_probe_read_kernel(&state, 1, sk + GEW_OFF_SOCK_STATE);
    return state;
}

int gew_tcp_retrans(struct bpf_raw_tracepoint_args *ctx)
{
    void *sk = (void *)ctx->args[0];
    s32 err = (s32)ctx->args[2];
    struct gew_tuple t;
    gew_inet_tuple(sk, &t);
    struct gew_sock *s = gew_sock_get(sk, &t, GEW_PROBE_TCP_EVENTS);
    if (!s)
        return 0;
    return gew_emit_retrans(sk, &t, s->netns, gew_sk_state(sk), err, 0, s);
}

/* skaddr is the listener; the tuple is the request's (its sock_common, with the
 * listener's family, as the format), so scope is judged on the tuple with the listener's
 * namespace (the request is not a full socket and is not tracked). */
int gew_tcp_retrans_synack(struct bpf_raw_tracepoint_args *ctx)
{
    void *sk = (void *)ctx->args[0];
    void *req = (void *)ctx->args[1];
    struct gew_tuple t;
    __builtin_memset(&t, 0, sizeof(t));
    u16 family = 0, num = 0, dport = 0;
    bpf_probe_read_kernel(&family, 2, sk + GEW_OFF_SOCK_FAMILY);
    bpf_probe_read_kernel(&num, 2, req + GEW_OFF_SOCK_NUM);
    bpf_probe_read_kernel(&dport, 2, req + GEW_OFF_SOCK_DPORT);
    t.family = family;
    t.sport = num;
    t.dport = bpf_ntohs(dport);
    t.protocol = GEW_IPPROTO_TCP;
    if (family == GEW_AF_INET6) {
        bpf_probe_read_kernel(t.saddr, 16, req + GEW_OFF_SOCK_V6_RCV_SADDR);
        bpf_probe_read_kernel(t.daddr, 16, req + GEW_OFF_SOCK_V6_DADDR);
    } else {
        bpf_probe_read_kernel(t.saddr, 4, req + GEW_OFF_SOCK_RCV_SADDR);
        bpf_probe_read_kernel(t.daddr, 4, req + GEW_OFF_SOCK_DADDR);
    }
    u32 netns = gew_sock_netns(sk);
    if (!gew_in_scope(netns, &t, GEW_PROBE_TCP_EVENTS))
        return 0;
    return gew_emit_retrans(req, &t, netns, 3 /* TCP_SYN_RECV */, 0, 1, 0);
}

static __always_inline int gew_emit_reset(u16 kind, struct gew_tuple *t, u64 sk, u64 cookie, u32 netns,
                                          s32 state, u32 reason, u8 direction, struct gew_sock *s)
{
    if (s)
        GEW_LIFE_FLUSH(sk);
    struct gew_rec_reset *r;
    r = gew_begin(sizeof(*r), kind, GEW_PROBE_TCP_EVENTS);
    if (!r)
        return 0;
    if (s)
        gew_sock_owner(s, &r->h);
    r->t = *t;
    r->sk = sk;
    r->cookie = cookie;
    r->netns = netns;
    r->state = state;
    r->reason = reason;
    r->direction = direction;
    r->pad[0] = 0;
    r->pad[1] = 0;
    r->pad[2] = 0;
    gew_submit(r, GEW_PROBE_TCP_EVENTS);
    return 0;
}

/* The tuple of the packet a reset answers, reversed (the reset's direction), as the
 * format's TP_STORE_ADDR_PORTS_SKB: IP header at the network header, TCP header at data. */
static __always_inline void gew_rst_skb_tuple(void *skb, struct gew_tuple *t)
{
    __builtin_memset(t, 0, sizeof(*t));
    t->protocol = GEW_IPPROTO_TCP;
    void *head = 0, *data = 0;
    u16 nh = 0;
    bpf_probe_read_kernel(&head, sizeof(head), skb + GEW_OFF_SKB_HEAD);
    bpf_probe_read_kernel(&data, sizeof(data), skb + GEW_OFF_SKB_DATA);
    bpf_probe_read_kernel(&nh, sizeof(nh), skb + GEW_OFF_SKB_NETWORK_HEADER);
    if (!head || !data)
        return;
    u8 ip[40] = {};
    bpf_probe_read_kernel(ip, sizeof(ip), head + nh);
    if ((ip[0] >> 4) == 6) {
        t->family = GEW_AF_INET6;
        __builtin_memcpy(t->daddr, ip + 8, 16);
        __builtin_memcpy(t->saddr, ip + 24, 16);
    } else {
        t->family = GEW_AF_INET;
        __builtin_memcpy(t->daddr, ip + 12, 4);
        __builtin_memcpy(t->saddr, ip + 16, 4);
    }
    u16 ports[2] = {};
    bpf_probe_read_kernel(ports, sizeof(ports), data);
    t->dport = bpf_ntohs(ports[0]);
    t->sport = bpf_ntohs(ports[1]);
}

/* skaddr may be NULL (reset for a packet that matched no socket), a full, request or
 * timewait socket; all share sock_common, so the namespace is read from there, or from
 * the device of the packet being answered. The tuple is the full socket's, else the
 * answered packet's reversed. */
int gew_tcp_send_reset(struct bpf_raw_tracepoint_args *ctx)
{
    void *sk = (void *)ctx->args[0];
    void *skb = (void *)ctx->args[1];
    u32 reason = 0;
#if GEW_RST_REASON_ARG
    reason = (u32)ctx->args[2];
#endif
    s32 state = gew_sk_state(sk);
    struct gew_tuple t;
    if (sk && state != GEW_TCP_TIME_WAIT && state != GEW_TCP_NEW_SYN_RECV)
        gew_inet_tuple(sk, &t);
    else if (skb)
        gew_rst_skb_tuple(skb, &t);
    else
        __builtin_memset(&t, 0, sizeof(t));
    u32 netns = 0;
    if (sk) {
        netns = gew_sock_netns(sk);
    } else if (skb) {
        void *dev = 0;
        bpf_probe_read_kernel(&dev, sizeof(dev), skb + GEW_OFF_SKB_DEV);
        netns = gew_dev_netns(dev);
    }
    u64 key = (u64)sk;
    struct gew_sock *s = sk ? gew_socks.lookup(&key) : 0;
    if (!s && !gew_in_scope(netns, &t, GEW_PROBE_TCP_EVENTS))
        return 0;
    return gew_emit_reset(GEW_K_RESET_SENT, &t, key, 0, netns, state, reason, 1, s);
}

int gew_tcp_recv_reset(struct bpf_raw_tracepoint_args *ctx)
{
    void *sk = (void *)ctx->args[0];
    struct gew_tuple t;
    gew_inet_tuple(sk, &t);
    struct gew_sock *s = gew_sock_get(sk, &t, GEW_PROBE_TCP_EVENTS);
    if (!s)
        return 0;
    u64 cookie = 0;
    bpf_probe_read_kernel(&cookie, sizeof(cookie), sk + GEW_OFF_SOCK_COOKIE);
    return gew_emit_reset(GEW_K_RESET_RECV, &t, (u64)sk, cookie, s->netns, s->state, 0, 2, s);
}
