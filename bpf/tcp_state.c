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
 */
#define GEW_PROBE_TCP_STATE 1
#define GEW_K_STATE 1
#define GEW_K_DESTROY 2
#define GEW_K_CONG 3
#define GEW_TCP_SYN_RECV 3
#define GEW_TCP_CLOSE 7

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
};                     /* 200 */

struct gew_rec_cong {
    struct gew_hdr h;
    struct gew_tuple t;
    u64 sk;
    u32 netns;
    u8 ca_state;
    u8 pad[3];
};                     /* 112 */

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
    struct gew_tuple t;
    gew_inet_tuple(sk, &t);
    struct gew_sock *s = gew_socks.lookup(&key);
    /* A socket's life begins leaving CLOSE (connect, listen) or SYN_RECV (an accepted
     * child). An entry found then is stale: its destroy was never seen (a skipped run), and
     * the address now belongs to a new socket, maybe in another namespace: classify again. */
    if (s && (oldstate == GEW_TCP_CLOSE || oldstate == GEW_TCP_SYN_RECV)) {
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
    return 0;
}

int gew_tcp_destroy(struct bpf_raw_tracepoint_args *ctx)
{
    void *sk = (void *)ctx->args[0];
    u64 key = (u64)sk;
    gew_out_socks.delete(&key);
    struct gew_sock *s = gew_socks.lookup(&key);
    if (!s)
        return 0;
    struct gew_rec_destroy *r;
    r = gew_begin(sizeof(*r), GEW_K_DESTROY, GEW_PROBE_TCP_STATE);
    if (r) {
        r->sk = key;
        r->cookie = 0;
        bpf_probe_read_kernel(&r->cookie, sizeof(r->cookie), sk + GEW_OFF_SOCK_COOKIE);
        __builtin_memcpy(&r->s, s, sizeof(r->s));
        gew_submit(r, GEW_PROBE_TCP_STATE);
    }
    /* removed even when the record was lost, or the table would leak */
    gew_socks.delete(&key);
    gew_sock_gen_bump();
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
