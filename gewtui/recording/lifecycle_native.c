/* lifecycle_native: gewtui/recording/lifecycle.py's expansion, out of the interpreter.
 *
 * Place in the pipeline: every reader (the live engine's pump, replay, export, the control
 * plane) expands a Lifecycle event into the events it stands for before anything above the
 * recording sees it. On a churning box that expansion is about 40% of the live engine's
 * work in Python; here it is a walk over the event's bytes.
 *
 * The contract is the Python function's, byte for byte: expand(raw) returns the same list of
 * serialized events, or None. None means "not in the form this walk takes": the caller then
 * runs the Python expansion, which is the reference and which raises on a malformed record.
 * The form taken is the one the capture writes, and it is checked whole: every field of the
 * Event, the Lifecycle and its Tuples and Attributions in field-number order, each at most
 * once (ca_state_names excepted), no field the schema does not list, varints minimal, no
 * scalar present with its default value, uint32 fields below 2^32, bools exactly 1, strings
 * well-formed UTF-8, the prior histogram packed. Addresses and names longer than a capture
 * writes (the reference refuses them) are declined too. For such input, re-serializing any parsed sub-message
 * gives back its bytes, so copying bytes here is what the Python code's SerializeToString
 * does; anything else (a crafted recording, a future field) goes to the reference.
 * Hostile input: every read is bounded by the input, every write by the output buffer,
 * and the output is at most a fixed multiple of the input (64 items, each event made of
 * disjoint pieces of the input plus a bounded envelope).
 *
 * Field numbers are proto/gewyvern/v1/events.proto's; tests/test_lifecycle_native.py holds
 * this walk against the Python expansion on random, real and mutated records.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "pbwire.h"

#define MAX_ITEMS 64
#define ITEM_SIZE 24
#define COUNTERS_HEAD 128        /* lifecycle.COUNTERS.size */
#define HIST_N 24
#define COUNTERS_SIZE (COUNTERS_HEAD + HIST_N * 4 + 8)
#define ITEM_STATE 1
#define ITEM_OWNER 2
#define ITEM_CONG 3
#define NO_PREVIOUS 0xFFFFFFFFu
#define MAX_ADDR 16              /* lifecycle.MAX_ADDR */
#define MAX_NAME 64              /* lifecycle.MAX_NAME */

/* Event */
#define E_ID 1
#define E_KTIME 2
#define E_CPU 3
#define E_ATTR 4
#define E_STATE 10
#define E_PROBE 13
#define E_CONG 14
#define E_DESTROY 15
#define E_OWNER 16
#define E_LIFE 40
/* Lifecycle */
enum { L_TUPLE = 1, L_SOCK, L_NETNS, L_TASK, L_OWNER, L_LEARNT, L_ITEMS, L_NAMES, L_DESTROYED = 10,
       L_CLOSER, L_FTUPLE, L_FNETNS, L_COOKIE, L_COUNTERS, L_PRIOR, L_PEND, L_PSEGS, L_PBYTES, L_PZWS,
       L_PHIST };

static unsigned char tcp_states[256];   /* 1 where the proto names the TCP state */
static uint64_t source_none;            /* ATTRIBUTION_NONE */
static int configured;

typedef struct { const uint8_t *p; Py_ssize_t n; } span;

/* ---- reading the canonical form (every reader returns 0 on anything else) ---- */

static int rd_varint(const uint8_t *p, Py_ssize_t n, Py_ssize_t *j, uint64_t *v)
{
    uint64_t r = 0;
    Py_ssize_t i = *j;
    for (int shift = 0; shift < 64 && i < n; shift += 7) {
        uint8_t b = p[i++];
        if (shift == 63 && b > 1)
            return 0;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (b == 0 && shift)
                return 0;       /* not minimal */
            *j = i;
            *v = r;
            return 1;
        }
    }
    return 0;
}

/* One field: its number, wire type, and value (varint) or span (length-delimited). */
typedef struct { uint32_t num; uint64_t v; span s; } field;

static int rd_field(const uint8_t *p, Py_ssize_t n, Py_ssize_t *j, field *f)
{
    uint64_t key, len;
    if (!rd_varint(p, n, j, &key) || key >> 32)
        return 0;
    f->num = (uint32_t)(key >> 3);
    switch (key & 7) {
    case 0:
        f->s.p = NULL;
        f->s.n = -1;
        return rd_varint(p, n, j, &f->v);
    case 2:
        if (!rd_varint(p, n, j, &len) || len > (uint64_t)(n - *j))
            return 0;
        f->s.p = p + *j;
        f->s.n = (Py_ssize_t)len;
        *j += (Py_ssize_t)len;
        return 1;
    default:
        return 0;
    }
}

static int is_varint(const field *f) { return f->s.n < 0; }
static int u32(const field *f) { return is_varint(f) && f->v && f->v < (1ull << 32); }
static int u64(const field *f) { return is_varint(f) && f->v; }
static int flag(const field *f) { return is_varint(f) && f->v == 1; }
static int bytes_(const field *f) { return !is_varint(f) && f->s.n > 0; }

/* Well-formed UTF-8, as upb checks a proto3 string (shortest forms, no surrogates, at most
 * U+10FFFF), and no longer than MAX_NAME: a name longer than any the capture writes is the
 * reference's to refuse. */
static int name_ok(span s)
{
    if (s.n > MAX_NAME)
        return 0;
    for (Py_ssize_t i = 0; i < s.n;) {
        uint8_t c = s.p[i];
        int more;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (more >= s.n - i)
            return 0;
        for (int k = 1; k <= more; k++) {
            uint8_t b = s.p[i + k];
            if ((b & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (b & 0x3F);
        }
        if ((more == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (more == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += more + 1;
    }
    return 1;
}

typedef struct {
    int present;
    span raw;             /* its bytes: what SerializeToString gives for canonical input */
    span pre, post;       /* the fields before sport and after dport */
    uint64_t sport, dport;
} tuple_t;

static int rd_tuple(span s, tuple_t *t)
{
    Py_ssize_t j = 0, pre_end = 0, post_at = s.n;
    uint32_t last = 0;
    field f;
    memset(t, 0, sizeof *t);
    t->present = 1;
    t->raw = s;
    while (j < s.n) {
        Py_ssize_t at = j;
        if (!rd_field(s.p, s.n, &j, &f) || f.num <= last)
            return 0;
        last = f.num;
        switch (f.num) {
        case 1: case 6: if (!u32(&f)) return 0; break;
        case 2: case 3: if (!bytes_(&f) || f.s.n > MAX_ADDR) return 0; break;
        case 4: if (!u32(&f)) return 0; t->sport = f.v; break;
        case 5: if (!u32(&f)) return 0; t->dport = f.v; break;
        default: return 0;
        }
        if (f.num <= 3)
            pre_end = j;
        if (f.num == 6)
            post_at = at;
    }
    t->pre.p = s.p;
    t->pre.n = pre_end;
    t->post.p = s.p + post_at;
    t->post.n = s.n - post_at;
    return 1;
}

typedef struct {
    int present;
    span raw;
    uint64_t tgid;
    span comm;
} attr_t;

static int rd_attr(span s, attr_t *a)
{
    Py_ssize_t j = 0;
    uint32_t last = 0;
    field f;
    memset(a, 0, sizeof *a);
    a->present = 1;
    a->raw = s;
    while (j < s.n) {
        if (!rd_field(s.p, s.n, &j, &f) || f.num <= last)
            return 0;
        last = f.num;
        switch (f.num) {
        case 1: case 5: case 7: if (!u32(&f)) return 0; break;
        case 2: if (!u32(&f)) return 0; a->tgid = f.v; break;
        case 3: if (!bytes_(&f) || !name_ok(f.s)) return 0; a->comm = f.s; break;
        case 4: if (!u64(&f)) return 0; break;
        case 6: if (!is_varint(&f) || !f.v || f.v >= (1ull << 31)) return 0; break;   /* an enum */
        default: return 0;
        }
    }
    return 1;
}

typedef struct {
    uint64_t id, ktime, cpu;
    tuple_t tup, ftup;
    uint64_t sock, netns, fnetns, cookie;
    attr_t task, owner, learnt, closer;
    span items, counters, phist;
    span names[256];      /* the first 256 names: an item's value is a u8 */
    Py_ssize_t n_names;
    int destroyed, prior;
    uint64_t pend, psegs, pbytes, pzws;
} life_t;

static int rd_life(span s, life_t *l)
{
    Py_ssize_t j = 0;
    uint32_t last = 0;
    field f;
    while (j < s.n) {
        if (!rd_field(s.p, s.n, &j, &f))
            return 0;
        if (f.num < last || (f.num == last && f.num != L_NAMES))
            return 0;
        last = f.num;
        switch (f.num) {
        case L_TUPLE: if (is_varint(&f) || !rd_tuple(f.s, &l->tup)) return 0; break;
        case L_SOCK: if (!u64(&f)) return 0; l->sock = f.v; break;
        case L_NETNS: if (!u32(&f)) return 0; l->netns = f.v; break;
        case L_TASK: if (is_varint(&f) || !rd_attr(f.s, &l->task)) return 0; break;
        case L_OWNER: if (is_varint(&f) || !rd_attr(f.s, &l->owner)) return 0; break;
        case L_LEARNT: if (is_varint(&f) || !rd_attr(f.s, &l->learnt)) return 0; break;
        case L_ITEMS: if (!bytes_(&f)) return 0; l->items = f.s; break;
        case L_NAMES:
            if (is_varint(&f) || !name_ok(f.s))
                return 0;
            if (l->n_names < 256)
                l->names[l->n_names] = f.s;
            l->n_names++;
            break;
        case L_DESTROYED: if (!flag(&f)) return 0; l->destroyed = 1; break;
        case L_CLOSER: if (is_varint(&f) || !rd_attr(f.s, &l->closer)) return 0; break;
        case L_FTUPLE: if (is_varint(&f) || !rd_tuple(f.s, &l->ftup)) return 0; break;
        case L_FNETNS: if (!u32(&f)) return 0; l->fnetns = f.v; break;
        case L_COOKIE: if (!u64(&f)) return 0; l->cookie = f.v; break;
        case L_COUNTERS: if (!bytes_(&f)) return 0; l->counters = f.s; break;
        case L_PRIOR: if (!flag(&f)) return 0; l->prior = 1; break;
        case L_PEND: if (!u64(&f)) return 0; l->pend = f.v; break;
        case L_PSEGS: if (!u64(&f)) return 0; l->psegs = f.v; break;
        case L_PBYTES: if (!u64(&f)) return 0; l->pbytes = f.v; break;
        case L_PZWS: if (!u64(&f)) return 0; l->pzws = f.v; break;
        case L_PHIST: {
            /* packed uint32s, each below 2^32 (a zero is a value here, not a default) */
            Py_ssize_t k = 0;
            uint64_t v;
            if (!bytes_(&f))
                return 0;
            while (k < f.s.n)
                if (!rd_varint(f.s.p, f.s.n, &k, &v) || v >> 32)
                    return 0;
            l->phist = f.s;
            break;
        }
        default: return 0;
        }
    }
    return 1;
}

/* ---- writing ---- */

typedef pb_buf buf;

static int w_bytes(buf *b, const void *p, Py_ssize_t n) { return n >= 0 && pb_put(b, p, (size_t)n); }

static int w_varint(buf *b, uint64_t v) { return pb_put_varint(b, v); }

static int w_key(buf *b, uint32_t num, int wt) { return w_varint(b, ((uint64_t)num << 3) | (uint64_t)wt); }

/* a varint field, left out when 0 (proto3) */
static int w_opt(buf *b, uint32_t num, uint64_t v) { return !v || (w_key(b, num, 0) && w_varint(b, v)); }

static int w_ld(buf *b, uint32_t num, const void *p, Py_ssize_t n)
{
    return w_key(b, num, 2) && w_varint(b, (uint64_t)n) && w_bytes(b, p, n);
}

/* Tuple field 1 of a body: the lifecycle's tuple with an item's ports (CopyFrom, then set) */
static int w_tuple(buf *b, const tuple_t *t, uint64_t sport, uint64_t dport)
{
    uint8_t tmp[64];
    buf in = {tmp, 0, sizeof tmp};
    if (!w_opt(&in, 4, sport) || !w_opt(&in, 5, dport))
        return 0;
    return w_key(b, 1, 2) && w_varint(b, (uint64_t)(t->pre.n + in.n + t->post.n))
           && w_bytes(b, t->pre.p, t->pre.n) && w_bytes(b, tmp, in.n) && w_bytes(b, t->post.p, t->post.n);
}

static int w_attr(buf *b, const attr_t *a) { return w_ld(b, E_ATTR, a->raw.p, a->raw.n); }

static int w_nobody(buf *b, uint64_t netns)
{
    uint8_t tmp[32];
    buf in = {tmp, 0, sizeof tmp};
    return w_opt(&in, 5, netns) && w_opt(&in, 6, source_none) && w_ld(b, E_ATTR, tmp, in.n);
}

static uint32_t le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t le64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* Appends one event (envelope, then the body in ``body``) to ``out``; 0 on failure. */
static int emit(PyObject *out, buf *ev, uint64_t id, uint64_t ktime, uint64_t cpu, const attr_t *attr,
                uint64_t nobody_netns, uint32_t key, const buf *body)
{
    ev->n = 0;
    if (!w_opt(ev, E_ID, id) || !w_opt(ev, E_KTIME, ktime) || !w_opt(ev, E_CPU, cpu))
        return 0;
    if (attr ? !w_attr(ev, attr) : !w_nobody(ev, nobody_netns))
        return 0;
    if (!w_ld(ev, key, body->p, body->n))
        return 0;
    PyObject *o = PyBytes_FromStringAndSize((const char *)ev->p, ev->n);
    if (!o)
        return -1;
    int r = PyList_Append(out, o);
    Py_DECREF(o);
    return r ? -1 : 1;
}

static const char *via_name(uint8_t a) { return a == 1 ? "send" : a == 2 ? "recv" : NULL; }

/* The items' events; returns 1, 0 (not this walk's form), or -1 (a Python error). */
static int expand_items(PyObject *out, const life_t *l, buf *ev, buf *body, const attr_t **own_io)
{
    Py_ssize_t n = l->items.n / ITEM_SIZE;
    const attr_t *own = *own_io;
    const attr_t *learnt = l->learnt.present ? &l->learnt : NULL;
    const attr_t *task = l->task.present ? &l->task : NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint8_t *it = l->items.p + i * ITEM_SIZE;
        uint64_t ktime = le64(it);
        uint32_t cpu = le32(it + 8), aux = le32(it + 12);
        uint16_t sport = (uint16_t)(it[16] | it[17] << 8), dport = (uint16_t)(it[18] | it[19] << 8);
        uint8_t kind = it[20], ctx = it[21], a = it[22], bb = it[23];
        const attr_t *previous = own, *attr;
        uint32_t key;
        char num[8];
        if (ctx == 0 && task) {
            attr = task;
            if (learnt) {
                own = learnt;
                learnt = NULL;
            }
        } else {
            attr = own;
        }
        body->n = 0;
        if (!w_tuple(body, &l->tup, sport, dport) || !w_opt(body, 2, l->sock))
            return 0;
        if (kind == ITEM_STATE) {
            if (!w_opt(body, 3, tcp_states[a] ? a : 0) || !w_opt(body, 4, tcp_states[bb] ? bb : 0))
                return 0;
            key = E_STATE;
        } else if (kind == ITEM_OWNER) {
            uint32_t prev_tgid = aux != NO_PREVIOUS ? aux : 0;
            const char *via = via_name(a);
            if (!w_opt(body, 3, prev_tgid))
                return 0;
            if (previous && previous->tgid == prev_tgid && previous->comm.n > 0
                && !w_ld(body, 4, previous->comm.p, previous->comm.n))
                return 0;
            if (!via) {
                snprintf(num, sizeof num, "%u", a);
                via = num;
            }
            if (!w_ld(body, 5, via, (Py_ssize_t)strlen(via)))
                return 0;
            key = E_OWNER;
        } else if (kind == ITEM_CONG) {
            span name;
            if (a < l->n_names) {
                name = l->names[a];
            } else {
                snprintf(num, sizeof num, "%u", a);
                name.p = (const uint8_t *)num;
                name.n = (Py_ssize_t)strlen(num);
            }
            if (!w_opt(body, 3, a) || (name.n && !w_ld(body, 4, name.p, name.n)))
                return 0;
            key = E_CONG;
        } else {
            return 0;   /* the reference raises */
        }
        int r = emit(out, ev, l->id + (uint64_t)i, ktime, cpu, attr, l->netns, key, body);
        if (r <= 0)
            return r;
    }
    *own_io = own;
    return 1;
}

/* The destroy and (with counters) the final summary, as lifecycle._destroy makes them. */
static int expand_destroy(PyObject *out, const life_t *l, buf *ev, buf *body, const attr_t *own)
{
    uint64_t next = l->id + (uint64_t)(l->items.n / ITEM_SIZE);
    const attr_t *attr = l->closer.present ? &l->closer : own;
    static const tuple_t empty;
    const tuple_t *ft = l->ftup.present ? &l->ftup : &empty;

    body->n = 0;
    if (!w_ld(body, 1, ft->raw.p, ft->raw.n) || !w_opt(body, 2, l->sock) || !w_opt(body, 3, l->cookie))
        return 0;
    int r = emit(out, ev, next, l->ktime, l->cpu, attr, l->fnetns, E_DESTROY, body);
    if (r <= 0 || !l->counters.n)
        return r;
    if (l->counters.n != COUNTERS_SIZE)
        return 0;
    const uint8_t *c = l->counters.p;
    uint64_t s_cookie = le64(c + 48), start = le64(c + 56), end = le64(c + 64), segs = le64(c + 72),
             nbytes = le64(c + 80), zws = le64(c + 88);
    uint64_t cwnd = le32(c + 96), ssth = le32(c + 100), swnd = le32(c + 104), rwnd = le32(c + 108),
             minw = le32(c + 112), srtt = le32(c + 116), maxsrtt = le32(c + 120);
    uint8_t zw = c[124];
    uint64_t hist[HIST_N], prev[HIST_N] = {0};
    int any = 0, nb;
    for (int i = 0; i < HIST_N; i++) {
        hist[i] = le32(c + COUNTERS_HEAD + 4 * i);
        any |= hist[i] != 0;
    }
    if (l->prior) {
        Py_ssize_t k = 0;
        uint64_t v;
        for (int i = 0; i < HIST_N && k < l->phist.n; i++)
            if (rd_varint(l->phist.p, l->phist.n, &k, &v))
                prev[i] = v;
        start = l->pend;
        segs = segs > l->psegs ? segs - l->psegs : 0;
        nbytes = nbytes > l->pbytes ? nbytes - l->pbytes : 0;
        zws = zws > l->pzws ? zws - l->pzws : 0;
        for (int i = 0; i < HIST_N; i++)
            hist[i] = any && hist[i] > prev[i] ? hist[i] - prev[i] : 0;
    }
    for (nb = HIST_N; nb > 0 && !hist[nb - 1]; nb--)
        ;
    if (minw == 0xFFFFFFFFu)
        minw = 0;
    body->n = 0;
    if (!w_ld(body, 1, ft->raw.p, ft->raw.n) || !w_opt(body, 2, l->sock) || !w_opt(body, 3, l->cookie ? l->cookie : s_cookie)
        || !w_opt(body, 4, start) || !w_opt(body, 5, end) || !w_opt(body, 6, segs) || !w_opt(body, 7, nbytes)
        || !w_opt(body, 8, cwnd) || !w_opt(body, 9, ssth) || !w_opt(body, 10, swnd) || !w_opt(body, 11, rwnd)
        || !w_opt(body, 12, minw) || !w_opt(body, 13, srtt) || !w_opt(body, 14, maxsrtt) || !w_opt(body, 15, zws)
        || (zw && !w_opt(body, 16, 1)) || !w_opt(body, 17, 1))
        return 0;
    if (nb) {
        uint8_t tmp[HIST_N * 5];
        buf packed = {tmp, 0, sizeof tmp};
        for (int i = 0; i < nb; i++)
            if (!w_varint(&packed, hist[i]))
                return 0;
        if (!w_ld(body, 30, tmp, packed.n))
            return 0;
    }
    return emit(out, ev, next + 1, l->ktime, l->cpu, attr, l->fnetns, E_PROBE, body);
}

static PyObject *expand(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    life_t l;
    field f;
    Py_ssize_t j = 0;
    uint32_t last = 0;
    int ok = 0;
    PyObject *out = NULL;
    uint8_t *mem = NULL;
    (void)self;

    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "lifecycle_native: configure() first");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const uint8_t *p = view.buf;
    Py_ssize_t n = view.len;
    memset(&l, 0, sizeof l);
    /* the envelope the capture writes: id, ktime, cpu, then the lifecycle to the end */
    while (j < n && last != E_LIFE) {
        if (!rd_field(p, n, &j, &f) || f.num <= last)
            goto done;
        last = f.num;
        switch (f.num) {
        case E_ID: if (!u64(&f)) goto done; l.id = f.v; break;
        case E_KTIME: if (!u64(&f)) goto done; l.ktime = f.v; break;
        case E_CPU: if (!u32(&f)) goto done; l.cpu = f.v; break;
        case E_LIFE: if (is_varint(&f) || !rd_life(f.s, &l)) goto done; break;
        default: goto done;
        }
    }
    if (last != E_LIFE || j != n || !l.id)
        goto done;
    Py_ssize_t n_items = l.items.n / ITEM_SIZE;
    if (l.items.n % ITEM_SIZE || n_items > MAX_ITEMS || l.id > UINT64_MAX - MAX_ITEMS - 2)
        goto done;
    /* each event is disjoint pieces of the input plus a bounded envelope and summary */
    Py_ssize_t cap = n + 1024;
    mem = PyMem_Malloc((size_t)cap * 2);
    if (!mem)
        goto fail;
    buf ev = {mem, 0, cap}, body = {mem + cap, 0, cap};
    out = PyList_New(0);
    if (!out)
        goto fail;
    const attr_t *own = l.owner.present ? &l.owner : NULL;
    int r = expand_items(out, &l, &ev, &body, &own);
    if (r > 0 && l.destroyed)
        r = expand_destroy(out, &l, &ev, &body, own);
    if (r < 0)
        goto fail;
    ok = r > 0;
done:
    PyMem_Free(mem);
    PyBuffer_Release(&view);
    if (ok)
        return out;
    Py_XDECREF(out);
    Py_RETURN_NONE;
fail:
    PyMem_Free(mem);
    PyBuffer_Release(&view);
    Py_XDECREF(out);
    return NULL;
}

static PyObject *configure(PyObject *self, PyObject *args)
{
    Py_buffer states;
    unsigned long long none;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*K", &states, &none))
        return NULL;
    if (states.len != 256) {
        PyBuffer_Release(&states);
        PyErr_SetString(PyExc_ValueError, "states: 256 bytes, one per kernel TCP state value");
        return NULL;
    }
    memcpy(tcp_states, states.buf, 256);
    PyBuffer_Release(&states);
    source_none = none;
    configured = 1;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(states, none_source): which TCP state values the proto names (256 bytes, 1 each), "
     "and ATTRIBUTION_NONE's value"},
    {"expand", expand, METH_O,
     "expand(raw) -> list[bytes] | None: the events the serialized lifecycle Event stands for, "
     "as lifecycle.expand makes them; None when raw is not in the capture's canonical form"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "lifecycle_native",
    "Lifecycle events expanded in C (gewtui.recording.lifecycle uses it, the Python code is the reference).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_lifecycle_native(void) { return PyModule_Create(&module); }
