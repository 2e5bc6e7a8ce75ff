/* drops_native: the capture's encoder for drop records, out of the interpreter.
 *
 * Place in the pipeline: a drop storm (a flood at a closed port, a firewall refusing a
 * burst, SYNs nobody listens for) is exactly when an operator runs gew, and each dropped
 * packet is one record (bpf/drops.c), written as one SkbDrop event by drops.py's ``drop``
 * encoder, which stays the reference. This is the same function over the same state: the
 * decoder's socket ids and envelope, and the caches of reason names, attributions,
 * interfaces and drop sites, are the Python objects themselves, called or looked up here,
 * so their rules stay written once; the record's reading and the event's bytes move into
 * C. A listen overflow is handed back (None) as in Python: the unit decoder makes its two
 * events. Layout offsets and field keys come from the Python side (drops.py,
 * ``_native_drop``).
 *
 * Input is the kernel's own record, checked for its exact size by the decoder before it
 * gets here and again here; every write is bounded by the event buffer.
 * tests/test_probe_encoders_native.py holds it against the Python encoder.
 */
#include "fields_native.h"

typedef struct Encoder {
    PyObject_HEAD
    PyObject *env, *sid, *overflow, *attribution, *reasons, *hows, *ifaces, *sites;
    TupleLayout tl;
    Py_buffer k_tuple, k_proto, k_loc, k_sock, k_count, k_body;
    Py_ssize_t size, tup_at, sk_at, loc_at, reason_at, netns_at, ifindex_at, proto_at, attr_at, ifname_at,
        ifname_size, unspecified, unattributed, by_socket;
} Encoder;

#define OBJS(e) {&(e)->env, &(e)->sid, &(e)->overflow, &(e)->attribution, &(e)->reasons, &(e)->hows, \
                 &(e)->ifaces, &(e)->sites}
#define KEY_BUFS(e) {&(e)->k_tuple, &(e)->k_proto, &(e)->k_loc, &(e)->k_sock, &(e)->k_count, &(e)->k_body}
#define INTS(e) {&(e)->size, &(e)->tup_at, &(e)->sk_at, &(e)->loc_at, &(e)->reason_at, &(e)->netns_at, \
                 &(e)->ifindex_at, &(e)->proto_at, &(e)->attr_at, &(e)->ifname_at, &(e)->ifname_size, \
                 &(e)->unspecified, &(e)->unattributed, &(e)->by_socket}
static const char *const OBJECTS[] = {"env", "sid", "overflow", "attribution", "reasons", "hows", "ifaces", "sites"};
static const char *const KEYS[] = {"tuple", "proto", "loc", "sock", "count", "body"};
static const char *const LAYOUT[] = {"size", "tup_at", "sk_at", "loc_at", "reason_at", "netns_at", "ifindex_at",
                                     "proto_at", "attr_at", "ifname_at", "ifname_size", "unspecified",
                                     "unattributed", "by_socket"};

static PyObject *encode(Encoder *e, PyObject *h, const uint8_t *r)
{
    uint8_t mem[4096];     /* a reason name, a tuple, an interface, a drop site (a symbol of up to 512 bytes) */
    buf *b = &(buf){mem, 0, sizeof mem};
    uint64_t sk = rd64(r + e->sk_at), location = rd64(r + e->loc_at), sock_id;
    uint32_t reason = rd32(r + e->reason_at), netns = rd32(r + e->netns_at), ifindex = rd32(r + e->ifindex_at);
    uint16_t proto = rd16(r + e->proto_at);
    uint8_t attribution = r[e->attr_at];
    PyObject *sk_o = NULL, *head = NULL, *out = NULL, *o;

    /* a listen overflow also makes a ReceiveQueueFull event: the unit decoder makes both */
    PyObject *k = PyLong_FromUnsignedLong(reason);
    if (!k)
        return NULL;
    o = lookup(e->overflow, k);
    Py_DECREF(k);
    if (!o)
        return NULL;
    int over = PyObject_IsTrue(o);
    Py_DECREF(o);
    if (over)
        return over < 0 ? NULL : Py_NewRef(Py_None);

    long how = e->unspecified;
    k = PyLong_FromLong(attribution);
    if (!k)
        return NULL;
    o = PyDict_GetItemWithError(e->attribution, k);     /* borrowed */
    Py_DECREF(k);
    if (o) {
        how = PyLong_AsLong(o);
        if (how == -1 && PyErr_Occurred())
            return NULL;
    } else if (PyErr_Occurred()) {
        return NULL;
    }
    if (!put_cached(b, e->reasons, reason) || !put_opt(b, &e->k_proto, proto))
        return NULL;
    if (how != e->unattributed && !put_tuple(&e->tl, b, &e->k_tuple, r + e->tup_at))
        return NULL;
    if (!put_cached(b, e->hows, attribution)
        || !put_item(b, e->ifaces, Py_BuildValue("(ky#)", (unsigned long)ifindex, (const char *)r + e->ifname_at,
                                                 e->ifname_size))
        || !put_opt(b, &e->k_loc, location))
        return NULL;
    if (!(sk_o = PyLong_FromUnsignedLongLong(sk)))
        return NULL;
    if (!as_u64(call1(e->sid, sk_o), &sock_id) || !put_opt(b, &e->k_sock, sock_id) || !put_key(b, &e->k_count)
        || !put_varint(b, 1) || !put_item(b, e->sites, PyLong_FromUnsignedLongLong(location)))
        goto done;
    {
        PyObject *args[] = {h, how == e->by_socket ? sk_o : NULL, NULL, Py_False};
        PyObject *zero = NULL;
        if (!args[1] && !(args[1] = zero = PyLong_FromLong(0)))
            goto done;
        if ((args[2] = PyLong_FromUnsignedLong(netns)))
            head = PyObject_Vectorcall(e->env, args, 4, NULL);
        Py_XDECREF(args[2]);
        Py_XDECREF(zero);
    }
    if (head)
        out = event_bytes(head, &e->k_body, b);
done:
    Py_XDECREF(head);
    Py_DECREF(sk_o);
    return out;
}

ENCODER_TYPE("drops_native", "drop")

/* drop_encoder(objects, keys, layout) (drops.py, _native_drop) */
static PyObject *make_encoder(PyObject *mod, PyObject *args)
{
    (void)mod;
    Encoder *e = encoder_load(args);
    if (!e)
        return NULL;
    if (!PyDict_Check(e->attribution)) {
        PyErr_SetString(PyExc_TypeError, "drop_encoder(): attribution must be a dict");
    } else if (e->tup_at + e->tl.size > e->size || e->sk_at + 8 > e->size || e->loc_at + 8 > e->size
               || e->reason_at + 4 > e->size || e->netns_at + 4 > e->size || e->ifindex_at + 4 > e->size
               || e->proto_at + 2 > e->size || e->attr_at >= e->size || e->ifname_at + e->ifname_size > e->size) {
        PyErr_SetString(PyExc_ValueError, "drop_encoder(): a layout value outside the record");
    } else {
        PyObject_GC_Track((PyObject *)e);
        return (PyObject *)e;
    }
    Py_DECREF(e);
    return NULL;
}

static PyMethodDef methods[] = {
    {"drop_encoder", make_encoder, METH_VARARGS,
     "drop_encoder(objects, keys, layout) -> the drop encoder, called as encoder(header, record)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "drops_native",
    "The capture's drop encoder in C (gewtui.kernel.probes.drops; its Python encoder is the reference).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_drops_native(void)
{
    if (PyType_Ready(&EncoderType) < 0)
        return NULL;
    return PyModule_Create(&module);
}
