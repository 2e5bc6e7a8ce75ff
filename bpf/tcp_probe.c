/* tcp_probe — per-segment TCP counters, kept in the kernel.
 *
 * Tracepoint: tcp:tcp_probe (4.16; skaddr and sock_cookie since 5.x/6.x). It fires for
 * every segment received on an established socket, so the hot path is one lookup in the
 * in-scope socket table plus in-place updates: no record crosses to userspace except on a
 * zero-window edge (the peer's advertised window reaching or leaving zero). Userspace
 * reads the table for periodic summaries; tcp_state's destroy record carries the final one.
 */
#define GEW_PROBE_TCP_PROBE 3
#define GEW_K_PROBE_ZW 7

struct gew_rec_zw {
    struct gew_hdr h;
    u64 sk;
    struct gew_sock s;
};                     /* 192 */

int gew_tcp_probe(struct tracepoint__tcp__tcp_probe *args)
{
    void *sk = (void *)args->skaddr;
    u64 key = (u64)sk;
    struct gew_sock *s = gew_socks.lookup(&key);
    if (!s) {
        if (gew_out_socks.lookup(&key))
            return 0;
        struct gew_tuple t;
        gew_sa_tuple(&t, args->saddr, args->daddr);
        s = gew_sock_get(sk, &t, GEW_PROBE_TCP_PROBE);
        if (!s)
            return 0;
    }
    u64 now = bpf_ktime_get_ns();
    u32 snd_wnd = args->snd_wnd;
    u32 srtt = args->srtt;
    /* updates race only with the same socket on another CPU, which TCP serialises under
     * the socket lock, so plain stores are exact here */
    if (!s->first_ns)
        s->first_ns = now;
    s->last_ns = now;
    s->segments += 1;
    s->bytes += args->data_len;
    s->cookie = args->sock_cookie;
    s->snd_cwnd = args->snd_cwnd;
    s->ssthresh = args->ssthresh;
    s->snd_wnd = snd_wnd;
    s->rcv_wnd = args->rcv_wnd;
    s->srtt_us = srtt;
    if (srtt > s->max_srtt_us)
        s->max_srtt_us = srtt;
    if (snd_wnd < s->min_snd_wnd)
        s->min_snd_wnd = snd_wnd;
    u8 zw = snd_wnd == 0;
    if (zw)
        s->zw_segments += 1;
    if (zw == s->zw_now)
        return 0;
    s->zw_now = zw;
    struct gew_rec_zw *r;
    r = gew_begin(sizeof(*r), GEW_K_PROBE_ZW, GEW_PROBE_TCP_PROBE);
    if (!r)
        return 0;
    r->sk = key;
    __builtin_memcpy(&r->s, s, sizeof(r->s));
    gew_submit(r, GEW_PROBE_TCP_PROBE);
    return 0;
}
