/* tcp_state_native: the capture's encoder for K_LIFE records, out of the interpreter.
 *
 * Place in the pipeline: on a churning box nearly every ring-buffer record is a lifecycle
 * record (bpf/tcp_state.c), and the capture writes each as one Lifecycle event
 * (gewtui/kernel/probes/tcp_state.py, ``_life_encoder``). That encoder's Python is the
 * reference; this is the same function, step for step, over the same state: the decoder's
 * dicts and caches and its socket-id methods are the Python objects themselves, called or
 * looked up here, so the rules (a new life's new socket id, who owns a socket, what a
 * cache holds) stay written once, in Python. What moves into C is the reading of the
 * record and the building of the event's bytes. Layout offsets and field keys come from
 * the Python side when the encoder is made, so no layout or field number is restated here.
 *
 * Input is the kernel's own record, checked for its exact size by the decoder before it
 * gets here; every read is still bounded by the record, every write by the event buffer.
 * tests/test_decode_fastpath.py and tests/test_lifecycle_wire.py hold the encoder against
 * the unit decoders; tests/test_tcp_state_native.py against the Python encoder.
 */
#include "fields_native.h"

#define EVENT_MAX 8192        /* far above what one record can make (about 1 KiB) */

typedef struct Encoder {
    PyObject_HEAD
    PyObject *dec, *seen, *windows, *owners, *task_attr, *task_owner, *cpus;
    PyObject *sid, *live, *renew, *forget, *born;
    PyObject *raw_sink_name, *attr_field_name, *tgid_name, *pid_name;
    PyObject *w_names[5];   /* end_ns, segments, bytes, zw_segments, hist */
    PyObject *keys;         /* the bytes objects below, kept alive */
    TupleLayout tl;
    Py_buffer k_tuple, k_netns;
    Py_buffer k_sock, k_task, k_owner, k_learnt, k_items, k_names, k_destroyed, k_closer, k_ftuple, k_fnetns,
        k_cookie, k_counters, k_prior, k_pend, k_psegs, k_pbytes, k_pzws, k_phist, k_life;
    /* where things lie in the record (bytes), and the values it is read against */
    Py_ssize_t size, sk_at, cookie_at, final_at, n_at, seq_at, netns_at, has_task_at;
    Py_ssize_t task_at, pid_at, tgid_at, uid_at, tnetns_at, cgroup_at, comm_at, comm_size;
    Py_ssize_t tup_at, items_at, item_size, max_items, kind_at, ctx_at, a_at, b_at;
    Py_ssize_t sock_at, sock_size, final_netns_at, final_segments_at;
    Py_ssize_t life_state, tcp_close, tcp_listen, ctx_process;
    int summaries;
} Encoder;

/* getattr(obj, name) as u64 */
static int attr_u64(PyObject *obj, PyObject *name, uint64_t *v)
{
    return as_u64(PyObject_GetAttr(obj, name), v);
}

/* task key (pid, tgid, uid, netns, cgroup, comm), as LIFE_TASK unpacks it */
static PyObject *task_key(const Encoder *e, const uint8_t *r)
{
    const uint8_t *t = r + e->task_at;
    return Py_BuildValue("(kkkkKy#)", (unsigned long)rd32(t + e->pid_at), (unsigned long)rd32(t + e->tgid_at),
                         (unsigned long)rd32(t + e->uid_at), (unsigned long)rd32(t + e->tnetns_at),
                         (unsigned long long)rd64(t + e->cgroup_at), (const char *)t + e->comm_at, e->comm_size);
}

static PyObject *encode(Encoder *e, PyObject *h, const uint8_t *r)
{
    buf *b = NULL;
    uint8_t *mem = NULL;
    PyObject *sk_o = NULL, *o = NULL, *key = NULL, *tmp = NULL, *out = NULL, *cpu_f = NULL;
    uint64_t sk = rd64(r + e->sk_at), cookie = rd64(r + e->cookie_at);
    int final = r[e->final_at];
    uint32_t n = rd32(r + e->n_at), seq = rd32(r + e->seq_at), netns = rd32(r + e->netns_at);
    int has_task = r[e->has_task_at];
    const uint8_t *held = r + e->items_at;
    uint64_t sock_id = 0, count;

    if (n > (uint32_t)e->max_items)
        return PyErr_Format(PyExc_ValueError, "lifecycle record holds %u items (at most %zd)", n, e->max_items);
    sk_o = PyLong_FromUnsignedLongLong(sk);
    if (!sk_o)
        return NULL;
    /* rare (a new life after the first item, a listener's close): decode_life, item by item */
    for (uint32_t i = 1; i < n; i++) {
        uint8_t old = held[i * e->item_size + e->a_at];
        if (old == e->tcp_close || old == e->tcp_listen)
            goto rare;
    }
    if (seq) {
        PyObject *s = PyDict_GetItemWithError(e->seen, sk_o);      /* borrowed */
        if (!s && PyErr_Occurred())
            goto fail;
        if (s) {
            unsigned long long v = PyLong_AsUnsignedLongLong(s);
            if (v == (unsigned long long)-1 && PyErr_Occurred())
                goto fail;
            if (v > seq)
                goto rare;
        }
    }
    if (!n && !final) {
        tmp = PyLong_FromUnsignedLong(seq);
        if (!tmp || PyDict_SetItem(e->seen, sk_o, tmp) < 0)
            goto fail;
        Py_CLEAR(tmp);
        out = PyList_New(0);
        goto done;
    }
    if (n) {
        int any_state = 0;
        for (uint32_t i = 0; i < n; i++)
            any_state |= held[i * e->item_size + e->kind_at] == e->life_state;
        if (held[e->kind_at] == e->life_state) {
            PyObject *args[2] = {PyLong_FromLong(held[e->a_at]), PyLong_FromLong(held[e->b_at])};
            if (!args[0] || !args[1]) {
                Py_XDECREF(args[0]);
                Py_XDECREF(args[1]);
                goto fail;
            }
            tmp = PyObject_Vectorcall(e->born, args, 2, NULL);
            Py_DECREF(args[0]);
            Py_DECREF(args[1]);
            if (!tmp)
                goto fail;
            int is_born = PyObject_IsTrue(tmp);
            Py_CLEAR(tmp);
            if (is_born < 0)
                goto fail;
            if (is_born) {      /* a new life at this address: a new socket id */
                tmp = call1(e->renew, sk_o);
                if (!tmp)
                    goto fail;
                Py_CLEAR(tmp);
            }
        }
        /* a socket with a state change keeps its id until its destroy */
        if (!as_u64(call1(any_state ? e->live : e->sid, sk_o), &sock_id))
            goto fail;
    } else if (final) {
        if (!as_u64(call1(e->sid, sk_o), &sock_id))
            goto fail;
    }
    o = PyDict_GetItemWithError(e->owners, sk_o);
    if (!o && PyErr_Occurred())
        goto fail;
    Py_XINCREF(o);

    mem = PyMem_Malloc(EVENT_MAX);
    if (!mem) {
        PyErr_NoMemory();
        goto fail;
    }
    b = &(buf){mem, 0, EVENT_MAX};
    int ok;
    if (!put_tuple(&e->tl, b, &e->k_tuple, r + e->tup_at) || !put_opt(b, &e->k_sock, sock_id)
        || !put_opt(b, &e->k_netns, netns))
        goto fail;
    uint32_t key_pid = 0, key_tgid = 0;
    if (has_task) {
        key = task_key(e, r);
        if (!key)
            goto fail;
        key_pid = rd32(r + e->task_at + e->pid_at);
        key_tgid = rd32(r + e->task_at + e->tgid_at);
        if (key_tgid) {
            PyObject *a = lookup(e->task_attr, key);
            if (!a)
                goto fail;
            ok = put_key(b, &e->k_task) && put_obj(b, a, 1);
            Py_DECREF(a);
            if (!ok)
                goto fail;
        }
    }
    if (o) {
        PyObject *a = PyObject_GetAttr(o, e->attr_field_name);
        if (!a)
            goto fail;
        ok = put_key(b, &e->k_owner) && put_obj(b, a, 1);
        Py_DECREF(a);
        if (!ok)
            goto fail;
    }
    if (key && key_tgid) {
        int in_process = 0;
        for (uint32_t i = 0; i < n; i++)
            in_process |= held[i * e->item_size + e->ctx_at] == e->ctx_process;
        if (in_process) {
            /* its first item in process context makes the task the socket's owner */
            int learn = !o;
            if (o) {
                uint64_t tgid, pid;
                if (!attr_u64(o, e->tgid_name, &tgid) || !attr_u64(o, e->pid_name, &pid))
                    goto fail;
                learn = tgid != key_tgid || pid != key_pid;
            }
            if (learn) {
                PyObject *no = lookup(e->task_owner, key);
                if (!no)
                    goto fail;
                if (PyDict_SetItem(e->owners, sk_o, no) < 0) {
                    Py_DECREF(no);
                    goto fail;
                }
                Py_XSETREF(o, no);
                PyObject *a = PyObject_GetAttr(o, e->attr_field_name);
                if (!a)
                    goto fail;
                ok = put_key(b, &e->k_learnt) && put_obj(b, a, 1);
                Py_DECREF(a);
                if (!ok)
                    goto fail;
            }
        }
    }
    if (n) {
        Py_ssize_t len = (Py_ssize_t)n * e->item_size;
        if (!put_key(b, &e->k_items) || !put_varint(b, (uint64_t)len) || !put(b, held, len))
            goto fail;
    }
    if (!put_key(b, &e->k_names))
        goto fail;
    count = n;
    if (final) {
        const uint8_t *s = r + e->sock_at;
        uint32_t s_netns = rd32(s + e->final_netns_at);
        uint64_t segments = rd64(s + e->final_segments_at);
        if (PyDict_DelItem(e->seen, sk_o) < 0) {
            if (!PyErr_ExceptionMatches(PyExc_KeyError))
                goto fail;
            PyErr_Clear();
        }
        if (!put_key(b, &e->k_destroyed))
            goto fail;
        /* the destroy's task, when it ran in process context with one */
        PyObject *ctx = PyTuple_GetItem(h, 2), *tgid = PyTuple_GetItem(h, 6);
        if (!ctx || !tgid)
            goto fail;
        long c = PyLong_AsLong(ctx);
        int has_tgid = PyObject_IsTrue(tgid);
        if ((c == -1 && PyErr_Occurred()) || has_tgid < 0)
            goto fail;
        if (c == e->ctx_process && has_tgid) {
            PyObject *hk = PyTuple_GetSlice(h, 5, PyTuple_GET_SIZE(h));
            if (!hk)
                goto fail;
            PyObject *a = lookup(e->task_attr, hk);
            Py_DECREF(hk);
            if (!a)
                goto fail;
            ok = put_key(b, &e->k_closer) && put_obj(b, a, 1);
            Py_DECREF(a);
            if (!ok)
                goto fail;
        }
        if (!put_tuple(&e->tl, b, &e->k_ftuple, s) || !put_opt(b, &e->k_fnetns, s_netns)
            || !put_opt(b, &e->k_cookie, cookie))
            goto fail;
        count++;
        if (segments && e->summaries) {
            if (!put_key(b, &e->k_counters) || !put_varint(b, (uint64_t)e->sock_size) || !put(b, s, e->sock_size))
                goto fail;
            PyObject *w = PyDict_GetItemWithError(e->windows, sk_o);
            if (!w && PyErr_Occurred())
                goto fail;
            if (w) {
                uint64_t v[4];
                Py_INCREF(w);
                if (PyDict_DelItem(e->windows, sk_o) < 0) {
                    Py_DECREF(w);
                    goto fail;
                }
                for (int i = 0; i < 4; i++)
                    if (!attr_u64(w, e->w_names[i], &v[i])) {
                        Py_DECREF(w);
                        goto fail;
                    }
                PyObject *hist = PyObject_GetAttr(w, e->w_names[4]);
                Py_DECREF(w);
                if (!hist)
                    goto fail;
                ok = put_key(b, &e->k_prior) && put_opt(b, &e->k_pend, v[0]) && put_opt(b, &e->k_psegs, v[1])
                     && put_opt(b, &e->k_pbytes, v[2]) && put_opt(b, &e->k_pzws, v[3]);
                int nonempty = ok ? PyObject_IsTrue(hist) : 0;
                if (ok && nonempty > 0) {
                    /* packed: its varints after a length */
                    uint8_t mem[256];
                    buf *pb = &(buf){mem, 0, sizeof mem};
                    PyObject *it = PyObject_GetIter(hist), *x;
                    ok = it != NULL;
                    while (ok && (x = PyIter_Next(it))) {
                        uint64_t xv;
                        ok = as_u64(x, &xv) && put_varint(pb, xv);
                    }
                    if (ok && PyErr_Occurred())
                        ok = 0;
                    Py_XDECREF(it);
                    if (ok)
                        ok = put_key(b, &e->k_phist) && put_varint(b, (uint64_t)pb->n) && put(b, pb->p, pb->n);
                } else if (nonempty < 0) {
                    ok = 0;
                }
                Py_DECREF(hist);
                if (!ok)
                    goto fail;
            }
            count++;
        }
        tmp = call1(e->forget, sk_o);
        if (!tmp)
            goto fail;
        Py_CLEAR(tmp);
    } else {
        tmp = PyLong_FromUnsignedLongLong((unsigned long long)seq + n);
        if (!tmp || PyDict_SetItem(e->seen, sk_o, tmp) < 0)
            goto fail;
        Py_CLEAR(tmp);
    }
    if (!count) {
        out = PyList_New(0);
        goto done;
    }
    {
        PyObject *cpu = PyTuple_GetItem(h, 4);
        if (!cpu)
            goto fail;
        cpu_f = lookup(e->cpus, cpu);
        if (!cpu_f || !PyBytes_Check(cpu_f)) {
            if (cpu_f)
                PyErr_SetString(PyExc_TypeError, "lifecycle encoder: the CPU cache gave something other than bytes");
            goto fail;
        }
        PyObject *ev = event_bytes(cpu_f, &e->k_life, b);
        if (!ev)
            goto fail;
        out = Py_BuildValue("(KN)", (unsigned long long)count, ev);
    }
    goto done;
rare:
    out = Py_NewRef(Py_None);
    goto done;
fail:
    Py_CLEAR(out);
done:
    PyMem_Free(mem);
    Py_XDECREF(sk_o);
    Py_XDECREF(o);
    Py_XDECREF(key);
    Py_XDECREF(tmp);
    Py_XDECREF(cpu_f);
    return out;
}

static PyObject *Encoder_call(PyObject *self, PyObject *args, PyObject *kw)
{
    Encoder *e = (Encoder *)self;
    PyObject *h, *rec;
    if (kw && PyDict_GET_SIZE(kw)) {
        PyErr_SetString(PyExc_TypeError, "lifecycle encoder: no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "life", 2, 2, &h, &rec))
        return NULL;
    if (!e->dec) {      /* cleared by the collector (a finalizer in the same cycle called it) */
        PyErr_SetString(PyExc_RuntimeError, "lifecycle encoder: already cleared");
        return NULL;
    }
    /* events wanted as objects (no raw sink): decode_life, item by item */
    PyObject *sink = PyObject_GetAttr(e->dec, e->raw_sink_name);
    if (!sink)
        return NULL;
    int none = sink == Py_None;
    Py_DECREF(sink);
    if (none)
        Py_RETURN_NONE;
    if (!PyTuple_Check(h) || PyTuple_GET_SIZE(h) < 7 || !PyBytes_Check(rec)) {
        PyErr_SetString(PyExc_TypeError, "lifecycle encoder: (header tuple, record bytes)");
        return NULL;
    }
    if (PyBytes_GET_SIZE(rec) != e->size)
        return PyErr_Format(PyExc_ValueError, "lifecycle record of %zd bytes, layout says %zd",
                            PyBytes_GET_SIZE(rec), e->size);
    return encode(e, h, (const uint8_t *)PyBytes_AS_STRING(rec));
}

#define KEY_BUFS(e) {&(e)->k_tuple, &(e)->k_netns, &(e)->k_sock, &(e)->k_task, &(e)->k_owner, &(e)->k_learnt, \
                     &(e)->k_items, &(e)->k_names, &(e)->k_destroyed, &(e)->k_closer, &(e)->k_ftuple, &(e)->k_fnetns, \
                     &(e)->k_cookie, &(e)->k_counters, &(e)->k_prior, &(e)->k_pend, &(e)->k_psegs, &(e)->k_pbytes, \
                     &(e)->k_pzws, &(e)->k_phist, &(e)->k_life}

/* The encoder holds the decoder, whose table holds the encoder: a cycle the collector
 * must be able to see and break. */
#define OBJS(e) {&(e)->dec, &(e)->seen, &(e)->windows, &(e)->owners, &(e)->task_attr, \
                 &(e)->task_owner, &(e)->cpus, &(e)->sid, &(e)->live, &(e)->renew, &(e)->forget, \
                 &(e)->born, &(e)->keys}

static int Encoder_traverse(PyObject *self, visitproc visit, void *arg)
{
    Encoder *e = (Encoder *)self;
    PyObject **objs[] = OBJS(e);
    for (size_t i = 0; i < sizeof objs / sizeof *objs; i++)
        Py_VISIT(*objs[i]);
    return 0;
}

static int Encoder_clear(PyObject *self)
{
    Encoder *e = (Encoder *)self;
    Py_buffer *bufs[] = KEY_BUFS(e);
    release_keys(bufs, N(bufs));
    tuple_layout_clear(&e->tl);
    PyObject **objs[] = OBJS(e);
    for (size_t i = 0; i < sizeof objs / sizeof *objs; i++)
        Py_CLEAR(*objs[i]);
    PyObject **names[] = {&e->raw_sink_name, &e->attr_field_name, &e->tgid_name, &e->pid_name, &e->w_names[0],
                          &e->w_names[1], &e->w_names[2], &e->w_names[3], &e->w_names[4]};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        Py_CLEAR(*names[i]);
    return 0;
}

static void Encoder_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    Encoder_clear(self);
    Py_TYPE(self)->tp_free(self);
}

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gewtui.kernel.probes.tcp_state_native.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The capture's K_LIFE encoder (make one with encoder())",
    .tp_call = Encoder_call,
    .tp_dealloc = Encoder_dealloc,
    .tp_traverse = Encoder_traverse,
    .tp_clear = Encoder_clear,
};

static const char *const OBJECTS[] = {"dec", "seen", "windows", "owners", "task_attr", "task_owner", "cpus", "sid", "live", "renew", "forget", "born"};
static const char *const KEYS[] = {"tuple", "netns", "sock", "task", "owner", "learnt", "items", "names", "destroyed", "closer", "ftuple",
                             "fnetns", "cookie", "counters", "prior", "pend", "psegs", "pbytes", "pzws", "phist",
                             "life"};
static const char *const LAYOUT[] = {"size", "sk_at", "cookie_at", "final_at", "n_at", "seq_at", "netns_at", "has_task_at",
                               "task_at", "pid_at", "tgid_at", "uid_at", "tnetns_at", "cgroup_at", "comm_at",
                               "comm_size", "tup_at", "items_at", "item_size", "max_items", "kind_at",
                               "ctx_at", "a_at", "b_at", "sock_at", "sock_size", "final_netns_at",
                               "final_segments_at", "life_state", "tcp_close", "tcp_listen", "ctx_process"};

/* encoder(objects, keys, layout), three dicts by the names above: the Python objects it
 * works on, the field keys (bytes; ``names`` is the ready-made congestion-state names
 * block), the layout's offsets and constants (ints; ``summaries``: whether the session runs
 * tcp_probe, so a destroy carries its counters). tcp_state.py, _native_encoder. */
static PyObject *make_encoder(PyObject *mod, PyObject *args)
{
    PyObject *objs, *keys, *layout, *v;
    (void)mod;
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyDict_Type, &objs, &PyDict_Type, &keys, &PyDict_Type, &layout))
        return NULL;
    Encoder *e = PyObject_GC_New(Encoder, &EncoderType);
    if (!e)
        return NULL;
    /* everything NULL first, so a failure part way is released cleanly */
    memset((char *)e + sizeof(PyObject), 0, sizeof(Encoder) - sizeof(PyObject));
    PyObject **slots[] = {&e->dec, &e->seen, &e->windows, &e->owners, &e->task_attr, &e->task_owner, &e->cpus, &e->sid, &e->live, &e->renew, &e->forget, &e->born};
    if (!load_objects(objs, OBJECTS, slots, N(OBJECTS)))
        goto fail;
    if (!PyDict_Check(e->seen) || !PyDict_Check(e->windows) || !PyDict_Check(e->owners)) {
        PyErr_SetString(PyExc_TypeError, "encoder(): seen, windows and owners must be dicts");
        goto fail;
    }
    e->keys = Py_NewRef(keys);
    Py_buffer *kb[] = KEY_BUFS(e);
    Py_ssize_t *ints[] = {&e->size, &e->sk_at, &e->cookie_at, &e->final_at, &e->n_at, &e->seq_at, &e->netns_at,
                          &e->has_task_at, &e->task_at, &e->pid_at, &e->tgid_at, &e->uid_at, &e->tnetns_at,
                          &e->cgroup_at, &e->comm_at, &e->comm_size, &e->tup_at, &e->items_at,
                          &e->item_size, &e->max_items, &e->kind_at, &e->ctx_at, &e->a_at, &e->b_at, &e->sock_at,
                          &e->sock_size, &e->final_netns_at, &e->final_segments_at, &e->life_state, &e->tcp_close,
                          &e->tcp_listen, &e->ctx_process};
    if (!load_keys(keys, KEYS, kb, N(KEYS)) || !tuple_layout_init(&e->tl, keys, layout)
        || !load_ints(layout, LAYOUT, ints, N(LAYOUT)))
        goto fail;
    /* every read must lie inside the record */
    Py_ssize_t t = e->task_at;
    if (e->sk_at + 8 > e->size || e->cookie_at + 8 > e->size || e->final_at >= e->size || e->n_at + 4 > e->size
        || e->seq_at + 4 > e->size || e->netns_at + 4 > e->size || e->has_task_at >= e->size
        || t + e->pid_at + 4 > e->size || t + e->tgid_at + 4 > e->size || t + e->uid_at + 4 > e->size
        || t + e->tnetns_at + 4 > e->size || t + e->cgroup_at + 8 > e->size || t + e->comm_at + e->comm_size > e->size
        || e->tup_at + e->tl.size > e->size || e->items_at + e->max_items * e->item_size > e->size
        || e->sock_at + e->sock_size > e->size || e->final_netns_at + 4 > e->sock_size
        || e->final_segments_at + 8 > e->sock_size || e->tl.size > e->sock_size || e->kind_at >= e->item_size
        || e->ctx_at >= e->item_size || e->a_at >= e->item_size || e->b_at >= e->item_size
        || e->max_items * e->item_size > 4096) {
        PyErr_SetString(PyExc_ValueError, "encoder(): a layout value outside the record");
        goto fail;
    }
    if (!(v = need(layout, "summaries")) || (e->summaries = PyObject_IsTrue(v)) < 0)
        goto fail;
    e->raw_sink_name = PyUnicode_InternFromString("raw_sink");
    e->attr_field_name = PyUnicode_InternFromString("attr_field");
    e->tgid_name = PyUnicode_InternFromString("tgid");
    e->pid_name = PyUnicode_InternFromString("pid");
    const char *wn[] = {"end_ns", "segments", "bytes", "zw_segments", "hist"};
    for (int i = 0; i < 5; i++)
        if (!(e->w_names[i] = PyUnicode_InternFromString(wn[i])))
            goto fail;
    if (!e->raw_sink_name || !e->attr_field_name || !e->tgid_name || !e->pid_name)
        goto fail;
    PyObject_GC_Track((PyObject *)e);
    return (PyObject *)e;
fail:
    Py_DECREF(e);
    return NULL;
}

static PyMethodDef methods[] = {
    {"encoder", make_encoder, METH_VARARGS,
     "encoder(objects, keys, layout) -> the K_LIFE encoder, called as encoder(header, record)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "tcp_state_native",
    "The capture's K_LIFE encoder in C (gewtui.kernel.probes.tcp_state; its Python encoder is the reference).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_tcp_state_native(void)
{
    if (PyType_Ready(&EncoderType) < 0)
        return NULL;
    return PyModule_Create(&module);
}
