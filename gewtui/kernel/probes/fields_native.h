/* fields_native.h: what the probe units' C encoders share (tcp_state_native.c,
 * tcp_events_native.c, drops_native.c).
 *
 * Each unit's C encoder writes one event's bytes, as its Python encoder (the reference)
 * writes them, into a bounded buffer (pb_buf, gewtui/pbwire.h): fields by key, zero scalars
 * left out as protobuf leaves them out, bytes the Python caches hand over copied in. A struct
 * gew_tuple becomes a Tuple field here, as wire.TupleFields builds it. Layout offsets and
 * field keys come from the Python side when an encoder is made (``tuple_layout_init``), so
 * no layout or field number is restated in C.
 */
#ifndef GEW_FIELDS_NATIVE_H
#define GEW_FIELDS_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "pbwire.h"

typedef pb_buf buf;

/* What a full event buffer raises (a ValueError). The reset and drop encoders hand such a
 * record back (None, hand_back_if_full) and the unit decoder, which has no such bound, makes
 * the same event: only a name longer than the kernel makes them (a crafted vocabulary, a
 * hook's symbol) gets there. */
static PyObject *buffer_full_type;

static inline PyObject *buffer_full(void)
{
    if (!buffer_full_type)
        buffer_full_type = PyErr_NewException("fields_native.BufferFull", PyExc_ValueError, NULL);
    return buffer_full_type;
}

static inline int overflow(void)
{
    PyObject *t = buffer_full();
    if (t)      /* (otherwise the error of making it stays set) */
        PyErr_SetString(t, "event larger than the encoder's buffer");
    return 0;
}

static inline PyObject *hand_back_if_full(PyObject *out)
{
    if (!out && buffer_full_type && PyErr_ExceptionMatches(buffer_full_type)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return out;
}

static inline int put(buf *b, const void *p, Py_ssize_t n) { return (n >= 0 && pb_put(b, p, (size_t)n)) || overflow(); }

static inline int put_key(buf *b, const Py_buffer *k) { return put(b, k->buf, k->len); }

static inline int put_varint(buf *b, uint64_t v) { return pb_put_varint(b, v) || overflow(); }

/* key + varint, left out when 0 */
static inline int put_opt(buf *b, const Py_buffer *k, uint64_t v) { return !v || (put_key(b, k) && put_varint(b, v)); }

/* a bytes object from Python, from byte ``skip`` on */
static inline int put_obj(buf *b, PyObject *o, Py_ssize_t skip)
{
    if (!PyBytes_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "encoder: a cache gave something other than bytes");
        return 0;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(o);
    if (skip > n)
        skip = n;
    return put(b, PyBytes_AS_STRING(o) + skip, n - skip);
}

static inline uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

static inline PyObject *call1(PyObject *fn, PyObject *arg) { return PyObject_CallOneArg(fn, arg); }

/* an int result of a call, as u64 (0 with an exception on failure); takes the reference */
static inline int as_u64(PyObject *o, uint64_t *v)
{
    if (!o)
        return 0;
    *v = PyLong_AsUnsignedLongLong(o);
    Py_DECREF(o);
    return !(*v == (uint64_t)-1 && PyErr_Occurred());
}

static inline PyObject *lookup(PyObject *cache, PyObject *key) { return PyObject_GetItem(cache, key); }

/* cache[key] copied into b; takes the key's reference (a NULL key: its error stands) */
static inline int put_item(buf *b, PyObject *cache, PyObject *key)
{
    if (!key)
        return 0;
    PyObject *o = lookup(cache, key);
    Py_DECREF(key);
    if (!o)
        return 0;
    int ok = put_obj(b, o, 0);
    Py_DECREF(o);
    return ok;
}

/* cache[v] for an int v, copied into b */
static inline int put_cached(buf *b, PyObject *cache, long long v) { return put_item(b, cache, PyLong_FromLongLong(v)); }

/* where struct gew_tuple's fields lie, and the Tuple message's keys */
typedef struct TupleLayout {
    Py_ssize_t saddr_at, daddr_at, sport_at, dport_at, family_at, proto_at, size, af_inet, af_inet6;
    Py_buffer k_family, k_saddr, k_daddr, k_sport, k_dport, k_proto;
} TupleLayout;

/* A struct gew_tuple as the Tuple field ``key`` (key, length, payload): what
 * wire.TupleFields gives for it, 4 or 16 address bytes by family, zeros left out. Every
 * connection brings a new tuple, so it is built rather than looked up. */
static inline int put_tuple(const TupleLayout *l, buf *b, const Py_buffer *key, const uint8_t *t)
{
    uint8_t mem[64];       /* family, two 16-byte addresses, ports, protocol: at most 54 */
    buf *p = &(buf){mem, 0, sizeof mem};
    uint16_t family = rd16(t + l->family_at);
    Py_ssize_t n = family == l->af_inet ? 4 : family == l->af_inet6 ? 16 : 0;
    if (!put_opt(p, &l->k_family, family))
        return 0;
    if (n && !(put_key(p, &l->k_saddr) && put_varint(p, (uint64_t)n) && put(p, t + l->saddr_at, n)
               && put_key(p, &l->k_daddr) && put_varint(p, (uint64_t)n) && put(p, t + l->daddr_at, n)))
        return 0;
    if (!put_opt(p, &l->k_sport, rd16(t + l->sport_at)) || !put_opt(p, &l->k_dport, rd16(t + l->dport_at))
        || !put_opt(p, &l->k_proto, t[l->proto_at]))
        return 0;
    return put_key(b, key) && put_varint(b, (uint64_t)p->n) && put(b, p->p, p->n);
}

/* dict[name], borrowed; KeyError naming it when missing */
static inline PyObject *need(PyObject *d, const char *name)
{
    PyObject *v = PyDict_GetItemString(d, name);
    if (!v)
        PyErr_Format(PyExc_KeyError, "encoder(): %s missing", name);
    return v;
}

/* the bytes keys[names[i]] into bufs[i] */
static inline int load_keys(PyObject *keys, const char *const *names, Py_buffer *const *bufs, int n)
{
    for (int i = 0; i < n; i++) {
        PyObject *v = need(keys, names[i]);
        if (!v || !PyBytes_Check(v) || PyObject_GetBuffer(v, bufs[i], PyBUF_SIMPLE) < 0) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "encoder(): key %s must be bytes", names[i]);
            return 0;
        }
    }
    return 1;
}

/* the non-negative ints layout[names[i]] into ints[i] */
static inline int load_ints(PyObject *layout, const char *const *names, Py_ssize_t *const *ints, int n)
{
    for (int i = 0; i < n; i++) {
        PyObject *v = need(layout, names[i]);
        if (!v)
            return 0;
        *ints[i] = PyLong_AsSsize_t(v);
        if (*ints[i] < 0) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "encoder(): %s is negative", names[i]);
            return 0;
        }
    }
    return 1;
}

static inline void release_keys(Py_buffer *const *bufs, int n)
{
    for (int i = 0; i < n; i++)
        if (bufs[i]->obj)
            PyBuffer_Release(bufs[i]);
}

#define TUPLE_KEYS(l) {&(l)->k_family, &(l)->k_saddr, &(l)->k_daddr, &(l)->k_sport, &(l)->k_dport, &(l)->k_proto}

/* keys t_family .. t_proto; layout t_saddr_at .. t_proto_at, tup_size, af_inet, af_inet6 */
static inline int tuple_layout_init(TupleLayout *l, PyObject *keys, PyObject *layout)
{
    static const char *const kn[] = {"t_family", "t_saddr", "t_daddr", "t_sport", "t_dport", "t_proto"};
    static const char *const ln[] = {"t_saddr_at", "t_daddr_at", "t_sport_at", "t_dport_at", "t_family_at",
                                     "t_proto_at", "tup_size", "af_inet", "af_inet6"};
    Py_buffer *kb[] = TUPLE_KEYS(l);
    Py_ssize_t *li[] = {&l->saddr_at, &l->daddr_at, &l->sport_at, &l->dport_at, &l->family_at, &l->proto_at,
                        &l->size, &l->af_inet, &l->af_inet6};
    if (!load_keys(keys, kn, kb, 6) || !load_ints(layout, ln, li, 9))
        return 0;
    if (l->saddr_at + 16 > l->size || l->daddr_at + 16 > l->size || l->sport_at + 2 > l->size
        || l->dport_at + 2 > l->size || l->family_at + 2 > l->size || l->proto_at >= l->size) {
        PyErr_SetString(PyExc_ValueError, "encoder(): a tuple offset outside the tuple");
        return 0;
    }
    return 1;
}

static inline void tuple_layout_clear(TupleLayout *l)
{
    Py_buffer *kb[] = TUPLE_KEYS(l);
    release_keys(kb, 6);
}

/* objs[names[i]] into slots[i], as new references */
static inline int load_objects(PyObject *objs, const char *const *names, PyObject **const *slots, int n)
{
    for (int i = 0; i < n; i++) {
        PyObject *v = need(objs, names[i]);
        if (!v)
            return 0;
        *slots[i] = Py_NewRef(v);
    }
    return 1;
}

/* The plumbing of a unit's record encoder type, the same for each (tcp_events_native.c,
 * drops_native.c): the file defines struct Encoder (its first object ``env``, its record
 * ``size``, a TupleLayout ``tl``), OBJS(e) and KEY_BUFS(e), its objects and field keys, and
 * encode(e, header, record); this makes the call, which checks the record before encode
 * reads it, the collector's traverse and clear (the encoder holds its decoder's bound
 * methods, the decoder's table holds the encoder: a cycle the collector must see), the
 * type ``EncoderType`` and its loading from Python (``encoder_load``; the file also defines
 * INTS(e) and the name lists OBJECTS, KEYS and LAYOUT before it). A record whose event
 * outgrows the buffer is handed back (None). */
#define N(a) ((int)(sizeof a / sizeof *a))
#define ENCODER_TYPE(MODULE, WHAT)                                                                            \
    static PyObject *Encoder_call(PyObject *self, PyObject *args, PyObject *kw)                               \
    {                                                                                                         \
        Encoder *e = (Encoder *)self;                                                                         \
        PyObject *h, *rec;                                                                                    \
        if (kw && PyDict_GET_SIZE(kw)) {                                                                      \
            PyErr_SetString(PyExc_TypeError, WHAT " encoder: no keyword arguments");                         \
            return NULL;                                                                                      \
        }                                                                                                     \
        if (!PyArg_UnpackTuple(args, WHAT, 2, 2, &h, &rec))                                                  \
            return NULL;                                                                                      \
        if (!e->env) { /* cleared by the collector */                                                         \
            PyErr_SetString(PyExc_RuntimeError, WHAT " encoder: already cleared");                           \
            return NULL;                                                                                      \
        }                                                                                                     \
        if (!PyBytes_Check(rec))                                                                              \
            return PyErr_Format(PyExc_TypeError, WHAT " encoder: the record must be bytes");                 \
        if (PyBytes_GET_SIZE(rec) != e->size)                                                                 \
            return PyErr_Format(PyExc_ValueError, WHAT " record of %zd bytes, layout says %zd",              \
                                PyBytes_GET_SIZE(rec), e->size);                                              \
        return hand_back_if_full(encode(e, h, (const uint8_t *)PyBytes_AS_STRING(rec)));                      \
    }                                                                                                         \
    static int Encoder_traverse(PyObject *self, visitproc visit, void *arg)                                   \
    {                                                                                                         \
        PyObject **objs[] = OBJS((Encoder *)self);                                                            \
        for (int i = 0; i < N(objs); i++)                                                                     \
            Py_VISIT(*objs[i]);                                                                               \
        return 0;                                                                                             \
    }                                                                                                         \
    static int Encoder_clear(PyObject *self)                                                                  \
    {                                                                                                         \
        Encoder *e = (Encoder *)self;                                                                         \
        Py_buffer *bufs[] = KEY_BUFS(e);                                                                      \
        release_keys(bufs, N(bufs));                                                                          \
        tuple_layout_clear(&e->tl);                                                                           \
        PyObject **objs[] = OBJS(e);                                                                          \
        for (int i = 0; i < N(objs); i++)                                                                     \
            Py_CLEAR(*objs[i]);                                                                               \
        return 0;                                                                                             \
    }                                                                                                         \
    static void Encoder_dealloc(PyObject *self)                                                               \
    {                                                                                                         \
        PyObject_GC_UnTrack(self);                                                                            \
        Encoder_clear(self);                                                                                  \
        Py_TYPE(self)->tp_free(self);                                                                         \
    }                                                                                                         \
    static PyTypeObject EncoderType = {                                                                       \
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gewtui.kernel.probes." MODULE ".Encoder",                  \
        .tp_basicsize = sizeof(Encoder),                                                                      \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,                                                  \
        .tp_doc = "The capture's " WHAT " encoder",                                                           \
        .tp_call = Encoder_call,                                                                              \
        .tp_dealloc = Encoder_dealloc,                                                                        \
        .tp_traverse = Encoder_traverse,                                                                      \
        .tp_clear = Encoder_clear,                                                                            \
    };                                                                                                        \
    /* encoder(objects, keys, layout), three dicts by the names in OBJECTS, KEYS and LAYOUT: a      \
     * new, untracked encoder with them loaded (every field NULL first, so a failure part way is       \
     * released cleanly); the file's make_encoder checks the layout against the record, then tracks */ \
    static Encoder *encoder_load(PyObject *args)                                                              \
    {                                                                                                         \
        PyObject *objs, *keys, *layout;                                                                       \
        if (!PyArg_ParseTuple(args, "O!O!O!", &PyDict_Type, &objs, &PyDict_Type, &keys, &PyDict_Type,          \
                              &layout))                                                                       \
            return NULL;                                                                                      \
        Encoder *e = PyObject_GC_New(Encoder, &EncoderType);                                                  \
        if (!e)                                                                                               \
            return NULL;                                                                                      \
        memset((char *)e + sizeof(PyObject), 0, sizeof(Encoder) - sizeof(PyObject));                         \
        PyObject **slots[] = OBJS(e);                                                                         \
        Py_buffer *kb[] = KEY_BUFS(e);                                                                        \
        Py_ssize_t *ints[] = INTS(e);                                                                         \
        _Static_assert(N(slots) == N(OBJECTS) && N(kb) == N(KEYS) && N(ints) == N(LAYOUT),                   \
                       "each name has its field");                                                            \
        if (!load_objects(objs, OBJECTS, slots, N(slots)) || !load_keys(keys, KEYS, kb, N(kb))                \
            || !tuple_layout_init(&e->tl, keys, layout) || !load_ints(layout, LAYOUT, ints, N(ints))) {       \
            Py_DECREF(e);                                                                                     \
            return NULL;                                                                                      \
        }                                                                                                     \
        return e;                                                                                             \
    }

/* A new bytes object: head (bytes), then key, a varint length and the body. */
static inline PyObject *event_bytes(PyObject *head, const Py_buffer *key, const buf *body)
{
    if (!PyBytes_Check(head)) {
        PyErr_SetString(PyExc_TypeError, "encoder: the envelope is not bytes");
        return NULL;
    }
    uint8_t lenb[10];
    Py_ssize_t hn = PyBytes_GET_SIZE(head), kn = key->len, ln = (Py_ssize_t)pb_varint(lenb, (uint64_t)body->n);
    PyObject *ev = PyBytes_FromStringAndSize(NULL, hn + kn + ln + (Py_ssize_t)body->n);
    if (!ev)
        return NULL;
    char *d = PyBytes_AS_STRING(ev);
    memcpy(d, PyBytes_AS_STRING(head), (size_t)hn);
    memcpy(d + hn, key->buf, (size_t)kn);
    memcpy(d + hn + kn, lenb, (size_t)ln);
    memcpy(d + hn + kn + ln, body->p, body->n);
    return ev;
}

#endif
