// deny.c — the packet-level execution of a flow-level `drop` decision.
//
// Hook: tc clsact (ingress "ffff:fff2" and egress "ffff:fff3"), program type
// BPF_PROG_TYPE_SCHED_CLS, attached by cls_bpf in direct-action mode.
// Minimum kernel: 4.5 (clsact qdisc); bpf_skb_load_bytes 4.5; BPF_PROG_TEST_RUN for skb
// programs 4.12. Developed and tested on 6.18.
//
// What it does, per packet: parse Ethernet (at most two 802.1Q/802.1ad tags) -> IPv4 or IPv6
// (IPv6 extension headers walked, at most DENY_MAX_EXT of them) -> TCP or UDP, build the
// 5-tuple and look it up in `deny` in the packet's own orientation and, on a miss, reversed.
// Userspace therefore inserts ONE entry per connection (as its local socket sees it) and that
// entry's counters count the packets dropped in both directions.
//
// Flow keys: an entry whose sport (or dport) is 0 stands for every port of the ephemeral
// range on that side — the flow identity of gewtui.model.identity, where a client flow is
// (local address, peer address, peer port) whatever its ephemeral local port, and a server
// flow (local address, local port, peer address) whatever the peer's. Such an entry drops
// the flow's reconnects too. A packet port outside the entry's own eph_lo..eph_hi never
// matches its wildcard: userspace sets them to the ephemeral range of the flow's network
// namespace (net.ipv4.ip_local_port_range, often widened on busy boxes), so one classifier
// serves namespaces with different ranges.
//
//   hit, not expired            -> count (atomic), TC_ACT_SHOT
//   hit, past its expires_ns    -> TC_ACT_UNSPEC (the kernel enforces the TTL as well)
//   miss, non-IP, non-TCP/UDP,
//   fragment without L4 header,
//   truncated or malformed      -> TC_ACT_UNSPEC
//
// TC_ACT_UNSPEC, never TC_ACT_OK: with direct-action, OK would end classification and skip
// every filter after ours; UNSPEC lets the next filter (another tool's) still run, so traffic
// we do not deny is untouched.
//
// The L2 header is assumed to be Ethernet (veth, physical NICs, loopback): cls_bpf pushes the
// MAC header back before running the program on ingress, so both hooks see it at offset 0.
// Userspace refuses to attach to devices of other link types.
//
// Only UAPI headers and bcc's helper declarations are used: no kernel struct is read, so the
// program does not depend on the layout of the running kernel's private headers.

#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/pkt_cls.h>

#define DENY_AF_INET 2
#define DENY_AF_INET6 10
#define DENY_MAX_EXT 6
#define DENY_MAX_VLAN 2

#ifndef ETH_P_8021Q
#define ETH_P_8021Q 0x8100
#endif
#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

// IPv6 next-header values walked over (RFC 8200 order of appearance).
#define DENY_NH_HOPOPTS 0
#define DENY_NH_ROUTING 43
#define DENY_NH_FRAGMENT 44
#define DENY_NH_AUTH 51
#define DENY_NH_DSTOPTS 60

// Key layout is mirrored by gewtui/intervene/classifier.py (DenyKey); change both together.
// Ports in host byte order; IPv4 addresses occupy the first 4 bytes, the rest is zero.
struct deny_key {
    u8 family;
    u8 proto;
    u16 sport;
    u16 dport;
    u16 pad;
    u8 saddr[16];
    u8 daddr[16];
};

struct deny_val {
    u64 packets;       // packets dropped (both directions)
    u64 bytes;         // skb->len of those packets
    u64 last_ns;       // bpf_ktime_get_ns() of the latest drop; 0 = never
    u64 expires_ns;    // CLOCK_MONOTONIC deadline; from then on the entry no longer drops
    u16 eph_lo;        // a flow key's wildcard covers ports eph_lo..eph_hi (0..0 on exact
    u16 eph_hi;        // entries, which never match as wildcards)
    u32 pad;
};

BPF_HASH(deny, struct deny_key, struct deny_val, 4096);

// How many entries of each shape `deny` holds (userspace keeps it), so a packet pays only
// for the lookups that can hit: with one flow key and no exact entry, at most two.
struct deny_shapes {
    u32 exact;
    u32 sport_wild;     // entries with sport 0
    u32 dport_wild;     // entries with dport 0
    u32 pad;
};

BPF_ARRAY(deny_cfg, struct deny_shapes, 1);

static __always_inline int deny_ports(struct __sk_buff *skb, u32 off, struct deny_key *k)
{
    u16 ports[2];
    if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) < 0)
        return -1;
    k->sport = bpf_ntohs(ports[0]);
    k->dport = bpf_ntohs(ports[1]);
    return 0;
}

// Fills k from an IPv4 header at off. Returns 0 when k holds a complete 5-tuple.
static __always_inline int deny_parse_v4(struct __sk_buff *skb, u32 off, struct deny_key *k)
{
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) < 0)
        return -1;
    if (ip.version != 4 || ip.ihl < 5)
        return -1;
    // A non-first fragment has no L4 header; never guess its ports.
    if (bpf_ntohs(ip.frag_off) & 0x1fff)
        return -1;
    if (ip.protocol != IPPROTO_TCP && ip.protocol != IPPROTO_UDP)
        return -1;
    k->family = DENY_AF_INET;
    k->proto = ip.protocol;
    __builtin_memcpy(k->saddr, &ip.saddr, 4);
    __builtin_memcpy(k->daddr, &ip.daddr, 4);
    return deny_ports(skb, off + ip.ihl * 4, k);
}

// Fills k from an IPv6 header at off, walking at most DENY_MAX_EXT extension headers.
static __always_inline int deny_parse_v6(struct __sk_buff *skb, u32 off, struct deny_key *k)
{
    struct ipv6hdr ip6;
    if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)) < 0)
        return -1;
    if (ip6.version != 6)
        return -1;
    __builtin_memcpy(k->saddr, &ip6.saddr, 16);
    __builtin_memcpy(k->daddr, &ip6.daddr, 16);
    u8 nh = ip6.nexthdr;
    off += sizeof(ip6);

#pragma unroll
    for (int i = 0; i < DENY_MAX_EXT; i++) {
        if (nh == IPPROTO_TCP || nh == IPPROTO_UDP)
            break;
        u8 ext[2];      // next header, length
        if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)) < 0)
            return -1;
        if (nh == DENY_NH_HOPOPTS || nh == DENY_NH_ROUTING || nh == DENY_NH_DSTOPTS) {
            off += ((u32)ext[1] + 1) * 8;
        } else if (nh == DENY_NH_AUTH) {
            off += ((u32)ext[1] + 2) * 4;
        } else if (nh == DENY_NH_FRAGMENT) {
            u16 frag;
            if (bpf_skb_load_bytes(skb, off + 2, &frag, sizeof(frag)) < 0)
                return -1;
            if (bpf_ntohs(frag) & 0xfff8)      // offset != 0: no L4 header here
                return -1;
            off += 8;
        } else {
            return -1;                          // ESP, no-next-header, unknown: no match
        }
        nh = ext[0];
    }
    if (nh != IPPROTO_TCP && nh != IPPROTO_UDP)
        return -1;                              // chain longer than DENY_MAX_EXT: no match
    k->family = DENY_AF_INET6;
    k->proto = nh;
    return deny_ports(skb, off, k);
}

static __always_inline void deny_reverse(struct deny_key *k)
{
    u8 tmp[16];
    __builtin_memcpy(tmp, k->saddr, 16);
    __builtin_memcpy(k->saddr, k->daddr, 16);
    __builtin_memcpy(k->daddr, tmp, 16);
    u16 p = k->sport;
    k->sport = k->dport;
    k->dport = p;
}

static __always_inline int deny_covers(struct deny_val *v, u16 port)
{
    return port >= v->eph_lo && port <= v->eph_hi;
}

// Exact entry first, then the flow keys with the ephemeral side's port left out (a hit
// counts only when the packet's port lies in that entry's range); only the shapes the map
// holds are looked up.
static __always_inline struct deny_val *deny_find(struct deny_key *k, struct deny_shapes *sh)
{
    struct deny_val *v = 0;
    if (sh->exact) {
        v = deny.lookup(k);
        if (v)
            return v;
    }
    u16 port = k->sport;
    if (sh->sport_wild && port) {
        k->sport = 0;
        v = deny.lookup(k);
        k->sport = port;
        if (v && deny_covers(v, port))
            return v;
    }
    port = k->dport;
    if (sh->dport_wild && port) {
        k->dport = 0;
        v = deny.lookup(k);
        k->dport = port;
        if (v && deny_covers(v, port))
            return v;
    }
    return 0;
}

int gew_deny(struct __sk_buff *skb)
{
    struct deny_key k = {};
    u32 off = ETH_HLEN;
    u16 proto;
    int zero = 0;

    struct deny_shapes *sh = deny_cfg.lookup(&zero);
    if (!sh || !(sh->exact | sh->sport_wild | sh->dport_wild))
        return TC_ACT_UNSPEC;       // nothing denied: do not even parse

    if (bpf_skb_load_bytes(skb, 12, &proto, sizeof(proto)) < 0)
        return TC_ACT_UNSPEC;
    proto = bpf_ntohs(proto);

#pragma unroll
    for (int i = 0; i < DENY_MAX_VLAN; i++) {
        if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
            break;
        if (bpf_skb_load_bytes(skb, off + 2, &proto, sizeof(proto)) < 0)
            return TC_ACT_UNSPEC;
        proto = bpf_ntohs(proto);
        off += 4;
    }

    int r;
    if (proto == ETH_P_IP)
        r = deny_parse_v4(skb, off, &k);
    else if (proto == ETH_P_IPV6)
        r = deny_parse_v6(skb, off, &k);
    else
        return TC_ACT_UNSPEC;
    if (r < 0)
        return TC_ACT_UNSPEC;

    struct deny_val *v = deny_find(&k, sh);
    if (!v) {
        deny_reverse(&k);
        v = deny_find(&k, sh);
    }
    if (!v)
        return TC_ACT_UNSPEC;
    // The drop's time to live is enforced here too, so a drop whose owner was SIGKILLed
    // stops dropping on time even before orphan cleanup removes the filter.
    u64 now = bpf_ktime_get_ns();
    if (now >= v->expires_ns)
        return TC_ACT_UNSPEC;

    __sync_fetch_and_add(&v->packets, 1);
    __sync_fetch_and_add(&v->bytes, skb->len);
    v->last_ns = now;
    return TC_ACT_SHOT;
}
