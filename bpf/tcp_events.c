/* tcp_events — retransmits and resets.
 *
 * Tracepoints: tcp:tcp_retransmit_skb (4.15), tcp:tcp_retransmit_synack (4.15),
 * tcp:tcp_send_reset (4.15; reason since 6.10), tcp:tcp_receive_reset (4.15).
 * tcp_send_reset's format declares its reason field as `enum sk_rst_reason`, a type the
 * kernel headers on disk may lack; bcc copies field types verbatim into the struct it
 * generates, so the name is mapped to a complete enum of our own (a macro, so that headers
 * which do define the enum cannot clash). The field is 4 bytes (checked against the format
 * by the capability report) and its names come from the format at runtime.
 */
#define GEW_PROBE_TCP_EVENTS 2
#define GEW_K_RETRANS 4
#define GEW_K_RESET_SENT 5
#define GEW_K_RESET_RECV 6

enum gew_rst_reason { GEW_RST_REASON_UNUSED = 0 };
#define sk_rst_reason gew_rst_reason

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

int gew_tcp_retrans(struct tracepoint__tcp__tcp_retransmit_skb *args)
{
    void *sk = (void *)args->skaddr;
    struct gew_tuple t;
    gew_tp_tuple(&t, args->family, args->sport, args->dport, args->saddr, args->daddr,
                 args->saddr_v6, args->daddr_v6);
    struct gew_sock *s = gew_sock_get(sk, &t, GEW_PROBE_TCP_EVENTS);
    if (!s)
        return 0;
    return gew_emit_retrans(sk, &t, s->netns, args->state, args->err, 0, s);
}

/* skaddr is the listener; the tuple is the request's, so scope is judged on the tuple
 * with the listener's namespace (the request is not a full socket and is not tracked). */
int gew_tcp_retrans_synack(struct tracepoint__tcp__tcp_retransmit_synack *args)
{
    void *sk = (void *)args->skaddr;
    struct gew_tuple t;
    gew_tp_tuple(&t, args->family, args->sport, args->dport, args->saddr, args->daddr,
                 args->saddr_v6, args->daddr_v6);
    u32 netns = gew_sock_netns(sk);
    if (!gew_in_scope(netns, &t, GEW_PROBE_TCP_EVENTS))
        return 0;
    return gew_emit_retrans((void *)args->req, &t, netns, 3 /* TCP_SYN_RECV */, 0, 1, 0);
}

static __always_inline int gew_emit_reset(u16 kind, struct gew_tuple *t, u64 sk, u64 cookie, u32 netns,
                                          s32 state, u32 reason, u8 direction, struct gew_sock *s)
{
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

/* skaddr may be NULL (reset for a packet that matched no socket), a full, request or
 * timewait socket; all share sock_common, so the namespace is read from there, or from
 * the device of the packet being answered. */
int gew_tcp_send_reset(struct tracepoint__tcp__tcp_send_reset *args)
{
    void *sk = (void *)args->skaddr;
    struct gew_tuple t;
    gew_sa_tuple(&t, args->saddr, args->daddr);
    u32 netns = 0;
    if (sk) {
        netns = gew_sock_netns(sk);
    } else if (args->skbaddr) {
        void *dev = 0;
        bpf_probe_read_kernel(&dev, sizeof(dev), (void *)args->skbaddr + GEW_OFF_SKB_DEV);
        netns = gew_dev_netns(dev);
    }
    u64 key = (u64)sk;
    struct gew_sock *s = sk ? gew_socks.lookup(&key) : 0;
    if (!s && !gew_in_scope(netns, &t, GEW_PROBE_TCP_EVENTS))
        return 0;
    return gew_emit_reset(GEW_K_RESET_SENT, &t, key, 0, netns, args->state, (u32)args->reason, 1, s);
}

int gew_tcp_recv_reset(struct tracepoint__tcp__tcp_receive_reset *args)
{
    void *sk = (void *)args->skaddr;
    struct gew_tuple t;
    gew_tp_tuple(&t, args->family, args->sport, args->dport, args->saddr, args->daddr,
                 args->saddr_v6, args->daddr_v6);
    struct gew_sock *s = gew_sock_get(sk, &t, GEW_PROBE_TCP_EVENTS);
    if (!s)
        return 0;
    return gew_emit_reset(GEW_K_RESET_RECV, &t, (u64)sk, args->sock_cookie, s->netns, s->state, 0, 2, s);
}
