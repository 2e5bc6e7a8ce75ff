/* drops — packets the kernel dropped, with the kernel's reason, tied to a flow.
 *
 * Tracepoints, attached raw: skb:kfree_skb (4.x; args struct sk_buff *, void *location,
 * enum skb_drop_reason (5.17+), struct sock *rx_sk (6.12+; GEW_KFREE_RX_SK_ARG says the
 * kernel passes it)), sock:sock_rcvqueue_full (3.x; struct sock *, struct sk_buff *: its
 * format has no socket). The protocol the format reported is skb->protocol in host order.
 * Raw, because a perf-event tracepoint program is skipped whenever another kprobe or
 * tracepoint program runs on the CPU; a raw one only when it nests in itself.
 * Attribution of a drop, in order: the socket the kernel names (rx_sk, else skb->sk) when
 * it is in the in-scope table (PACKET_ATTRIBUTION_SOCKET); else the packet's own IPv4/IPv6
 * and TCP/UDP headers, found through sk_buff's head/network_header/transport_header
 * offsets from BTF and the stable UAPI header layouts (PACKET_ATTRIBUTION_HEADERS); else
 * none (namespace/interface only). Out-of-scope drops never leave the kernel.
 */
/* what a socket holds in its lifecycle entry crosses before a record about it (tcp_state.c) */
#ifndef GEW_LIFE_FLUSH
#define GEW_LIFE_FLUSH(key) do {} while (0)
#endif
#define GEW_PROBE_DROPS 5

#ifndef GEW_KFREE_RX_SK_ARG
#define GEW_KFREE_RX_SK_ARG 0
#endif
#define GEW_K_DROP 9
#define GEW_K_RCVQ 10

#define GEW_ATTR_HEADERS 1
#define GEW_ATTR_SOCKET 2
#define GEW_ATTR_NONE 3

struct gew_rec_drop {
    struct gew_hdr h;
    struct gew_tuple t;
    u64 sk;
    u64 location;
    u32 reason;
    u32 netns;
    u32 ifindex;
    u16 protocol;
    u8 attribution;
    u8 pad;
    char ifname[16];
};                     /* 144 */

struct gew_rec_rcvq {
    struct gew_hdr h;
    struct gew_tuple t;
    u64 sk;
    u32 netns;
    s32 rmem_alloc;
    u32 truesize;
    s32 sk_rcvbuf;
};                     /* 120 */

/* Parse the packet's network and transport headers into a tuple; 1 when it worked. */
static __always_inline int gew_skb_tuple(void *skb, u16 ethertype, struct gew_tuple *t)
{
    void *head = 0;
    u16 nh = 0, th = 0;
    bpf_probe_read_kernel(&head, sizeof(head), skb + GEW_OFF_SKB_HEAD);
    bpf_probe_read_kernel(&nh, sizeof(nh), skb + GEW_OFF_SKB_NETWORK_HEADER);
    bpf_probe_read_kernel(&th, sizeof(th), skb + GEW_OFF_SKB_TRANSPORT_HEADER);
    if (!head || nh == 0xffff)
        return 0;
    u8 l4 = 0;
    u32 l4off = 0;
    if (ethertype == 0x0800) {
        u8 ip[20];
        if (bpf_probe_read_kernel(ip, sizeof(ip), head + nh) != 0 || (ip[0] >> 4) != 4)
            return 0;
        t->family = GEW_AF_INET;
        l4 = ip[9];
        __builtin_memcpy(t->saddr, ip + 12, 4);
        __builtin_memcpy(t->daddr, ip + 16, 4);
        l4off = nh + (ip[0] & 0xf) * 4;
    } else if (ethertype == 0x86DD) {
        u8 ip6[40];
        if (bpf_probe_read_kernel(ip6, sizeof(ip6), head + nh) != 0 || (ip6[0] >> 4) != 6)
            return 0;
        t->family = GEW_AF_INET6;
        l4 = ip6[6];
        __builtin_memcpy(t->saddr, ip6 + 8, 16);
        __builtin_memcpy(t->daddr, ip6 + 24, 16);
        l4off = nh + 40;
    } else {
        return 0;
    }
    t->protocol = l4;
    if (l4 == GEW_IPPROTO_TCP || l4 == GEW_IPPROTO_UDP) {
        /* the kernel's own transport offset wins when set: it accounts for IPv6
         * extension headers */
        if (th != 0xffff && th > nh)
            l4off = th;
        u16 ports[2] = {};
        if (bpf_probe_read_kernel(ports, sizeof(ports), head + l4off) == 0) {
            t->sport = bpf_ntohs(ports[0]);
            t->dport = bpf_ntohs(ports[1]);
        }
    }
    return 1;
}

int gew_kfree_skb(struct bpf_raw_tracepoint_args *ctx)
{
    gew_witness_run(GEW_W_KFREE_SKB);
    void *skb = (void *)ctx->args[0];
    void *sk = 0;
#if GEW_KFREE_RX_SK_ARG
    sk = (void *)ctx->args[3];
#endif
    u16 protocol = 0;
    bpf_probe_read_kernel(&protocol, sizeof(protocol), skb + GEW_OFF_SKB_PROTOCOL);
    protocol = bpf_ntohs(protocol);
    if (!sk)
        bpf_probe_read_kernel(&sk, sizeof(sk), skb + GEW_OFF_SKB_SK);
    void *dev = 0;
    bpf_probe_read_kernel(&dev, sizeof(dev), skb + GEW_OFF_SKB_DEV);
    struct gew_tuple t = {};
    u8 attribution = GEW_ATTR_NONE;
    u32 netns = 0;
    struct gew_sock *s = 0;
    if (sk) {
        u64 key = (u64)sk;
        s = gew_socks.lookup(&key);
    }
    if (s) {
        t = s->t;
        netns = s->netns;
        attribution = GEW_ATTR_SOCKET;
        GEW_LIFE_FLUSH((u64)sk);
    } else {
        if (gew_skb_tuple(skb, protocol, &t))
            attribution = GEW_ATTR_HEADERS;
        netns = dev ? gew_dev_netns(dev) : gew_sock_netns(sk);
        if (!gew_in_scope(netns, &t, GEW_PROBE_DROPS))
            return 0;
    }
    struct gew_rec_drop *r;
    r = gew_begin(sizeof(*r), GEW_K_DROP, GEW_PROBE_DROPS);
    if (!r)
        return 0;
    r->t = t;
    r->sk = (u64)sk;
    r->location = ctx->args[1];
    r->reason = (u32)ctx->args[2];
    r->netns = netns;
    r->protocol = protocol;
    r->attribution = attribution;
    r->pad = 0;
    r->ifindex = 0;
    __builtin_memset(r->ifname, 0, sizeof(r->ifname));
    if (dev) {
        bpf_probe_read_kernel(&r->ifindex, sizeof(r->ifindex), dev + GEW_OFF_NETDEV_IFINDEX);
        bpf_probe_read_kernel(r->ifname, sizeof(r->ifname), dev + GEW_OFF_NETDEV_NAME);
    }
    gew_submit(r, GEW_PROBE_DROPS);
    return 0;
}

int gew_rcvq_full(struct bpf_raw_tracepoint_args *ctx)
{
    void *sk = (void *)ctx->args[0];
    void *skb = (void *)ctx->args[1];
    struct gew_tuple t;
    gew_sock_tuple(sk, &t);
    u16 proto = 0;
    bpf_probe_read_kernel(&proto, sizeof(proto), sk + GEW_OFF_SOCK_PROTOCOL);
    t.protocol = proto;
    u32 netns = gew_sock_netns(sk);
    if (!gew_in_scope(netns, &t, GEW_PROBE_DROPS))
        return 0;
    GEW_LIFE_FLUSH((u64)sk);
    struct gew_rec_rcvq *r;
    r = gew_begin(sizeof(*r), GEW_K_RCVQ, GEW_PROBE_DROPS);
    if (!r)
        return 0;
    r->t = t;
    r->sk = (u64)sk;
    r->netns = netns;
    r->rmem_alloc = 0;
    r->truesize = 0;
    r->sk_rcvbuf = 0;
    bpf_probe_read_kernel(&r->rmem_alloc, 4, sk + GEW_OFF_SOCK_RMEM_ALLOC);
    bpf_probe_read_kernel(&r->sk_rcvbuf, 4, sk + GEW_OFF_SOCK_RCVBUF);
    bpf_probe_read_kernel(&r->truesize, 4, skb + GEW_OFF_SKB_TRUESIZE);
    gew_submit(r, GEW_PROBE_DROPS);
    return 0;
}
