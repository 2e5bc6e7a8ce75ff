/* route — routing decisions and neighbour state, folded in the kernel.
 *
 * Tracepoints (attached raw, because the formats carry no network namespace):
 * fib:fib_table_lookup (5.x; args u32 tb_id, const struct flowi4 *, const struct
 * fib_nh_common *, int err), fib6:fib6_table_lookup (5.x; args const struct net *,
 * const struct fib6_result *, struct fib6_table *, const struct flowi6 *),
 * neigh:neigh_update (5.11; args struct neighbour *, const u8 *lladdr, u8 new, u32 flags,
 * u32 nlmsg_pid). Struct members are read at offsets from BTF.
 * A lookup crosses to userspace when its result for (netns, table, oif, src, dst) differs
 * from the last one this CPU reported, or when GEW_FIB_CADENCE_NS passed; in between,
 * identical lookups are counted (per CPU, exact) and reported in the next record's count.
 * The chosen device is the next hop's device; `oif` is the interface the caller asked for.
 */
#define GEW_PROBE_ROUTE 7
#define GEW_K_FIB 12
#define GEW_K_NEIGH 13
#ifndef GEW_FIB_CADENCE_NS
#define GEW_FIB_CADENCE_NS 1000000000ULL
#endif
#ifndef GEW_MAX_FIB_KEYS
#define GEW_MAX_FIB_KEYS 8192
#endif

struct gew_fib_key {
    u32 netns;
    u32 table;
    u32 family;
    s32 oif;
    u8 src[16];
    u8 dst[16];
};

struct gew_fib_val {
    u64 sig;
    u64 last_ns;
    u32 folded;
    u32 pad;
};

struct gew_rec_fib {
    struct gew_hdr h;
    u32 family;
    u32 table;
    s32 err;
    s32 oif;
    s32 iif;
    u32 netns;
    u8 src[16];
    u8 dst[16];
    u8 gw[16];
    u16 sport;
    u16 dport;
    u8 proto;
    u8 gw_family;
    u8 pad[2];
    char dev[16];
    u32 count;         /* lookups with this result folded into this record (>= 1) */
    u32 prev_folded;   /* lookups with the previous result not yet reported */
};                     /* 160 */

struct gew_rec_neigh {
    struct gew_hdr h;
    u32 family;
    u32 netns;
    u32 ifindex;
    u8 old_state;
    u8 new_state;
    u8 lladdr_len;
    u8 pad;
    u8 addr[16];
    u8 lladdr[32];
    char dev[16];
};                     /* 136 */

BPF_PERCPU_HASH(gew_fib_seen, struct gew_fib_key, struct gew_fib_val, GEW_MAX_FIB_KEYS);

static __always_inline void gew_dev_name(void *dev, char *name)
{
    __builtin_memset(name, 0, 16);
    if (dev)
        bpf_probe_read_kernel(name, 16, dev + GEW_OFF_NETDEV_NAME);
}

/* Decide whether this lookup crosses: 0 = folded, else the record's count. */
static __always_inline u32 gew_fib_fold(struct gew_fib_key *k, u64 sig, u32 *prev_folded)
{
    u64 now = bpf_ktime_get_ns();
    struct gew_fib_val *v = gew_fib_seen.lookup(k);
    *prev_folded = 0;
    if (!v || !v->last_ns) {
        /* absent, or present only on other CPUs (zeroed copy): this CPU starts here */
        struct gew_fib_val n = {.sig = sig, .last_ns = now};
        if (v)
            __builtin_memcpy(v, &n, sizeof(n));
        else if (gew_fib_seen.update(k, &n) != 0)
            gew_count(GEW_PROBE_ROUTE, GEW_C_MAPFULL);  /* still reported, unfolded */
        return 1;
    }
    if (v->sig == sig && now - v->last_ns < GEW_FIB_CADENCE_NS) {
        v->folded += 1;
        return 0;
    }
    u32 count = 1;
    if (v->sig == sig)
        count += v->folded;
    else
        *prev_folded = v->folded;
    v->sig = sig;
    v->last_ns = now;
    v->folded = 0;
    return count;
}

static __always_inline u64 gew_fib_sig(s32 err, u32 ifindex, const u8 *gw)
{
    u32 g[4] = {};
    __builtin_memcpy(g, gw, 16);
    return (((u64)(u32)err) << 32 | ifindex) ^ ((u64)(g[0] ^ g[2]) << 17) ^ (g[1] ^ g[3]);
}

static __always_inline int gew_fib_emit(struct gew_fib_key *k, struct gew_tuple *t, s32 err,
                                        s32 iif, void *dev, u8 gw_family, const u8 *gw)
{
    u32 ifindex = 0;
    if (dev)
        bpf_probe_read_kernel(&ifindex, sizeof(ifindex), dev + GEW_OFF_NETDEV_IFINDEX);
    u32 prev_folded = 0;
    u32 count = gew_fib_fold(k, gew_fib_sig(err, ifindex, gw), &prev_folded);
    if (!count)
        return 0;
    struct gew_rec_fib *r;
    r = gew_begin(sizeof(*r), GEW_K_FIB, GEW_PROBE_ROUTE);
    if (!r)
        return 0;
    r->family = k->family;
    r->table = k->table;
    r->err = err;
    r->oif = k->oif;
    r->iif = iif;
    r->netns = k->netns;
    __builtin_memcpy(r->src, k->src, 16);
    __builtin_memcpy(r->dst, k->dst, 16);
    __builtin_memcpy(r->gw, gw, 16);
    r->sport = t->sport;
    r->dport = t->dport;
    r->proto = t->protocol;
    r->gw_family = gw_family;
    r->pad[0] = 0;
    r->pad[1] = 0;
    gew_dev_name(dev, r->dev);
    r->count = count;
    r->prev_folded = prev_folded;
    gew_submit(r, GEW_PROBE_ROUTE);
    return 0;
}

/* Scope check on the lookup's tuple (ports in network order, as flowi holds them), then
 * fold or emit. */
static __always_inline int gew_fib_scoped(struct gew_fib_key *k, u16 sport, u16 dport, u8 proto, s32 err,
                                          s32 iif, void *dev, u8 gw_family, const u8 *gw)
{
    struct gew_tuple t = {};
    t.family = k->family;
    __builtin_memcpy(t.saddr, k->src, 16);
    __builtin_memcpy(t.daddr, k->dst, 16);
    t.sport = bpf_ntohs(sport);
    t.dport = bpf_ntohs(dport);
    t.protocol = proto;
    if (!gew_in_scope(k->netns, &t, GEW_PROBE_ROUTE))
        return 0;
    return gew_fib_emit(k, &t, err, iif, dev, gw_family, gw);
}

/* struct flowi4's fields and fib_nh_common's gateway, each one span (GEW_SPAN_MAX) */
#define GEW_FL4_LO GEW_MIN2(GEW_MIN2(GEW_MIN2(GEW_OFF_FLOWI4_OIF, GEW_OFF_FLOWI4_IIF), GEW_OFF_FLOWI4_PROTO), \
                            GEW_MIN2(GEW_MIN2(GEW_OFF_FLOWI4_SADDR, GEW_OFF_FLOWI4_DADDR), \
                                     GEW_MIN2(GEW_OFF_FLOWI4_SPORT, GEW_OFF_FLOWI4_DPORT)))
#define GEW_FL4_HI GEW_MAX2(GEW_MAX2(GEW_MAX2(GEW_OFF_FLOWI4_OIF + 4, GEW_OFF_FLOWI4_IIF + 4), GEW_OFF_FLOWI4_PROTO + 1), \
                            GEW_MAX2(GEW_MAX2(GEW_OFF_FLOWI4_SADDR + 4, GEW_OFF_FLOWI4_DADDR + 4), \
                                     GEW_MAX2(GEW_OFF_FLOWI4_SPORT + 2, GEW_OFF_FLOWI4_DPORT + 2)))
#define GEW_NHC_LO GEW_MIN2(GEW_OFF_NHC_GW_FAMILY, GEW_OFF_NHC_GW)
#define GEW_NHC_HI GEW_MAX2(GEW_OFF_NHC_GW_FAMILY + 1, GEW_OFF_NHC_GW + 16)

int gew_fib4_lookup(struct bpf_raw_tracepoint_args *ctx)
{
    u32 tb_id = (u32)ctx->args[0];
    void *flp = (void *)ctx->args[1];
    void *nhc = (void *)ctx->args[2];
    s32 err = (s32)ctx->args[3];
    struct gew_fib_key k = {};
    s32 iif = 0;
    u8 proto = 0;
    u16 sport = 0, dport = 0;
    void *dev = 0;
    if (nhc)
        bpf_probe_read_kernel(&dev, sizeof(dev), nhc + GEW_OFF_NHC_DEV);
    /* the namespace is the chosen device's; a failed lookup has no device, and then only
     * a process-context caller's own namespace is known */
    if (dev)
        k.netns = gew_dev_netns(dev);
    else if (gew_ctx() == GEW_CTX_PROCESS)
        k.netns = gew_task_netns();
    /* a busy box makes several lookups per connection, in every namespace: one outside
     * the scope's namespaces costs this much and no more */
    struct gew_scope_cfg *c = gew_cfg();
    if (!c || !gew_netns_ok(c, k.netns, GEW_PROBE_ROUTE))
        return 0;
#if GEW_FL4_HI - GEW_FL4_LO <= GEW_SPAN_MAX
    /* the flow's fields in one read (see GEW_SPAN_MAX): a busy box makes ten lookups a
     * connection, and this read was half of the program's time */
    u8 fl[GEW_FL4_HI - GEW_FL4_LO] __attribute__((aligned(8))) = {};
    bpf_probe_read_kernel(fl, sizeof(fl), flp + GEW_FL4_LO);
    GEW_SPAN_TAKE(&k.oif, fl, GEW_FL4_LO, GEW_OFF_FLOWI4_OIF, 4);
    GEW_SPAN_TAKE(&iif, fl, GEW_FL4_LO, GEW_OFF_FLOWI4_IIF, 4);
    GEW_SPAN_TAKE(&proto, fl, GEW_FL4_LO, GEW_OFF_FLOWI4_PROTO, 1);
    GEW_SPAN_TAKE(k.src, fl, GEW_FL4_LO, GEW_OFF_FLOWI4_SADDR, 4);
    GEW_SPAN_TAKE(k.dst, fl, GEW_FL4_LO, GEW_OFF_FLOWI4_DADDR, 4);
    if (proto == GEW_IPPROTO_TCP || proto == GEW_IPPROTO_UDP) {
        GEW_SPAN_TAKE(&sport, fl, GEW_FL4_LO, GEW_OFF_FLOWI4_SPORT, 2);
        GEW_SPAN_TAKE(&dport, fl, GEW_FL4_LO, GEW_OFF_FLOWI4_DPORT, 2);
    }
#else
    bpf_probe_read_kernel(&k.oif, 4, flp + GEW_OFF_FLOWI4_OIF);
    bpf_probe_read_kernel(&iif, 4, flp + GEW_OFF_FLOWI4_IIF);
    bpf_probe_read_kernel(&proto, 1, flp + GEW_OFF_FLOWI4_PROTO);
    bpf_probe_read_kernel(k.src, 4, flp + GEW_OFF_FLOWI4_SADDR);
    bpf_probe_read_kernel(k.dst, 4, flp + GEW_OFF_FLOWI4_DADDR);
    if (proto == GEW_IPPROTO_TCP || proto == GEW_IPPROTO_UDP) {
        bpf_probe_read_kernel(&sport, 2, flp + GEW_OFF_FLOWI4_SPORT);
        bpf_probe_read_kernel(&dport, 2, flp + GEW_OFF_FLOWI4_DPORT);
    }
#endif
    u8 gw_family = 0;
    u8 gw[16] = {};
    if (nhc) {
#if GEW_NHC_HI - GEW_NHC_LO <= GEW_SPAN_MAX
        u8 nh[GEW_NHC_HI - GEW_NHC_LO] __attribute__((aligned(8))) = {};
        bpf_probe_read_kernel(nh, sizeof(nh), nhc + GEW_NHC_LO);
        GEW_SPAN_TAKE(&gw_family, nh, GEW_NHC_LO, GEW_OFF_NHC_GW_FAMILY, 1);
        if (gw_family == GEW_AF_INET)
            GEW_SPAN_TAKE(gw, nh, GEW_NHC_LO, GEW_OFF_NHC_GW, 4);
        else if (gw_family == GEW_AF_INET6)
            GEW_SPAN_TAKE(gw, nh, GEW_NHC_LO, GEW_OFF_NHC_GW, 16);
#else
        bpf_probe_read_kernel(&gw_family, 1, nhc + GEW_OFF_NHC_GW_FAMILY);
        if (gw_family == GEW_AF_INET)
            bpf_probe_read_kernel(gw, 4, nhc + GEW_OFF_NHC_GW);
        else if (gw_family == GEW_AF_INET6)
            bpf_probe_read_kernel(gw, 16, nhc + GEW_OFF_NHC_GW);
#endif
    }
    k.table = tb_id;
    k.family = GEW_AF_INET;
    return gew_fib_scoped(&k, sport, dport, proto, err, iif, dev, gw_family, gw);
}

int gew_fib6_lookup(struct bpf_raw_tracepoint_args *ctx)
{
    void *net = (void *)ctx->args[0];
    void *res = (void *)ctx->args[1];
    void *table = (void *)ctx->args[2];
    void *flp = (void *)ctx->args[3];
    struct gew_fib_key k = {};
    s32 iif = 0;
    u8 proto = 0, type = 0;
    u16 sport = 0, dport = 0;
    k.netns = gew_net_inum(net);
    k.family = GEW_AF_INET6;
    struct gew_scope_cfg *c = gew_cfg();
    if (!c || !gew_netns_ok(c, k.netns, GEW_PROBE_ROUTE))
        return 0;      /* outside the scope's namespaces: nothing more to read */
    if (table)
        bpf_probe_read_kernel(&k.table, 4, table + GEW_OFF_FIB6_TABLE_ID);
    bpf_probe_read_kernel(&k.oif, 4, flp + GEW_OFF_FLOWI6_OIF);
    bpf_probe_read_kernel(&iif, 4, flp + GEW_OFF_FLOWI6_IIF);
    bpf_probe_read_kernel(&proto, 1, flp + GEW_OFF_FLOWI6_PROTO);
    bpf_probe_read_kernel(k.src, 16, flp + GEW_OFF_FLOWI6_SADDR);
    bpf_probe_read_kernel(k.dst, 16, flp + GEW_OFF_FLOWI6_DADDR);
    if (proto == GEW_IPPROTO_TCP || proto == GEW_IPPROTO_UDP) {
        bpf_probe_read_kernel(&sport, 2, flp + GEW_OFF_FLOWI6_SPORT);
        bpf_probe_read_kernel(&dport, 2, flp + GEW_OFF_FLOWI6_DPORT);
    }
    void *nh = 0, *dev = 0;
    u8 gw_family = 0;
    u8 gw[16] = {};
    bpf_probe_read_kernel(&nh, sizeof(nh), res + GEW_OFF_FIB6_RESULT_NH);
    bpf_probe_read_kernel(&type, 1, res + GEW_OFF_FIB6_RESULT_TYPE);
    if (nh) {
        bpf_probe_read_kernel(&dev, sizeof(dev), nh + GEW_OFF_FIB6_NH_COMMON + GEW_OFF_NHC_DEV);
        bpf_probe_read_kernel(&gw_family, 1, nh + GEW_OFF_FIB6_NH_COMMON + GEW_OFF_NHC_GW_FAMILY);
        if (gw_family == GEW_AF_INET6)
            bpf_probe_read_kernel(gw, 16, nh + GEW_OFF_FIB6_NH_COMMON + GEW_OFF_NHC_GW);
    }
    /* as the tracepoint's own ip6_rt_type_to_error(): route types that are errors */
    s32 err = 0;
    if (type == 6)          /* RTN_BLACKHOLE */
        err = -22;
    else if (type == 7)     /* RTN_UNREACHABLE */
        err = -113;
    else if (type == 8)     /* RTN_PROHIBIT */
        err = -13;
    else if (type == 9)     /* RTN_THROW */
        err = -11;
    return gew_fib_scoped(&k, sport, dport, proto, err, iif, dev, gw_family, gw);
}

int gew_neigh_update(struct bpf_raw_tracepoint_args *ctx)
{
    void *n = (void *)ctx->args[0];
    void *lladdr = (void *)ctx->args[1];
    u8 new_state = (u8)ctx->args[2];
    void *dev = 0, *tbl = 0;
    u32 family = 0;
    bpf_probe_read_kernel(&dev, sizeof(dev), n + GEW_OFF_NEIGH_DEV);
    bpf_probe_read_kernel(&tbl, sizeof(tbl), n + GEW_OFF_NEIGH_TBL);
    if (tbl)
        bpf_probe_read_kernel(&family, 4, tbl + GEW_OFF_NEIGH_TABLE_FAMILY);
    u32 netns = gew_dev_netns(dev);
    struct gew_tuple t = {};
    t.family = family;
    if (family == GEW_AF_INET6)
        bpf_probe_read_kernel(t.saddr, 16, n + GEW_OFF_NEIGH_PRIMARY_KEY);
    else
        bpf_probe_read_kernel(t.saddr, 4, n + GEW_OFF_NEIGH_PRIMARY_KEY);
    __builtin_memcpy(t.daddr, t.saddr, 16);
    /* neighbours have no ports: namespace, prefix and interface scope apply */
    struct gew_scope_cfg *c = gew_cfg();
    if (!c || !gew_netns_ok(c, netns, GEW_PROBE_ROUTE))
        return 0;
    if (c->prefix_on && !gew_prefix_match(t.family, t.saddr))
        return 0;
    u32 ifindex = 0;
    if (dev)
        bpf_probe_read_kernel(&ifindex, sizeof(ifindex), dev + GEW_OFF_NETDEV_IFINDEX);
    if (c->iface_on) {
        struct gew_iface_key ik = {.netns = netns, .ifindex = ifindex};
        if (!gew_scope_ifaces.lookup(&ik))
            return 0;
    }
    struct gew_rec_neigh *r;
    r = gew_begin(sizeof(*r), GEW_K_NEIGH, GEW_PROBE_ROUTE);
    if (!r)
        return 0;
    r->family = family;
    r->netns = netns;
    r->ifindex = ifindex;
    r->old_state = 0;
    bpf_probe_read_kernel(&r->old_state, 1, n + GEW_OFF_NEIGH_NUD_STATE);
    r->new_state = new_state;
    r->pad = 0;
    __builtin_memcpy(r->addr, t.saddr, 16);
    __builtin_memset(r->lladdr, 0, sizeof(r->lladdr));
    u8 alen = 0;
    if (dev)
        bpf_probe_read_kernel(&alen, 1, dev + GEW_OFF_NETDEV_ADDR_LEN);
    if (alen > 32)
        alen = 32;
    r->lladdr_len = alen;
    if (lladdr && alen)
        bpf_probe_read_kernel(r->lladdr, alen, lladdr);
    gew_dev_name(dev, r->dev);
    gew_submit(r, GEW_PROBE_ROUTE);
    return 0;
}
