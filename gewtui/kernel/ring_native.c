/* ring_native: gewtui/kernel/transport.py's MappedRing.drain in C.
 *
 * Place in the pipeline: the capture thread walks the kernel's ring buffer through its
 * memory mapping and hands each committed record to the decoder. In Python that walk (load
 * the length word, test two bits, slice the record out, publish the consumer position now
 * and then) is about a tenth of the capture's time per record on a busy box; this is the
 * same walk over the same mappings, with the same rules:
 * - the producer position and each length word are loaded with acquire order (the Python
 *   loop relies on the platform's ordered loads, and runs only where they hold);
 * - a record still reserved (busy bit) ends the drain, a discarded one is stepped over;
 * - a record ``handle`` raised on counts as consumed, the ones after it wait;
 * - the consumer position is published every 256 records and at the end, and written back
 *   to the ring's ``_pos`` whatever happened.
 * The mappings are held as buffers for the call, so a ring closed from inside ``handle``
 * fails there (BufferError) instead of leaving this loop reading unmapped memory.
 * tests/test_ring_native.py holds it against MappedRing.drain_reference on crafted rings.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define RB_BUSY (1u << 31)
#define RB_DISCARD (1u << 30)
#define RB_LEN (RB_DISCARD - 1)
#define RB_HDR 8

static int attr_u64(PyObject *o, const char *name, uint64_t *out)
{
    PyObject *v = PyObject_GetAttrString(o, name);
    if (!v)
        return -1;
    unsigned long long x = PyLong_AsUnsignedLongLong(v);
    Py_DECREF(v);
    if (x == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *out = x;
    return 0;
}

static uint64_t load_u64(const char *p)
{
    return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE);
}

static PyObject *drain(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "drain(ring, handle, limit)");
        return NULL;
    }
    PyObject *ring = args[0], *handle = args[1];
    long long limit = PyLong_AsLongLong(args[2]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    uint64_t data, mask, pos;
    if (attr_u64(ring, "_data", &data) || attr_u64(ring, "mask", &mask) || attr_u64(ring, "_pos", &pos))
        return NULL;
    PyObject *prod_mm = PyObject_GetAttrString(ring, "_prod");
    if (!prod_mm)
        return NULL;
    PyObject *cons_mm = PyObject_GetAttrString(ring, "_cons");
    if (!cons_mm) {
        Py_DECREF(prod_mm);
        return NULL;
    }
    Py_buffer pv, cv;
    if (PyObject_GetBuffer(prod_mm, &pv, PyBUF_SIMPLE)) {
        Py_DECREF(prod_mm);
        Py_DECREF(cons_mm);
        return NULL;
    }
    if (PyObject_GetBuffer(cons_mm, &cv, PyBUF_WRITABLE)) {
        PyBuffer_Release(&pv);
        Py_DECREF(prod_mm);
        Py_DECREF(cons_mm);
        return NULL;
    }
    const char *pb = pv.buf;
    uint64_t plen = (uint64_t)pv.len;
    long long n = 0;
    int failed = 0;
    if (plen < 8 || cv.len < 8 || data > plen - 4) {
        /* nothing read, nothing written: not even the consumer position */
        PyErr_SetString(PyExc_ValueError, "drain: the ring's mappings are smaller than its layout");
        PyBuffer_Release(&cv);
        PyBuffer_Release(&pv);
        Py_DECREF(prod_mm);
        Py_DECREF(cons_mm);
        return NULL;
    }
    uint64_t prod = load_u64(pb);
    while (pos < prod && n < limit) {
        /* (compared so that no sum can wrap around) */
        if ((pos & mask) > plen - 4 - data) {
            PyErr_SetString(PyExc_ValueError, "drain: a record header beyond the mapping");
            failed = 1;
            break;
        }
        uint64_t off = data + (pos & mask);
        uint32_t word = __atomic_load_n((const uint32_t *)(pb + off), __ATOMIC_ACQUIRE);
        if (word & RB_BUSY)
            break;
        uint64_t length = word & RB_LEN, step = (length + RB_HDR + 7) & ~(uint64_t)7;
        if (pos > UINT64_MAX - step) {
            PyErr_SetString(PyExc_ValueError, "drain: the ring's position would wrap around");
            failed = 1;
            break;
        }
        pos += step;
        if (!(word & RB_DISCARD)) {
            n++;
            /* as the Python slice: clipped to the mapping */
            uint64_t lo = off + RB_HDR < plen ? off + RB_HDR : plen;
            uint64_t hi = length < plen - lo ? lo + length : plen;
            PyObject *rec = PyBytes_FromStringAndSize(pb + lo, (Py_ssize_t)(hi - lo));
            if (!rec) {
                failed = 1;
                break;
            }
            PyObject *r = PyObject_CallOneArg(handle, rec);
            Py_DECREF(rec);
            if (!r) {
                failed = 1;
                break;
            }
            Py_DECREF(r);
            if (!(n & 255))
                __atomic_store_n((uint64_t *)cv.buf, pos, __ATOMIC_RELEASE);
        }
        if (pos >= prod)
            prod = load_u64(pb);   /* what arrived meanwhile */
    }
    __atomic_store_n((uint64_t *)cv.buf, pos, __ATOMIC_RELEASE);
    PyBuffer_Release(&cv);
    PyBuffer_Release(&pv);
    Py_DECREF(prod_mm);
    Py_DECREF(cons_mm);
    /* the position goes back to the ring even when handle raised */
    PyObject *et = NULL, *ev = NULL, *tb = NULL;
    if (failed)
        PyErr_Fetch(&et, &ev, &tb);
    PyObject *p = PyLong_FromUnsignedLongLong(pos);
    int bad = !p || PyObject_SetAttrString(ring, "_pos", p);
    Py_XDECREF(p);
    if (failed) {
        if (bad)
            PyErr_Clear();
        PyErr_Restore(et, ev, tb);
        return NULL;
    }
    if (bad)
        return NULL;
    return PyLong_FromLongLong(n);
}

static PyMethodDef methods[] = {
    {"drain", (PyCFunction)(void (*)(void))drain, METH_FASTCALL,
     "drain(ring, handle, limit) -> int: MappedRing.drain_reference's walk over ring's mappings"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "ring_native",
    "The ring buffer's drain in C (gewtui.kernel.transport uses it; its Python loop is the reference).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_ring_native(void)
{
    return PyModule_Create(&module);
}
