/* tcp_probe — per-segment TCP counters, kept in the kernel.
 *
 * Tracepoint: tcp:tcp_probe (4.16), attached as a BTF-typed raw tracepoint where the
 * kernel takes it (gew_tcp_probe_typed), else raw (gew_tcp_probe); args: struct sock *,
 * const struct sk_buff *. It fires for every segment received on an established socket,
 * so the hot path is one lookup in the in-scope socket table, the members below, and
 * in-place updates: no record crosses to userspace except on a zero-window edge (the
 * peer's advertised window reaching or leaving zero). Userspace reads the table for
 * periodic summaries; tcp_state's destroy record carries the final one.
 * What the tracepoint's format computed is read here from struct tcp_sock and sk_buff at
 * BTF offsets, the way its TP_fast_assign computes it (checked against the format's values
 * in tests/test_probes_tcp_raw.py, for both programs):
 * - from tcp_sock: snd_cwnd, snd_ssthresh, snd_wnd, rcv_wnd, srtt_us (srtt = srtt_us >> 3)
 *   and tcp_mstamp. The typed program loads them directly; the raw one reads the span that
 *   holds them all in one bpf_probe_read_kernel (GEW_TP_SPAN_*, from BTF; field by field
 *   if the span is too long) into a per-CPU scratch buffer. ssthresh is
 *   tcp_current_ssthresh(), which needs the icsk_ca_state bitfield's byte only when
 *   snd_ssthresh is below 3/4 of cwnd (after a loss);
 * - the data length from the segment's control block (TCP_SKB_CB, filled by tcp_v4_rcv /
 *   tcp_v6_rcv before this point): end_seq - seq minus the SYN and FIN flags, which is the
 *   format's skb->len - __tcp_hdrlen(th) (truncated to the format's 16 bits).
 * Time: reading the clock (bpf_ktime_get_ns) costs as much as the rest of the update, so
 * it is read only for the first segment of each jiffy (the tick kept in the entry); later
 * segments of the same jiffy move last_ns to the socket's own clock, tcp_mstamp (the
 * kernel's ktime in us of the socket's previous TCP activity; it is refreshed just after
 * this tracepoint) when that is later. last_ns is so never after the socket's last
 * segment, and before it by less than one jiffy and less than the gap since the socket's
 * previous activity.
 * The socket cookie is read, not generated (the tracepoint generated it): it stays 0 until
 * something asked the kernel for it, and is read with the clock, not on every segment (a
 * cookie, once assigned, never changes), and before a zero-window record.
 * RTT distribution: every segment also counts the socket's smoothed RTT (srtt_us >> 3) in
 * a log2 histogram kept in the socket's own entry (gew_sock.srtt_hist: bucket i holds
 * [2^i, 2^(i+1)) us, the last one everything above), so it costs no lookup beyond the
 * entry's, goes with the entry when the socket is destroyed, and crosses in every record
 * that copies the entry (destroy, lifecycle close, zero-window) and in the periodic table
 * read. Userspace turns it into per-window deltas in each summary (periodic and final);
 * bcc's tcprtt answers the same question. A segment before the first RTT sample (srtt 0)
 * is not counted.
 * Raw, because a perf-event tracepoint program is skipped whenever another kprobe or
 * tracepoint program runs on the CPU; a raw one (typed or not) only when it nests in
 * itself.
 */
#define GEW_PROBE_TCP_PROBE 3
#define GEW_K_PROBE_ZW 7
/* tcp_state's lifecycle hand-over (bpf/tcp_state.c), where that unit is built in */
#ifndef GEW_LIFE_FLUSH
#define GEW_LIFE_FLUSH(key) do {} while (0)
#endif

struct gew_rec_zw {
    struct gew_hdr h;
    u64 sk;
    struct gew_sock s;
};                     /* 296 */

/* floor(log2(v)) for v > 0, in five compares (no loop for the verifier to unroll) */
static __always_inline u32 gew_log2(u32 v)
{
    u32 r = 0;
    if (v >= (1u << 16)) { v >>= 16; r += 16; }
    if (v >= (1u << 8)) { v >>= 8; r += 8; }
    if (v >= (1u << 4)) { v >>= 4; r += 4; }
    if (v >= (1u << 2)) { v >>= 2; r += 2; }
    if (v >= (1u << 1)) r += 1;
    return r;
}

static __always_inline void gew_srtt_count(struct gew_sock *s, u32 srtt)
{
    if (!srtt)
        return;
    u32 i = gew_log2(srtt);
    if (i >= GEW_SRTT_BUCKETS)
        i = GEW_SRTT_BUCKETS - 1;
    /* updates of one socket are serialised by its lock (see gew_tp_update) */
    s->srtt_hist[i] += 1;
}

#define GEW_TCP_CA_CWR 2
#define GEW_TCP_CA_RECOVERY 3
#define GEW_TCPHDR_FIN 0x01
#define GEW_TCPHDR_SYN 0x02

/* What one segment's update needs from struct tcp_sock (icsk_ca_state only sometimes:
 * gew_current_ssthresh). */
struct gew_tp_vals {
    u64 mstamp_us;
    u32 snd_wnd;
    u32 cwnd;
    u32 ssthresh;
    u32 rcv_wnd;
    u32 srtt_us;
};

#ifdef GEW_TP_SPAN_LEN
/* a kernel-sized buffer, not a record layout (a typedef: tests/test_decode_layouts.py
 * sizes every struct gew_*) */
typedef struct {
    u8 b[GEW_TP_SPAN_SIZE];
} gew_tp_span_t;
BPF_PERCPU_ARRAY(gew_tp_scratch, gew_tp_span_t, 1);
#define GEW_TP_AT(sp, off, type) (*(type *)((sp)->b + ((off) - GEW_TP_SPAN_START)))

static __always_inline int gew_tp_read(void *sk, struct gew_tp_vals *v)
{
    u32 z = 0;
    gew_tp_span_t *sp = gew_tp_scratch.lookup(&z);
    if (!sp)
        return -1;
    if (bpf_probe_read_kernel(sp->b, GEW_TP_SPAN_LEN, sk + GEW_TP_SPAN_START) != 0)
        return -1;
    v->snd_wnd = GEW_TP_AT(sp, GEW_OFF_TCP_SND_WND, u32);
    v->cwnd = GEW_TP_AT(sp, GEW_OFF_TCP_SND_CWND, u32);
    v->ssthresh = GEW_TP_AT(sp, GEW_OFF_TCP_SND_SSTHRESH, u32);
    v->rcv_wnd = GEW_TP_AT(sp, GEW_OFF_TCP_RCV_WND, u32);
    v->srtt_us = GEW_TP_AT(sp, GEW_OFF_TCP_SRTT_US, u32);
    v->mstamp_us = GEW_TP_AT(sp, GEW_OFF_TCP_MSTAMP, u64);
    return 0;
}
#else
static __always_inline int gew_tp_read(void *sk, struct gew_tp_vals *v)
{
    bpf_probe_read_kernel(&v->snd_wnd, 4, sk + GEW_OFF_TCP_SND_WND);
    bpf_probe_read_kernel(&v->cwnd, 4, sk + GEW_OFF_TCP_SND_CWND);
    bpf_probe_read_kernel(&v->ssthresh, 4, sk + GEW_OFF_TCP_SND_SSTHRESH);
    bpf_probe_read_kernel(&v->rcv_wnd, 4, sk + GEW_OFF_TCP_RCV_WND);
    bpf_probe_read_kernel(&v->srtt_us, 4, sk + GEW_OFF_TCP_SRTT_US);
    bpf_probe_read_kernel(&v->mstamp_us, 8, sk + GEW_OFF_TCP_MSTAMP);
    return 0;
}
#endif

/* tcp_current_ssthresh(): the slow-start threshold as the tracepoint reports it. Where
 * snd_ssthresh is at least 3/4 of cwnd (always, until a first loss: it starts "infinite"),
 * both of its cases give snd_ssthresh, so icsk_ca_state is read only otherwise. */
static __always_inline u32 gew_current_ssthresh(void *sk, struct gew_tp_vals *v)
{
    u32 three_quarters = (v->cwnd >> 1) + (v->cwnd >> 2);
    if (v->ssthresh >= three_quarters)
        return v->ssthresh;
    u8 b = 0;
    bpf_probe_read_kernel(&b, 1, sk + GEW_ICSK_CA_STATE_BYTE);
    u8 ca = (b >> GEW_ICSK_CA_STATE_SHIFT) & ((1 << GEW_ICSK_CA_STATE_BITS) - 1);
    if (ca == GEW_TCP_CA_CWR || ca == GEW_TCP_CA_RECOVERY)
        return v->ssthresh;
    return three_quarters;
}

/* The segment's data length from TCP_SKB_CB(skb): seq, end_seq (seq + SYN + FIN + data)
 * and tcp_flags lie within 16 bytes of the control block's start (checked from BTF). */
static __always_inline u32 gew_tcp_data_len(void *skb)
{
    u8 cb[16] = {};
    bpf_probe_read_kernel(cb, sizeof(cb), skb + GEW_OFF_SKB_CB + GEW_OFF_TCB_SEQ);
    u32 seq = *(u32 *)(cb);
    u32 end_seq = *(u32 *)(cb + (GEW_OFF_TCB_END_SEQ - GEW_OFF_TCB_SEQ));
    u8 flags = cb[GEW_OFF_TCB_FLAGS - GEW_OFF_TCB_SEQ];
    u32 len = end_seq - seq - (flags & GEW_TCPHDR_FIN) - ((flags & GEW_TCPHDR_SYN) >> 1);
    /* the format's field is 16 bits */
    return (u16)len;
}

/* The in-scope entry of the socket, classifying it on first sight; 0 when out of scope. */
static __always_inline struct gew_sock *gew_tp_sock(void *sk)
{
    u64 key = (u64)sk;
    struct gew_sock *s = gew_socks.lookup(&key);
    if (s)
        return s;
    if (gew_out_socks.lookup(&key))
        return 0;
    return gew_sock_get(sk, 0, GEW_PROBE_TCP_PROBE);
}

/* One segment's update of the socket's entry; a record only on a zero-window edge. */
static __always_inline int gew_tp_update(void *sk, struct gew_sock *s, struct gew_tp_vals *v, u32 len)
{
    /* updates race only with the same socket on another CPU, which TCP serialises under
     * the socket lock, so plain stores are exact here */
    u64 tick = bpf_jiffies64();
    if (tick != s->last_tick) {
        u64 now = bpf_ktime_get_ns();
        s->last_tick = tick;
        if (!s->first_ns)
            s->first_ns = now;
        s->last_ns = now;
        if (!s->cookie)
            bpf_probe_read_kernel(&s->cookie, sizeof(s->cookie), sk + GEW_OFF_SOCK_COOKIE);
    } else if (v->mstamp_us * 1000 > s->last_ns) {
        s->last_ns = v->mstamp_us * 1000;
    }
    s->segments += 1;
    s->bytes += len;
    u32 srtt = v->srtt_us >> 3;
    s->snd_cwnd = v->cwnd;
    s->ssthresh = gew_current_ssthresh(sk, v);
    s->snd_wnd = v->snd_wnd;
    s->rcv_wnd = v->rcv_wnd;
    s->srtt_us = srtt;
    if (srtt > s->max_srtt_us)
        s->max_srtt_us = srtt;
    gew_srtt_count(s, srtt);
    if (v->snd_wnd < s->min_snd_wnd)
        s->min_snd_wnd = v->snd_wnd;
    u8 zw = v->snd_wnd == 0;
    if (zw)
        s->zw_segments += 1;
    if (zw == s->zw_now)
        return 0;
    s->zw_now = zw;
    /* the edge crosses at once: what the socket's lifecycle holds goes first, so its
     * transitions keep their place before the edge */
    GEW_LIFE_FLUSH((u64)sk);
    struct gew_rec_zw *r;
    r = gew_begin(sizeof(*r), GEW_K_PROBE_ZW, GEW_PROBE_TCP_PROBE);
    if (!r)
        return 0;
    /* the edge's summary ends at this segment, to the nanosecond */
    s->last_ns = r->h.ktime_ns;
    if (!s->cookie)
        bpf_probe_read_kernel(&s->cookie, sizeof(s->cookie), sk + GEW_OFF_SOCK_COOKIE);
    r->sk = (u64)sk;
    __builtin_memcpy(&r->s, s, sizeof(r->s));
    gew_submit(r, GEW_PROBE_TCP_PROBE);
    return 0;
}

/* The raw program: the socket and the segment through bpf_probe_read_kernel (two reads). */
int gew_tcp_probe(struct bpf_raw_tracepoint_args *ctx)
{
    void *sk = (void *)ctx->args[0];
    void *skb = (void *)ctx->args[1];
    struct gew_sock *s = gew_tp_sock(sk);
    if (!s)
        return 0;
    struct gew_tp_vals v = {};
    gew_tp_read(sk, &v);
    return gew_tp_update(sk, s, &v, gew_tcp_data_len(skb));
}

/* The BTF-typed program (tp_btf), loaded instead where the kernel accepts it
 * (gewtui/kernel/probes/typed.py): its arguments are typed pointers, so the verifier lets
 * it load the members directly (plain loads, each checked against the struct's BTF) where
 * the raw program pays a helper call per read. The loads are written in assembly because
 * bcc would otherwise turn every dereference into bpf_probe_read. The struct sock argument
 * is cast to struct tcp_sock with bpf_skc_to_tcp_sock(), since its fields lie beyond
 * struct sock. */
#define GEW_LOAD(dst, base, off, type) \
    asm volatile("%0 = *(" #type " *)(%1 + %2)" : "=r"(dst) : "r"(base), "i"(off))

int gew_tcp_probe_typed(struct bpf_raw_tracepoint_args *ctx)
{
    void *sk = (void *)ctx->args[0];
    void *skb = (void *)ctx->args[1];
    struct gew_sock *s = gew_tp_sock(sk);
    if (!s)
        return 0;
    void *tp = bpf_skc_to_tcp_sock(sk);
    if (!tp)
        return 0;
    u64 mstamp_us, snd_wnd, cwnd, ssthresh, rcv_wnd, srtt_us, seq, end_seq, flags;
    GEW_LOAD(mstamp_us, tp, GEW_OFF_TCP_MSTAMP, u64);
    GEW_LOAD(snd_wnd, tp, GEW_OFF_TCP_SND_WND, u32);
    GEW_LOAD(cwnd, tp, GEW_OFF_TCP_SND_CWND, u32);
    GEW_LOAD(ssthresh, tp, GEW_OFF_TCP_SND_SSTHRESH, u32);
    GEW_LOAD(rcv_wnd, tp, GEW_OFF_TCP_RCV_WND, u32);
    GEW_LOAD(srtt_us, tp, GEW_OFF_TCP_SRTT_US, u32);
    GEW_LOAD(seq, skb, GEW_OFF_SKB_CB + GEW_OFF_TCB_SEQ, u32);
    GEW_LOAD(end_seq, skb, GEW_OFF_SKB_CB + GEW_OFF_TCB_END_SEQ, u32);
    GEW_LOAD(flags, skb, GEW_OFF_SKB_CB + GEW_OFF_TCB_FLAGS, u8);
    struct gew_tp_vals v = {.mstamp_us = mstamp_us, .snd_wnd = snd_wnd, .cwnd = cwnd, .ssthresh = ssthresh,
                            .rcv_wnd = rcv_wnd, .srtt_us = srtt_us};
    u32 len = (u32)end_seq - (u32)seq - (flags & GEW_TCPHDR_FIN) - ((flags & GEW_TCPHDR_SYN) >> 1);
    return gew_tp_update(sk, s, &v, (u16)len);
}
