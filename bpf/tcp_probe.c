/* tcp_probe — per-segment TCP counters, kept in the kernel.
 *
 * Tracepoint: tcp:tcp_probe (4.16), attached raw (args: struct sock *, const struct
 * sk_buff *). It fires for every segment received on an established socket, so the hot
 * path is one lookup in the in-scope socket table plus in-place updates: no record crosses
 * to userspace except on a zero-window edge (the peer's advertised window reaching or
 * leaving zero). Userspace reads the table for periodic summaries; tcp_state's destroy
 * record carries the final one.
 * What the tracepoint's format computed is read here from struct tcp_sock and sk_buff at
 * BTF offsets, the way its TP_fast_assign computes it (checked against the format's values
 * in tests/test_probes_tcp_raw.py): data length = skb->len - TCP header length (doff), srtt =
 * srtt_us >> 3, ssthresh = tcp_current_ssthresh() (icsk_ca_state, a bitfield, read as its
 * byte). The socket cookie is read, not generated (the tracepoint generated it): it stays 0
 * until something asked the kernel for it.
 * Raw, because a perf-event tracepoint program is skipped whenever another kprobe or
 * tracepoint program runs on the CPU; a raw one only when it nests in itself.
 */
#define GEW_PROBE_TCP_PROBE 3
#define GEW_K_PROBE_ZW 7

struct gew_rec_zw {
    struct gew_hdr h;
    u64 sk;
    struct gew_sock s;
};                     /* 192 */

#define GEW_TCP_CA_CWR 2
#define GEW_TCP_CA_RECOVERY 3

static __always_inline u32 gew_tp_u32(void *p)
{
    u32 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), p);
    return v;
}

/* tcp_current_ssthresh(): the slow-start threshold as the tracepoint reports it */
static __always_inline u32 gew_current_ssthresh(void *sk, u32 cwnd)
{
    u32 ssthresh = gew_tp_u32(sk + GEW_OFF_TCP_SND_SSTHRESH);
    u8 b = 0;
    bpf_probe_read_kernel(&b, 1, sk + GEW_ICSK_CA_STATE_BYTE);
    u8 ca = (b >> GEW_ICSK_CA_STATE_SHIFT) & ((1 << GEW_ICSK_CA_STATE_BITS) - 1);
    if (ca == GEW_TCP_CA_CWR || ca == GEW_TCP_CA_RECOVERY)
        return ssthresh;
    u32 three_quarters = (cwnd >> 1) + (cwnd >> 2);
    return ssthresh > three_quarters ? ssthresh : three_quarters;
}

/* skb->len minus the TCP header (doff words), as __tcp_hdrlen(tcp_hdr(skb)); in
 * tcp_rcv_established skb->data is the TCP header (tcp_hdr(skb) == skb->data there) */
static __always_inline u32 gew_tcp_data_len(void *skb)
{
    void *data = 0;
    u8 doff = 0;
    u32 len = gew_tp_u32(skb + GEW_OFF_SKB_LEN);
    bpf_probe_read_kernel(&data, sizeof(data), skb + GEW_OFF_SKB_DATA);
    if (data)
        bpf_probe_read_kernel(&doff, 1, data + 12);
    u32 hdr = (doff >> 4) * 4;
    /* the format's field is 16 bits */
    return (u16)(len - hdr);
}

int gew_tcp_probe(struct bpf_raw_tracepoint_args *ctx)
{
    void *sk = (void *)ctx->args[0];
    void *skb = (void *)ctx->args[1];
    u64 key = (u64)sk;
    struct gew_sock *s = gew_socks.lookup(&key);
    if (!s) {
        if (gew_out_socks.lookup(&key))
            return 0;
        s = gew_sock_get(sk, 0, GEW_PROBE_TCP_PROBE);
        if (!s)
            return 0;
    }
    u64 now = bpf_ktime_get_ns();
    u32 snd_wnd = gew_tp_u32(sk + GEW_OFF_TCP_SND_WND);
    u32 cwnd = gew_tp_u32(sk + GEW_OFF_TCP_SND_CWND);
    u32 srtt = gew_tp_u32(sk + GEW_OFF_TCP_SRTT_US) >> 3;
    /* updates race only with the same socket on another CPU, which TCP serialises under
     * the socket lock, so plain stores are exact here */
    if (!s->first_ns)
        s->first_ns = now;
    s->last_ns = now;
    s->segments += 1;
    s->bytes += gew_tcp_data_len(skb);
    if (!s->cookie)     /* a cookie, once assigned, never changes */
        bpf_probe_read_kernel(&s->cookie, sizeof(s->cookie), sk + GEW_OFF_SOCK_COOKIE);
    s->snd_cwnd = cwnd;
    s->ssthresh = gew_current_ssthresh(sk, cwnd);
    s->snd_wnd = snd_wnd;
    s->rcv_wnd = gew_tp_u32(sk + GEW_OFF_TCP_RCV_WND);
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
