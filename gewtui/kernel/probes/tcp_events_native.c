/* tcp_events_native: the capture's encoder for reset records, out of the interpreter.
 *
 * Place in the pipeline: a box refusing connections, or a reset storm under investigation,
 * sends the capture two reset records a connection (sent and received, bpf/tcp_events.c),
 * each written as one TcpReset event by tcp_events.py's ``reset`` encoder, which stays the
 * reference. This is the same function over the same state: the decoder's socket ids and
 * envelope (who acted, on which CPU) and the reset-state and reason caches are the Python
 * objects themselves, called or looked up here, so their rules stay written once; the
 * record's reading and the event's bytes move into C. Layout offsets and field keys come
 * from the Python side (tcp_events.py, ``_native_reset``).
 *
 * Input is the kernel's own record, checked for its exact size by the decoder before it
 * gets here and again here; every write is bounded by the event buffer.
 * tests/test_probe_encoders_native.py holds it against the Python encoder.
 */
#include "fields_native.h"

typedef struct Encoder {
    PyObject_HEAD
    PyObject *env, *sid, *states, *reasons;
    TupleLayout tl;
    Py_buffer k_tuple, k_sock, k_dir, k_sent, k_received, k_cookie, k_body;
    Py_ssize_t size, tup_at, sk_at, cookie_at, netns_at, state_at, reason_at, dir_at, dir_sent;
} Encoder;

#define OBJS(e) {&(e)->env, &(e)->sid, &(e)->states, &(e)->reasons}
#define KEY_BUFS(e) {&(e)->k_tuple, &(e)->k_sock, &(e)->k_dir, &(e)->k_sent, &(e)->k_received, &(e)->k_cookie, \
                     &(e)->k_body}
#define INTS(e) {&(e)->size, &(e)->tup_at, &(e)->sk_at, &(e)->cookie_at, &(e)->netns_at, &(e)->state_at, \
                 &(e)->reason_at, &(e)->dir_at, &(e)->dir_sent}
static const char *const OBJECTS[] = {"env", "sid", "states", "reasons"};
static const char *const KEYS[] = {"tuple", "sock", "dir", "sent", "received", "cookie", "body"};
static const char *const LAYOUT[] = {"size", "tup_at", "sk_at", "cookie_at", "netns_at", "state_at", "reason_at",
                                     "dir_at", "dir_sent"};

static PyObject *encode(Encoder *e, PyObject *h, const uint8_t *r)
{
    uint8_t mem[2048];     /* a tuple, a socket id, a state, a reason and its name, a cookie */
    buf *b = &(buf){mem, 0, sizeof mem};
    uint64_t sk = rd64(r + e->sk_at), cookie = rd64(r + e->cookie_at), sock_id;
    uint32_t netns = rd32(r + e->netns_at);
    int32_t state = (int32_t)rd32(r + e->state_at);
    uint32_t reason = rd32(r + e->reason_at);
    int sent = r[e->dir_at] == e->dir_sent;
    PyObject *sk_o = PyLong_FromUnsignedLongLong(sk), *head = NULL, *out = NULL;
    if (!sk_o)
        return NULL;
    if (!put_tuple(&e->tl, b, &e->k_tuple, r + e->tup_at) || !as_u64(call1(e->sid, sk_o), &sock_id)
        || !put_opt(b, &e->k_sock, sock_id) || !put_key(b, &e->k_dir) || !put_key(b, sent ? &e->k_sent : &e->k_received)
        || !put_cached(b, e->states, state))
        goto done;
    /* the reason (fields 5, 6) before the cookie (7) */
    if (sent && !put_cached(b, e->reasons, reason))
        goto done;
    if (!put_opt(b, &e->k_cookie, cookie))
        goto done;
    {
        /* a sent reset may name a request or timewait socket: only a received one teaches
         * the socket's owner */
        PyObject *args[] = {h, sk_o, NULL, sent ? Py_False : Py_True};
        if (!(args[2] = PyLong_FromUnsignedLong(netns)))
            goto done;
        head = PyObject_Vectorcall(e->env, args, 4, NULL);
        Py_DECREF(args[2]);
    }
    if (head)
        out = event_bytes(head, &e->k_body, b);
done:
    Py_XDECREF(head);
    Py_DECREF(sk_o);
    return out;
}

ENCODER_TYPE("tcp_events_native", "reset")

/* reset_encoder(objects, keys, layout) (tcp_events.py, _native_reset) */
static PyObject *make_encoder(PyObject *mod, PyObject *args)
{
    (void)mod;
    Encoder *e = encoder_load(args);
    if (!e)
        return NULL;
    if (e->tup_at + e->tl.size > e->size || e->sk_at + 8 > e->size || e->cookie_at + 8 > e->size
        || e->netns_at + 4 > e->size || e->state_at + 4 > e->size || e->reason_at + 4 > e->size
        || e->dir_at >= e->size) {
        PyErr_SetString(PyExc_ValueError, "reset_encoder(): a layout value outside the record");
        Py_DECREF(e);
        return NULL;
    }
    PyObject_GC_Track((PyObject *)e);
    return (PyObject *)e;
}

static PyMethodDef methods[] = {
    {"reset_encoder", make_encoder, METH_VARARGS,
     "reset_encoder(objects, keys, layout) -> the reset encoder, called as encoder(header, record)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "tcp_events_native",
    "The capture's reset encoder in C (gewtui.kernel.probes.tcp_events; its Python encoder is the reference).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_tcp_events_native(void)
{
    if (PyType_Ready(&EncoderType) < 0)
        return NULL;
    return PyModule_Create(&module);
}
