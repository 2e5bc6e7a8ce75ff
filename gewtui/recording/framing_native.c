/* framing_native: the recording writer's frames for a batch of events, out of the
 * interpreter.
 *
 * Place in the pipeline: the capture hands the writer each ring-buffer drain as a list of
 * serialized events (RecordingWriter.write_events_bytes), and each becomes one frame of
 * gewtui/recording/framing.py's layout: marker, length, a Record holding the event (its
 * field key and the event's length), the event, and the CRC-32 (zlib's) of all of that.
 * In Python that is a few appends and a CRC call per event, a fifth of the capture's time
 * on a box making many small records; here it is one call per batch. The Python loop is the
 * reference (write_events_bytes_reference); tests/test_framing_native.py holds the two to
 * the same bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <zlib.h>

#include "pbwire.h"

/* frame_events(buf, payloads, marker, tag, max_record) -> count: append one frame per event
 * of ``payloads`` (a list of bytes) to the bytearray ``buf``. An event whose Record would be
 * over ``max_record`` bytes raises ValueError, with the frames before it appended. */
static PyObject *frame_events(PyObject *self, PyObject *args)
{
    PyObject *buf, *payloads;
    Py_buffer marker, tag;
    Py_ssize_t max_record;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!O!y*y*n", &PyByteArray_Type, &buf, &PyList_Type, &payloads, &marker, &tag,
                          &max_record))
        return NULL;
    PyObject *ret = NULL;
    Py_ssize_t n = PyList_GET_SIZE(payloads), total = 0, bad = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PyList_GET_ITEM(payloads, i);
        if (!PyBytes_Check(p)) {
            PyErr_SetString(PyExc_TypeError, "frame_events: payloads must be bytes");
            goto done;
        }
        uint8_t v[10];
        Py_ssize_t len = PyBytes_GET_SIZE(p), inner = tag.len + pb_varint(v, (uint64_t)len);
        if (len + inner > max_record) {
            bad = i;         /* the frames before it are appended, as the Python loop does */
            n = i;
            break;
        }
        total += marker.len + pb_varint(v, (uint64_t)(len + inner)) + inner + len + 4;
    }
    Py_ssize_t at = PyByteArray_GET_SIZE(buf);
    if (PyByteArray_Resize(buf, at + total) < 0)
        goto done;
    uint8_t *d = (uint8_t *)PyByteArray_AS_STRING(buf) + at;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PyList_GET_ITEM(payloads, i);
        Py_ssize_t len = PyBytes_GET_SIZE(p);
        uint8_t v[10];
        int lv = pb_varint(v, (uint64_t)len);
        uint8_t *start = d;
        memcpy(d, marker.buf, (size_t)marker.len);
        d += marker.len;
        d += pb_varint(d, (uint64_t)(len + tag.len + lv));
        memcpy(d, tag.buf, (size_t)tag.len);
        d += tag.len;
        memcpy(d, v, (size_t)lv);
        d += lv;
        memcpy(d, PyBytes_AS_STRING(p), (size_t)len);
        d += len;
        uLong crc = crc32(0L, start, (uInt)(d - start));
        d[0] = (uint8_t)crc;
        d[1] = (uint8_t)(crc >> 8);
        d[2] = (uint8_t)(crc >> 16);
        d[3] = (uint8_t)(crc >> 24);
        d += 4;
    }
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "event of %zd bytes is over the %zd-byte cap",
                     PyBytes_GET_SIZE(PyList_GET_ITEM(payloads, bad)), max_record);
        goto done;
    }
    ret = PyLong_FromSsize_t(n);
done:
    PyBuffer_Release(&marker);
    PyBuffer_Release(&tag);
    return ret;
}

static PyMethodDef methods[] = {
    {"frame_events", frame_events, METH_VARARGS,
     "frame_events(buf, payloads, marker, tag, max_record) -> count: append a frame per event to buf"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "framing_native",
    "Recording frames for a batch of events in C (RecordingWriter.write_events_bytes uses it).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_framing_native(void) { return PyModule_Create(&module); }
