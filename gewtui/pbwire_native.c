/* pbwire_native: gewtui/pbwire.py's uvarint in C.
 *
 * Place in the pipeline: every event the capture writes is numbered with a varint id and a
 * varint kernel time, and the fast encoders write their fields' varints the same way; in
 * Python each such varint is a few shifts and a bytes object, about half a microsecond for
 * a kernel time. This is pb_varint (pbwire.h) behind a Python call. Values outside
 * [0, 2**64) go to the Python function (pbwire.uvarint_reference), so every input gives
 * what it gave before; tests/test_pbwire_native.py holds the two against each other.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pbwire.h"

static PyObject *reference;    /* pbwire.uvarint_reference */
static PyObject *small[128];   /* the one-byte varints, made once */

static PyObject *uvarint(PyObject *self, PyObject *v)
{
    uint8_t out[10];
    (void)self;
    if (!PyLong_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "uvarint: an int");
        return NULL;
    }
    unsigned long long x = PyLong_AsUnsignedLongLong(v);
    if (x == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError) || !reference)
            return NULL;
        PyErr_Clear();
        return PyObject_CallOneArg(reference, v);
    }
    if (x < 128)
        return Py_NewRef(small[x]);
    return PyBytes_FromStringAndSize((const char *)out, pb_varint(out, x));
}

static PyObject *set_reference(PyObject *self, PyObject *fn)
{
    (void)self;
    if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "set_reference: a callable");
        return NULL;
    }
    Py_XSETREF(reference, Py_NewRef(fn));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"uvarint", uvarint, METH_O, "uvarint(v) -> bytes: the base-128 varint of v, as pbwire.uvarint_reference"},
    {"set_reference", set_reference, METH_O, "set_reference(fn): what takes values outside [0, 2**64)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pbwire_native", "Varints in C (gewtui.pbwire uses it; its Python uvarint is the reference).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_pbwire_native(void)
{
    for (int i = 0; i < 128; i++) {
        char c = (char)i;
        if (!(small[i] = PyBytes_FromStringAndSize(&c, 1)))
            return NULL;
    }
    return PyModule_Create(&module);
}
