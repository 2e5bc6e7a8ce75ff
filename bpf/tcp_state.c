/* tcp_state — TCP lifecycle anchors.
 *
 * Tracepoints: sock:inet_sock_set_state (4.16), tcp:tcp_destroy_sock (5.x; sock_cookie
 * since 6.6), tcp:tcp_cong_state_set (6.3).
 * Maintains the in-scope socket table (gew_socks): a socket is classified on each state
 * change (a new socket may reuse a freed one's address) and removed when destroyed. The
 * destroy record carries the socket's final tcp_probe counters.
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

int gew_tcp_set_state(struct tracepoint__sock__inet_sock_set_state *args)
{
    if (args->protocol != GEW_IPPROTO_TCP)
        return 0;
    void *sk = (void *)args->skaddr;
    u64 key = (u64)sk;
    struct gew_tuple t;
    gew_tp_tuple(&t, args->family, args->sport, args->dport, args->saddr, args->daddr,
                 args->saddr_v6, args->daddr_v6);
    struct gew_sock *s = gew_socks.lookup(&key);
    /* A socket's life begins leaving CLOSE (connect, listen) or SYN_RECV (an accepted
     * child). An entry found then is stale: its destroy was never seen (a skipped run), and
     * the address now belongs to a new socket, maybe in another namespace: classify again. */
    if (s && (args->oldstate == GEW_TCP_CLOSE || args->oldstate == GEW_TCP_SYN_RECV)) {
        gew_socks.delete(&key);
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
    s->state = args->newstate;
    struct gew_rec_state *r;
    r = gew_begin(sizeof(*r), GEW_K_STATE, GEW_PROBE_TCP_STATE);
    if (!r)
        return 0;
    gew_sock_owner(s, &r->h);
    r->t = t;
    r->sk = key;
    r->netns = s->netns;
    r->oldstate = args->oldstate;
    r->newstate = args->newstate;
    r->pad[0] = 0;
    r->pad[1] = 0;
    gew_submit(r, GEW_PROBE_TCP_STATE);
    return 0;
}

int gew_tcp_destroy(struct tracepoint__tcp__tcp_destroy_sock *args)
{
    u64 key = (u64)args->skaddr;
    gew_out_socks.delete(&key);
    struct gew_sock *s = gew_socks.lookup(&key);
    if (!s)
        return 0;
    struct gew_rec_destroy *r;
    r = gew_begin(sizeof(*r), GEW_K_DESTROY, GEW_PROBE_TCP_STATE);
    if (r) {
        r->sk = key;
        r->cookie = args->sock_cookie;
        __builtin_memcpy(&r->s, s, sizeof(r->s));
        gew_submit(r, GEW_PROBE_TCP_STATE);
    }
    /* removed even when the record was lost, or the table would leak */
    gew_socks.delete(&key);
    return 0;
}

int gew_tcp_cong(struct tracepoint__tcp__tcp_cong_state_set *args)
{
    void *sk = (void *)args->skaddr;
    struct gew_tuple t;
    gew_tp_tuple(&t, args->family, args->sport, args->dport, args->saddr, args->daddr,
                 args->saddr_v6, args->daddr_v6);
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
    r->ca_state = args->cong_state;
    r->pad[0] = 0;
    r->pad[1] = 0;
    r->pad[2] = 0;
    gew_submit(r, GEW_PROBE_TCP_STATE);
    return 0;
}
